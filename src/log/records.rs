//! The records inside a v2 batch, walked one at a time with bounded memory.
//!
//! A compressed batch of a megabyte can inflate to gigabytes (a "decompression bomb"), so
//! the broker never inflates a whole batch to look at it. Its records section is streamed
//! through the codec's decoder, one record is held at a time, and the inflated total is
//! capped: past the cap the batch is refused with INVALID_RECORD before anything more is
//! inflated or allocated. The zstd window, the one allocation a frame header dictates, is
//! capped the same way.
//!
//! Every place that looks inside a batch goes through here: produce validation (Kafka's
//! `LogValidator` checks: record structure, sizes, count, key of a compacted topic), a
//! topic's `compression.type` conversion, ListOffsets by timestamp and the cleaner.

use std::io::{self, BufRead, BufReader, Read, Write};

use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

use super::batch::{BatchHeader, HEADER_LEN};

/// Default cap on what one batch's records may inflate to (`--max-uncompressed-batch-bytes`).
pub const DEFAULT_MAX_UNCOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// The cap for reading stored batches, which were checked against the produce cap when they
/// were written; it only keeps a damaged one from running away.
pub const STORED_BATCH_CAP: usize = 1 << 31;

/// Why the records of a batch cannot be accepted, mapped onto Kafka's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The compressed bytes do not decode with the batch's codec.
    #[error("cannot decompress the records section: {0}")]
    Decompress(String),
    /// The records would inflate beyond the cap.
    #[error("the records inflate beyond {0} bytes")]
    TooLarge(usize),
    /// A record or the record count is malformed (Kafka's InvalidRecordException).
    #[error("{0}")]
    Invalid(String),
    /// Converted to the topic's codec, the batch is larger than `max.message.bytes`.
    #[error("the batch is {size} bytes after conversion to the topic's compression.type, more than max.message.bytes ({max})")]
    ConvertedTooLarge { size: usize, max: usize },
}

impl RecordsError {
    /// The error code a produce response carries. INVALID_RECORD is not retriable, so a
    /// producer stops resending a batch that can never be accepted; CORRUPT_MESSAGE is what
    /// Kafka answers for bytes damaged on the way.
    pub fn error(&self) -> ResponseError {
        match self {
            RecordsError::Decompress(_) => ResponseError::CorruptMessage,
            RecordsError::TooLarge(_) | RecordsError::Invalid(_) => ResponseError::InvalidRecord,
            RecordsError::ConvertedTooLarge { .. } => ResponseError::MessageTooLarge,
        }
    }
}

/// One record as the walk sees it: fields decoded, key and value borrowed.
#[derive(Debug)]
pub struct RecordView<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The whole record as stored, length prefix included, so it can be copied verbatim.
    pub raw: &'a [u8],
    /// The record's length as its prefix gives it (the body, without the prefix): what
    /// Kafka's `max.decompressed.message.bytes` bounds.
    pub size: usize,
}

/// How strictly a walk checks the records against the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A batch from a producer: offset deltas must run 0, 1, 2, ... so that every record
    /// gets the offset consumers expect; a gap or a step back would make clients skip it.
    Produced,
    /// A stored batch, possibly rewritten by the cleaner (which keeps the original offsets,
    /// so deltas may have gaps): deltas must only increase and stay within the header's range.
    Stored,
}

/// How much of each record a walk holds in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The whole record: `key`, `value` and `raw` are its bytes (the cleaner needs them).
    Record,
    /// Nothing but the fields: key and value bytes are skipped as they stream past, so a
    /// record of any size costs no memory. `key` and `value` are then empty slices that only
    /// say whether the record has one, and `raw` is empty.
    Fields,
}

