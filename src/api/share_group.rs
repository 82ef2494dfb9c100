//! ShareGroupHeartbeat and ShareGroupDescribe: KIP-932 share group membership. The state
//! machine is `share::group`; ACLs are checked in `api::authorize`.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::share_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use super::{sb, topic_name};
use crate::context::Context;
use crate::share::assignor::Tp;
use crate::share::group::{ShareGroups, ShareHeartbeat};

fn by_topic(parts: &BTreeSet<Tp>) -> BTreeMap<Uuid, Vec<i32>> {
    let mut out: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        out.entry(*t).or_default().push(*p);
    }
    out
}

/// True when `group_id` names a classic, KIP-848 consumer or streams group: such an id is
/// not a share group's, whatever the request (Kafka keeps one group per id, of one type).
pub(crate) fn other_group_type(ctx: &Context, group_id: &str) -> bool {
    ctx.groups.exists(group_id)
        || ctx.consumer_groups.exists(group_id)
        || ctx.streams_groups.exists(group_id)
}

pub async fn heartbeat(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: ShareGroupHeartbeatRequest,
) -> Option<ShareGroupHeartbeatResponse> {
    let hb = ShareHeartbeat {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        client_id: rc.client_id().to_string(),
        client_host: format!("/{}", rc.peer.ip()),
    };
    let mut resp = ShareGroupHeartbeatResponse::default();
    // As Kafka: the request's own checks come before the coordinator's.
    let result = match ShareGroups::validate(&hb) {
        Err(e) => Err(e),
        Ok(()) => match ctx.coordinator_error(0, &hb.group_id) {
            Some(e) => Err((e, None)),
            None => ctx
                .share_groups
                .heartbeat(&ctx.metadata, hb, |g| other_group_type(ctx, g)),
        },
    };
    match result {
        Ok(r) => {
            resp.member_id = Some(sb(r.member_id));
            resp.member_epoch = r.member_epoch;
            resp.heartbeat_interval_ms = r.heartbeat_interval_ms;
            resp.assignment = r.assignment.map(|parts| {
                Assignment::default().with_topic_partitions(
                    by_topic(&parts)
                        .into_iter()
                        .map(|(id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            });
        }
        Err((e, message)) => {
            tracing::debug!(peer = %rc.peer, client_id = rc.client_id(), group = %req.group_id.0.as_str(), member = %req.member_id.as_str(), error = ?e, "ShareGroupHeartbeat refused");
            // Kafka's error answer carries the code and message only (epoch 0, no id).
            resp.error_code = e.code();
            resp.error_message = message.map(sb);
        }
    }
    Some(resp)
}

fn described(names: &BTreeMap<Uuid, String>, parts: &BTreeSet<Tp>) -> DescribedAssignment {
    DescribedAssignment::default().with_topic_partitions(
        by_topic(parts)
            .into_iter()
            .map(|(id, ps)| {
                DescribedTopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(topic_name(names.get(&id).map_or("", |s| s.as_str())))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

pub async fn describe(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: ShareGroupDescribeRequest,
) -> Option<ShareGroupDescribeResponse> {
    let names: BTreeMap<Uuid, String> = ctx
        .metadata
        .topics()
        .iter()
        .map(|t| (t.id, t.name.to_string()))
        .collect();
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let mut d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if let Some(e) = ctx.coordinator_error(0, id.0.as_str()) {
                d.error_code = e.code();
                return d;
            }
            let Some(g) = ctx.share_groups.describe(id.0.as_str()) else {
                d.error_code = ResponseError::GroupIdNotFound.code();
                d.error_message = Some(sb(if other_group_type(ctx, id.0.as_str()) {
                    format!("Group {} is not a share group.", id.0.as_str())
                } else {
                    format!("Group {} not found.", id.0.as_str())
                }));
                return d;
            };
            if req.include_authorized_operations {
                d.authorized_operations = super::cluster::GROUP_OPERATIONS;
            }
            d.group_state = sb(g.state);
            d.group_epoch = g.group_epoch;
            d.assignment_epoch = g.assignment_epoch;
            d.assignor_name = sb(g.assignor);
            d.members = g
                .members
                .iter()
                .map(|m| {
                    DescribedMember::default()
                        .with_member_id(sb(m.member_id.clone()))
                        .with_rack_id(m.rack_id.clone().map(sb))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(sb(m.client_id.clone()))
                        .with_client_host(sb(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.subscribed_topics.iter().map(|t| topic_name(t)).collect(),
                        )
                        .with_assignment(described(&names, &m.assigned))
                })
                .collect();
            d
        })
        .collect();
    Some(ShareGroupDescribeResponse::default().with_groups(groups))
}
