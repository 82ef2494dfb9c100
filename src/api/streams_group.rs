//! StreamsGroupHeartbeat, StreamsGroupDescribe and StreamsGroupTopologyDescriptionUpdate:
//! the streams rebalance protocol (KIP-1071) of Kafka Streams' `group.protocol=streams`.
//! The group state machine is `group::streams`; this module turns wire messages into its
//! terms, checks Kafka's topology rules, and creates the internal topics a group needs.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::streams_group_describe_response as describe_resp;
use kafka_protocol::messages::streams_group_heartbeat_response as hb_resp;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::{sb, topic_name, RequestContext};
use crate::context::Context;
use crate::group::streams::group::{Endpoint, Heartbeat, Member, StreamsGroup};
use crate::group::streams::reconcile::TaskSets;
use crate::group::streams::topology::{CopartitionGroup, Subtopology, TopicInfo, Topology};

fn topology_of(t: &streams_group_heartbeat_request::Topology) -> Topology {
    let info = |i: &streams_group_heartbeat_request::TopicInfo| TopicInfo {
        name: i.name.0.to_string(),
        partitions: i.partitions,
        replication_factor: i.replication_factor,
        configs: i
            .topic_configs
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect(),
    };
    Topology {
        epoch: t.epoch,
        subtopologies: t
            .subtopologies
            .iter()
            .map(|s| Subtopology {
                id: s.subtopology_id.to_string(),
                source_topics: s.source_topics.iter().map(|n| n.0.to_string()).collect(),
                repartition_sink_topics: s
                    .repartition_sink_topics
                    .iter()
                    .map(|n| n.0.to_string())
                    .collect(),
                state_changelog_topics: s.state_changelog_topics.iter().map(info).collect(),
                repartition_source_topics: s.repartition_source_topics.iter().map(info).collect(),
                copartition_groups: s
                    .copartition_groups
                    .iter()
                    .map(|g| CopartitionGroup {
                        source_topics: g.source_topics.clone(),
                        repartition_source_topics: g.repartition_source_topics.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
    .canonical()
}

fn tasks_of(ids: &[streams_group_heartbeat_request::TaskIds]) -> BTreeSet<(String, i32)> {
    ids.iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.subtopology_id.to_string(), *p))
        })
        .collect()
}

/// Tasks as the wire lists them: per subtopology, its partitions; `make` builds the
/// message's own TaskIds type (the heartbeat's and the describe's differ).
fn by_subtopology<T>(
    tasks: &BTreeSet<(String, i32)>,
    make: impl Fn(&str, Vec<i32>) -> T,
) -> Vec<T> {
    let mut by: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (s, p) in tasks {
        by.entry(s.as_str()).or_default().push(*p);
    }
    by.into_iter().map(|(s, ps)| make(s, ps)).collect()
}

fn task_ids(tasks: &BTreeSet<(String, i32)>) -> Vec<hb_resp::TaskIds> {
    by_subtopology(tasks, |s, ps| {
        hb_resp::TaskIds::default()
            .with_subtopology_id(sb(s))
            .with_partitions(ps)
    })
}

/// Kafka's KafkaApis checks of a topology before the coordinator sees it, and a bound of
/// Klamm's: no topic may ask for more partitions than the broker may hold
/// (`--max-partitions`), since every partition of a repartition topic becomes a task.
fn check_topology(t: &Topology, max_partitions: u32) -> Result<(), String> {
    for s in &t.subtopologies {
        for i in s
            .repartition_source_topics
            .iter()
            .chain(&s.state_changelog_topics)
        {
            if i.partitions < 0 || i.partitions as u32 > max_partitions {
                return Err(format!(
                    "Topic {} asks for {} partitions; this broker allows at most {max_partitions}.",
                    i.name, i.partitions
                ));
            }
        }
    }
    let topics = t.topics();
    let internal: Vec<&String> = topics
        .iter()
        .filter(|n| crate::metadata::is_internal_topic(n))
        .collect();
    if !internal.is_empty() {
        let names: Vec<&str> = internal.iter().map(|s| s.as_str()).collect();
        return Err(format!(
            "Use of Kafka internal topics {} in a Kafka Streams topology is prohibited.",
            names.join(",")
        ));
    }
    let invalid: Vec<&str> = topics
        .iter()
        .filter(|n| crate::metadata::validate_topic_name(n).is_err())
        .map(|s| s.as_str())
        .collect();
    if !invalid.is_empty() {
        return Err(format!(
            "Topic names {} are not valid topic names.",
            invalid.join(",")
        ));
    }
    Ok(())
}

pub async fn heartbeat(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: StreamsGroupHeartbeatRequest,
) -> Option<StreamsGroupHeartbeatResponse> {
    let group = req.group_id.0.to_string();
    let error = |e: ResponseError, m: Option<String>| {
        Some(
            StreamsGroupHeartbeatResponse::default()
                .with_error_code(e.code())
                .with_error_message(m.map(sb)),
        )
    };
    if let Some(e) = ctx.coordinator_error(0, &group) {
        return error(e, None);
    }
    if ctx.groups.has_members(&group)
        || ctx.share_groups.exists(&group)
        || ctx.consumer_groups.exists(&group)
    {
        return error(
            ResponseError::GroupIdNotFound,
            Some(format!("Group {group} is not a streams group.")),
        );
    }
    let topology = req.topology.as_ref().map(topology_of);
    if let Some(t) = &req.topology {
        if t.subtopologies
            .iter()
            .any(|s| !s.source_topic_regex.is_empty())
        {
            return error(
                ResponseError::InvalidRequest,
                Some("Regular expressions for source topics are not supported yet.".into()),
            );
        }
    }
    if let Some(t) = &topology {
        if let Err(why) = check_topology(t, ctx.config.max_partitions) {
            return error(ResponseError::StreamsInvalidTopology, Some(why));
        }
    }
    let task_lists = [&req.active_tasks, &req.standby_tasks, &req.warmup_tasks];
    let given = task_lists.iter().filter(|t| t.is_some()).count();
    if given != 0 && given != 3 {
        return error(
            ResponseError::InvalidRequest,
            Some("If one task-type is non-null, all must be non-null.".into()),
        );
    }
    let owned = (given == 3).then(|| TaskSets {
        active: tasks_of(req.active_tasks.as_deref().unwrap_or_default()),
        standby: tasks_of(req.standby_tasks.as_deref().unwrap_or_default()),
        warmup: tasks_of(req.warmup_tasks.as_deref().unwrap_or_default()),
    });
    let hb = Heartbeat {
        group_id: group.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        endpoint_information_epoch: req.endpoint_information_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topology,
        owned,
        process_id: req.process_id.as_ref().map(|s| s.to_string()),
        user_endpoint: req.user_endpoint.as_ref().map(|e| Endpoint {
            host: e.host.to_string(),
            port: e.port,
        }),
        client_tags: req.client_tags.as_ref().map(|kv| {
            kv.iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        }),
        shutdown_application: req.shutdown_application,
        client_id: rc.client_id().to_string(),
        client_host: format!("/{}", rc.peer.ip()),
    };
    let metadata = &ctx.metadata;
    let partitions_of = |t: &str| metadata.topic(t).map(|t| t.partitions.len() as i32);
    let reply = match ctx
        .streams_groups
        .heartbeat(hb, &partitions_of, std::time::Instant::now())
    {
        // Cluster mode: answered once the change is on the in-sync replicas, so a member
        // never holds an epoch or tasks that the next coordinator would not know.
        Ok((r, Some(write))) => match crate::group::journal::settle(write).await {
            Ok(()) => r,
            Err(e) => return error(e, None),
        },
        Ok((r, None)) => r,
        Err((e, m)) => return error(e, m),
    };
    // The group's internal topics (Kafka creates them after answering; on a single node
    // this takes milliseconds): the next heartbeat finds the topology ready.
    for t in &reply.to_create {
        let rf = if t.replication_factor <= 0 {
            ctx.config.default_replication_factor
        } else {
            i32::from(t.replication_factor)
        };
        let created = ctx
            .metadata
            .create(crate::metadata::NewTopic {
                name: t.name.clone(),
                partitions: t.partitions,
                replication_factor: rf,
                assignment: None,
                configs: t.configs.clone(),
                validate_only: false,
                wait: std::time::Duration::from_millis(500),
            })
            .await;
        match created {
            Ok(_) | Err((ResponseError::TopicAlreadyExists, _)) => {
                tracing::info!(group = %group, topic = %t.name, partitions = t.partitions, "streams group internal topic created")
            }
            Err((e, why)) => {
                tracing::warn!(group = %group, topic = %t.name, error = ?e, why = ?why, "streams group internal topic could not be created")
            }
        }
    }
    let mut resp = StreamsGroupHeartbeatResponse::default()
        .with_member_id(sb(reply.member_id))
        .with_member_epoch(reply.member_epoch)
        .with_heartbeat_interval_ms(reply.heartbeat_interval_ms)
        .with_task_offset_interval_ms(reply.task_offset_interval_ms)
        .with_endpoint_information_epoch(reply.endpoint_information_epoch)
        .with_status(Some(
            reply
                .statuses
                .into_iter()
                .map(|(code, detail)| {
                    hb_resp::Status::default()
                        .with_status_code(code as i8)
                        .with_status_detail(sb(detail))
                })
                .collect(),
        ));
    if version >= 1 {
        resp.acceptable_recovery_lag = reply.acceptable_recovery_lag;
    }
    if let Some(t) = reply.tasks {
        resp.active_tasks = Some(task_ids(&t.active));
        resp.standby_tasks = Some(task_ids(&t.standby));
        resp.warmup_tasks = Some(task_ids(&t.warmup));
    }
    resp.partitions_by_user_endpoint = reply.partitions_by_endpoint.map(|all| {
        all.into_iter()
            .map(|e| {
                let parts = |m: BTreeMap<String, Vec<i32>>| {
                    m.into_iter()
                        .map(|(t, ps)| {
                            hb_resp::TopicPartition::default()
                                .with_topic(topic_name(&t))
                                .with_partitions(ps)
                        })
                        .collect()
                };
                hb_resp::EndpointToPartitions::default()
                    .with_user_endpoint(
                        hb_resp::Endpoint::default()
                            .with_host(sb(e.endpoint.host))
                            .with_port(e.endpoint.port),
                    )
                    .with_active_partitions(parts(e.active))
                    .with_standby_partitions(parts(e.standby))
            })
            .collect()
    });
    Some(resp)
}

pub async fn describe(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: StreamsGroupDescribeRequest,
) -> Option<StreamsGroupDescribeResponse> {
    let groups = req
        .group_ids
        .iter()
        .map(|id| {
            let id = id.to_string();
            let mut d =
                describe_resp::DescribedGroup::default().with_group_id(GroupId(sb(id.clone())));
            if id.is_empty() {
                d.error_code = ResponseError::InvalidGroupId.code();
                return d;
            }
            if let Some(e) = ctx.coordinator_error(0, &id) {
                d.error_code = e.code();
                return d;
            }
            let found = ctx.streams_groups.with(&id, |g| {
                let mut d = d
                    .clone()
                    .with_group_state(sb(g.state()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch);
                if version >= 1 {
                    d.assignor_name = Some(sb("sticky"));
                    d.topology_description_status = if req.include_topology_description {
                        1
                    } else {
                        0
                    };
                }
                d.topology = described_topology(g);
                d.members = g.members.values().map(|m| described_member(g, m)).collect();
                d
            });
            found.unwrap_or_else(|| {
                let mut d = d;
                d.error_code = ResponseError::GroupIdNotFound.code();
                let other_type = ctx.groups.exists(&id)
                    || ctx.consumer_groups.exists(&id)
                    || ctx.share_groups.exists(&id);
                d.error_message = Some(sb(if other_type {
                    format!("Group {id} is not a streams group.")
                } else {
                    format!("Group {id} not found.")
                }));
                d
            })
        })
        .collect();
    Some(StreamsGroupDescribeResponse::default().with_groups(groups))
}

fn key_values(pairs: &BTreeMap<String, String>) -> Vec<describe_resp::KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| {
            describe_resp::KeyValue::default()
                .with_key(sb(k.clone()))
                .with_value(sb(v.clone()))
        })
        .collect()
}

