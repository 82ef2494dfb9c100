//! ShareFetch and ShareAcknowledge (KIP-932): a share consumer takes records of the
//! partitions its share session names, each locked to it until it acknowledges them or the
//! lock expires, and acknowledges them either piggybacked on its next ShareFetch or alone.
//! The order of checks and the errors are Kafka 4.4's `KafkaApis.handleShareFetchRequest`
//! and `handleShareAcknowledgeRequest`; the session rules are `share::session`, the records'
//! state `share::partition`, and READ on the group is checked in `api::authorize`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch as AckLeader, PartitionData as AckPartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::authorize::{fetch_readable, Authz};
use super::{sb, RequestContext};
use crate::context::Context;
use crate::log::batch::BatchHeader;
use crate::log::Partition;
use crate::share::manager::{now_ms, Slot};
use crate::share::partition::{AcknowledgementBatch, AcquireMode, AcquiredRange};
use crate::share::session::{SessionChanges, ShareFetchContext, TopicIdPartition, FINAL_EPOCH};

/// Longest wait a ShareFetch gets, as for Fetch.
const MAX_WAIT_CAP_MS: i32 = 5 * 60 * 1000;

/// One acknowledgement answer: error code and message.
type AckResult = (i16, Option<String>);

/// Kafka's `isMemberIdValid`: non-empty and at most 36 (UTF-16) characters.
fn member_id_valid(member: Option<&str>) -> bool {
    member.is_some_and(|m| {
        !m.is_empty() && m.encode_utf16().count() <= crate::share::group::MEMBER_ID_MAX_CHARS
    })
}

/// The group and member ids of a ShareFetch or ShareAcknowledge, checked in Kafka's order
/// with its messages.
fn identity(
    group: Option<&kafka_protocol::messages::GroupId>,
    member: Option<&kafka_protocol::protocol::StrBytes>,
) -> Result<(String, String), &'static str> {
    let group = group
        .map(|g| g.0.to_string())
        .ok_or("Invalid group id in the request.")?;
    let member = member.map(|m| m.as_str());
    if !member_id_valid(member) {
        return Err("Invalid member id in the request.");
    }
    Ok((group, member.unwrap_or_default().to_string()))
}

/// Kafka's `validateAcknowledgementBatches` for one partition: batches in order and not
/// overlapping, each with a type per record or one for all, known types, and Renew (4)
/// only in a request that says it renews.
fn validate_batches(batches: &[AcknowledgementBatch], renew_allowed: bool) -> bool {
    let mut next = i64::MIN;
    for b in batches {
        let types = &b.acknowledge_types;
        if b.first_offset > b.last_offset || b.first_offset < next {
            return false;
        }
        next = b.last_offset.saturating_add(1);
        let span = b
            .last_offset
            .saturating_sub(b.first_offset)
            .saturating_add(1);
        if types.is_empty() || (types.len() > 1 && i64::try_from(types.len()) != Ok(span)) {
            return false;
        }
        if types.iter().any(|t| !(0..=4).contains(t)) {
            return false;
        }
        if !renew_allowed && types.contains(&4) {
            return false;
        }
    }
    true
}

