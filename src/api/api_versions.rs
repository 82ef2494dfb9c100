//! ApiVersions: the table of supported APIs, from the dispatch table.
//!
//! v5 (KIP-1242): a client that names the cluster and node it means to reach is told
//! REBOOTSTRAP_REQUIRED when this broker is another one (a stale address after a cluster was
//! rebuilt), as Kafka 4.4 does; the check runs only when the client sent a cluster id.

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::apis::api_versions_table;
use crate::context::Context;

pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: ApiVersionsRequest,
) -> Option<ApiVersionsResponse> {
    if version >= 3
        && !(valid_software_field(&req.client_software_name)
            && valid_software_field(&req.client_software_version))
    {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), "ApiVersions with invalid client software name/version");
        // As Kafka: an error answer carries no API table.
        return Some(
            ApiVersionsResponse::default().with_error_code(ResponseError::InvalidRequest.code()),
        );
    }
    if version >= 5 {
        if let Some(cluster_id) = req.cluster_id.as_deref() {
            if cluster_id != ctx.metadata.cluster_id() || req.node_id != ctx.config.node_id {
                tracing::info!(
                    peer = %rc.peer,
                    client_id = rc.client_id(),
                    wanted_cluster = cluster_id,
                    wanted_node = req.node_id,
                    "ApiVersions for another cluster or node: REBOOTSTRAP_REQUIRED"
                );
                return Some(
                    ApiVersionsResponse::default()
                        .with_error_code(ResponseError::RebootstrapRequired.code()),
                );
            }
        }
    }
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_versions_table());
    if version >= 3 {
        // KIP-584 features: group.version 1 turns on the KIP-848 consumer protocol in
        // clients that check it (Java 4.x). transaction.version is not advertised: KIP-890's
        // version 2 is not implemented.
        resp.supported_features = vec![SupportedFeatureKey::default()
            .with_name(StrBytes::from_static_str("group.version"))
            .with_min_version(0)
            .with_max_version(1)];
        resp.finalized_features = vec![FinalizedFeatureKey::default()
            .with_name(StrBytes::from_static_str("group.version"))
            .with_min_version_level(1)
            .with_max_version_level(1)];
        resp.finalized_features_epoch = 1;
    }
    Some(resp)
}

/// KIP-511: client software name and version are non-empty [a-zA-Z0-9.-] strings, starting
/// and ending with an alphanumeric.
fn valid_software_field(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}