/// The stored topology, with the repartition and changelog partition counts the broker
/// derived once it is ready.
fn described_topology(g: &StreamsGroup) -> Option<describe_resp::Topology> {
    let t = g.topology.as_ref()?;
    let ready = g.configured.as_ref().filter(|c| c.ready());
    let info = |i: &TopicInfo| {
        describe_resp::TopicInfo::default()
            .with_name(topic_name(&i.name))
            .with_partitions(
                ready
                    .and_then(|c| c.internal_partitions.get(&i.name).copied())
                    .unwrap_or(i.partitions),
            )
            .with_replication_factor(i.replication_factor)
            .with_topic_configs(key_values(&i.configs))
    };
    let names = |ns: &[String]| ns.iter().map(|n| topic_name(n)).collect();
    let subtopologies: Vec<_> = t
        .subtopologies
        .iter()
        .map(|s| {
            describe_resp::Subtopology::default()
                .with_subtopology_id(sb(s.id.clone()))
                .with_source_topics(names(&s.source_topics))
                .with_repartition_sink_topics(names(&s.repartition_sink_topics))
                .with_state_changelog_topics(s.state_changelog_topics.iter().map(info).collect())
                .with_repartition_source_topics(
                    s.repartition_source_topics.iter().map(info).collect(),
                )
        })
        .collect();
    Some(
        describe_resp::Topology::default()
            .with_epoch(t.epoch)
            .with_subtopologies(subtopologies.into()),
    )
}

