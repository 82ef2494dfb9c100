//! OffsetCommit, OffsetFetch and OffsetDelete: committed offsets of consumer groups.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use super::{sb, topic_name};
use crate::clock::now_ms;
use crate::context::Context;
use crate::group::{CommittedOffset, OFFSET_METADATA_MAX_BYTES};

pub async fn offset_commit(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: OffsetCommitRequest,
) -> Option<OffsetCommitResponse> {
    let group_id = req.group_id.0.to_string();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    // A KIP-848 group checks the member's epoch; a classic group its generation.
    let committed: Vec<(Uuid, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            let id = if version >= 10 {
                Some(t.topic_id)
            } else {
                ctx.metadata.topic(t.name.0.as_str()).map(|tp| tp.id)
            };
            t.partitions
                .iter()
                .filter_map(move |p| id.map(|id| (id, p.partition_index)))
        })
        .collect();
    let check = crate::group::CommitCheck {
        group_id: &group_id,
        generation_or_epoch: req.generation_id_or_member_epoch,
        member_id: req.member_id.as_str(),
        instance_id: &instance,
        partitions: &committed,
        topic_name: &|id| ctx.metadata.topic_by_id(id).map(|t| t.name.to_string()),
        transactional: false,
        version,
    };
    let now = now_ms();
    let mut to_commit = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = if version >= 10 {
            ctx.metadata.topic_by_id(&t.topic_id)
        } else {
            ctx.metadata.topic(t.name.0.as_str())
        };
        let unknown = if version >= 10 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let error = if topic
                    .as_ref()
                    .and_then(|tp| tp.partition(p.partition_index))
                    .is_none()
                {
                    Some(unknown)
                } else if p
                    .committed_metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
                {
                    Some(ResponseError::OffsetMetadataTooLarge)
                } else {
                    None
                };
                if error.is_none() {
                    if let Some(tp) = &topic {
                        to_commit.push((
                            tp.name.to_string(),
                            p.partition_index,
                            CommittedOffset {
                                offset: p.committed_offset,
                                leader_epoch: if version >= 6 {
                                    p.committed_leader_epoch
                                } else {
                                    -1
                                },
                                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                                commit_timestamp_ms: now,
                            },
                        ));
                    }
                }
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error.map_or(0, |e| e.code()))
            })
            .collect::<Vec<_>>();
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    // Kafka's order: the group's verdict first (every partition gets it), then each
    // partition's own; the check and the write happen with the group held.
    let result = match ctx.coordinator_error(0, &group_id) {
        Some(e) => Err(e),
        // A share group's id is not a consumer group's: Kafka's ShareGroup refuses offset
        // commits, fetches and deletes with GROUP_ID_NOT_FOUND.
        None if ctx.share_groups.exists(&group_id) => Err(ResponseError::GroupIdNotFound),
        None => crate::group::commit_checked(
            &ctx.groups,
            &ctx.consumer_groups,
            &ctx.streams_groups,
            &check,
            || {
                if to_commit.is_empty() {
                    Ok(None)
                } else {
                    ctx.groups.offsets.commit(&group_id, &to_commit)
                }
            },
        ),
    };
    let (group_error, write_error) = match result {
        Err(e) => (Some(e), None),
        Ok(Err(e)) => (None, Some(e)),
        Ok(Ok(None)) => (None, None),
        // Cluster mode: answered once the in-sync replicas of the group's partition of
        // __consumer_offsets have the commit.
        Ok(Ok(Some(write))) => (None, crate::group::journal::settle(write).await.err()),
    };
    for t in topics.iter_mut() {
        for p in t.partitions.iter_mut() {
            if let Some(e) = group_error {
                p.error_code = e.code();
            } else if let (Some(e), 0) = (write_error, p.error_code) {
                p.error_code = e.code();
            }
        }
    }
    Some(OffsetCommitResponse::default().with_topics(topics))
}

/// One partition's committed offset, or Kafka's "none" (-1, empty metadata). With
/// require_stable, a partition whose offset waits in an open transaction answers
/// UNSTABLE_OFFSET_COMMIT, so the consumer retries instead of starting from a stale one.
fn lookup(
    ctx: &Context,
    group: &str,
    topic: &str,
    partition: i32,
    unstable: &std::collections::BTreeSet<(String, i32)>,
) -> (i64, i32, Option<String>, i16) {
    if unstable.contains(&(topic.to_string(), partition)) {
        return (
            -1,
            -1,
            Some(String::new()),
            ResponseError::UnstableOffsetCommit.code(),
        );
    }
    match ctx.groups.offsets.fetch(group, topic, partition) {
        // Kafka stores a null commit metadata as "" and returns it so.
        Ok(Some(c)) => (
            c.offset,
            c.leader_epoch,
            Some(c.metadata.unwrap_or_default()),
            0,
        ),
        Ok(None) => (-1, -1, Some(String::new()), 0),
        Err(e) => (-1, -1, Some(String::new()), e.code()),
    }
}

