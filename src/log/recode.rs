//! Decoding and re-encoding record batches, for the two places the broker must look inside
//! them: compaction (dropping superseded records) and a topic's `compression.type`.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use kafka_protocol::ResponseError;

use super::batch::{self, BatchHeader, ProducedBatch};

pub fn decode(bytes: &[u8]) -> Result<Vec<Record>, ResponseError> {
    let mut buf = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode(&mut buf)
        .map(|set| set.records)
        .map_err(|_| ResponseError::CorruptMessage)
}

/// Whether every record of a produced batch has a key (compacted topics require one).
pub fn all_records_keyed(bytes: &[u8]) -> Result<bool, ResponseError> {
    Ok(decode(bytes)?.iter().all(|r| r.key.is_some()))
}

pub fn codec(h: &BatchHeader) -> Compression {
    match h.attributes & 0x07 {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Re-encodes records of a batch (all, or the survivors of a compaction) as one batch with
/// `compression`, keeping the producer fields, leader epoch, timestamp type and each
/// record's offset.
pub fn reencode(
    h: &BatchHeader,
    survivors: &[Record],
    compression: Compression,
) -> Result<Bytes, ResponseError> {
    let first = survivors[0].offset;
    // The encoder keeps records in one batch while offset - sequence is constant, and
    // derives the base sequence from the first record: give each record the sequence its
    // offset had in the original batch (-1-based for non-idempotent batches).
    let records: Vec<Record> = survivors
        .iter()
        .map(|r| Record {
            sequence: if h.producer_id >= 0 {
                h.base_sequence
                    .wrapping_add((r.offset - h.base_offset) as i32)
            } else {
                (r.offset - first) as i32 - 1
            },
            partition_leader_epoch: h.partition_leader_epoch,
            ..r.clone()
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| {
        tracing::error!(error = %e, "compaction could not re-encode a batch");
        ResponseError::UnknownServerError
    })?;
    let out = out.freeze();
    if h.is_log_append_time() {
        // The encoder writes CreateTime; restore the broker's stamp.
        let produced = batch::split_and_validate(&out, usize::MAX)
            .map_err(|_| ResponseError::UnknownServerError)?
            .remove(0);
        return Ok(batch::set_log_append_time(&produced, h.max_timestamp).bytes);
    }
    Ok(out)
}

/// A produced batch converted to `compression` (a topic's `compression.type`), or the batch
/// itself when it already uses that codec.
pub fn recompress(
    b: &ProducedBatch,
    compression: Compression,
) -> Result<ProducedBatch, ResponseError> {
    if codec(&b.header) == compression {
        return Ok(b.clone());
    }
    let records = decode(&b.bytes)?;
    let bytes = reencode(&b.header, &records, compression)?;
    batch::split_and_validate(&bytes, usize::MAX)
        .ok()
        .and_then(|mut v| (v.len() == 1).then(|| v.remove(0)))
        .ok_or(ResponseError::UnknownServerError)
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
