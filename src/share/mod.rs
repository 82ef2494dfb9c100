//! Share groups (KIP-932): queue-like consumption in which members of one group share the
//! records of a partition, each record handed to one member at a time and acknowledged one by
//! one. Membership (`group`, `assignor`) lives with the group coordinator; the records'
//! state (`partition`) on each partition's leader.

pub mod assignor;
pub mod group;
pub mod partition;

pub use group::{ShareGroupConfig, ShareGroups};
