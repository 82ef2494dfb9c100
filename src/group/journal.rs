//! Committed offsets as records of `__consumer_offsets`, in Kafka's own format.
//!
//! In cluster mode a commit is not durable until the group's partition of
//! `__consumer_offsets` holds it on every in-sync replica: that partition is replicated like
//! any other, so the broker that leads it next can rebuild the group's offsets from it.
//! The records are Kafka's (key version 1 `OffsetCommitKey`, value version 3
//! `OffsetCommitValue`, a null value deleting the offset), so Kafka's tools read the topic
//! as they read Kafka's, and a compacted topic keeps exactly the live offsets.

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::CommittedOffset;

/// Where commits are written before the coordinator's table is updated.
///
/// It exists so that the group coordinator does not know about partitions, leaders or
/// replication: in single-node mode there is none and the table alone is durable; in
/// cluster mode [`crate::coordinator_log`] appends to the group's partition.
pub trait OffsetJournal: Send + Sync {
    /// Appends `records` (key, value or tombstone) to the group's partition. The append is
    /// queued at once, in call order; the returned handle completes once the in-sync
    /// replicas have it. NOT_COORDINATOR when this broker does not lead the partition.
    /// With `producer` (id, epoch) the records are that producer's transactional batch:
    /// offsets committed inside a transaction, which its marker commits or aborts.
    fn append(
        &self,
        group: &str,
        producer: Option<(i64, i16)>,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<JournalWrite, ResponseError>;
}

/// A queued journal append: completes with the replication's outcome. Dropping it leaves
/// the append to finish on its own.
pub type JournalWrite = tokio::task::JoinHandle<Result<(), ResponseError>>;

/// Waits for a journal append, mapping replication failures to what Kafka answers a commit
/// whose append failed: NOT_COORDINATOR when leadership moved (the client finds the new
/// coordinator), COORDINATOR_NOT_AVAILABLE when the replicas did not confirm in time.
pub async fn settle(write: JournalWrite) -> Result<(), ResponseError> {
    match write.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError)) => {
            Err(ResponseError::NotCoordinator)
        }
        Ok(Err(_)) | Err(_) => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// One record of `__consumer_offsets` as the coordinator reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRecord {
    /// A commit (`Some`) or a deletion (`None`) of one partition's offset.
    Offset {
        group: String,
        topic: String,
        partition: i32,
        offset: Option<CommittedOffset>,
    },
    /// A classic group's metadata (`Some`) or its deletion (`None`).
    Group {
        group: String,
        metadata: Option<GroupRecord>,
    },
    /// A KIP-848 consumer group's record.
    Consumer {
        group: String,
        record: super::consumer_journal::ConsumerRecord,
    },
    /// A streams group's record.
    Streams {
        group: String,
        record: super::streams::journal::StreamsRecord,
    },
    /// Any other record (a share group's, or a type this broker does not write):
    /// skipped.
    Other,
}

/// A classic group as Kafka's `GroupMetadataValue` (version 3) keeps it: what a new
/// coordinator needs to take the group over with its members, generation and assignments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRecord {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberRecord>,
}

/// One member of a [`GroupRecord`] (Kafka's `MemberMetadata`, version 3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A Kafka int16-length string; group ids and topic names are bounded by the request's
/// int16 strings, so longer ones cannot occur (and are cut, not wrapped, if they did).
pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

/// Kafka's `OffsetCommitKey`, key version 1.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut k = Vec::with_capacity(10 + group.len() + topic.len());
    k.extend_from_slice(&1i16.to_be_bytes());
    put_str(&mut k, group);
    put_str(&mut k, topic);
    k.extend_from_slice(&partition.to_be_bytes());
    Bytes::from(k)
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = i32::try_from(b.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&b[..len as usize]);
}

/// Kafka's `GroupMetadataKey`, key version 2.
pub fn group_key(group: &str) -> Bytes {
    let mut k = Vec::with_capacity(4 + group.len());
    k.extend_from_slice(&2i16.to_be_bytes());
    put_str(&mut k, group);
    Bytes::from(k)
}

/// Kafka's `GroupMetadataValue`, version 3.
pub fn group_value(g: &GroupRecord) -> Bytes {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&3i16.to_be_bytes());
    put_str(&mut v, &g.protocol_type);
    v.extend_from_slice(&g.generation.to_be_bytes());
    put_nullable_str(&mut v, g.protocol.as_deref());
    put_nullable_str(&mut v, g.leader.as_deref());
    v.extend_from_slice(&g.state_timestamp_ms.to_be_bytes());
    let count = i32::try_from(g.members.len()).unwrap_or(i32::MAX);
    v.extend_from_slice(&count.to_be_bytes());
    for m in &g.members {
        put_str(&mut v, &m.member_id);
        put_nullable_str(&mut v, m.group_instance_id.as_deref());
        put_str(&mut v, &m.client_id);
        put_str(&mut v, &m.client_host);
        v.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        v.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut v, &m.subscription);
        put_bytes(&mut v, &m.assignment);
    }
    Bytes::from(v)
}

