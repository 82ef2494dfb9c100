//! Cluster mode: the group coordinator's committed offsets on `__consumer_offsets`.
//!
//! A group belongs to the leader of its partition of `__consumer_offsets` (Kafka's hash).
//! Every commit, deletion and expiry is appended to that partition first and answered once
//! the in-sync replicas have it, so it survives the loss of the coordinator's broker. A
//! broker that becomes the partition's leader (a new term: a new leader epoch) rebuilds the
//! offsets of the partition's groups from its log before it answers for them, and answers
//! COORDINATOR_LOAD_IN_PROGRESS meanwhile, as Kafka does. The single-node broker keeps only
//! its table, as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;

use crate::clock::now_ms;
use crate::context::{coordinator_partition, Context};
use crate::group::journal::{self, JournalRecord, JournalWrite, OffsetJournal};
use crate::group::CommittedOffset;
use crate::log::batch::BatchHeader;

/// The coordinators' topic for groups.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How long a commit waits for the in-sync replicas (Kafka's `offsets.commit.timeout.ms`).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per step of a load.
const LOAD_READ_BYTES: usize = 1 << 20;

/// Which partitions of `__consumer_offsets` this broker has loaded, and in which term.
///
/// It exists so that a request for a group is answered only by a coordinator whose view of
/// the group's offsets is the log's: a partition led in a new term is not ready until its
/// load finishes.
#[derive(Default)]
pub struct OffsetLoads {
    /// Partition -> (leader epoch of the term, loaded).
    terms: Mutex<HashMap<i32, (i32, bool)>>,
}

