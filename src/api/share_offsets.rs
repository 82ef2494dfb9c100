//! DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets (KIP-932):
//! what `kafka-share-groups --describe`, `--reset-offsets` and `--delete-offsets` use. A
//! share group's "offset" for a partition is its share-partition start offset; the state is
//! `share::manager`'s. READ, DELETE and DESCRIBE on the group are checked in
//! `api::authorize`; the topics' here, per topic.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::authorize::Authz;
use super::{sb, topic_name, RequestContext};
use crate::context::Context;
use crate::security::acl::Operation;

/// Kafka's message for an unknown topic-partition (`Errors.UNKNOWN_TOPIC_OR_PARTITION`).
const UNKNOWN_TP: &str = "This server does not host this topic-partition.";

fn allowed(az: Option<&Authz>, op: Operation, topic: &str) -> bool {
    az.is_none_or(|az| az.topic(op, topic))
}

/// Whether `group` is a share group this broker knows: with members, or with share state.
fn known_share_group(ctx: &Context, group: &str) -> bool {
    ctx.share_groups.exists(group) || !ctx.share_partitions.partitions_of(group).is_empty()
}

pub async fn describe(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: DescribeShareGroupOffsetsRequest,
) -> Option<DescribeShareGroupOffsetsResponse> {
    let az = Authz::for_request(ctx, rc);
    let groups = crate::storage::offload::blocking(|| {
        req.groups
            .into_iter()
            .map(|g| describe_group(ctx, az.as_ref(), version, g))
            .collect()
    });
    Some(DescribeShareGroupOffsetsResponse::default().with_groups(groups))
}

fn describe_group(
    ctx: &Context,
    az: Option<&Authz>,
    version: i16,
    g: describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup,
) -> DescribeShareGroupOffsetsResponseGroup {
    let group = g.group_id.0.to_string();
    let mut out = DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id);
    if let Some(e) = ctx.coordinator_error(0, &group) {
        out.error_code = e.code();
        return out;
    }
    if super::share_group::other_group_type(ctx, &group) {
        out.error_code = ResponseError::GroupIdNotFound.code();
        out.error_message = Some(sb(format!("Group {group} is not a share group.")));
        return out;
    }
    // The partitions asked for, or every one the group has state for.
    let wanted: Vec<(String, Vec<i32>)> = match g.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic_name.0.to_string(), t.partitions))
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (id, p) in ctx.share_partitions.partitions_of(&group) {
                if let Some(t) = ctx.metadata.topic_by_id(&id) {
                    by_topic.entry(t.name.to_string()).or_default().push(p);
                }
            }
            by_topic.into_iter().collect()
        }
    };
    let lag_asked = version >= 1;
    out.topics = wanted
        .into_iter()
        .map(|(name, partitions)| {
            let topic = ctx.metadata.topic(&name);
            let readable = allowed(az, Operation::Describe, &name);
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    let mut d = DescribeShareGroupOffsetsResponsePartition::default()
                        .with_partition_index(p)
                        .with_start_offset(-1)
                        .with_leader_epoch(-1)
                        .with_lag(-1);
                    let Some(t) = topic.as_ref().filter(|t| t.partition(p).is_some()) else {
                        d.error_code = ResponseError::UnknownTopicOrPartition.code();
                        d.error_message = Some(sb(UNKNOWN_TP));
                        return d;
                    };
                    if !readable {
                        d.error_code = ResponseError::TopicAuthorizationFailed.code();
                        return d;
                    }
                    if let Some((start, done)) = ctx.share_partitions.summary(&group, t.id, p) {
                        d.start_offset = start;
                        d.leader_epoch = t.placement(p).map_or(-1, |pl| pl.leader_epoch);
                        if lag_asked {
                            // KIP-1226: records from the start offset to the high watermark
                            // not yet done with.
                            if let Some(log) = t.partition(p) {
                                d.lag = (log.high_watermark() - start - done).max(0);
                            }
                        }
                    }
                    d
                })
                .collect();
            DescribeShareGroupOffsetsResponseTopic::default()
                .with_topic_name(topic_name(&name))
                .with_topic_id(topic.as_ref().map_or(uuid::Uuid::nil(), |t| t.id))
                .with_partitions(partitions)
        })
        .collect();
    out
}

/// A refusal of the whole request: Kafka's error and its message.
type Refusal = (ResponseError, Option<String>);

