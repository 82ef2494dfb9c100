//! The share-group dead-letter queue (KIP-1191, share.version 2): records a member rejects,
//! and records released after their last allowed delivery, are copied to the group's
//! `errors.deadletterqueue.topic.name` with six `__dlq.errors.*` headers saying where they
//! came from and why, and only then archived. Kafka's `DefaultShareGroupDLQManager`.
//!
//! The share partition marks such records ARCHIVING (see `partition`); that state is
//! persisted like any other, so a restart or a new leader redoes the write (at least once,
//! as in Kafka). One task here takes the work of every share partition: it validates the
//! topic in Kafka's order with Kafka's messages, creates it if the broker allows, produces
//! the records to partition `source % partitions` of it with acks=all (through this
//! broker's own Produce handler when it leads that partition, else over the inter-broker
//! listener), and archives the records whether the write succeeded or not ("archived
//! regardless"). Kafka's timer moves an abandoned record at its delivery limit to the DLQ
//! when its lock runs out; Klamm expires locks lazily, so the task also sweeps the share
//! partitions of groups with a DLQ for locks that ran out.
//!
//! Bounds: one writer task per share partition at a time; each round holds at most one
//! batch of the DLQ topic's `max.message.bytes`; a retried Produce gives up after five
//! attempts, so ARCHIVING records hold the start offset for a bounded time.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::manager::{now_ms, ShareKey, Slot};
use super::partition::DlqWork;
use crate::context::Context;
use crate::log::batch::{headed_batch, BatchHeader, Headers};
use crate::log::records::{walk, Check, Hold};
use crate::metadata::Topic;

/// A batch's fixed header, which the DLQ topic's `max.message.bytes` also counts.
const BATCH_OVERHEAD: usize = 61;
/// Kafka's `ExponentialBackoffManager(5, 1000, 2, 30000, 0.2)` for retried produces.
const ATTEMPTS: u32 = 5;
const BACKOFF_MS: u64 = 1000;
const BACKOFF_MAX_MS: u64 = 30_000;
/// How often abandoned locks of groups with a DLQ are looked for.
const SWEEP: Duration = Duration::from_millis(250);
/// The Produce version the writer speaks (topic names, error messages).
const PRODUCE_VERSION: i16 = 9;

/// The share partitions whose ARCHIVING records wait for the writer.
///
/// It exists so that whoever changes a share partition (an acknowledgement, a closed
/// session, an expired lock, a reload) only has to say "look at this one", and the one
/// writer task finds the work.
#[derive(Default)]
pub struct DlqQueue {
    pending: Mutex<BTreeSet<ShareKey>>,
    /// Share partitions a writer is working on; their new work waits for it.
    busy: Mutex<HashSet<ShareKey>>,
    wake: Arc<tokio::sync::Notify>,
}

impl DlqQueue {
    pub(super) fn enqueue(&self, key: &ShareKey) {
        let added = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
        if added {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Vec<ShareKey> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }

    fn claim(&self, key: &ShareKey) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
    }

