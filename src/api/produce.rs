//! Produce: validate each partition's record batches and append them to the log.

use std::sync::Arc;

use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use super::metadata::auto_create_topic;
use super::sb;
use super::RequestContext;
use crate::clock::now_ms;
use crate::context::Context;
use crate::log::batch::{set_log_append_time, split_and_validate, BatchHeader, ProducedBatch};
use crate::log::partition::Appended;
use crate::log::recode;
use crate::log::records::{self, Check, Hold};
use crate::log::Partition;
use crate::metadata::{validate_topic_name, Topic};
use crate::topic_config;
use kafka_protocol::records::Compression;

pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let acks_valid = matches!(acks, -1..=1);
    let mut queued = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in &req.topic_data {
        topics.push(if acks_valid {
            resolve_topic(ctx, version, t).await
        } else {
            Err(ResponseError::InvalidRequiredAcks)
        });
    }
    // KIP-890: Produce v12+ adds a transaction.version 2 producer's partitions to its
    // transaction first; older versions are verified with a coordinator on another broker
    // before their first batch on a partition. `txn_refused` holds the partitions the
    // coordinator refused; `remote_txn` says the append has no local coordinator to ask.
    let (txn_refused, remote_txn) = match &req.transactional_id {
        Some(id) => (
            crate::txn_verify::refused_partitions(
                ctx,
                id.as_str(),
                version,
                &req.topic_data,
                &topics,
            )
            .await,
            ctx.cluster.is_some() && ctx.coordinator_error(1, id.as_str()).is_some(),
        ),
        None => Default::default(),
    };
    for (i, (t, topic)) in req.topic_data.into_iter().zip(topics).enumerate() {
        responses.push(produce_topic(
            ctx,
            rc,
            version,
            acks,
            topic,
            t,
            i,
            TxnCheck {
                refused: &txn_refused,
                remote: remote_txn,
            },
            &mut queued,
        ));
    }
    // Every partition's append is queued before any is awaited: with --fsync they share
    // one sync.
    let replication_deadline = tokio::time::Instant::now() + replication_timeout(req.timeout_ms);
    for q in queued {
        let topic = &mut responses[q.topic];
        let out = &mut topic.partition_responses[q.partition];
        let end = q.appended.replicated_at();
        let epoch = q.partition_log.leader_epoch();
        let mut result = q.partition_log.appended(q.appended).await;
        if let (Ok(_), Some(end), -1) = (&result, end, acks) {
            // acks=all: answered once every in-sync replica has the batch.
            let wait = replication_deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(e) = q
                .partition_log
                .wait_for_high_watermark(end, epoch, wait)
                .await
            {
                result = Err(e);
            }
        }
        match result {
            Ok(r) => {
                out.base_offset = r.base_offset;
                out.log_start_offset = r.log_start_offset;
                out.log_append_time_ms = q.append_time.unwrap_or(-1);
                ctx.metrics.bytes_in(&topic.name.0, q.bytes);
            }
            Err(code) => {
                ctx.metrics.partition_error("Produce", code.code());
                out.error_code = code.code();
            }
        }
    }
    // producer_byte_rate: the whole request counts, once it is written (Kafka records it in
    // the response callback); a client over its quota is told to wait and muted meanwhile.
    let throttle_ms = ctx.quotas.record(
        crate::quota::Kind::Produce,
        &rc.principal,
        rc.client_id(),
        rc.request_bytes as f64,
    );
    rc.throttle(throttle_ms);
    if acks == 0 {
        // No response can carry the error, so Kafka closes the connection: the client
        // reconnects and refreshes its metadata instead of writing into the void.
        let failed = responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.error_code != 0);
        if let Some(p) = failed {
            rc.close_connection(format!(
                "acks=0 produce failed with error {} on partition {}",
                p.error_code, p.index
            ));
        }
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

