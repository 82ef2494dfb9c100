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
//! their delivery counts, everything acknowledged or archived stays done. (A cluster does
//! not replicate it yet: a new leader starts over from the reset strategy.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use super::partition::{SharePartition, SharePartitionConfig, ShareSnapshot};
use crate::group::config::GroupConfigs;
use crate::log::Partition;
use crate::storage::Store;

/// A share partition's key: group, topic id, partition index.
pub type ShareKey = (Arc<str>, Uuid, i32);

/// One share partition and what of it the store holds.
pub struct Slot {
    key: String,
    state: Mutex<Entry>,
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
    /// Fired when records become AVAILABLE again, so waiting ShareFetches look again.
    pub released: tokio::sync::Notify,
}

impl Default for SharePartitions {
    fn default() -> Self {
        SharePartitions {
            parts: Mutex::new(HashMap::new()),
            group_configs: std::sync::OnceLock::new(),
            store: std::sync::OnceLock::new(),
            released: tokio::sync::Notify::new(),
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

    /// The share partition of `group` on `log`: as the store has it, else made from the
    /// reset strategy.
    pub fn get_or_init(&self, group: &str, topic_id: Uuid, log: &Partition, now: i64) -> Arc<Slot> {
        let key: ShareKey = (Arc::from(group), topic_id, log.index);
        if let Some(slot) = self.lock().get(&key) {
            return slot.clone();
        }
        let config = self.config(group);
        let store_key = store_key(group, topic_id, log.index);
        let stored = self.store.get().and_then(|store| {
            let bytes = match store.share_state(&store_key) {
                Ok(b) => b?,
                Err(e) => {
                    tracing::error!(group, %topic_id, partition = log.index, error = %e, "reading a share partition's state failed; starting it over");
                    return None;
                }
            };
            let Some(snapshot) = super::persist::decode(&bytes) else {
                tracing::warn!(group, %topic_id, partition = log.index, "a share partition's stored state is unreadable; starting it over from share.auto.offset.reset");
                return None;
            };
            match SharePartition::from_snapshot(config.clone(), &snapshot) {
                Ok(p) => Some((p, snapshot)),
                Err(e) => {
                    tracing::warn!(group, %topic_id, partition = log.index, error = %e, "a share partition's stored state is refused; starting it over");
                    None
                }
            }
        });
        let (partition, persisted) = match stored {
            Some((p, snapshot)) => (p, Some(snapshot)),
            None => {
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
                let p = SharePartition::initialize(
                    config,
                    reset,
                    log.log_start_offset(),
                    high_watermark,
                    |ts| log.offset_for_timestamp(ts).ok().flatten().map(|(o, _)| o),
                    now,
                );
                (p, None)
            }
        };
        self.lock()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Slot {
                    key: store_key,
                    state: Mutex::new(Entry {
                        partition,
                        persisted,
                    }),
                })
            })
            .clone()
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
        if let Some(store) = self.store.get() {
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
        result
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
        let store = self.store.get()?;
        let bytes = store
            .share_state(&store_key(group, topic_id, partition))
            .ok()??;
        let s = super::persist::decode(&bytes)?;
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
        let config = self.config(group);
        let epoch = self
            .get(group, topic_id, partition)
            .map(|slot| {
                slot.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .partition
                    .state_epoch()
            })
            .unwrap_or(0);
        let snapshot = ShareSnapshot {
            state_epoch: epoch.saturating_add(1),
            start_offset: start_offset.max(0),
            delivery_complete_count: 0,
            batches: Vec::new(),
        };
        let Ok(fresh) = SharePartition::from_snapshot(config, &snapshot) else {
            return;
        };
        let key = store_key(group, topic_id, partition);
        if let Some(store) = self.store.get() {
            let mut batch = store.batch();
            batch.put_share_state(&key, &super::persist::encode(&snapshot));
            if let Err(e) = store.write(batch) {
                tracing::error!(group, %topic_id, partition, error = %e, "writing a share partition's reset state failed");
            }
        }
        self.lock().insert(
            (Arc::from(group), topic_id, partition),
            Arc::new(Slot {
                key,
                state: Mutex::new(Entry {
                    partition: fresh,
                    persisted: Some(snapshot),
                }),
            }),
        );
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
