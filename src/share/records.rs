//! The records of `__share_group_state`, in Kafka's format (`ShareSnapshotKey` and
//! `ShareSnapshotValue`, record type 0), so the topic reads as Kafka's would.
//!
//! Key: type `int16` (0), group `string` (int16 length), topic id (16 bytes), partition
//! `int32`. Value: version `int16` (0), then the flexible v0 body: snapshot epoch, state
//! epoch and leader epoch (`int32`), start offset, create and write timestamps (`int64`),
//! the state batches as a compact array (first and last offset `int64`, state `int8`,
//! delivery count `int16`, tagged fields), and the tagged fields, where tag 0 is the
//! delivery complete count. Decoding takes no count on trust: an array longer than the
//! bytes left is corrupt, so nothing is allocated from it.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::partition::{PersistedBatch, ShareSnapshot};

/// Kafka's record type of a full snapshot (`ShareSnapshotKey`/`ShareSnapshotValue`).
const SNAPSHOT_TYPE: i16 = 0;
/// Kafka's record type of a delta (`ShareUpdate*`), which Klamm does not write.
pub const UPDATE_TYPE: i16 = 1;
/// Bytes of one encoded state batch, its empty tagged fields included.
const BATCH_BYTES: usize = 8 + 8 + 1 + 2 + 1;

/// A share partition's record key: (group, topic id, partition).
pub type StateKey = (String, Uuid, i32);

/// What a snapshot record holds beyond the share partition's own state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub snapshot: ShareSnapshot,
    /// The share partition's leader epoch when it was written (fences older leaders).
    pub leader_epoch: i32,
    /// Counts the snapshots written for the key.
    pub snapshot_epoch: i32,
    pub create_timestamp: i64,
    pub write_timestamp: i64,
}

/// Kafka's coordinator key of a share partition, which places it on a partition of
/// `__share_group_state`: `group:topicId:partition`, the topic id as Kafka prints one
/// (URL-safe base64 without padding), so a share partition lands where Kafka puts it.
pub fn coordinator_key(group: &str, topic_id: Uuid, partition: i32) -> String {
    use base64::Engine as _;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic_id.as_bytes());
    format!("{group}:{id}:{partition}")
}

pub fn encode_key((group, topic_id, partition): &StateKey) -> Bytes {
    let len = i16::try_from(group.len()).unwrap_or(i16::MAX);
    let mut k = BytesMut::with_capacity(2 + 2 + group.len() + 16 + 4);
    k.put_i16(SNAPSHOT_TYPE);
    k.put_i16(len);
    k.put_slice(&group.as_bytes()[..len as usize]);
    k.put_slice(topic_id.as_bytes());
    k.put_i32(*partition);
    k.freeze()
}

/// The record type and key of a `__share_group_state` key.
pub fn decode_key(k: &[u8]) -> Option<(i16, StateKey)> {
    let mut r = Reader(k);
    let kind = r.i16()?;
    let len = usize::try_from(r.i16()?).ok()?;
    let group = String::from_utf8(r.take(len)?.to_vec()).ok()?;
    let topic_id = Uuid::from_bytes(r.take(16)?.try_into().ok()?);
    let partition = r.i32()?;
    r.0.is_empty()
        .then_some((kind, (group, topic_id, partition)))
}

fn put_uvarint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

