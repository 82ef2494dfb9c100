//! The transaction coordinator: the state of every `transactional.id`, and the commit or
//! abort that writes markers into the partitions a transaction touched.
//!
//! One state per transactional id, as in Kafka's TransactionStateManager, persisted in the
//! store on every transition so a restart resumes where the broker stopped: an open
//! transaction can still be committed, and a commit or abort that was being written is
//! finished at start-up. Offsets sent with a transaction (TxnOffsetCommit) are held here
//! and become the group's committed offsets only when the transaction commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::fault::Faults;
use crate::group::consumer::ConsumerGroups;
use crate::group::CommittedOffset;
use crate::group::GroupCoordinator;
use crate::log::partition::Marker;
use crate::metadata::Metadata;
use crate::storage::Store;
use crate::storage::StoreError;
use crate::txn::ProducerIds;

mod v2;

/// Kafka's transaction states, under Kafka's names (DescribeTransactions reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// An offset sent to a group inside a transaction, committed only with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// One transactional id's state.
///
/// It exists so that a producer's transaction outlives its connection and the broker
/// process: the coordinator, not the producer, knows which partitions need a marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions added to the open transaction (AddPartitionsToTxn).
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups added (AddOffsetsToTxn), with the offsets sent to each (TxnOffsetCommit).
    pub groups: BTreeMap<String, Vec<PendingOffset>>,
    /// When the open transaction started (ms since the epoch), -1 when none is open.
    pub start_ms: i64,
    pub update_ms: i64,
    /// KIP-890 part 2: the transaction was begun or ended by a transaction.version 2
    /// producer (Produce v12+, TxnOffsetCommit v5+, EndTxn v5+). Its markers carry the
    /// bumped epoch and are checked strictly by partitions (KIP-1228).
    #[serde(default)]
    pub tv2: bool,
    /// The producer id the next completion moves to, allocated when a transaction.version 2
    /// end finds the epoch exhausted (Kafka's nextProducerId); None otherwise.
    #[serde(default)]
    pub next_producer_id: Option<i64>,
    /// The producer id before the last such move (Kafka's prevProducerId), so an EndTxn
    /// retried with the old id is recognised.
    #[serde(default)]
    pub prev_producer_id: Option<i64>,
}

/// What the coordinator works on besides its own state, lent by the broker for each call:
/// the partitions it writes markers to, the groups it commits offsets for, producer ids and
/// fault rules. A narrow interface, so the coordinator does not depend on the broker.
pub struct TxnEnv<'a> {
    pub metadata: &'a Metadata,
    pub groups: &'a GroupCoordinator,
    pub consumer_groups: &'a ConsumerGroups,
    pub producer_ids: &'a ProducerIds,
    pub faults: &'a Faults,
}

/// Where transaction states go before the coordinator's table (cluster mode).
///
/// It exists so the coordinator does not know about partitions or replication: in cluster
/// mode every state change is also a record of the transactional id's partition of
/// `__transaction_state` (see `crate::coordinator_log`), from which the next coordinator
/// rebuilds it.
pub trait TxnJournal: Send + Sync {
    /// Queues the id's new state (None: the id is forgotten). NOT_COORDINATOR when this
    /// broker does not lead the id's partition.
    fn append(&self, transactional_id: &str, state: Option<Vec<u8>>) -> Result<(), ResponseError>;
}

/// Coordinator limits, from the broker's flags.
#[derive(Debug, Clone, Copy)]
pub struct TxnConfig {
    /// Kafka's `transaction.max.timeout.ms`: the longest transaction.timeout.ms accepted.
    pub max_timeout_ms: i32,
    /// Kafka's `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
}

#[derive(Default)]
struct Inner {
    txns: HashMap<String, TxnMeta>,
    /// Which transactional id owns each producer id, for the Produce-time check.
    by_producer: HashMap<i64, String>,
}

