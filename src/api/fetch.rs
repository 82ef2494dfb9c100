//! Fetch: read whole batches from the offset asked for, long-polling until `min_bytes` are
//! there or `max_wait_ms` passes, in or out of a fetch session (KIP-227, the rules in
//! `crate::fetch_session`). In a session the partitions read are the session's, an incremental
//! request names only what changed, and the response leaves out partitions with nothing new.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{
    self, AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::authorize::{fetch_readable, Authz};
use super::RequestContext;
use crate::context::Context;
use crate::fetch_session::{FetchContext, PartitionKey, PartitionRequest, TopicKey};
use crate::log::batch::BatchHeader;
use crate::log::Partition;
use crate::metadata::Topic;
use crate::quota::Kind;

/// Longest long-poll we honour: a bound so a request cannot pin a task for days.
const MAX_WAIT_CAP_MS: i32 = 5 * 60 * 1000;

/// One partition to read (or to answer with an error), resolved once per request.
struct Wanted {
    key: PartitionKey,
    request: PartitionRequest,
    /// Where the fetch session keeps the partition (incremental fetches).
    session_index: usize,
    /// The topic as the response names it.
    topic_name: TopicName,
    topic_id: Uuid,
    target: Result<Arc<Partition>, ResponseError>,
}

/// What a follower's fetch changes on the leader: ISR changes to write to the cluster.
type IsrChanges = Vec<(usize, crate::log::partition::IsrChange)>;

pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: FetchRequest,
) -> Option<FetchResponse> {
    let read_committed = req.isolation_level == 1;
    // A follower replicating (Kafka's replica fetch): the replica id is in the request.
    let replica = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let replica = (replica >= 0).then_some(replica);
    if replica.is_some() {
        rc.exempt_from_request_quota();
    }
    let requested = requested_partitions(version, req.topics);
    let forgotten = forgotten_partitions(version, &req.forgotten_topics_data);
    let sessions = &ctx.fetch_sessions;
    let context = sessions.new_context(
        version,
        (req.session_id, req.session_epoch),
        replica.is_some(),
        &requested,
        &forgotten,
        sessions.now_ms(),
    );
    ctx.metrics.fetch_context(context.kind());
    let (context, to_read) = match context {
        FetchContext::SessionError(e) => {
            // Kafka does not know which partitions such a request meant: none are answered.
            return Some(FetchResponse::default().with_error_code(e.code()));
        }
        FetchContext::Incremental(mut inc) => {
            let partitions = std::mem::take(&mut inc.partitions);
            (FetchContext::Incremental(inc), partitions)
        }
        other => {
            let indexed = requested.into_iter().enumerate();
            (other, indexed.map(|(i, (k, r))| (k, r, i)).collect())
        }
    };

    // Kafka's order: the partitions read, then those answered with an error without reading
    // (an unknown topic, a refused one), which do not end a long poll early.
    let authz = Authz::for_request(ctx, rc);
    let (wanted, erroneous) = resolve(ctx, authz.as_ref(), replica.is_some(), to_read);

    // Kafka caps what the client asks for by its own `fetch.max.bytes`, so no request can
    // make the broker assemble a response of gigabytes.
    let broker_max_bytes = ctx.config.fetch_max_bytes as usize;
    let mut max_bytes = if version >= 3 {
        (req.max_bytes.max(0) as usize).min(broker_max_bytes)
    } else {
        broker_max_bytes
    };
    // A consumer with a consumer_byte_rate quota gets no more in one response than its
    // quota allows over the quota window (Kafka's getMaxValueInQuotaWindow), so a single
    // fetch can never be throttled for certain.
    if replica.is_none() {
        if let Some(cap) =
            ctx.quotas
                .max_value_in_window(Kind::Fetch, &rc.principal, rc.client_id())
        {
            max_bytes = max_bytes.min(cap.max(0.0) as usize);
        }
    }
    let min_bytes = (req.min_bytes.max(0) as usize).min(max_bytes);
    let max_wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let read = long_poll(
        &wanted,
        max_bytes,
        min_bytes,
        Instant::now() + max_wait,
        read_committed,
        replica,
    )
    .await;
    apply_isr_changes(ctx, &wanted, read.1);
    // The answers in Kafka's order: the partitions read, then the erroneous ones.
    let mut data = read.0;
    let mut erroneous_data: Vec<PartitionData> = Vec::with_capacity(erroneous.len());
    let erroneous: Vec<Wanted> = erroneous
        .into_iter()
        .map(|(w, d)| {
            erroneous_data.push(d);
            w
        })
        .collect();
    // consumer_byte_rate: a consumer over its quota gets an empty answer with the time to
    // wait, and what it would have got does not count against it (Kafka's throttled fetch
    // response; a full fetch opens no session then).
    if replica.is_none() {
        let bytes: usize = data
            .iter()
            .map(|d| d.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        let throttle = ctx.quotas.record_unless_throttled(
            Kind::Fetch,
            &rc.principal,
            rc.client_id(),
            bytes as f64,
        );
        if throttle > 0 {
            rc.throttle(throttle);
            let session_id = match &context {
                FetchContext::Incremental(inc) => inc.session_id(),
                _ => 0,
            };
            return Some(FetchResponse::default().with_session_id(session_id));
        }
    }
    let answers = || {
        wanted
            .iter()
            .zip(data.iter())
            .chain(erroneous.iter().zip(erroneous_data.iter()))
    };

    let (session_id, keep) = match context {
        FetchContext::Sessionless | FetchContext::SessionError(_) => (0, None),
        FetchContext::Full {
            privileged,
            uses_topic_ids,
        } => {
            let id = sessions.create_session(
                privileged,
                uses_topic_ids,
                answers().map(|(w, d)| {
                    (
                        w.key.clone(),
                        w.request,
                        d.high_watermark,
                        d.log_start_offset,
                    )
                }),
                sessions.now_ms(),
            );
            (id, None)
        }
        FetchContext::Incremental(inc) => {
            let answered = answers().map(|(w, d)| (w.session_index, &w.key, d));
            match sessions.finish_incremental(inc, answered) {
                Ok((id, keep)) => (id, Some(keep)),
                Err((e, id)) => {
                    return Some(
                        FetchResponse::default()
                            .with_error_code(e.code())
                            .with_session_id(id),
                    )
                }
            }
        }
    };
    // Only what is sent is taken out of the reads: an incremental fetch of a large session
    // answers a few partitions of many.
    let sent = wanted
        .iter()
        .zip(data.iter_mut())
        .chain(erroneous.iter().zip(erroneous_data.iter_mut()))
        .enumerate()
        .filter(|(i, _)| keep.as_ref().is_none_or(|k| k[*i]))
        .map(|(_, (w, d))| (w, std::mem::take(d)));
    Some(
        FetchResponse::default()
            .with_session_id(session_id)
            .with_responses(assemble(ctx, sent)),
    )
}

/// The request's partitions keyed as its fetch session keys them (by topic id from v13 on, by
/// name before), each once: a partition named twice keeps its first place and its last
/// values, as Kafka's map of them does.
fn requested_partitions(
    version: i16,
    topics: Vec<FetchTopic>,
) -> Vec<(PartitionKey, PartitionRequest)> {
    let mut out: Vec<(PartitionKey, PartitionRequest)> = Vec::new();
    let mut seen: HashMap<PartitionKey, usize> = HashMap::new();
    for t in topics {
        // Copied out of the request frame, which a session must not keep alive.
        let topic = if version >= 13 {
            TopicKey::Id(t.topic_id)
        } else {
            TopicKey::Name(Arc::from(t.topic.0.as_str()))
        };
        for p in t.partitions {
            let key = PartitionKey {
                topic: topic.clone(),
                partition: p.partition,
            };
            let request = PartitionRequest {
                fetch_offset: p.fetch_offset,
                log_start_offset: p.log_start_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
            };
            match seen.get(&key) {
                Some(&i) => out[i].1 = request,
                None => {
                    seen.insert(key.clone(), out.len());
                    out.push((key, request));
                }
            }
        }
    }
    out
}

/// The partitions an incremental fetch drops from its session (v7+).
fn forgotten_partitions(version: i16, forgotten: &[ForgottenTopic]) -> Vec<PartitionKey> {
    let mut out = Vec::new();
    for t in forgotten {
        let topic = if version >= 13 {
            TopicKey::Id(t.topic_id)
        } else {
            TopicKey::Name(Arc::from(t.topic.0.as_str()))
        };
        out.extend(t.partitions.iter().map(|&partition| PartitionKey {
            topic: topic.clone(),
            partition,
        }));
    }
    out
}

/// A topic of the request as this broker knows it, looked up once per request.
struct TopicLookup {
    topic: Option<Arc<Topic>>,
    name: TopicName,
    id: Uuid,
    /// The first error every partition of the topic gets (unknown id, refused).
    error: Option<ResponseError>,
}

impl TopicLookup {
    fn new(ctx: &Context, authz: Option<&Authz>, follower: bool, key: &TopicKey) -> TopicLookup {
        let (topic, name, id) = match key {
            TopicKey::Id(id) => {
                let topic = ctx.metadata.topic_by_id(id);
                let name = topic.as_ref().map_or_else(
                    || TopicName(Default::default()),
                    |t| super::topic_name(&t.name),
                );
                (topic, name, *id)
            }
            TopicKey::Name(name) => {
                let topic = ctx.metadata.topic(name);
                let id = topic.as_ref().map_or(Uuid::nil(), |t| t.id);
                (topic, super::topic_name(name), id)
            }
        };
        let error = if matches!(key, TopicKey::Id(_)) && topic.is_none() {
            Some(ResponseError::UnknownTopicId)
        } else if !follower && !fetch_readable(authz, &name.0) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        TopicLookup {
            topic,
            name,
            id,
            error,
        }
    }
}

/// Resolves the partitions to read against the metadata and the ACLs, in Kafka's order of
/// checks: an unknown topic id, then READ on the topic (consumers; a follower's
/// CLUSTER_ACTION was checked for the whole request), then an unknown topic or partition.
/// Returns the partitions to read and those answered with an error at once.
fn resolve(
    ctx: &Context,
    authz: Option<&Authz>,
    follower: bool,
    to_read: Vec<(PartitionKey, PartitionRequest, usize)>,
) -> (Vec<Wanted>, Vec<(Wanted, PartitionData)>) {
    let mut lookups: Vec<TopicLookup> = Vec::new();
    let mut by_topic: HashMap<TopicKey, usize> = HashMap::new();
    // Partitions of one topic come one after another: most need no map lookup.
    let mut last: Option<(TopicKey, usize)> = None;
    let mut wanted = Vec::with_capacity(to_read.len());
    let mut erroneous = Vec::new();
    for (key, request, session_index) in to_read {
        let slot = match &last {
            Some((k, slot)) if *k == key.topic => *slot,
            _ => {
                let slot = *by_topic.entry(key.topic.clone()).or_insert_with(|| {
                    lookups.push(TopicLookup::new(ctx, authz, follower, &key.topic));
                    lookups.len() - 1
                });
                last = Some((key.topic.clone(), slot));
                slot
            }
        };
        let t = &lookups[slot];
        let target = match (&t.error, &t.topic) {
            (Some(e), _) => Err(*e),
            (None, None) => Err(ResponseError::UnknownTopicOrPartition),
            (None, Some(topic)) => ctx
                .metadata
                .led_partition(topic, key.partition)
                .map(Arc::clone),
        };
        let w = Wanted {
            topic_name: t.name.clone(),
            topic_id: t.id,
            session_index,
            key,
            request,
            target,
        };
        match &w.target {
            // Not this broker's to serve: an error of the read, which ends a long poll.
            Ok(_) | Err(ResponseError::NotLeaderOrFollower) => wanted.push(w),
            Err(e) => {
                let data = PartitionData::default()
                    .with_partition_index(w.key.partition)
                    .with_error_code(e.code())
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
                    .with_records(Some(Default::default()));
                erroneous.push((w, data));
            }
        }
    }
    (wanted, erroneous)
}

/// Reads `wanted` until `min_bytes` are there, a partition fails, or `deadline` passes; a
/// consumer waiting on many partitions (a fetch session's) wakes when any of them is
/// appended to.
async fn long_poll(
    wanted: &[Wanted],
    max_bytes: usize,
    min_bytes: usize,
    deadline: Instant,
    read_committed: bool,
    replica: Option<i32>,
) -> (Vec<PartitionData>, IsrChanges) {
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
            read_all(wanted, max_bytes, read_committed, replica, &mut isr_changes)
        });
        let done =
            total_bytes >= min_bytes || any_error || live.is_empty() || Instant::now() >= deadline;
        if done {
            return (partitions, isr_changes);
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
                read_all(wanted, max_bytes, read_committed, replica, &mut isr_changes)
            });
            return (partitions, isr_changes);
        }
    }
}

