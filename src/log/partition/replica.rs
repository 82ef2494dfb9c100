//! A partition's replication (cluster mode): on the leader, how far each follower has
//! copied the log, the high watermark as the in-sync replicas' smallest log end, and which
//! followers should join or leave the ISR; on a follower, appending the leader's batches
//! exactly as the leader stored them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use kafka_protocol::ResponseError;

use super::{
    batch, producer_state, AbortedTxn, AppendState, BatchHeader, BatchMeta, Partition,
    ProducerEntry,
};
use crate::clock::now_ms;

/// Where the partition's other replicas are, as the leader sees them.
#[derive(Debug)]
pub(super) struct Replication {
    /// This broker leads the partition (always, on a single node).
    leading: bool,
    /// The ISR without this broker: the high watermark waits for each of them.
    isr_followers: Vec<i32>,
    /// Every follower that fetched (or is in the ISR): its log end and when it last was
    /// caught up with the leader's.
    followers: HashMap<i32, Follower>,
    /// When an ISR change was asked for: no second one until it lands in the metadata, or
    /// until it is clearly lost (its request dropped with a closed connection, say).
    change_pending: Option<i64>,
}

/// How long an asked-for ISR change blocks the next one if nothing is heard of it.
const ISR_CHANGE_PATIENCE_MS: i64 = 3_000;

impl Replication {
    fn pending(&self, now: i64) -> bool {
        self.change_pending
            .is_some_and(|t| now - t < ISR_CHANGE_PATIENCE_MS)
    }
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            leading: true,
            isr_followers: Vec::new(),
            followers: HashMap::new(),
            change_pending: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Follower {
    /// -1 until it fetches.
    log_end: i64,
    caught_up_ms: i64,
}

/// A change of the ISR the leader wants written to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrChange {
    /// The follower has caught up: add it.
    Expand(i32),
    /// These followers fell behind for longer than `replica.lag.time.max.ms`: drop them.
    Shrink(Vec<i32>),
}

impl Replication {
    /// The high watermark a leader with log end `end` may publish; None on a follower.
    pub(super) fn high_watermark_for(&self, end: i64) -> Option<i64> {
        if !self.leading {
            return None;
        }
        Some(self.isr_followers.iter().fold(end, |hw, f| {
            hw.min(self.followers.get(f).map_or(-1, |x| x.log_end))
        }))
    }
}

impl Partition {
    /// Takes this partition's role from the cluster's metadata: whether this broker leads
    /// it and which followers are in sync. A new leader starts with every in-sync follower
    /// counted as caught up now and its log end unknown until it fetches.
    pub fn set_role(&self, leading: bool, isr_followers: Vec<i32>, leader_epoch: i32) {
        let state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let mut r = self.replication.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        let epoch_before = self.leader_epoch.swap(leader_epoch, Ordering::AcqRel);
        if leading && (!r.leading || epoch_before != leader_epoch) {
            r.followers.clear();
        }
        if r.leading && !leading {
            // Producers waiting for acks=all here learn that this broker no longer leads.
            self.hw_moved.notify_waiters();
        }
        for f in &isr_followers {
            r.followers.entry(*f).or_insert(Follower {
                log_end: -1,
                caught_up_ms: now,
            });
        }
        r.leading = leading;
        r.isr_followers = isr_followers;
        r.change_pending = None;
        let hw = r.high_watermark_for(self.log_end_offset());
        drop(r);
        if let Some(hw) = hw {
            self.raise_high_watermark(&state, hw);
            drop(state);
            self.appended.notify_waiters();
        }
    }

    /// Whether this broker leads the partition (always on a single node).
    pub fn leading(&self) -> bool {
        self.replication
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .leading
    }

    /// Whether this broker leads the partition and followers must confirm its appends.
    pub fn is_replicated_leader(&self) -> bool {
        let r = self.replication.lock().unwrap_or_else(|e| e.into_inner());
        r.leading && !r.isr_followers.is_empty()
    }