/// What a share partition's acknowledgements came to, and the share partition to write
/// (cluster mode) before they are answered.
fn acknowledge_partition(
    ctx: &Context,
    az: Option<&Authz>,
    group: &str,
    member: &str,
    (topic_id, partition): TopicIdPartition,
    batches: &[AcknowledgementBatch],
    renew_allowed: bool,
) -> (AckResult, Option<Arc<Slot>>) {
    let refuse = |e: ResponseError| ((e.code(), None), None);
    if !validate_batches(batches, renew_allowed) {
        return refuse(ResponseError::InvalidRequest);
    }
    let Some(topic) = ctx.metadata.topic_by_id(&topic_id) else {
        return refuse(ResponseError::UnknownTopicOrPartition);
    };
    if !fetch_readable(az, &topic.name) {
        return refuse(ResponseError::TopicAuthorizationFailed);
    }
    if topic.partition(partition).is_none() {
        return refuse(ResponseError::UnknownTopicOrPartition);
    }
    if batches.is_empty() {
        return ((0, None), None);
    }
    let log = match ctx.metadata.led_partition(&topic, partition) {
        Ok(log) => log,
        Err(e) => return refuse(e),
    };
    // A share partition of an earlier term here is stale: its records were given back.
    let Some(sp) = ctx
        .share_partitions
        .get_current(group, topic_id, partition, log.leader_epoch())
    else {
        return refuse(ResponseError::UnknownTopicOrPartition);
    };
    let now = now_ms();
    let result = ctx
        .share_partitions
        .with(group, &sp, now, |s| s.acknowledge(member, batches, now));
    if batches.iter().any(|b| b.acknowledge_types.contains(&2)) {
        ctx.share_partitions.released.notify_waiters();
    }
    match result {
        Ok(()) => ((0, None), Some(sp)),
        Err((e, message)) => {
            tracing::debug!(group, member, %topic_id, partition, error = ?e, message, "share acknowledgement refused");
            ((e.code(), Some(message)), Some(sp))
        }
    }
}

/// Cluster mode: writes the acknowledged share partitions' states to their share
/// coordinators, so an acknowledgement is answered only once it survives its leader; a
/// failed write becomes the partition's acknowledgement error.
async fn make_durable(ctx: &Context, results: &mut [(AckResult, Option<Arc<Slot>>)]) {
    for (result, slot) in results.iter_mut() {
        let Some(slot) = slot.take() else { continue };
        if let Err(e) = ctx.share_partitions.flush(&slot).await {
            if result.0 == 0 {
                *result = (e.code(), Some(e.description().to_string()));
            }
        }
    }
}

/// The error a share consumer gets for a share partition whose state could not be read:
/// one the clients retry (refreshing metadata for a moved leader).
fn prepare_error(e: ResponseError) -> ResponseError {
    match e {
        ResponseError::FencedLeaderEpoch | ResponseError::NotLeaderOrFollower => {
            ResponseError::NotLeaderOrFollower
        }
        _ => ResponseError::UnknownServerError,
    }
}

fn batches_of<'a>(
    from: impl Iterator<Item = (i64, i64, &'a Vec<i8>)>,
) -> Vec<AcknowledgementBatch> {
    from.map(|(first_offset, last_offset, types)| AcknowledgementBatch {
        first_offset,
        last_offset,
        acknowledge_types: types.clone(),
    })
    .collect()
}

/// A partition of a ShareFetch to read, resolved once.
struct Target {
    tp: TopicIdPartition,
    log: Result<Arc<Partition>, ResponseError>,
    leader: (i32, i32),
}

/// What one partition's read gave.
#[derive(Default)]
struct Taken {
    records: Option<Bytes>,
    acquired: Vec<AcquiredRange>,
    error: Option<ResponseError>,
}

fn resolve(ctx: &Context, az: Option<&Authz>, tp: TopicIdPartition) -> Target {
    let (topic_id, partition) = tp;
    let Some(topic) = ctx.metadata.topic_by_id(&topic_id) else {
        return Target {
            tp,
            log: Err(ResponseError::UnknownTopicId),
            leader: (-1, -1),
        };
    };
    if !fetch_readable(az, &topic.name) {
        return Target {
            tp,
            log: Err(ResponseError::TopicAuthorizationFailed),
            leader: (-1, -1),
        };
    }
    let leader = topic
        .placement(partition)
        .map_or((-1, -1), |p| (p.leader, p.leader_epoch));
    Target {
        tp,
        log: ctx.metadata.led_partition(&topic, partition).cloned(),
        leader,
    }
}

/// The fetch limits of one request.
struct Limits {
    mode: AcquireMode,
    batch_size: i32,
    max_records: i32,
    max_bytes: usize,
    /// Bytes the log must hold past the share partitions' fetch offsets before records are
    /// acquired, unless the wait runs out first (Kafka's DelayedShareFetch).
    min_bytes: usize,
    read_committed: bool,
}

