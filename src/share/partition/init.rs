//! Where a share partition begins: from `share.auto.offset.reset` when the group has no state
//! for it yet, or from its persisted state (Kafka's `maybeInitialize` and
//! `startOffsetDuringInitialization`), and the persisted form itself.

use std::collections::BTreeMap;

use super::{DlqCause, InFlightState, RecordState, SharePartition, SharePartitionConfig};

/// `share.auto.offset.reset`: where a share group starts reading a partition it has no state
/// for. Kafka's default is `latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// The log start offset.
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    /// The first offset whose timestamp is at or after `now - duration`, else latest.
    ByDuration { duration_ms: i64 },
}

impl AutoOffsetReset {
    /// Parses the config value as Kafka's validator accepts it (see
    /// [`crate::group::config::parse_offset_reset`]).
    pub fn parse(value: &str) -> Option<AutoOffsetReset> {
        crate::group::config::parse_offset_reset(value)
    }
}

/// The persisted state of a share partition, Kafka's `ShareSnapshotValue` without the
/// fields the store adds (snapshot epoch, leader epoch, timestamps). Acquisitions are
/// persisted as AVAILABLE with their delivery count, so a restarted broker redelivers them
/// and still counts their deliveries (Kafka persists no acquisition and may count fewer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShareSnapshot {
    pub state_epoch: i32,
    pub start_offset: i64,
    /// Terminal records from the start offset on; informative (recomputed on load).
    pub delivery_complete_count: i32,
    /// Ordered, non-overlapping, all at or after the start offset.
    pub batches: Vec<PersistedBatch>,
}

/// One `StateBatches` entry: a run of offsets with one state and delivery count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistedBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    /// A [`RecordState::id`]: 0 AVAILABLE, 2 ACKNOWLEDGED, 3 ARCHIVING, 4 ARCHIVED.
    pub delivery_state: i8,
    pub delivery_count: i16,
}

/// Why a persisted state cannot be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("the share partition has no persisted start offset ({0}); use the reset strategy")]
    Uninitialized(i64),
    #[error("persisted batch {first}..={last} is malformed or out of order")]
    BadBatch { first: i64, last: i64 },
    #[error("persisted delivery state {0} is not one Klamm knows")]
    BadState(i8),
    #[error("persisted state spans {0} offsets, more than the {MAX_SNAPSHOT_SPAN} allowed")]
    TooLong(i64),
}

/// The widest span of offsets a persisted state may cover. State past the start offset is
/// the in-flight window (at most 10000 records by broker bounds, plus one log batch), so a
/// wider span is corrupt and would make the cache allocate without bound.
pub const MAX_SNAPSHOT_SPAN: i64 = 1 << 24;

impl SharePartition {
    fn empty(config: SharePartitionConfig, start_offset: i64, state_epoch: i32) -> Self {
        SharePartition {
            dlq_ever: config.dlq_enabled,
            config,
            start_offset,
            next_offset: start_offset,
            state_epoch,
            cache: BTreeMap::new(),
            dlq_dispatched: BTreeMap::new(),
        }
    }

    /// A share partition the group has no state for: the start offset comes from the reset
    /// strategy. The caller passes the log start, the high watermark (the last stable offset
    /// under read_committed) and a lookup of the first offset with a timestamp at or after
    /// the given one (ListOffsets by time); by_duration falls back to the high watermark.
    pub fn initialize(
        config: SharePartitionConfig,
        reset: AutoOffsetReset,
        log_start_offset: i64,
        high_watermark: i64,
        offset_for_timestamp: impl FnOnce(i64) -> Option<i64>,
        now_ms: i64,
    ) -> Self {
        let start_offset = match reset {
            AutoOffsetReset::Earliest => log_start_offset,
            AutoOffsetReset::Latest => high_watermark,
            AutoOffsetReset::ByDuration { duration_ms } => {
                offset_for_timestamp(now_ms.saturating_sub(duration_ms)).unwrap_or(high_watermark)
            }
        };
        SharePartition::empty(config, start_offset.max(0), 0)
    }

