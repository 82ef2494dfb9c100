//! RecordBatch (magic 2) header parsing and validation.
//!
//! The broker stores producers' batches whole. It reads only the fixed 61-byte header, checks
//! the CRC32C over everything after it, and rewrites the fields that belong to the log
//! (baseOffset, partitionLeaderEpoch), which the CRC does not cover. Looking inside a batch
//! is `records.rs`'s job.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::ResponseError;

/// Size of the v2 RecordBatch header, up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: baseOffset (8) and batchLength (4).
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const MAX_TIMESTAMP: usize = 35;
const RECORDS_COUNT: usize = 57;

const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// The fixed header of one v2 RecordBatch, as read from its bytes.
///
/// It exists so that the produce path, the fetch path and startup recovery read batch fields
/// through one checked parser instead of ad-hoc offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header from the start of `buf`; `None` when fewer than 61 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let mut b = &buf[..HEADER_LEN];
        Some(BatchHeader {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            records_count: b.get_i32(),
        })
    }

    /// Offset of the last record of the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Total size of the batch in bytes, including the log overhead.
    pub fn size_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
}

/// Why a produced record set was refused, mapped onto Kafka's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record set is truncated or its batch length is inconsistent")]
    Truncated,
    #[error("record batch CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error(
        "message format v{0} (magic {0}) is not supported: only v2 record batches are accepted"
    )]
    UnsupportedMagic(i8),
    #[error("record batch of {size} bytes exceeds max.message.bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("record batch is invalid: {0}")]
    Invalid(&'static str),
}

impl BatchError {
    /// The Kafka error code a produce response carries for this problem.
    pub fn error(&self) -> ResponseError {
        match self {
            BatchError::Truncated | BatchError::CrcMismatch { .. } => ResponseError::CorruptMessage,
            BatchError::UnsupportedMagic(_) | BatchError::Invalid(_) => {
                ResponseError::InvalidRecord
            }
            BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        }
    }
}

/// A validated batch from a produce request, still in the producer's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducedBatch {
    pub header: BatchHeader,
    pub bytes: Bytes,
}

/// Splits a produce request's record set into batches and validates each one.
///
/// Every batch must be magic 2, complete, within `max_message_bytes`, with a CRC32C that
/// matches, and with a record count that agrees with its offset range.
pub fn split_and_validate(
    records: &Bytes,
    max_message_bytes: usize,
) -> Result<Vec<ProducedBatch>, BatchError> {
    let mut batches = Vec::new();
    let mut pos = 0usize;
    if records.is_empty() {
        return Err(BatchError::Invalid("empty record set"));
    }
    while pos < records.len() {
        let rest = &records[pos..];
        if rest.len() < MAGIC + 1 {
            return Err(BatchError::Truncated);
        }
        let magic = rest[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let header = BatchHeader::parse(rest).ok_or(BatchError::Truncated)?;
        if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::Truncated);
        }
        let size = header.size_bytes();
        if size > rest.len() {
            return Err(BatchError::Truncated);
        }
        if size > max_message_bytes {
            return Err(BatchError::TooLarge {
                size,
                max: max_message_bytes,
            });
        }
        let computed = crc32c::crc32c(&rest[ATTRIBUTES..size]);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        if header.records_count <= 0 {
            return Err(BatchError::Invalid("record batch has no records"));
        }
        if header.last_offset_delta != header.records_count - 1 {
            return Err(BatchError::Invalid(
                "record count does not match the batch's offset range",
            ));
        }
        if header.is_control() {
            return Err(BatchError::Invalid(
                "clients are not allowed to write control records",
            ));
        }
        batches.push(ProducedBatch {
            header,
            bytes: records.slice(pos..pos + size),
        });
        pos += size;
    }
    Ok(batches)
}

