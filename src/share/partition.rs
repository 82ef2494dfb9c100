//! The state of one share-partition (KIP-932): which records of one topic-partition a share
//! group has delivered, to whom, how often, and what came of them. Kafka 4.4's
//! `kafka.server.share.SharePartition`, re-implemented as a pure state machine.
//!
//! It lives on the partition's leader, one per (group, topic-partition). It does no I/O and
//! reads no clock: every method takes `now_ms`, and acquisition locks are plain deadlines that
//! the caller's timer wheel drives through [`SharePartition::next_lock_deadline`] and
//! [`SharePartition::expire_locks`]. Durability is the caller's too: [`SharePartition::snapshot`]
//! is the persisted form (Kafka's ShareSnapshotValue) and [`SharePartition::from_snapshot`]
//! rebuilds from it.
//!
//! **Data structure.** As in Kafka, a `BTreeMap<first_offset, InFlightBatch>` ordered by
//! offset, each batch one state for a run of offsets until an operation touches part of it,
//! then one state per offset. Allocations are bounded by the in-flight window, never by a
//! number a client sends: new records are acquired only while `end - start + 1` is below
//! `share.partition.max.record.locks` (a batch_optimized fetch may overrun it by the rest of
//! one log batch, as in Kafka); no batch is longer than [`MAX_BATCH_RECORDS`], so the
//! per-offset switch allocates at most that many states; and every scan is over the cache.
//! The scans (next fetch offset, next lock deadline, start-offset advance) are linear in the
//! cache, which the window keeps to a few thousand entries.

mod ack;
mod acquire;
#[cfg(test)]
mod dlq_tests;
mod init;
#[cfg(test)]
mod init_tests;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use init::{AutoOffsetReset, PersistedBatch, ShareSnapshot, SnapshotError, MAX_SNAPSHOT_SPAN};
pub use state::{DlqCause, RecordState};
use state::{InFlightBatch, InFlightState};

/// Longest run of offsets one cache entry covers. New records and persisted batches are cut
/// at this length, so the switch to per-offset states never allocates more than this many.
/// A cut is invisible to clients: acquired ranges that touch are merged in responses.
pub const MAX_BATCH_RECORDS: i64 = 1 << 14;

/// The group configs that govern a share partition (Kafka's `share.*` group configs, already
/// resolved against the broker's bounds by the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharePartitionConfig {
    /// `share.record.lock.duration.ms`: how long an acquired record stays locked.
    pub record_lock_duration_ms: i64,
    /// `share.delivery.count.limit`: deliveries after which a released record is archived.
    pub delivery_count_limit: i16,
    /// `share.partition.max.record.locks`: the in-flight window, `end - start + 1`.
    pub max_record_locks: i64,
    /// `share.renew.acknowledge.enable`: whether acknowledge type 4 (Renew) is allowed.
    pub renew_acknowledge_enable: bool,
    /// Kafka's `isDLQEnabledForGroup`: share.version 2 is finalized and the group names an
    /// `errors.deadletterqueue.topic.name`. Rejected records, and records released after
    /// their last delivery, then go ARCHIVING on their way to that topic.
    pub dlq_enabled: bool,
}

impl Default for SharePartitionConfig {
    fn default() -> Self {
        SharePartitionConfig {
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            max_record_locks: 2000,
            renew_acknowledge_enable: true,
            dlq_enabled: false,
        }
    }
}

/// ShareFetch's `ShareAcquireMode` (KIP-1206): how `MaxRecords` is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireMode {
    /// 0: `MaxRecords` is rounded up to the end of a log batch, so batches stay whole.
    BatchOptimized,
    /// 1: exactly `MaxRecords`, splitting a log batch if needed.
    RecordLimit,
}

impl AcquireMode {
    /// The mode for the wire value; `None` for values Kafka rejects.
    pub fn from_id(id: i8) -> Option<AcquireMode> {
        match id {
            0 => Some(AcquireMode::BatchOptimized),
            1 => Some(AcquireMode::RecordLimit),
            _ => None,
        }
    }
}

/// One `AcquiredRecords` entry of a ShareFetch response: offsets handed to the member, all
/// with the same delivery count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcquiredRange {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// One `AcknowledgementBatches` entry of ShareFetch or ShareAcknowledge: one type for the
/// whole range, or one per offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcknowledgementBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    /// 0 Gap, 1 Accept, 2 Release, 3 Reject, 4 Renew.
    pub acknowledge_types: Vec<i8>,
}

