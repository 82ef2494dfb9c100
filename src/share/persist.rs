//! The stored form of a share partition's state ([`ShareSnapshot`]), kept in the broker's
//! store so a restarted broker resumes every share group where it was.
//!
//! Layout (big-endian): version `u8` (0), state epoch `i32`, start offset `i64`, delivery
//! complete count `i32`, batch count `u32`, then per batch first offset `i64`, last offset
//! `i64`, delivery state `i8`, delivery count `i16`. Decoding trusts no count: a batch count
//! larger than the bytes that follow is corrupt, so nothing is allocated from it.

use super::partition::{PersistedBatch, ShareSnapshot};

const VERSION: u8 = 0;
const BATCH_BYTES: usize = 8 + 8 + 1 + 2;

pub fn encode(s: &ShareSnapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(21 + s.batches.len() * BATCH_BYTES);
    out.push(VERSION);
    out.extend_from_slice(&s.state_epoch.to_be_bytes());
    out.extend_from_slice(&s.start_offset.to_be_bytes());
    out.extend_from_slice(&s.delivery_complete_count.to_be_bytes());
    out.extend_from_slice(&(s.batches.len() as u32).to_be_bytes());
    for b in &s.batches {
        out.extend_from_slice(&b.first_offset.to_be_bytes());
        out.extend_from_slice(&b.last_offset.to_be_bytes());
        out.push(b.delivery_state as u8);
        out.extend_from_slice(&b.delivery_count.to_be_bytes());
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

/// The snapshot, or `None` if the record is not one this version wrote (a corrupt record
/// is treated as no state, and the caller starts over from the reset strategy).
pub fn decode(bytes: &[u8]) -> Option<ShareSnapshot> {
    let mut r = Reader(bytes);
    if r.take::<1>()?[0] != VERSION {
        return None;
    }
    let state_epoch = i32::from_be_bytes(r.take()?);
    let start_offset = i64::from_be_bytes(r.take()?);
    let delivery_complete_count = i32::from_be_bytes(r.take()?);
    let count = u32::from_be_bytes(r.take()?) as usize;
    if r.0.len() != count.checked_mul(BATCH_BYTES)? {
        return None;
    }
    let mut batches = Vec::with_capacity(count);
    for _ in 0..count {
        batches.push(PersistedBatch {
            first_offset: i64::from_be_bytes(r.take()?),
            last_offset: i64::from_be_bytes(r.take()?),
            delivery_state: r.take::<1>()?[0] as i8,
            delivery_count: i16::from_be_bytes(r.take()?),
        });
    }
    Some(ShareSnapshot {
        state_epoch,
        start_offset,
        delivery_complete_count,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_did_not_write() {
        let s = ShareSnapshot {
            state_epoch: 3,
            start_offset: 42,
            delivery_complete_count: 1,
            batches: vec![
                PersistedBatch {
                    first_offset: 42,
                    last_offset: 50,
                    delivery_state: 0,
                    delivery_count: 2,
                },
                PersistedBatch {
                    first_offset: 51,
                    last_offset: 51,
                    delivery_state: 2,
                    delivery_count: 1,
                },
            ],
        };
        let bytes = encode(&s);
        assert_eq!(decode(&bytes), Some(s));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        let mut lying = bytes.clone();
        lying[17..21].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&lying), None);
        let mut other_version = bytes;
        other_version[0] = 9;
        assert_eq!(decode(&other_version), None);
        assert_eq!(decode(&[]), None);
    }
}