/// Stamps a batch for a `LogAppendTime` topic as Kafka does without recompressing: the
/// timestamp-type attribute is set and the max timestamp becomes `now` (consumers take it as
/// every record's timestamp); the CRC, which covers both, is recomputed.
pub fn set_log_append_time(b: &ProducedBatch, now: i64) -> ProducedBatch {
    let mut out = BytesMut::from(&b.bytes[..]);
    let attributes = (b.header.attributes | ATTR_TIMESTAMP_TYPE).to_be_bytes();
    out[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes);
    out[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
    out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    let mut header = b.header;
    header.attributes |= ATTR_TIMESTAMP_TYPE;
    header.max_timestamp = now;
    header.crc = crc;
    ProducedBatch {
        header,
        bytes: out.freeze(),
    }
}

/// The same batch with its records section replaced (already compressed with the codec that
/// `codec_bits` names): the header is kept field for field except the codec bits of the
/// attributes, the batch length and the CRC, which are recomputed.
pub fn with_records_section(b: &ProducedBatch, codec_bits: i16, records: &[u8]) -> Bytes {
    rebuild_header(
        &b.bytes,
        codec_bits,
        b.header.records_count,
        b.header.max_timestamp,
        records,
    )
}

/// A stored batch rebuilt around `records` (a section compressed with `codec`, holding
/// `count` of its records with their original offset deltas), as Kafka's cleaner rebuilds a
/// v2 batch: base and last offset, producer fields and timestamp type stay; the record
/// count, the max timestamp, the batch length and the CRC change.
pub fn rebuild(
    batch: &[u8],
    codec: kafka_protocol::records::Compression,
    count: i32,
    max_timestamp: i64,
    records: &[u8],
) -> Bytes {
    let bits = codec_bits(codec);
    rebuild_header(batch, bits, count, max_timestamp, records)
}

fn rebuild_header(
    batch: &[u8],
    codec_bits: i16,
    count: i32,
    max_timestamp: i64,
    records: &[u8],
) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(records);
    let attributes = i16::from_be_bytes([out[ATTRIBUTES], out[ATTRIBUTES + 1]]);
    let attributes = ((attributes & !0x07) | (codec_bits & 0x07)).to_be_bytes();
    out[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes);
    out[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    out[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
    out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

/// Copies a produced batch with the log's fields written in: its base offset and the leader
/// epoch. Neither is covered by the CRC, so the producer's checksum stays valid.
pub fn assign_offset(batch: &[u8], base_offset: i64, leader_epoch: i32) -> BytesMut {
    let mut out = BytesMut::from(batch);
    out[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    out[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
    out
}

/// A transaction marker as Kafka writes it: a transactional control batch with one record
/// whose key is (version 0, type: 0 abort, 1 commit) and whose value is (version 0,
/// coordinator epoch). Clients read the type from the key and never surface the record.
pub fn control_batch(
    base_offset: i64,
    leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let mut record = Vec::with_capacity(17);
    // Varints are zigzag-encoded: length 16 -> 0x20, key length 4 -> 0x08, value length
    // 6 -> 0x0c, zero -> 0x00.
    record.extend_from_slice(&[0x20, 0x00, 0x00, 0x00, 0x08]);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&i16::from(commit).to_be_bytes());
    record.push(0x0c);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&coordinator_epoch.to_be_bytes());
    record.push(0x00); // no headers
    let mut out = Vec::with_capacity(HEADER_LEN + record.len());
    out.extend_from_slice(&base_offset.to_be_bytes());
    let batch_length = (HEADER_LEN - LOG_OVERHEAD + record.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&leader_epoch.to_be_bytes());
    out.push(2); // magic
    out.extend_from_slice(&[0; 4]); // crc, below
    out.extend_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&producer_id.to_be_bytes());
    out.extend_from_slice(&producer_epoch.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&1i32.to_be_bytes()); // records
    out.extend_from_slice(&record);
    let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
    out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// One uncompressed batch of plain (non-idempotent) records with the given keys and values,
/// all stamped `timestamp`: what the CLI's producer sends and what the group coordinator
/// appends to `__consumer_offsets`.
pub fn plain_batch(
    records: impl IntoIterator<Item = (Option<Bytes>, Option<Bytes>)>,
    timestamp: i64,
) -> Result<Bytes, ResponseError> {
    records_batch(records, timestamp, None)
}

/// Like [`plain_batch`], or, with `producer` (id, epoch), a transactional batch of that
/// producer (base sequence 0): the group coordinator's record of a transaction's offsets,
/// which the transaction's marker commits or aborts.
pub fn records_batch(
    records: impl IntoIterator<Item = (Option<Bytes>, Option<Bytes>)>,
    timestamp: i64,
    producer: Option<(i64, i16)>,
) -> Result<Bytes, ResponseError> {
    headed_batch(
        records.into_iter().map(|(k, v)| (k, v, Headers::new())),
        timestamp,
        producer,
    )
}

/// A record's headers, in order.
pub type Headers =
    kafka_protocol::indexmap::IndexMap<kafka_protocol::protocol::StrBytes, Option<Bytes>>;

/// Like [`records_batch`], with headers on each record: what the share-group dead-letter
/// queue writes.
pub fn headed_batch(
    records: impl IntoIterator<Item = (Option<Bytes>, Option<Bytes>, Headers)>,
    timestamp: i64,
    producer: Option<(i64, i16)>,
) -> Result<Bytes, ResponseError> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let (producer_id, producer_epoch, first_seq) = match producer {
        Some((id, epoch)) => (id, epoch, 0),
        None => (-1, -1, -1),
    };
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value, headers))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol's encoder starts a new batch unless offset - sequence stays
            // constant; -1 first is the base sequence of a non-idempotent batch.
            sequence: i as i32 + first_seq,
            timestamp,
            key,
            value,
            headers,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|_| ResponseError::UnknownServerError)?;
    Ok(buf.freeze())
}

/// Whether a stored batch's CRC matches its bytes (a follower checks what it copies).
pub fn crc_ok(batch: &[u8], h: &BatchHeader) -> bool {
    batch.len() >= HEADER_LEN.max(h.size_bytes())
        && crc32c::crc32c(&batch[ATTRIBUTES..h.size_bytes()]) == h.crc
}

