//! ApiVersions: the table of supported APIs, from the dispatch table.
//!
//! v5 (KIP-1242): a client that names the cluster and node it means to reach is told
//! REBOOTSTRAP_REQUIRED when this broker is another one (a stale address after a cluster was
//! rebuilt), as Kafka 4.4 does; the check runs only when the client sent a cluster id.

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, UpdateFeaturesRequest, UpdateFeaturesResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::apis::{api_versions_table, FEATURES};
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
        resp.supported_features = FEATURES
            .iter()
            .map(|f| {
                SupportedFeatureKey::default()
                    .with_name(StrBytes::from_static_str(f.name))
                    .with_min_version(f.min)
                    .with_max_version(f.max)
            })
            .collect();
        resp.finalized_features = FEATURES
            .iter()
            .map(|f| {
                FinalizedFeatureKey::default()
                    .with_name(StrBytes::from_static_str(f.name))
                    .with_min_version_level(f.finalized)
                    .with_max_version_level(f.finalized)
            })
            .collect();
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

/// UpdateFeatures (`kafka-features upgrade|downgrade`): Klamm's feature levels are fixed by
/// its binary, so a request that keeps every level as it is succeeds and any change is
/// refused with Kafka's INVALID_UPDATE_VERSION and the reason. v2 answers at the top level
/// only, as Kafka 4.4 does; v0-1 per feature too.
pub async fn update_features(
    _ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: UpdateFeaturesRequest,
) -> Option<UpdateFeaturesResponse> {
    use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
    let verdicts: Vec<(StrBytes, Result<(), String>)> = req
        .feature_updates
        .iter()
        .map(|u| {
            let name = u.feature.as_str();
            let verdict = match FEATURES.iter().find(|f| f.name == name) {
                None => Err(format!(
                    "Invalid update version {} for feature {name}. The broker does not support the given feature.",
                    u.max_version_level
                )),
                Some(f) if u.max_version_level == f.finalized => Ok(()),
                Some(f) => Err(format!(
                    "Invalid update version {} for feature {name}. Klamm runs {name} at level {} (supported {}-{}), fixed by its binary; it cannot be changed at run time.",
                    u.max_version_level, f.finalized, f.min, f.max
                )),
            };
            (u.feature.clone(), verdict)
        })
        .collect();
    let first_error = verdicts.iter().find_map(|(_, v)| v.as_ref().err().cloned());
    if let Some(message) = &first_error {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), %message, "UpdateFeatures refused");
    }
    let mut resp = UpdateFeaturesResponse::default();
    if version >= 2 {
        if let Some(message) = first_error {
            resp.error_code = ResponseError::InvalidUpdateVersion.code();
            resp.error_message = Some(StrBytes::from_string(message));
        }
    } else {
        resp.results = verdicts
            .into_iter()
            .map(|(feature, v)| {
                let mut r = UpdatableFeatureResult::default().with_feature(feature);
                if let Err(message) = v {
                    r.error_code = ResponseError::InvalidUpdateVersion.code();
                    r.error_message = Some(StrBytes::from_string(message));
                }
                r
            })
            .collect();
    }
    Some(resp)
}
