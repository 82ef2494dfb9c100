//! Committed offsets, persisted in the `groups` column family.
//!
//! Key: group length (u16 BE) ‖ group ‖ topic length (u16 BE) ‖ topic ‖ partition (i32 BE), so
//! all offsets of a group, and of a group's topic, are contiguous prefixes.
//! Value: offset (i64) ‖ leader epoch (i32) ‖ commit time ms (i64) ‖ metadata flag (u8: 0 null,
//! 1 present) ‖ metadata bytes.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use rocksdb::WriteBatch;

use crate::log::store::StoreError;
use crate::log::Store;

/// One committed offset as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// The durable half of the group coordinator.
///
/// It exists so committed offsets survive restarts without the coordinator knowing key
/// layouts, and so a group with only offsets (no members) is still found after a restart.
pub struct OffsetStore {
    store: Arc<Store>,
    /// Serialises writes, so that expiry deletes only what it judged expired: a commit made
    /// meanwhile (a newer commit time) is left alone.
    writes: std::sync::Mutex<()>,
}

/// One committed offset with its place, as expiry looks at them.
#[derive(Debug, Clone)]
pub struct OffsetEntry {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: CommittedOffset,
}

/// The key prefix of a group's offsets; None for an id whose length does not fit the two
/// length bytes (such a group can have no offsets: `validate_group_id` refuses it first).
fn group_prefix(group: &str) -> Option<Vec<u8>> {
    let len = u16::try_from(group.len()).ok()?;
    let mut k = Vec::with_capacity(2 + group.len());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    Some(k)
}