async fn resolve_topic(
    ctx: &Context,
    version: i16,
    data: &TopicProduceData,
) -> Result<Arc<Topic>, ResponseError> {
    let internal = |t: Arc<Topic>| {
        if crate::metadata::is_internal_topic(&t.name) {
            tracing::warn!(topic = %t.name, "produce to an internal topic refused");
            Err(ResponseError::InvalidTopicException)
        } else {
            Ok(t)
        }
    };
    if version >= 13 {
        return ctx
            .metadata
            .topic_by_id(&data.topic_id)
            .ok_or(ResponseError::UnknownTopicId)
            .and_then(internal);
    }
    let name = data.name.0.as_str();
    if let Some(t) = ctx.metadata.topic(name) {
        return internal(t);
    }
    if crate::metadata::is_internal_topic(name) {
        return Err(ResponseError::InvalidTopicException);
    }
    if validate_topic_name(name).is_err() {
        return Err(ResponseError::InvalidTopicException);
    }
    if !ctx.config.auto_create_topics_enable {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    auto_create_topic(ctx, name).await
}

/// The transaction checks of a Produce's partitions: what the coordinator refused before
/// the append (`crate::txn_verify`), and whether the coordinator is on another broker (else
/// the append asks this broker's, under the partition's lock).
#[derive(Clone, Copy)]
struct TxnCheck<'a> {
    refused: &'a std::collections::HashMap<(usize, i32), ResponseError>,
    remote: bool,
}

/// A partition's append, queued for the disk, and where its answer goes.
struct Queued {
    topic: usize,
    partition: usize,
    partition_log: Arc<Partition>,
    appended: Appended,
    append_time: Option<i64>,
    bytes: usize,
}

/// How long an `acks=all` produce waits for the in-sync replicas: the request's timeout,
/// bounded so a client cannot pin a task for days.
fn replication_timeout(timeout_ms: i32) -> std::time::Duration {
    std::time::Duration::from_millis(timeout_ms.clamp(0, 300_000) as u64)
}

