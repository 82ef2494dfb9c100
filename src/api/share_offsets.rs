//! DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets (KIP-932):
//! what `kafka-share-groups --describe`, `--reset-offsets` and `--delete-offsets` use. A
//! share group's "offset" for a partition is its share-partition start offset; the state is
//! `share::manager`'s. READ, DELETE and DESCRIBE on the group are checked in
//! `api::authorize`; the topics' here, per topic.

use std::collections::{BTreeMap, HashMap};

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
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let group = g.group_id.0.to_string();
        let mut out =
            DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id.clone());
        if let Some(e) = ctx.coordinator_error(0, &group) {
            out.error_code = e.code();
            groups.push(out);
            continue;
        }
        if super::share_group::other_group_type(ctx, &group) {
            out.error_code = ResponseError::GroupIdNotFound.code();
            out.error_message = Some(sb(format!("Group {group} is not a share group.")));
            groups.push(out);
            continue;
        }
        let listing_all = g.topics.is_none();
        let wanted = match g.topics {
            Some(topics) => topics
                .into_iter()
                .map(|t| (t.topic_name.0.to_string(), t.partitions))
                .collect(),
            None => crate::storage::offload::blocking(|| every_partition_of(ctx, &group)),
        };
        let states = share_states(ctx, &group, &wanted).await;
        out.topics = describe_topics(ctx, az.as_ref(), version, wanted, &states, listing_all);
        groups.push(out);
    }
    Some(DescribeShareGroupOffsetsResponse::default().with_groups(groups))
}

/// (topic id, partition) -> (start offset, records done from it on) of a share group.
type States = HashMap<(uuid::Uuid, i32), (i64, i64)>;

/// Every partition the group may have state for: those this broker has state for and, in
/// a cluster (where the state is with the share coordinators), every partition of the
/// topics it was assigned while this broker coordinated it.
fn every_partition_of(ctx: &Context, group: &str) -> Vec<(String, Vec<i32>)> {
    let mut by_topic: BTreeMap<String, std::collections::BTreeSet<i32>> = BTreeMap::new();
    for (id, p) in ctx.share_partitions.partitions_of(group) {
        if let Some(t) = ctx.metadata.topic_by_id(&id) {
            by_topic.entry(t.name.to_string()).or_default().insert(p);
        }
    }
    if ctx.share_partitions.remote().is_some() {
        for name in ctx.share_groups.known_topics(group) {
            if let Some(t) = ctx.metadata.topic(&name) {
                by_topic
                    .entry(name)
                    .or_default()
                    .extend(0..t.placements.len() as i32);
            }
        }
    }
    by_topic
        .into_iter()
        .map(|(t, ps)| (t, ps.into_iter().collect()))
        .collect()
}

/// The share states of the wanted partitions that have one: from the store and memory on a
/// single node, from the share coordinators in a cluster.
async fn share_states(ctx: &Context, group: &str, wanted: &[(String, Vec<i32>)]) -> States {
    let keys: Vec<(uuid::Uuid, i32)> = wanted
        .iter()
        .filter_map(|(name, ps)| Some((ctx.metadata.topic(name)?, ps)))
        .flat_map(|(t, ps)| {
            ps.iter()
                .filter(|p| t.partition(**p).is_some())
                .map(|p| (t.id, *p))
                .collect::<Vec<_>>()
        })
        .collect();
    let Some(remote) = ctx.share_partitions.remote() else {
        return crate::storage::offload::blocking(|| {
            keys.into_iter()
                .filter_map(|(t, p)| Some(((t, p), ctx.share_partitions.summary(group, t, p)?)))
                .collect()
        });
    };
    let mut states = States::new();
    for (t, p) in keys {
        match remote.summary(&(group.to_string(), t, p)).await {
            Ok(Some((_, start, done))) => {
                states.insert((t, p), (start, i64::from(done.max(0))));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(group, topic_id = %t, partition = p, error = ?e, "a share partition's state could not be read for describe");
            }
        }
    }
    states
}

