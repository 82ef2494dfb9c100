//! Klamm: a Kafka broker that speaks the real wire protocol and keeps its log in RocksDB.
//!
//! The library holds the whole broker; `main.rs` is a thin CLI around [`Broker`]. Tests and
//! other programs can start a broker in-process with [`TestBroker`] (a free port, a
//! temporary data dir, stopped on drop) or [`Broker::bind`] for full control.

pub mod api;
pub mod apis;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod context;
pub mod coordinator_log;
pub mod fault;
pub mod fetch_session;
pub mod group;
pub mod http;
pub mod listeners;
pub mod log;
pub mod maintenance;
pub mod metadata;
pub mod metrics;
pub mod quota;
pub mod replication;
pub mod security;
pub mod server;
pub mod share;
pub mod storage;
pub mod topic_config;
pub mod transport;
pub mod txn;
pub mod txn_markers;
pub mod txn_verify;

mod broker;
mod embed;

pub use broker::{Broker, BrokerHandle, Context};
pub use config::BrokerConfig;
pub use embed::TestBroker;