impl OffsetLoads {
    fn terms(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (i32, bool)>> {
        self.terms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether partition `index` is loaded for the term of `epoch`.
    pub fn ready(&self, index: i32, epoch: i32) -> bool {
        self.terms().get(&index) == Some(&(epoch, true))
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

impl OffsetJournal for OffsetsTopicJournal {
    fn append(
        &self,
        group: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<JournalWrite, ResponseError> {
        let ctx = self.ctx.upgrade().ok_or(ResponseError::NotCoordinator)?;
        let topic = ctx
            .metadata
            .topic(OFFSETS_TOPIC)
            .ok_or(ResponseError::NotCoordinator)?;
        let index = coordinator_partition(group, topic.placements.len());
        let partition = ctx
            .metadata
            .led_partition(&topic, index)
            .map_err(|_| ResponseError::NotCoordinator)?
            .clone();
        let bytes = crate::log::batch::plain_batch(
            records.into_iter().map(|(k, v)| (Some(k), v)),
            now_ms(),
        )?;
        let batches = crate::log::batch::split_and_validate(&bytes, usize::MAX)
            .map_err(|_| ResponseError::UnknownServerError)?;
        let epoch = partition.leader_epoch();
        let appended = partition.append(&batches, &|_, _| Ok(()))?;
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

/// Follows this broker's leaderships of `__consumer_offsets` partitions: loads each new
/// term's partition, and forgets the groups of partitions it no longer leads.
pub async fn run(ctx: Weak<Context>) {
    let Some(mut changes) = ctx.upgrade().map(|c| c.metadata.changes()) else {
        return;
    };
    loop {
        let Some(c) = ctx.upgrade() else { return };
        follow_leaderships(&c);
        drop(c);
        if changes.changed().await.is_err() {
            return;
        }
    }
}

fn follow_leaderships(ctx: &Arc<Context>) {
    let node = ctx.config.node_id;
    let Some(topic) = ctx.metadata.topic(OFFSETS_TOPIC) else {
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
    let mut start = Vec::new();
    let mut lost = Vec::new();
    {
        let mut terms = ctx.offset_loads.terms();
        terms.retain(|index, (epoch, _)| {
            let keep = led.get(index) == Some(epoch);
            if !keep {
                lost.push(*index);
            }
            keep
        });
        for (index, epoch) in &led {
            if !terms.contains_key(index) {
                terms.insert(*index, (*epoch, false));
                start.push((*index, *epoch));
            }
        }
    }
    for index in lost {
        // Members of these groups go to the new coordinator; a later term here starts from
        // the log, not from what was in memory.
        let mine = |g: &str| coordinator_partition(g, count) == index;
        let n = ctx.groups.unload(mine) + ctx.consumer_groups.unload(mine);
        tracing::info!(
            partition = index,
            groups = n,
            "no longer coordinating the groups of this __consumer_offsets partition"
        );
    }
    for (index, epoch) in start {
        let ctx = Arc::downgrade(ctx);
        tokio::spawn(async move {
            let Some(c) = ctx.upgrade() else { return };
            let t0 = std::time::Instant::now();
            let result = {
                let c = c.clone();
                tokio::task::spawn_blocking(move || load(&c, index, count))
                    .await
                    .unwrap_or(Err(ResponseError::UnknownServerError))
            };
            match result {
                Ok((records, groups)) => {
                    let mut terms = c.offset_loads.terms();
                    if let Some(term) = terms.get_mut(&index) {
                        if term.0 == epoch {
                            term.1 = true;
                        }
                    }
                    drop(terms);
                    tracing::info!(
                        partition = index,
                        leader_epoch = epoch,
                        records,
                        groups,
                        ms = t0.elapsed().as_millis() as u64,
                        "loaded the groups of a __consumer_offsets partition"
                    );
                }
                Err(e) => {
                    // Left unloaded: the next metadata change (or term) tries again, and
                    // clients get COORDINATOR_LOAD_IN_PROGRESS meanwhile.
                    c.offset_loads.terms().remove(&index);
                    tracing::warn!(partition = index, error = ?e, "loading a __consumer_offsets partition failed");
                }
            }
        });
    }
}

/// Reads partition `index` from its log start to its log end and makes the offsets of its
/// groups exactly what the log says. Returns (records read, groups with offsets).
fn load(ctx: &Context, index: i32, count: usize) -> Result<(usize, usize), ResponseError> {
    let topic = ctx
        .metadata
        .topic(OFFSETS_TOPIC)
        .ok_or(ResponseError::NotCoordinator)?;
    let partition = ctx
        .metadata
        .led_partition(&topic, index)
        .map_err(|_| ResponseError::NotCoordinator)?
        .clone();
    let mine = |g: &str| coordinator_partition(g, count) == index;
    // What was in memory is from an earlier term or none: members rejoin.
    ctx.groups.unload(mine);
    ctx.consumer_groups.unload(mine);
    let mut offsets: BTreeMap<(String, String, i32), CommittedOffset> = BTreeMap::new();
    let mut read = 0usize;
    let mut skipped = 0usize;
    let mut next = partition.log_start_offset();
    let end = partition.log_end_offset();
    while next < end {
        let chunk = partition.read_for_replica(next, LOAD_READ_BYTES)?;
        let mut bytes = chunk.records;
        if bytes.is_empty() {
            break;
        }
        while !bytes.is_empty() {
            // The header moves the position even past a batch that compaction emptied.
            let h = BatchHeader::parse(&bytes).ok_or(ResponseError::CorruptMessage)?;
            let mut one = bytes.split_to(h.size_bytes().min(bytes.len()));
            let before = next;
            next = next.max(h.last_offset() + 1);
            let set =
                RecordBatchDecoder::decode(&mut one).map_err(|_| ResponseError::CorruptMessage)?;
            for r in set.records {
                if r.offset < before || r.control {
                    continue;
                }
                read += 1;
                let Some(key) = &r.key else { continue };
                match journal::parse(key, r.value.as_deref()) {
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
                    Some(JournalRecord::Other) => {}
                    None => skipped += 1,
                }
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(
            partition = index,
            records = skipped,
            "skipped unreadable records while loading a __consumer_offsets partition"
        );
    }
    let live = ctx
        .groups
        .offsets
        .replace_groups(mine, offsets)
        .map_err(|_| ResponseError::KafkaStorageError)?;
    for g in &live {
        if !ctx.consumer_groups.exists(g) {
            ctx.groups.touch(g);
        }
    }
    Ok((read, live.len()))
}
