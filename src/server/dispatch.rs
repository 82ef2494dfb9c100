//! ApiKey + version -> handler. The supported-version table lives here, and ApiVersions
//! answers from it, so what is advertised is exactly what is handled.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest,
    AlterPartitionReassignmentsRequest, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest,
    DescribeProducersRequest, DescribeTopicPartitionsRequest, DescribeTransactionsRequest,
    ElectLeadersRequest, EndTxnRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, ListPartitionReassignmentsRequest,
    ListTransactionsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, RequestHeader, ResponseHeader,
    SyncGroupRequest, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use kafka_protocol::ResponseError;

use crate::api;
use crate::broker::Context;

/// One row of the supported-version table.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> ApiSupport {
    ApiSupport {
        key,
        min_version,
        max_version,
    }
}

/// Every API this broker handles, from the oldest version current clients send (and the
/// kafka-protocol crate still decodes) to the newest the crate supports.
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    api(ApiKey::Produce, 3, 13),
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 13),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    // The crate lists v6 for InitProducerId and v10 for the offset APIs in ApiKey, but its
    // request decoders stop at v5 and v9: advertise what actually decodes.
    api(ApiKey::InitProducerId, 0, 5),
    // Transactions as Kafka 2.x-3.x clients run them (transaction.version 0: partitions
    // are added explicitly, no KIP-890 epoch bump per transaction). The versions that only
    // transaction.version 2 clients send are not advertised.
    api(ApiKey::AddPartitionsToTxn, 0, 4),
    api(ApiKey::AddOffsetsToTxn, 0, 3),
    api(ApiKey::EndTxn, 0, 4),
    api(ApiKey::TxnOffsetCommit, 0, 4),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The supported range of `key`, if it is handled at all.
pub fn supported(key: ApiKey) -> Option<ApiSupport> {
    SUPPORTED_APIS.iter().copied().find(|a| a.key == key)
}

/// What the connection does after a request.
pub enum Outcome {
    /// Write this (already length-prefixed) response.
    Respond(BytesMut),
    /// Nothing to write (acks=0 produce).
    NoResponse,
    /// Close the connection; the reason is logged as a warning.
    Close(String),
}

/// Identity of the request being served, for handlers and for log lines.
pub struct RequestContext {
    pub peer: SocketAddr,
    pub header: RequestHeader,
    /// Set by a handler that has no response to carry an error (acks=0 produce): Kafka
    /// closes the connection instead, so the client notices and refreshes its metadata.
    close_reason: std::sync::Mutex<Option<String>>,
}

impl RequestContext {
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }

    /// Asks the connection to close once this request is handled.
    pub fn close_connection(&self, reason: String) {
        *self.close_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    fn take_close_reason(&self) -> Option<String> {
        self.close_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Decodes one request frame, runs its handler, and encodes the response.
pub async fn handle(ctx: &Context, peer: SocketAddr, mut frame: Bytes) -> Outcome {
    if frame.len() < 8 {
        return Outcome::Close(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return Outcome::Close(format!("unknown api key {raw_key}"));
    };
    let Some(support) = supported(key) else {
        return Outcome::Close(format!("unsupported api {key:?} (key {raw_key})"));
    };
    if version < support.min_version || version > support.max_version {
        if key == ApiKey::ApiVersions && version > support.max_version {
            // KIP-511: a client newer than us learns our table from a v0 response.
            return Outcome::Respond(api_versions_fallback(correlation_id));
        }
        return Outcome::Close(format!(
            "unsupported version {version} of {key:?} (supported {}..={})",
            support.min_version, support.max_version
        ));
    }
    let header_version = key.request_header_version(version);
    let header = match decode_guarded(|| RequestHeader::decode(&mut frame, header_version)) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("undecodable {key:?} v{version} header: {e}")),
    };
    let rc = RequestContext {
        peer,
        header,
        close_reason: Default::default(),
    };
    let started = std::time::Instant::now();
    let api = crate::metrics::api_name(key);
    // Counted down on drop, so a request cancelled with its connection leaves no trace.
    let _in_flight = InFlight::new(&ctx.metrics, api);
    let outcome = route(ctx, &rc, key, version, frame).await;
    ctx.metrics.request(api, version, started.elapsed());
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

/// Runs a decoder, turning both errors and (defensively) panics into an error message.
fn decode_guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("decoder panicked".to_string()),
    }
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
                    let handling = $handler($ctx, $rc, $version, req);
                    let answer = if touches_storage($key) {
                        crate::offload::run(async move {
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
        Some(ApiKey::Fetch | ApiKey::JoinGroup | ApiKey::SyncGroup)
    )
}

/// APIs whose handlers call RocksDB without waiting on anything else: they run off the async
/// workers (see `offload`). Fetch and the group APIs wait (long polls, rebalances) and are not
/// here; Fetch offloads its reads itself.
pub fn touches_storage(key: ApiKey) -> bool {
    use ApiKey::*;
    matches!(
        key,
        Produce
            | ListOffsets
            | Metadata
            | CreateTopics
            | DeleteTopics
            | CreatePartitions
            | AlterConfigs
            | IncrementalAlterConfigs
            | InitProducerId
            | AddPartitionsToTxn
            | AddOffsetsToTxn
            | EndTxn
            | TxnOffsetCommit
            | OffsetCommit
            | OffsetFetch
            | OffsetDelete
            | DeleteGroups
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
        DescribeConfigs => DescribeConfigsRequest => api::configs::describe_configs,
        AlterConfigs => AlterConfigsRequest => api::configs::alter_configs,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest => api::configs::incremental_alter_configs,
        InitProducerId => InitProducerIdRequest => api::producer_id::init_producer_id,
        AddPartitionsToTxn => AddPartitionsToTxnRequest => api::transactions::add_partitions_to_txn,
        AddOffsetsToTxn => AddOffsetsToTxnRequest => api::transactions::add_offsets_to_txn,
        EndTxn => EndTxnRequest => api::transactions::end_txn,
        TxnOffsetCommit => TxnOffsetCommitRequest => api::transactions::txn_offset_commit,
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
    )
}

/// Encodes a response with its header, length-prefixed.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    resp: &R,
) -> Outcome {
    match encode_frame(correlation_id, R::header_version(version), version, resp) {
        Ok(b) => Outcome::Respond(b),
        Err(e) => Outcome::Close(format!("failed to encode a v{version} response: {e}")),
    }
}

fn encode_frame<R: Encodable>(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    resp: &R,
) -> anyhow::Result<BytesMut> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version)? + resp.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version)?;
    resp.encode(&mut buf, version)?;
    Ok(buf)
}

/// The ApiVersions table as the response carries it.
pub fn api_versions_table() -> Vec<kafka_protocol::messages::api_versions_response::ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|a| {
            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min_version)
                .with_max_version(a.max_version)
        })
        .collect()
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
