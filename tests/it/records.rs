//! The records inside produced batches: validated as Kafka's LogValidator does, walked with
//! bounded memory (decompression bombs are refused, not inflated), and kept byte for byte
//! when the cleaner rebuilds a batch.

use crate::common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::wire::{create_with_configs, fetch, list_offset, produce};
use common::*;
use kafka_protocol::ResponseError;

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn nullable(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => varint(out, -1),
        Some(b) => {
            varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// One v2 record, length prefix included; headers may repeat a key.
fn raw_record(
    offset_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&[u8], &[u8])],
) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    varint(&mut body, 0); // timestamp delta
    varint(&mut body, offset_delta);
    nullable(&mut body, key);
    nullable(&mut body, value);
    varint(&mut body, headers.len() as i64);
    for (k, v) in headers {
        nullable(&mut body, Some(k));
        nullable(&mut body, Some(v));
    }
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// A v2 batch around a records section already compressed with `codec` (attribute bits).
fn raw_batch(section: &[u8], codec: i16, count: i32) -> Bytes {
    let ts = now_ms();
    let mut b = BytesMut::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.extend_from_slice(&[2]); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&codec.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

fn gunzip(packed: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(packed), &mut out).unwrap();
    out
}

fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

/// Measured before the cap: one 1 MB gzip batch holding a record of 1 GiB of zeros took the
/// broker to 1 GB RSS on a compacted topic and 2 GB on a `compression.type=zstd` one, and
/// was stored. Now it is refused with INVALID_RECORD without being inflated, on every kind of
/// topic, and the broker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_refused_without_inflating_it() {
    // A single record whose value is 1 GiB of zeros, gzipped as it is written.
    const N: usize = 1 << 30;
    let mut prefix = vec![0u8];
    varint(&mut prefix, 0);
    varint(&mut prefix, 0);
    varint(&mut prefix, -1);
    varint(&mut prefix, N as i64);
    let body_len = prefix.len() + N + 1;
    let mut head = Vec::new();
    varint(&mut head, body_len as i64);
    head.extend_from_slice(&prefix);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&head).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..N / zeros.len() {
        e.write_all(&zeros).unwrap();
    }
    e.write_all(&[0]).unwrap(); // no headers
    let bomb = raw_batch(&e.finish().unwrap(), 1, 1);
    assert!(bomb.len() < 1_048_588, "the bomb fits in max.message.bytes");

    // Many small records that together inflate past the cap.
    let mut many = Vec::new();
    let value = vec![0u8; 60 << 10];
    for i in 0..1200 {
        many.extend_from_slice(&raw_record(i, Some(b"k"), Some(&value), &[]));
    }
    let swarm = raw_batch(&gzip(&many), 1, 1200);

    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for (topic, configs) in [
        ("plain", vec![]),
        ("compacted", vec![("cleanup.policy", "compact")]),
        ("zstd", vec![("compression.type", "zstd")]),
        ("uncompressed", vec![("compression.type", "uncompressed")]),
    ] {
        let req = create_with_configs(topic, &configs);
        assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
        for (what, b) in [("bomb", &bomb), ("swarm", &swarm)] {
            let (err, _) = produce(&mut c, topic, 0, b.clone(), 9).await;
            assert_eq!(
                err,
                ResponseError::InvalidRecord.code(),
                "{what} on {topic}"
            );
        }
        assert_eq!(
            list_offset(&mut c, topic, 0, -1, 7).await.1,
            0,
            "{topic}: nothing stored"
        );
        // The connection and the broker serve on.
        let ok = raw_batch(&raw_record(0, Some(b"k"), Some(b"v"), &[]), 0, 1);
        assert_eq!(produce(&mut c, topic, 0, ok, 9).await, (0, 0), "{topic}");
    }
    let peak = peak_rss_mb();
    assert!(peak < 600, "peak RSS {peak} MB: the bomb was inflated");
    broker.shutdown().await;
}

/// Kafka's validator reads every record: a record count or sizes that disagree with the
/// bytes, or a negative header count, get INVALID_RECORD. Offset deltas must run 0, 1, 2, ...:
/// a batch with deltas 0,1,2,-64,4 used to be stored as it was, and consumers then silently
/// skipped its fourth record; it is refused now, compressed or not.
#[tokio::test]
async fn malformed_inner_records_get_invalid_record_and_nothing_is_stored() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let req = create_with_configs("v", &[]);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
    let rec = |d| raw_record(d, Some(b"k"), Some(b"v"), &[]);
    let deltas: Vec<u8> = [0, 1, 2, -64, 4].iter().flat_map(|&d| rec(d)).collect();
    let two: Vec<u8> = [0, 1].iter().flat_map(|&d| rec(d)).collect();
    let mut wrong_size = rec(0);
    wrong_size[0] += 2; // the length says two bytes more than the record has...
    wrong_size.extend_from_slice(&[0, 0]); // ...which follow it, unparsed
    let mut bad_headers = rec(0);
    let last = bad_headers.len() - 1;
    bad_headers[last] = 1; // header count -1 (zigzag)
    let cases: Vec<(&str, Bytes)> = vec![
        ("offset deltas 0,1,2,-64,4", raw_batch(&deltas, 0, 5)),
        (
            "offset deltas 0,1,2,-64,4, gzip",
            raw_batch(&gzip(&deltas), 1, 5),
        ),
        ("count 3, two records", raw_batch(&two, 0, 3)),
        ("count 1, two records", {
            let b = raw_batch(&two, 0, 2);
            // Say one record: the second is left over.
            let mut m = BytesMut::from(&b[..]);
            m[57..61].copy_from_slice(&1i32.to_be_bytes());
            m[23..27].copy_from_slice(&0i32.to_be_bytes());
            let crc = crc32c::crc32c(&m[21..]);
            m[17..21].copy_from_slice(&crc.to_be_bytes());
            m.freeze()
        }),
        (
            "record length past its fields",
            raw_batch(&wrong_size, 0, 1),
        ),
        ("negative header count", raw_batch(&bad_headers, 0, 1)),
    ];
    for (what, b) in cases {
        let (err, _) = produce(&mut c, "v", 0, b, 9).await;
        assert_eq!(err, ResponseError::InvalidRecord.code(), "{what}");
    }
    assert_eq!(
        list_offset(&mut c, "v", 0, -1, 7).await.1,
        0,
        "nothing stored"
    );
    let good: Vec<u8> = [0, 1, 2, 3, 4].iter().flat_map(|&d| rec(d)).collect();
    assert_eq!(
        produce(&mut c, "v", 0, raw_batch(&good, 0, 5), 9).await,
        (0, 0)
    );
    broker.shutdown().await;
}