pub fn encode_value(s: &Stored) -> Bytes {
    let snap = &s.snapshot;
    let mut v = BytesMut::with_capacity(2 + 36 + 5 + snap.batches.len() * BATCH_BYTES + 8);
    v.put_i16(0);
    v.put_i32(s.snapshot_epoch);
    v.put_i32(snap.state_epoch);
    v.put_i32(s.leader_epoch);
    v.put_i64(snap.start_offset);
    v.put_i64(s.create_timestamp);
    v.put_i64(s.write_timestamp);
    put_uvarint(&mut v, snap.batches.len() as u64 + 1);
    for b in &snap.batches {
        v.put_i64(b.first_offset);
        v.put_i64(b.last_offset);
        v.put_i8(b.delivery_state);
        v.put_i16(b.delivery_count);
        v.put_u8(0);
    }
    // Tagged fields: DeliveryCompleteCount (tag 0), left out at its default, -1.
    if snap.delivery_complete_count == -1 {
        v.put_u8(0);
    } else {
        v.put_u8(1);
        v.put_u8(0);
        v.put_u8(4);
        v.put_i32(snap.delivery_complete_count);
    }
    v.freeze()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn uvarint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
    /// Tagged fields: (tag, bytes) pairs.
    fn tags(&mut self) -> Option<Vec<(u64, &'a [u8])>> {
        let count = self.uvarint()?;
        let mut out = Vec::new();
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            out.push((tag, self.take(size)?));
        }
        Some(out)
    }
}

/// A snapshot value, or `None` if it is not a v0 `ShareSnapshotValue`.
pub fn decode_value(v: &[u8]) -> Option<Stored> {
    let mut r = Reader(v);
    if r.i16()? != 0 {
        return None;
    }
    let snapshot_epoch = r.i32()?;
    let state_epoch = r.i32()?;
    let leader_epoch = r.i32()?;
    let start_offset = r.i64()?;
    let create_timestamp = r.i64()?;
    let write_timestamp = r.i64()?;
    let count = usize::try_from(r.uvarint()?.checked_sub(1)?).ok()?;
    if count.checked_mul(BATCH_BYTES)? > r.0.len() {
        return None;
    }
    let mut batches = Vec::with_capacity(count);
    for _ in 0..count {
        batches.push(PersistedBatch {
            first_offset: r.i64()?,
            last_offset: r.i64()?,
            delivery_state: r.i8()?,
            delivery_count: r.i16()?,
        });
        r.tags()?;
    }
    let mut delivery_complete_count = -1;
    for (tag, bytes) in r.tags()? {
        if tag == 0 {
            delivery_complete_count = i32::from_be_bytes(bytes.try_into().ok()?);
        }
    }
    r.0.is_empty().then_some(Stored {
        snapshot: ShareSnapshot {
            state_epoch,
            start_offset,
            delivery_complete_count,
            batches,
        },
        leader_epoch,
        snapshot_epoch,
        create_timestamp,
        write_timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_what_is_not_theirs() {
        let key: StateKey = ("g".into(), Uuid::from_u128(7), 3);
        let k = encode_key(&key);
        assert_eq!(&k[..4], &[0, 0, 0, 1], "type 0, group length 1");
        assert_eq!(decode_key(&k), Some((0, key)));
        assert_eq!(decode_key(&k[..k.len() - 1]), None);
        let stored = Stored {
            snapshot: ShareSnapshot {
                state_epoch: 2,
                start_offset: 40,
                delivery_complete_count: 3,
                batches: vec![
                    PersistedBatch {
                        first_offset: 40,
                        last_offset: 42,
                        delivery_state: 2,
                        delivery_count: 1,
                    },
                    PersistedBatch {
                        first_offset: 43,
                        last_offset: 43,
                        delivery_state: 0,
                        delivery_count: 2,
                    },
                ],
            },
            leader_epoch: 5,
            snapshot_epoch: 9,
            create_timestamp: 1,
            write_timestamp: 2,
        };
        let v = encode_value(&stored);
        assert_eq!(decode_value(&v), Some(stored.clone()));
        let mut unknown = stored;
        unknown.snapshot.delivery_complete_count = -1;
        assert_eq!(decode_value(&encode_value(&unknown)), Some(unknown));
        assert_eq!(decode_value(&v[..v.len() - 1]), None, "truncated");
        // A batch count far beyond the bytes: refused before anything is allocated.
        let mut huge = v[..2 + 36].to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(decode_value(&huge), None);
    }
}
