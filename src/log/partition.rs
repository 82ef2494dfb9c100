//! One partition's log: offset assignment on append, reads for Fetch, offsets for ListOffsets.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use tokio::sync::Notify;

use super::batch::{self, BatchHeader, ProducedBatch};
use super::producer_state::{self, BatchMeta, ProducerEntry, SequenceCheck};
use super::records::{self, Check, Hold};
use crate::clock::now_ms;
use crate::storage::{Store, StoreError};

mod replica;
pub use replica::IsrChange;
use replica::Replication;

/// The leader epoch of a partition that has never changed leader: a single node's always.
pub const LEADER_EPOCH: i32 = 0;

/// Checks a client's `current_leader_epoch` against `ours` (-1 means "not given"): a newer
/// epoch is UNKNOWN_LEADER_EPOCH, an older one FENCED_LEADER_EPOCH, as Kafka answers.
fn check_epoch(current_leader_epoch: i32, ours: i32) -> Result<(), ResponseError> {
    if current_leader_epoch < 0 {
        return Ok(());
    }
    match current_leader_epoch.cmp(&ours) {
        std::cmp::Ordering::Greater => Err(ResponseError::UnknownLeaderEpoch),
        std::cmp::Ordering::Less => Err(ResponseError::FencedLeaderEpoch),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// The last stable offset: the first offset of the oldest open transaction, else `end`.
/// The last stable offset: the first offset of the oldest open transaction, or `end`.
/// `open_txns` is kept sorted, so this costs nothing per append, however many producers the
/// partition has seen.
fn stable_offset(open_txns: &BTreeSet<(i64, i64)>, end: i64) -> i64 {
    open_txns
        .first()
        .map_or(end, |(first, _)| (*first).min(end))
}

/// (first offset, producer id) of every open transaction in `producers`.
fn open_txns_of(producers: &HashMap<i64, ProducerEntry>) -> BTreeSet<(i64, i64)> {
    producers
        .iter()
        .filter_map(|(pid, e)| e.txn_first_offset.map(|f| (f, *pid)))
        .collect()
}

/// In-memory state of one partition, shared by every request that touches it.
///
/// It exists so that offsets are assigned in one place under one lock, and so that readers
/// learn the high watermark and wait for new data without touching RocksDB.
pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    /// Allocated once, never reused: the key prefix of this partition's data.
    pub uid: u64,
    store: Arc<Store>,
    /// Serializes appends; holds the max-timestamp-so-far for the time index.
    append: Mutex<AppendState>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    high_watermark: AtomicI64,
    /// The first offset of the oldest open transaction, or the high watermark when none is
    /// open: read_committed consumers read up to here.
    last_stable_offset: AtomicI64,
    /// Aborted transactions in marker-offset order, for read_committed fetches.
    aborted: RwLock<Vec<AbortedTxn>>,
    deleted: AtomicBool,
    /// Woken after every append, for long-polling fetches.
    pub appended: Notify,
    /// Who else holds this partition and how far they have copied it (cluster mode); the
    /// high watermark waits for the in-sync followers.
    replication: Mutex<Replication>,
    /// Woken whenever the high watermark moves, for `acks=all` producers.
    pub hw_moved: Notify,
    /// The leader epoch this broker knows for the partition (from the cluster's metadata;
    /// 0 on a single node): stamped on appended batches, checked against clients'.
    leader_epoch: AtomicI32,
}

struct AppendState {
    /// The offset the next append gets. It runs ahead of the published log end while
    /// appends are queued for the disk: the log end moves once they are durable.
    next_offset: i64,
    max_timestamp: i64,
    /// Idempotent producers seen on this partition, by producer id.
    producers: HashMap<i64, ProducerEntry>,
    /// The leader epoch of the last batch (-1 for an empty log): a follower's
    /// `last_fetched_epoch`.
    last_epoch: i32,
    /// Bytes of stored batches, once someone asked (one scan), then kept current by every
    /// write under this lock. Unknown at open so startup never scans the log.
    size: Size,
    /// (first offset, producer id) of each open transaction, for the last stable offset.
    open_txns: BTreeSet<(i64, i64)>,
    /// Bumped by every change to the front or middle of the log (retention, DeleteRecords,
    /// compaction), so a scan made without the lock can tell whether it is still true.
    reshaped: u64,
}

impl AppendState {
    /// Stores a producer's new state, keeping `open_txns` in step with it.
    fn set_producer(&mut self, pid: i64, entry: ProducerEntry) {
        let old = self.producers.get(&pid).and_then(|e| e.txn_first_offset);
        if old != entry.txn_first_offset {
            if let Some(o) = old {
                self.open_txns.remove(&(o, pid));
            }
            if let Some(n) = entry.txn_first_offset {
                self.open_txns.insert((n, pid));
            }
        }
        self.producers.insert(pid, entry);
    }
}

/// The running size of a partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    Unknown,
    /// A scan runs without the lock over a snapshot taken under it; the writes since the
    /// snapshot add up here, to be added to the scan's result.
    Scanning(i64),
    Known(u64),
}

