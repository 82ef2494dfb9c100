//! The request framing that comes before any handler: the supported-version table, the
//! header, and guarded decoding. It depends on nothing but the protocol crate, so the fuzz
//! targets in `fuzz/` build it without the broker (and without RocksDB).

use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

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

/// Runs a decoder, turning both errors and (defensively) panics into an error message.
pub fn decode_guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("decoder panicked".to_string()),
    }
}

/// A request whose key and version this broker handles, with its header decoded.
#[derive(Debug)]
pub struct ParsedRequest {
    pub key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub header: RequestHeader,
    /// The request body, after the header.
    pub body: Bytes,
}

/// What the framing makes of one frame.
#[derive(Debug)]
pub enum Parsed {
    Request(ParsedRequest),
    /// ApiVersions newer than ours: answered in v0 with our table (KIP-511).
    ApiVersionsFallback(i32),
    /// Closed with this reason (a warning), as Kafka closes on an unknown key or version.
    Reject(String),
}

/// Reads the fixed part of a request frame (the bytes after the length prefix): API key,
/// version, correlation id and header.
pub fn parse_request(mut frame: Bytes) -> Parsed {
    if frame.len() < 8 {
        return Parsed::Reject(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return Parsed::Reject(format!("unknown api key {raw_key}"));
    };
    let Some(support) = supported(key) else {
        return Parsed::Reject(format!("unsupported api {key:?} (key {raw_key})"));
    };
    if version < support.min_version || version > support.max_version {
        if key == ApiKey::ApiVersions && version > support.max_version {
            return Parsed::ApiVersionsFallback(correlation_id);
        }
        return Parsed::Reject(format!(
            "unsupported version {version} of {key:?} (supported {}..={})",
            support.min_version, support.max_version
        ));
    }
    let header_version = key.request_header_version(version);
    match decode_guarded(|| RequestHeader::decode(&mut frame, header_version)) {
        Ok(header) => Parsed::Request(ParsedRequest {
            key,
            version,
            correlation_id,
            header,
            body: frame,
        }),
        Err(e) => Parsed::Reject(format!("undecodable {key:?} v{version} header: {e}")),
    }
}
