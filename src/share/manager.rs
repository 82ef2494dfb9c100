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
//! State is in memory: a restarted broker starts each share partition over from its reset
//! strategy (the durability increment persists [`SharePartition::snapshot`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use super::partition::{SharePartition, SharePartitionConfig};
use crate::group::config::GroupConfigs;
use crate::log::Partition;

/// A share partition's key: group, topic id, partition index.
pub type ShareKey = (Arc<str>, Uuid, i32);

/// The share partitions of this broker.
///
/// It exists so every share partition has one owner that makes it, applies the group's
/// configs to it, and tells waiting fetches when records come free.
pub struct SharePartitions {
    parts: Mutex<HashMap<ShareKey, Arc<Mutex<SharePartition>>>>,
    group_configs: std::sync::OnceLock<Arc<GroupConfigs>>,
    /// Fired when records become AVAILABLE again, so waiting ShareFetches look again.
    pub released: tokio::sync::Notify,
}

impl Default for SharePartitions {
    fn default() -> Self {
        SharePartitions {
            parts: Mutex::new(HashMap::new()),
            group_configs: std::sync::OnceLock::new(),
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

    fn lock(&self) -> MutexGuard<'_, HashMap<ShareKey, Arc<Mutex<SharePartition>>>> {
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

    /// The share partition of `group` on `log`, made from the reset strategy if it is new.
    pub fn get_or_init(
        &self,
        group: &str,
        topic_id: Uuid,
        log: &Partition,
        now: i64,
    ) -> Arc<Mutex<SharePartition>> {
        let key: ShareKey = (Arc::from(group), topic_id, log.index);
        if let Some(sp) = self.lock().get(&key) {
            return sp.clone();
        }
        let config = self.config(group);
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
        let sp = SharePartition::initialize(
            config,
            reset,
            log.log_start_offset(),
            high_watermark,
            |ts| log.offset_for_timestamp(ts).ok().flatten().map(|(o, _)| o),
            now,
        );
        self.lock()
            .entry(key)
            .or_insert_with(|| Arc::new(Mutex::new(sp)))
            .clone()
    }

    /// The share partition if it exists (acknowledgements never make one).
    pub fn get(
        &self,
        group: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Option<Arc<Mutex<SharePartition>>> {
        let key: ShareKey = (Arc::from(group), topic_id, partition);
        self.lock().get(&key).cloned()
    }

    /// Runs `f` on the share partition with the group's current configs and due locks
    /// expired first; wakes waiting fetches if records came free.
    pub fn with<R>(
        &self,
        group: &str,
        sp: &Mutex<SharePartition>,
        now: i64,
        f: impl FnOnce(&mut SharePartition) -> R,
    ) -> R {
        let config = self.config(group);
        let mut guard = sp.lock().unwrap_or_else(|e| e.into_inner());
        if guard.config() != &config {
            guard.set_config(config);
        }
        let freed = guard.expire_locks(now);
        let available_before = guard.can_acquire_records();
        let result = f(&mut guard);
        if freed.available > 0 || (!available_before && guard.can_acquire_records()) {
            self.released.notify_waiters();
        }
        result
    }

    /// The earliest lock deadline of `group`'s share partitions among `keys`, when a
    /// waiting fetch must look again (an expired lock makes its records available).
    pub fn next_deadline(&self, group: &str, keys: &[(Uuid, i32)]) -> Option<i64> {
        keys.iter()
            .filter_map(|(t, p)| self.get(group, *t, *p))
            .filter_map(|sp| {
                sp.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .next_lock_deadline()
            })
            .min()
    }

    /// Releases every record `member` holds in `group` (its share session closed or its
    /// connection went), as Kafka's `releaseSession` does.
    pub fn release_member(&self, group: &str, member: &str, now: i64) {
        let parts: Vec<Arc<Mutex<SharePartition>>> = self
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

    /// Forgets every share partition of `group` (the group was deleted).
    pub fn remove_group(&self, group: &str) {
        self.lock().retain(|(g, _, _), _| &**g != group);
    }

    /// Forgets the share partitions of a topic that is gone.
    pub fn remove_topic(&self, topic_id: Uuid) {
        self.lock().retain(|(_, t, _), _| *t != topic_id);
    }
}
