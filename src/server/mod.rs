//! The frontend: accepting connections, framing, and routing requests to handlers.

pub mod connection;
pub mod dispatch;
pub mod listener;
pub mod sasl;
pub mod wire;
