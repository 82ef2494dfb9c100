//! Cluster mode: the share coordinator (Kafka's `ShareCoordinator`), which keeps every share
//! partition's delivery state on the replicated, compacted `__share_group_state`, so the
//! state survives the loss of the share partition's leader.
//!
//! A share partition's state belongs to the leader of its partition of `__share_group_state`
//! (Kafka's hash of `group:topicId:partition`). The share partition's own leader (the data
//! partition's leader, see `manager`) reads the state when it first serves the share
//! partition in its term, and writes each change there; a change is answered once the
//! in-sync replicas have its record. A broker that becomes the leader of a partition of
//! `__share_group_state` loads the states from its log first (`coordinator_log` drives it,
//! key type 2) and answers COORDINATOR_LOAD_IN_PROGRESS meanwhile.
//!
//! Writes are fenced as in Kafka: a write or read from a leader epoch older than the last
//! one seen gets FENCED_LEADER_EPOCH (a deposed leader cannot overwrite its successor's
//! state), and a write from an older state epoch (the group's offsets were reset since)
//! FENCED_STATE_EPOCH. Every record is a full snapshot, so compaction keeps the last one.
//!
//! On a single node the share partitions keep their state in the broker's store (see
//! `manager`), and the same operations work on that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;

use super::partition::ShareSnapshot;
use super::records::{self, coordinator_key, StateKey, Stored};
use crate::clock::now_ms;
use crate::context::Context;

/// Kafka's topic of share partitions' states.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";
/// The key type of share partitions in FindCoordinator and `coordinator_log`.
pub const KEY_TYPE: i8 = 2;
/// How long a write waits for the in-sync replicas.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The states of the share partitions whose `__share_group_state` partitions this broker
/// leads, as their logs have them.
///
/// It exists so that the leaders of share partitions, on any broker, have one place that
/// decides which write wins and makes it durable before anyone relies on it.
#[derive(Default)]
pub struct ShareCoordinator {
    states: Mutex<HashMap<StateKey, Stored>>,
}

fn ckey(key: &StateKey) -> String {
    coordinator_key(&key.0, key.1, key.2)
}

impl ShareCoordinator {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StateKey, Stored>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets, in memory, the states whose coordinator keys `pick` selects.
    pub fn unload(&self, pick: &dyn Fn(&str) -> bool) -> usize {
        let mut states = self.lock();
        let before = states.len();
        states.retain(|k, _| !pick(&ckey(k)));
        before - states.len()
    }

    /// Why this broker cannot answer for `key` (cluster mode), or None.
    fn refusal(ctx: &Context, key: &StateKey) -> Option<ResponseError> {
        ctx.coordinator_error(KEY_TYPE, &ckey(key))
    }