    /// Rebuilds a share partition from its persisted state. Offsets between persisted batches
    /// were never delivered and come back as fresh AVAILABLE records (Kafka's gap window); an
    /// AVAILABLE record already at the delivery limit is archived, or goes to the
    /// dead-letter queue when the group has one. ARCHIVING records are dead-letter-queue work
    /// again (at least once, as in Kafka), with Kafka's guess at the cause: past the delivery
    /// limit, else rejected.
    pub fn from_snapshot(
        config: SharePartitionConfig,
        snapshot: &ShareSnapshot,
    ) -> Result<Self, SnapshotError> {
        let start = snapshot.start_offset;
        if start < 0 {
            return Err(SnapshotError::Uninitialized(start));
        }
        let mut partition = SharePartition::empty(config, start, snapshot.state_epoch);
        let (limit, dlq) = (
            partition.config.delivery_count_limit,
            partition.config.dlq_enabled,
        );
        let mut next = start;
        for persisted in &snapshot.batches {
            let (first, last) = (persisted.first_offset.max(start), persisted.last_offset);
            let bad = SnapshotError::BadBatch {
                first: persisted.first_offset,
                last,
            };
            let well_formed = persisted.first_offset <= last && last < i64::MAX;
            if !well_formed || persisted.delivery_count < 0 {
                return Err(bad);
            }
            if last < start {
                continue;
            }
            if first < next {
                return Err(bad);
            }
            let span = last.saturating_sub(start).saturating_add(1);
            if span > MAX_SNAPSHOT_SPAN {
                return Err(SnapshotError::TooLong(span));
            }
            let mut state = match RecordState::from_id(persisted.delivery_state) {
                Some(RecordState::Acquired) | Some(RecordState::Available) => {
                    RecordState::Available
                }
                Some(other) => other,
                None => return Err(SnapshotError::BadState(persisted.delivery_state)),
            };
            let at_limit = persisted.delivery_count >= limit;
            if state == RecordState::Available && at_limit {
                state = if dlq {
                    RecordState::Archiving
                } else {
                    RecordState::Archived
                };
            }
            partition.dlq_ever |= state == RecordState::Archiving;
            let dlq_cause = (state == RecordState::Archiving).then_some(if at_limit {
                DlqCause::DeliveryCountExceeded
            } else {
                DlqCause::ClientReject
            });
            if first > next {
                partition.insert_run(next, first - 1, &InFlightState::fresh());
            }
            let in_flight = InFlightState {
                state,
                delivery_count: persisted.delivery_count,
                member_id: None,
                lock_deadline_ms: None,
                dlq_cause,
            };
            partition.insert_run(first, last, &in_flight);
            next = last + 1;
        }
        partition.next_offset = next;
        partition.advance_start_offset();
        Ok(partition)
    }

    /// The persisted form of this state (see [`ShareSnapshot`]): runs from the start offset
    /// on, adjacent runs with the same state and count merged.
    pub fn snapshot(&self) -> ShareSnapshot {
        let start = self.start_offset;
        let mut batches: Vec<PersistedBatch> = Vec::new();
        for batch in self.cache.values() {
            for (first, last, state) in batch.runs() {
                if last < start {
                    continue;
                }
                let first = first.max(start);
                let delivery_state = match state.state {
                    RecordState::Acquired => RecordState::Available.id(),
                    other => other.id(),
                };
                let delivery_count = state.delivery_count;
                if let Some(prev) = batches.last_mut() {
                    if prev.last_offset + 1 == first
                        && prev.delivery_state == delivery_state
                        && prev.delivery_count == delivery_count
                    {
                        prev.last_offset = last;
                        continue;
                    }
                }
                batches.push(PersistedBatch {
                    first_offset: first,
                    last_offset: last,
                    delivery_state,
                    delivery_count,
                });
            }
        }
        ShareSnapshot {
            state_epoch: self.state_epoch,
            start_offset: start,
            delivery_complete_count: i32::try_from(self.delivery_complete_count())
                .unwrap_or(i32::MAX),
            batches,
        }
    }
}