/// A failed acknowledgement: Kafka's error code (INVALID_RECORD_STATE, or INVALID_REQUEST
/// for offsets past the acquired records) and its message, which clients log.
pub type AcknowledgeError = (kafka_protocol::ResponseError, String);

/// What a state change did, so the caller knows whether to persist and wake fetchers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Records that went back to AVAILABLE (a waiting fetch can take them).
    pub available: u64,
    /// Records archived because they reached the delivery limit.
    pub archived: u64,
    /// Records that reached the delivery limit and wait for the dead-letter queue.
    pub archiving: u64,
}

impl Released {
    fn count(&mut self, state: Option<RecordState>, records: u64) {
        match state {
            Some(RecordState::Available) => self.available += records,
            Some(RecordState::Archived) => self.archived += records,
            Some(RecordState::Archiving) => self.archiving += records,
            _ => {}
        }
    }

    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.available + self.archived + self.archiving > 0
    }
}

/// A run of ARCHIVING records to write to the dead-letter queue, all with the same delivery
/// count and cause (Kafka's `ShareGroupDLQRecordParameter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DlqWork {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
    pub cause: DlqCause,
}

/// One share-partition: the share-partition start offset (SPSO), the records in flight after
/// it, and the rules that move them. See the module documentation.
#[derive(Clone, Debug)]
pub struct SharePartition {
    config: SharePartitionConfig,
    /// SPSO: every record before it is done with (or gone from the log).
    start_offset: i64,
    /// One past the last offset ever acquired; equal to `start_offset` when nothing is in
    /// flight. Kafka keeps `endOffset`, which is this minus one (or the start when empty).
    next_offset: i64,
    state_epoch: i32,
    /// Keyed by first offset; batches never overlap. A batch may begin before the start
    /// offset (partly passed), or lie wholly below it while it still holds a lock, after the
    /// log start moved past it.
    cache: BTreeMap<i64, InFlightBatch>,
    /// ARCHIVING runs handed to the dead-letter-queue writer and not finished yet, first
    /// offset to last; only ever ARCHIVING offsets, so the in-flight window bounds it.
    dlq_dispatched: BTreeMap<i64, i64>,
    /// Set once the group had a dead-letter queue or ARCHIVING records were loaded, and
    /// never cleared (records may still be ARCHIVING after the DLQ is unset): until then
    /// `has_dlq_work`, asked after every operation, skips its scan.
    dlq_ever: bool,
}

impl SharePartition {
    /// The share-partition start offset, what DescribeShareGroupOffsets reports.
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Kafka's `endOffset`: the last offset acquired so far, or the start offset when
    /// nothing is in flight.
    pub fn end_offset(&self) -> i64 {
        if self.next_offset > self.start_offset {
            self.next_offset - 1
        } else {
            self.start_offset
        }
    }

    /// The state epoch this state was read or initialized with (fences stale writers).
    pub fn state_epoch(&self) -> i32 {
        self.state_epoch
    }

    pub fn config(&self) -> &SharePartitionConfig {
        &self.config
    }

    /// Group configs may change at any time; the new values apply from the next operation
    /// (locks already granted keep their deadline, as in Kafka).
    pub fn set_config(&mut self, config: SharePartitionConfig) {
        self.dlq_ever |= config.dlq_enabled;
        self.config = config;
    }

    /// Kafka's `numInFlightRecords`: `end - start + 1`, or 0 with nothing in flight. This is
    /// what `share.partition.max.record.locks` limits.
    pub fn in_flight_count(&self) -> i64 {
        self.next_offset - self.start_offset
    }

    /// Kafka's `deliveryCompleteCount`: terminal records at or after the start offset.
    pub fn delivery_complete_count(&self) -> i64 {
        self.count_from_start(|s| s.state.is_terminal())
    }

    /// Records currently locked by some member, at or after the start offset.
    pub fn acquired_count(&self) -> i64 {
        self.count_from_start(|s| s.state == RecordState::Acquired)
    }

