//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups, DescribeGroups
//! and DeleteGroups: the classic group protocol, answered by the group coordinator.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::sb;
use super::RequestContext;
use crate::context::Context;
use crate::group::{GroupState, JoinRequest};
use kafka_protocol::protocol::StrBytes;

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

pub async fn find_coordinator(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: FindCoordinatorRequest,
) -> Option<FindCoordinatorResponse> {
    let mut resp = FindCoordinatorResponse::default();
    // key_type 0 = group, 1 = transaction, 2 = share partition (v6+, KIP-932:
    // `group:topicId:partition`, placed on `__share_group_state`).
    let valid = matches!(req.key_type, 0 | 1) || (req.key_type == 2 && version >= 6);
    let keys: Vec<StrBytes> = if version >= 4 {
        req.coordinator_keys
    } else {
        vec![req.key]
    };
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let mut c = Coordinator::default().with_key(key.clone());
        let answer = if valid {
            ctx.coordinator(req.key_type, key.as_str(), &rc.listener)
                .await
        } else {
            Err(ResponseError::InvalidRequest)
        };
        match answer {
            Ok((id, host, port)) => {
                c.node_id = BrokerId(id);
                c.host = sb(host);
                c.port = port;
            }
            Err(e) => {
                c.node_id = BrokerId(-1);
                c.error_code = e.code();
            }
        }
        found.push(c);
    }
    if version >= 4 {
        resp.coordinators = found;
    } else if let Some(c) = found.pop() {
        resp.node_id = c.node_id;
        resp.host = c.host;
        resp.port = c.port;
        resp.error_code = c.error_code;
    }
    Some(resp)
}

pub async fn join_group(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: JoinGroupRequest,
) -> Option<JoinGroupResponse> {
    if let Some(e) = ctx.coordinator_error(0, req.group_id.0.as_str()) {
        return Some(JoinGroupResponse::default().with_error_code(e.code()));
    }
    if ctx.consumer_groups.has_members(req.group_id.0.as_str())
        || ctx.share_groups.exists(req.group_id.0.as_str())
        || ctx.streams_groups.exists(req.group_id.0.as_str())
    {
        // A KIP-848 group with members, or a share group (empty or not): classic members
        // cannot join it (Kafka's classicGroupJoin).
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), group = %req.group_id.0.as_str(), "classic JoinGroup for a consumer-protocol or share group");
        return Some(
            JoinGroupResponse::default()
                .with_error_code(ResponseError::InconsistentGroupProtocol.code())
                .with_generation_id(-1)
                .with_member_id(req.member_id),
        );
    }
    let outcome = ctx
        .groups
        .join(JoinRequest {
            group_id: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: rc.client_id().to_string(),
            client_host: format!("/{}", rc.peer.ip()),
            session_timeout_ms: req.session_timeout_ms,
            // v0 has no rebalance timeout: it is the session timeout.
            rebalance_timeout_ms: if version >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: version >= 4,
        })
        .await;
    let mut resp = JoinGroupResponse::default()
        .with_error_code(code(outcome.error))
        .with_generation_id(outcome.generation_id)
        .with_leader(sb(outcome.leader))
        .with_member_id(sb(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let mut m = JoinGroupResponseMember::default()
                        .with_member_id(sb(id))
                        .with_metadata(metadata);
                    if version >= 5 {
                        m.group_instance_id = instance.map(sb);
                    }
                    m
                })
                .collect(),
        );
    // v0-v6: protocol_name is a non-null string; v7+ carries the type too.
    resp.protocol_name = Some(sb(outcome.protocol_name.unwrap_or_default()));
    if version >= 7 {
        resp.protocol_type = outcome.protocol_type.map(sb);
    }
    if version >= 9 {
        resp.skip_assignment = outcome.skip_assignment;
    }
    Some(resp)
}