    fn is_busy(&self, key: &ShareKey) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    fn release(&self, key: &ShareKey) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The writer task: runs until the broker is gone.
pub async fn run(ctx: Weak<Context>) {
    let wake = match ctx.upgrade() {
        Some(c) => {
            resume_stored(&c);
            c.share_partitions.dlq.wake.clone()
        }
        None => return,
    };
    loop {
        let _ = tokio::time::timeout(SWEEP, wake.notified()).await;
        // A wake-up that is ready at once must not keep the writers it spawned off the
        // worker (a single-threaded runtime runs them only when this yields).
        tokio::task::yield_now().await;
        let Some(c) = ctx.upgrade() else { return };
        sweep(&c);
        for key in c.share_partitions.dlq.take() {
            if !c.share_partitions.dlq.claim(&key) {
                // Its writer looks for more work before it lets go.
                continue;
            }
            let Some(slot) = c.share_partitions.get(&key.0, key.1, key.2) else {
                c.share_partitions.dlq.release(&key);
                continue;
            };
            let weak = ctx.clone();
            tokio::spawn(async move {
                if let Some(c) = weak.upgrade() {
                    drain(&c, &slot).await;
                    c.share_partitions.dlq.release(&slot.id);
                    // Work that came while this ran, and found the partition busy.
                    if c.share_partitions.peek(&slot, |p| p.has_dlq_work()) {
                        c.share_partitions.dlq.enqueue(&slot.id);
                    }
                }
            });
        }
    }
}

/// Single node: loads the share partitions a stop left with ARCHIVING records, so their
/// writes are done again now rather than at their group's next fetch.
fn resume_stored(ctx: &Context) {
    let now = now_ms();
    for (group, topic_id, index) in ctx.share_partitions.stored_with_dlq_work() {
        let Some(log) = ctx
            .metadata
            .topic_by_id(&topic_id)
            .and_then(|t| t.partition(index).cloned())
        else {
            continue;
        };
        if let Some(slot) = ctx
            .share_partitions
            .get_or_init(&group, topic_id, &log, now)
        {
            ctx.share_partitions.dlq.enqueue(&slot.id);
        }
    }
}

/// Expires the locks that ran out in share partitions of groups with a DLQ (their records
/// at the limit go ARCHIVING), and queues share partitions that hold work nobody took
/// (reloaded ARCHIVING records).
fn sweep(ctx: &Context) {
    let now = now_ms();
    let sp = &ctx.share_partitions;
    for slot in sp.slots() {
        if sp.dlq.is_busy(&slot.id) {
            // Its writer looks for more work before it lets go.
            continue;
        }
        let (due, work) = sp.peek(&slot, |p| {
            let due = p.config().dlq_enabled && p.next_lock_deadline().is_some_and(|d| d <= now);
            (due, p.has_dlq_work())
        });
        if due {
            sp.with(&slot.id.0, &slot, now, |_| ());
        } else if work {
            sp.dlq.enqueue(&slot.id);
        }
    }
}

/// Writes every piece of work the share partition has, one after the other, and archives
/// each piece once its write is done or given up.
async fn drain(ctx: &Context, slot: &Arc<Slot>) {
    let sp = &ctx.share_partitions;
    let group = slot.id.0.clone();
    loop {
        if !sp.is_current(slot) {
            return;
        }
        let work = sp.with(&group, slot, now_ms(), |p| p.take_dlq_work());
        if work.is_empty() {
            return;
        }
        // Cluster mode: ARCHIVING reaches the share coordinator before anything is
        // produced, so a new leader redoes the write rather than lose it. Kafka goes on when
        // this write fails, and so does Klamm.
        let _ = sp.flush(slot).await;
        for w in work {
            if let Err(message) = write(ctx, &slot.id, &w).await {
                tracing::error!(
                    group = %group,
                    topic_id = %slot.id.1,
                    partition = slot.id.2,
                    first_offset = w.first_offset,
                    last_offset = w.last_offset,
                    "Failed to write to DLQ, proceeding to ARCHIVED regardless. {message}"
                );
                ctx.metrics.share_dlq_failed_writes.inc();
            } else {
                ctx.metrics.share_dlq_writes.inc();
            }
            if !sp.is_current(slot) {
                // A new term or an offsets reset: whoever holds the partition now redoes or
                // forgets the work.
                return;
            }
            sp.with(&group, slot, now_ms(), |p| {
                p.finish_dlq(w.first_offset, w.last_offset)
            });
            let _ = sp.flush(slot).await;
        }
    }
}

/// Writes one run of records to the group's DLQ topic; Err with Kafka's message when the
/// topic is not usable or the write failed.
async fn write(ctx: &Context, key: &ShareKey, w: &DlqWork) -> Result<(), String> {
    let group = &*key.0;
    let configs = ctx.group_configs.configured(group);
    let name = configs
        .get("errors.deadletterqueue.topic.name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let copy = configs
        .get("errors.deadletterqueue.copy.record.enable")
        .is_some_and(|v| v == "true");
    let topic = dlq_topic(ctx, group, &name).await?;
    let source = ctx
        .metadata
        .topic_by_id(&key.1)
        .ok_or_else(|| format!("The source topic {} of share group {group} is gone.", key.1))?;
    let partitions = i32::try_from(topic.placements.len())
        .unwrap_or(i32::MAX)
        .max(1);
    let target = key.2 % partitions;
    let dynamic = ctx.metadata.broker_configs();
    let budget: usize =
        crate::topic_config::value_of(&topic.configs, "max.message.bytes", &ctx.config, &dynamic)
            .parse()
            .unwrap_or(ctx.config.message_max_bytes)
            .max(BATCH_OVERHEAD + 1);
    let source_log = if copy {
        ctx.metadata.led_partition(&source, key.2).ok().cloned()
    } else {
        None
    };

    let mut next = w.first_offset;
    while next <= w.last_offset {
        let (copied, covered) = match &source_log {
            Some(log) => read_source(ctx, log, next, w.last_offset, budget),
            None => (BTreeMap::new(), w.last_offset),
        };
        let now = now_ms();
        let mut records = Vec::new();
        let mut size = BATCH_OVERHEAD;
        let mut offset = next;
        while offset <= covered {
            let headers = dlq_headers(&source.name, key, offset, w);
            let header_bytes: usize = headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 4)
                .sum();
            let (mut k, mut v) = copied.get(&offset).cloned().unwrap_or((None, None));
            let body = k.as_ref().map_or(0, |b| b.len()) + v.as_ref().map_or(0, |b| b.len());
            let bare = 24 + header_bytes;
            if size + bare + body > budget {
                if !records.is_empty() {
                    break;
                }
                // Alone it is still too big: the context headers go without the record.
                k = None;
                v = None;
            }
            size += bare + k.as_ref().map_or(0, |b| b.len()) + v.as_ref().map_or(0, |b| b.len());
            records.push((k, v, headers));
            offset += 1;
        }
        let batch = headed_batch(records, now, None)
            .map_err(|e| format!("Encoding the DLQ batch failed: {e:?}."))?;
        produce(ctx, &topic, target, batch).await?;
        next = offset;
    }
    Ok(())
}

/// Kafka's `validateDlqTopic`, in its order and with its messages; creates the topic when
/// it is missing and the broker allows it.
async fn dlq_topic(ctx: &Context, group: &str, name: &str) -> Result<Arc<Topic>, String> {
    if name.is_empty() {
        return Err(format!(
            "Configured DLQ topic name in share group: {group} is empty."
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "Configured DLQ topic name in share group: {group} cannot start with __, topic: {name}."
        ));
    }
    let topic = match ctx.metadata.topic(name) {
        Some(t) => {
            let dynamic = ctx.metadata.broker_configs();
            let enabled = crate::topic_config::value_of(
                &t.configs,
                "errors.deadletterqueue.group.enable",
                &ctx.config,
                &dynamic,
            );
            if enabled != "true" {
                return Err(format!(
                    "DLQ is not enabled on configured DLQ topic for share group: {group}, topic: {name}."
                ));
            }
            t
        }
        None if !ctx.config.errors_deadletterqueue_auto_create_topics_enable => {
            return Err(format!(
                "DLQ topic does not exist and auto create is disabled on cluster for share group: {group}, topic: {name}."
            ));
        }
        None => {
            let configs = BTreeMap::from([
                (
                    "errors.deadletterqueue.group.enable".to_string(),
                    "true".to_string(),
                ),
                (
                    "message.timestamp.type".to_string(),
                    "CreateTime".to_string(),
                ),
            ]);
            crate::api::metadata::auto_create_topic_with(ctx, name, configs)
                .await
                .map_err(|e| format!("Creating the DLQ topic {name} failed: {e:?}."))?
        }
    };
    let prefix = &ctx.config.errors_deadletterqueue_topic_name_prefix;
    if !prefix.is_empty() && !name.starts_with(prefix.as_str()) {
        return Err(format!(
            "Configured DLQ topic name does not comply with the DLQ topic prefix in share group: {group}, topic: {name}, prefix: {prefix}."
        ));
    }
    Ok(topic)
}

/// The six context headers, in Kafka's order, as UTF-8 decimal strings.
fn dlq_headers(topic: &str, key: &ShareKey, offset: i64, w: &DlqWork) -> Headers {
    let mut h = Headers::new();
    let mut put = |name: &'static str, value: String| {
        h.insert(StrBytes::from_static_str(name), Some(Bytes::from(value)));
    };
    put("__dlq.errors.topic", topic.to_string());
    put("__dlq.errors.partition", key.2.to_string());
    put("__dlq.errors.offset", offset.to_string());
    put("__dlq.errors.group", key.0.to_string());
    put("__dlq.errors.delivery.count", w.delivery_count.to_string());
    put("__dlq.errors.message", w.cause.message().to_string());
    h
}

