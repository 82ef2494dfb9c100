//! CreateTopics, DeleteTopics, CreatePartitions and DeleteRecords.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
};
use kafka_protocol::ResponseError;

use super::RequestContext;
use super::{sb, topic_name};
use crate::context::Context;
use crate::topic_config;

pub async fn create_topics(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: CreateTopicsRequest,
) -> Option<CreateTopicsResponse> {
    let mut seen = std::collections::HashSet::new();
    let duplicates: std::collections::HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    // Kafka's controller writes a request as at most 10,000 records (a topic, each of its
    // partitions, each config) and refuses a larger one whole.
    let records: usize = req
        .topics
        .iter()
        .map(|t| {
            let partitions = if !t.assignments.is_empty() {
                t.assignments.len()
            } else if t.num_partitions == -1 {
                ctx.config.num_partitions.max(0) as usize
            } else {
                t.num_partitions.max(0) as usize
            };
            1 + partitions + t.configs.len()
        })
        .sum();
    let excessive = records > crate::metadata::MAX_RECORDS_PER_ADMIN_REQUEST;
    if excessive {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), records, "CreateTopics refused: excessively large batch operation");
    }
    // controller_mutation_rate (KIP-599): strict from v6, permissive before.
    let mut quota = ctx
        .quotas
        .controller_mutation(&rc.principal, rc.client_id(), version >= 6);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let clustered = ctx.metadata.cluster().is_some();
        let wait = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 30_000) as u64);
        let outcome = async {
            if excessive {
                return Err((
                    ResponseError::PolicyViolation,
                    crate::metadata::EXCESSIVE_BATCH.to_string(),
                ));
            }
            if duplicates.contains(&name) {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Create topics request from client `{}` contains multiple entries for the following topics: {name}", rc.client_id()),
                ));
            }
            let rf = t.replication_factor;
            if !clustered && rf != -1 && rf != 1 && t.assignments.is_empty() {
                return Err((
                    ResponseError::InvalidReplicationFactor,
                    format!("Replication factor: {rf} larger than available brokers: 1."),
                ));
            }
            let num_partitions = if !t.assignments.is_empty() {
                if t.num_partitions != -1 || t.replication_factor != -1 {
                    return Err((
                        ResponseError::InvalidRequest,
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".to_string(),
                    ));
                }
                for (i, a) in t.assignments.iter().enumerate() {
                    if clustered {
                        // The cluster checks the brokers below.
                        continue;
                    }
                    let ok = a.partition_index == i as i32
                        && a.broker_ids.len() == 1
                        && a.broker_ids[0].0 == ctx.config.node_id;
                    if !ok {
                        return Err((
                            ResponseError::InvalidReplicaAssignment,
                            format!("replica assignment for partition {} must be [{}] on this single-node cluster", a.partition_index, ctx.config.node_id),
                        ));
                    }
                }
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                ctx.config.num_partitions
            } else {
                t.num_partitions
            };
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                let Some(v) = &c.value else {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Null value not supported for topic configs: {}", c.name),
                    ));
                };
                let v = topic_config::validate(&c.name, v)
                    .map_err(|e| (ResponseError::InvalidConfig, e.0))?;
                configs.insert(c.name.to_string(), v);
            }
            topic_config::validate_set(&configs)
                .map_err(|e| (ResponseError::InvalidConfig, e.0))?;
            if !req.validate_only {
                quota.record(f64::from(num_partitions.max(0))).map_err(|_| {
                    (
                        ResponseError::ThrottlingQuotaExceeded,
                        crate::quota::THROTTLING_QUOTA_EXCEEDED.to_string(),
                    )
                })?;
            }
            let assignment = (!t.assignments.is_empty()).then(|| {
                t.assignments
                    .iter()
                    .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
                    .collect()
            });
            ctx.metadata
                .create(crate::metadata::NewTopic {
                    name: name.clone(),
                    partitions: num_partitions,
                    replication_factor: if rf == -1 {
                        ctx.config.default_replication_factor
                    } else {
                        i32::from(rf)
                    },
                    assignment,
                    configs,
                    validate_only: req.validate_only,
                    wait,
                })
                .await
        }
        .await;
        match outcome {
            Ok(topic) => {
                result.topic_id = if version >= 7 && !req.validate_only {
                    topic.id
                } else {
                    Default::default()
                };
                result.num_partitions = topic.partitions;
                result.replication_factor = topic.replication_factor;
                if version >= 5 {
                    result.configs = Some(
                        topic_config::effective(
                            &topic.configs,
                            &ctx.config,
                            &ctx.metadata.broker_configs(),
                        )
                        .into_iter()
                        .map(|c| {
                            CreatableTopicConfigs::default()
                                .with_name(sb(c.def.name))
                                .with_value(Some(sb(c.value)))
                                .with_config_source(c.source as i8)
                        })
                        .collect(),
                    );
                }
            }
            Err((code, message)) => {
                result.error_code = code.code();
                if version >= 1 {
                    result.error_message = Some(sb(message));
                }
            }
        }
        results.push(result);
    }
    rc.throttle(quota.throttle_ms());
    Some(CreateTopicsResponse::default().with_topics(results))
}