impl Size {
    fn adjust(&mut self, delta: i64) {
        match self {
            Size::Unknown => {}
            Size::Scanning(d) => *d += delta,
            Size::Known(s) => *s = (*s as i64).saturating_add(delta).max(0) as u64,
        }
    }
}

/// A transaction a producer aborted on this partition: its records from `first_offset` up
/// to the abort marker at `last_offset` are not to be delivered to read_committed readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Whether a transaction marker commits or aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Commit,
    Abort,
}

/// Where a successful append put the batches.
#[derive(Debug, Clone, Copy)]
pub struct AppendResult {
    pub base_offset: i64,
    pub log_start_offset: i64,
}

impl Appended {
    /// The log end this append reaches, None when every batch was a duplicate: `acks=all`
    /// waits for the high watermark to get there.
    pub fn end(&self) -> Option<i64> {
        self.end
    }

    /// Where the high watermark must be for every batch of this append, retried ones
    /// included, to be on the in-sync replicas.
    pub fn replicated_at(&self) -> Option<i64> {
        self.replicated_at
    }
}

/// An append whose batches are queued for the disk: offsets assigned and producer state
/// updated under the append lock, the log end published by [`Partition::appended`] once the
/// write is durable. Produce queues the appends of all its partitions before awaiting any,
/// so they share one sync.
pub struct Appended {
    write: crate::storage::Pending,
    /// The log end to publish, or None when every batch was a duplicate.
    end: Option<i64>,
    /// Where the batches end in the log, duplicates included: `acks=all` waits for the
    /// high watermark to get there. A retried batch answered from the producer state may
    /// not be replicated yet (its first attempt timed out waiting), and must not be
    /// acknowledged before it is, as in Kafka.
    replicated_at: Option<i64>,
    result: AppendResult,
}