fn described_assignment(t: &TaskSets) -> describe_resp::Assignment {
    let tasks = |t| {
        by_subtopology(t, |s, ps| {
            describe_resp::TaskIds::default()
                .with_subtopology_id(sb(s))
                .with_partitions(ps)
        })
    };
    describe_resp::Assignment::default()
        .with_active_tasks(tasks(&t.active))
        .with_standby_tasks(tasks(&t.standby))
        .with_warmup_tasks(tasks(&t.warmup))
}

fn described_member(g: &StreamsGroup, m: &Member) -> describe_resp::Member {
    describe_resp::Member::default()
        .with_member_id(sb(m.member_id.clone()))
        .with_member_epoch(m.current.epoch)
        .with_instance_id(m.instance_id.clone().map(sb))
        .with_rack_id(m.rack_id.clone().map(sb))
        .with_client_id(sb(m.client_id.clone()))
        .with_client_host(sb(m.client_host.clone()))
        .with_topology_epoch(m.topology_epoch)
        .with_process_id(sb(m.process_id.clone()))
        .with_user_endpoint(m.user_endpoint.as_ref().map(|e| {
            describe_resp::Endpoint::default()
                .with_host(sb(e.host.clone()))
                .with_port(e.port)
        }))
        .with_client_tags(key_values(&m.client_tags))
        .with_assignment(described_assignment(&m.current.assigned))
        .with_target_assignment(described_assignment(
            &g.target.get(&m.member_id).cloned().unwrap_or_default(),
        ))
}

/// With no topology description plugin (Kafka's default), Kafka refuses these.
pub async fn topology_description_update(
    _ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    _req: StreamsGroupTopologyDescriptionUpdateRequest,
) -> Option<StreamsGroupTopologyDescriptionUpdateResponse> {
    Some(
        StreamsGroupTopologyDescriptionUpdateResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_error_message(Some(sb(
                "The broker has no streams group topology description plugin configured.",
            ))),
    )
}