    /// A follower fetched from `offset`, so its log ends there: the high watermark may
    /// move, and a follower that caught up should join the ISR.
    pub fn follower_fetched(&self, follower: i32, offset: i64) -> Option<IsrChange> {
        let state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let end = self.log_end_offset();
        let mut r = self.replication.lock().unwrap_or_else(|e| e.into_inner());
        if !r.leading {
            return None;
        }
        let now = now_ms();
        let f = r.followers.entry(follower).or_insert(Follower {
            log_end: -1,
            caught_up_ms: 0,
        });
        f.log_end = offset.min(end);
        if offset >= end {
            f.caught_up_ms = now;
        }
        let hw = r.high_watermark_for(end);
        let r_is_member = r.isr_followers.contains(&follower);
        if !r_is_member && r.pending(now) {
            tracing::debug!(topic = %self.topic, partition = self.index, follower, "ISR change pending");
        }
        let join =
            !r_is_member && !r.pending(now) && offset >= self.high_watermark().max(hw.unwrap_or(0));
        if join {
            r.change_pending = Some(now);
        }
        drop(r);
        if let Some(hw) = hw {
            let before = self.high_watermark();
            self.raise_high_watermark(&state, hw);
            drop(state);
            if self.high_watermark() > before {
                self.appended.notify_waiters();
            }
        }
        if !join && !r_is_member {
            tracing::trace!(topic = %self.topic, partition = self.index, follower, offset, "follower not yet caught up");
        }
        join.then_some(IsrChange::Expand(follower))
    }

    /// The in-sync followers that have not caught up within `lag_ms`: the leader drops
    /// them from the ISR so the high watermark stops waiting for them.
    pub fn lagging_followers(&self, lag_ms: i64) -> Option<IsrChange> {
        let mut r = self.replication.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        if !r.leading || r.pending(now) {
            return None;
        }
        let lagging: Vec<i32> = r
            .isr_followers
            .iter()
            .copied()
            .filter(|f| {
                r.followers
                    .get(f)
                    .is_none_or(|x| now - x.caught_up_ms > lag_ms)
            })
            .collect();
        if lagging.is_empty() {
            return None;
        }
        r.change_pending = Some(now);
        Some(IsrChange::Shrink(lagging))
    }

    /// An ISR change could not be written: allow the next attempt.
    pub fn isr_change_failed(&self) {
        self.replication
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .change_pending = None;
    }