/// The group-level checks AlterShareGroupOffsets and DeleteShareGroupOffsets share, in
/// Kafka's order: this broker coordinates the group, it is not another type of group, it
/// exists (delete only; alter may name a group that has not read yet), and it is empty
/// (Kafka's throwIfShareGroupIsNotEmpty).
fn check_empty_share_group(ctx: &Context, group: &str, must_exist: bool) -> Result<(), Refusal> {
    if let Some(e) = ctx.coordinator_error(0, group) {
        return Err((e, None));
    }
    if super::share_group::other_group_type(ctx, group) {
        let message = format!("Group {group} is not a share group.");
        return Err((ResponseError::GroupIdNotFound, Some(message)));
    }
    if must_exist && !known_share_group(ctx, group) {
        let message = format!("Group {group} not found.");
        return Err((ResponseError::GroupIdNotFound, Some(message)));
    }
    if ctx.share_groups.has_members(group) {
        let message = ResponseError::NonEmptyGroup.description().to_string();
        return Err((ResponseError::NonEmptyGroup, Some(message)));
    }
    Ok(())
}

pub async fn alter(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: AlterShareGroupOffsetsRequest,
) -> Option<AlterShareGroupOffsetsResponse> {
    let group = req.group_id.0.to_string();
    if let Err((e, message)) = check_empty_share_group(ctx, &group, false) {
        return Some(
            AlterShareGroupOffsetsResponse::default()
                .with_error_code(e.code())
                .with_error_message(message.map(sb)),
        );
    }
    let az = Authz::for_request(ctx, rc);
    let responses = crate::storage::offload::blocking(|| {
        req.topics
            .iter()
            .map(|t| {
                let name = t.topic_name.0.to_string();
                let topic = ctx.metadata.topic(&name);
                let readable = allowed(az.as_ref(), Operation::Read, &name);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut r = AlterShareGroupOffsetsResponsePartition::default()
                            .with_partition_index(p.partition_index);
                        match topic
                            .as_ref()
                            .filter(|tp| tp.partition(p.partition_index).is_some())
                        {
                            None => {
                                r.error_code = ResponseError::UnknownTopicOrPartition.code();
                                r.error_message = Some(sb(UNKNOWN_TP));
                            }
                            Some(_) if !readable => {
                                r.error_code = ResponseError::TopicAuthorizationFailed.code();
                            }
                            Some(tp) => {
                                ctx.share_partitions.reset(
                                    &group,
                                    tp.id,
                                    p.partition_index,
                                    p.start_offset,
                                );
                            }
                        }
                        r
                    })
                    .collect();
                AlterShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(topic_name(&name))
                    .with_topic_id(topic.as_ref().map_or(uuid::Uuid::nil(), |tp| tp.id))
                    .with_partitions(partitions)
            })
            .collect()
    });
    Some(AlterShareGroupOffsetsResponse::default().with_responses(responses))
}

pub async fn delete(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: DeleteShareGroupOffsetsRequest,
) -> Option<DeleteShareGroupOffsetsResponse> {
    let group = req.group_id.0.to_string();
    if let Err((e, message)) = check_empty_share_group(ctx, &group, true) {
        return Some(
            DeleteShareGroupOffsetsResponse::default()
                .with_error_code(e.code())
                .with_error_message(message.map(sb)),
        );
    }
    let az = Authz::for_request(ctx, rc);
    let responses = crate::storage::offload::blocking(|| {
        let with_state = ctx.share_partitions.partitions_of(&group);
        req.topics
            .iter()
            .map(|t| {
                let name = t.topic_name.0.to_string();
                let topic = ctx.metadata.topic(&name);
                let mut r = DeleteShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(topic_name(&name))
                    .with_topic_id(topic.as_ref().map_or(uuid::Uuid::nil(), |tp| tp.id));
                match topic {
                    Some(tp) if with_state.iter().any(|(id, _)| *id == tp.id) => {
                        if allowed(az.as_ref(), Operation::Read, &name) {
                            ctx.share_partitions.remove_group_topic(&group, tp.id);
                        } else {
                            r.error_code = ResponseError::TopicAuthorizationFailed.code();
                        }
                    }
                    _ => {
                        r.error_code = ResponseError::UnknownTopicOrPartition.code();
                        r.error_message = Some(sb("There is no offset information to delete."));
                    }
                }
                r
            })
            .collect()
    });
    Some(DeleteShareGroupOffsetsResponse::default().with_responses(responses))
}