/// The transaction coordinator of this broker.
///
/// It exists so transactional producers get Kafka's exactly-once protocol: fencing by
/// epoch, partitions registered before they are written, markers on commit and abort,
/// and a broker-side abort of transactions left open past their timeout.
pub struct TxnCoordinator {
    store: Arc<Store>,
    config: TxnConfig,
    inner: Mutex<Inner>,
    /// Transactional ids whose markers are being written now, so the retry of a failed
    /// completion never runs beside the first attempt (a marker written twice).
    completing: Mutex<std::collections::HashSet<String>>,
    /// Cluster mode: notified when a prepared transaction has markers for other brokers.
    remote_markers: Arc<tokio::sync::Notify>,
    /// Cluster mode: the replicated log of every state change.
    journal: std::sync::OnceLock<Arc<dyn TxnJournal>>,
}

/// Kafka's producer check on every transactional request: the id must be this
/// transactional id's, and the epoch its current one (an older epoch is a fenced producer).
fn check_producer(meta: &TxnMeta, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
    if meta.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if meta.producer_epoch != epoch {
        return Err(ResponseError::ProducerFenced);
    }
    Ok(())
}

impl TxnCoordinator {
    /// Loads every transactional id's state from the store (a prefix scan).
    pub fn load(store: Arc<Store>, config: TxnConfig) -> Result<TxnCoordinator, StoreError> {
        let mut inner = Inner::default();
        for (k, v) in store.scan_txns()? {
            let Ok(meta) = serde_json::from_slice::<TxnMeta>(&v) else {
                tracing::warn!(
                    key = %k,
                    "unreadable transaction state skipped"
                );
                continue;
            };
            inner
                .by_producer
                .insert(meta.producer_id, meta.transactional_id.clone());
            inner.txns.insert(meta.transactional_id.clone(), meta);
        }
        Ok(TxnCoordinator {
            store,
            config,
            inner: Mutex::new(inner),
            completing: Mutex::new(Default::default()),
            remote_markers: Arc::new(tokio::sync::Notify::new()),
            journal: std::sync::OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self, meta: &TxnMeta) -> Result<(), ResponseError> {
        let value = serde_json::to_vec(meta).map_err(|_| ResponseError::UnknownServerError)?;
        if let Some(j) = self.journal.get() {
            j.append(&meta.transactional_id, Some(value.clone()))?;
        }
        let mut wb = self.store.batch();
        wb.put_txn(&meta.transactional_id, Some(&value));
        self.store.write_direct(wb).map_err(|e| {
            tracing::error!(transactional_id = %meta.transactional_id, error = %e, "transaction state write failed");
            ResponseError::KafkaStorageError
        })
    }

    /// Finishes commits and aborts that a stopped broker left half-written.
    pub fn recover(&self, env: &TxnEnv<'_>) {
        self.finish_prepared(env, "finishing a transaction left half-written");
    }

    /// Completes every transaction still in PrepareCommit or PrepareAbort: left so by a
    /// stopped broker, or by a marker or offset write that failed. Kafka's coordinator
    /// retries markers until they are written; so does this, on the coordinator's timer.
    /// Returns how many completed.
    pub fn finish_prepared(&self, env: &TxnEnv<'_>, why: &str) -> usize {
        if self.journal.get().is_some() {
            // Cluster mode: `crate::txn_markers` completes prepared transactions.
            self.remote_markers.notify_one();
            return 0;
        }
        let preparing: Vec<(String, TxnState)> = self
            .lock()
            .txns
            .values()
            .filter(|m| m.state.preparing())
            .map(|m| (m.transactional_id.clone(), m.state))
            .collect();
        let mut done = 0;
        for (id, state) in preparing {
            let marker = if state == TxnState::PrepareCommit {
                Marker::Commit
            } else {
                Marker::Abort
            };
            tracing::info!(transactional_id = %id, state = state.name(), "{why}");
            if self.write_markers_and_complete(env, &id, marker) {
                done += 1;
            }
        }
        done
    }

    /// InitProducerId with a transactional id: a fresh producer id for a new id, else the
    /// next epoch of its producer id, which fences every older producer instance. An open
    /// transaction of the old instance is aborted first.
    pub fn init_producer_id(
        &self,
        env: &TxnEnv<'_>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let ongoing = {
            let inner = self.lock();
            match inner.txns.get(transactional_id) {
                Some(m) if m.state.preparing() => {
                    return Err(ResponseError::ConcurrentTransactions)
                }
                Some(m) => {
                    if let Some((pid, epoch)) = expected {
                        // KIP-360: a producer recovering its own id must hold the current one.
                        if pid != m.producer_id || epoch != m.producer_epoch {
                            return Err(ResponseError::ProducerFenced);
                        }
                    }
                    m.state == TxnState::Ongoing
                }
                None => false,
            }
        };
        if ongoing {
            self.end(env, transactional_id, Marker::Abort, true)?;
        }
        let mut inner = self.lock();
        let now = now_ms();
        let existing = inner.txns.get(transactional_id).cloned();
        let meta = match existing {
            Some(mut m) => {
                if m.state.preparing() {
                    return Err(ResponseError::ConcurrentTransactions);
                }
                if m.producer_epoch >= i16::MAX - 1 {
                    // Epochs are exhausted: a new producer id starts over at epoch 0.
                    let pid = env.producer_ids.allocate()?;
                    inner.by_producer.remove(&m.producer_id);
                    m.producer_id = pid;
                    m.producer_epoch = 0;
                } else {
                    m.producer_epoch += 1;
                }
                m.timeout_ms = timeout_ms;
                m.state = TxnState::Empty;
                m.partitions.clear();
                m.groups.clear();
                m.start_ms = -1;
                m.update_ms = now;
                m
            }
            None => TxnMeta {
                transactional_id: transactional_id.to_string(),
                producer_id: env.producer_ids.allocate()?,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeMap::new(),
                start_ms: -1,
                update_ms: now,
                tv2: false,
                next_producer_id: None,
                prev_producer_id: None,
            },
        };
        self.persist(&meta)?;
        let ids = (meta.producer_id, meta.producer_epoch);
        inner
            .by_producer
            .insert(meta.producer_id, transactional_id.to_string());
        inner.txns.insert(transactional_id.to_string(), meta);
        Ok(ids)
    }

    /// Runs `f` on a transactional id's state after the producer check, persisting it if
    /// `f` succeeds; a transaction being completed answers CONCURRENT_TRANSACTIONS.
    fn update<T>(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        f: impl FnOnce(&mut TxnMeta) -> Result<T, ResponseError>,
    ) -> Result<T, ResponseError> {
        let mut inner = self.lock();
        let meta = inner
            .txns
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.state.preparing() && meta.next_producer_id == Some(producer_id) {
            // A transaction.version 2 producer already holds the id its transaction's
            // completion moves to (the EndTxn answer carried it): it waits like the others.
            return Err(ResponseError::ConcurrentTransactions);
        }
        check_producer(meta, producer_id, epoch)?;
        if meta.state.preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let mut next = meta.clone();
        let out = f(&mut next)?;
        if next != *meta {
            next.update_ms = now_ms();
            self.persist(&next)?;
            inner.txns.insert(transactional_id.to_string(), next);
        }
        Ok(out)
    }

    /// Opens a transaction unless one is open; `tv2` says whether its producer runs
    /// transaction.version 2 (the partition or group was added implicitly).
    fn begin(meta: &mut TxnMeta, tv2: bool) {
        if meta.state != TxnState::Ongoing {
            meta.state = TxnState::Ongoing;
            meta.start_ms = now_ms();
            meta.partitions.clear();
            meta.groups.clear();
            meta.tv2 = tv2;
        }
    }

    /// AddPartitionsToTxn: registers partitions in the producer's transaction, starting
    /// it if none is open. With `verify_only` nothing changes: every partition must already
    /// be in the open transaction (else TRANSACTION_ABORTABLE, as Kafka's coordinator
    /// answers). `tv2`: added implicitly by a transaction.version 2 Produce.
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        verify_only: bool,
        tv2: bool,
    ) -> Result<(), ResponseError> {
        self.update(transactional_id, producer_id, epoch, |m| {
            if verify_only {
                let all_in = m.state == TxnState::Ongoing
                    && partitions.iter().all(|p| m.partitions.contains(p));
                return if all_in {
                    Ok(())
                } else {
                    Err(ResponseError::TransactionAbortable)
                };
            }
            Self::begin(m, tv2);
            m.partitions.extend(partitions.iter().cloned());
            Ok(())
        })
    }

