//! The share partitions this broker leads (Kafka's `SharePartitionManager` cache): one
//! [`SharePartition`] per (group, topic-partition), made on the first ShareFetch from where
//! the group's `share.auto.offset.reset` says, and driven by ShareFetch and ShareAcknowledge.
//!
//! Lock expiry needs no timer of its own: every operation first expires the locks that are
//! due, so nothing can observe a lock past its deadline, and a ShareFetch waiting for records
//! also wakes at the earliest deadline of the partitions it waits on
//! ([`SharePartitions::next_deadline`]). Records that become available again (released,
//! expired) wake waiting fetches through [`SharePartitions::released`].
//!
//! Every change is written to the broker's store as the share partition's snapshot
//! ([`SharePartition::snapshot`], encoded by `persist`), and a share partition first used
//! after a restart is rebuilt from it: records that were acquired come back AVAILABLE with
//! their delivery counts, everything acknowledged or archived stays done.
//!
//! In a cluster the state lives with the share coordinator instead (`coordinator`, on the
//! replicated `__share_group_state`): a leader reads it when it first serves a share
//! partition in its term ([`SharePartitions::prepare`]) and writes it with every
//! acknowledgement, before the acknowledgement is answered ([`SharePartitions::flush`]).
//! Acquisitions, releases and expired locks go with the next write, as in Kafka: a new
//! leader may count one delivery fewer of a record that was in flight, never lose an
//! acknowledgement. A slot remembers the leader epoch it was made in, and one from an
//! earlier term is dropped, so a broker that leads a partition again reads the state anew.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use kafka_protocol::ResponseError;

use super::partition::{SharePartition, SharePartitionConfig, ShareSnapshot};
use super::persister::RemotePersister;
use crate::group::config::GroupConfigs;
use crate::log::Partition;
use crate::storage::Store;

/// A share partition's key: group, topic id, partition index.
pub type ShareKey = (Arc<str>, Uuid, i32);

/// One share partition and what of it the store holds.
pub struct Slot {
    /// Which share partition this is.
    pub(super) id: ShareKey,
    key: String,
    /// The partition's leader epoch when this slot was made: a slot of an earlier term is
    /// stale (another leader may have moved the state on since).
    leader_epoch: i32,
    state: Mutex<Entry>,
    /// Serializes writes to the share coordinator, so they land in the order made.
    flushing: tokio::sync::Mutex<()>,
}

struct Entry {
    partition: SharePartition,
    /// The snapshot last written, so unchanged state is not written again.
    persisted: Option<ShareSnapshot>,
}

/// The store key of a share partition (see `storage::keys::META_SHARE_STATE`).
fn store_key(group: &str, topic_id: Uuid, partition: i32) -> String {
    format!("{topic_id}\0{partition}\0{group}")
}

/// The (topic id, partition, group) of a store key.
fn parse_store_key(key: &str) -> Option<(Uuid, i32, &str)> {
    let mut parts = key.splitn(3, '\0');
    let topic = Uuid::parse_str(parts.next()?).ok()?;
    let partition = parts.next()?.parse().ok()?;
    Some((topic, partition, parts.next()?))
}

/// The share partitions of this broker.
///
/// It exists so every share partition has one owner that makes it, applies the group's
/// configs to it, and tells waiting fetches when records come free.
pub struct SharePartitions {
    parts: Mutex<HashMap<ShareKey, Arc<Slot>>>,
    group_configs: std::sync::OnceLock<Arc<GroupConfigs>>,
    store: std::sync::OnceLock<Arc<Store>>,
    /// Cluster mode: the share coordinators keep the state, not the store.
    remote: std::sync::OnceLock<Arc<RemotePersister>>,
    /// Fired when records become AVAILABLE again, so waiting ShareFetches look again.
    pub released: tokio::sync::Notify,
    /// Share partitions with records on their way to the dead-letter queue.
    pub(super) dlq: super::dlq::DlqQueue,
}

