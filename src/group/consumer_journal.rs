//! KIP-848 consumer groups as records of `__consumer_offsets`, in Kafka's own format.
//!
//! Kafka's group coordinator keeps a consumer group as a handful of record types: the
//! group epoch (key type 3), each member's subscription (5), the target assignment's epoch
//! (6) and each member's target (7), and each member's current assignment with its epoch
//! (8). Klamm writes the same records when a heartbeat changes any of them, so a new
//! coordinator takes the group over with its members, epochs and assignments: members
//! carry on heartbeating with the epoch they have, as they do on Kafka, instead of being
//! told they are unknown and rejoining. The values are flexible versions (compact strings
//! and arrays, tagged fields), version 0.

use std::collections::BTreeSet;

use bytes::Bytes;
use uuid::Uuid;

use super::consumer::Tp;
use super::journal::{put_str, Reader};

/// One KIP-848 record of a group, as written and as read back; `None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecord {
    /// `ConsumerGroupMetadata`: the group epoch. Its tombstone deletes the group.
    GroupEpoch(Option<i32>),
    /// `ConsumerGroupMemberMetadata`: what the member subscribes to.
    Member(String, Option<MemberMeta>),
    /// `ConsumerGroupTargetAssignmentMetadata`: the epoch of the target assignment.
    TargetEpoch(Option<i32>),
    /// `ConsumerGroupTargetAssignmentMember`: one member's target partitions.
    Target(String, Option<BTreeSet<Tp>>),
    /// `ConsumerGroupCurrentMemberAssignment`: one member's epoch and what it holds.
    Current(String, Option<CurrentAssignment>),
}

/// A member's subscription and identity (`ConsumerGroupMemberMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMeta {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topic_names: BTreeSet<String>,
    pub regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// A member's epochs and partitions (`ConsumerGroupCurrentMemberAssignmentValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    pub assigned: BTreeSet<Tp>,
    pub revoking: BTreeSet<Tp>,
}

const GROUP_EPOCH: i16 = 3;
const MEMBER: i16 = 5;
const TARGET_EPOCH: i16 = 6;
const TARGET: i16 = 7;
const CURRENT: i16 = 8;

/// Whether a key version is one of the KIP-848 record types this module reads.
pub fn is_consumer_key(version: i16) -> bool {
    matches!(
        version,
        GROUP_EPOCH | MEMBER | TARGET_EPOCH | TARGET | CURRENT
    )
}

/// The record's key and value (None for a tombstone).
pub fn encode(group: &str, r: &ConsumerRecord) -> (Bytes, Option<Bytes>) {
    let (version, member) = match r {
        ConsumerRecord::GroupEpoch(_) => (GROUP_EPOCH, None),
        ConsumerRecord::Member(m, _) => (MEMBER, Some(m)),
        ConsumerRecord::TargetEpoch(_) => (TARGET_EPOCH, None),
        ConsumerRecord::Target(m, _) => (TARGET, Some(m)),
        ConsumerRecord::Current(m, _) => (CURRENT, Some(m)),
    };
    let mut k = Vec::with_capacity(6 + group.len() + member.map_or(0, |m| m.len()));
    k.extend_from_slice(&version.to_be_bytes());
    put_str(&mut k, group);
    if let Some(m) = member {
        put_str(&mut k, m);
    }
    let mut v = Vec::with_capacity(32);
    v.extend_from_slice(&0i16.to_be_bytes());
    let value = match r {
        ConsumerRecord::GroupEpoch(e) | ConsumerRecord::TargetEpoch(e) => e.map(|e| {
            v.extend_from_slice(&e.to_be_bytes());
        }),
        ConsumerRecord::Member(_, m) => m.as_ref().map(|m| {
            put_compact(&mut v, m.instance_id.as_deref());
            put_compact(&mut v, m.rack_id.as_deref());
            put_compact(&mut v, Some(&m.client_id));
            put_compact(&mut v, Some(&m.client_host));
            put_uvarint(&mut v, m.topic_names.len() as u64 + 1);
            for t in &m.topic_names {
                put_compact(&mut v, Some(t));
            }
            put_compact(&mut v, m.regex.as_deref());
            v.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
            put_compact(&mut v, m.server_assignor.as_deref());
        }),
        ConsumerRecord::Target(_, t) => t.as_ref().map(|t| put_partitions(&mut v, t)),
        ConsumerRecord::Current(_, c) => c.as_ref().map(|c| {
            v.extend_from_slice(&c.member_epoch.to_be_bytes());
            v.extend_from_slice(&c.previous_epoch.to_be_bytes());
            v.push(c.state as u8);
            put_partitions(&mut v, &c.assigned);
            put_partitions(&mut v, &c.revoking);
        }),
    };
    let value = value.map(|()| {
        put_uvarint(&mut v, 0); // no tagged fields
        Bytes::from(v)
    });
    (Bytes::from(k), value)
}

