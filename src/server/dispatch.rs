//! ApiKey + version -> handler. ApiVersions answers from the supported-version table in
//! `wire.rs`, which also gates every request here, so what is advertised is exactly what
//! is handled.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterClientQuotasRequest,
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, AlterShareGroupOffsetsRequest,
    AlterUserScramCredentialsRequest, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreateAclsRequest,
    CreateDelegationTokenRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteShareGroupOffsetsRequest, DeleteTopicsRequest,
    DescribeAclsRequest, DescribeClientQuotasRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeDelegationTokenRequest, DescribeGroupsRequest,
    DescribeLogDirsRequest, DescribeProducersRequest, DescribeQuorumRequest,
    DescribeShareGroupOffsetsRequest, DescribeTopicPartitionsRequest, DescribeTransactionsRequest,
    DescribeUserScramCredentialsRequest, ElectLeadersRequest, EndTxnRequest,
    ExpireDelegationTokenRequest, FetchRequest, FindCoordinatorRequest,
    GetTelemetrySubscriptionsRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListConfigResourcesRequest,
    ListGroupsRequest, ListOffsetsRequest, ListPartitionReassignmentsRequest,
    ListTransactionsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, PushTelemetryRequest,
    RenewDelegationTokenRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    ShareAcknowledgeRequest, ShareFetchRequest, ShareGroupDescribeRequest,
    ShareGroupHeartbeatRequest, StreamsGroupDescribeRequest, StreamsGroupHeartbeatRequest,
    StreamsGroupTopologyDescriptionUpdateRequest, SyncGroupRequest, TxnOffsetCommitRequest,
    UpdateFeaturesRequest, WriteTxnMarkersRequest,
};
use kafka_protocol::messages::{
    DeleteShareGroupStateRequest, InitializeShareGroupStateRequest, ReadShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest, WriteShareGroupStateRequest,
};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;

use crate::api;
use crate::context::Context;

use super::wire::{decode_guarded, encode_frame, encode_response, Outcome, Parsed};
use crate::api::RequestContext;
use crate::apis::{api_versions_table, touches_storage};

/// Decodes one request frame, runs its handler, and encodes the response.
pub async fn handle(
    ctx: &Context,
    peer: SocketAddr,
    session: &mut super::sasl::Session,
    frame: Bytes,
) -> Outcome {
    if session.sasl.as_ref().is_some_and(|s| s.raw_tokens()) {
        return super::sasl::raw_token(ctx, session, peer, frame).await;
    }
    let request_bytes = frame.len();
    let (key, version, correlation_id, header, frame) = match super::wire::parse_request(frame) {
        Parsed::Request(r) => (r.key, r.version, r.correlation_id, r.header, r.body),
        Parsed::ApiVersionsFallback(correlation_id) => {
            return Outcome::Respond(api_versions_fallback(correlation_id))
        }
        Parsed::Reject(reason) => return Outcome::Close(reason),
    };
    if session.sasl.is_none() {
        let now = crate::clock::now_ms();
        // Kafka's SocketServer: a SaslHandshake re-authenticates, even past the session's end
        // (a client re-authenticates only when it has something to send, so an idle one is
        // late); any other request on an ended session closes the connection.
        if key == ApiKey::SaslHandshake && session.begin_reauthentication(now) {
            return super::sasl::handshake(ctx, session, peer, version, correlation_id, frame);
        }
        if session.expired(now) {
            ctx.metrics.expired_sessions_closed.inc();
            return Outcome::Close(format!(
                "Disconnecting expired channel: the SASL session of {} ended without a re-authentication",
                session.principal
            ));
        }
    }
    if let Some(state) = &session.sasl {
        // Before authentication only the exchange is served, as Kafka's
        // SaslServerAuthenticator allows: ApiVersions and SaslHandshake first, then
        // SaslAuthenticate. Anything else closes the connection.
        let initial = matches!(state, crate::security::SaslState::Initial);
        match key {
            ApiKey::ApiVersions if initial => {}
            ApiKey::SaslHandshake if initial => {
                return super::sasl::handshake(ctx, session, peer, version, correlation_id, frame)
            }
            ApiKey::SaslAuthenticate if !initial => {
                return super::sasl::authenticate(
                    ctx,
                    session,
                    peer,
                    version,
                    correlation_id,
                    frame,
                )
                .await
            }
            other => {
                return Outcome::Close(format!(
                    "{other:?} request before SASL authentication completed"
                ))
            }
        }
    }
    if let Some(token) = &session.token {
        // Kafka ends a token's session when the token expires (the client would have to
        // re-authenticate); here it ends when the token expires or is expired, and a
        // renewal keeps it going.
        if !ctx.tokens.still_valid(token, crate::clock::now_ms()) {
            return Outcome::Close(format!(
                "the delegation token {token} this connection logged in with has expired"
            ));
        }
    }
    let rc = RequestContext::new(
        peer,
        session.listener.clone(),
        session.principal.clone(),
        header,
        request_bytes,
    )
    .with_channel(session.protocol, session.token.is_some());
    let started = std::time::Instant::now();
    let api = crate::metrics::api_name(key);
    // Counted down on drop, so a request cancelled with its connection leaves no trace.
    let _in_flight = InFlight::new(&ctx.metrics, api);
    let outcome = route(ctx, &rc, key, version, frame).await;
    ctx.metrics.request(api, version, started.elapsed());
    let response_bytes = match &outcome {
        Outcome::Respond(b) | Outcome::RespondThenClose(b, _) => b.len().saturating_sub(4),
        Outcome::NoResponse | Outcome::Close(_) => 0,
    };
    ctx.metrics.frame_bytes(api, request_bytes, response_bytes);
    // One line per request at trace level: what a client did, in order, when a compat test
    // fails in a way its own logs do not explain.
    tracing::trace!(
        peer = %peer,
        api,
        version,
        correlation_id,
        client_id = rc.header.client_id.as_deref().unwrap_or(""),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request handled"
    );
    let throttle_ms = rc.throttle_ms();
    if throttle_ms > 0 {
        // Kafka mutes a throttled client's channel once its response is sent: nothing more
        // of it is read until the throttle time has passed.
        ctx.metrics.throttled(api);
        session.muted_until = Some(
            tokio::time::Instant::now() + std::time::Duration::from_millis(throttle_ms as u64),
        );
    }
    match rc.take_close_reason() {
        Some(reason) => Outcome::Close(reason),
        None => outcome,
    }
}

