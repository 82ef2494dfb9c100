//! Streams groups (KIP-1071, Kafka Streams' `group.protocol=streams`): the broker keeps the
//! application's topology, creates its internal topics and assigns its tasks.
//!
//! The topology's configuration against the cluster's topics, the task assignor, the
//! members' reconciliation and the group coordinator are here; `crate::api::streams_group`
//! serves StreamsGroupHeartbeat and StreamsGroupDescribe with them. Membership is in memory
//! (issue 18: standbys' role changes, static members and journaling to `__consumer_offsets`
//! come next).

pub mod assignor;
pub mod group;
pub mod journal;
pub mod reconcile;
pub mod topology;
