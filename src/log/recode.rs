//! A topic's `compression.type`: produced batches converted to the topic's codec.

use kafka_protocol::records::Compression;

use super::batch::{self, ProducedBatch};
use super::records::{self, RecordsError};

pub use super::records::codec;

/// A produced batch converted to `compression` (a topic's `compression.type`), or the batch
/// itself when it already uses that codec.
///
/// Only the records section changes codec: its bytes are decompressed and compressed again
/// as they are, never decoded into records, so every record (duplicate header keys
/// included) comes back byte for byte, as Kafka's conversion keeps them.
pub fn recompress(
    b: &ProducedBatch,
    compression: Compression,
    max_inflated: usize,
) -> Result<ProducedBatch, RecordsError> {
    if codec(&b.header) == compression {
        return Ok(b.clone());
    }
    let packed = records::convert_section(&b.bytes, compression, max_inflated)?;
    let bytes = batch::with_records_section(b, records::codec_bits(compression), &packed);
    batch::split_and_validate(&bytes, usize::MAX)
        .ok()
        .and_then(|mut v| (v.len() == 1).then(|| v.remove(0)))
        .ok_or_else(|| RecordsError::Invalid("the converted batch does not validate".into()))
}

/// Kafka's `compression.type` value as a codec; None for `producer` (keep the batch's own).
pub fn topic_codec(value: &str) -> Option<Compression> {
    match value {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}
