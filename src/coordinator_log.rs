//! Cluster mode: the coordinators' state on their replicated topics: the group
//! coordinator's committed offsets on `__consumer_offsets`, the transaction coordinator's
//! states on `__transaction_state`.
//!
//! A group belongs to the leader of its partition of `__consumer_offsets` (Kafka's hash).
//! Every commit, deletion and expiry is appended to that partition first and answered once
//! the in-sync replicas have it, so it survives the loss of the coordinator's broker. A
//! broker that becomes the partition's leader (a new term: a new leader epoch) rebuilds the
//! offsets of the partition's groups from its log before it answers for them, and answers
//! COORDINATOR_LOAD_IN_PROGRESS meanwhile, as Kafka does. Transaction states go the same
//! way: each change of a transactional id's state is a record of its partition of
//! `__transaction_state` (key: Kafka's TransactionLogKey; value: Klamm's own state, JSON
//! behind version 100), and the requests that change it are answered once the record is
//! replicated. The single-node broker keeps only its tables, as before.
//!
//! Offsets committed inside a transaction (TxnOffsetCommit) are the producer's
//! transactional records of the group's partition, as in Kafka: the load holds them until
//! the producer's marker in the log commits or drops them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;

use crate::clock::now_ms;
use crate::context::{coordinator_partition, Context};
use crate::group::consumer_journal::ConsumerRecord;
use crate::group::journal::{self, JournalRecord, JournalWrite, OffsetJournal};
use crate::group::offsets::TxnPending;
use crate::group::streams::journal::StreamsRecord;
use crate::group::CommittedOffset;
use crate::log::batch::BatchHeader;

/// The coordinators' topic for groups.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The coordinators' topic for transactional ids.
pub const TXN_TOPIC: &str = "__transaction_state";
/// Version of a `__transaction_state` value holding Klamm's JSON state.
const TXN_VALUE_VERSION: i16 = 100;
/// How long a commit waits for the in-sync replicas (Kafka's `offsets.commit.timeout.ms`).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per step of a load.
const LOAD_READ_BYTES: usize = 1 << 20;

/// Which partitions of the coordinators' topics this broker has loaded, and in which term.
///
/// It exists so that a request for a group or a transactional id is answered only by a
/// coordinator whose view is the log's: a partition led in a new term is not ready until
/// its load finishes.
#[derive(Default)]
pub struct CoordinatorLoads {
    /// (key type: 0 groups, 1 transactions; partition) -> (leader epoch of the term, loaded).
    terms: Mutex<HashMap<(i8, i32), (i32, bool)>>,
}

impl CoordinatorLoads {
    fn terms(&self) -> std::sync::MutexGuard<'_, HashMap<(i8, i32), (i32, bool)>> {
        self.terms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether partition `index` of the key type's topic is loaded for the term of `epoch`.
    pub fn ready(&self, key_type: i8, index: i32, epoch: i32) -> bool {
        self.terms().get(&(key_type, index)) == Some(&(epoch, true))
    }
}

/// The journal of [`crate::group::OffsetStore`] in cluster mode: appends to the group's
/// partition of `__consumer_offsets`, which this broker must lead.
pub struct OffsetsTopicJournal {
    ctx: Weak<Context>,
}

impl OffsetsTopicJournal {
    pub fn new(ctx: Weak<Context>) -> OffsetsTopicJournal {
        OffsetsTopicJournal { ctx }
    }
}

