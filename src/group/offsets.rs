//! Committed offsets, through the store's offsets table (whose key layout is the store's).
//! Value: offset (i64) ‖ leader epoch (i32) ‖ commit time ms (i64) ‖ metadata flag (u8: 0 null,
//! 1 present) ‖ metadata bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::journal::{self, JournalWrite, OffsetJournal};
use crate::storage::Store;
use crate::storage::StoreError;

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
    /// Cluster mode: the replicated log every change goes to first (see `journal`).
    journal: std::sync::OnceLock<Arc<dyn OffsetJournal>>,
    /// Cluster mode: offsets sent inside transactions (TxnOffsetCommit), by producer id,
    /// held until the transaction's marker reaches the group's partition.
    txn_pending: std::sync::Mutex<HashMap<i64, TxnPending>>,
}

/// One producer's offsets waiting for its transaction's marker, as Kafka's group
/// coordinator keeps them (its pendingTransactionalOffsetCommits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnPending {
    pub producer_epoch: i16,
    /// Group -> (topic, partition) -> offset.
    pub groups: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
}

/// One group's offsets to write and to delete, as a load replaces them.
type GroupWrites = (Vec<(String, i32, Vec<u8>)>, Vec<(String, i32)>);

/// One committed offset with its place, as expiry looks at them.
#[derive(Debug, Clone)]
pub struct OffsetEntry {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: CommittedOffset,
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
            journal: std::sync::OnceLock::new(),
            txn_pending: Default::default(),
        }
    }

    /// Cluster mode: every later change is appended to `j` before the table is written.
    pub fn set_journal(&self, j: Arc<dyn OffsetJournal>) {
        let _ = self.journal.set(j);
    }

    /// Appends deletions of the given offsets to the journal, if there is one.
    fn journal_deletes(&self, group: &str, gone: &[(&str, i32)]) -> Result<(), ResponseError> {
        if let (Some(j), false) = (self.journal.get(), gone.is_empty()) {
            let records = gone
                .iter()
                .map(|(t, p)| (journal::offset_key(group, t, *p), None))
                .collect();
            // Deletions are not awaited: a deletion lost with its leader leaves the offset
            // to the next expiry pass or DeleteGroups, as in Kafka.
            drop(j.append(group, None, records)?);
        }
        Ok(())
    }

    /// Cluster mode: appends a classic group's metadata (or, with None, its deletion) to
    /// the group's partition; the caller may await the write (the leader's SyncGroup
    /// does). A coordinator lost before the in-sync replicas have it costs the members a
    /// rejoin, as a restart does.
    pub fn journal_group(
        &self,
        group: &str,
        metadata: Option<&journal::GroupRecord>,
    ) -> Option<JournalWrite> {
        let j = self.journal.get()?;
        let record = (
            journal::group_key(group),
            metadata.map(journal::group_value),
        );
        match j.append(group, None, vec![record]) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!(group, error = ?e, "group metadata not journaled");
                None
            }
        }
    }

    /// Replaces the offsets of every group `mine` selects with `entries` (the state read
    /// back from the journal by a new coordinator): what this broker held for those groups
    /// from an earlier term is dropped. Returns the groups now holding offsets.
    pub fn replace_groups(
        &self,
        mine: impl Fn(&str) -> bool,
        entries: std::collections::BTreeMap<(String, String, i32), CommittedOffset>,
    ) -> Result<Vec<String>, StoreError> {
        let _w = self.write_guard();
        let mut by_group: std::collections::BTreeMap<String, GroupWrites> = Default::default();
        for (g, t, p, _) in self.store.offsets(None)? {
            if mine(&g) && !entries.contains_key(&(g.clone(), t.clone(), p)) {
                by_group.entry(g).or_default().1.push((t, p));
            }
        }
        for ((g, t, p), c) in &entries {
            by_group
                .entry(g.clone())
                .or_default()
                .0
                .push((t.clone(), *p, encode(c)));
        }
        let mut live = Vec::new();
        for (g, (puts, deletes)) in &by_group {
            let puts: Vec<(&str, i32, Vec<u8>)> = puts
                .iter()
                .map(|(t, p, v)| (t.as_str(), *p, v.clone()))
                .collect();
            let deletes: Vec<(&str, i32)> = deletes.iter().map(|(t, p)| (t.as_str(), *p)).collect();
            match self.store.write_offsets(g, &puts, &deletes) {
                Ok(()) => {}
                // A group id too long for this broker's keys: Kafka would have refused it.
                Err(StoreError::KeyTooLong(_)) => continue,
                Err(e) => return Err(e),
            }
            if !puts.is_empty() {
                live.push(g.clone());
            }
        }
        Ok(live)
    }

    fn write_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every committed offset of every group, for expiry.
    pub fn entries(&self) -> Result<Vec<OffsetEntry>, StoreError> {
        Ok(self
            .store
            .offsets(None)?
            .into_iter()
            .filter_map(|(group, topic, partition, v)| {
                Some(OffsetEntry {
                    group,
                    topic,
                    partition,
                    offset: decode(&v)?,
                })
            })
            .collect())
    }

    /// Deletes the given offsets of a group if each is still the commit that was judged
    /// expired (same commit time); returns how many were deleted.
    pub fn expire(&self, group: &str, expired: &[(String, i32, i64)]) -> Result<usize, StoreError> {
        let _w = self.write_guard();
        let mut gone: Vec<(&str, i32)> = Vec::new();
        for (topic, partition, commit_ms) in expired {
            let current = self.store.offset(group, topic, *partition)?;
            if current
                .as_deref()
                .and_then(decode)
                .map(|c| c.commit_timestamp_ms)
                == Some(*commit_ms)
            {
                gone.push((topic.as_str(), *partition));
            }
        }
        if !gone.is_empty() {
            if self.journal_deletes(group, &gone).is_err() {
                // No longer this group's coordinator: its new one expires them.
                return Ok(0);
            }
            self.store.write_offsets(group, &[], &gone)?;
        }
        Ok(gone.len())
    }

    /// Runs `f` if the group has no committed offsets, with commits held off meanwhile, so
    /// a group is never deleted while a commit to it is being written.
    pub fn if_no_offsets<T>(
        &self,
        group: &str,
        f: impl FnOnce() -> T,
    ) -> Result<Option<T>, StoreError> {
        let _w = self.write_guard();
        let any = !self.store.offsets(Some(group))?.is_empty();
        Ok((!any).then(f))
    }

    /// Writes a group's commits in one atomic write. In cluster mode they are appended to
    /// the journal first; the caller awaits the returned write (see [`journal::settle`])
    /// before it tells the client the commit is durable.
    pub fn commit(
        &self,
        group: &str,
        offsets: &[(String, i32, CommittedOffset)],
    ) -> Result<Option<JournalWrite>, ResponseError> {
        super::validate_group_id(group)?;
        let _w = self.write_guard();
        // The local write is built first: it refuses ids too long for the table's key,
        // and the journal must never hold a commit the table refused.
        let mut wb = self.store.batch();
        for (t, p, c) in offsets {
            wb.put_offset(group, t, *p, &encode(c))
                .map_err(|_| ResponseError::InvalidGroupId)?;
        }
        let pending = match self.journal.get() {
            Some(j) => Some(
                j.append(
                    group,
                    None,
                    offsets
                        .iter()
                        .map(|(t, p, c)| {
                            (
                                journal::offset_key(group, t, *p),
                                Some(journal::offset_value(c)),
                            )
                        })
                        .collect(),
                )?,
            ),
            None => None,
        };
        self.store
            .write_direct(wb)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        Ok(pending)
    }

    /// Cluster mode, TxnOffsetCommit: appends the offsets as the producer's transactional
    /// records of the group's partition and holds them until the transaction's marker
    /// ([`OffsetStore::complete_txn`]). The caller awaits the returned write before it
    /// answers. PRODUCER_FENCED for an epoch older than the producer's last.
    pub fn commit_txn(
        &self,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets: &[(String, i32, CommittedOffset)],
    ) -> Result<JournalWrite, ResponseError> {
        super::validate_group_id(group)?;
        let journal = self
            .journal
            .get()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        // The same key check as a commit's, so that the marker cannot find offsets the
        // table refuses.
        if !offsets
            .iter()
            .all(|(t, _, _)| crate::storage::offset_key_fits(group, t))
        {
            return Err(ResponseError::InvalidGroupId);
        }
        let _w = self.write_guard();
        let mut pending = self.pending();
        if pending
            .get(&producer_id)
            .is_some_and(|p| p.producer_epoch > producer_epoch)
        {
            return Err(ResponseError::ProducerFenced);
        }
        let records = offsets
            .iter()
            .map(|(t, p, c)| {
                (
                    journal::offset_key(group, t, *p),
                    Some(journal::offset_value(c)),
                )
            })
            .collect();
        let write = journal
            .append(group, Some((producer_id, producer_epoch)), records)
            .map_err(|e| match e {
                ResponseError::InvalidProducerEpoch => ResponseError::ProducerFenced,
                e => e,
            })?;
        let entry = pending.entry(producer_id).or_default();
        if producer_epoch > entry.producer_epoch {
            entry.groups.clear();
        }
        entry.producer_epoch = producer_epoch;
        let held = entry.groups.entry(group.to_string()).or_default();
        for (t, p, c) in offsets {
            held.insert((t.clone(), *p), c.clone());
        }
        Ok(write)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<i64, TxnPending>> {
        self.txn_pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The marker of `producer_id`'s transaction reached the partition of the groups `pick`
    /// selects: a commit makes their held offsets committed (in the table only: the log
    /// already has the records and the marker), an abort drops them. Returns the groups
    /// whose offsets were committed.
    pub fn complete_txn(
        &self,
        producer_id: i64,
        commit: bool,
        pick: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let _w = self.write_guard();
        let mut pending = self.pending();
        let Some(entry) = pending.get_mut(&producer_id) else {
            return Ok(Vec::new());
        };
        let picked: Vec<String> = entry.groups.keys().filter(|g| pick(g)).cloned().collect();
        let mut committed = Vec::new();
        for group in picked {
            let Some(held) = entry.groups.get(&group) else {
                continue;
            };
            if commit && !held.is_empty() {
                let puts: Vec<(&str, i32, Vec<u8>)> = held
                    .iter()
                    .map(|((t, p), c)| (t.as_str(), *p, encode(c)))
                    .collect();
                self.store.write_offsets(&group, &puts, &[])?;
                committed.push(group.clone());
            }
            entry.groups.remove(&group);
        }
        if entry.groups.is_empty() {
            pending.remove(&producer_id);
        }
        Ok(committed)
    }

    /// Partitions of `group` with offsets held for an open transaction (OffsetFetch with
    /// require_stable answers UNSTABLE_OFFSET_COMMIT for them).
    pub fn txn_pending_partitions(&self, group: &str) -> BTreeSet<(String, i32)> {
        self.pending()
            .values()
            .filter_map(|p| p.groups.get(group))
            .flat_map(|held| held.keys().cloned())
            .collect()
    }

    /// Every group with offsets held for open transactions, with their partitions: offsets
    /// expiry keeps those, as Kafka does.
    pub fn groups_in_open_txns(&self) -> HashMap<String, HashSet<(String, i32)>> {
        let mut out: HashMap<String, HashSet<(String, i32)>> = HashMap::new();
        for p in self.pending().values() {
            for (g, held) in &p.groups {
                out.entry(g.clone())
                    .or_default()
                    .extend(held.keys().cloned());
            }
        }
        out
    }

    /// Forgets the held transactional offsets of the groups `pick` selects (this broker no
    /// longer coordinates them), or replaces them with `loaded` (a new term's load).
    pub fn replace_txn_pending(
        &self,
        pick: impl Fn(&str) -> bool,
        loaded: HashMap<i64, TxnPending>,
    ) {
        let mut pending = self.pending();
        for p in pending.values_mut() {
            p.groups.retain(|g, _| !pick(g));
        }
        pending.retain(|_, p| !p.groups.is_empty());
        for (pid, l) in loaded {
            let entry = pending.entry(pid).or_default();
            entry.producer_epoch = entry.producer_epoch.max(l.producer_epoch);
            entry.groups.extend(l.groups);
        }
    }

    pub fn fetch(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<CommittedOffset>, ResponseError> {
        let v = self
            .store
            .offset(group, topic, partition)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        Ok(v.as_deref().and_then(decode))
    }

    /// Every committed offset of a group: (topic, partition, offset), sorted.
    pub fn fetch_all(
        &self,
        group: &str,
    ) -> Result<Vec<(String, i32, CommittedOffset)>, ResponseError> {
        Ok(self
            .store
            .offsets(Some(group))
            .map_err(|_| ResponseError::KafkaStorageError)?
            .into_iter()
            .filter_map(|(_, t, p, v)| Some((t, p, decode(&v)?)))
            .collect())
    }

    /// Every committed offset of every group: (group, topic, partition, offset).
    pub fn all(&self) -> Result<Vec<(String, String, i32, i64)>, ResponseError> {
        Ok(self
            .store
            .offsets(None)
            .map_err(|_| ResponseError::KafkaStorageError)?
            .into_iter()
            .filter_map(|(g, t, p, v)| Some((g, t, p, decode(&v)?.offset)))
            .collect())
    }

    /// Deletes the given partitions' offsets, or all of the group's when `None`.
    pub fn delete(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<(), ResponseError> {
        let _w = self.write_guard();
        let all;
        let gone: Vec<(&str, i32)> = match partitions {
            Some(ps) => ps.iter().map(|(t, p)| (t.as_str(), *p)).collect(),
            None => {
                all = self.fetch_all(group)?;
                all.iter().map(|(t, p, _)| (t.as_str(), *p)).collect()
            }
        };
        self.journal_deletes(group, &gone)?;
        self.store
            .write_offsets(group, &[], &gone)
            .map_err(|_| ResponseError::KafkaStorageError)
    }

    /// The ids of every group that has committed offsets (loaded at start-up).
    pub fn group_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = Vec::new();
        for (g, _, _, _) in self.store.offsets(None)? {
            if ids.last() != Some(&g) {
                ids.push(g);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for metadata in [None, Some(String::new()), Some("meta data ✓".to_string())] {
            let c = CommittedOffset {
                offset: 42,
                leader_epoch: -1,
                metadata,
                commit_timestamp_ms: 1234,
            };
            assert_eq!(decode(&encode(&c)), Some(c));
        }
    }
}