pub async fn delete_topics(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: DeleteTopicsRequest,
) -> Option<DeleteTopicsResponse> {
    // v6+ names topics by name or id; older versions by name only.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let wait = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 30_000) as u64);
    // controller_mutation_rate (KIP-599): strict from v5, permissive before; a topic counts
    // its partitions.
    let mut quota = ctx
        .quotas
        .controller_mutation(&rc.principal, rc.client_id(), version >= 5);
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let r = {
            let mut r = DeletableTopicResult::default();
            let resolved = match &name {
                Some(n) => ctx
                    .metadata
                    .topic(n)
                    .map(|t| (t.name.to_string(), t.id))
                    .ok_or(ResponseError::UnknownTopicOrPartition),
                None => ctx
                    .metadata
                    .topic_by_id(&id)
                    .map(|t| (t.name.to_string(), t.id))
                    .ok_or(ResponseError::UnknownTopicId),
            };
            r.name = name.as_deref().map(topic_name);
            r.topic_id = id;
            let resolved = resolved.and_then(|(n, tid)| {
                let partitions = ctx.metadata.topic(&n).map_or(0, |t| t.partitions.len());
                quota
                    .record(partitions as f64)
                    .map(|_| (n, tid))
                    .map_err(|_| ResponseError::ThrottlingQuotaExceeded)
            });
            let deleted = match resolved {
                Ok((n, tid)) => ctx.metadata.delete(&n, wait).await.map(|_| (n, tid)),
                Err(e) => Err(e),
            };
            match deleted {
                Ok((n, tid)) => {
                    // Its share partitions' delivery state goes with it (ids are never
                    // reused, so other brokers' leftovers are never read again).
                    crate::storage::offload::blocking(|| ctx.share_partitions.remove_topic(tid));
                    r.name = Some(topic_name(&n));
                    if version >= 6 {
                        r.topic_id = tid;
                    }
                }
                Err(code) => {
                    r.error_code = code.code();
                    if version >= 5 {
                        r.error_message = Some(sb(code.description()));
                    }
                }
            }
            r
        };
        responses.push(r);
    }
    rc.throttle(quota.throttle_ms());
    Some(DeleteTopicsResponse::default().with_responses(responses))
}