/// Result of reading for a fetch: the concatenated batches and the offsets around them.
#[derive(Debug, Default)]
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl Partition {
    /// Loads a partition's state from the store: log end offset from the last batch key,
    /// log start offset from the first, no scan of the data.
    pub fn open(
        store: Arc<Store>,
        topic: Arc<str>,
        index: i32,
        uid: u64,
    ) -> Result<Partition, StoreError> {
        let (leo, last_epoch) = match store.last_batch(uid)? {
            Some((base, bytes)) => {
                let h = BatchHeader::parse(&bytes).ok_or_else(|| {
                    StoreError::Corrupt(format!("short batch at {topic}-{index}@{base}"))
                })?;
                (
                    base + i64::from(h.last_offset_delta) + 1,
                    h.partition_leader_epoch,
                )
            }
            None => (0, -1),
        };
        let recorded_start = store.log_start(uid)?;
        // Everything may have been deleted: the log then resumes at its recorded start.
        let leo = leo.max(recorded_start.unwrap_or(0));
        // A recorded start wins: DeleteRecords may put it inside the first batch, and
        // compaction may have removed the first batch's leading records without moving it.
        let lso = match recorded_start {
            Some(start) => start.min(leo),
            None => store.first_batch(uid)?.map(|(b, _)| b).unwrap_or(leo),
        };
        let max_ts = store
            .last_time_index(uid)?
            .map(|(ts, _)| ts)
            .unwrap_or(i64::MIN);
        let producers: HashMap<i64, ProducerEntry> = store
            .scan_producers(uid)?
            .into_iter()
            .filter_map(|(pid, v)| Some((pid, ProducerEntry::decode(&v)?)))
            .collect();
        // Entries below the log start (left by a version that did not prune them) are
        // unreachable: not loaded.
        let aborted = store
            .scan_aborted(uid)?
            .into_iter()
            .filter(|(last_offset, _, _)| *last_offset >= lso)
            .map(|(last_offset, producer_id, first_offset)| AbortedTxn {
                producer_id,
                first_offset,
                last_offset,
            })
            .collect();
        let stable = stable_offset(&open_txns_of(&producers), leo);
        Ok(Partition::assemble(
            store, topic, index, uid, lso, leo, stable, max_ts, producers, aborted, last_epoch,
        ))
    }

    /// A partition with a fresh uid, which has nothing stored: built without reading.
    pub fn new_empty(store: Arc<Store>, topic: Arc<str>, index: i32, uid: u64) -> Partition {
        Partition::assemble(
            store,
            topic,
            index,
            uid,
            0,
            0,
            0,
            i64::MIN,
            HashMap::new(),
            Vec::new(),
            -1,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        store: Arc<Store>,
        topic: Arc<str>,
        index: i32,
        uid: u64,
        lso: i64,
        leo: i64,
        stable: i64,
        max_ts: i64,
        producers: HashMap<i64, ProducerEntry>,
        aborted: Vec<AbortedTxn>,
        last_epoch: i32,
    ) -> Partition {
        let open_txns = open_txns_of(&producers);
        Partition {
            topic,
            index,
            uid,
            store,
            append: Mutex::new(AppendState {
                last_epoch,
                next_offset: leo,
                max_timestamp: max_ts,
                producers,
                size: Size::Unknown,
                open_txns,
                reshaped: 0,
            }),
            log_start_offset: AtomicI64::new(lso),
            log_end_offset: AtomicI64::new(leo),
            last_stable_offset: AtomicI64::new(stable),
            aborted: RwLock::new(aborted),
            high_watermark: AtomicI64::new(leo),
            deleted: AtomicBool::new(false),
            appended: Notify::new(),
            replication: Mutex::new(Replication::default()),
            hw_moved: Notify::new(),
            leader_epoch: AtomicI32::new(LEADER_EPOCH),
        }
    }

    /// The leader epoch this broker knows for the partition.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Checks a client's `current_leader_epoch` against this partition's.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ResponseError> {
        check_epoch(current_leader_epoch, self.leader_epoch())
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// The last stable offset: read_committed readers see nothing at or past it.
    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable_offset.load(Ordering::Acquire)
    }

    /// Aborted transactions that overlap `[from, to)`, for a read_committed fetch.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let aborted = self.aborted.read().unwrap_or_else(|e| e.into_inner());
        let start = aborted.partition_point(|a| a.last_offset < from);
        aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Whether `producer_id` has an open transaction here at `epoch` (a transactional
    /// batch not yet ended by a marker). The epoch matters for transaction.version 2
    /// producers, whose next transaction runs at the epoch the last one's marker carries:
    /// a batch at a newer epoch than the open transaction's belongs to a transaction the
    /// coordinator must hear of.
    pub fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        let state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        state
            .producers
            .get(&producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some() && e.epoch == epoch)
    }

    /// The producers with state on this partition, for DescribeProducers.
    pub fn producers(&self) -> Vec<(i64, ProducerEntry)> {
        let state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = state
            .producers
            .iter()
            .map(|(pid, e)| (*pid, e.clone()))
            .collect();
        out.sort_by_key(|(pid, _)| *pid);
        out
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Marks the partition gone (its topic was deleted) so no append lands after the
    /// delete_range; returns once no append is in progress.
    pub fn mark_deleted(&self) {
        let _guard = self.append.lock().unwrap_or_else(|e| e.into_inner());
        self.deleted.store(true, Ordering::Release);
        self.appended.notify_waiters();
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Appends validated batches: checks idempotent producers' sequences, assigns offsets,
    /// and queues batches, time-index entries and producer state as one atomic write. The
    /// caller awaits [`Partition::appended`], which publishes the new high watermark and
    /// wakes fetchers once the write is durable. A retried batch is not appended again: its
    /// original offset is returned.
    ///
    /// `verify_txn(producer_id, epoch)` is asked, under the append lock, about every
    /// transactional batch: the coordinator must have this partition in the producer's open
    /// transaction. Asking under the lock orders the append before any marker for it.
    pub fn append(
        &self,
        batches: &[ProducedBatch],
        verify_txn: &dyn Fn(i64, i16) -> Result<(), ResponseError>,
    ) -> Result<Appended, ResponseError> {
        self.append_checked(batches, verify_txn, true)
    }

    /// A coordinator's own append to its internal topic (Kafka's AppendOrigin.COORDINATOR):
    /// producer epochs are still fenced, but sequences are not checked, since the group
    /// coordinator writes each transactional offset commit as its own batch from sequence 0.
    pub fn append_from_coordinator(
        &self,
        batches: &[ProducedBatch],
    ) -> Result<Appended, ResponseError> {
        self.append_checked(batches, &|_, _| Ok(()), false)
    }

    fn append_checked(
        &self,
        batches: &[ProducedBatch],
        verify_txn: &dyn Fn(i64, i16) -> Result<(), ResponseError>,
        check_sequences: bool,
    ) -> Result<Appended, ResponseError> {
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_deleted() {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        // Checked under the append lock, which a change of role takes: a request that
        // found this broker leading, then waited while it became a follower, must not
        // append (stamped with the new leader's epoch, its batches would hide where this
        // log parts from the new leader's).
        if !self.leading() {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        for b in batches {
            if b.header.is_transactional() {
                if b.header.producer_id < 0 {
                    return Err(ResponseError::InvalidRecord);
                }
                verify_txn(b.header.producer_id, b.header.producer_epoch)?;
            }
        }
        let first = state.next_offset;
        let epoch = self.leader_epoch();
        let mut next = first;
        let mut result_base = None;
        let mut max_ts = state.max_timestamp;
        let mut wb = self.store.batch();
        let mut touched: HashMap<i64, Option<ProducerEntry>> = HashMap::new();
        let mut written = 0u64;
        let mut replicated_at: Option<i64> = None;
        for b in batches {
            let h = &b.header;
            if h.producer_id >= 0 {
                let entry = touched
                    .entry(h.producer_id)
                    .or_insert_with(|| state.producers.get(&h.producer_id).cloned());
                let last_seq =
                    producer_state::increment_sequence(h.base_sequence, h.last_offset_delta);
                let check = if check_sequences {
                    producer_state::check_sequence(
                        entry.as_ref(),
                        h.producer_epoch,
                        h.base_sequence,
                        last_seq,
                    )?
                } else if entry.as_ref().is_some_and(|e| h.producer_epoch < e.epoch) {
                    return Err(ResponseError::InvalidProducerEpoch);
                } else {
                    SequenceCheck::Append
                };
                match check {
                    SequenceCheck::Duplicate(offset) => {
                        result_base.get_or_insert(offset);
                        let dup_end = offset + i64::from(h.last_offset_delta) + 1;
                        replicated_at = replicated_at.max(Some(dup_end));
                        continue;
                    }
                    SequenceCheck::Append => {
                        let meta = BatchMeta {
                            first_seq: h.base_sequence,
                            last_seq,
                            base_offset: next,
                        };
                        producer_state::record_batch(entry, h.producer_epoch, meta);
                        if let Some(e) = entry.as_mut() {
                            e.last_timestamp = h.max_timestamp;
                            if h.is_transactional() && e.txn_first_offset.is_none() {
                                e.txn_first_offset = Some(next);
                            }
                        }
                    }
                }
            }
            result_base.get_or_insert(next);
            let stored = batch::assign_offset(&b.bytes, next, epoch);
            written += stored.len() as u64;
            wb.put_log(self.uid, next, &stored);
            if b.header.max_timestamp > max_ts {
                max_ts = b.header.max_timestamp;
                wb.put_time_index(self.uid, max_ts, next);
            }
            next += i64::from(b.header.last_offset_delta) + 1;
        }
        for (pid, entry) in &touched {
            if let Some(e) = entry {
                wb.put_producer(self.uid, *pid, &e.encode());
            }
        }
        let result = AppendResult {
            base_offset: result_base.unwrap_or(first),
            log_start_offset: self.log_start_offset(),
        };
        if next == first {
            // Only duplicates: nothing to write, but the answer waits until what they
            // duplicate, which may still be queued, is as durable as a first write's.
            return Ok(Appended {
                write: self.store.submit(self.store.batch()),
                end: None,
                replicated_at,
                result,
            });
        }
        // Queued under the lock, so the disk sees this partition's appends in offset order.
        // A write that fails at once changes nothing here; one that fails in the queue makes
        // the writer refuse every later one (see storage::writer), so the state below never
        // runs ahead of a log that later appends could fill.
        let mut write = self.store.submit(wb);
        if let Some(e) = write.failed_now() {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
            return Err(ResponseError::KafkaStorageError);
        }
        state.next_offset = next;
        state.max_timestamp = max_ts;
        state.last_epoch = epoch;
        state.size.adjust(written as i64);
        for (pid, entry) in touched {
            if let Some(e) = entry {
                state.set_producer(pid, e);
            }
        }
        Ok(Appended {
            write,
            end: Some(next),
            replicated_at: Some(next),
            result,
        })
    }

    /// Waits for a queued append to be durable, then publishes the new log end (high
    /// watermark and last stable offset) and wakes fetchers.
    pub async fn appended(&self, a: Appended) -> Result<AppendResult, ResponseError> {
        if let Err(e) = a.write.await {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
            return Err(ResponseError::KafkaStorageError);
        }
        if let Some(end) = a.end {
            let state = self.append.lock().unwrap_or_else(|e| e.into_inner());
            self.publish_end(&state, end);
            drop(state);
            self.appended.notify_waiters();
        }
        Ok(a.result)
    }

    /// Publishes a new log end: high watermark, then the last stable offset. Writes finish
    /// in queue order, so a write being durable means every one queued before it is too;
    /// their waiters may wake in any order, hence the maximum.
    fn publish_end(&self, state: &AppendState, end: i64) {
        let end = self
            .log_end_offset
            .fetch_max(end, Ordering::AcqRel)
            .max(end);
        // A leader's high watermark is the log end unless in-sync followers lag; a
        // follower's comes from its leader.
        let hw = self
            .replication
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .high_watermark_for(end);
        if let Some(hw) = hw {
            self.raise_high_watermark(state, hw);
        }
    }

    /// Moves the high watermark up to `hw` (never down: what a consumer saw stays
    /// visible) and the last stable offset with it.
    fn raise_high_watermark(&self, state: &AppendState, hw: i64) {
        let old = self.high_watermark.fetch_max(hw, Ordering::AcqRel);
        let hw = old.max(hw);
        self.last_stable_offset
            .store(stable_offset(&state.open_txns, hw), Ordering::Release);
        if hw > old {
            self.hw_moved.notify_waiters();
        }
    }

    /// Writes a transaction marker (a control batch) for `producer_id` at `epoch`, ending
    /// its open transaction on this partition; an abort is recorded for read_committed
    /// readers. Kafka writes a marker even when the producer wrote nothing here. Returns the
    /// marker's offset.
    ///
    /// `tv2`: the transaction is a transaction.version 2 producer's, whose coordinator
    /// bumped the epoch to end it, so the marker's epoch must be newer than the producer's
    /// epoch here (KIP-1228); the same epoch is accepted only as the retry of a marker
    /// already written (no transaction open here). Older transactions only refuse an epoch
    /// older than the producer's.
    pub fn write_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
        tv2: bool,
    ) -> Result<i64, ResponseError> {
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_deleted() {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        if !self.leading() {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let offset = state.next_offset;
        let known = state.producers.get(&producer_id).cloned();
        if let Some(e) = &known {
            let stale = if tv2 {
                epoch < e.epoch
                    || (epoch == e.epoch && e.txn_first_offset.is_some() && epoch != i16::MAX)
            } else {
                epoch < e.epoch
            };
            if stale {
                tracing::warn!(topic = %self.topic, partition = self.index, producer_id, epoch, current_epoch = e.epoch, tv2, "transaction marker with a stale producer epoch refused");
                return Err(ResponseError::InvalidProducerEpoch);
            }
        }
        let mut entry = known.unwrap_or_else(|| ProducerEntry::new(epoch));
        // A coordinator that lost the transactional id (a zombie) writes no marker here
        // once its successor did, as in Kafka.
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ResponseError::TransactionCoordinatorFenced);
        }
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        let now = now_ms();
        let epoch_now = self.leader_epoch();
        let bytes = batch::control_batch(
            offset,
            epoch_now,
            producer_id,
            epoch,
            marker == Marker::Commit,
            coordinator_epoch,
            now,
        );
        let first = entry.txn_first_offset.take();
        entry.last_timestamp = now;
        entry.coordinator_epoch = coordinator_epoch;
        let mut wb = self.store.batch();
        wb.put_log(self.uid, offset, &bytes);
        wb.put_producer(self.uid, producer_id, &entry.encode());
        let aborted = match (marker, first) {
            (Marker::Abort, Some(first_offset)) => {
                wb.put_aborted(self.uid, offset, producer_id, first_offset);
                Some(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: offset,
                })
            }
            _ => None,
        };
        if let Err(e) = self.store.write(wb) {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "marker write failed");
            return Err(ResponseError::KafkaStorageError);
        }
        if let Some(a) = aborted {
            self.aborted
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(a);
        }
        state.set_producer(producer_id, entry);
        state.size.adjust(bytes.len() as i64);
        state.next_offset = offset + 1;
        state.last_epoch = epoch_now;
        self.publish_end(&state, offset + 1);
        drop(state);
        self.appended.notify_waiters();
        Ok(offset)
    }

    /// Moves the log start offset to `offset` (DeleteRecords; -1 means the high watermark)
    /// and deletes every batch that lies wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, ResponseError> {
        // The scan of what to delete runs without the append lock; if the log's front changed
        // meanwhile it is planned again, and the last attempt plans under the lock.
        for attempt in 0..3 {
            let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
            if self.is_deleted() {
                return Err(ResponseError::UnknownTopicOrPartition);
            }
            let hw = self.high_watermark();
            let target = if offset == -1 { hw } else { offset };
            if target < 0 || target > hw {
                return Err(ResponseError::OffsetOutOfRange);
            }
            let lso = self.log_start_offset();
            if target <= lso {
                return Ok(lso);
            }
            let plan = if attempt == 2 {
                self.plan_truncation(lso, target, |_, _| true)?
            } else {
                let reshaped = state.reshaped;
                drop(state);
                let plan = self.plan_truncation(lso, target, |_, _| true)?;
                state = self.append.lock().unwrap_or_else(|e| e.into_inner());
                if state.reshaped != reshaped || self.log_start_offset() != lso {
                    continue;
                }
                plan
            };
            return self
                .apply_truncation(&mut state, lso, plan, target, true)
                .map(|_| self.log_start_offset());
        }
        unreachable!("the last attempt plans under the lock")
    }

    /// Which batches from the log start `lso` go: those that end below `limit` while
    /// `delete(header, size)` says so. Returns (the first kept batch's base, bytes freed).
    fn plan_truncation(
        &self,
        lso: i64,
        limit: i64,
        mut delete: impl FnMut(&BatchHeader, usize) -> bool,
    ) -> Result<(Option<i64>, u64), ResponseError> {
        let mut first_kept = None;
        let mut freed = 0u64;
        let res = self.store.read_batches(self.uid, lso, |base, bytes| {
            match BatchHeader::parse(bytes) {
                Some(h) if h.last_offset() < limit && delete(&h, bytes.len()) => {
                    freed += bytes.len() as u64;
                    true
                }
                _ => {
                    first_kept = Some(base);
                    false
                }
            }
        });
        if let Err(e) = res {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "truncate failed");
            return Err(ResponseError::KafkaStorageError);
        }
        Ok((first_kept, freed))
    }

    /// Carries out a truncation planned from log start `lso` (callers hold the append lock
    /// and have checked the log's front did not change since the plan). The log start
    /// offset becomes `limit` when `start_at_limit` (DeleteRecords: Kafka's log start may
    /// fall inside a batch), else the first kept batch (retention). Returns bytes deleted.
    fn apply_truncation(
        &self,
        state: &mut AppendState,
        lso: i64,
        (first_kept, freed): (Option<i64>, u64),
        limit: i64,
        start_at_limit: bool,
    ) -> Result<u64, ResponseError> {
        let first_kept_base = first_kept.unwrap_or(self.log_end_offset.load(Ordering::Acquire));
        let new_start = if start_at_limit {
            limit
        } else {
            first_kept_base
        }
        .max(lso);
        if new_start == lso && freed == 0 {
            return Ok(0);
        }
        let mut wb = self.store.batch();
        wb.delete_aborted_before(self.uid, new_start);
        wb.delete_log_before(self.uid, first_kept_base, new_start)
            .and_then(|_| self.store.write(wb))
            .map_err(|e| {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "truncate failed");
                ResponseError::KafkaStorageError
            })?;
        self.log_start_offset.store(new_start, Ordering::Release);
        self.aborted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|a| a.last_offset >= new_start);
        state.size.adjust(-(freed as i64));
        state.reshaped += 1;
        Ok(freed)
    }

    /// Kafka's `producer.id.expiration.ms`: forgets producers whose last batch is older
    /// than `expiration_ms` and that have no open transaction, so the producer map does not
    /// grow with every producer id ever seen. Returns how many were forgotten.
    pub fn expire_producers(&self, now: i64, expiration_ms: i64) -> Result<usize, ResponseError> {
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_deleted() {
            return Ok(0);
        }
        let expired: Vec<i64> = state
            .producers
            .iter()
            .filter(|(_, e)| {
                e.txn_first_offset.is_none() && now.saturating_sub(e.last_timestamp) > expiration_ms
            })
            .map(|(pid, _)| *pid)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let mut wb = self.store.batch();
        for pid in &expired {
            wb.delete_producer(self.uid, *pid);
        }
        self.store.write(wb).map_err(|e| {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "producer expiration failed");
            ResponseError::KafkaStorageError
        })?;
        for pid in &expired {
            state.producers.remove(pid);
        }
        Ok(expired.len())
    }

    /// Retention: deletes batches from the front while `expired(header, size)` holds.
    /// Returns the bytes freed. The scan runs without the append lock; if the log's front
    /// changed meanwhile (compaction, DeleteRecords) nothing is deleted this round.
    pub fn apply_retention(
        &self,
        expired: impl FnMut(&BatchHeader, usize) -> bool,
    ) -> Result<u64, ResponseError> {
        let (lso, hw, reshaped) = {
            let state = self.append.lock().unwrap_or_else(|e| e.into_inner());
            if self.is_deleted() {
                return Ok(0);
            }
            (
                self.log_start_offset(),
                self.high_watermark(),
                state.reshaped,
            )
        };
        let plan = self.plan_truncation(lso, hw, expired)?;
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_deleted() || state.reshaped != reshaped || self.log_start_offset() != lso {
            return Ok(0);
        }
        self.apply_truncation(&mut state, lso, plan, hw, false)
    }

    /// Visits the batches from the log start offset while `visit(base, bytes)` says so.
    pub fn scan_batches(
        &self,
        mut visit: impl FnMut(i64, &[u8]) -> bool,
    ) -> Result<(), ResponseError> {
        let hw = self.high_watermark();
        self.store
            .read_batches(self.uid, self.log_start_offset(), |base, bytes| {
                base < hw && visit(base, bytes)
            })
            .map_err(|e| {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "scan failed");
                ResponseError::KafkaStorageError
            })
    }

    /// Compaction's write: removes the batches at `removed` base offsets and stores the
    /// rewritten ones, atomically, unless retention or DeleteRecords moved the log start
    /// past `expected_start` meanwhile (then nothing is written and false is returned).
    /// `removed_bytes` is the removed batches' total size, for the running log size.
    pub fn replace_batches(
        &self,
        expected_start: i64,
        removed: &[i64],
        removed_bytes: u64,
        rewritten: &[(i64, Bytes)],
    ) -> Result<bool, ResponseError> {
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_deleted() || self.log_start_offset() != expected_start {
            return Ok(false);
        }
        let mut wb = self.store.batch();
        for base in removed {
            wb.delete_log(self.uid, *base);
        }
        for (base, bytes) in rewritten {
            wb.put_log(self.uid, *base, bytes);
        }
        // Compaction never moves the log start, even when the first batch loses its head.
        wb.put_log_start(self.uid, expected_start);
        self.store.write(wb).map_err(|e| {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "compaction write failed");
            ResponseError::KafkaStorageError
        })?;
        let added: u64 = rewritten.iter().map(|(_, b)| b.len() as u64).sum();
        state.size.adjust(added as i64 - removed_bytes as i64);
        state.reshaped += 1;
        Ok(true)
    }

    /// The total size of the partition's batches. The first call scans the log: over a view
    /// taken under the append lock, read without it (appends meanwhile are counted aside
    /// and added), so producers do not wait for the scan. Later calls are free.
    pub fn size_bytes(&self) -> Result<u64, ResponseError> {
        let sum = |scan: crate::storage::LogScan<'_>| {
            let mut total = 0u64;
            scan.visit(|_, bytes| {
                total += bytes.len() as u64;
                true
            })
            .map(|_| total)
            .map_err(|_| ResponseError::KafkaStorageError)
        };
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        match state.size {
            Size::Known(s) => return Ok(s),
            Size::Scanning(_) => {
                // Another first scan is under way; count here, under the lock, and settle it.
                let total = sum(self.store.log_scan(self.uid, self.log_start_offset()))?;
                state.size = Size::Known(total);
                return Ok(total);
            }
            Size::Unknown => {}
        }
        state.size = Size::Scanning(0);
        let scan = self.store.log_scan(self.uid, self.log_start_offset());
        drop(state);
        let result = sum(scan);
        let mut state = self.append.lock().unwrap_or_else(|e| e.into_inner());
        match (result, state.size) {
            (Ok(total), Size::Scanning(delta)) => {
                let total = (total as i64).saturating_add(delta).max(0) as u64;
                state.size = Size::Known(total);
                Ok(total)
            }
            (Ok(_), Size::Known(s)) => Ok(s),
            (Ok(total), Size::Unknown) => Ok(total),
            (Err(e), Size::Scanning(_)) => {
                state.size = Size::Unknown;
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Reads whole batches from the one containing `offset`, up to `max_bytes` (but always the
    /// first batch when `at_least_one` is set, as Kafka does so a large batch never blocks a
    /// consumer). Stops at the high watermark, or at the last stable offset for
    /// read_committed readers.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        read_committed: bool,
    ) -> Result<ReadResult, ResponseError> {
        let limit = if read_committed {
            self.last_stable_offset()
        } else {
            self.high_watermark()
        };
        self.read_until(offset, max_bytes, at_least_one, limit)
    }

    /// Reads for a follower: up to the log end, past the high watermark, since the high
    /// watermark moves only once followers have the batches.
    pub fn read_for_replica(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, ResponseError> {
        self.read_until(offset, max_bytes, true, self.log_end_offset())
    }

    fn read_until(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        hw: i64,
    ) -> Result<ReadResult, ResponseError> {
        let lso = self.log_start_offset();
        let mut out = BytesMut::new();
        if offset < hw {
            let res = self.store.read_batches(self.uid, offset, |base, bytes| {
                if base >= hw {
                    return false;
                }
                let Some(h) = BatchHeader::parse(bytes) else {
                    return false;
                };
                if h.last_offset() < offset {
                    return true; // the batch before the requested offset: skip it
                }
                let fits = out.len() + bytes.len() <= max_bytes;
                if fits || (at_least_one && out.is_empty()) {
                    out.extend_from_slice(bytes);
                    fits
                } else {
                    false
                }
            });
            if let Err(e) = res {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "read failed");
                return Err(ResponseError::KafkaStorageError);
            }
        }
        Ok(ReadResult {
            records: out.freeze(),
            high_watermark: self.high_watermark(),
            log_start_offset: lso,
        })
    }

    /// The first offset whose record timestamp is at least `ts`, with that timestamp
    /// (ListOffsets by time); `None` when no record is that late.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, ResponseError> {
        let entry = self
            .store
            .time_index_at_or_after(self.uid, ts)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        let Some((_, base)) = entry else {
            return Ok(None);
        };
        self.scan_records_from(base, |t| t >= ts)
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, ResponseError> {
        let max_ts = self
            .append
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .max_timestamp;
        if max_ts == i64::MIN {
            return Ok(None);
        }
        self.offset_for_timestamp(max_ts)
    }

    /// Decodes batches from `base` until a record satisfies `pred` on its timestamp.
    fn scan_records_from(
        &self,
        base: i64,
        pred: impl Fn(i64) -> bool,
    ) -> Result<Option<(i64, i64)>, ResponseError> {
        let hw = self.high_watermark();
        let mut found = None;
        let mut failed = false;
        let res = self.store.read_batches(self.uid, base, |b, bytes| {
            if b >= hw {
                return false;
            }
            let Some(h) = BatchHeader::parse(bytes) else {
                failed = true;
                return false;
            };
            let start = self.log_start_offset();
            let walked = records::walk(
                bytes,
                records::STORED_BATCH_CAP,
                Check::Stored,
                Hold::Fields,
                |r| {
                    let offset = h.base_offset + i64::from(r.offset_delta);
                    let ts = if h.is_log_append_time() {
                        h.max_timestamp
                    } else {
                        h.base_timestamp.saturating_add(r.timestamp_delta)
                    };
                    if pred(ts) && offset >= start {
                        found = Some((offset, ts));
                        return false;
                    }
                    true
                },
            );
            if walked.is_err() {
                failed = true;
            }
            found.is_none() && !failed
        });
        if res.is_err() || failed {
            return Err(ResponseError::KafkaStorageError);
        }
        Ok(found)
    }
}
