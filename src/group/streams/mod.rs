//! Streams groups (KIP-1071, Kafka Streams' `group.protocol=streams`): the broker keeps the
//! application's topology, creates its internal topics and assigns its tasks.
//!
//! In progress (issue 18): the topology's configuration against the cluster's topics, the
//! task assignor and the members' reconciliation are here; the group coordinator and the
//! StreamsGroupHeartbeat and StreamsGroupDescribe APIs that use them are not served yet
//! (and not advertised).

pub mod assignor;
pub mod group;
pub mod reconcile;
pub mod topology;