/// The batches of `records` that hold an acquired offset; the others (records locked by
/// other members, or already done with) are not sent.
fn slice_to_acquired(records: &Bytes, acquired: &[AcquiredRange]) -> Bytes {
    let mut out = BytesMut::new();
    let mut pos = 0;
    while let Some(h) = records.get(pos..).and_then(BatchHeader::parse) {
        let end = pos + h.size_bytes();
        if end > records.len() {
            break;
        }
        let (base, last) = (h.base_offset, h.last_offset());
        if acquired
            .iter()
            .any(|r| r.first_offset <= last && r.last_offset >= base)
        {
            out.extend_from_slice(&records[pos..end]);
        }
        pos = end;
    }
    out.freeze()
}

/// One pass over the partitions: acquires what each has for `member`, within the limits.
fn acquire_all(
    ctx: &Context,
    group: &str,
    member: &str,
    targets: &[Target],
    limits: &Limits,
) -> Vec<Taken> {
    let mut out = Vec::with_capacity(targets.len());
    let mut records_left = limits.max_records;
    let mut bytes_left = limits.max_bytes;
    let now = now_ms();
    for t in targets {
        let mut taken = Taken::default();
        let log = match &t.log {
            Ok(log) => log,
            Err(e) => {
                taken.error = Some(*e);
                out.push(taken);
                continue;
            }
        };
        if records_left <= 0 || bytes_left == 0 {
            out.push(taken);
            continue;
        }
        let Some(sp) = ctx.share_partitions.get_or_init(group, t.tp.0, log, now) else {
            // Cluster mode, and its state could not be read: retried by the next fetch.
            taken.error = Some(ResponseError::UnknownServerError);
            out.push(taken);
            continue;
        };
        let first = records_left == limits.max_records;
        let result = ctx.share_partitions.with(group, &sp, now, |s| {
            s.update_log_start(log.log_start_offset());
            if !s.can_acquire_records() {
                return Ok((Bytes::new(), Vec::new()));
            }
            let read = log.read(
                s.next_fetch_offset(),
                bytes_left,
                first,
                limits.read_committed,
            )?;
            let mut batches = Vec::new();
            let mut aborted_batches = Vec::new();
            let mut pos = 0;
            let aborted = if limits.read_committed {
                let end = read.high_watermark.max(s.next_fetch_offset());
                log.aborted_between(s.next_fetch_offset(), end)
            } else {
                Vec::new()
            };
            while let Some(h) = read.records.get(pos..).and_then(BatchHeader::parse) {
                let range = (h.base_offset, h.last_offset());
                batches.push(range);
                let in_aborted = h.is_transactional()
                    && !h.is_control()
                    && aborted.iter().any(|a| {
                        a.producer_id == h.producer_id
                            && a.first_offset <= h.base_offset
                            && h.base_offset <= a.last_offset
                    });
                if in_aborted {
                    aborted_batches.push(range);
                }
                pos += h.size_bytes();
            }
            let acquired = s.acquire(
                member,
                limits.mode,
                limits.batch_size,
                records_left,
                &batches,
                now,
            );
            let acquired = s.archive_aborted(acquired, &aborted_batches);
            Ok((read.records, acquired))
        });
        match result {
            Ok((records, acquired)) if !acquired.is_empty() => {
                let count: i64 = acquired
                    .iter()
                    .map(|r| r.last_offset - r.first_offset + 1)
                    .sum();
                records_left = records_left.saturating_sub(count.min(i64::from(i32::MAX)) as i32);
                let sliced = slice_to_acquired(&records, &acquired);
                bytes_left = bytes_left.saturating_sub(sliced.len());
                taken.records = Some(sliced);
                taken.acquired = acquired;
            }
            Ok(_) => {}
            Err(e) => taken.error = Some(e),
        }
        out.push(taken);
    }
    out
}