/// (topic, partitions) requested, or every committed one when the request says "all".
fn wanted(
    ctx: &Context,
    group: &str,
    topics: Option<Vec<(String, Uuid, Vec<i32>)>>,
) -> Result<Vec<(String, Uuid, Vec<i32>)>, ResponseError> {
    if let Some(e) = ctx.coordinator_error(0, group) {
        return Err(e);
    }
    if ctx.share_groups.exists(group) {
        return Err(ResponseError::GroupIdNotFound);
    }
    if let Some(t) = topics {
        return Ok(t);
    }
    let mut out: Vec<(String, Uuid, Vec<i32>)> = Vec::new();
    for (topic, partition, _) in ctx.groups.offsets.fetch_all(group)? {
        match out.last_mut() {
            Some((t, _, ps)) if *t == topic => ps.push(partition),
            _ => {
                let id = ctx.metadata.topic(&topic).map(|t| t.id).unwrap_or_default();
                out.push((topic, id, vec![partition]));
            }
        }
    }
    Ok(out)
}

pub async fn offset_fetch(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: OffsetFetchRequest,
) -> Option<OffsetFetchResponse> {
    let mut resp = OffsetFetchResponse::default();
    let unstable_of = |group: &str| {
        if req.require_stable {
            // A single broker holds them in the transaction, a cluster's group coordinator
            // beside the group.
            let mut held = ctx.txns.pending_partitions(group);
            held.extend(ctx.groups.offsets.txn_pending_partitions(group));
            held
        } else {
            Default::default()
        }
    };
    if version < 8 {
        let group = req.group_id.0.to_string();
        let unstable = unstable_of(&group);
        let requested = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), Uuid::nil(), t.partition_indexes))
                .collect()
        });
        match wanted(ctx, &group, requested) {
            Ok(topics) => {
                resp.topics = topics
                    .into_iter()
                    .map(|(topic, _, partitions)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(topic_name(&topic))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|p| {
                                        let (offset, epoch, metadata, code) =
                                            lookup(ctx, &group, &topic, p, &unstable);
                                        let mut r = OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_metadata(metadata.map(sb))
                                            .with_error_code(code);
                                        if version >= 5 {
                                            r.committed_leader_epoch = epoch;
                                        }
                                        r
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
            Err(e) => {
                if version >= 2 {
                    resp.error_code = e.code();
                }
            }
        }
        return Some(resp);
    }
    resp.groups = req
        .groups
        .into_iter()
        .map(|g| {
            let group = g.group_id.0.to_string();
            let requested = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| {
                        let name = if version >= 10 {
                            ctx.metadata
                                .topic_by_id(&t.topic_id)
                                .map(|tp| tp.name.to_string())
                                .unwrap_or_default()
                        } else {
                            t.name.0.to_string()
                        };
                        (name, t.topic_id, t.partition_indexes)
                    })
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id);
            let unstable = unstable_of(&group);
            // v9+: a KIP-848 or streams group checks the member's id and epoch (Kafka's
            // validateOffsetFetch); a classic group does not.
            if version >= 9 {
                let member = g.member_id.as_ref().map(|m| m.as_str());
                let checked = ctx
                    .consumer_groups
                    .check_fetch(&group, member, g.member_epoch)
                    .or_else(|| {
                        ctx.streams_groups
                            .check_fetch(&group, member, g.member_epoch)
                    });
                if let Some(Err(e)) = checked {
                    out.error_code = e.code();
                    return out;
                }
            }
            match wanted(ctx, &group, requested) {
                Ok(topics) => {
                    out.topics = topics
                        .into_iter()
                        .map(|(topic, id, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(topic_name(&topic))
                                .with_topic_id(id)
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|p| {
                                            // v10 names topics by id: one this broker does
                                            // not know is UNKNOWN_TOPIC_ID, as in Kafka.
                                            let (offset, epoch, metadata, code) =
                                                if version >= 10 && topic.is_empty() {
                                                    (
                                                        -1,
                                                        -1,
                                                        Some(String::new()),
                                                        ResponseError::UnknownTopicId.code(),
                                                    )
                                                } else {
                                                    lookup(ctx, &group, &topic, p, &unstable)
                                                };
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(metadata.map(sb))
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
                Err(e) => out.error_code = e.code(),
            }
            out
        })
        .collect();
    Some(resp)
}

pub async fn offset_delete(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: OffsetDeleteRequest,
) -> Option<OffsetDeleteResponse> {
    let group = req.group_id.0.to_string();
    let mut resp = OffsetDeleteResponse::default();
    if let Some(e) = ctx.coordinator_error(0, &group) {
        resp.error_code = e.code();
        return Some(resp);
    }
    // Whichever kind of group the id names, the topics it consumes keep their offsets.
    let modern = ctx
        .consumer_groups
        .subscribed_topics(&group)
        .or_else(|| ctx.streams_groups.subscribed_topics(&group));
    if !ctx.groups.exists(&group) && modern.is_none() {
        resp.error_code = ResponseError::GroupIdNotFound.code();
        return Some(resp);
    }
    let mut subscribed = ctx.groups.subscribed_topics(&group);
    subscribed.extend(modern.unwrap_or_default());
    let mut delete = Vec::new();
    resp.topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let error = if subscribed.contains(&name) {
                        Some(ResponseError::GroupSubscribedToTopic)
                    } else if ctx
                        .metadata
                        .topic(&name)
                        .and_then(|tp| tp.partition(p.partition_index).cloned())
                        .is_none()
                    {
                        Some(ResponseError::UnknownTopicOrPartition)
                    } else {
                        delete.push((name.clone(), p.partition_index));
                        None
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    if let Err(e) = ctx.groups.offsets.delete(&group, Some(&delete)) {
        resp.error_code = e.code();
    }
    Some(resp)
}
