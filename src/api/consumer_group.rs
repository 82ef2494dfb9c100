//! ConsumerGroupHeartbeat and ConsumerGroupDescribe: the KIP-848 consumer protocol. The
//! state machine is `group::consumer`.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use super::{sb, topic_name};
use crate::context::Context;
use crate::group::consumer::{Heartbeat, Tp};

fn by_topic(parts: &BTreeSet<Tp>) -> BTreeMap<Uuid, Vec<i32>> {
    let mut out: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        out.entry(*t).or_default().push(*p);
    }
    out
}

pub async fn heartbeat(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: ConsumerGroupHeartbeatRequest,
) -> Option<ConsumerGroupHeartbeatResponse> {
    if let Some(e) = ctx.coordinator_error(0, req.group_id.0.as_str()) {
        return Some(ConsumerGroupHeartbeatResponse::default().with_error_code(e.code()));
    }
    let group = req.group_id.0.to_string();
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    if ctx.groups.has_members(&group)
        || ctx.share_groups.exists(&group)
        || ctx.streams_groups.exists(&group)
    {
        resp.error_code = ResponseError::GroupIdNotFound.code();
        resp.error_message = Some(sb(format!("Group {group} is not a consumer group.")));
        return Some(resp);
    }
    let hb = Heartbeat {
        group_id: group.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned: req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
                .collect()
        }),
        client_id: rc.client_id().to_string(),
        client_host: format!("/{}", rc.peer.ip()),
    };
    let result = match ctx.consumer_groups.heartbeat(&ctx.metadata, hb) {
        // Cluster mode: answered once the change is on the in-sync replicas, so the member
        // never holds an epoch or partitions a new coordinator would not know.
        Ok((r, Some(write))) => crate::group::journal::settle(write)
            .await
            .map(|()| r)
            .map_err(|e| (e, None)),
        Ok((r, None)) => Ok(r),
        Err(e) => Err(e),
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
            tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), group = %group, member = %req.member_id.as_str(), error = ?e, "ConsumerGroupHeartbeat refused");
            resp.error_code = e.code();
            resp.error_message = message.map(sb);
            resp.member_epoch = -1;
        }
    }
    Some(resp)
}

fn described(ctx: &Context, parts: Option<&BTreeSet<Tp>>) -> DescribedAssignment {
    let names: BTreeMap<Uuid, String> = ctx
        .metadata
        .topics()
        .iter()
        .map(|t| (t.id, t.name.to_string()))
        .collect();
    DescribedAssignment::default().with_topic_partitions(
        parts
            .map(by_topic)
            .unwrap_or_default()
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
    version: i16,
    req: ConsumerGroupDescribeRequest,
) -> Option<ConsumerGroupDescribeResponse> {
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let mut d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if req.include_authorized_operations {
                d.authorized_operations = super::cluster::GROUP_OPERATIONS;
            }
            if let Some(e) = ctx.coordinator_error(0, id.0.as_str()) {
                d.error_code = e.code();
                return d;
            }
            match ctx.consumer_groups.describe(id.0.as_str()) {
                None => {
                    d.error_code = ResponseError::GroupIdNotFound.code();
                    d.error_message = Some(sb(
                        if ctx.groups.exists(id.0.as_str())
                            || ctx.share_groups.exists(id.0.as_str())
                            || ctx.streams_groups.exists(id.0.as_str())
                        {
                            format!("Group {} is not a consumer group.", id.0.as_str())
                        } else {
                            format!("Group {} not found.", id.0.as_str())
                        },
                    ));
                    d.group_state = sb("Dead");
                }
                Some(g) => {
                    d.group_state = sb(g.state);
                    d.group_epoch = g.group_epoch;
                    d.assignment_epoch = g.assignment_epoch;
                    d.assignor_name = sb(g.assignor.clone());
                    d.members = g
                        .members
                        .iter()
                        .map(|m| {
                            let mut dm = DescribedMember::default()
                                .with_member_id(sb(m.member_id.clone()))
                                .with_instance_id(m.instance_id.clone().map(sb))
                                .with_rack_id(m.rack_id.clone().map(sb))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(sb(m.client_id.clone()))
                                .with_client_host(sb(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.subscribed_names.iter().map(|t| topic_name(t)).collect(),
                                )
                                .with_subscribed_topic_regex(m.regex.clone().map(sb))
                                .with_assignment(described(ctx, Some(&m.assigned)))
                                .with_target_assignment(described(ctx, g.target.get(&m.member_id)));
                            if version >= 1 {
                                dm.member_type = 1; // consumer protocol member
                            }
                            dm
                        })
                        .collect();
                }
            }
            d
        })
        .collect();
    Some(ConsumerGroupDescribeResponse::default().with_groups(groups))
}