/// The bytes the logs hold from each share partition's next fetch offset to its end (the
/// high watermark, or the last stable offset for read_committed), counted up to
/// `min_bytes`, as Kafka's DelayedShareFetch measures them before it acquires. A partition
/// in error counts as enough: errors are answered at once.
fn available_bytes(ctx: &Context, group: &str, targets: &[Target], limits: &Limits) -> usize {
    let now = now_ms();
    let mut total = 0usize;
    for t in targets {
        let Ok(log) = &t.log else {
            return usize::MAX;
        };
        let Some(sp) = ctx.share_partitions.get_or_init(group, t.tp.0, log, now) else {
            return usize::MAX;
        };
        let from = ctx.share_partitions.with(group, &sp, now, |s| {
            s.update_log_start(log.log_start_offset());
            s.can_acquire_records().then(|| s.next_fetch_offset())
        });
        let Some(mut from) = from else {
            continue;
        };
        // Whole batches, one read at a time: a read stops before a batch that does not fit
        // its budget, and that batch counts too.
        while total < limits.min_bytes {
            let read = match log.read(from, limits.min_bytes - total, true, limits.read_committed) {
                Ok(read) => read.records,
                Err(_) => return usize::MAX,
            };
            let mut pos = 0;
            while let Some(h) = read.get(pos..).and_then(BatchHeader::parse) {
                from = from.max(h.last_offset() + 1);
                pos += h.size_bytes();
            }
            if read.is_empty() || pos == 0 {
                break;
            }
            total += read.len();
        }
        if total >= limits.min_bytes {
            break;
        }
    }
    total
}

/// Acquires for `member` until something is taken, a partition fails, or `deadline`
/// passes; waits on appends to the partitions, on records released in any share partition,
/// and on the earliest lock deadline among them.
async fn long_poll(
    ctx: &Context,
    group: &str,
    member: &str,
    targets: &[Target],
    limits: &Limits,
    deadline: Instant,
) -> Vec<Taken> {
    let logs: Vec<Arc<Partition>> = targets
        .iter()
        .filter_map(|t| t.log.as_ref().ok().cloned())
        .collect();
    let keys: Vec<TopicIdPartition> = targets.iter().map(|t| t.tp).collect();
    loop {
        let mut woken: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = logs
            .iter()
            .map(|p| Box::pin(p.appended.notified()))
            .collect();
        woken.push(Box::pin(ctx.share_partitions.released.notified()));
        for n in woken.iter_mut() {
            n.as_mut().enable();
        }
        let enough = limits.min_bytes <= 1
            || Instant::now() >= deadline
            || crate::storage::offload::blocking(|| available_bytes(ctx, group, targets, limits))
                >= limits.min_bytes;
        let taken = if enough {
            crate::storage::offload::blocking(|| acquire_all(ctx, group, member, targets, limits))
        } else {
            Vec::new()
        };
        // Not enough bytes yet: nothing was acquired, and the wait goes on (at the deadline
        // `enough` holds, so the last pass always acquires).
        let done = enough
            && (taken
                .iter()
                .any(|t| !t.acquired.is_empty() || t.error.is_some())
                || logs.is_empty()
                || Instant::now() >= deadline);
        if done {
            return taken;
        }
        // Wake at the earliest lock expiry too: its records become available then.
        let wake_at = ctx
            .share_partitions
            .next_deadline(group, &keys)
            .map(|d| {
                let wait = (d - now_ms()).max(0) as u64;
                Instant::now() + Duration::from_millis(wait)
            })
            .map_or(deadline, |t| t.min(deadline));
        let any = std::future::poll_fn(|cx| {
            for n in woken.iter_mut() {
                if n.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        });
        let _ = tokio::time::timeout_at(wake_at, any).await;
    }
}

fn fetch_error(e: ResponseError, message: Option<&str>) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(e.code())
        .with_error_message(message.map(sb))
}