struct InFlight<'a> {
    metrics: &'a crate::metrics::Metrics,
    api: &'static str,
}

impl<'a> InFlight<'a> {
    fn new(metrics: &'a crate::metrics::Metrics, api: &'static str) -> InFlight<'a> {
        metrics.in_flight_add(api, 1);
        InFlight { metrics, api }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight_add(self.api, -1);
    }
}

/// The client id of a request frame, read without decoding the header (every header
/// version from v1 carries it, as a non-compact nullable string after the correlation id).
pub fn peek_client_id(frame: &[u8]) -> Option<&str> {
    let len = i16::from_be_bytes([*frame.get(8)?, *frame.get(9)?]);
    let bytes = frame.get(10..10 + usize::try_from(len).ok()?)?;
    std::str::from_utf8(bytes).ok()
}

macro_rules! routes {
    ($ctx:expr, $rc:expr, $key:expr, $version:expr, $body:expr;
     $( $api:ident => $req:ty => $handler:path ),* $(,)?) => {
        match $key {
            $(
                ApiKey::$api => {
                    let mut body = $body;
                    let req = match decode_guarded(|| <$req>::decode(&mut body, $version)) {
                        Ok(r) => r,
                        Err(e) => {
                            return Outcome::Close(format!(
                                "undecodable {:?} v{} request from client {:?}: {e}",
                                $key, $version, $rc.client_id()
                            ))
                        }
                    };
                    // Authorization: every routed type implements Authorize, so none is
                    // served unchecked.
                    let mut fix = None;
                    let req = match api::authorize::Authz::for_request($ctx, $rc) {
                        None => req,
                        Some(az) => {
                            use api::authorize::{Authorize, Gate};
                            match req.authorize(&az, $version, $ctx) {
                                Gate::Pass(r) => r,
                                Gate::Partial(r, f) => {
                                    fix = Some(f);
                                    r
                                }
                                Gate::Refuse(resp) => {
                                    return encode_response($rc.header.correlation_id, $version, &resp)
                                }
                                Gate::Close(reason) => return Outcome::Close(reason),
                            }
                        }
                    };
                    let mut drop_response = false;
                    let mut stall = None;
                    if $ctx.faults.armed() {
                        use crate::fault::{Action, Faultable};
                        let by_id = |id: &uuid::Uuid| $ctx.metadata.topic_by_id(id).map(|t| t.name.to_string());
                        match $ctx.faults.check($key, &req.topics(&by_id)) {
                            Some(Action::Close) => {
                                return Outcome::Close(format!(
                                    "fault injection: close on {:?}", $key
                                ))
                            }
                            Some(Action::Delay(d)) => tokio::time::sleep(d).await,
                            Some(Action::Error(code)) => {
                                if let Some(resp) = req.error_response($version, code) {
                                    return encode_response($rc.header.correlation_id, $version, &resp);
                                }
                            }
                            Some(Action::DropResponse) => drop_response = true,
                            Some(Action::Stall(d)) => stall = Some(d),
                            None => {}
                        }
                    }
                    let handling = crate::quota::throttle::Timed::new($handler($ctx, $rc, $version, req));
                    let (answer, busy_nanos) = if touches_storage($key) {
                        crate::storage::offload::run(async move {
                            if let Some(d) = stall {
                                // A slow disk, simulated where the storage work runs.
                                std::thread::sleep(d);
                            }
                            handling.await
                        })
                        .await
                    } else {
                        handling.await
                    };
                    let mut answer = answer;
                    if let (Some(resp), Some(fix)) = (answer.as_mut(), fix) {
                        fix(resp);
                    }
                    // request_percentage: the handler's own time, of a thread, counts
                    // (inter-broker requests are exempt, as in Kafka); the longest throttle
                    // any quota asked for goes into the response.
                    if !$rc.request_quota_exempt() {
                        let throttle = $ctx.quotas.record(
                            crate::quota::Kind::Request,
                            &$rc.principal,
                            $rc.client_id(),
                            crate::quota::throttle::nanos_to_percentage(busy_nanos),
                        );
                        $rc.throttle(throttle);
                    }
                    if let Some(resp) = answer.as_mut() {
                        use crate::quota::throttle::ThrottleTime;
                        let throttle = $rc.throttle_ms();
                        if throttle > 0 {
                            resp.raise_throttle_time(throttle);
                        }
                    }
                    let outcome = match answer {
                        Some(resp) => encode_response($rc.header.correlation_id, $version, &resp),
                        None => Outcome::NoResponse,
                    };
                    if drop_response {
                        return Outcome::Close(format!(
                            "fault injection: {:?} handled, response dropped", $key
                        ));
                    }
                    outcome
                }
            )*
            other => Outcome::Close(format!("no handler for {other:?}")),
        }
    };
}

