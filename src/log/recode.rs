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
///
/// As in Kafka, the converted batch must still fit `max_message_bytes` (MESSAGE_TOO_LARGE);
/// a conversion to `uncompressed` stops inflating as soon as it could not fit.
pub fn recompress(
    b: &ProducedBatch,
    compression: Compression,
    max_inflated: usize,
    max_message_bytes: usize,
) -> Result<ProducedBatch, RecordsError> {
    if codec(&b.header) == compression {
        return Ok(b.clone());
    }
    let too_large = |size| RecordsError::ConvertedTooLarge {
        size,
        max: max_message_bytes,
    };
    let packed = if compression == Compression::None {
        let room = max_message_bytes.saturating_sub(batch::HEADER_LEN);
        match records::convert_section(&b.bytes, compression, max_inflated.min(room)) {
            Err(RecordsError::TooLarge(_)) if room < max_inflated => {
                return Err(too_large(room + batch::HEADER_LEN + 1))
            }
            other => other?,
        }
    } else {
        records::convert_section(&b.bytes, compression, max_inflated)?
    };
    if batch::HEADER_LEN + packed.len() > max_message_bytes {
        return Err(too_large(batch::HEADER_LEN + packed.len()));
    }
    let bytes = batch::with_records_section(b, batch::codec_bits(compression), &packed);
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