pub async fn sync_group(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: SyncGroupRequest,
) -> Option<SyncGroupResponse> {
    if let Some(e) = ctx.coordinator_error(0, req.group_id.0.as_str()) {
        return Some(SyncGroupResponse::default().with_error_code(e.code()));
    }
    let group_id = req.group_id.0.to_string();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let outcome = ctx
        .groups
        .sync(
            &group_id,
            req.generation_id,
            req.member_id.as_str(),
            &instance,
            req.assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        )
        .await;
    let mut error = outcome.error;
    // v5+: the client names the protocol it expects; a mismatch is INCONSISTENT_GROUP_PROTOCOL.
    if version >= 5 && error.is_none() {
        let type_ok = req
            .protocol_type
            .as_ref()
            .is_none_or(|t| Some(t.to_string()) == outcome.protocol_type);
        let name_ok = req
            .protocol_name
            .as_ref()
            .is_none_or(|n| Some(n.to_string()) == outcome.protocol_name);
        if !type_ok || !name_ok {
            error = Some(ResponseError::InconsistentGroupProtocol);
        }
    }
    let mut resp = SyncGroupResponse::default().with_error_code(code(error));
    if error.is_none() {
        resp.assignment = outcome.assignment;
        if version >= 5 {
            resp.protocol_type = outcome.protocol_type.map(sb);
            resp.protocol_name = outcome.protocol_name.map(sb);
        }
    }
    Some(resp)
}

pub async fn heartbeat(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: HeartbeatRequest,
) -> Option<HeartbeatResponse> {
    if let Some(e) = ctx.coordinator_error(0, req.group_id.0.as_str()) {
        return Some(HeartbeatResponse::default().with_error_code(e.code()));
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let result = ctx.groups.heartbeat(
        req.group_id.0.as_str(),
        req.generation_id,
        req.member_id.as_str(),
        &instance,
    );
    Some(HeartbeatResponse::default().with_error_code(code(result.err())))
}

pub async fn leave_group(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: LeaveGroupRequest,
) -> Option<LeaveGroupResponse> {
    if let Some(e) = ctx.coordinator_error(0, req.group_id.0.as_str()) {
        return Some(LeaveGroupResponse::default().with_error_code(e.code()));
    }
    let group_id = req.group_id.0.to_string();
    let mut resp = LeaveGroupResponse::default();
    if version < 3 {
        let result = ctx.groups.leave(&group_id, req.member_id.as_str(), &None);
        resp.error_code = code(result.err());
        return Some(resp);
    }
    resp.members = req
        .members
        .iter()
        .map(|m| {
            let instance = m.group_instance_id.as_ref().map(|s| s.to_string());
            let result = ctx.groups.leave(&group_id, m.member_id.as_str(), &instance);
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(code(result.err()))
        })
        .collect();
    Some(resp)
}

pub async fn list_groups(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: ListGroupsRequest,
) -> Option<ListGroupsResponse> {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    // In a cluster each broker lists the groups it coordinates; admin clients ask every
    // broker and merge, as with Kafka.
    let consumer: Vec<_> = ctx
        .consumer_groups
        .list()
        .into_iter()
        .filter(|g| ctx.coordinator_error(0, &g.group_id).is_none())
        .collect();
    let consumer_listed = consumer
        .iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "consumer"))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(sb(g.group_id.clone())))
                .with_protocol_type(sb("consumer"));
            if version >= 4 {
                l.group_state = sb(g.state);
            }
            if version >= 5 {
                l.group_type = sb("consumer");
            }
            l
        })
        .collect::<Vec<_>>();
    let share_listed = ctx
        .share_groups
        .list()
        .into_iter()
        .filter(|g| ctx.coordinator_error(0, &g.group_id).is_none())
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "share"))
        .map(|g| {
            // "share" is both the protocol type and the group type of a share group.
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(sb(g.group_id)))
                .with_protocol_type(sb("share"));
            if version >= 4 {
                l.group_state = sb(g.state);
            }
            if version >= 5 {
                l.group_type = sb("share");
            }
            l
        })
        .collect::<Vec<_>>();
    let streams: Vec<(String, &'static str)> = ctx
        .streams_groups
        .list()
        .into_iter()
        .filter(|(id, _)| ctx.coordinator_error(0, id).is_none())
        .collect();
    let streams_listed = streams
        .iter()
        .filter(|(_, state)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "streams"))
        .map(|(id, state)| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(sb(id.clone())))
                .with_protocol_type(sb("streams"));
            if version >= 4 {
                l.group_state = sb(*state);
            }
            if version >= 5 {
                l.group_type = sb("streams");
            }
            l
        })
        .collect::<Vec<_>>();
    let groups = ctx
        .groups
        .list()
        .into_iter()
        .filter(|g| !consumer.iter().any(|c| c.group_id == g.group_id))
        .filter(|g| !streams.iter().any(|(id, _)| *id == g.group_id))
        .filter(|g| ctx.coordinator_error(0, &g.group_id).is_none())
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(sb(g.group_id)))
                .with_protocol_type(sb(g.protocol_type));
            if version >= 4 {
                l.group_state = sb(g.state.name());
            }
            if version >= 5 {
                l.group_type = sb("classic");
            }
            l
        })
        .chain(consumer_listed)
        .chain(share_listed)
        .chain(streams_listed)
        .collect();
    Some(ListGroupsResponse::default().with_groups(groups))
}

