//! KIP-932 share groups: a third kind of group under the one group owner, whose members
//! share partitions and are handed records one by one.

pub mod assignor;
pub mod group;

pub use group::{ShareGroupConfig, ShareGroups};