/// Whether the request in `frame` may be dropped unfinished when its client closes the
/// socket: the APIs that wait for something (new data, a rebalance) and change nothing a
/// client relies on by themselves.
pub fn droppable_on_close(frame: &[u8]) -> bool {
    let key = frame
        .get(..2)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .and_then(|k| ApiKey::try_from(k).ok());
    matches!(
        key,
        Some(ApiKey::Fetch | ApiKey::ShareFetch | ApiKey::JoinGroup | ApiKey::SyncGroup)
    )
}

async fn route(
    ctx: &Context,
    rc: &RequestContext,
    key: ApiKey,
    version: i16,
    body: Bytes,
) -> Outcome {
    routes!(ctx, rc, key, version, body;
        Produce => ProduceRequest => api::produce::handle,
        Fetch => FetchRequest => api::fetch::handle,
        ListOffsets => ListOffsetsRequest => api::list_offsets::handle,
        Metadata => MetadataRequest => api::metadata::handle,
        ApiVersions => ApiVersionsRequest => api::api_versions::handle,
        CreateTopics => CreateTopicsRequest => api::topics::create_topics,
        DeleteTopics => DeleteTopicsRequest => api::topics::delete_topics,
        CreatePartitions => CreatePartitionsRequest => api::topics::create_partitions,
        DeleteRecords => DeleteRecordsRequest => api::topics::delete_records,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest => api::partitions::offset_for_leader_epoch,
        DescribeLogDirs => DescribeLogDirsRequest => api::partitions::describe_log_dirs,
        ElectLeaders => ElectLeadersRequest => api::partitions::elect_leaders,
        AlterPartitionReassignments => AlterPartitionReassignmentsRequest => api::partitions::alter_partition_reassignments,
        ListPartitionReassignments => ListPartitionReassignmentsRequest => api::partitions::list_partition_reassignments,
        DescribeTopicPartitions => DescribeTopicPartitionsRequest => api::partitions::describe_topic_partitions,
        DescribeCluster => DescribeClusterRequest => api::cluster::describe_cluster,
        DescribeQuorum => DescribeQuorumRequest => api::cluster::describe_quorum,
        UpdateFeatures => UpdateFeaturesRequest => api::api_versions::update_features,
        DescribeConfigs => DescribeConfigsRequest => api::configs::describe_configs,
        AlterConfigs => AlterConfigsRequest => api::configs::alter_configs,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest => api::configs::incremental_alter_configs,
        ListConfigResources => ListConfigResourcesRequest => api::configs::list_config_resources,
        InitProducerId => InitProducerIdRequest => api::producer_id::init_producer_id,
        AddPartitionsToTxn => AddPartitionsToTxnRequest => api::transactions::add_partitions_to_txn,
        AddOffsetsToTxn => AddOffsetsToTxnRequest => api::transactions::add_offsets_to_txn,
        EndTxn => EndTxnRequest => api::transactions::end_txn,
        TxnOffsetCommit => TxnOffsetCommitRequest => api::transactions::txn_offset_commit,
        WriteTxnMarkers => WriteTxnMarkersRequest => api::transactions::write_txn_markers,
        DescribeProducers => DescribeProducersRequest => api::transactions::describe_producers,
        DescribeTransactions => DescribeTransactionsRequest => api::transactions::describe_transactions,
        ListTransactions => ListTransactionsRequest => api::transactions::list_transactions,
        FindCoordinator => FindCoordinatorRequest => api::groups::find_coordinator,
        JoinGroup => JoinGroupRequest => api::groups::join_group,
        SyncGroup => SyncGroupRequest => api::groups::sync_group,
        Heartbeat => HeartbeatRequest => api::groups::heartbeat,
        LeaveGroup => LeaveGroupRequest => api::groups::leave_group,
        OffsetCommit => OffsetCommitRequest => api::offsets::offset_commit,
        OffsetFetch => OffsetFetchRequest => api::offsets::offset_fetch,
        OffsetDelete => OffsetDeleteRequest => api::offsets::offset_delete,
        ListGroups => ListGroupsRequest => api::groups::list_groups,
        DescribeGroups => DescribeGroupsRequest => api::groups::describe_groups,
        DeleteGroups => DeleteGroupsRequest => api::groups::delete_groups,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest => api::consumer_group::heartbeat,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest => api::consumer_group::describe,
        StreamsGroupHeartbeat => StreamsGroupHeartbeatRequest => api::streams_group::heartbeat,
        StreamsGroupDescribe => StreamsGroupDescribeRequest => api::streams_group::describe,
        StreamsGroupTopologyDescriptionUpdate => StreamsGroupTopologyDescriptionUpdateRequest => api::streams_group::topology_description_update,
        ShareGroupHeartbeat => ShareGroupHeartbeatRequest => api::share_group::heartbeat,
        ShareGroupDescribe => ShareGroupDescribeRequest => api::share_group::describe,
        ShareFetch => ShareFetchRequest => api::share_fetch::share_fetch,
        ShareAcknowledge => ShareAcknowledgeRequest => api::share_fetch::share_acknowledge,
        DescribeShareGroupOffsets => DescribeShareGroupOffsetsRequest => api::share_offsets::describe,
        AlterShareGroupOffsets => AlterShareGroupOffsetsRequest => api::share_offsets::alter,
        DeleteShareGroupOffsets => DeleteShareGroupOffsetsRequest => api::share_offsets::delete,
        InitializeShareGroupState => InitializeShareGroupStateRequest => api::share_state::initialize,
        ReadShareGroupState => ReadShareGroupStateRequest => api::share_state::read,
        WriteShareGroupState => WriteShareGroupStateRequest => api::share_state::write,
        DeleteShareGroupState => DeleteShareGroupStateRequest => api::share_state::delete,
        ReadShareGroupStateSummary => ReadShareGroupStateSummaryRequest => api::share_state::summary,
        SaslHandshake => SaslHandshakeRequest => api::sasl::handshake,
        SaslAuthenticate => SaslAuthenticateRequest => api::sasl::authenticate,
        DescribeUserScramCredentials => DescribeUserScramCredentialsRequest => api::scram_credentials::describe,
        CreateDelegationToken => CreateDelegationTokenRequest => api::delegation_tokens::create,
        RenewDelegationToken => RenewDelegationTokenRequest => api::delegation_tokens::renew,
        ExpireDelegationToken => ExpireDelegationTokenRequest => api::delegation_tokens::expire,
        DescribeDelegationToken => DescribeDelegationTokenRequest => api::delegation_tokens::describe,
        AlterUserScramCredentials => AlterUserScramCredentialsRequest => api::scram_credentials::alter,
        DescribeClientQuotas => DescribeClientQuotasRequest => api::quotas::describe,
        AlterClientQuotas => AlterClientQuotasRequest => api::quotas::alter,
        CreateAcls => CreateAclsRequest => api::acls::create,
        DescribeAcls => DescribeAclsRequest => api::acls::describe,
        DeleteAcls => DeleteAclsRequest => api::acls::delete,
        GetTelemetrySubscriptions => GetTelemetrySubscriptionsRequest => api::telemetry::get_subscriptions,
        PushTelemetry => PushTelemetryRequest => api::telemetry::push,
    )
}

/// KIP-511: ApiVersions at an unknown version is answered in the v0 format with
/// UNSUPPORTED_VERSION and the full table, so the client can retry with a version we know.
fn api_versions_fallback(correlation_id: i32) -> BytesMut {
    let resp = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_versions_table());
    match encode_frame(correlation_id, 0, 0, &resp) {
        Ok(b) => b,
        // A v0 ApiVersions response of a fixed table always encodes.
        Err(_) => BytesMut::new(),
    }
}
