//! Fetch: read whole batches from the offset asked for, long-polling until `min_bytes` are
//! there or `max_wait_ms` passes. Fetch sessions are declined (session id 0), so every
//! request is a full fetch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    self, AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::RequestContext;
use crate::context::Context;
use crate::log::batch::BatchHeader;
use crate::log::Partition;

/// Longest long-poll we honour: a bound so a request cannot pin a task for days.
const MAX_WAIT_CAP_MS: i32 = 5 * 60 * 1000;

/// One requested partition, resolved once per request.
struct Wanted {
    topic_slot: usize,
    partition_index: i32,
    fetch_offset: i64,
    current_leader_epoch: i32,
    /// A follower's: the epoch of its last batch, to find where its log diverges.
    last_fetched_epoch: i32,
    partition_max_bytes: usize,
    target: Result<Arc<Partition>, ResponseError>,
}

/// What a follower's fetch changes on the leader: ISR changes to write to the cluster.
type IsrChanges = Vec<(usize, crate::log::partition::IsrChange)>;

/// KIP-227: epoch 0 (INITIAL_EPOCH) opens a session and epoch -1 (FINAL_EPOCH) asks for a
/// sessionless fetch; both are full fetches whatever the session id says (a client closing
/// its old session sends that id with epoch -1 or 0, as kafka-go does). We create no sessions,
/// so both are served in full with session id 0; any other epoch continues a session we
/// cannot have.
fn is_full_fetch(session_epoch: i32) -> bool {
    session_epoch == 0 || session_epoch == -1
}

