//! Acquisition: which records a ShareFetch hands to a member (Kafka's `SharePartition.acquire`,
//! `acquireNewBatchRecords`, `createBatches`, `acquireSubsetBatchRecords` and
//! `lastOffsetAndMaxRecordsToAcquire`).

use std::sync::Arc;

use super::{
    AcquireMode, AcquiredRange, InFlightBatch, InFlightState, RecordState, SharePartition,
    MAX_BATCH_RECORDS,
};

impl SharePartition {
    /// Acquires records for `member_id` out of the log batches a fetch read, given as
    /// `(base_offset, last_offset)` in log order (the caller reads from
    /// [`SharePartition::next_fetch_offset`]). Records in flight that are AVAILABLE again come
    /// first, then records never acquired, beyond the end offset. Each acquired record's
    /// delivery count goes up by one and it is locked until `now_ms` plus the lock duration.
    ///
    /// `max_records` (ShareFetch `MaxRecords`) is rounded up to the end of a log batch in
    /// batch_optimized mode and exact in record_limit mode; `batch_size` (ShareFetch
    /// `BatchSize`) is how finely new records are cut into cache entries in batch_optimized
    /// mode. New records are taken only while the in-flight window is below
    /// `max_record_locks`; a full window still lets AVAILABLE records inside it be re-acquired.
    /// Ranges that touch and share a delivery count are merged in the result.
    pub fn acquire(
        &mut self,
        member_id: &str,
        mode: AcquireMode,
        batch_size: i32,
        max_records: i32,
        fetched_batches: &[(i64, i64)],
        now_ms: i64,
    ) -> Vec<AcquiredRange> {
        let mut acquired_ranges = Vec::new();
        if max_records <= 0 {
            return acquired_ranges;
        }
        // Malformed or out-of-order log batches are ignored rather than trusted. An offset
        // is below i64::MAX (Kafka's too), which keeps every `+ 1` below from overflowing.
        let mut batches: Vec<(i64, i64)> = Vec::with_capacity(fetched_batches.len());
        for &(base, last) in fetched_batches {
            let after_previous = batches.last().is_none_or(|&(_, prev)| base > prev);
            let well_formed = 0 <= base && base <= last && last < i64::MAX;
            if well_formed && after_previous && last >= self.start_offset {
                batches.push((base, last));
            }
        }
        let (Some(&(first_base, _)), Some(&(_, fetch_last))) = (batches.first(), batches.last())
        else {
            return acquired_ranges;
        };
        let fetch_first = first_base.max(self.start_offset);

        let max_records = i64::from(max_records);
        let in_flight = self.in_flight_count();
        let mut max = max_records.min(self.config.max_record_locks - in_flight);
        let mut last_to_acquire = fetch_last;
        if max <= 0 {
            // The window is full: only records already inside it can be taken again.
            let end = self.end_offset();
            if in_flight == 0 || fetch_first > end {
                return acquired_ranges;
            }
            max = max_records.min(end - fetch_first + 1);
            last_to_acquire = last_to_acquire.min(end);
        }

        let member: Arc<str> = Arc::from(member_id);
        let deadline = self.lock_deadline(now_ms);
        let mut acquired = 0i64;
        let keys: Vec<i64> = self
            .cache
            .range(..=last_to_acquire)
            .filter(|(_, b)| b.last >= fetch_first)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if acquired >= max {
                break;
            }
            let Some(batch) = self.cache.get_mut(&key) else {
                continue;
            };
            let remaining = max - acquired;
            let full_match = batch.first >= fetch_first && batch.last <= last_to_acquire;
            let record_limit_subset = mode == AcquireMode::RecordLimit && batch.len() > remaining;
            if full_match && batch.offsets.is_none() && !record_limit_subset {
                if batch.batch.acquire(&member, deadline) {
                    let count = batch.batch.delivery_count;
                    push_range(&mut acquired_ranges, batch.first, batch.last, count);
                    acquired += batch.len();
                }
                continue;
            }
            if batch.offsets.is_none() && batch.batch.state != RecordState::Available {
                continue;
            }
            let limit = match mode {
                AcquireMode::RecordLimit => remaining,
                AcquireMode::BatchOptimized => i64::MAX,
            };
            let mut taken = 0i64;
            let first = batch.first;
            for (offset, state) in (first..).zip(batch.split().iter_mut()) {
                if offset < fetch_first {
                    continue;
                }
                if offset > last_to_acquire || taken >= limit {
                    break;
                }
                if state.acquire(&member, deadline) {
                    push_range(&mut acquired_ranges, offset, offset, state.delivery_count);
                    taken += 1;
                }
            }
            acquired += taken;
        }

