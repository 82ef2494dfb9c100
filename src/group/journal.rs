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
    /// Any other record (group metadata): members rejoin a new coordinator, as after a
    /// restart, so only offsets are rebuilt.
    Other,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Group ids and topic names are bounded by the request's int16 strings.
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

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
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
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        Some(String::from_utf8_lossy(self.take(len)?).into_owned())
    }
}

/// Reads one record back; None for a record this broker cannot parse (skipped with a
/// warning by the loader, never a panic).
pub fn parse(key: &[u8], value: Option<&[u8]>) -> Option<JournalRecord> {
    let mut k = Reader(key);
    match k.i16()? {
        0 | 1 => {}
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
        // Group metadata (key version 2) is not an offset; truncated bytes are refused.
        assert_eq!(
            parse(&[0, 2, 0, 1, b'g'], Some(&[])),
            Some(JournalRecord::Other)
        );
        assert_eq!(parse(&k[..5], None), None);
        assert_eq!(parse(&k, Some(&v[..9])), None);
    }
}
