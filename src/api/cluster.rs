//! DescribeCluster: this broker, as the whole cluster and its controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use super::sb;
use crate::broker::Context;
use crate::server::dispatch::RequestContext;

/// Kafka's "authorized operations not requested" sentinel.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn describe_cluster(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: DescribeClusterRequest,
) -> Option<DescribeClusterResponse> {
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(sb(ctx.metadata.cluster_id()))
        .with_controller_id(BrokerId(ctx.config.node_id))
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
        // No authorizer yet: everything is allowed (bits 2..=12 of Kafka's AclOperation).
        resp.cluster_authorized_operations = 0b1_1111_1111_1100;
    }
    resp.brokers = vec![DescribeClusterBroker::default()
        .with_broker_id(BrokerId(ctx.config.node_id))
        .with_host(sb(ctx.advertised_host.clone()))
        .with_port(ctx.advertised_port)];
    Some(resp)
}