/// Source records' keys and values by offset.
type Copied = BTreeMap<i64, (Option<Bytes>, Option<Bytes>)>;

/// The keys and values of the source records from `from` on, as far as one read of at
/// most `budget` bytes goes, and the last offset that read covers (offsets it covers but
/// does not hold were compacted away or are past the log, and go without their record).
fn read_source(
    ctx: &Context,
    log: &crate::log::partition::Partition,
    from: i64,
    to: i64,
    budget: usize,
) -> (Copied, i64) {
    let mut out = BTreeMap::new();
    let read = match log.read(from, budget, true, false) {
        Ok(r) => r,
        Err(_) => return (out, to),
    };
    let records = read.records;
    let (mut pos, mut covered, mut held) = (0usize, from - 1, 0usize);
    while let Some(h) = records.get(pos..).and_then(BatchHeader::parse) {
        let end = pos + h.size_bytes();
        let Some(batch) = records.get(pos..end) else {
            break;
        };
        let mut full = false;
        let walked = walk(
            batch,
            ctx.config.max_uncompressed_batch_bytes,
            Check::Stored,
            Hold::Record,
            |r| {
                let offset = h.base_offset + i64::from(r.offset_delta);
                if offset < from || offset > to {
                    return true;
                }
                let size = r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len);
                if held + size > budget && !out.is_empty() {
                    full = true;
                    return false;
                }
                held += size;
                out.insert(
                    offset,
                    (
                        r.key.map(Bytes::copy_from_slice),
                        r.value.map(Bytes::copy_from_slice),
                    ),
                );
                covered = offset;
                true
            },
        );
        if walked.is_err() {
            tracing::warn!(topic = %log.topic, partition = log.index, base_offset = h.base_offset, "a source batch of a DLQ copy cannot be read; its records go without key and value");
        }
        if full {
            return (out, covered.max(from));
        }
        covered = covered.max(h.last_offset().min(to));
        pos = end;
    }
    if pos == 0 {
        // Nothing there (retention passed it, or it is past the log): headers only.
        return (out, to);
    }
    (out, covered.max(from))
}