    /// Appends what the leader sent, as the leader stored it (offsets, leader epochs,
    /// producer ids), and keeps producer state, open transactions and aborted transactions
    /// as the leader does, so that this replica can lead with them. Batches it has already
    /// are skipped; a gap or a corrupt batch stops the append with an error. Returns the
    /// new log end.
    pub fn append_replica(&self, records: &[u8]) -> Result<i64, ResponseError> {
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_deleted() {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        let mut next = state.next_offset;
        let mut max_ts = state.max_timestamp;
        let mut wb = self.store.batch();
        let mut touched: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut aborted = Vec::new();
        let mut written = 0i64;
        let mut last_epoch = state.last_epoch;
        let mut pos = 0;
        while let Some(h) = records.get(pos..).and_then(BatchHeader::parse) {
            let size = h.size_bytes();
            let Some(bytes) = records.get(pos..pos + size) else {
                break; // a trailing partial batch: the next fetch brings it whole
            };
            pos += size;
            if h.last_offset() < next {
                continue;
            }
            if h.base_offset != next {
                tracing::warn!(topic = %self.topic, partition = self.index, expected = next, got = h.base_offset, "replica fetch: batch does not continue the log");
                return Err(ResponseError::OffsetOutOfRange);
            }
            if !batch::crc_ok(bytes, &h) {
                tracing::warn!(topic = %self.topic, partition = self.index, offset = h.base_offset, "replica fetch: corrupt batch");
                return Err(ResponseError::CorruptMessage);
            }
            if h.producer_id >= 0 {
                let entry = match touched.remove(&h.producer_id) {
                    Some(e) => Some(e),
                    None => state.producers.get(&h.producer_id).cloned(),
                };
                let mut entry = entry;
                if h.is_control() {
                    let mut e = entry.unwrap_or_else(|| ProducerEntry::new(h.producer_epoch));
                    if h.producer_epoch > e.epoch {
                        e.epoch = h.producer_epoch;
                        e.batches.clear();
                    }
                    let first = e.txn_first_offset.take();
                    e.last_timestamp = h.max_timestamp;
                    if let (Some(false), Some(first_offset)) = (batch::marker_commits(bytes), first)
                    {
                        wb.put_aborted(self.uid, h.base_offset, h.producer_id, first_offset);
                        aborted.push(AbortedTxn {
                            producer_id: h.producer_id,
                            first_offset,
                            last_offset: h.base_offset,
                        });
                    }
                    entry = Some(e);
                } else {
                    let meta = BatchMeta {
                        first_seq: h.base_sequence,
                        last_seq: producer_state::increment_sequence(
                            h.base_sequence,
                            h.last_offset_delta,
                        ),
                        base_offset: h.base_offset,
                    };
                    producer_state::record_batch(&mut entry, h.producer_epoch, meta);
                    if let Some(e) = entry.as_mut() {
                        e.last_timestamp = h.max_timestamp;
                        if h.is_transactional() && e.txn_first_offset.is_none() {
                            e.txn_first_offset = Some(h.base_offset);
                        }
                    }
                }
                if let Some(e) = entry {
                    wb.put_producer(self.uid, h.producer_id, &e.encode());
                    touched.insert(h.producer_id, e);
                }
            }
            wb.put_log(self.uid, h.base_offset, bytes);
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                wb.put_time_index(self.uid, max_ts, h.base_offset);
            }
            written += size as i64;
            next = h.last_offset() + 1;
            last_epoch = h.partition_leader_epoch;
        }
        if next == state.next_offset {
            return Ok(next);
        }
        if let Err(e) = self.store.write(wb) {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "replica append failed");
            return Err(ResponseError::KafkaStorageError);
        }
        if !aborted.is_empty() {
            self.aborted
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .extend(aborted);
        }
        for (pid, e) in touched {
            state.set_producer(pid, e);
        }
        state.next_offset = next;
        state.max_timestamp = max_ts;
        state.last_epoch = last_epoch;
        state.size.adjust(written);
        self.log_end_offset.fetch_max(next, Ordering::AcqRel);
        self.refresh_stable(&state);
        drop(state);
        self.appended.notify_waiters();
        Ok(next)
    }

    /// A follower's high watermark: the leader's, but never past this replica's own log.
    pub fn set_follower_high_watermark(&self, leader_hw: i64) {
        let state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let hw = leader_hw.min(self.log_end_offset()).max(0);
        let old = self.high_watermark.swap(hw, Ordering::AcqRel);
        self.refresh_stable(&state);
        drop(state);
        if hw != old {
            self.hw_moved.notify_waiters();
            self.appended.notify_waiters();
        }
    }

    fn refresh_stable(&self, state: &AppendState) {
        self.last_stable_offset.store(
            super::stable_offset(&state.open_txns, self.high_watermark()),
            Ordering::Release,
        );
    }

    /// Waits until the high watermark reaches `offset` (every in-sync replica has the
    /// batch): REQUEST_TIMED_OUT if `timeout` passes first, NOT_LEADER_OR_FOLLOWER if this
    /// broker stops leading the partition meanwhile (the batch may be truncated away).
    pub async fn wait_for_high_watermark(
        &self,
        offset: i64,
        epoch: i32,
        timeout: std::time::Duration,
    ) -> Result<(), ResponseError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let moved = self.hw_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let leading = self
                .replication
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .leading;
            if !leading || self.leader_epoch() != epoch || self.is_deleted() {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            if self.high_watermark() >= offset {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                return if self.high_watermark() >= offset {
                    Ok(())
                } else {
                    Err(ResponseError::RequestTimedOut)
                };
            }
        }
    }

    /// The leader epoch of this replica's last batch (-1 for an empty log): what a follower
    /// tells its leader it fetched last, so the leader can find where their logs diverge.
    pub fn last_epoch(&self) -> i32 {
        self.append
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_epoch
    }

    /// (base offset, last offset, leader epoch) of the batch that holds `offset`, if any.
    fn batch_at(&self, offset: i64) -> Result<Option<(i64, i64, i32)>, ResponseError> {
        let mut found = None;
        self.store
            .read_batches(self.uid, offset, |base, bytes| {
                found = BatchHeader::parse(bytes).map(|h| {
                    (
                        base,
                        base + i64::from(h.last_offset_delta),
                        h.partition_leader_epoch,
                    )
                });
                false
            })
            .map_err(|_| ResponseError::KafkaStorageError)?;
        Ok(found)
    }

    /// Kafka's `endOffsetFor(epoch)`: (the largest epoch at most `epoch` that this log has,
    /// the offset where the next epoch starts), with this broker's current epoch ending at
    /// the log end; (-1, -1) for an epoch later than any here. Found by binary search over
    /// the batches (epochs only grow with offsets), so no epoch file is kept.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64), ResponseError> {
        let end = self.log_end_offset();
        // The append lock (in last_epoch) before the replication lock, never inside it:
        // everywhere else takes them in that order.
        let last = self.last_epoch();
        let leading = self
            .replication
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .leading;
        let latest = if leading {
            last.max(self.leader_epoch())
        } else {
            last
        };
        if epoch < 0 || epoch > latest {
            return Ok((-1, -1));
        }
        if epoch == latest {
            return Ok((epoch, end));
        }
        // The first offset whose batch has a later epoch than asked.
        let (mut lo, mut hi) = (self.log_start_offset(), end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.batch_at(mid)? {
                Some((base, _, e)) if e > epoch => hi = base.max(lo),
                Some((_, last, _)) => lo = (last + 1).max(mid + 1),
                None => lo = mid + 1,
            }
        }
        let boundary = lo.min(end);
        if boundary == end {
            // Every batch is at or below the epoch asked: it ends at the log end.
            return Ok((latest.min(epoch), end));
        }
        let floor = if boundary > self.log_start_offset() {
            self.batch_at(boundary - 1)?.map(|(_, _, e)| e)
        } else {
            None
        };
        Ok((floor.unwrap_or(epoch), boundary))
    }

    /// Cuts the log back to `offset` (a follower whose log diverged from its new
    /// leader's): batches from there on, their time-index entries and aborted
    /// transactions go; producers forget those batches; the high watermark cannot stay past
    /// the new end.
    pub fn truncate_to(&self, offset: i64) -> Result<(), ResponseError> {
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if offset >= state.next_offset {
            return Ok(());
        }
        let offset = offset.max(self.log_start_offset());
        let mut wb = self.store.batch();
        wb.delete_log_from(self.uid, offset)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        let mut producers = std::mem::take(&mut state.producers);
        for (pid, e) in producers.iter_mut() {
            let before = (e.batches.len(), e.txn_first_offset);
            e.batches.retain(|b| b.base_offset < offset);
            if e.txn_first_offset.is_some_and(|f| f >= offset) {
                e.txn_first_offset = None;
            }
            if (e.batches.len(), e.txn_first_offset) != before {
                wb.put_producer(self.uid, *pid, &e.encode());
            }
        }
        if let Err(e) = self.store.write(wb) {
            state.producers = producers;
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "truncation failed");
            return Err(ResponseError::KafkaStorageError);
        }
        state.open_txns = super::open_txns_of(&producers);
        state.producers = producers;
        self.aborted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|a| a.last_offset < offset);
        let dropped = state.next_offset - offset;
        state.next_offset = offset;
        state.size = super::Size::Unknown;
        state.reshaped += 1;
        state.max_timestamp = self
            .store
            .last_time_index(self.uid)
            .ok()
            .flatten()
            .map_or(i64::MIN, |(ts, _)| ts);
        state.last_epoch = self
            .store
            .last_batch(self.uid)
            .ok()
            .flatten()
            .and_then(|(_, b)| BatchHeader::parse(&b))
            .map_or(-1, |h| h.partition_leader_epoch);
        self.log_end_offset.store(offset, Ordering::Release);
        if self.high_watermark() > offset {
            self.high_watermark.store(offset, Ordering::Release);
        }
        self.refresh_stable(&state);
        tracing::warn!(topic = %self.topic, partition = self.index, offset, dropped, "truncated the log to the leader's");
        Ok(())
    }
}