    /// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
    /// `tv2`: added implicitly by a transaction.version 2 TxnOffsetCommit (v5+).
    pub fn add_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group_id: &str,
        offsets_partition: Option<(String, i32)>,
        tv2: bool,
    ) -> Result<(), ResponseError> {
        self.update(transactional_id, producer_id, epoch, |m| {
            Self::begin(m, tv2);
            m.groups.entry(group_id.to_string()).or_default();
            if let Some(p) = offsets_partition {
                m.partitions.insert(p);
            }
            Ok(())
        })
    }

    /// TxnOffsetCommit: holds offsets for the group until the transaction ends.
    pub fn add_pending_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group_id: &str,
        offsets: Vec<PendingOffset>,
    ) -> Result<(), ResponseError> {
        self.update(transactional_id, producer_id, epoch, |m| {
            if m.state != TxnState::Ongoing {
                return Err(ResponseError::InvalidTxnState);
            }
            let pending = m.groups.entry(group_id.to_string()).or_default();
            for o in offsets {
                pending
                    .retain(|p| (p.topic.as_str(), p.partition) != (o.topic.as_str(), o.partition));
                pending.push(o);
            }
            Ok(())
        })
    }

    /// EndTxn from a transaction.version 0/1 producer (EndTxn v0-4). A retry of a completed
    /// commit (or abort) succeeds again; the other outcome of a completed transaction is
    /// INVALID_TXN_STATE, as in Kafka. Version 2 producers end in [`Self::end_txn_v2`].
    pub fn end_txn(
        &self,
        env: &TxnEnv<'_>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), ResponseError> {
        {
            let inner = self.lock();
            let meta = inner
                .txns
                .get(transactional_id)
                .ok_or(ResponseError::InvalidProducerIdMapping)?;
            check_producer(meta, producer_id, epoch)?;
            match (meta.state, commit) {
                (TxnState::Ongoing, _) => {}
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                    return Ok(())
                }
                (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                    return Err(ResponseError::ConcurrentTransactions)
                }
                _ => return Err(ResponseError::InvalidTxnState),
            }
        }
        let marker = if commit {
            Marker::Commit
        } else {
            Marker::Abort
        };
        self.end(env, transactional_id, marker, false).map(|_| ())
    }

    /// Moves an open transaction to Prepare*, optionally bumping the epoch (to fence the
    /// producer: timeouts and a new instance's InitProducerId; and every end of a
    /// transaction.version 2 producer's transaction), then writes the markers. Returns the
    /// ids the producer holds once the transaction completes.
    fn end(
        &self,
        env: &TxnEnv<'_>,
        transactional_id: &str,
        marker: Marker,
        bump_epoch: bool,
    ) -> Result<(i64, i16), ResponseError> {
        let ids = {
            let mut inner = self.lock();
            let meta = inner
                .txns
                .get(transactional_id)
                .ok_or(ResponseError::InvalidProducerIdMapping)?;
            if meta.state != TxnState::Ongoing {
                return Err(ResponseError::InvalidTxnState);
            }
            let mut next = meta.clone();
            next.state = match marker {
                Marker::Commit => TxnState::PrepareCommit,
                Marker::Abort => TxnState::PrepareAbort,
            };
            if bump_epoch {
                Self::bump(env, &mut next)?;
            } else {
                // Markers at the producer's own epoch: checked as version 0/1 markers.
                next.tv2 = false;
            }
            next.update_ms = now_ms();
            self.persist(&next)?;
            let ids = Self::completed_ids(&next);
            inner.txns.insert(transactional_id.to_string(), next);
            ids
        };
        if self.journal.get().is_some() {
            // Cluster mode: the markers wait until the prepared state is replicated
            // (`crate::txn_markers` awaits it), so a new coordinator never finds a
            // transaction half-marked that its log still calls open.
            self.remote_markers.notify_one();
        } else {
            self.write_markers_and_complete(env, transactional_id, marker);
        }
        Ok(ids)
    }

    /// The epoch bump of an ending transaction. Version 2 producers whose epoch is
    /// exhausted (Short.MAX_VALUE - 1, Kafka's isEpochExhausted) get a new producer id at
    /// completion: the markers go out at the last epoch, Short.MAX_VALUE. A version 0/1
    /// epoch stops at its limit, where the next InitProducerId moves to a new id.
    fn bump(env: &TxnEnv<'_>, meta: &mut TxnMeta) -> Result<(), ResponseError> {
        if meta.producer_epoch < i16::MAX - 1 {
            meta.producer_epoch += 1;
        } else if meta.tv2 && meta.producer_epoch == i16::MAX - 1 {
            meta.next_producer_id = Some(env.producer_ids.allocate()?);
            meta.producer_epoch = i16::MAX;
        }
        Ok(())
    }

    /// The producer id and epoch a transaction leaves its producer with once complete.
    fn completed_ids(meta: &TxnMeta) -> (i64, i16) {
        match meta.next_producer_id {
            Some(pid) => (pid, 0),
            None => (meta.producer_id, meta.producer_epoch),
        }
    }

    /// Writes the markers of a Prepare* transaction and commits (or drops) its offsets,
    /// then marks it complete; true when it completed. When a marker or the offsets cannot
    /// be written, the transaction stays prepared (its partitions' last stable offset stays
    /// where it is, and its producer gets CONCURRENT_TRANSACTIONS) and `finish_prepared`
    /// retries what is left. Runs without the coordinator lock: a partition's append lock
    /// is taken inside, and Produce asks the coordinator while holding that lock.
    fn write_markers_and_complete(
        &self,
        env: &TxnEnv<'_>,
        transactional_id: &str,
        marker: Marker,
    ) -> bool {
        let _completing = match Completing::claim(&self.completing, transactional_id) {
            Some(c) => c,
            None => return false,
        };
        let Some(meta) = self.lock().txns.get(transactional_id).cloned() else {
            return false;
        };
        if !meta.state.preparing() {
            return false; // completed by another pass meanwhile
        }
        let mut failed = false;
        let mut remote = false;
        for (topic, index) in &meta.partitions {
            let Some((t, p)) = env
                .metadata
                .topic(topic)
                .and_then(|t| t.partition(*index).cloned().map(|p| (t, p)))
            else {
                self.marked(transactional_id, topic, *index);
                continue; // deleted meanwhile: nothing left to mark
            };
            if env.metadata.cluster().is_some() && !env.metadata.leads(&t, *index) {
                // Another broker leads it: the cluster's marker sender
                // (`crate::txn_markers`) sends it WriteTxnMarkers, then completes.
                remote = true;
                continue;
            }
            let injected = if env.faults.armed() {
                match env.faults.check(
                    kafka_protocol::messages::ApiKey::WriteTxnMarkers,
                    std::slice::from_ref(topic),
                ) {
                    Some(crate::fault::Action::Error(code)) => Some(
                        ResponseError::try_from_code(code)
                            .unwrap_or(ResponseError::KafkaStorageError),
                    ),
                    _ => None,
                }
            } else {
                None
            };
            let written = match injected {
                Some(e) => Err(e),
                None => p.write_marker(
                    meta.producer_id,
                    meta.producer_epoch,
                    marker,
                    crate::txn_markers::coordinator_epoch(env.metadata, transactional_id),
                    meta.tv2,
                ),
            };
            match written {
                Ok(_) => {
                    self.marked(transactional_id, topic, *index);
                    if topic == crate::coordinator_log::OFFSETS_TOPIC {
                        env.groups.txn_marker_written(
                            env.consumer_groups,
                            *index,
                            t.placements.len(),
                            meta.producer_id,
                            marker == Marker::Commit,
                        );
                    }
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(transactional_id, topic = %topic, partition = index, error = ?e, "transaction marker not written; the transaction stays prepared and the marker is retried");
                }
            }
        }
        if failed || remote {
            if remote {
                self.remote_markers.notify_one();
            }
            return false;
        }
        if marker == Marker::Commit {
            let now = now_ms();
            for (group, offsets) in &meta.groups {
                let commits: Vec<(String, i32, CommittedOffset)> = offsets
                    .iter()
                    .map(|o| {
                        (
                            o.topic.clone(),
                            o.partition,
                            CommittedOffset {
                                offset: o.offset,
                                leader_epoch: o.leader_epoch,
                                metadata: o.metadata.clone(),
                                commit_timestamp_ms: now,
                            },
                        )
                    })
                    .collect();
                if !commits.is_empty() {
                    if let Err(e) = env.groups.offsets.commit(group, &commits) {
                        tracing::warn!(transactional_id, group = %group, error = ?e, "transactional offsets not committed; the transaction stays prepared and the commit is retried");
                        return false;
                    }
                    if !env.consumer_groups.exists(group) {
                        env.groups.touch(group);
                    }
                }
            }
        }
        let mut inner = self.lock();
        let rotated = inner.txns.get_mut(transactional_id).and_then(|m| {
            // An exhausted epoch moves to the producer id allocated when it was prepared.
            let next = m.next_producer_id.take()?;
            m.prev_producer_id = Some(m.producer_id);
            let old = m.producer_id;
            m.producer_id = next;
            m.producer_epoch = 0;
            Some((old, next))
        });
        if let Some((old, next)) = rotated {
            if inner.by_producer.get(&old).map(String::as_str) == Some(transactional_id) {
                inner.by_producer.remove(&old);
            }
            inner.by_producer.insert(next, transactional_id.to_string());
        }
        if let Some(m) = inner.txns.get_mut(transactional_id) {
            m.state = match marker {
                Marker::Commit => TxnState::CompleteCommit,
                Marker::Abort => TxnState::CompleteAbort,
            };
            m.partitions.clear();
            m.groups.clear();
            m.start_ms = -1;
            m.update_ms = now_ms();
            let done = m.clone();
            if let Err(e) = self.persist(&done) {
                // Kept complete in memory; after a restart the stored Prepare state makes
                // recovery write the markers again, which a partition takes as no-ops.
                tracing::error!(transactional_id, error = ?e, "completed transaction state not stored");
            }
        }
        true
    }

    /// Cluster mode: every later state change is appended to `j` first.
    pub fn set_journal(&self, j: Arc<dyn TxnJournal>) {
        let _ = self.journal.set(j);
    }

    /// Forgets (in memory) the transactional ids `pick` selects: this broker no longer
    /// coordinates them. Their stored states stay until a load replaces them.
    pub fn unload(&self, pick: impl Fn(&str) -> bool) -> usize {
        let mut inner = self.lock();
        let gone: Vec<(String, i64)> = inner
            .txns
            .values()
            .filter(|m| pick(&m.transactional_id))
            .map(|m| (m.transactional_id.clone(), m.producer_id))
            .collect();
        for (id, pid) in &gone {
            inner.txns.remove(id);
            if inner.by_producer.get(pid) == Some(id) {
                inner.by_producer.remove(pid);
            }
        }
        gone.len()
    }

    /// Makes the states of the ids `pick` selects exactly `loaded` (read back from the
    /// journal by a new coordinator), in memory and in the table.
    pub fn replace_loaded(
        &self,
        pick: impl Fn(&str) -> bool,
        loaded: Vec<(String, Vec<u8>)>,
    ) -> Result<usize, ResponseError> {
        let mut metas = Vec::with_capacity(loaded.len());
        for (id, v) in &loaded {
            match serde_json::from_slice::<TxnMeta>(v) {
                Ok(m) if m.transactional_id == *id => metas.push(m),
                _ => {
                    tracing::warn!(transactional_id = %id, "unreadable transaction state in __transaction_state skipped")
                }
            }
        }
        let stored = self
            .store
            .scan_txns()
            .map_err(|_| ResponseError::KafkaStorageError)?;
        let mut wb = self.store.batch();
        for (id, _) in &stored {
            if pick(id) && !loaded.iter().any(|(l, _)| l == id) {
                wb.put_txn(id, None);
            }
        }
        for (id, v) in &loaded {
            wb.put_txn(id, Some(v));
        }
        self.store
            .write_direct(wb)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        self.unload(&pick);
        let mut inner = self.lock();
        for m in metas.iter().cloned() {
            inner
                .by_producer
                .insert(m.producer_id, m.transactional_id.clone());
            inner.txns.insert(m.transactional_id.clone(), m);
        }
        drop(inner);
        if metas.iter().any(|m| m.state.preparing()) {
            self.remote_markers.notify_one();
        }
        Ok(metas.len())
    }

    /// Prepared transactions (cluster mode: their markers are sent by `crate::txn_markers`),
    /// each with the partitions it still has to mark.
    pub fn prepared(&self) -> Vec<TxnMeta> {
        self.lock()
            .txns
            .values()
            .filter(|m| m.state.preparing())
            .cloned()
            .collect()
    }

    /// Completes a prepared transaction whose remote markers the sender wrote: local
    /// markers (if any are left), its offsets, then Complete*. True when it completed.
    pub fn complete_prepared(&self, env: &TxnEnv<'_>, transactional_id: &str) -> bool {
        let state = self.lock().txns.get(transactional_id).map(|m| m.state);
        let marker = match state {
            Some(TxnState::PrepareCommit) => Marker::Commit,
            Some(TxnState::PrepareAbort) => Marker::Abort,
            _ => return false,
        };
        self.write_markers_and_complete(env, transactional_id, marker)
    }

    /// Wakes the cluster's marker sender: a prepared transaction has partitions that
    /// other brokers lead.
    pub fn remote_markers(&self) -> Arc<tokio::sync::Notify> {
        self.remote_markers.clone()
    }

    /// Forgets a partition whose marker is written, so a retry writes only the others
    /// (in memory: after a restart all are written again, and a marker for a producer with
    /// no open transaction on a partition changes nothing there).
    pub fn marked(&self, transactional_id: &str, topic: &str, index: i32) {
        if let Some(m) = self.lock().txns.get_mut(transactional_id) {
            m.partitions.remove(&(topic.to_string(), index));
        }
    }

    /// Aborts, with an epoch bump that fences the producer, every transaction open longer
    /// than its timeout. Returns how many were aborted.
    pub fn abort_timed_out(&self, env: &TxnEnv<'_>) -> usize {
        let now = now_ms();
        let expired: Vec<String> = self
            .lock()
            .txns
            .values()
            .filter(|m| {
                m.state == TxnState::Ongoing
                    && m.start_ms >= 0
                    && now.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        let mut n = 0;
        for id in expired {
            tracing::info!(transactional_id = %id, "aborting a transaction open past its transaction.timeout.ms");
            if self.end(env, &id, Marker::Abort, true).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Forgets transactional ids with no transaction in progress whose last update is
    /// older than `transactional.id.expiration.ms`, as Kafka's coordinator does; returns
    /// how many. Runs under the coordinator's lock, so a request for one of them either
    /// comes first (and refreshes it) or finds it gone.
    pub fn expire_transactional_ids(&self, now: i64) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let expired: Vec<(String, i64)> = inner
            .txns
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && now.saturating_sub(m.update_ms) >= self.config.id_expiration_ms
            })
            .map(|m| (m.transactional_id.clone(), m.producer_id))
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let mut wb = self.store.batch();
        for (id, _) in &expired {
            if let Some(j) = self.journal.get() {
                // Not this broker's to expire any more: its coordinator will.
                if j.append(id, None).is_err() {
                    continue;
                }
            }
            wb.put_txn(id, None);
        }
        self.store.write_direct(wb)?;
        for (id, producer_id) in &expired {
            inner.txns.remove(id);
            if inner.by_producer.get(producer_id) == Some(id) {
                inner.by_producer.remove(producer_id);
            }
            tracing::info!(transactional_id = %id, "transactional id expired (transactional.id.expiration.ms)");
        }
        Ok(expired.len())
    }

    /// The Produce-time check of a transactional batch: its producer must be in an open
    /// transaction, at its current epoch, with this partition added.
    pub fn verify_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        let inner = self.lock();
        let meta = inner
            .by_producer
            .get(&producer_id)
            .and_then(|id| inner.txns.get(id))
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if epoch < meta.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if epoch > meta.producer_epoch
            || meta.state != TxnState::Ongoing
            || !meta.partitions.contains(&(topic.to_string(), partition))
        {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// Partitions of `group` with offsets waiting in an open transaction (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT for them).
    pub fn pending_partitions(&self, group: &str) -> BTreeSet<(String, i32)> {
        self.lock()
            .txns
            .values()
            .filter(|m| m.state == TxnState::Ongoing)
            .filter_map(|m| m.groups.get(group))
            .flatten()
            .map(|o| (o.topic.clone(), o.partition))
            .collect()
    }

    /// Every group added to a transaction not yet complete, with the partitions it holds
    /// offsets for: offsets expiry keeps those offsets and the group, as Kafka does.
    pub fn groups_in_open_transactions(
        &self,
    ) -> std::collections::HashMap<String, std::collections::HashSet<(String, i32)>> {
        let mut out: std::collections::HashMap<String, std::collections::HashSet<(String, i32)>> =
            Default::default();
        for m in self.lock().txns.values().filter(|m| {
            matches!(
                m.state,
                TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
            )
        }) {
            for (group, offsets) in &m.groups {
                out.entry(group.clone())
                    .or_default()
                    .extend(offsets.iter().map(|o| (o.topic.clone(), o.partition)));
            }
        }
        out
    }

    pub fn describe(&self, transactional_id: &str) -> Option<TxnMeta> {
        self.lock().txns.get(transactional_id).cloned()
    }

    /// Every transactional id's state, sorted by id.
    pub fn list(&self) -> Vec<TxnMeta> {
        let mut out: Vec<TxnMeta> = self.lock().txns.values().cloned().collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}

/// A claim on completing one transaction, released on drop.
struct Completing<'a> {
    set: &'a Mutex<std::collections::HashSet<String>>,
    id: String,
}

impl<'a> Completing<'a> {
    fn claim(set: &'a Mutex<std::collections::HashSet<String>>, id: &str) -> Option<Self> {
        let fresh = set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        fresh.then(|| Completing {
            set,
            id: id.to_string(),
        })
    }
}

impl Drop for Completing<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}