pub async fn share_fetch(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: ShareFetchRequest,
) -> Option<ShareFetchResponse> {
    let (group, member) = match identity(req.group_id.as_ref(), req.member_id.as_ref()) {
        Ok(ids) => ids,
        Err(why) => return Some(fetch_error(ResponseError::InvalidRequest, Some(why))),
    };
    let renew = version >= 2 && req.is_renew_ack;
    if renew {
        let mut why = String::new();
        for (name, value) in [
            ("maxBytes", req.max_bytes),
            ("minBytes", req.min_bytes),
            ("maxRecords", req.max_records),
            ("maxWaitMs", req.max_wait_ms),
        ] {
            if value != 0 {
                why.push_str(&format!("{name} must be set to 0, "));
            }
        }
        if !why.is_empty() {
            why.push_str("if isRenewAck is true.");
            return Some(fetch_error(ResponseError::InvalidRequest, Some(&why)));
        }
    }
    let mode = match AcquireMode::from_id(req.share_acquire_mode) {
        Some(m) => m,
        None => {
            return Some(fetch_error(
                ResponseError::InvalidRequest,
                Some(&format!(
                    "Invalid share acquire mode: {}",
                    req.share_acquire_mode
                )),
            ))
        }
    };

    // The request's partitions, and its acknowledgements by partition.
    let mut requested: Vec<TopicIdPartition> = Vec::new();
    let mut acks: Vec<(TopicIdPartition, Vec<AcknowledgementBatch>)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let tp = (t.topic_id, p.partition_index);
            requested.push(tp);
            if !p.acknowledgement_batches.is_empty() {
                let b = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, &b.acknowledge_types));
                acks.push((tp, batches_of(b)));
            }
        }
    }
    let forgotten: Vec<TopicIdPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let connection = (rc.listener.clone(), rc.peer);
    let context = match ctx.share_sessions.new_context(
        &group,
        &member,
        req.share_session_epoch,
        &SessionChanges {
            requested: &requested,
            forgotten: &forgotten,
            acknowledgements_present: !acks.is_empty(),
        },
        &connection,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(peer = %rc.peer, group, member, epoch = req.share_session_epoch, error = ?e, "ShareFetch session refused");
            if e == ResponseError::ShareSessionLimitReached {
                // As Kafka: wait out the request's max wait, so a consumer over the limit
                // does not spin.
                let wait = req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            return Some(fetch_error(e, None));
        }
    };

    let az = Authz::for_request(ctx, rc);
    // Acknowledgements write the share partitions' state: off the async workers.
    let mut acked: Vec<(AckResult, Option<Arc<Slot>>)> = crate::storage::offload::blocking(|| {
        acks.iter()
            .map(|(tp, batches)| {
                acknowledge_partition(ctx, az.as_ref(), &group, &member, *tp, batches, renew)
            })
            .collect()
    });
    make_durable(ctx, &mut acked).await;
    let ack_results: Vec<(TopicIdPartition, AckResult)> = acks
        .iter()
        .zip(acked)
        .map(|((tp, _), (r, _))| (*tp, r))
        .collect();

    let (to_fetch, answer_all) = match &context {
        ShareFetchContext::Full(parts) => (parts.clone(), true),
        ShareFetchContext::Subsequent(parts) => (parts.clone(), false),
        ShareFetchContext::Final => (Vec::new(), false),
    };
    let to_fetch = if renew { Vec::new() } else { to_fetch };
    let mut targets: Vec<Target> = to_fetch
        .iter()
        .map(|tp| resolve(ctx, az.as_ref(), *tp))
        .collect();
    for t in &mut targets {
        if let Ok(log) = &t.log {
            if let Err(e) = ctx.share_partitions.prepare(&group, t.tp.0, log).await {
                tracing::debug!(group, topic_id = %t.tp.0, partition = t.tp.1, error = ?e, "a share partition's state could not be read");
                t.log = Err(prepare_error(e));
            }
        }
    }
    let config = ctx.share_partitions.config(&group);
    let broker_max = ctx.config.fetch_max_bytes as usize;
    let limits = Limits {
        mode,
        batch_size: req.batch_size.max(1),
        max_records: if req.max_records > 0 {
            req.max_records
        } else {
            500
        },
        max_bytes: (req.max_bytes.max(0) as usize).min(broker_max),
        min_bytes: (req.min_bytes.max(0) as usize)
            .min((req.max_bytes.max(0) as usize).min(broker_max)),
        read_committed: ctx.share_partitions.read_committed(&group),
    };
    let taken = if targets.is_empty() {
        Vec::new()
    } else {
        let wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
        long_poll(
            ctx,
            &group,
            &member,
            &targets,
            &limits,
            Instant::now() + wait,
        )
        .await
    };

    // The answers: fetched partitions in the session's order, then acknowledgement results
    // of partitions not fetched.
    let mut acks_by_tp: HashMap<TopicIdPartition, AckResult> = ack_results.into_iter().collect();
    let mut responses: Vec<ShareFetchableTopicResponse> = Vec::new();
    let mut push = |topic_id: Uuid, data: PartitionData| match responses.last_mut() {
        Some(t) if t.topic_id == topic_id => t.partitions.push(data),
        _ => responses.push(
            ShareFetchableTopicResponse::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![data]),
        ),
    };
    for (t, got) in targets.iter().zip(taken) {
        let ack = acks_by_tp.remove(&t.tp);
        let has_data = !got.acquired.is_empty() || got.error.is_some() || ack.is_some();
        if !answer_all && !has_data {
            continue;
        }
        if let Some(bytes) = got.records.as_ref().filter(|b| !b.is_empty()) {
            if let Some(topic) = ctx.metadata.topic_by_id(&t.tp.0) {
                ctx.metrics.bytes_out(&topic.name, bytes.len());
            }
        }
        let mut data = PartitionData::default()
            .with_partition_index(t.tp.1)
            .with_error_code(got.error.map_or(0, |e| e.code()))
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(t.leader.0)
                    .with_leader_epoch(t.leader.1),
            )
            .with_records(Some(got.records.unwrap_or_default()))
            .with_acquired_records(
                got.acquired
                    .iter()
                    .map(|r| {
                        AcquiredRecords::default()
                            .with_first_offset(r.first_offset)
                            .with_last_offset(r.last_offset)
                            .with_delivery_count(r.delivery_count)
                    })
                    .collect(),
            );
        if let Some((code, message)) = ack {
            data.acknowledge_error_code = code;
            data.acknowledge_error_message = message.map(sb);
        }
        push(t.tp.0, data);
    }
    for (tp, _) in &acks {
        if let Some((code, message)) = acks_by_tp.remove(tp) {
            push(
                tp.0,
                PartitionData::default()
                    .with_partition_index(tp.1)
                    .with_acknowledge_error_code(code)
                    .with_acknowledge_error_message(message.map(sb))
                    .with_records(Some(Bytes::new())),
            );
        }
    }

    if req.share_session_epoch == FINAL_EPOCH {
        close_session(ctx, &group, &member).await;
    }
    Some(
        ShareFetchResponse::default()
            .with_acquisition_lock_timeout_ms(
                config.record_lock_duration_ms.min(i64::from(i32::MAX)) as i32,
            )
            .with_responses(responses),
    )
}