pub async fn create_partitions(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: CreatePartitionsRequest,
) -> Option<CreatePartitionsResponse> {
    let records: usize = req
        .topics
        .iter()
        .map(|t| {
            let current = ctx
                .metadata
                .topic(t.name.0.as_str())
                .map_or(0, |tp| tp.partitions.len() as i64);
            (i64::from(t.count) - current).max(0) as usize
        })
        .sum();
    let excessive = records > crate::metadata::MAX_RECORDS_PER_ADMIN_REQUEST;
    if excessive {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), records, "CreatePartitions refused: excessively large batch operation");
    }
    let wait = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 30_000) as u64);
    let clustered = ctx.metadata.cluster().is_some();
    // controller_mutation_rate (KIP-599): strict from v3, permissive before; the new
    // partitions count.
    let mut quota = ctx
        .quotas
        .controller_mutation(&rc.principal, rc.client_id(), version >= 3);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            // A cluster checks manual placements against its brokers (Metadata::grow).
            let bad_assignment = !clustered
                && t.assignments.as_ref().is_some_and(|a| {
                    a.iter()
                        .any(|x| x.broker_ids.len() != 1 || x.broker_ids[0].0 != ctx.config.node_id)
                });
            let manual = t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            let outcome = if excessive {
                Err((
                    ResponseError::PolicyViolation,
                    crate::metadata::EXCESSIVE_BATCH.to_string(),
                ))
            } else if bad_assignment {
                Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "every new partition must be assigned to [{}] on this single-node cluster",
                        ctx.config.node_id
                    ),
                ))
            } else {
                let current = ctx
                    .metadata
                    .topic(t.name.0.as_str())
                    .map_or(0, |tp| tp.partitions.len() as i64);
                let new = (i64::from(t.count) - current).max(0) as f64;
                if !req.validate_only && current > 0 && quota.record(new).is_err() {
                    Err((
                        ResponseError::ThrottlingQuotaExceeded,
                        crate::quota::THROTTLING_QUOTA_EXCEEDED.to_string(),
                    ))
                } else {
                    ctx.metadata
                        .grow(t.name.0.as_str(), t.count, manual, req.validate_only, wait)
                        .await
                }
            };
            if let Err((code, message)) = outcome {
                r.error_code = code.code();
                r.error_message = Some(sb(message));
            }
            r
        };
        results.push(r);
    }
    rc.throttle(quota.throttle_ms());
    Some(CreatePartitionsResponse::default().with_results(results))
}

/// DeleteRecords: moves each partition's log start offset (low watermark) and frees the
/// batches below it. Offset -1 means the high watermark, as in Kafka.
pub async fn delete_records(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: DeleteRecordsRequest,
) -> Option<DeleteRecordsResponse> {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = ctx.metadata.topic(&t.name.0);
        // Kafka refuses to delete records of a topic whose cleanup.policy lacks `delete`.
        let deletable = topic.as_ref().is_some_and(|tp| {
            let dynamic = ctx.metadata.broker_configs();
            let policy =
                topic_config::value_of(&tp.configs, "cleanup.policy", &ctx.config, &dynamic);
            topic_config::split_list(&policy)
                .iter()
                .any(|p| p == "delete")
        });
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let result = match topic
                .as_ref()
                .ok_or(ResponseError::UnknownTopicOrPartition)
                .and_then(|tp| ctx.metadata.led_partition(tp, p.partition_index))
            {
                Err(e) => Err(e),
                Ok(_) if !deletable => Err(ResponseError::PolicyViolation),
                Ok(part) => {
                    let part = part.clone();
                    let offset = p.offset;
                    // Reads and deletes in RocksDB block: keep them off the async workers.
                    tokio::task::spawn_blocking(move || part.delete_records_before(offset))
                        .await
                        .unwrap_or(Err(ResponseError::UnknownServerError))
                }
            };
            let mut out = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match result {
                Ok(lw) => {
                    out.low_watermark = lw;
                    tracing::info!(topic = %t.name.0, partition = p.partition_index, low_watermark = lw, "deleted records");
                }
                Err(e) => {
                    tracing::warn!(
                        peer = %rc.peer,
                        client_id = rc.client_id(),
                        topic = %t.name.0,
                        partition = p.partition_index,
                        offset = p.offset,
                        error = ?e,
                        "DeleteRecords refused"
                    );
                    out.error_code = e.code();
                }
            }
            partitions.push(out);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    Some(DeleteRecordsResponse::default().with_topics(topics))
}