        if acquired < max && last_to_acquire >= self.next_offset {
            let from = self.next_offset.max(fetch_first);
            let new = NewRecords {
                member: &member,
                mode,
                batch_size,
                first: from,
                last_to_acquire,
                max_records: max - acquired,
                deadline_ms: deadline,
            };
            self.acquire_new_records(new, &batches, &mut acquired_ranges);
        }
        acquired_ranges
    }

    /// Under read_committed, Kafka archives the records of aborted transactions that a
    /// fetch acquired, at once, and leaves them out of what the member is given
    /// (`maybeFilterAbortedTransactionalAcquiredRecords`). `aborted_batches` are the
    /// `(base_offset, last_offset)` of the fetched log batches that belong to aborted
    /// transactions, in log order (the caller finds them from the fetch's aborted
    /// transactions, as Kafka's `fetchAbortedTransactionRecordBatches` does). Returns
    /// `acquired` without those records.
    pub fn archive_aborted(
        &mut self,
        acquired: Vec<AcquiredRange>,
        aborted_batches: &[(i64, i64)],
    ) -> Vec<AcquiredRange> {
        if aborted_batches.is_empty() {
            return acquired;
        }
        let mut kept = Vec::with_capacity(acquired.len());
        for range in acquired {
            let mut cursor = range.first_offset;
            for &(base, last) in aborted_batches {
                let (from, to) = (base.max(cursor), last.min(range.last_offset));
                if base > last || last == i64::MAX || from > to {
                    continue;
                }
                if from > cursor {
                    push_range(&mut kept, cursor, from - 1, range.delivery_count);
                }
                self.archive_acquired(from, to);
                cursor = to + 1;
            }
            if cursor <= range.last_offset {
                push_range(&mut kept, cursor, range.last_offset, range.delivery_count);
            }
        }
        self.advance_start_offset();
        kept
    }

    /// ACQUIRED -> ARCHIVED for `from..=to`, splitting entries it covers in part.
    fn archive_acquired(&mut self, from: i64, to: i64) {
        let keys: Vec<i64> = self
            .cache
            .range(..=to)
            .filter(|(_, b)| b.last >= from)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(batch) = self.cache.get_mut(&key) else {
                continue;
            };
            if batch.offsets.is_none() && batch.first >= from && batch.last <= to {
                batch.batch.complete(RecordState::Archived);
                continue;
            }
            let first = batch.first;
            for (offset, state) in (first..).zip(batch.split().iter_mut()) {
                if (from..=to).contains(&offset) && state.state == RecordState::Acquired {
                    state.complete(RecordState::Archived);
                }
            }
        }
    }

    /// Kafka's `acquireNewBatchRecords` + `createBatches`: records past the end offset enter
    /// the cache, ACQUIRED with delivery count 1.
    fn acquire_new_records(
        &mut self,
        new: NewRecords<'_>,
        batches: &[(i64, i64)],
        acquired_ranges: &mut Vec<AcquiredRange>,
    ) {
        // The log may have holes (compaction): begin at the first record that exists.
        let Some(first) = batches
            .iter()
            .find(|b| b.1 >= new.first)
            .map(|b| b.0.max(new.first))
        else {
            return;
        };
        if first > new.last_to_acquire {
            return;
        }
        let mut last = new.last_to_acquire;
        if new.max_records < last - first + 1 {
            // Both modes round up to the end of the log batch holding the last wanted
            // record; record_limit then acquires only `max_records` of them and leaves the
            // rest AVAILABLE (Kafka's `lastOffsetFromBatchWithRequestOffset`).
            let wanted_last = first + new.max_records - 1;
            last = batches
                .iter()
                .find(|b| b.1 >= wanted_last)
                .map_or(wanted_last, |b| b.1)
                .min(last);
        }
        let window_was_empty = self.in_flight_count() == 0;
        let acquired = InFlightState::acquired(new.member, new.deadline_ms);
        match new.mode {
            AcquireMode::BatchOptimized => {
                let batch_size = i64::from(new.batch_size);
                let mut piece_first = first;
                if batch_size > 0 && last - first + 1 > batch_size {
                    for &(base, _) in batches {
                        if base > last {
                            break;
                        }
                        if base > piece_first && base - piece_first >= batch_size {
                            self.insert_run(piece_first, base - 1, &acquired);
                            piece_first = base;
                        }
                    }
                }
                self.insert_run(piece_first, last, &acquired);
                push_range(acquired_ranges, first, last, 1);
            }
            AcquireMode::RecordLimit => {
                let acquired_last = (first + new.max_records - 1).min(last);
                self.insert_run(first, acquired_last, &acquired);
                if acquired_last < last {
                    self.insert_run(acquired_last + 1, last, &InFlightState::fresh());
                }
                push_range(acquired_ranges, first, acquired_last, 1);
            }
        }
        if window_was_empty {
            self.start_offset = first;
        }
        self.next_offset = last + 1;
    }

    /// Puts `first..=last` into the cache with one state, cut at [`MAX_BATCH_RECORDS`].
    pub(super) fn insert_run(&mut self, first: i64, last: i64, state: &InFlightState) {
        let mut piece_first = first;
        while piece_first <= last {
            let piece_last = last.min(piece_first.saturating_add(MAX_BATCH_RECORDS - 1));
            self.cache.insert(
                piece_first,
                InFlightBatch::new(piece_first, piece_last, state.clone()),
            );
            if piece_last == i64::MAX {
                break;
            }
            piece_first = piece_last + 1;
        }
    }
}

/// The parameters of one new-records acquisition, to keep the signature short.
struct NewRecords<'a> {
    member: &'a Arc<str>,
    mode: AcquireMode,
    batch_size: i32,
    first: i64,
    last_to_acquire: i64,
    max_records: i64,
    deadline_ms: i64,
}

/// Appends a range, merging it into the previous one when they touch and share a count.
fn push_range(ranges: &mut Vec<AcquiredRange>, first: i64, last: i64, delivery_count: i16) {
    if let Some(prev) = ranges.last_mut() {
        if prev.last_offset + 1 == first && prev.delivery_count == delivery_count {
            prev.last_offset = last;
            return;
        }
    }
    ranges.push(AcquiredRange {
        first_offset: first,
        last_offset: last,
        delivery_count,
    });
}