/// Ends a member's share session and gives its records back (Kafka's `releaseSession`).
async fn close_session(ctx: &Context, group: &str, member: &str) {
    ctx.share_sessions.remove(group, member);
    crate::storage::offload::blocking(|| {
        ctx.share_partitions.release_member(group, member, now_ms())
    });
    retire_if_idle(ctx, group).await;
}

/// Cluster mode: a group with no share session left here gives up its share partitions
/// (see `SharePartitions::retire_group`).
async fn retire_if_idle(ctx: &Context, group: &str) {
    let idle = || !ctx.share_sessions.has_group(group);
    if idle() {
        ctx.share_partitions.retire_group(group, idle).await;
    }
}

/// A connection closed: its share sessions end and their members' records are released.
pub async fn connection_closed(ctx: &Context, listener: &Arc<str>, peer: std::net::SocketAddr) {
    for (group, member) in ctx
        .share_sessions
        .connection_closed(&(listener.clone(), peer))
    {
        tracing::debug!(%peer, group = %group, member = %member, "share session closed with its connection; releasing its records");
        crate::storage::offload::blocking(|| {
            ctx.share_partitions
                .release_member(&group, &member, now_ms())
        });
        retire_if_idle(ctx, &group).await;
    }
}

pub async fn share_acknowledge(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: ShareAcknowledgeRequest,
) -> Option<ShareAcknowledgeResponse> {
    let error = |e: ResponseError, message: Option<&str>| {
        Some(
            ShareAcknowledgeResponse::default()
                .with_error_code(e.code())
                .with_error_message(message.map(sb)),
        )
    };
    let (group, member) = match identity(req.group_id.as_ref(), req.member_id.as_ref()) {
        Ok(ids) => ids,
        Err(why) => return error(ResponseError::InvalidRequest, Some(why)),
    };
    if let Err(e) = ctx
        .share_sessions
        .acknowledge_update(&group, &member, req.share_session_epoch)
    {
        tracing::debug!(peer = %rc.peer, group, member, epoch = req.share_session_epoch, error = ?e, "ShareAcknowledge session refused");
        return error(e, None);
    }
    let renew = version >= 2 && req.is_renew_ack;
    let az = Authz::for_request(ctx, rc);
    // Acknowledgements write the share partitions' state: off the async workers.
    let mut acked: Vec<(AckResult, Option<Arc<Slot>>)> = crate::storage::offload::blocking(|| {
        req.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, p)))
            .map(|(topic_id, p)| {
                let b = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, &b.acknowledge_types));
                let batches = batches_of(b);
                let tp = (topic_id, p.partition_index);
                acknowledge_partition(ctx, az.as_ref(), &group, &member, tp, &batches, renew)
            })
            .collect()
    });
    make_durable(ctx, &mut acked).await;
    let mut acked = acked.into_iter();
    let mut responses: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let ((code, message), _) = acked.next().unwrap_or(((0, None), None));
            let leader = ctx
                .metadata
                .topic_by_id(&t.topic_id)
                .and_then(|topic| {
                    topic
                        .placement(p.partition_index)
                        .map(|pl| (pl.leader, pl.leader_epoch))
                })
                .unwrap_or((-1, -1));
            partitions.push(
                AckPartitionData::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
                    .with_error_message(message.map(sb))
                    .with_current_leader(
                        AckLeader::default()
                            .with_leader_id(leader.0)
                            .with_leader_epoch(leader.1),
                    ),
            );
        }
        responses.push(
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    if req.share_session_epoch == FINAL_EPOCH {
        close_session(ctx, &group, &member).await;
    }
    let lock_ms = ctx.share_partitions.config(&group).record_lock_duration_ms;
    Some(
        ShareAcknowledgeResponse::default()
            .with_acquisition_lock_timeout_ms(lock_ms.min(i64::from(i32::MAX)) as i32)
            .with_responses(responses),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(first: i64, last: i64, types: &[i8]) -> AcknowledgementBatch {
        AcknowledgementBatch {
            first_offset: first,
            last_offset: last,
            acknowledge_types: types.to_vec(),
        }
    }

    #[test]
    fn acknowledgement_batches_are_checked_as_kafka_checks_them() {
        assert!(validate_batches(&[b(0, 4, &[1]), b(5, 6, &[1, 2])], false));
        assert!(!validate_batches(&[b(3, 2, &[1])], false), "first > last");
        assert!(
            !validate_batches(&[b(0, 4, &[1]), b(4, 6, &[1])], false),
            "overlap"
        );
        assert!(
            !validate_batches(&[b(5, 6, &[1]), b(0, 1, &[1])], false),
            "out of order"
        );
        assert!(!validate_batches(&[b(0, 4, &[])], false), "no types");
        assert!(!validate_batches(&[b(0, 4, &[1, 1])], false), "count");
        assert!(!validate_batches(&[b(0, 0, &[5])], false), "unknown type");
        assert!(
            !validate_batches(&[b(0, 0, &[4])], false),
            "renew not asked for"
        );
        assert!(validate_batches(&[b(0, 0, &[4])], true));
        assert!(member_id_valid(Some("abc")));
        assert!(!member_id_valid(Some("")));
        assert!(!member_id_valid(None));
        assert!(!member_id_valid(Some(&"x".repeat(37))));
    }
}
