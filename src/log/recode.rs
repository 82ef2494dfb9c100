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
///
/// Only the records section changes codec: its bytes are decompressed and compressed again
/// as they are, never decoded into records, so every record (duplicate header keys
/// included) comes back byte for byte, as Kafka's conversion keeps them.
pub fn recompress(
    b: &ProducedBatch,
    compression: Compression,
) -> Result<ProducedBatch, ResponseError> {
    let from = codec(&b.header);
    if from == compression {
        return Ok(b.clone());
    }
    let section = b
        .bytes
        .get(batch::HEADER_LEN..)
        .ok_or(ResponseError::CorruptMessage)?;
    let raw = decompress(from, section).map_err(|e| {
        tracing::warn!(error = %e, codec = ?from, "cannot decompress a produced batch");
        ResponseError::CorruptMessage
    })?;
    let packed = compress(compression, &raw).map_err(|e| {
        tracing::error!(error = %e, codec = ?compression, "cannot compress a batch");
        ResponseError::UnknownServerError
    })?;
    let bytes = batch::with_records_section(b, codec_bits(compression), &packed);
    batch::split_and_validate(&bytes, usize::MAX)
        .ok()
        .and_then(|mut v| (v.len() == 1).then(|| v.remove(0)))
        .ok_or(ResponseError::UnknownServerError)
}

fn codec_bits(c: Compression) -> i16 {
    match c {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// The records section of a batch, uncompressed.
fn decompress(c: Compression, section: &[u8]) -> anyhow::Result<Bytes> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    // The decompressors read the stored slice in place; only their output is allocated.
    let mut src: &[u8] = section;
    let take = |b: &mut Bytes| Ok(std::mem::take(b));
    match c {
        Compression::None => Ok(Bytes::copy_from_slice(section)),
        Compression::Gzip => Gzip::decompress(&mut src, take),
        Compression::Snappy => Snappy::decompress(&mut src, take),
        Compression::Lz4 => Lz4::decompress(&mut src, take),
        Compression::Zstd => Zstd::decompress(&mut src, take),
    }
}

/// `raw` compressed with `c`, framed as Kafka's clients frame each codec.
fn compress(c: Compression, raw: &[u8]) -> anyhow::Result<BytesMut> {
    use bytes::BufMut;
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.put_slice(raw);
        Ok(())
    };
    match c {
        Compression::None => out.put_slice(raw),
        Compression::Gzip => Gzip::compress(&mut out, fill)?,
        Compression::Snappy => Snappy::compress(&mut out, fill)?,
        Compression::Lz4 => Lz4::compress(&mut out, fill)?,
        Compression::Zstd => Zstd::compress(&mut out, fill)?,
    }
    Ok(out)
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