pub async fn describe_groups(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: DescribeGroupsRequest,
) -> Option<DescribeGroupsResponse> {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let mut d = DescribedGroup::default().with_group_id(id.clone());
            if req.include_authorized_operations && version >= 3 {
                d.authorized_operations = super::cluster::GROUP_OPERATIONS;
            }
            if let Some(e) = ctx.coordinator_error(0, id.0.as_str()) {
                d.error_code = e.code();
                return d;
            }
            if ctx.consumer_groups.exists(id.0.as_str())
                || ctx.share_groups.exists(id.0.as_str())
                || ctx.streams_groups.exists(id.0.as_str())
            {
                // As Kafka: a KIP-848 group is described by ConsumerGroupDescribe, a share
                // group by ShareGroupDescribe, a streams group by StreamsGroupDescribe.
                d.group_state = sb(GroupState::Dead.name());
                d.error_code = ResponseError::GroupIdNotFound.code();
                if version >= 6 {
                    d.error_message = Some(sb(format!(
                        "Group {} is not a classic group.",
                        id.0.as_str()
                    )));
                }
                return d;
            }
            match ctx.groups.describe(id.0.as_str()) {
                Some(g) => {
                    d.group_state = sb(g.state.name());
                    d.protocol_type = sb(g.protocol_type);
                    d.protocol_data = sb(g.protocol_name);
                    d.members = g
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut dm = DescribedGroupMember::default()
                                .with_member_id(sb(m.member_id))
                                .with_client_id(sb(m.client_id))
                                .with_client_host(sb(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                dm.group_instance_id = m.group_instance_id.map(sb);
                            }
                            dm
                        })
                        .collect();
                }
                None => {
                    d.group_state = sb(GroupState::Dead.name());
                    if version >= 6 {
                        d.error_code = ResponseError::GroupIdNotFound.code();
                        d.error_message = Some(sb(format!("Group {} not found.", id.0.as_str())));
                    }
                }
            }
            d
        })
        .collect();
    Some(DescribeGroupsResponse::default().with_groups(groups))
}

pub async fn delete_groups(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: DeleteGroupsRequest,
) -> Option<DeleteGroupsResponse> {
    // Deleted share groups and their topics, whose states the share coordinators drop.
    let mut share_deleted: Vec<(String, std::collections::BTreeSet<String>)> = Vec::new();
    let results = req
        .groups_names
        .into_iter()
        .map(|id| {
            let result = match ctx.coordinator_error(0, id.0.as_str()) {
                Some(e) => Err(e),
                // A share group has no committed offsets; deleting it removes it and the
                // delivery state of its share partitions.
                None => match ctx.share_groups.delete_returning_topics(id.0.as_str()) {
                    Some(Ok(topics)) => {
                        ctx.share_partitions.remove_group(id.0.as_str());
                        share_deleted.push((id.0.to_string(), topics));
                        Ok(())
                    }
                    Some(Err(e)) => Err(e),
                    None => match ctx
                        .streams_groups
                        .delete(id.0.as_str())
                        .or_else(|| ctx.consumer_groups.delete(id.0.as_str()))
                    {
                        Some(Err(e)) => Err(e),
                        Some(Ok(())) => {
                            // Its committed offsets (and any classic entry) go too.
                            match ctx.groups.delete_group(id.0.as_str()) {
                                Err(ResponseError::GroupIdNotFound) => Ok(()),
                                other => other,
                            }
                        }
                        None => ctx.groups.delete_group(id.0.as_str()),
                    },
                },
            };
            let err = result.err();
            let mut r = DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code(err));
            // v3 carries the cause beside the code, as Kafka's ApiError message.
            if version >= 3 {
                r.error_message = err.map(|e| sb(e.description()));
            }
            r
        })
        .collect();
    if let Some(remote) = ctx.share_partitions.remote() {
        for (group, topics) in share_deleted {
            for topic in topics.iter().filter_map(|t| ctx.metadata.topic(t)) {
                for p in 0..topic.placements.len() as i32 {
                    if let Err(e) = remote.delete(&(group.clone(), topic.id, p)).await {
                        tracing::warn!(group, topic = %topic.name, partition = p, error = ?e, "a deleted share group's state could not be deleted at its share coordinator");
                    }
                }
            }
        }
    }
    Some(DeleteGroupsResponse::default().with_results(results))
}