/// The codec named by a batch's attributes.
pub fn codec(h: &BatchHeader) -> Compression {
    match h.attributes & 0x07 {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Calls `f` for every record of `batch` in order, until it returns false.
///
/// Holds one record at a time; the inflated records section may not exceed `max_inflated`
/// bytes. The record count must match the header's, with no bytes left over.
pub fn walk(
    batch: &[u8],
    max_inflated: usize,
    check: Check,
    hold: Hold,
    mut f: impl FnMut(&RecordView) -> bool,
) -> Result<(), RecordsError> {
    let h = BatchHeader::parse(batch)
        .ok_or_else(|| RecordsError::Invalid("record batch header is truncated".into()))?;
    let section = batch
        .get(HEADER_LEN..h.size_bytes().min(batch.len()))
        .unwrap_or_default();
    if codec(&h) == Compression::None {
        // Already in memory: records are parsed in place, nothing is copied or streamed.
        return walk_plain(&h, section, check, &mut f);
    }
    let mut src = Capped::new(inflate(codec(&h), section, max_inflated)?, max_inflated);
    let result = walk_section(&h, &mut src, max_inflated, check, hold, &mut f);
    // A cap hit surfaces as a read error inside the parser; report it as what it is.
    if src.exceeded {
        return Err(RecordsError::TooLarge(max_inflated));
    }
    result
}

/// `walk` over an uncompressed records section, parsed where it lies.
fn walk_plain(
    h: &BatchHeader,
    section: &[u8],
    check: Check,
    f: &mut impl FnMut(&RecordView) -> bool,
) -> Result<(), RecordsError> {
    let mut pos = 0usize;
    let mut previous: i64 = -1;
    for index in 0..h.records_count.max(0) {
        if pos == section.len() {
            return Err(RecordsError::Invalid(format!(
                "Incorrect declared batch size: {} records declared, {index} found",
                h.records_count
            )));
        }
        let mut c = Cursor { buf: section, pos };
        let len = c
            .varint()
            .filter(|l| *l >= 0)
            .ok_or_else(|| RecordsError::Invalid("Found invalid record structure".into()))?;
        let prefix = c.pos - pos;
        let end = c
            .pos
            .checked_add(len as usize)
            .filter(|e| *e <= section.len())
            .ok_or_else(|| {
                RecordsError::Invalid(format!(
                    "Invalid record size: expected {len} bytes in record payload, the batch has {}",
                    section.len() - c.pos
                ))
            })?;
        let view = parse_record(&section[pos..end], prefix)?;
        check_order(h, check, index, &mut previous, view.offset_delta)?;
        pos = end;
        if !f(&view) {
            return Ok(());
        }
    }
    if pos == section.len() {
        Ok(())
    } else {
        Err(RecordsError::Invalid(
            "Incorrect declared batch size, records still remaining in the batch".into(),
        ))
    }
}

/// The offset-delta rule of `check` for the record at `index`.
fn check_order(
    h: &BatchHeader,
    check: Check,
    index: i32,
    previous: &mut i64,
    offset_delta: i32,
) -> Result<(), RecordsError> {
    let delta = i64::from(offset_delta);
    let in_order = match check {
        Check::Produced => delta == i64::from(index),
        Check::Stored => delta > *previous && delta <= i64::from(h.last_offset_delta),
    };
    if !in_order {
        return Err(RecordsError::Invalid(format!(
            "Inner record {index} has offset delta {delta}; the batch's records must have \
             offset deltas 0 to {}, each one more than the last",
            h.last_offset_delta
        )));
    }
    *previous = delta;
    Ok(())
}

fn walk_section(
    h: &BatchHeader,
    src: &mut impl Read,
    max_inflated: usize,
    check: Check,
    hold: Hold,
    f: &mut impl FnMut(&RecordView) -> bool,
) -> Result<(), RecordsError> {
    let mut r = BufReader::with_capacity(16 * 1024, src);
    let mut scratch = Vec::new();
    let mut previous: i64 = -1;
    for index in 0..h.records_count.max(0) {
        let len = read_varint(&mut r)
            .map_err(|e| io_error(e, "Found invalid record structure", max_inflated))?
            .ok_or_else(|| {
                RecordsError::Invalid(format!(
                    "Incorrect declared batch size: {} records declared, {index} found",
                    h.records_count
                ))
            })?;
        if len < 0 {
            return Err(RecordsError::Invalid(format!("Invalid record size {len}")));
        }
        // A record past the cap is refused before a byte of it is inflated; below it, the
        // buffer grows only as bytes actually arrive, never to what the length claims.
        let len = len as usize;
        if len > max_inflated {
            return Err(RecordsError::TooLarge(max_inflated));
        }
        let view = match hold {
            Hold::Record => {
                let prefix = varint_len(len as i32);
                scratch.clear();
                write_varint(&mut scratch, len as i32);
                let got = (&mut r)
                    .take(len as u64)
                    .read_to_end(&mut scratch)
                    .map_err(|e| io_error(e, "Found invalid record structure", max_inflated))?;
                if got != len {
                    return Err(RecordsError::Invalid(format!(
                        "Invalid record size: expected {len} bytes in record payload, got {got}"
                    )));
                }
                parse_record(&scratch, prefix)?
            }
            Hold::Fields => stream_record(&mut r, len, max_inflated)?,
        };
        check_order(h, check, index, &mut previous, view.offset_delta)?;
        if !f(&view) {
            return Ok(());
        }
    }
    if r.fill_buf()
        .map_err(|e| io_error(e, "Found invalid record structure", max_inflated))?
        .is_empty()
    {
        Ok(())
    } else {
        Err(RecordsError::Invalid(
            "Incorrect declared batch size, records still remaining in the batch".into(),
        ))
    }
}

/// Reads one record's fields from the stream without holding its key, value or headers,
/// with the same checks as `parse_record`.
fn stream_record(
    r: &mut impl BufRead,
    len: usize,
    max_inflated: usize,
) -> Result<RecordView<'static>, RecordsError> {
    let invalid = || RecordsError::Invalid("Found invalid record structure".into());
    let mut body = CountingTake {
        inner: r,
        left: len,
    };
    let io = |e: io::Error| io_error(e, "Found invalid record structure", max_inflated);
    let mut one = [0u8; 1];
    body.read_exact(&mut one).map_err(io)?;
    let attributes = one[0] as i8;
    let timestamp_delta = read_varlong(&mut body).map_err(io)?.ok_or_else(invalid)?;
    let offset_delta = i32::try_from(read_varlong(&mut body).map_err(io)?.ok_or_else(invalid)?)
        .map_err(|_| invalid())?;
    let has_key = skip_nullable(&mut body).map_err(io)?;
    let has_value = skip_nullable(&mut body).map_err(io)?;
    let headers = read_varlong(&mut body).map_err(io)?.ok_or_else(invalid)?;
    if headers < 0 || headers > i64::from(i32::MAX) {
        return Err(RecordsError::Invalid(format!(
            "Found invalid number of record headers {headers}"
        )));
    }
    for _ in 0..headers {
        let klen = read_varlong(&mut body).map_err(io)?.ok_or_else(invalid)?;
        if klen < 0 {
            return Err(RecordsError::Invalid(format!(
                "Invalid negative header key size {klen}"
            )));
        }
        skip(&mut body, klen as u64).map_err(io)?;
        skip_nullable(&mut body).map_err(io)?;
    }
    if body.left != 0 {
        return Err(RecordsError::Invalid(format!(
            "Invalid record size: expected to read {len} bytes in record payload, but instead read {}",
            len - body.left
        )));
    }
    const PRESENT: &[u8] = &[];
    Ok(RecordView {
        attributes,
        timestamp_delta,
        offset_delta,
        key: has_key.then_some(PRESENT),
        value: has_value.then_some(PRESENT),
        raw: PRESENT,
        size: len,
    })
}

/// A record body: reads stop at its length, which a field running past is an error of.
struct CountingTake<'r, R> {
    inner: &'r mut R,
    left: usize,
}