/// Appends records to the partition of a coordinators' topic that owns `key`, which this
/// broker must lead (else NOT_COORDINATOR): (the partition, the queued append, the leader
/// epoch it was made in). The caller awaits `appended`, which publishes the new log end.
pub(crate) fn append_for_key(
    ctx: &Context,
    topic_name: &str,
    key: &str,
    producer: Option<(i64, i16)>,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> Result<
    (
        Arc<crate::log::partition::Partition>,
        crate::log::partition::Appended,
        i32,
    ),
    ResponseError,
> {
    let topic = ctx
        .metadata
        .topic(topic_name)
        .ok_or(ResponseError::NotCoordinator)?;
    let index = coordinator_partition(key, topic.placements.len());
    let partition = ctx
        .metadata
        .led_partition(&topic, index)
        .map_err(|_| ResponseError::NotCoordinator)?
        .clone();
    let bytes = crate::log::batch::records_batch(
        records.into_iter().map(|(k, v)| (Some(k), v)),
        now_ms(),
        producer,
    )?;
    let batches = crate::log::batch::split_and_validate(&bytes, usize::MAX)
        .map_err(|_| ResponseError::UnknownServerError)?;
    let epoch = partition.leader_epoch();
    let appended = partition.append_from_coordinator(&batches)?;
    Ok((partition, appended, epoch))
}

impl OffsetJournal for OffsetsTopicJournal {
    fn append(
        &self,
        group: &str,
        producer: Option<(i64, i16)>,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<JournalWrite, ResponseError> {
        let ctx = self.ctx.upgrade().ok_or(ResponseError::NotCoordinator)?;
        let (partition, appended, epoch) =
            append_for_key(&ctx, OFFSETS_TOPIC, group, producer, records)?;
        let end = appended.end();
        Ok(tokio::spawn(async move {
            partition.appended(appended).await?;
            match end {
                Some(end) => {
                    partition
                        .wait_for_high_watermark(end, epoch, COMMIT_TIMEOUT)
                        .await
                }
                None => Ok(()),
            }
        }))
    }
}

/// Where a transactional id's last state change went: (partition, end offset, leader epoch).
type LastChange = (Arc<crate::log::partition::Partition>, i64, i32);

/// The transaction coordinator's journal in cluster mode: appends each state change to
/// the id's partition of `__transaction_state`, and remembers where, so that a request is
/// answered only once its change is replicated ([`TxnLogJournal::durable`]).
pub struct TxnLogJournal {
    ctx: Weak<Context>,
    /// Transactional id -> (partition, end offset of its last change, leader epoch then).
    last: Mutex<HashMap<String, LastChange>>,
}

impl TxnLogJournal {
    pub fn new(ctx: Weak<Context>) -> TxnLogJournal {
        TxnLogJournal {
            ctx,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until the id's last state change is on every in-sync replica: NOT_COORDINATOR
    /// if this broker lost the partition meanwhile, COORDINATOR_NOT_AVAILABLE if the
    /// replicas did not confirm in time (both make the client retry, as with Kafka).
    pub async fn durable(&self, transactional_id: &str) -> Result<(), ResponseError> {
        let last = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(transactional_id)
            .cloned();
        let Some((partition, end, epoch)) = last else {
            return Ok(());
        };
        match partition
            .wait_for_high_watermark(end, epoch, COMMIT_TIMEOUT)
            .await
        {
            Ok(()) => {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                if last.get(transactional_id).is_some_and(|l| l.1 == end) {
                    last.remove(transactional_id);
                }
                Ok(())
            }
            Err(ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError) => {
                Err(ResponseError::NotCoordinator)
            }
            Err(_) => Err(ResponseError::CoordinatorNotAvailable),
        }
    }
}

/// Kafka's `TransactionLogKey` (version 0).
fn txn_key(transactional_id: &str) -> Bytes {
    let len = i16::try_from(transactional_id.len()).unwrap_or(i16::MAX);
    let mut k = Vec::with_capacity(4 + transactional_id.len());
    k.extend_from_slice(&0i16.to_be_bytes());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(&transactional_id.as_bytes()[..len as usize]);
    Bytes::from(k)
}

/// The transactional id of a `__transaction_state` key.
fn parse_txn_key(k: &[u8]) -> Option<String> {
    if k.get(..2)? != [0, 0] {
        return None;
    }
    let len = usize::try_from(i16::from_be_bytes(k.get(2..4)?.try_into().ok()?)).ok()?;
    Some(String::from_utf8_lossy(k.get(4..4 + len)?).into_owned())
}

impl crate::txn::coordinator::TxnJournal for TxnLogJournal {
    fn append(&self, transactional_id: &str, state: Option<Vec<u8>>) -> Result<(), ResponseError> {
        let ctx = self.ctx.upgrade().ok_or(ResponseError::NotCoordinator)?;
        let value = state.map(|v| {
            let mut out = Vec::with_capacity(2 + v.len());
            out.extend_from_slice(&TXN_VALUE_VERSION.to_be_bytes());
            out.extend_from_slice(&v);
            Bytes::from(out)
        });
        let (partition, appended, epoch) = append_for_key(
            &ctx,
            TXN_TOPIC,
            transactional_id,
            None,
            vec![(txn_key(transactional_id), value)],
        )?;
        if let Some(end) = appended.end() {
            self.last.lock().unwrap_or_else(|e| e.into_inner()).insert(
                transactional_id.to_string(),
                (partition.clone(), end, epoch),
            );
        }
        tokio::spawn(async move {
            // Publishes the new log end, which followers fetch up to.
            let _ = partition.appended(appended).await;
        });
        Ok(())
    }
}

/// Reads `partition` from its log start to its log end, batch by batch: `each` gets the
/// batch's header, its bytes, and the first offset not read before it (records below it
/// in a batch are older copies). The header moves the position even past a batch that
/// compaction emptied.
pub(crate) fn scan_log(
    partition: &crate::log::partition::Partition,
    mut each: impl FnMut(&BatchHeader, Bytes, i64) -> Result<(), ResponseError>,
) -> Result<(), ResponseError> {
    let mut next = partition.log_start_offset();
    let end = partition.log_end_offset();
    while next < end {
        let mut bytes = partition.read_for_replica(next, LOAD_READ_BYTES)?.records;
        if bytes.is_empty() {
            break;
        }
        while !bytes.is_empty() {
            let h = BatchHeader::parse(&bytes).ok_or(ResponseError::CorruptMessage)?;
            let one = bytes.split_to(h.size_bytes().min(bytes.len()));
            let before = next;
            next = next.max(h.last_offset() + 1);
            each(&h, one, before)?;
        }
    }
    Ok(())
}

/// The coordinators' topic of a key type: 0 groups, 1 transactional ids, 2 share
/// partitions.
fn topic_of(key_type: i8) -> &'static str {
    match key_type {
        0 => OFFSETS_TOPIC,
        crate::share::coordinator::KEY_TYPE => crate::share::coordinator::SHARE_STATE_TOPIC,
        _ => TXN_TOPIC,
    }
}

/// Follows this broker's leaderships of the coordinators' partitions: loads each new
/// term's partition, and forgets the groups and transactional ids of partitions it no
/// longer leads.
pub async fn run(ctx: Weak<Context>) {
    let Some(mut changes) = ctx.upgrade().map(|c| c.metadata.changes()) else {
        return;
    };
    let mut first = [true, true, true];
    loop {
        let Some(c) = ctx.upgrade() else { return };
        for key_type in [0i8, 1, crate::share::coordinator::KEY_TYPE] {
            follow_leaderships(&c, key_type, &mut first[key_type as usize]);
        }
        drop(c);
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Forgets, in memory, the groups (key type 0) or transactional ids (1) that `pick`
/// selects.
fn unload(ctx: &Context, key_type: i8, pick: &dyn Fn(&str) -> bool) -> usize {
    match key_type {
        0 => {
            ctx.groups.unload(pick)
                + ctx.consumer_groups.unload(pick)
                + ctx.share_groups.unload(pick)
                + ctx.streams_groups.unload(pick)
        }
        crate::share::coordinator::KEY_TYPE => ctx.share_coordinator.unload(pick),
        _ => ctx.txns.unload(pick),
    }
}

fn follow_leaderships(ctx: &Arc<Context>, key_type: i8, first: &mut bool) {
    let node = ctx.config.node_id;
    let name = topic_of(key_type);
    let Some(topic) = ctx.metadata.topic(name) else {
        return;
    };
    let count = topic.placements.len();
    let led: HashMap<i32, i32> = topic
        .placements
        .iter()
        .enumerate()
        .filter(|(_, p)| p.leader == node)
        .map(|(i, p)| (i as i32, p.leader_epoch))
        .collect();
    if std::mem::take(first) {
        // What this broker's tables held before it (re)joined is only a cache: keys of
        // partitions it does not lead now are someone else's.
        let n = unload(ctx, key_type, &|k| {
            !led.contains_key(&coordinator_partition(k, count))
        });
        if n > 0 {
            tracing::info!(
                topic = name,
                keys = n,
                "forgot coordinator state this broker does not own"
            );
        }
    }
    let mut start = Vec::new();
    let mut lost = Vec::new();
    {
        let mut terms = ctx.coordinator_loads.terms();
        terms.retain(|(kind, index), (epoch, _)| {
            if *kind != key_type {
                return true;
            }
            let keep = led.get(index) == Some(epoch);
            if !keep {
                lost.push(*index);
            }
            keep
        });
        for (index, epoch) in &led {
            if let std::collections::hash_map::Entry::Vacant(e) = terms.entry((key_type, *index)) {
                e.insert((*epoch, false));
                start.push((*index, *epoch));
            }
        }
    }
    for index in lost {
        // Their clients go to the new coordinator; a later term here starts from the log,
        // not from what was in memory.
        let n = unload(ctx, key_type, &|k| coordinator_partition(k, count) == index);
        tracing::info!(
            topic = name,
            partition = index,
            keys = n,
            "no longer coordinating this partition's keys"
        );
    }
    for (index, epoch) in start {
        let ctx = Arc::downgrade(ctx);
        tokio::spawn(async move {
            let Some(c) = ctx.upgrade() else { return };
            let t0 = std::time::Instant::now();
            let result = {
                let c = c.clone();
                tokio::task::spawn_blocking(move || load(&c, key_type, index, count))
                    .await
                    .unwrap_or(Err(ResponseError::UnknownServerError))
            };
            match result {
                Ok((records, keys)) => {
                    let mut terms = c.coordinator_loads.terms();
                    if let Some(term) = terms.get_mut(&(key_type, index)) {
                        if term.0 == epoch {
                            term.1 = true;
                        }
                    }
                    drop(terms);
                    tracing::info!(
                        topic = name,
                        partition = index,
                        leader_epoch = epoch,
                        records,
                        keys,
                        ms = t0.elapsed().as_millis() as u64,
                        "loaded a coordinators' partition"
                    );
                }
                Err(e) => {
                    // Left unloaded: the next metadata change (or term) tries again, and
                    // clients get COORDINATOR_LOAD_IN_PROGRESS meanwhile.
                    c.coordinator_loads.terms().remove(&(key_type, index));
                    tracing::warn!(topic = name, partition = index, error = ?e, "loading a coordinators' partition failed");
                }
            }
        });
    }
}

/// Reads partition `index` of the key type's topic from its log start to its log end and
/// makes the state of its keys exactly what the log says. Returns (records read, keys).
fn load(
    ctx: &Context,
    key_type: i8,
    index: i32,
    count: usize,
) -> Result<(usize, usize), ResponseError> {
    let name = topic_of(key_type);
    let topic = ctx
        .metadata
        .topic(name)
        .ok_or(ResponseError::NotCoordinator)?;
    let partition = ctx
        .metadata
        .led_partition(&topic, index)
        .map_err(|_| ResponseError::NotCoordinator)?
        .clone();
    let mine = |k: &str| coordinator_partition(k, count) == index;
    if key_type == crate::share::coordinator::KEY_TYPE {
        return crate::share::coordinator::load(ctx, &partition, index, &mine);
    }
    // What was in memory is from an earlier term or none: clients start over here.
    unload(ctx, key_type, &mine);
    let mut offsets: BTreeMap<(String, String, i32), CommittedOffset> = BTreeMap::new();
    let mut txns: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // Offsets of transactions with no marker yet, by producer.
    let mut txn_offsets: HashMap<i64, TxnPending> = HashMap::new();
    // Classic groups' last metadata (None: deleted).
    let mut group_records: BTreeMap<String, Option<journal::GroupRecord>> = BTreeMap::new();
    // KIP-848 groups' records, in log order.
    let mut consumer_records: BTreeMap<String, Vec<ConsumerRecord>> = BTreeMap::new();
    // Streams groups' records, in log order.
    let mut streams_records: BTreeMap<String, Vec<StreamsRecord>> = BTreeMap::new();
    let mut read = 0usize;
    let mut skipped = 0usize;
    scan_log(&partition, |h, mut one, before| {
        if h.is_control() {
            // A transaction's marker: the offsets its producer wrote here before it
            // are committed, or dropped.
            if key_type == 0 && h.last_offset() >= before {
                let done = txn_offsets.remove(&h.producer_id);
                if let (Some(true), Some(done)) = (crate::log::batch::marker_commits(&one), done) {
                    for (group, held) in done.groups {
                        for ((topic, partition), c) in held {
                            offsets.insert((group.clone(), topic, partition), c);
                        }
                    }
                }
            }
            return Ok(());
        }
        let txn_producer = (h.is_transactional() && h.producer_id >= 0)
            .then_some((h.producer_id, h.producer_epoch));
        let set =
            RecordBatchDecoder::decode(&mut one).map_err(|_| ResponseError::CorruptMessage)?;
        for r in set.records {
            if r.offset < before || r.control {
                continue;
            }
            read += 1;
            let Some(key) = &r.key else { continue };
            if key_type == 1 {
                let Some(id) = parse_txn_key(key) else {
                    skipped += 1;
                    continue;
                };
                match r.value.as_deref() {
                    None => {
                        txns.remove(&id);
                    }
                    Some(v) if v.get(..2) == Some(&TXN_VALUE_VERSION.to_be_bytes()) => {
                        txns.insert(id, v[2..].to_vec());
                    }
                    Some(_) => skipped += 1,
                }
                continue;
            }
            match journal::parse(key, r.value.as_deref()) {
                Some(JournalRecord::Offset {
                    group,
                    topic,
                    partition,
                    offset: Some(c),
                }) if txn_producer.is_some() => {
                    let Some((pid, epoch)) = txn_producer else {
                        continue;
                    };
                    let held = txn_offsets.entry(pid).or_default();
                    held.producer_epoch = held.producer_epoch.max(epoch);
                    held.groups
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), c);
                }
                Some(JournalRecord::Offset {
                    group,
                    topic,
                    partition,
                    offset,
                }) => {
                    let k = (group, topic, partition);
                    match offset {
                        Some(c) => {
                            offsets.insert(k, c);
                        }
                        None => {
                            offsets.remove(&k);
                        }
                    }
                }
                Some(JournalRecord::Group { group, metadata }) => {
                    group_records.insert(group, metadata);
                }
                Some(JournalRecord::Consumer { group, record }) => {
                    consumer_records.entry(group).or_default().push(record);
                }
                Some(JournalRecord::Streams { group, record }) => {
                    streams_records.entry(group).or_default().push(record);
                }
                Some(JournalRecord::Other) => {}
                None => skipped += 1,
            }
        }
        Ok(())
    })?;
    if skipped > 0 {
        tracing::warn!(
            topic = name,
            partition = index,
            records = skipped,
            "skipped unreadable records while loading a coordinators' partition"
        );
    }
    if key_type == 1 {
        let n = ctx.txns.replace_loaded(mine, txns.into_iter().collect())?;
        return Ok((read, n));
    }
    let live = ctx
        .groups
        .offsets
        .replace_groups(mine, offsets)
        .map_err(|_| ResponseError::KafkaStorageError)?;
    ctx.groups.offsets.replace_txn_pending(mine, txn_offsets);
    consumer_records.retain(|g, _| mine(g));
    let consumers = ctx
        .consumer_groups
        .load(&ctx.metadata, mine, consumer_records);
    streams_records.retain(|g, _| mine(g));
    let metadata = &ctx.metadata;
    let partitions_of = |t: &str| metadata.topic(t).map(|t| t.partitions.len() as i32);
    let streams = ctx
        .streams_groups
        .load(&partitions_of, mine, streams_records);
    let classic = ctx.groups.load_groups(
        group_records
            .into_iter()
            .filter_map(|(g, r)| Some((g, r?)))
            .filter(|(g, _)| mine(g))
            .collect(),
    );
    for g in &live {
        if !ctx.consumer_groups.exists(g) && !ctx.streams_groups.exists(g) {
            ctx.groups.touch(g);
        }
    }
    Ok((read, live.len().max(classic + consumers + streams)))
}