/// Reads a KIP-848 record back (the key's version already read from `k`). None for bytes
/// it cannot parse; every length is checked against what is left before it is used.
pub(super) fn parse(
    version: i16,
    k: &mut Reader<'_>,
    value: Option<&[u8]>,
) -> Option<(String, ConsumerRecord)> {
    let (group, member, mut v) =
        open_record(k, value, matches!(version, MEMBER | TARGET | CURRENT))?;
    let record = match (version, member, v.as_mut()) {
        (GROUP_EPOCH, _, v) => ConsumerRecord::GroupEpoch(value_of(v, |v| v.i32())?),
        (TARGET_EPOCH, _, v) => ConsumerRecord::TargetEpoch(value_of(v, |v| v.i32())?),
        (MEMBER, Some(m), v) => ConsumerRecord::Member(m, value_of(v, member_meta)?),
        (TARGET, Some(m), v) => ConsumerRecord::Target(m, value_of(v, partitions)?),
        (CURRENT, Some(m), v) => ConsumerRecord::Current(m, value_of(v, current_assignment)?),
        _ => return None,
    };
    Some((group, record))
}

/// A coordinator record's key fields (the group, and the member when the type has one) and
/// its value positioned after its version, which must be 0 (None for a tombstone's value).
/// None for bytes it cannot parse.
pub(super) fn open_record<'a>(
    k: &mut Reader<'_>,
    value: Option<&'a [u8]>,
    has_member: bool,
) -> Option<(String, Option<String>, Option<Reader<'a>>)> {
    let group = k.string()?;
    let member = if has_member { Some(k.string()?) } else { None };
    let v = match value {
        Some(v) => {
            let mut r = Reader(v);
            if r.i16()? != 0 {
                return None;
            }
            Some(r)
        }
        None => None,
    };
    Some((group, member, v))
}

/// Some(None) for a tombstone, Some(Some(_)) for a value read whole, None for bad bytes.
pub(super) fn value_of<T>(
    v: Option<&mut Reader<'_>>,
    read: impl FnOnce(&mut Reader<'_>) -> Option<T>,
) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(r) => {
            let value = read(r)?;
            skip_tags(r)?; // the value's own tagged fields end it
            Some(Some(value))
        }
    }
}

