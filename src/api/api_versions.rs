//! ApiVersions: the table of supported APIs, from the dispatch table.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use crate::broker::Context;
use crate::server::dispatch::{api_versions_table, RequestContext};

pub async fn handle(
    _ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: ApiVersionsRequest,
) -> Option<ApiVersionsResponse> {
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_versions_table());
    if version >= 3
        && !(valid_software_field(&req.client_software_name)
            && valid_software_field(&req.client_software_version))
    {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), "ApiVersions with invalid client software name/version");
        resp.error_code = ResponseError::InvalidRequest.code();
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
