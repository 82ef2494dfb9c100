//! DescribeCluster: the live brokers and the controller (this broker alone when it is not
//! in a cluster).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
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
/// Operations on a consumer group.
pub const GROUP_OPERATIONS: i32 = ops(&[3, 6, 8]);

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