/// The cleaner rebuilds a batch as Kafka's does: same base and last offset, and the surviving
/// records copied byte for byte, so a record whose headers repeat a key keeps them all (the
/// old re-encoding through the protocol crate's record type kept only the last).
#[tokio::test]
async fn compaction_keeps_surviving_records_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config_in(dir.path());
    config.log_cleaner_backoff_ms = 50;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    let req = create_with_configs("cc", &[("cleanup.policy", "compact")]);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
    let dup: &[(&[u8], &[u8])] = &[(b"h", b"one"), (b"h", b"two"), (b"x", b"")];
    let r0 = raw_record(0, Some(b"a"), Some(b"old"), dup);
    let r1 = raw_record(1, Some(b"b"), Some(b"keep"), dup);
    let r2 = raw_record(2, Some(b"a"), Some(b"new"), dup);
    let mut first = r0.clone();
    first.extend_from_slice(&r1);
    first.extend_from_slice(&r2);
    assert_eq!(
        produce(&mut c, "cc", 0, raw_batch(&gzip(&first), 1, 3), 9).await,
        (0, 0)
    );
    // A second batch makes the first one cleanable (the active end is not a boundary here,
    // but the dirty ratio needs bytes written since the last cleaning).
    let r3 = raw_record(0, Some(b"c"), Some(b"other"), &[]);
    assert_eq!(
        produce(&mut c, "cc", 0, raw_batch(&r3, 0, 1), 9).await,
        (0, 3)
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let raw = fetch(&mut c, "cc", 0, 0, 12).await.records.unwrap();
        let count = i32::from_be_bytes(raw[57..61].try_into().unwrap());
        if count == 2 {
            break raw;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner never rebuilt the batch"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let base = i64::from_be_bytes(stored[0..8].try_into().unwrap());
    let last_delta = i32::from_be_bytes(stored[23..27].try_into().unwrap());
    assert_eq!((base, last_delta), (0, 2), "base and last offset kept");
    assert_eq!(stored[22] & 0x07, 1, "still gzip");
    let len = i32::from_be_bytes(stored[8..12].try_into().unwrap()) as usize;
    assert_eq!(
        crc32c::crc32c(&stored[21..12 + len]),
        u32::from_be_bytes(stored[17..21].try_into().unwrap())
    );
    let mut want = r1.clone();
    want.extend_from_slice(&r2);
    assert_eq!(
        gunzip(&stored[61..12 + len]),
        want,
        "survivors byte for byte"
    );
    // ListOffsets by time reads the rebuilt batch's offsets: the first record at or after
    // time 0 is now offset 1.
    assert_eq!(list_offset(&mut c, "cc", 0, 0, 7).await.1, 1);
    assert_eq!(
        list_offset(&mut c, "cc", 0, -1, 7).await.1,
        4,
        "the end never moves"
    );
    broker.shutdown().await;
}

/// As Kafka, a batch converted to the topic's `compression.type` must still fit
/// `max.message.bytes`: 2 MB of records gzipped to a few KB cannot be stored uncompressed
/// under the 1 MB default, and gets MESSAGE_TOO_LARGE.
#[tokio::test]
async fn a_batch_too_large_after_conversion_gets_message_too_large() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let req = create_with_configs("plainly", &[("compression.type", "uncompressed")]);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
    let value = vec![7u8; 100_000];
    let section: Vec<u8> = (0..20)
        .flat_map(|i| raw_record(i, None, Some(&value), &[]))
        .collect();
    let (err, _) = produce(&mut c, "plainly", 0, raw_batch(&gzip(&section), 1, 20), 9).await;
    assert_eq!(err, ResponseError::MessageTooLarge.code());
    let small: Vec<u8> = (0..5)
        .flat_map(|i| raw_record(i, None, Some(&value), &[]))
        .collect();
    let (err, _) = produce(&mut c, "plainly", 0, raw_batch(&gzip(&small), 1, 5), 9).await;
    assert_eq!(err, 0);
    broker.shutdown().await;
}