/// Reads a zigzag varint at `pos`, moving `pos` past it.
fn varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// The marker type of a control batch: Some(true) commit, Some(false) abort; None if the
/// batch is not a readable transaction marker.
pub fn marker_commits(batch: &[u8]) -> Option<bool> {
    let h = BatchHeader::parse(batch)?;
    if !h.is_control() || h.attributes & 0x07 != 0 {
        return None;
    }
    let mut pos = HEADER_LEN;
    varint(batch, &mut pos)?; // record length
    pos += 1; // attributes
    varint(batch, &mut pos)?; // timestamp delta
    varint(batch, &mut pos)?; // offset delta
    let key_len = varint(batch, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = batch.get(pos..pos + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The attribute bits that name `c` (the low three bits of a batch's attributes).
pub fn codec_bits(c: kafka_protocol::records::Compression) -> i16 {
    match c {
        kafka_protocol::records::Compression::None => 0,
        kafka_protocol::records::Compression::Gzip => 1,
        kafka_protocol::records::Compression::Snappy => 2,
        kafka_protocol::records::Compression::Lz4 => 3,
        kafka_protocol::records::Compression::Zstd => 4,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    #[test]
    fn plain_batches_are_one_valid_batch() {
        let b = plain_batch(
            (0..3).map(|i| (Some(Bytes::from(format!("k{i}"))), None)),
            1234,
        )
        .unwrap();
        let batches = split_and_validate(&b, usize::MAX).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].header.last_offset_delta, 2);
        assert_eq!(batches[0].header.producer_id, -1);
        assert_eq!(batches[0].header.max_timestamp, 1234);
    }

    #[test]
    fn control_batches_decode_as_kafka_markers() {
        for commit in [false, true] {
            let bytes = control_batch(42, 0, 7, 3, commit, 5, 1_000);
            let h = BatchHeader::parse(&bytes).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.base_offset, h.producer_id, h.producer_epoch), (42, 7, 3));
            assert_eq!(h.size_bytes(), bytes.len());
            assert_eq!(crc32c::crc32c(&bytes[ATTRIBUTES..]), h.crc);
            assert!(crc_ok(&bytes, &h));
            assert_eq!(marker_commits(&bytes), Some(commit));
            let mut flipped = bytes.clone();
            flipped[40] ^= 1;
            assert!(!crc_ok(&flipped, &h), "a corrupt batch fails its CRC");
            let mut buf = Bytes::from(bytes);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
            let r = &set.records[0];
            assert!(r.control && r.transactional);
            assert_eq!(r.offset, 42);
            let key = r.key.as_ref().unwrap();
            assert_eq!(&key[..], &[0, 0, 0, u8::from(commit)]);
            assert_eq!(&r.value.as_ref().unwrap()[..], &[0, 0, 0, 0, 0, 5]);
        }
    }

    pub(crate) fn encode(n: usize, compression: Compression) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: 1000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn valid_batch_passes_and_offsets_rewrite_keeps_crc() {
        let b = encode(3, Compression::Lz4);
        let batches = split_and_validate(&b, 1 << 20).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].header.records_count, 3);
        let moved = assign_offset(&batches[0].bytes, 42, 0).freeze();
        let again = split_and_validate(&moved, 1 << 20).unwrap();
        assert_eq!(again[0].header.base_offset, 42);
    }

    #[test]
    fn log_append_time_restamps_every_record_and_keeps_the_batch_valid() {
        let b = encode(3, Compression::Gzip);
        let produced = split_and_validate(&b, 1 << 20).unwrap().remove(0);
        let stamped = set_log_append_time(&produced, 1_700_000_000_123);
        let again = split_and_validate(&stamped.bytes, 1 << 20)
            .unwrap()
            .remove(0);
        assert_eq!(
            again.header, stamped.header,
            "header and CRC agree with the bytes"
        );
        assert!(again.header.is_log_append_time());
        let mut bytes = stamped.bytes.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), 3);
        // Clients take the batch's max timestamp as every record's timestamp for
        // LogAppendTime (the crate's decoder reports the type but keeps record deltas).
        for r in &set.records {
            assert_eq!(r.timestamp_type, TimestampType::LogAppend);
        }
        assert_eq!(again.header.max_timestamp, 1_700_000_000_123);
        assert_eq!(again.header.base_timestamp, produced.header.base_timestamp);
        assert_eq!(set.records[2].value.as_deref(), Some(&b"v2"[..]));
    }

    #[test]
    fn corrupt_crc_is_corrupt_message() {
        let mut b = BytesMut::from(&encode(2, Compression::None)[..]);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        let err = split_and_validate(&b.freeze(), 1 << 20).unwrap_err();
        assert_eq!(err.error(), ResponseError::CorruptMessage);
    }

    #[test]
    fn truncated_and_oversized() {
        let b = encode(2, Compression::None);
        let cut = b.slice(..b.len() - 3);
        assert_eq!(
            split_and_validate(&cut, 1 << 20),
            Err(BatchError::Truncated)
        );
        let err = split_and_validate(&b, 10).unwrap_err();
        assert_eq!(err.error(), ResponseError::MessageTooLarge);
        let mut old = BytesMut::from(&b[..]);
        old[MAGIC] = 1;
        assert_eq!(
            split_and_validate(&old.freeze(), 1 << 20),
            Err(BatchError::UnsupportedMagic(1))
        );
    }
}