impl Default for SharePartitions {
    fn default() -> Self {
        SharePartitions {
            parts: Mutex::new(HashMap::new()),
            group_configs: std::sync::OnceLock::new(),
            store: std::sync::OnceLock::new(),
            remote: std::sync::OnceLock::new(),
            released: tokio::sync::Notify::new(),
            dlq: Default::default(),
        }
    }
}

/// The wall clock in ms, which lock deadlines are in.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl SharePartitions {
    pub fn set_group_configs(&self, c: Arc<GroupConfigs>) {
        let _ = self.group_configs.set(c);
    }

    /// From now on every change is written to `store`, and share partitions are rebuilt
    /// from it.
    pub fn set_store(&self, store: Arc<Store>) {
        let _ = self.store.set(store);
    }

    /// Cluster mode: from now on the state is read from and written to the share
    /// coordinators through `remote`.
    pub fn set_remote(&self, remote: Arc<RemotePersister>) {
        let _ = self.remote.set(remote);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ShareKey, Arc<Slot>>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `share.*` configs in force for `group` (the group's own, else the broker's).
    pub fn config(&self, group: &str) -> SharePartitionConfig {
        match self.group_configs.get() {
            Some(c) => {
                let e = c.effective(group);
                SharePartitionConfig {
                    record_lock_duration_ms: i64::from(e.share_record_lock_duration_ms),
                    delivery_count_limit: e.share_delivery_count_limit.clamp(1, 1000) as i16,
                    max_record_locks: i64::from(e.share_partition_max_record_locks.max(1)),
                    renew_acknowledge_enable: e.share_renew_acknowledge_enable,
                    dlq_enabled: crate::apis::finalized_level("share.version") >= 2
                        && e.share_dlq_named,
                }
            }
            None => SharePartitionConfig::default(),
        }
    }

    /// Whether `group` reads committed records only (`share.isolation.level`).
    pub fn read_committed(&self, group: &str) -> bool {
        self.group_configs
            .get()
            .is_some_and(|c| c.effective(group).share_read_committed)
    }

    /// The slot of `key` if it is of the partition's current term (`leader_epoch`); a slot
    /// of an earlier term is dropped.
    fn current(&self, key: &ShareKey, leader_epoch: i32) -> Option<Arc<Slot>> {
        let mut parts = self.lock();
        match parts.get(key) {
            Some(slot) if slot.leader_epoch == leader_epoch => Some(slot.clone()),
            Some(_) => {
                parts.remove(key);
                None
            }
            None => None,
        }
    }

    /// A share partition with no state yet, from the group's `share.auto.offset.reset`.
    fn fresh(&self, group: &str, log: &Partition, now: i64) -> SharePartition {
        let reset = self
            .group_configs
            .get()
            .map(|c| c.effective(group).share_auto_offset_reset)
            .unwrap_or(super::partition::AutoOffsetReset::Latest);
        let high_watermark = if self.read_committed(group) {
            log.last_stable_offset()
        } else {
            log.high_watermark()
        };
        SharePartition::initialize(
            self.config(group),
            reset,
            log.log_start_offset(),
            high_watermark,
            |ts| log.offset_for_timestamp(ts).ok().flatten().map(|(o, _)| o),
            now,
        )
    }

    /// Makes the slot of `key` unless one of this term was made meanwhile.
    fn insert(
        &self,
        key: ShareKey,
        leader_epoch: i32,
        partition: SharePartition,
        persisted: Option<ShareSnapshot>,
    ) -> Arc<Slot> {
        let store_key = store_key(&key.0, key.1, key.2);
        let mut parts = self.lock();
        if let Some(slot) = parts.get(&key).filter(|s| s.leader_epoch == leader_epoch) {
            return slot.clone();
        }
        let slot = Arc::new(Slot {
            id: key.clone(),
            key: store_key,
            leader_epoch,
            state: Mutex::new(Entry {
                partition,
                persisted,
            }),
            flushing: tokio::sync::Mutex::new(()),
        });
        parts.insert(key, slot.clone());
        slot
    }

    /// The share partition of `group` on `log`: as the store has it, else made from the
    /// reset strategy. In a cluster only [`SharePartitions::prepare`] makes one: None
    /// until it has.
    pub fn get_or_init(
        &self,
        group: &str,
        topic_id: Uuid,
        log: &Partition,
        now: i64,
    ) -> Option<Arc<Slot>> {
        let key: ShareKey = (Arc::from(group), topic_id, log.index);
        let epoch = log.leader_epoch();
        if let Some(slot) = self.current(&key, epoch) {
            return Some(slot);
        }
        if self.remote.get().is_some() {
            return None;
        }
        let config = self.config(group);
        let stored = self
            .stored(group, topic_id, log.index)
            .and_then(
                |snapshot| match SharePartition::from_snapshot(config.clone(), &snapshot) {
                    Ok(p) => Some((p, snapshot)),
                    Err(e) => {
                        tracing::warn!(group, %topic_id, partition = log.index, error = %e, "a share partition's stored state is refused; starting it over");
                        None
                    }
                },
            );
        let (partition, persisted) = match stored {
            Some((p, snapshot)) => (p, Some(snapshot)),
            None => (self.fresh(group, log, now), None),
        };
        Some(self.insert(key, epoch, partition, persisted))
    }

    /// Cluster mode: makes the share partition of `group` on `log` for this term from the
    /// state its share coordinator has (else from the reset strategy), unless it is made.
    pub async fn prepare(
        &self,
        group: &str,
        topic_id: Uuid,
        log: &Partition,
    ) -> Result<(), ResponseError> {
        let Some(remote) = self.remote.get() else {
            return Ok(());
        };
        let key: ShareKey = (Arc::from(group), topic_id, log.index);
        let epoch = log.leader_epoch();
        if self.current(&key, epoch).is_some() {
            return Ok(());
        }
        let stored = remote
            .read(&(group.to_string(), topic_id, log.index), epoch)
            .await?;
        let config = self.config(group);
        let loaded = stored.and_then(|snapshot| {
            SharePartition::from_snapshot(config, &snapshot)
                .map_err(|e| {
                    tracing::warn!(group, %topic_id, partition = log.index, error = %e, "a share partition's state at its coordinator is refused; starting it over");
                })
                .ok()
        });
        let (partition, persisted) = match loaded {
            Some(p) => {
                let snapshot = p.snapshot();
                (p, Some(snapshot))
            }
            None => (self.fresh(group, log, now_ms()), None),
        };
        self.insert(key, epoch, partition, persisted);
        Ok(())
    }

    /// Cluster mode: writes the share partition's state to its share coordinator if it
    /// changed since the last write; Ok once the coordinator's replicas have it. A fenced
    /// write (a newer leader, or offsets reset) drops the slot, so the next fetch reads the
    /// state anew.
    pub async fn flush(&self, slot: &Arc<Slot>) -> Result<(), ResponseError> {
        let Some(remote) = self.remote.get() else {
            return Ok(());
        };
        let Some((topic_id, partition, group)) = parse_store_key(&slot.key) else {
            return Ok(());
        };
        let _turn = slot.flushing.lock().await;
        let snapshot = {
            let entry = slot.state.lock().unwrap_or_else(|e| e.into_inner());
            let snapshot = entry.partition.snapshot();
            if entry.persisted.as_ref() == Some(&snapshot) {
                return Ok(());
            }
            snapshot
        };
        let key = (group.to_string(), topic_id, partition);
        match remote.write(&key, slot.leader_epoch, &snapshot).await {
            Ok(()) => {
                slot.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .persisted = Some(snapshot);
                Ok(())
            }
            Err(e) => {
                if matches!(
                    e,
                    ResponseError::FencedLeaderEpoch | ResponseError::FencedStateEpoch
                ) {
                    let mut parts = self.lock();
                    let k: ShareKey = (Arc::from(group), topic_id, partition);
                    if parts.get(&k).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                        parts.remove(&k);
                    }
                }
                tracing::warn!(group, %topic_id, partition, error = ?e, "writing a share partition's state to its coordinator failed");
                Err(e)
            }
        }
    }

    /// Cluster mode: `group` has no share session here any more: writes its share
    /// partitions' last changes (the releases of the closed sessions) to their
    /// coordinators and forgets them, so the next fetch reads the state anew, with any
    /// offsets reset since (Kafka's share partitions leave the cache likewise). `idle` is
    /// asked again before each is dropped, in case a member came back meanwhile.
    pub async fn retire_group(&self, group: &str, idle: impl Fn() -> bool) {
        if self.remote.get().is_none() {
            return;
        }
        let slots: Vec<(ShareKey, Arc<Slot>)> = self
            .lock()
            .iter()
            .filter(|((g, _, _), _)| &**g == group)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        for (key, slot) in slots {
            if self.flush(&slot).await.is_err() || !idle() {
                continue;
            }
            let mut parts = self.lock();
            if parts.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                parts.remove(&key);
            }
        }
    }

    /// Whether the share coordinators keep the state (cluster mode), and the way to them.
    pub fn remote(&self) -> Option<&Arc<RemotePersister>> {
        self.remote.get()
    }

    /// The state the store holds for a share partition (single node).
    pub fn stored(&self, group: &str, topic_id: Uuid, partition: i32) -> Option<ShareSnapshot> {
        let store = self.store.get()?;
        let bytes = match store.share_state(&store_key(group, topic_id, partition)) {
            Ok(b) => b?,
            Err(e) => {
                tracing::error!(group, %topic_id, partition, error = %e, "reading a share partition's state failed; starting it over");
                return None;
            }
        };
        let decoded = super::persist::decode(&bytes);
        if decoded.is_none() {
            tracing::warn!(group, %topic_id, partition, "a share partition's stored state is unreadable; starting it over from share.auto.offset.reset");
        }
        decoded
    }

    /// Replaces (or with None deletes) the state the store holds for a share partition,
    /// and drops it from memory so it is made from the new state (single node: the share
    /// coordinator's APIs).
    pub fn replace_stored(
        &self,
        group: &str,
        topic_id: Uuid,
        partition: i32,
        snapshot: Option<&ShareSnapshot>,
    ) {
        self.lock().remove(&(Arc::from(group), topic_id, partition));
        let Some(store) = self.store.get() else {
            return;
        };
        let key = store_key(group, topic_id, partition);
        let mut batch = store.batch();
        match snapshot {
            Some(s) => batch.put_share_state(&key, &super::persist::encode(s)),
            None => batch.delete_share_state(&key),
        }
        if let Err(e) = store.write(batch) {
            tracing::error!(group, %topic_id, partition, error = %e, "writing a share partition's state failed");
        }
    }

    /// The share partition if it is of the partition's current term (`leader_epoch`).
    pub fn get_current(
        &self,
        group: &str,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
    ) -> Option<Arc<Slot>> {
        self.current(&(Arc::from(group), topic_id, partition), leader_epoch)
    }

    /// The share partition if it exists (acknowledgements never make one).
    pub fn get(&self, group: &str, topic_id: Uuid, partition: i32) -> Option<Arc<Slot>> {
        let key: ShareKey = (Arc::from(group), topic_id, partition);
        self.lock().get(&key).cloned()
    }

    /// Runs `f` on the share partition with the group's current configs and due locks
    /// expired first, writes the state to the store if it changed, and wakes waiting
    /// fetches if records came free. Calls RocksDB: callers are off the async workers.
    pub fn with<R>(
        &self,
        group: &str,
        slot: &Slot,
        now: i64,
        f: impl FnOnce(&mut SharePartition) -> R,
    ) -> R {
        let config = self.config(group);
        let mut entry = slot.state.lock().unwrap_or_else(|e| e.into_inner());
        if entry.partition.config() != &config {
            entry.partition.set_config(config);
        }
        let freed = entry.partition.expire_locks(now);
        let available_before = entry.partition.can_acquire_records();
        let result = f(&mut entry.partition);
        if let Some(store) = self.store.get().filter(|_| self.remote.get().is_none()) {
            let snapshot = entry.partition.snapshot();
            if entry.persisted.as_ref() != Some(&snapshot) {
                let mut batch = store.batch();
                batch.put_share_state(&slot.key, &super::persist::encode(&snapshot));
                match store.write(batch) {
                    Ok(()) => entry.persisted = Some(snapshot),
                    Err(e) => {
                        tracing::error!(group, key = %slot.key.replace('\0', "/"), error = %e, "writing a share partition's state failed; it is kept in memory and written with its next change")
                    }
                }
            }
        }
        if freed.available > 0 || (!available_before && entry.partition.can_acquire_records()) {
            self.released.notify_waiters();
        }
        if entry.partition.has_dlq_work() {
            self.dlq.enqueue(&slot.id);
        }
        result
    }

    /// Reads a share partition without changing it.
    pub(super) fn peek<R>(&self, slot: &Slot, f: impl FnOnce(&SharePartition) -> R) -> R {
        f(&slot
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .partition)
    }

    /// Single node: the share partitions whose stored state has records on their way to
    /// the dead-letter queue (a stop came before their write was done), so the writer can
    /// take them up at start without waiting for a fetch.
    pub(super) fn stored_with_dlq_work(&self) -> Vec<(String, Uuid, i32)> {
        let Some(store) = self.store.get().filter(|_| self.remote.get().is_none()) else {
            return Vec::new();
        };
        let all = match store.share_states() {
            Ok(all) => all,
            Err(e) => {
                tracing::error!(error = %e, "reading the share partitions' states failed");
                return Vec::new();
            }
        };
        all.iter()
            .filter(|(_, bytes)| {
                super::persist::decode(bytes).is_some_and(|s| {
                    s.batches
                        .iter()
                        .any(|b| b.delivery_state == super::partition::RecordState::Archiving.id())
                })
            })
            .filter_map(|(k, _)| parse_store_key(k))
            .map(|(t, p, g)| (g.to_string(), t, p))
            .collect()
    }

    /// Every share partition held here, with its key.
    pub(super) fn slots(&self) -> Vec<Arc<Slot>> {
        self.lock().values().cloned().collect()
    }

    /// Whether `slot` is still the one held for its share partition (not dropped for a new
    /// term or an offsets reset).
    pub(super) fn is_current(&self, slot: &Arc<Slot>) -> bool {
        self.lock()
            .get(&slot.id)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
    }

    /// The earliest lock deadline of `group`'s share partitions among `keys`, when a
    /// waiting fetch must look again (an expired lock makes its records available).
    pub fn next_deadline(&self, group: &str, keys: &[(Uuid, i32)]) -> Option<i64> {
        keys.iter()
            .filter_map(|(t, p)| self.get(group, *t, *p))
            .filter_map(|slot| {
                slot.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .partition
                    .next_lock_deadline()
            })
            .min()
    }

    /// Releases every record `member` holds in `group` (its share session closed or its
    /// connection went), as Kafka's `releaseSession` does.
    pub fn release_member(&self, group: &str, member: &str, now: i64) {
        let parts: Vec<Arc<Slot>> = self
            .lock()
            .iter()
            .filter(|((g, _, _), _)| &**g == group)
            .map(|(_, sp)| sp.clone())
            .collect();
        let mut any = false;
        for sp in parts {
            let released = self.with(group, &sp, now, |s| s.release_member(member));
            any |= released.available > 0;
        }
        if any {
            self.released.notify_waiters();
        }
    }

    /// What DescribeShareGroupOffsets reports of a share partition: its start offset and
    /// how many records from it on are done with; `None` if the group never read it.
    pub fn summary(&self, group: &str, topic_id: Uuid, partition: i32) -> Option<(i64, i64)> {
        if let Some(slot) = self.get(group, topic_id, partition) {
            let entry = slot.state.lock().unwrap_or_else(|e| e.into_inner());
            let p = &entry.partition;
            return Some((p.start_offset(), p.delivery_complete_count()));
        }
        let s = self.stored(group, topic_id, partition)?;
        Some((s.start_offset, i64::from(s.delivery_complete_count)))
    }

    /// Every (topic id, partition) `group` has state for, in memory or in the store.
    pub fn partitions_of(&self, group: &str) -> std::collections::BTreeSet<(Uuid, i32)> {
        let mut out: std::collections::BTreeSet<(Uuid, i32)> = self
            .lock()
            .keys()
            .filter(|(g, _, _)| &**g == group)
            .map(|(_, t, p)| (*t, *p))
            .collect();
        if let Some(Ok(all)) = self.store.get().map(|s| s.share_states()) {
            out.extend(
                all.iter()
                    .filter_map(|(k, _)| parse_store_key(k))
                    .filter(|(_, _, g)| *g == group)
                    .map(|(t, p, _)| (t, p)),
            );
        }
        out
    }

    /// AlterShareGroupOffsets: the share partition starts over at `start_offset`, nothing
    /// in flight (the group is empty, so nothing is locked).
    pub fn reset(&self, group: &str, topic_id: Uuid, partition: i32, start_offset: i64) {
        let epoch = self
            .get(group, topic_id, partition)
            .map(|slot| {
                slot.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .partition
                    .state_epoch()
            })
            .or_else(|| {
                self.stored(group, topic_id, partition)
                    .map(|s| s.state_epoch)
            })
            .unwrap_or(0);
        let snapshot = ShareSnapshot {
            state_epoch: epoch.saturating_add(1),
            start_offset: start_offset.max(0),
            delivery_complete_count: 0,
            batches: Vec::new(),
        };
        // The next fetch makes the share partition from the new state.
        self.replace_stored(group, topic_id, partition, Some(&snapshot));
    }

    /// DeleteShareGroupOffsets: forgets `group`'s share partitions of one topic.
    pub fn remove_group_topic(&self, group: &str, topic_id: Uuid) {
        self.lock()
            .retain(|(g, t, _), _| !(&**g == group && *t == topic_id));
        self.delete_stored(|t, _, g| g == group && t == topic_id);
    }

    /// Forgets every share partition of `group`, in memory and in the store (the group
    /// was deleted).
    pub fn remove_group(&self, group: &str) {
        self.lock().retain(|(g, _, _), _| &**g != group);
        self.delete_stored(|_, _, g| g == group);
    }

    /// Forgets the share partitions of a topic that is gone.
    pub fn remove_topic(&self, topic_id: Uuid) {
        self.lock().retain(|(_, t, _), _| *t != topic_id);
        self.delete_stored(|t, _, _| t == topic_id);
    }

    fn delete_stored(&self, pick: impl Fn(Uuid, i32, &str) -> bool) {
        let Some(store) = self.store.get() else {
            return;
        };
        let result = store.share_states().and_then(|all| {
            let mut batch = store.batch();
            for (key, _) in &all {
                if parse_store_key(key).is_some_and(|(t, p, g)| pick(t, p, g)) {
                    batch.delete_share_state(key);
                }
            }
            store.write(batch)
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "deleting share partition states failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_name_group_topic_and_partition() {
        let t = Uuid::from_u128(5);
        let key = store_key("a\0b", t, 3);
        assert_eq!(parse_store_key(&key), Some((t, 3, "a\0b")));
        assert_eq!(parse_store_key("junk"), None);
    }
}