pub async fn handle(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: FetchRequest,
) -> Option<FetchResponse> {
    let mut resp = FetchResponse::default();
    if !is_full_fetch(req.session_epoch) {
        // We never hand out session ids, so an incremental fetch cannot be ours.
        resp.error_code = ResponseError::FetchSessionIdNotFound.code();
        return Some(resp);
    }
    let read_committed = req.isolation_level == 1;
    // A follower replicating (Kafka's replica fetch): the replica id is in the request.
    let replica = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let replica = (replica >= 0).then_some(replica);
    let mut topics: Vec<(TopicName, Uuid)> = Vec::with_capacity(req.topics.len());
    let mut wanted = Vec::new();
    for t in req.topics {
        let topic = if version >= 13 {
            ctx.metadata
                .topic_by_id(&t.topic_id)
                .ok_or(ResponseError::UnknownTopicId)
        } else {
            ctx.metadata
                .topic(t.topic.0.as_str())
                .ok_or(ResponseError::UnknownTopicOrPartition)
        };
        let slot = topics.len();
        let (name, id) = match &topic {
            Ok(tp) => (super::topic_name(&tp.name), tp.id),
            Err(_) => (t.topic.clone(), t.topic_id),
        };
        topics.push((name, id));
        for p in t.partitions {
            let target = topic
                .clone()
                .and_then(|tp| ctx.metadata.led_partition(&tp, p.partition).map(Arc::clone));
            wanted.push(Wanted {
                topic_slot: slot,
                partition_index: p.partition,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                partition_max_bytes: p.partition_max_bytes.max(0) as usize,
                target,
            });
        }
    }

    // Kafka caps what the client asks for by its own `fetch.max.bytes`, so no request can
    // make the broker assemble a response of gigabytes.
    let broker_max_bytes = ctx.config.fetch_max_bytes as usize;
    let max_bytes = if version >= 3 {
        (req.max_bytes.max(0) as usize).min(broker_max_bytes)
    } else {
        broker_max_bytes
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let deadline = Instant::now() + max_wait;
    let live: Vec<Arc<Partition>> = wanted
        .iter()
        .filter_map(|w| w.target.as_ref().ok().cloned())
        .collect();

    let mut isr_changes: IsrChanges = Vec::new();
    loop {
        // Register for wake-ups before reading, so an append between the read and the wait
        // is never missed.
        let mut woken: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = live
            .iter()
            .map(|p| Box::pin(p.appended.notified()))
            .collect();
        for n in woken.iter_mut() {
            n.as_mut().enable();
        }
        let (partitions, total_bytes, any_error) = crate::storage::offload::blocking(|| {
            read_all(
                &wanted,
                max_bytes,
                read_committed,
                replica,
                &mut isr_changes,
            )
        });
        let done =
            total_bytes >= min_bytes || any_error || live.is_empty() || Instant::now() >= deadline;
        if done {
            resp.responses = assemble(ctx, &topics, partitions);
            apply_isr_changes(ctx, &wanted, isr_changes);
            return Some(resp);
        }
        let any_append = std::future::poll_fn(|cx| {
            for n in woken.iter_mut() {
                if n.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        });
        if tokio::time::timeout_at(deadline, any_append).await.is_err() {
            // Timed out: one last read so data that raced the timer is not left behind.
            let (partitions, _, _) = crate::storage::offload::blocking(|| {
                read_all(
                    &wanted,
                    max_bytes,
                    read_committed,
                    replica,
                    &mut isr_changes,
                )
            });
            resp.responses = assemble(ctx, &topics, partitions);
            apply_isr_changes(ctx, &wanted, isr_changes);
            return Some(resp);
        }
    }
}

/// Reads every wanted partition once; returns per-partition data, bytes, and whether any
/// partition had an error (Kafka answers at once in that case).
/// Writes the ISR changes a follower's fetch called for (rare: a follower joining).
fn apply_isr_changes(ctx: &Context, wanted: &[Wanted], changes: IsrChanges) {
    for (i, change) in changes {
        if let Ok(p) = &wanted[i].target {
            ctx.metadata.change_isr(p, change);
        }
    }
}

fn read_all(
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
    replica: Option<i32>,
    isr_changes: &mut IsrChanges,
) -> (Vec<(usize, PartitionData)>, usize, bool) {
    let mut out = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut any_error = false;
    for (i, w) in wanted.iter().enumerate() {
        let mut pd = PartitionData::default()
            .with_partition_index(w.partition_index)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        if let (Some(follower), Ok(p)) = (replica, &w.target) {
            let budget = w.partition_max_bytes.min(max_bytes.saturating_sub(total));
            let result = p.check_leader_epoch(w.current_leader_epoch).and_then(|_| {
                // Where the follower's log parts from ours (KIP-595's diverging epoch): it
                // truncates there before it fetches again.
                if w.last_fetched_epoch >= 0 && w.last_fetched_epoch != p.leader_epoch() {
                    let (epoch, end) = p.end_offset_for_epoch(w.last_fetched_epoch)?;
                    if end < 0 {
                        return Err(ResponseError::OffsetOutOfRange);
                    }
                    if epoch < w.last_fetched_epoch || end < w.fetch_offset {
                        pd.diverging_epoch = fetch_response::EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end);
                        return Ok(Default::default());
                    }
                }
                if let Some(change) = p.follower_fetched(follower, w.fetch_offset) {
                    isr_changes.push((i, change));
                }
                if w.fetch_offset < p.log_start_offset() || w.fetch_offset > p.log_end_offset() {
                    return Err(ResponseError::OffsetOutOfRange);
                }
                p.read_for_replica(w.fetch_offset, budget)
            });
            pd.high_watermark = p.high_watermark();
            pd.last_stable_offset = p.last_stable_offset();
            pd.log_start_offset = p.log_start_offset();
            match result {
                Ok(r) => {
                    total += r.records.len();
                    pd.records = Some(r.records);
                }
                Err(code) => {
                    any_error = true;
                    pd.error_code = code.code();
                    pd.records = Some(Default::default());
                }
            }
            out.push((w.topic_slot, pd));
            continue;
        }
        let result = w.target.clone().and_then(|p| {
            p.check_leader_epoch(w.current_leader_epoch)?;
            // Out of range only outside the log (Kafka's rule). An offset past the high
            // watermark but within the log reads nothing: a new leader's high watermark
            // catches up with its followers' fetches, and a consumer already at the old
            // leader's high watermark must wait for it, not be told its position is gone.
            let hw = p.high_watermark();
            if w.fetch_offset < p.log_start_offset() || w.fetch_offset > p.log_end_offset() {
                pd.high_watermark = hw;
                pd.last_stable_offset = p.last_stable_offset();
                pd.log_start_offset = p.log_start_offset();
                return Err(ResponseError::OffsetOutOfRange);
            }
            let budget = w.partition_max_bytes.min(max_bytes.saturating_sub(total));
            let lso = p.last_stable_offset();
            let r = p.read(w.fetch_offset, budget, total == 0, read_committed)?;
            // The aborted transactions a read_committed reader needs to drop records of
            // the returned batches (whose end is at most the last stable offset).
            let aborted = read_committed.then(|| {
                let end = last_offset_in(&r.records).map_or(lso, |o| o + 1);
                p.aborted_between(w.fetch_offset, end)
                    .into_iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect()
            });
            Ok((r, lso, aborted))
        });
        match result {
            Ok((r, lso, aborted)) => {
                total += r.records.len();
                pd.high_watermark = r.high_watermark;
                pd.last_stable_offset = lso;
                pd.log_start_offset = r.log_start_offset;
                pd.records = Some(r.records);
                pd.aborted_transactions = aborted;
            }
            Err(code) => {
                any_error = true;
                pd.error_code = code.code();
                pd.records = Some(Default::default());
            }
        }
        out.push((w.topic_slot, pd));
    }
    (out, total, any_error)
}

/// The last offset of the last whole batch in `records`.
fn last_offset_in(records: &[u8]) -> Option<i64> {
    let mut pos = 0;
    let mut last = None;
    while let Some(h) = records.get(pos..).and_then(BatchHeader::parse) {
        last = Some(h.last_offset());
        pos += h.size_bytes();
    }
    last
}

fn assemble(
    ctx: &Context,
    topics: &[(TopicName, Uuid)],
    partitions: Vec<(usize, PartitionData)>,
) -> Vec<FetchableTopicResponse> {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .iter()
        .map(|(name, id)| {
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_topic_id(*id)
        })
        .collect();
    for (slot, pd) in partitions {
        let bytes = pd.records.as_ref().map_or(0, |r| r.len());
        if bytes > 0 {
            ctx.metrics.bytes_out(&topics[slot].0 .0, bytes);
        }
        if pd.error_code != 0 {
            ctx.metrics.partition_error("Fetch", pd.error_code);
        }
        responses[slot].partitions.push(pd);
    }
    responses
}
