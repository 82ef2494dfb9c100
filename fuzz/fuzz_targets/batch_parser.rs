//! A produce request's record set, through what the broker does with one: batch framing and
//! CRC (`split_and_validate`), the record walk as Produce checks it and as the cleaner reads
//! stored batches, and recompression, all under a 256 KiB inflation cap. The input is used
//! twice: as is, and with its first batch's length and CRC fixed up, so that mutations get
//! past the CRC to the record parser and the decompressors.
#![no_main]

use bytes::Bytes;
use kafka_protocol::records::Compression;
use klamm_fuzz::batch::{split_and_validate, HEADER_LEN, LOG_OVERHEAD};
use klamm_fuzz::records::{convert_section, walk, Check, Hold};
use libfuzzer_sys::fuzz_target;

const CAP: usize = 256 << 10;

fn exercise(records: &Bytes) {
    let Ok(batches) = split_and_validate(records, 8 << 20) else {
        return;
    };
    for b in batches {
        let mut n = 0usize;
        for check in [Check::Produced, Check::Stored] {
            for hold in [Hold::Fields, Hold::Record] {
                let _ = walk(&b.bytes, CAP, check, hold, |r| {
                    n += 1;
                    assert!(r.raw.len() <= CAP || matches!(hold, Hold::Fields));
                    true
                });
            }
        }
        for to in [Compression::None, Compression::Gzip, Compression::Zstd] {
            if let Ok(out) = convert_section(&b.bytes, to, CAP) {
                assert!(
                    to != Compression::None || out.len() <= CAP,
                    "inflated past the cap"
                );
            }
        }
    }
}

/// The input with its first batch's length field and CRC32C made consistent.
fn fixed_up(data: &[u8]) -> Option<Bytes> {
    if data.len() < HEADER_LEN {
        return None;
    }
    let mut v = data.to_vec();
    let len = i32::try_from(v.len() - LOG_OVERHEAD).ok()?;
    v[8..12].copy_from_slice(&len.to_be_bytes());
    v[16] = 2; // magic
    let crc = crc32c::crc32c(&v[21..]);
    v[17..21].copy_from_slice(&crc.to_be_bytes());
    Some(Bytes::from(v))
}

fuzz_target!(|data: &[u8]| {
    exercise(&Bytes::copy_from_slice(data));
    if let Some(fixed) = fixed_up(data) {
        exercise(&fixed);
    }
});