fn describe_topics(
    ctx: &Context,
    az: Option<&Authz>,
    version: i16,
    wanted: Vec<(String, Vec<i32>)>,
    states: &States,
    listing_all: bool,
) -> Vec<DescribeShareGroupOffsetsResponseTopic> {
    let lag_asked = version >= 1;
    wanted
        .into_iter()
        .filter_map(|(name, partitions)| {
            let topic = ctx.metadata.topic(&name);
            let readable = allowed(az, Operation::Describe, &name);
            let partitions: Vec<_> = partitions
                .into_iter()
                .filter(|p| {
                    !listing_all
                        || topic
                            .as_ref()
                            .is_some_and(|t| states.contains_key(&(t.id, *p)))
                })
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
                    if let Some(&(start, done)) = states.get(&(t.id, p)) {
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
            if listing_all && partitions.is_empty() {
                return None;
            }
            Some(
                DescribeShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(topic_name(&name))
                    .with_topic_id(topic.as_ref().map_or(uuid::Uuid::nil(), |t| t.id))
                    .with_partitions(partitions),
            )
        })
        .collect()
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

/// A reset to make: (topic slot, partition slot in the answer), (topic id, partition,
/// start offset).
type Reset = ((usize, usize), (uuid::Uuid, i32, i64));

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
    let mut resets: Vec<Reset> = Vec::new();
    let mut responses: Vec<AlterShareGroupOffsetsResponseTopic> = req
        .topics
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let name = t.topic_name.0.to_string();
            let topic = ctx.metadata.topic(&name);
            let readable = allowed(az.as_ref(), Operation::Read, &name);
            let partitions = t
                .partitions
                .iter()
                .enumerate()
                .map(|(pi, p)| {
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
                            resets.push(((ti, pi), (tp.id, p.partition_index, p.start_offset)));
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
        .collect();
    match ctx.share_partitions.remote() {
        None => crate::storage::offload::blocking(|| {
            for (_, (t, p, start)) in &resets {
                ctx.share_partitions.reset(&group, *t, *p, *start);
            }
        }),
        Some(remote) => {
            // The share coordinator starts each over in a new state epoch, which fences
            // the leaders' writes of the old state.
            for ((ti, pi), (t, p, start)) in resets {
                let key = (group.clone(), t, p);
                let done = match remote.summary(&key).await {
                    Ok(state) => {
                        let epoch = state.map_or(0, |(epoch, _, _)| epoch);
                        remote
                            .initialize(&key, epoch.saturating_add(1), start.max(0))
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = done {
                    let r = &mut responses[ti].partitions[pi];
                    r.error_code = e.code();
                    r.error_message = Some(sb(e.description()));
                }
            }
        }
    }
    Some(AlterShareGroupOffsetsResponse::default().with_responses(responses))
}

pub async fn delete(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: DeleteShareGroupOffsetsRequest,
) -> Option<DeleteShareGroupOffsetsResponse> {
    let group = req.group_id.0.to_string();
    let remote = ctx.share_partitions.remote();
    // In a cluster the state is with the share coordinators: whether the group has any is
    // known once they are asked.
    if let Err((e, message)) = check_empty_share_group(ctx, &group, remote.is_none()) {
        return Some(
            DeleteShareGroupOffsetsResponse::default()
                .with_error_code(e.code())
                .with_error_message(message.map(sb)),
        );
    }
    let az = Authz::for_request(ctx, rc);
    if let Some(remote) = remote {
        return Some(delete_at_coordinators(ctx, az.as_ref(), remote, &group, &req).await);
    }
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

/// DeleteShareGroupOffsets in a cluster: every partition of each topic that has state at
/// its share coordinator loses it.
async fn delete_at_coordinators(
    ctx: &Context,
    az: Option<&Authz>,
    remote: &crate::share::persister::RemotePersister,
    group: &str,
    req: &DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let mut responses = Vec::with_capacity(req.topics.len());
    let mut any_state = false;
    for t in &req.topics {
        let name = t.topic_name.0.to_string();
        let topic = ctx.metadata.topic(&name);
        let mut r = DeleteShareGroupOffsetsResponseTopic::default()
            .with_topic_name(topic_name(&name))
            .with_topic_id(topic.as_ref().map_or(uuid::Uuid::nil(), |tp| tp.id));
        let mut with_state = Vec::new();
        for p in topic.iter().flat_map(|tp| 0..tp.placements.len() as i32) {
            let key = (
                group.to_string(),
                topic.as_ref().map_or(uuid::Uuid::nil(), |tp| tp.id),
                p,
            );
            match remote.summary(&key).await {
                Ok(Some(_)) => with_state.push(key),
                Ok(None) => {}
                Err(e) => {
                    r.error_code = e.code();
                    r.error_message = Some(sb(e.description()));
                }
            }
        }
        if r.error_code == 0 && with_state.is_empty() {
            r.error_code = ResponseError::UnknownTopicOrPartition.code();
            r.error_message = Some(sb("There is no offset information to delete."));
        } else if r.error_code == 0 && !allowed(az, Operation::Read, &name) {
            r.error_code = ResponseError::TopicAuthorizationFailed.code();
        } else if r.error_code == 0 {
            any_state = true;
            for key in &with_state {
                if let Err(e) = remote.delete(key).await {
                    r.error_code = e.code();
                    r.error_message = Some(sb(e.description()));
                }
            }
        }
        responses.push(r);
    }
    if !any_state
        && !ctx.share_groups.exists(group)
        && responses
            .iter()
            .all(|r| r.error_code == ResponseError::UnknownTopicOrPartition.code())
    {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code())
            .with_error_message(Some(sb(format!("Group {group} not found."))));
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(responses)
}