fn key(group: &str, topic: &str, partition: i32) -> Option<Vec<u8>> {
    let mut k = group_prefix(group)?;
    k.extend_from_slice(&u16::try_from(topic.len()).ok()?.to_be_bytes());
    k.extend_from_slice(topic.as_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    Some(k)
}

/// Splits a key back into (group, topic, partition).
fn parse_key(k: &[u8]) -> Option<(String, String, i32)> {
    let glen = u16::from_be_bytes(k.get(..2)?.try_into().ok()?) as usize;
    let group = std::str::from_utf8(k.get(2..2 + glen)?).ok()?;
    let rest = &k[2 + glen..];
    let tlen = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(rest.get(2..2 + tlen)?).ok()?;
    let p = i32::from_be_bytes(rest.get(2 + tlen..6 + tlen)?.try_into().ok()?);
    Some((group.to_string(), topic.to_string(), p))
}

fn encode(c: &CommittedOffset) -> Vec<u8> {
    let mut v = Vec::with_capacity(21 + c.metadata.as_ref().map_or(0, |m| m.len()));
    v.extend_from_slice(&c.offset.to_be_bytes());
    v.extend_from_slice(&c.leader_epoch.to_be_bytes());
    v.extend_from_slice(&c.commit_timestamp_ms.to_be_bytes());
    match &c.metadata {
        None => v.push(0),
        Some(m) => {
            v.push(1);
            v.extend_from_slice(m.as_bytes());
        }
    }
    v
}

fn decode(v: &[u8]) -> Option<CommittedOffset> {
    Some(CommittedOffset {
        offset: i64::from_be_bytes(v.get(..8)?.try_into().ok()?),
        leader_epoch: i32::from_be_bytes(v.get(8..12)?.try_into().ok()?),
        commit_timestamp_ms: i64::from_be_bytes(v.get(12..20)?.try_into().ok()?),
        metadata: match v.get(20)? {
            0 => None,
            _ => Some(String::from_utf8_lossy(&v[21..]).into_owned()),
        },
    })
}

impl OffsetStore {
    pub fn new(store: Arc<Store>) -> OffsetStore {
        OffsetStore {
            store,
            writes: std::sync::Mutex::new(()),
        }
    }

    fn write_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every committed offset of every group, for expiry.
    pub fn entries(&self) -> Result<Vec<OffsetEntry>, StoreError> {
        Ok(self
            .store
            .scan_groups(&[])?
            .iter()
            .filter_map(|(k, v)| {
                let (group, topic, partition) = parse_key(k)?;
                Some(OffsetEntry {
                    group,
                    topic,
                    partition,
                    offset: decode(v)?,
                })
            })
            .collect())
    }

    /// Deletes the given offsets of a group if each is still the commit that was judged
    /// expired (same commit time); returns how many were deleted.
    pub fn expire(&self, group: &str, expired: &[(String, i32, i64)]) -> Result<usize, StoreError> {
        let _w = self.write_guard();
        let mut wb = WriteBatch::default();
        let mut n = 0;
        for (topic, partition, commit_ms) in expired {
            let Some(k) = key(group, topic, *partition) else {
                continue;
            };
            let current = self.store.get_group(&k)?;
            if current
                .as_deref()
                .and_then(decode)
                .map(|c| c.commit_timestamp_ms)
                == Some(*commit_ms)
            {
                self.store.delete_group_key(&mut wb, &k);
                n += 1;
            }
        }
        if n > 0 {
            self.store.write(wb)?;
        }
        Ok(n)
    }

    /// Runs `f` if the group has no committed offsets, with commits held off meanwhile, so
    /// a group is never deleted while a commit to it is being written.
    pub fn if_no_offsets<T>(
        &self,
        group: &str,
        f: impl FnOnce() -> T,
    ) -> Result<Option<T>, StoreError> {
        let _w = self.write_guard();
        let Some(prefix) = group_prefix(group) else {
            return Ok(Some(f()));
        };
        let any = self
            .store
            .scan_groups(&prefix)?
            .iter()
            .any(|(k, _)| parse_key(k).is_some_and(|(g, _, _)| g == group));
        Ok((!any).then(f))
    }

    /// Writes a group's commits in one atomic write.
    pub fn commit(
        &self,
        group: &str,
        offsets: &[(String, i32, CommittedOffset)],
    ) -> Result<(), ResponseError> {
        super::validate_group_id(group)?;
        let _w = self.write_guard();
        let mut wb = WriteBatch::default();
        for (topic, partition, c) in offsets {
            let k = key(group, topic, *partition).ok_or(ResponseError::InvalidGroupId)?;
            self.store.put_group(&mut wb, &k, &encode(c));
        }
        self.store
            .write(wb)
            .map_err(|_| ResponseError::KafkaStorageError)
    }

    pub fn fetch(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<CommittedOffset>, ResponseError> {
        let Some(k) = key(group, topic, partition) else {
            return Ok(None);
        };
        let v = self
            .store
            .get_group(&k)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        Ok(v.as_deref().and_then(decode))
    }

    /// Every committed offset of a group: (topic, partition, offset), sorted.
    pub fn fetch_all(
        &self,
        group: &str,
    ) -> Result<Vec<(String, i32, CommittedOffset)>, ResponseError> {
        let Some(prefix) = group_prefix(group) else {
            return Ok(Vec::new());
        };
        let rows = self
            .store
            .scan_groups(&prefix)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        Ok(rows
            .iter()
            .filter_map(|(k, v)| {
                let (g, t, p) = parse_key(k)?;
                (g == group).then_some(())?;
                Some((t, p, decode(v)?))
            })
            .collect())
    }

    /// Every committed offset of every group: (group, topic, partition, offset).
    pub fn all(&self) -> Result<Vec<(String, String, i32, i64)>, ResponseError> {
        let rows = self
            .store
            .scan_groups(&[])
            .map_err(|_| ResponseError::KafkaStorageError)?;
        Ok(rows
            .iter()
            .filter_map(|(k, v)| {
                let (g, t, p) = parse_key(k)?;
                Some((g, t, p, decode(v)?.offset))
            })
            .collect())
    }

    /// Deletes the given partitions' offsets, or all of the group's when `None`.
    pub fn delete(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<(), ResponseError> {
        let _w = self.write_guard();
        let mut wb = WriteBatch::default();
        match partitions {
            Some(ps) => {
                for (t, p) in ps {
                    if let Some(k) = key(group, t, *p) {
                        self.store.delete_group_key(&mut wb, &k);
                    }
                }
            }
            None => {
                for (t, p, _) in self.fetch_all(group)? {
                    if let Some(k) = key(group, &t, p) {
                        self.store.delete_group_key(&mut wb, &k);
                    }
                }
            }
        }
        self.store
            .write(wb)
            .map_err(|_| ResponseError::KafkaStorageError)
    }

    /// The ids of every group that has committed offsets (loaded at start-up).
    pub fn group_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = Vec::new();
        for (k, _) in self.store.scan_groups(&[])? {
            if let Some((g, _, _)) = parse_key(&k) {
                if ids.last() != Some(&g) {
                    ids.push(g);
                }
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = key("grp", "topic-a", 7).unwrap();
        assert_eq!(parse_key(&k), Some(("grp".into(), "topic-a".into(), 7)));
        for metadata in [None, Some(String::new()), Some("meta data ✓".to_string())] {
            let c = CommittedOffset {
                offset: 42,
                leader_epoch: -1,
                metadata,
                commit_timestamp_ms: 1234,
            };
            assert_eq!(decode(&encode(&c)), Some(c));
        }
        // A group whose name is a prefix of another's does not capture its keys.
        assert!(!key("ab", "t", 0)
            .unwrap()
            .starts_with(&group_prefix("a").unwrap()));
        // An id too long for the two length bytes has no key, rather than a wrapped one.
        assert_eq!(group_prefix(&"g".repeat(65_537)), None);
    }
}