/// A `GroupMetadataValue` of versions 0-3 (Kafka 4 writes version 3 for classic groups;
/// the flexible version 4 is read as unknown). Never allocates by a length it read: every
/// length is checked against the bytes left.
fn parse_group_value(v: &[u8]) -> Option<GroupRecord> {
    let mut r = Reader(v);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = usize::try_from(r.i32()?).ok()?;
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = Bytes::copy_from_slice(r.bytes()?);
        let assignment = Bytes::copy_from_slice(r.bytes()?);
        members.push(MemberRecord {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupRecord {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

/// Kafka's `OffsetCommitValue`, version 3 (null metadata is written as "", as Kafka does).
pub fn offset_value(c: &CommittedOffset) -> Bytes {
    let metadata = c.metadata.as_deref().unwrap_or("");
    let mut v = Vec::with_capacity(24 + metadata.len());
    v.extend_from_slice(&3i16.to_be_bytes());
    v.extend_from_slice(&c.offset.to_be_bytes());
    v.extend_from_slice(&c.leader_epoch.to_be_bytes());
    put_str(&mut v, metadata);
    v.extend_from_slice(&c.commit_timestamp_ms.to_be_bytes());
    Bytes::from(v)
}

pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl Reader<'_> {
    pub(super) fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    pub(super) fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub(super) fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(super) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        Some(String::from_utf8_lossy(self.take(len)?).into_owned())
    }
    /// Some(None) for a null string (length -1).
    fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len == -1 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        Some(Some(String::from_utf8_lossy(self.take(len)?).into_owned()))
    }
    fn bytes(&mut self) -> Option<&[u8]> {
        let len = usize::try_from(self.i32()?).ok()?;
        self.take(len)
    }
}

/// Reads one record back; None for a record this broker cannot parse (skipped with a
/// warning by the loader, never a panic).
pub fn parse(key: &[u8], value: Option<&[u8]>) -> Option<JournalRecord> {
    let mut k = Reader(key);
    match k.i16()? {
        0 | 1 => {}
        2 => {
            let group = k.string()?;
            let metadata = match value {
                None => None,
                Some(v) => Some(parse_group_value(v)?),
            };
            return Some(JournalRecord::Group { group, metadata });
        }
        v if super::consumer_journal::is_consumer_key(v) => {
            let (group, record) = super::consumer_journal::parse(v, &mut k, value)?;
            return Some(JournalRecord::Consumer { group, record });
        }
        v if super::streams::journal::is_streams_key(v) => {
            let (group, record) = super::streams::journal::parse(v, &mut k, value)?;
            return Some(JournalRecord::Streams { group, record });
        }
        _ => return Some(JournalRecord::Other),
    }
    let group = k.string()?;
    let topic = k.string()?;
    let partition = k.i32()?;
    let offset = match value {
        None => None,
        Some(v) => {
            let mut v = Reader(v);
            let version = v.i16()?;
            let offset = v.i64()?;
            let leader_epoch = if version >= 3 { v.i32()? } else { -1 };
            let metadata = v.string()?;
            let commit_timestamp_ms = v.i64()?;
            Some(CommittedOffset {
                offset,
                leader_epoch,
                metadata: Some(metadata),
                commit_timestamp_ms,
            })
        }
    };
    Some(JournalRecord::Offset {
        group,
        topic,
        partition,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_in_kafkas_format() {
        let c = CommittedOffset {
            offset: 42,
            leader_epoch: 7,
            metadata: Some("m".into()),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let k = offset_key("g", "t", 3);
        // Kafka's bytes: version 1, "g", "t", partition 3.
        assert_eq!(&k[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        let v = offset_value(&c);
        assert_eq!(&v[..2], &[0, 3]);
        assert_eq!(
            parse(&k, Some(&v)),
            Some(JournalRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                offset: Some(c),
            })
        );
        assert_eq!(
            parse(&k, None),
            Some(JournalRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                offset: None,
            })
        );
        // Other records (key version 4, a KIP-848 group's partition metadata that Kafka
        // no longer writes) are skipped; truncated bytes are refused.
        assert_eq!(
            parse(&[0, 4, 0, 1, b'g'], Some(&[])),
            Some(JournalRecord::Other)
        );
        assert_eq!(parse(&k[..5], None), None);
        assert_eq!(parse(&k, Some(&v[..9])), None);
    }

    #[test]
    fn group_metadata_round_trips_in_kafkas_format() {
        let g = GroupRecord {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp_ms: 1_700_000_000_000,
            members: vec![MemberRecord {
                member_id: "m-1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 30_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let k = group_key("g");
        assert_eq!(&k[..], &[0, 2, 0, 1, b'g']);
        let v = group_value(&g);
        assert_eq!(&v[..2], &[0, 3]);
        assert_eq!(
            parse(&k, Some(&v)),
            Some(JournalRecord::Group {
                group: "g".into(),
                metadata: Some(g.clone()),
            })
        );
        assert_eq!(
            parse(&k, None),
            Some(JournalRecord::Group {
                group: "g".into(),
                metadata: None,
            })
        );
        // A truncated value, or a member count past the bytes, is refused without
        // allocating by it.
        assert_eq!(parse(&k, Some(&v[..v.len() - 1])), None);
        let mut absurd = group_value(&GroupRecord::default()).to_vec();
        let n = absurd.len();
        absurd[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(parse(&k, Some(&absurd)), None);
    }
}
