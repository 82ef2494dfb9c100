//! DescribeCluster: the live brokers and the controller (this broker alone when it is not
//! in a cluster). DescribeQuorum: the metadata quorum, as Klamm has one.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest,
    DescribeQuorumResponse,
};
use kafka_protocol::ResponseError;

use super::sb;
use super::RequestContext;
use crate::context::Context;

/// Kafka's "authorized operations not requested" sentinel.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Bits of Kafka's AclOperation codes.
const fn ops(codes: &[u8]) -> i32 {
    let mut bits = 0;
    let mut i = 0;
    while i < codes.len() {
        bits |= 1 << codes[i];
        i += 1;
    }
    bits
}

// AclOperation: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12. With no authorizer every
// operation that applies to a resource type is allowed; the sets are Kafka's per type.
/// Operations on the cluster resource.
pub const CLUSTER_OPERATIONS: i32 = ops(&[5, 7, 8, 9, 10, 11, 12]);
/// Operations on a topic.
pub const TOPIC_OPERATIONS: i32 = ops(&[3, 4, 5, 6, 7, 8, 10, 11]);
/// Operations on a group (Kafka 4.x adds DESCRIBE_CONFIGS and ALTER_CONFIGS, for group
/// configs).
pub const GROUP_OPERATIONS: i32 = ops(&[3, 6, 8, 10, 11]);

pub async fn describe_cluster(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: DescribeClusterRequest,
) -> Option<DescribeClusterResponse> {
    let (brokers, controller) = ctx.brokers_and_controller(&rc.listener);
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(sb(ctx.metadata.cluster_id()))
        .with_controller_id(BrokerId(controller))
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    // endpoint_type 1 = brokers, 2 = controllers (v1+). We are both.
    if version >= 1 {
        resp.endpoint_type = req.endpoint_type;
        if req.endpoint_type != 1 && req.endpoint_type != 2 {
            resp.error_code = ResponseError::UnsupportedEndpointType.code();
            resp.error_message = Some(sb(format!(
                "unsupported endpoint type {}",
                req.endpoint_type
            )));
            return Some(resp);
        }
    }
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = CLUSTER_OPERATIONS;
    }
    resp.brokers = brokers
        .into_iter()
        .map(|(id, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(sb(host))
                .with_port(port)
        })
        .collect();
    Some(resp)
}

/// KRaft's metadata partition, the one DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// DescribeQuorum (`kafka-metadata-quorum describe --status|--replication`).
///
/// Klamm has no KRaft log. What it reports is what stands in for one: the node that
/// decides the cluster's metadata is the leader and only voter (the ZooKeeper-elected
/// controller, at the epoch in `/controller_epoch`; a single node is its own, at epoch 1),
/// and the other live brokers, which follow the metadata through ZooKeeper, are observers.
/// There are no metadata log offsets, so the high watermark and every log end offset are
/// -1 (Kafka's "unknown"), which the tool shows as no lag.
pub async fn describe_quorum(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: DescribeQuorumRequest,
) -> Option<DescribeQuorumResponse> {
    use kafka_protocol::messages::describe_quorum_response::{
        Listener, Node, PartitionData, ReplicaState, TopicData,
    };
    let (brokers, controller) = ctx.brokers_and_controller(&rc.listener);
    let epoch = match &ctx.cluster {
        Some(c) if controller >= 0 => c.current_controller_epoch().await,
        Some(_) => -1,
        None => 1,
    };
    let now = crate::clock::now_ms();
    let replica = |id: i32| {
        let mut r = ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(-1);
        if version >= 1 {
            r.last_fetch_timestamp = -1;
            // Kafka reports the current time for the leader itself.
            r.last_caught_up_timestamp = if id == controller { now } else { -1 };
        }
        r
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = PartitionData::default().with_partition_index(p.partition_index);
                    if t.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        return out;
                    }
                    if controller < 0 {
                        out.error_code = ResponseError::NotLeaderOrFollower.code();
                        return out;
                    }
                    out.leader_id = BrokerId(controller);
                    out.leader_epoch = epoch;
                    out.high_watermark = -1;
                    out.current_voters = vec![replica(controller)];
                    out.observers = brokers
                        .iter()
                        .filter(|(id, _, _)| *id != controller)
                        .map(|(id, _, _)| replica(*id))
                        .collect();
                    out
                })
                .collect();
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let mut resp = DescribeQuorumResponse::default().with_topics(topics);
    if version >= 2 {
        resp.nodes = brokers
            .iter()
            .filter(|(id, _, _)| *id == controller)
            .map(|(id, host, port)| {
                Node::default()
                    .with_node_id(BrokerId(*id))
                    .with_listeners(vec![Listener::default()
                        .with_name(sb(&*rc.listener))
                        .with_host(sb(host.as_str()))
                        .with_port(u16::try_from(*port).unwrap_or(0))])
            })
            .collect();
    }
    Some(resp)
}