/// Validates and queues the appends of one topic's partitions (into `queued`), answering
/// at once the partitions that fail before their append is queued.
#[allow(clippy::too_many_arguments)]
fn produce_topic(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    acks: i16,
    topic: Result<Arc<Topic>, ResponseError>,
    data: TopicProduceData,
    topic_pos: usize,
    txn: TxnCheck<'_>,
    queued: &mut Vec<Queued>,
) -> TopicProduceResponse {
    let rules = topic.as_ref().ok().map(|t| TopicRules::of(ctx, t));
    let partition_responses = data
        .partition_data
        .iter()
        .enumerate()
        .map(|(pos, pd)| {
            let mut out = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let result = topic.as_ref().map_err(|e| (*e, None)).and_then(|t| {
                let p = t
                    .partition(pd.index)
                    .ok_or((ResponseError::UnknownTopicOrPartition, None))?;
                if !ctx.metadata.leads(t, pd.index) {
                    return Err((ResponseError::NotLeaderOrFollower, None));
                }
                let records = pd
                    .records
                    .as_ref()
                    .ok_or((ResponseError::CorruptMessage, None))?;
                let rules = rules
                    .as_ref()
                    .ok_or((ResponseError::UnknownServerError, None))?;
                let isr = t.placement(pd.index).map_or(1, |p| p.isr.len());
                if acks == -1 && isr < rules.min_insync_replicas {
                    return Err((
                        ResponseError::NotEnoughReplicas,
                        Some(format!(
                            "The size of the current ISR ({isr}) is insufficient to satisfy the min.isr requirement of {} for partition {}-{}",
                            rules.min_insync_replicas, t.name, pd.index
                        )),
                    ));
                }
                let reject = |code: ResponseError, message: String| {
                    tracing::warn!(
                        peer = %rc.peer,
                        client_id = rc.client_id(),
                        topic = %t.name,
                        partition = pd.index,
                        "rejected produce: {message}"
                    );
                    (code, Some(message))
                };
                let mut batches = split_and_validate(records, rules.max_message_bytes)
                    .map_err(|e| reject(e.error(), e.to_string()))?;
                let now = now_ms();
                for b in &batches {
                    rules
                        .check_records(b, now, &format!("{}-{}", t.name, pd.index))
                        .map_err(|(code, m)| reject(code, m))?;
                }
                if let Some(codec) = rules.recompress {
                    for b in batches.iter_mut() {
                        *b = recode::recompress(
                            b,
                            codec,
                            rules.max_uncompressed,
                            rules.max_message_bytes,
                        )
                        .map_err(|e| reject(e.error(), e.to_string()))?;
                    }
                }
                if rules.log_append_time {
                    for b in batches.iter_mut() {
                        *b = set_log_append_time(b, now);
                    }
                } else {
                    for b in &batches {
                        rules
                            .check_create_time(&b.header, now)
                            .map_err(|m| reject(ResponseError::InvalidTimestamp, m))?;
                    }
                }
                let verify = |pid: i64, epoch: i16| {
                    if let Some(e) = txn.refused.get(&(topic_pos, pd.index)) {
                        return Err(*e);
                    }
                    if txn.remote {
                        return Ok(());
                    }
                    ctx.txns
                        .verify_produce(pid, epoch, &t.name, pd.index)
                        .map_err(|e| crate::txn_verify::produce_error(e.code(), version))
                        .inspect_err(|e| {
                            tracing::warn!(
                                peer = %rc.peer,
                                client_id = rc.client_id(),
                                topic = %t.name,
                                partition = pd.index,
                                producer_id = pid,
                                error = ?e,
                                "transactional batch for a partition not in an open transaction"
                            );
                        })
                };
                p.append(&batches, &verify)
                    .map(|a| (p.clone(), a, rules.log_append_time.then_some(now)))
                    .map_err(|e| (e, None))
            });
            match result {
                Ok((partition_log, appended, append_time)) => queued.push(Queued {
                    topic: topic_pos,
                    partition: pos,
                    partition_log,
                    appended,
                    append_time,
                    bytes: pd.records.as_ref().map_or(0, |b| b.len()),
                }),
                Err((code, message)) => {
                    ctx.metrics.partition_error("Produce", code.code());
                    out.error_code = code.code();
                    if version >= 8 {
                        out.error_message = message.map(sb);
                    }
                }
            }
            out
        })
        .collect();
    TopicProduceResponse::default()
        .with_name(data.name)
        .with_topic_id(data.topic_id)
        .with_partition_responses(partition_responses)
}

/// The topic configs Produce enforces, read once per request.
struct TopicRules {
    max_message_bytes: usize,
    log_append_time: bool,
    /// `message.timestamp.before.max.ms` / `after.max.ms`: how far a CreateTime timestamp
    /// may lag behind or run ahead of the broker's clock.
    before_max_ms: i64,
    after_max_ms: i64,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    compacted: bool,
    /// `compression.type` names a codec: batches are stored with it, not the producer's.
    recompress: Option<Compression>,
    /// `min.insync.replicas`: the ISR an `acks=all` append needs.
    min_insync_replicas: usize,
    /// What one batch may inflate to (`--max-uncompressed-batch-bytes`, or more when the
    /// topic's `max.message.bytes` is larger).
    max_uncompressed: usize,
    /// `max.decompressed.message.bytes`: the largest record a compressed batch may hold,
    /// decompressed.
    max_decompressed_record: usize,
}

