//! Share groups (KIP-932): queue-like consumption in which members of one group share the
//! records of a partition, each record handed to one member at a time and acknowledged one by
//! one. Membership (`group`, `assignor`) lives with the group coordinator; the records'
//! state (`partition`) on each partition's leader, kept by `manager`; what each consumer
//! fetches is its share session (`session`). Records a group rejects or gives up on go to
//! its dead-letter topic (`dlq`, KIP-1191).

pub mod assignor;
pub mod coordinator;
pub mod dlq;
pub mod group;
pub mod manager;
pub mod partition;
mod persist;
pub mod persister;
pub mod records;
pub mod session;

pub use group::{ShareGroupConfig, ShareGroups};