/// Writes the ISR changes a follower's fetch called for (rare: a follower joining).
fn apply_isr_changes(ctx: &Context, wanted: &[Wanted], changes: IsrChanges) {
    for (i, change) in changes {
        if let Ok(p) = &wanted[i].target {
            ctx.metadata.change_isr(p, change);
        }
    }
}

/// Reads every wanted partition once; returns per-partition data (in `wanted`'s order),
/// bytes, and whether any partition had an error (Kafka answers at once in that case).
fn read_all(
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
    replica: Option<i32>,
    isr_changes: &mut IsrChanges,
) -> (Vec<PartitionData>, usize, bool) {
    let mut out = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut any_error = false;
    for (i, w) in wanted.iter().enumerate() {
        let mut pd = PartitionData::default()
            .with_partition_index(w.key.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        if let (Some(follower), Ok(p)) = (replica, &w.target) {
            let budget = (w.request.partition_max_bytes.max(0) as usize)
                .min(max_bytes.saturating_sub(total));
            let result = p
                .check_leader_epoch(w.request.current_leader_epoch)
                .and_then(|_| {
                    // Where the follower's log parts from ours (KIP-595's diverging epoch): it
                    // truncates there before it fetches again.
                    if w.request.last_fetched_epoch >= 0
                        && w.request.last_fetched_epoch != p.leader_epoch()
                    {
                        let (epoch, end) = p.end_offset_for_epoch(w.request.last_fetched_epoch)?;
                        if end < 0 {
                            return Err(ResponseError::OffsetOutOfRange);
                        }
                        if epoch < w.request.last_fetched_epoch || end < w.request.fetch_offset {
                            pd.diverging_epoch = fetch_response::EpochEndOffset::default()
                                .with_epoch(epoch)
                                .with_end_offset(end);
                            return Ok(Default::default());
                        }
                    }
                    if let Some(change) = p.follower_fetched(follower, w.request.fetch_offset) {
                        isr_changes.push((i, change));
                    }
                    if w.request.fetch_offset < p.log_start_offset()
                        || w.request.fetch_offset > p.log_end_offset()
                    {
                        return Err(ResponseError::OffsetOutOfRange);
                    }
                    p.read_for_replica(w.request.fetch_offset, budget)
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
            out.push(pd);
            continue;
        }
        let result = w.target.clone().and_then(|p| {
            p.check_leader_epoch(w.request.current_leader_epoch)?;
            // Out of range only outside the log (Kafka's rule). An offset past the high
            // watermark but within the log reads nothing: a new leader's high watermark
            // catches up with its followers' fetches, and a consumer already at the old
            // leader's high watermark must wait for it, not be told its position is gone.
            let hw = p.high_watermark();
            if w.request.fetch_offset < p.log_start_offset()
                || w.request.fetch_offset > p.log_end_offset()
            {
                pd.high_watermark = hw;
                pd.last_stable_offset = p.last_stable_offset();
                pd.log_start_offset = p.log_start_offset();
                return Err(ResponseError::OffsetOutOfRange);
            }
            let budget = (w.request.partition_max_bytes.max(0) as usize)
                .min(max_bytes.saturating_sub(total));
            let lso = p.last_stable_offset();
            let r = p.read(w.request.fetch_offset, budget, total == 0, read_committed)?;
            // The aborted transactions a read_committed reader needs to drop records of
            // the returned batches (whose end is at most the last stable offset).
            let aborted = read_committed.then(|| {
                let end = last_offset_in(&r.records).map_or(lso, |o| o + 1);
                p.aborted_between(w.request.fetch_offset, end)
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
        out.push(pd);
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

/// The response's topics: each run of partitions of one topic under one entry, in the order
/// they are answered (as Kafka's `FetchResponse.of` groups them).
fn assemble<'a>(
    ctx: &Context,
    sent: impl Iterator<Item = (&'a Wanted, PartitionData)>,
) -> Vec<FetchableTopicResponse> {
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let mut last: Option<&TopicKey> = None;
    for (w, data) in sent {
        let bytes = data.records.as_ref().map_or(0, |r| r.len());
        if bytes > 0 {
            ctx.metrics.bytes_out(&w.topic_name.0, bytes);
        }
        if data.error_code != 0 {
            ctx.metrics.partition_error("Fetch", data.error_code);
        }
        if last != Some(&w.key.topic) {
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(w.topic_name.clone())
                    .with_topic_id(w.topic_id),
            );
            last = Some(&w.key.topic);
        }
        if let Some(t) = responses.last_mut() {
            t.partitions.push(data);
        }
    }
    responses
}