impl<R: Read> Read for CountingTake<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.left);
        if want == 0 {
            return if buf.is_empty() {
                Ok(0)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        Ok(n)
    }
}

fn read_varlong(r: &mut impl Read) -> io::Result<Option<i64>> {
    let mut u = 0u64;
    for shift in (0..70).step_by(7) {
        let mut b = [0u8];
        r.read_exact(&mut b)?;
        u |= u64::from(b[0] & 0x7f)
            .checked_shl(shift)
            .ok_or(io::ErrorKind::InvalidData)?;
        if b[0] & 0x80 == 0 {
            return Ok(Some((u >> 1) as i64 ^ -((u & 1) as i64)));
        }
    }
    Ok(None)
}

fn skip(r: &mut impl Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied != n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Skips a varint-length byte field; whether it was present (non-negative length).
fn skip_nullable(r: &mut impl Read) -> io::Result<bool> {
    let len = read_varlong(r)?.ok_or(io::ErrorKind::InvalidData)?;
    if len < 0 {
        return Ok(false);
    }
    skip(r, len as u64)?;
    Ok(true)
}

/// Decodes one record from `buf` (prefix bytes of length, then the body), as Kafka's
/// `DefaultRecord.readFrom` does: negative key or value lengths mean null, a negative header
/// count or header key length is invalid, and the body must be used up exactly.
fn parse_record(buf: &[u8], prefix: usize) -> Result<RecordView<'_>, RecordsError> {
    let invalid = || RecordsError::Invalid("Found invalid record structure".into());
    let mut c = Cursor { buf, pos: prefix };
    let attributes = c.byte().ok_or_else(invalid)? as i8;
    let timestamp_delta = c.varlong().ok_or_else(invalid)?;
    let offset_delta = c.varint().ok_or_else(invalid)?;
    let key = c.nullable_bytes().ok_or_else(invalid)?;
    let value = c.nullable_bytes().ok_or_else(invalid)?;
    let headers = c.varint().ok_or_else(invalid)?;
    if headers < 0 {
        return Err(RecordsError::Invalid(format!(
            "Found invalid number of record headers {headers}"
        )));
    }
    for _ in 0..headers {
        let klen = c.varint().ok_or_else(invalid)?;
        if klen < 0 {
            return Err(RecordsError::Invalid(format!(
                "Invalid negative header key size {klen}"
            )));
        }
        c.take(klen as usize).ok_or_else(invalid)?;
        c.nullable_bytes().ok_or_else(invalid)?;
    }
    if c.pos != buf.len() {
        return Err(RecordsError::Invalid(format!(
            "Invalid record size: expected to read {} bytes in record payload, but instead read {}",
            buf.len() - prefix,
            c.pos - prefix
        )));
    }
    Ok(RecordView {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        raw: buf,
        size: buf.len() - prefix,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn uvarlong(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn varlong(&mut self) -> Option<i64> {
        let u = self.uvarlong()?;
        Some((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    fn varint(&mut self) -> Option<i32> {
        i32::try_from(self.varlong()?).ok()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        if len < 0 {
            return Some(None);
        }
        self.take(len as usize).map(Some)
    }
}

/// A zigzag varint from a stream; None at a clean end of stream before its first byte.
fn read_varint(r: &mut impl BufRead) -> io::Result<Option<i32>> {
    let mut u = 0u64;
    for (i, shift) in (0..35).step_by(7).enumerate() {
        let mut b = [0u8];
        if r.read(&mut b)? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        u |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            let v = (u >> 1) as i64 ^ -((u & 1) as i64);
            return i32::try_from(v)
                .map(Some)
                .map_err(|_| io::ErrorKind::InvalidData.into());
        }
    }
    Err(io::ErrorKind::InvalidData.into())
}

fn write_varint(out: &mut Vec<u8>, v: i32) {
    let mut u = ((v << 1) ^ (v >> 31)) as u32;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn varint_len(v: i32) -> usize {
    let mut u = ((v << 1) ^ (v >> 31)) as u32;
    let mut n = 1;
    while u >= 0x80 {
        n += 1;
        u >>= 7;
    }
    n
}

/// The error a reader returns when the inflated bytes would pass the cap.
#[derive(Debug)]
struct CapExceeded;

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("uncompressed batch cap exceeded")
    }
}

impl std::error::Error for CapExceeded {}

fn cap_exceeded() -> io::Error {
    io::Error::other(CapExceeded)
}

fn is_cap_exceeded(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<CapExceeded>())
}

fn io_error(e: io::Error, structure: &str, cap: usize) -> RecordsError {
    if is_cap_exceeded(&e) {
        return RecordsError::TooLarge(cap);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => {
            RecordsError::Invalid(structure.into())
        }
        _ => RecordsError::Decompress(e.to_string()),
    }
}

/// A reader that fails once more than `left` bytes have come through it, and remembers why.
struct Capped<R> {
    inner: R,
    left: usize,
    exceeded: bool,
}

impl<R: Read> Capped<R> {
    fn new(inner: R, cap: usize) -> Capped<R> {
        Capped {
            inner,
            left: cap,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Ask for one byte more than allowed, to tell "exactly at the cap" from "past it".
        let want = buf.len().min(self.left.saturating_add(1));
        let n = self.inner.read(&mut buf[..want])?;
        if n > self.left {
            self.exceeded = true;
            return Err(cap_exceeded());
        }
        self.left -= n;
        Ok(n)
    }
}

/// A streaming decoder of `section` for `codec`.
fn inflate<'a>(
    codec: Compression,
    section: &'a [u8],
    max_inflated: usize,
) -> Result<Box<dyn Read + 'a>, RecordsError> {
    Ok(match codec {
        Compression::None => Box::new(section),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(section)),
        Compression::Snappy => Box::new(XerialSnappy::new(section, max_inflated)),
        Compression::Lz4 => Box::new(
            lz4::Decoder::new(section).map_err(|e| RecordsError::Decompress(e.to_string()))?,
        ),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(section)
                .map_err(|e| RecordsError::Decompress(e.to_string()))?;
            // The window is allocated as the frame header says. Kafka's Java producer writes
            // frames without a content size and a window of up to 2^23 (levels up to 19), so
            // 2^24 is always allowed; beyond that the cap decides, up to zstd's own 2^27.
            let cap_log = usize::BITS - max_inflated.next_power_of_two().leading_zeros() - 1;
            d.window_log_max(cap_log.clamp(24, 27))
                .map_err(|e| RecordsError::Decompress(e.to_string()))?;
            Box::new(d)
        }
    })
}

