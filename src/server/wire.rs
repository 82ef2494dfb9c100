//! The request framing that comes before any handler: key and version against the
//! supported-version table (`apis.rs`), the header, and guarded decoding. It depends on nothing but the protocol crate, so the fuzz
//! targets in `fuzz/` build it without the broker (and without RocksDB).

use std::panic::AssertUnwindSafe;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};

use crate::apis::supported;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

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

/// What the connection does after a request.
pub enum Outcome {
    /// Write this (already length-prefixed) response.
    Respond(BytesMut),
    /// Nothing to write (acks=0 produce).
    NoResponse,
    /// Close the connection; the reason is logged as a warning.
    Close(String),
    /// Write this response, then close (a refused SASL exchange).
    RespondThenClose(BytesMut, String),
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

pub(super) fn encode_frame<R: Encodable>(
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