fn member_meta(v: &mut Reader<'_>) -> Option<MemberMeta> {
    let instance_id = compact_string(v)?;
    let rack_id = compact_string(v)?;
    let client_id = compact_string(v)?.unwrap_or_default();
    let client_host = compact_string(v)?.unwrap_or_default();
    let n = compact_len(v)?.unwrap_or(0);
    let mut topic_names = BTreeSet::new();
    for _ in 0..n {
        topic_names.insert(compact_string(v)??);
    }
    let regex = compact_string(v)?;
    let rebalance_timeout_ms = v.i32()?;
    let server_assignor = compact_string(v)?;
    Some(MemberMeta {
        instance_id,
        rack_id,
        client_id,
        client_host,
        topic_names,
        regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

fn current_assignment(v: &mut Reader<'_>) -> Option<CurrentAssignment> {
    Some(CurrentAssignment {
        member_epoch: v.i32()?,
        previous_epoch: v.i32()?,
        state: *v.take(1)?.first()? as i8,
        assigned: partitions(v)?,
        revoking: partitions(v)?,
    })
}

pub(super) fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) fn put_compact(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_uvarint(out, 0),
        Some(s) => {
            put_uvarint(out, s.len() as u64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// `[]TopicPartitions`: per topic id, its partitions.
fn put_partitions(out: &mut Vec<u8>, parts: &BTreeSet<Tp>) {
    let mut by_topic: std::collections::BTreeMap<Uuid, Vec<i32>> = Default::default();
    for (t, p) in parts {
        by_topic.entry(*t).or_default().push(*p);
    }
    put_uvarint(out, by_topic.len() as u64 + 1);
    for (t, ps) in by_topic {
        out.extend_from_slice(t.as_bytes());
        put_uvarint(out, ps.len() as u64 + 1);
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
        put_uvarint(out, 0);
    }
}

pub(super) fn uvarint(v: &mut Reader<'_>) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *v.take(1)?.first()?;
        n |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(n);
        }
    }
    None
}

/// A compact length: Some(None) for null. Refused when it exceeds the bytes left, so a
/// corrupt length never drives an allocation or a long loop.
pub(super) fn compact_len(v: &mut Reader<'_>) -> Option<Option<usize>> {
    let n = uvarint(v)?;
    if n == 0 {
        return Some(None);
    }
    let len = usize::try_from(n - 1).ok()?;
    (len <= v.0.len()).then_some(Some(len))
}

pub(super) fn compact_string(v: &mut Reader<'_>) -> Option<Option<String>> {
    match compact_len(v)? {
        None => Some(None),
        Some(len) => Some(Some(String::from_utf8_lossy(v.take(len)?).into_owned())),
    }
}

pub(super) fn skip_tags(v: &mut Reader<'_>) -> Option<()> {
    for _ in 0..uvarint(v)? {
        uvarint(v)?;
        let size = usize::try_from(uvarint(v)?).ok()?;
        v.take(size)?;
    }
    Some(())
}

fn partitions(v: &mut Reader<'_>) -> Option<BTreeSet<Tp>> {
    let mut out = BTreeSet::new();
    for _ in 0..compact_len(v)?.unwrap_or(0) {
        let id = Uuid::from_slice(v.take(16)?).ok()?;
        for _ in 0..compact_len(v)?.unwrap_or(0) {
            out.insert((id, v.i32()?));
        }
        skip_tags(v)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: ConsumerRecord) {
        let (k, v) = encode("g", &r);
        let mut kr = Reader(&k);
        let version = kr.i16().unwrap();
        assert!(is_consumer_key(version));
        assert_eq!(
            parse(version, &mut kr, v.as_deref()),
            Some(("g".to_string(), r))
        );
    }

    #[test]
    fn records_round_trip_in_kafkas_format() {
        let t = Uuid::from_u128(7);
        let parts: BTreeSet<Tp> = [(t, 0), (t, 2), (Uuid::from_u128(9), 1)].into();
        round_trip(ConsumerRecord::GroupEpoch(Some(5)));
        round_trip(ConsumerRecord::GroupEpoch(None));
        round_trip(ConsumerRecord::TargetEpoch(Some(5)));
        round_trip(ConsumerRecord::Target("m".into(), Some(parts.clone())));
        round_trip(ConsumerRecord::Target("m".into(), None));
        round_trip(ConsumerRecord::Member(
            "m".into(),
            Some(MemberMeta {
                instance_id: Some("i".into()),
                rack_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                topic_names: ["a".to_string(), "b".to_string()].into(),
                regex: Some("x.*".into()),
                rebalance_timeout_ms: 30_000,
                server_assignor: Some("uniform".into()),
            }),
        ));
        round_trip(ConsumerRecord::Current(
            "m".into(),
            Some(CurrentAssignment {
                member_epoch: 5,
                previous_epoch: 4,
                state: 1,
                assigned: parts.clone(),
                revoking: [(t, 1)].into(),
            }),
        ));
        // Kafka's bytes for the group epoch: key version 3, "g"; value version 0, epoch,
        // no tagged fields.
        let (k, v) = encode("g", &ConsumerRecord::GroupEpoch(Some(5)));
        assert_eq!(&k[..], &[0, 3, 0, 1, b'g']);
        assert_eq!(&v.unwrap()[..], &[0, 0, 0, 0, 0, 5, 0]);
    }

    #[test]
    fn corrupt_records_are_refused_without_allocating() {
        let t = Uuid::from_u128(7);
        let (k, v) = encode(
            "g",
            &ConsumerRecord::Target("m".into(), Some([(t, 0)].into())),
        );
        let v = v.unwrap();
        for cut in 0..v.len() {
            let mut kr = Reader(&k);
            let version = kr.i16().unwrap();
            assert_eq!(parse(version, &mut kr, Some(&v[..cut])), None, "cut {cut}");
        }
        // An array length near u64::MAX is refused, not looped over.
        let mut absurd = v[..2].to_vec();
        absurd.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let mut kr = Reader(&k);
        let version = kr.i16().unwrap();
        assert_eq!(parse(version, &mut kr, Some(&absurd)), None);
    }
}