impl TopicRules {
    fn of(ctx: &Context, topic: &Topic) -> TopicRules {
        let dynamic = ctx.metadata.broker_configs();
        let value = |name| topic_config::value_of(&topic.configs, name, &ctx.config, &dynamic);
        let long = |name| value(name).parse::<i64>().unwrap_or(i64::MAX);
        let max_message_bytes = value("max.message.bytes")
            .parse()
            .unwrap_or(ctx.config.message_max_bytes);
        TopicRules {
            max_message_bytes,
            max_uncompressed: ctx
                .config
                .max_uncompressed_batch_bytes
                .max(max_message_bytes),
            log_append_time: value("message.timestamp.type") == "LogAppendTime",
            before_max_ms: long("message.timestamp.before.max.ms"),
            after_max_ms: long("message.timestamp.after.max.ms"),
            compacted: topic_config::split_list(&value("cleanup.policy"))
                .iter()
                .any(|p| p == "compact"),
            recompress: recode::topic_codec(&value("compression.type")),
            min_insync_replicas: value("min.insync.replicas").parse().unwrap_or(1),
            max_decompressed_record: value("max.decompressed.message.bytes")
                .parse()
                .unwrap_or(usize::MAX),
        }
    }

    /// Kafka's `LogValidator` checks on every record of a produced batch, walked with
    /// bounded memory: the structure and count of the records, offset deltas 0, 1, 2, ...,
    /// a key on every record of a compacted topic, and each CreateTime timestamp in range.
    fn check_records(
        &self,
        b: &ProducedBatch,
        now: i64,
        partition: &str,
    ) -> Result<(), (ResponseError, String)> {
        let h = &b.header;
        if !self.log_append_time && h.is_log_append_time() {
            return Err((
                ResponseError::InvalidTimestamp,
                "Invalid timestamp type in the batch: producers should not set timestamp type to LogAppendTime".into(),
            ));
        }
        let mut problem = None;
        // As Kafka, only where records are decompressed.
        let compressed = records::codec(h) != Compression::None;
        records::walk(&b.bytes, self.max_uncompressed, Check::Produced, Hold::Fields, |r| {
            if compressed && r.size > self.max_decompressed_record {
                problem = Some((
                    ResponseError::InvalidRecord,
                    format!(
                        "Invalid record size: {} exceeds the configured maximum record size of {}.",
                        r.size, self.max_decompressed_record
                    ),
                ));
                return false;
            }
            if self.compacted && r.key.is_none() {
                problem = Some((
                    ResponseError::InvalidRecord,
                    format!("Compacted topic cannot accept message without key in topic partition {partition}."),
                ));
                return false;
            }
            if !self.log_append_time {
                let ts = h.base_timestamp.saturating_add(r.timestamp_delta);
                if let Err(m) = self.check_timestamp(ts, r.offset_delta, now) {
                    problem = Some((ResponseError::InvalidTimestamp, m));
                    return false;
                }
            }
            true
        })
        .map_err(|e| (e.error(), e.to_string()))?;
        match problem {
            Some(p) => Err(p),
            None => Ok(()),
        }
    }

    /// Kafka's INVALID_TIMESTAMP check for one CreateTime timestamp (-1 means none).
    fn check_timestamp(&self, ts: i64, offset_delta: i32, now: i64) -> Result<(), String> {
        let (lo, hi) = (
            now.saturating_sub(self.before_max_ms),
            now.saturating_add(self.after_max_ms),
        );
        if ts != -1 && (ts < lo || ts > hi) {
            return Err(format!(
                "Timestamp {ts} of the record at offset delta {offset_delta} is out of range. The timestamp should be within [{lo}, {hi}]"
            ));
        }
        Ok(())
    }

    /// Kafka's INVALID_TIMESTAMP check for CreateTime topics, on the batch's bounds.
    fn check_create_time(&self, h: &BatchHeader, now: i64) -> Result<(), String> {
        let (lo, hi) = (
            now.saturating_sub(self.before_max_ms),
            now.saturating_add(self.after_max_ms),
        );
        for ts in [h.base_timestamp, h.max_timestamp] {
            if ts >= 0 && (ts < lo || ts > hi) {
                return Err(format!(
                    "Timestamp {ts} of a record in the batch at offset delta 0..{} is out of range. The timestamp should be within [{lo}, {hi}]",
                    h.last_offset_delta
                ));
            }
        }
        Ok(())
    }
}