    /// Kafka's `canAcquireRecords`: whether a fetch could acquire anything, either records
    /// that became available again or new ones inside the in-flight window.
    pub fn can_acquire_records(&self) -> bool {
        self.first_available_offset().is_some()
            || self.in_flight_count() < self.config.max_record_locks
    }

    /// Where the next fetch of the log should start (Kafka's `nextFetchOffset`): the first
    /// AVAILABLE record in flight, else the first offset never acquired.
    pub fn next_fetch_offset(&self) -> i64 {
        self.first_available_offset().unwrap_or(self.next_offset)
    }

    /// The earliest lock deadline, for the caller's timer wheel; `None` if nothing is locked.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.cache
            .values()
            .flat_map(|b| b.runs())
            .filter_map(|(_, _, s)| s.lock_deadline_ms)
            .min()
    }

    /// Releases every lock whose deadline is at or before `now_ms` (Kafka's
    /// `releaseAcquisitionLockOnTimeout`): those records become AVAILABLE, or ARCHIVED at the
    /// delivery limit. Then the start offset moves over terminal records.
    pub fn expire_locks(&mut self, now_ms: i64) -> Released {
        let (limit, dlq) = (self.config.delivery_count_limit, self.config.dlq_enabled);
        let mut released = Released::default();
        for batch in self.cache.values_mut() {
            if !batch.any(|s| s.lock_expired(now_ms)) {
                continue;
            }
            let records_per_state = batch.records_per_state();
            for (_, state) in batch.states_mut() {
                if state.lock_expired(now_ms) {
                    released.count(state.release(limit, dlq), records_per_state);
                }
            }
        }
        if released.any() {
            self.advance_start_offset();
        }
        released
    }

    /// Releases every record `member_id` holds (Kafka's `releaseAcquiredRecords`), when its
    /// share session closes or it leaves the group.
    pub fn release_member(&mut self, member_id: &str) -> Released {
        let (limit, dlq) = (self.config.delivery_count_limit, self.config.dlq_enabled);
        let mut released = Released::default();
        for batch in self.cache.values_mut() {
            let records_per_state = batch.records_per_state();
            for (_, state) in batch.states_mut() {
                if state.state == RecordState::Acquired && state.is_owned_by(member_id) {
                    released.count(state.release(limit, dlq), records_per_state);
                }
            }
        }
        if released.any() {
            self.advance_start_offset();
        }
        released
    }

    /// The log start moved (retention, DeleteRecords). Kafka's `updateCacheAndOffsets`:
    /// AVAILABLE records below it are archived and the start offset jumps to it. Acquired
    /// records below it keep their lock until acknowledged or expired; acknowledgements of
    /// offsets below the start are ignored. Returns whether anything changed.
    pub fn update_log_start(&mut self, log_start_offset: i64) -> bool {
        if log_start_offset <= self.start_offset {
            return false;
        }
        for batch in self.cache.values_mut() {
            if batch.first >= log_start_offset {
                break;
            }
            if !batch.any(|s| s.state == RecordState::Available) {
                continue;
            }
            if batch.last >= log_start_offset {
                batch.split();
            }
            for (offset, state) in batch.states_mut() {
                if offset < log_start_offset {
                    state.archive_if_available();
                }
            }
        }
        self.start_offset = log_start_offset;
        self.next_offset = self.next_offset.max(log_start_offset);
        self.advance_start_offset();
        true
    }

    /// Kafka's `maybeUpdateCachedStateAndOffsets`: moves the start offset over the terminal
    /// records at its head, drops batches it has passed, and empties the window once
    /// everything in it is terminal.
    fn advance_start_offset(&mut self) {
        let mut new_start = self.start_offset;
        'batches: for batch in self.cache.values() {
            if batch.last < new_start {
                continue;
            }
            // Offsets between batches never made it into the log (compaction); pass them.
            for (first, last, state) in batch.runs() {
                if last < new_start {
                    continue;
                }
                if !state.state.is_terminal() {
                    new_start = new_start.max(first);
                    break 'batches;
                }
                new_start = last + 1;
            }
        }
        let new_start = new_start.min(self.next_offset);
        if new_start > self.start_offset {
            self.start_offset = new_start;
        }
        // A passed batch goes once it holds no lock and no record on its way to the
        // dead-letter queue; a lock below the start still gets its acknowledgement or
        // expiry (and is then dropped here).
        let start = self.start_offset;
        self.cache.retain(|_, b| {
            b.last >= start
                || b.any(|s| matches!(s.state, RecordState::Acquired | RecordState::Archiving))
        });
        debug_assert!(self.next_offset >= self.start_offset);
    }

    /// The ARCHIVING runs not yet handed to the dead-letter-queue writer, now marked as
    /// handed over. Each run has one delivery count and cause; a run already partly handed
    /// over yields only the rest.
    pub fn take_dlq_work(&mut self) -> Vec<DlqWork> {
        let work = self.undispatched_dlq_work();
        for w in &work {
            self.dlq_dispatched.insert(w.first_offset, w.last_offset);
        }
        work
    }

    /// Whether some ARCHIVING record waits to be handed to the dead-letter-queue writer.
    pub fn has_dlq_work(&self) -> bool {
        self.dlq_ever && !self.undispatched_dlq_work().is_empty()
    }

    fn undispatched_dlq_work(&self) -> Vec<DlqWork> {
        let mut work = Vec::new();
        for batch in self.cache.values() {
            if !batch.any(|s| s.state == RecordState::Archiving) {
                continue;
            }
            for (first, last, state) in batch.runs() {
                let (RecordState::Archiving, Some(cause)) = (state.state, state.dlq_cause) else {
                    continue;
                };
                let mut piece = |f: i64, l: i64| {
                    work.push(DlqWork {
                        first_offset: f,
                        last_offset: l,
                        delivery_count: state.delivery_count,
                        cause,
                    })
                };
                let mut cursor = first;
                let handed = self.dlq_dispatched.range(..=last);
                for (&f, &l) in handed.filter(|(_, l)| **l >= first) {
                    if f > cursor {
                        piece(cursor, f - 1);
                    }
                    cursor = cursor.max(l.saturating_add(1));
                }
                if cursor <= last {
                    piece(cursor, last);
                }
            }
        }
        work
    }

    /// The dead-letter-queue write of `first..=last` is done or given up: those ARCHIVING
    /// records become ARCHIVED and the start offset may pass them. Returns how many changed;
    /// 0 if they were finished already (a duplicate completion is harmless).
    pub fn finish_dlq(&mut self, first: i64, last: i64) -> u64 {
        let mut finished = 0u64;
        let keys: Vec<i64> = self
            .cache
            .range(..=last)
            .filter(|(_, b)| b.last >= first)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(batch) = self.cache.get_mut(&key) else {
                continue;
            };
            if batch.offsets.is_none() && batch.first >= first && batch.last <= last {
                if batch.batch.finish_archiving() {
                    finished += batch.records_per_state();
                }
                continue;
            }
            if !batch.any(|s| s.state == RecordState::Archiving) {
                continue;
            }
            let start = batch.first;
            for (offset, state) in (start..).zip(batch.split().iter_mut()) {
                if (first..=last).contains(&offset) && state.finish_archiving() {
                    finished += 1;
                }
            }
        }
        let stale: Vec<i64> = self
            .dlq_dispatched
            .range(first..=last)
            .map(|(f, _)| *f)
            .collect();
        for f in stale {
            self.dlq_dispatched.remove(&f);
        }
        if finished > 0 {
            self.advance_start_offset();
        }
        finished
    }

    /// Forgets what was handed to the dead-letter-queue writer, so every ARCHIVING record is
    /// work again (its write failed before it was finished, or the writer restarted).
    pub fn redispatch_dlq(&mut self) {
        self.dlq_dispatched.clear();
    }

    fn count_from_start(&self, pred: impl Fn(&InFlightState) -> bool) -> i64 {
        let start = self.start_offset;
        self.cache
            .values()
            .flat_map(|b| b.runs())
            .filter(|(_, last, s)| *last >= start && pred(s))
            .map(|(first, last, _)| last - first.max(start) + 1)
            .sum()
    }

    fn first_available_offset(&self) -> Option<i64> {
        let start = self.start_offset;
        self.cache
            .range(..)
            .flat_map(|(_, b)| b.runs())
            .find(|(_, last, s)| *last >= start && s.state == RecordState::Available)
            .map(|(first, _, _)| first.max(start))
    }

    fn lock_deadline(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.config.record_lock_duration_ms)
    }
}