    /// ReadShareGroupState: the share partition's state (None if it has none), for a leader
    /// in `leader_epoch`, which from now on fences older ones.
    pub fn read(
        &self,
        ctx: &Context,
        key: &StateKey,
        leader_epoch: i32,
    ) -> Result<Option<ShareSnapshot>, ResponseError> {
        if ctx.cluster.is_none() {
            return Ok(ctx.share_partitions.stored(&key.0, key.1, key.2));
        }
        if let Some(e) = Self::refusal(ctx, key) {
            return Err(e);
        }
        let mut states = self.lock();
        let Some(held) = states.get_mut(key) else {
            return Ok(None);
        };
        if leader_epoch < held.leader_epoch {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        held.leader_epoch = leader_epoch;
        Ok(Some(held.snapshot.clone()))
    }

    /// ReadShareGroupStateSummary: the stored record of the share partition, if any.
    pub fn summary(&self, ctx: &Context, key: &StateKey) -> Result<Option<Stored>, ResponseError> {
        if ctx.cluster.is_none() {
            return Ok(ctx
                .share_partitions
                .stored(&key.0, key.1, key.2)
                .map(|snapshot| Stored {
                    snapshot,
                    leader_epoch: -1,
                    snapshot_epoch: 0,
                    create_timestamp: -1,
                    write_timestamp: -1,
                }));
        }
        if let Some(e) = Self::refusal(ctx, key) {
            return Err(e);
        }
        Ok(self.lock().get(key).cloned())
    }

    /// WriteShareGroupState: the share partition's new state, from its leader in
    /// `leader_epoch`; answered once the in-sync replicas have it.
    pub async fn write(
        &self,
        ctx: &Context,
        key: &StateKey,
        leader_epoch: i32,
        snapshot: ShareSnapshot,
    ) -> Result<(), ResponseError> {
        self.put(ctx, key, Some((leader_epoch, snapshot)), false)
            .await
    }

    /// InitializeShareGroupState: the share partition starts over at `start_offset` in a
    /// new state epoch, which fences the writes of the old one (offsets reset).
    pub async fn initialize(
        &self,
        ctx: &Context,
        key: &StateKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> Result<(), ResponseError> {
        let snapshot = ShareSnapshot {
            state_epoch,
            start_offset,
            delivery_complete_count: 0,
            batches: Vec::new(),
        };
        self.put(ctx, key, Some((-1, snapshot)), true).await
    }

    /// DeleteShareGroupState: the share partition has no state any more.
    pub async fn delete(&self, ctx: &Context, key: &StateKey) -> Result<(), ResponseError> {
        self.put(ctx, key, None, false).await
    }

    /// Removes the states this coordinator keeps for share partitions of deleted topics.
    /// Each broker learns of a deletion and removes its own; a state it is not (or no
    /// longer) the coordinator of is left to the broker that is.
    pub async fn forget_topics(&self, ctx: &Context, topic_ids: &[uuid::Uuid]) {
        let keys: Vec<StateKey> = self
            .lock()
            .keys()
            .filter(|(_, t, _)| topic_ids.contains(t))
            .cloned()
            .collect();
        let mut removed = 0;
        for key in &keys {
            match self.delete(ctx, key).await {
                Ok(()) => removed += 1,
                Err(ResponseError::NotCoordinator | ResponseError::CoordinatorLoadInProgress) => {}
                Err(e) => {
                    tracing::warn!(group = %key.0, topic_id = %key.1, partition = key.2, error = ?e, "the share state of a deleted topic could not be removed")
                }
            }
        }
        if removed > 0 {
            tracing::info!(states = removed, "share states of deleted topics removed");
        }
    }

    async fn put(
        &self,
        ctx: &Context,
        key: &StateKey,
        change: Option<(i32, ShareSnapshot)>,
        initialize: bool,
    ) -> Result<(), ResponseError> {
        if ctx.cluster.is_none() {
            let (group, topic_id, partition) = key.clone();
            let snapshot = change.map(|(_, s)| s);
            crate::storage::offload::blocking(|| {
                ctx.share_partitions
                    .replace_stored(&group, topic_id, partition, snapshot.as_ref())
            });
            return Ok(());
        }
        if let Some(e) = Self::refusal(ctx, key) {
            return Err(e);
        }
        let (partition, appended, epoch) = {
            // Checked and appended under the lock, so the log's order is the checks' order.
            let mut states = self.lock();
            let held = states.get(key);
            let record = match (&change, held) {
                (None, None) => return Ok(()),
                (None, Some(_)) => None,
                (Some((leader_epoch, snapshot)), held) => {
                    if let Some(h) = held {
                        if initialize && snapshot.state_epoch <= h.snapshot.state_epoch {
                            return Err(ResponseError::FencedStateEpoch);
                        }
                        if !initialize && *leader_epoch < h.leader_epoch {
                            return Err(ResponseError::FencedLeaderEpoch);
                        }
                        if !initialize && snapshot.state_epoch < h.snapshot.state_epoch {
                            return Err(ResponseError::FencedStateEpoch);
                        }
                    }
                    let now = now_ms();
                    Some(Stored {
                        snapshot: snapshot.clone(),
                        leader_epoch: if initialize {
                            held.map_or(-1, |h| h.leader_epoch)
                        } else {
                            *leader_epoch
                        },
                        snapshot_epoch: held.map_or(0, |h| h.snapshot_epoch.saturating_add(1)),
                        create_timestamp: held.map_or(now, |h| h.create_timestamp),
                        write_timestamp: now,
                    })
                }
            };
            let value = record.as_ref().map(records::encode_value);
            let appended = crate::coordinator_log::append_for_key(
                ctx,
                SHARE_STATE_TOPIC,
                &ckey(key),
                None,
                vec![(records::encode_key(key), value)],
            )?;
            match record {
                Some(r) => {
                    states.insert(key.clone(), r);
                }
                None => {
                    states.remove(key);
                }
            }
            appended
        };
        let end = appended.end();
        partition
            .appended(appended)
            .await
            .map_err(|_| ResponseError::NotCoordinator)?;
        let Some(end) = end else { return Ok(()) };
        match partition
            .wait_for_high_watermark(end, epoch, WRITE_TIMEOUT)
            .await
        {
            Ok(()) => Ok(()),
            Err(ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError) => {
                Err(ResponseError::NotCoordinator)
            }
            Err(_) => Err(ResponseError::CoordinatorNotAvailable),
        }
    }
}

/// Reads `partition` (number `index`) of `__share_group_state` from its log start to its
/// end and makes the coordinator's states of its keys (those `mine` picks) exactly what the
/// log says. Returns (records, keys).
pub fn load(
    ctx: &Context,
    partition: &crate::log::partition::Partition,
    index: i32,
    mine: &dyn Fn(&str) -> bool,
) -> Result<(usize, usize), ResponseError> {
    let mut loaded: HashMap<StateKey, Stored> = HashMap::new();
    let (mut read, mut skipped) = (0usize, 0usize);
    crate::coordinator_log::scan_log(partition, |h, mut one, before| {
        if h.is_control() {
            return Ok(());
        }
        let set =
            RecordBatchDecoder::decode(&mut one).map_err(|_| ResponseError::CorruptMessage)?;
        for r in set.records {
            if r.offset < before || r.control {
                continue;
            }
            read += 1;
            let Some((0, key)) = r.key.as_deref().and_then(records::decode_key) else {
                skipped += 1;
                continue;
            };
            match r.value.as_deref().map(records::decode_value) {
                None => {
                    loaded.remove(&key);
                }
                Some(Some(stored)) => {
                    loaded.insert(key, stored);
                }
                Some(None) => skipped += 1,
            }
        }
        Ok(())
    })?;
    if skipped > 0 {
        tracing::warn!(
            topic = SHARE_STATE_TOPIC,
            partition = index,
            records = skipped,
            "skipped unreadable records while loading share partition states"
        );
    }
    let coordinator = &ctx.share_coordinator;
    coordinator.unload(mine);
    let n = loaded.len();
    coordinator
        .lock()
        .extend(loaded.into_iter().filter(|(k, _)| mine(&ckey(k))));
    Ok((read, n))
}
