//! Client telemetry (KIP-714): GetTelemetrySubscriptions and PushTelemetry, answered as a
//! Kafka broker with a telemetry reporter and no client-metrics subscription would answer.
//!
//! Java (3.7+) and librdkafka (2.5+) clients ask every broker that advertises these APIs
//! which metrics to push. Klamm subscribes to none, so they push nothing; the APIs exist so
//! that a client built for a telemetry-enabled Kafka sees the same answers here. Nothing is
//! kept per client: the subscription id is derived from the client instance id, so a push
//! can be checked without state.

use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest,
    PushTelemetryResponse,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use crate::context::Context;

/// Kafka's default push interval for a subscription (5 minutes).
const PUSH_INTERVAL_MS: i32 = 5 * 60 * 1000;
/// Kafka's `telemetry.max.bytes` default.
const TELEMETRY_MAX_BYTES: i32 = 1024 * 1024;
/// The codecs a push may use, in Kafka's order of preference: zstd, lz4, gzip, snappy.
const ACCEPTED_COMPRESSION: [i8; 4] = [4, 3, 1, 2];

/// The subscription id of a client instance: stable for the instance, different across
/// instances (FNV-1a of the id's bytes).
fn subscription_id(client: &Uuid) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in client.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as i32
}

pub async fn get_subscriptions(
    _ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: GetTelemetrySubscriptionsRequest,
) -> Option<GetTelemetrySubscriptionsResponse> {
    // A client's first request carries the zero id and gets one assigned.
    let (id, assigned) = if req.client_instance_id.is_nil() {
        let id = Uuid::new_v4();
        (id, id)
    } else {
        (req.client_instance_id, Uuid::nil())
    };
    Some(
        GetTelemetrySubscriptionsResponse::default()
            .with_client_instance_id(assigned)
            .with_subscription_id(subscription_id(&id))
            .with_accepted_compression_types(ACCEPTED_COMPRESSION.to_vec())
            .with_push_interval_ms(PUSH_INTERVAL_MS)
            .with_telemetry_max_bytes(TELEMETRY_MAX_BYTES)
            .with_delta_temporality(true)
            // Empty: no metrics subscribed.
            .with_requested_metrics(Vec::new()),
    )
}

pub async fn push(
    _ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: PushTelemetryRequest,
) -> Option<PushTelemetryResponse> {
    let error = if req.client_instance_id.is_nil() {
        Some(ResponseError::InvalidRequest)
    } else if req.subscription_id != subscription_id(&req.client_instance_id) {
        Some(ResponseError::UnknownSubscriptionId)
    } else if req.compression_type != 0 && !ACCEPTED_COMPRESSION.contains(&req.compression_type) {
        Some(ResponseError::UnsupportedCompressionType)
    } else if req.metrics.len() > TELEMETRY_MAX_BYTES as usize {
        Some(ResponseError::TelemetryTooLarge)
    } else {
        None
    };
    if let Some(e) = error {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), error = ?e, "PushTelemetry refused");
    }
    // Accepted pushes are dropped: no subscription asked for them, so there is no exporter.
    Some(PushTelemetryResponse::default().with_error_code(error.map_or(0, |e| e.code())))
}