/// Kafka's snappy framing (xerial's `SnappyOutputStream`: a magic header, then blocks of
/// u32 length ‖ raw snappy block), or one raw snappy block when the magic is absent, as
/// the Java client reads it. One block is inflated at a time, and a block whose declared
/// size is past the cap is refused before its buffer is allocated.
struct XerialSnappy<'a> {
    src: &'a [u8],
    out: Vec<u8>,
    pos: usize,
    cap: usize,
    raw: bool,
}

const SNAPPY_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

impl<'a> XerialSnappy<'a> {
    fn new(src: &'a [u8], cap: usize) -> XerialSnappy<'a> {
        let framed = src.starts_with(SNAPPY_MAGIC);
        XerialSnappy {
            src: if framed {
                &src[SNAPPY_MAGIC.len()..]
            } else {
                src
            },
            out: Vec::new(),
            pos: 0,
            cap,
            raw: !framed,
        }
    }

    fn next_block(&mut self) -> io::Result<bool> {
        if self.src.is_empty() {
            return Ok(false);
        }
        let block = if self.raw {
            std::mem::take(&mut self.src)
        } else {
            let len = self
                .src
                .get(..4)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap_or_default()) as usize)
                .ok_or_else(|| io::Error::other("truncated snappy block length"))?;
            let block = self
                .src
                .get(4..4usize.saturating_add(len))
                .ok_or_else(|| io::Error::other("truncated snappy block"))?;
            self.src = &self.src[4 + len..];
            block
        };
        let n = snap::raw::decompress_len(block).map_err(io::Error::other)?;
        if n > self.cap {
            return Err(cap_exceeded());
        }
        // Snappy inflates at most 64 bytes per 3-byte copy tag: a block that declares more
        // than that ratio allows is corrupt, and is refused before its buffer is allocated.
        if n > block.len().saturating_mul(22).saturating_add(64) {
            // Corrupt compressed bytes (CORRUPT_MESSAGE), not a malformed record.
            return Err(io::Error::other(format!(
                "snappy block of {} bytes declares {n} bytes",
                block.len()
            )));
        }
        self.out.clear();
        self.out.resize(n, 0);
        let got = snap::raw::Decoder::new()
            .decompress(block, &mut self.out)
            .map_err(io::Error::other)?;
        self.out.truncate(got);
        self.pos = 0;
        Ok(true)
    }
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `records` (an uncompressed records section) compressed with `codec`, framed as Kafka's
/// clients frame each codec.
pub fn compress(codec: Compression, records: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match codec {
        Compression::None => {
            io::copy(records, &mut out)?;
        }
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            io::copy(records, &mut e)?;
            out = e.finish()?;
        }
        Compression::Snappy => {
            out.extend_from_slice(SNAPPY_MAGIC);
            let mut block = vec![0u8; 32 * 1024];
            let mut enc = snap::raw::Encoder::new();
            loop {
                let n = read_full(records, &mut block)?;
                if n == 0 {
                    break;
                }
                let packed = enc.compress_vec(&block[..n]).map_err(io::Error::other)?;
                out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
                out.extend_from_slice(&packed);
            }
        }
        Compression::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(4)
                .block_mode(lz4::BlockMode::Independent)
                .build(out)?;
            io::copy(records, &mut e)?;
            let (o, r) = e.finish();
            r?;
            out = o;
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(out, 3)?;
            io::copy(records, &mut e)?;
            out = e.finish()?;
        }
    }
    out.flush()?;
    Ok(out)
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The records section of `batch` converted to `to`, streamed from one codec to the other
/// so that only the output is held, and capped at `max_inflated` uncompressed bytes.
pub fn convert_section(
    batch: &[u8],
    to: Compression,
    max_inflated: usize,
) -> Result<Vec<u8>, RecordsError> {
    let h = BatchHeader::parse(batch)
        .ok_or_else(|| RecordsError::Invalid("record batch header is truncated".into()))?;
    let section = batch
        .get(HEADER_LEN..h.size_bytes().min(batch.len()))
        .unwrap_or_default();
    let mut src = Capped::new(inflate(codec(&h), section, max_inflated)?, max_inflated);
    compress(to, &mut src).map_err(|e| {
        if src.exceeded || is_cap_exceeded(&e) {
            RecordsError::TooLarge(max_inflated)
        } else {
            RecordsError::Decompress(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::encode;

    fn count(batch: &[u8], cap: usize) -> Result<usize, RecordsError> {
        let mut n = 0;
        walk(batch, cap, Check::Produced, Hold::Fields, |_| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    #[test]
    fn every_codec_walks_its_records() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = encode(50, c);
            assert_eq!(count(&b, 1 << 20), Ok(50), "{c:?}");
            // Far too small a cap refuses a compressed batch instead of inflating it; an
            // uncompressed one is already in memory, bounded by max.message.bytes.
            if c != Compression::None {
                assert_eq!(count(&b, 64), Err(RecordsError::TooLarge(64)), "{c:?}");
            }
        }
    }

    #[test]
    fn holding_fields_only_sees_what_holding_records_sees() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let b = encode(20, c);
            let mut seen = [Vec::new(), Vec::new()];
            for (i, hold) in [Hold::Record, Hold::Fields].into_iter().enumerate() {
                walk(&b, 1 << 20, Check::Produced, hold, |r| {
                    seen[i].push((
                        r.attributes,
                        r.timestamp_delta,
                        r.offset_delta,
                        r.key.is_some(),
                        r.value.is_some(),
                    ));
                    true
                })
                .unwrap();
            }
            assert_eq!(seen[0], seen[1], "{c:?}");
            assert_eq!(seen[0].len(), 20);
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, -1, 63, -64, 64, 300, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            let mut c = Cursor { buf: &out, pos: 0 };
            assert_eq!(c.varint(), Some(v));
            let mut r = BufReader::new(&out[..]);
            assert_eq!(read_varint(&mut r).unwrap(), Some(v));
        }
    }
}