/// Produces one batch to partition `index` of the DLQ topic with acks=all, through this
/// broker's own Produce handler when it leads that partition, else over the inter-broker
/// listener; retries Kafka's retriable errors with its backoff.
async fn produce(ctx: &Context, topic: &Topic, index: i32, batch: Bytes) -> Result<(), String> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.name.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(index)
                .with_records(Some(batch))])]);
    let mut backoff = BACKOFF_MS;
    let mut attempt = 1;
    loop {
        let code = match produce_once(ctx, topic, index, &req).await {
            Ok((0, _)) => return Ok(()),
            Ok((code, message)) => (ResponseError::try_from_code(code), message),
            Err(e) => (Some(ResponseError::NetworkException), Some(e)),
        };
        let retriable = matches!(
            code.0,
            Some(
                ResponseError::NotLeaderOrFollower
                    | ResponseError::NetworkException
                    | ResponseError::RequestTimedOut
                    | ResponseError::LeaderNotAvailable
            )
        );
        if !retriable || attempt >= ATTEMPTS {
            return Err(format!(
                "Produce to {}-{index} failed with {:?}{}.",
                topic.name,
                code.0,
                code.1.map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
        let jitter = 0.8 + 0.4 * (now_ms() % 1000) as f64 / 1000.0;
        tokio::time::sleep(Duration::from_millis((backoff as f64 * jitter) as u64)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX_MS);
        attempt += 1;
    }
}

/// One Produce: (error code, message) of the partition.
async fn produce_once(
    ctx: &Context,
    topic: &Topic,
    index: i32,
    req: &ProduceRequest,
) -> Result<(i16, Option<String>), String> {
    // Fresh metadata each attempt: the leader may have moved.
    let topic = ctx
        .metadata
        .topic(&topic.name)
        .ok_or("the DLQ topic is gone")?;
    let response = if ctx.metadata.leads(&topic, index) {
        let header = RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(PRODUCE_VERSION)
            .with_client_id(Some(StrBytes::from_static_str("klamm-share-dlq")));
        let rc = crate::api::RequestContext::new(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            Arc::from(ctx.inter_broker_listener.as_str()),
            Arc::from("User:ANONYMOUS"),
            header,
            0,
        );
        rc.exempt_from_request_quota();
        crate::api::produce::handle(ctx, &rc, PRODUCE_VERSION, req.clone())
            .await
            .ok_or("no Produce response")?
    } else {
        let leader = topic.placement(index).map_or(-1, |p| p.leader);
        let addr = ctx
            .broker_address(leader)
            .ok_or_else(|| format!("no address for the leader {leader}"))?;
        // The produce waits up to its 30 s timeout for acks=all.
        let timeout = Duration::from_secs(35);
        match ctx.share_partitions.remote() {
            Some(pool) => pool
                .send_pooled(ctx, &addr, req, PRODUCE_VERSION, timeout)
                .await
                .map_err(|e| e.to_string())?,
            None => {
                let mut client = ctx
                    .dial(&addr, Duration::from_secs(5))
                    .await
                    .map_err(|e| e.to_string())?;
                client.set_timeout(timeout);
                client
                    .send(req, PRODUCE_VERSION)
                    .await
                    .map_err(|e| e.to_string())?
            }
        }
    };
    let p = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .ok_or("empty Produce response")?;
    Ok((
        p.error_code,
        p.error_message.as_ref().map(|m| m.to_string()),
    ))
}
