//! The partition-level admin APIs a single node answers truthfully: DescribeLogDirs,
//! OffsetForLeaderEpoch, ElectLeaders, List/AlterPartitionReassignments and
//! DescribeTopicPartitions. Every partition has one replica, this broker, in epoch 0.

use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    alter_partition_reassignments_response, describe_topic_partitions_response,
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use kafka_protocol::ResponseError;

use super::RequestContext;
use super::{sb, topic_name};
use crate::context::Context;

use crate::metadata::Topic;

pub async fn describe_log_dirs(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: DescribeLogDirsRequest,
) -> Option<DescribeLogDirsResponse> {
    // (topic, partitions) to report: all, or the requested ones that exist.
    let wanted: Vec<(Arc<Topic>, Vec<i32>)> = match req.topics {
        None => ctx
            .metadata
            .topics()
            .into_iter()
            .map(|t| {
                let all = (0..t.partitions.len() as i32).collect();
                (t, all)
            })
            .collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| ctx.metadata.topic(&t.topic.0).map(|tp| (tp, t.partitions)))
            .collect(),
    };
    let sizes = tokio::task::spawn_blocking(move || {
        wanted
            .into_iter()
            .map(|(t, parts)| {
                let partitions: Vec<DescribeLogDirsPartition> = parts
                    .into_iter()
                    .filter_map(|i| t.partition(i).cloned())
                    .map(|p| {
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p.index)
                            .with_partition_size(p.size_bytes().unwrap_or(0) as i64)
                            .with_offset_lag(0)
                            .with_is_future_key(false)
                    })
                    .collect();
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&t.name))
                    .with_partitions(partitions)
            })
            .filter(|t| !t.partitions.is_empty())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let dir = ctx
        .config
        .data_dir
        .canonicalize()
        .unwrap_or_else(|_| ctx.config.data_dir.clone());
    let result = DescribeLogDirsResult::default()
        .with_log_dir(sb(dir.display().to_string()))
        .with_topics(sizes)
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    Some(DescribeLogDirsResponse::default().with_results(vec![result]))
}

pub async fn offset_for_leader_epoch(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: OffsetForLeaderEpochRequest,
) -> Option<OffsetForLeaderEpochResponse> {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.metadata.topic(&t.topic.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let part = topic
                        .as_ref()
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|tp| ctx.metadata.led_partition(tp, p.partition));
                    let result = part.and_then(|part| {
                        part.check_leader_epoch(p.current_leader_epoch)?;
                        // Not capped at the high watermark, for consumers either (as in
                        // Kafka's Partition.lastOffsetForLeaderEpoch): a new leader's high
                        // watermark lags until its followers fetch, and a consumer told an
                        // epoch ends below what it already read reports lost records.
                        part.end_offset_for_epoch(p.leader_epoch)
                    });
                    match result {
                        Ok((epoch, end)) => {
                            out.leader_epoch = epoch;
                            out.end_offset = end;
                        }
                        Err(e) => out.error_code = e.code(),
                    }
                    out
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    Some(OffsetForLeaderEpochResponse::default().with_topics(topics))
}

pub async fn elect_leaders(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: ElectLeadersRequest,
) -> Option<ElectLeadersResponse> {
    if req.election_type > 1 {
        return Some(
            ElectLeadersResponse::default().with_error_code(ResponseError::InvalidRequest.code()),
        );
    }
    let preferred = req.election_type == 0;
    let Some(cluster) = ctx.cluster.clone() else {
        // With one replica per partition the leader is always the preferred one: nothing
        // to elect (ELECTION_NOT_NEEDED), as Kafka answers for such partitions.
        return Some(
            ElectLeadersResponse::default().with_replica_election_results(single_node_elections(
                ctx,
                req.topic_partitions.unwrap_or_default(),
            )),
        );
    };
    if cluster.view().controller_id != Some(ctx.config.node_id) {
        tracing::debug!(peer = %rc.peer, "ElectLeaders sent to a broker that is not the controller");
        return Some(
            ElectLeadersResponse::default().with_error_code(ResponseError::NotController.code()),
        );
    }
    // Null asks for every partition; then only the partitions that changed are reported.
    let all = req.topic_partitions.is_none();
    let wanted: Vec<(kafka_protocol::messages::TopicName, Vec<i32>)> = match req.topic_partitions {
        Some(t) => t.into_iter().map(|t| (t.topic, t.partitions)).collect(),
        None => ctx
            .metadata
            .topics()
            .iter()
            .map(|t| {
                (
                    super::topic_name(&t.name),
                    (0..t.placements.len() as i32).collect(),
                )
            })
            .collect(),
    };
    let wait = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 30_000) as u64);
    let mut results = Vec::new();
    for (topic, partitions) in wanted {
        let mut partition_result = Vec::new();
        for i in partitions {
            use crate::cluster::Elected;
            let outcome = cluster.elect_leader(topic.0.as_str(), i, preferred).await;
            let (code, message) = match outcome {
                Ok(Elected::Done { leader, .. }) => {
                    let name = topic.0.to_string();
                    ctx.metadata
                        .wait_for_leader(&name, i, leader, wait)
                        .await;
                    (None, None)
                }
                Ok(Elected::NotNeeded) if all => continue,
                Ok(Elected::NotNeeded) => (
                    Some(ResponseError::ElectionNotNeeded),
                    Some("Leader election not needed for topic partition."),
                ),
                Ok(Elected::NotAvailable) if preferred => (
                    Some(ResponseError::PreferredLeaderNotAvailable),
                    Some("Failed to elect leader for partition: the preferred replica is not live and in sync."),
                ),
                Ok(Elected::NotAvailable) => (
                    Some(ResponseError::EligibleLeadersNotAvailable),
                    Some("Failed to elect leader for partition: no live replica."),
                ),
                Ok(Elected::UnknownPartition) => (
                    Some(ResponseError::UnknownTopicOrPartition),
                    Some("The partition does not exist."),
                ),
                Ok(Elected::NotController) => (Some(ResponseError::NotController), None),
                Err(e) => {
                    tracing::warn!(error = %e, "ElectLeaders: ZooKeeper write failed");
                    (Some(ResponseError::UnknownServerError), None)
                }
            };
            partition_result.push(
                PartitionResult::default()
                    .with_partition_id(i)
                    .with_error_code(code.map_or(0, |c| c.code()))
                    .with_error_message(message.map(sb)),
            );
        }
        if !partition_result.is_empty() || !all {
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(topic)
                    .with_partition_result(partition_result),
            );
        }
    }
    Some(ElectLeadersResponse::default().with_replica_election_results(results))
}

/// ElectLeaders on a single node: every existing partition already has its preferred leader.
fn single_node_elections(
    ctx: &Context,
    wanted: Vec<kafka_protocol::messages::elect_leaders_request::TopicPartitions>,
) -> Vec<ReplicaElectionResult> {
    wanted
        .into_iter()
        .map(|t| {
            let topic = ctx.metadata.topic(&t.topic.0);
            let partition_result = t
                .partitions
                .into_iter()
                .map(|i| {
                    let (code, message) = match topic.as_ref().and_then(|tp| tp.partition(i)) {
                        None => (
                            ResponseError::UnknownTopicOrPartition,
                            "The partition does not exist.",
                        ),
                        Some(_) => (
                            ResponseError::ElectionNotNeeded,
                            "Leader election not needed for topic partition.",
                        ),
                    };
                    PartitionResult::default()
                        .with_partition_id(i)
                        .with_error_code(code.code())
                        .with_error_message(Some(sb(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partition_result)
        })
        .collect()
}

pub async fn list_partition_reassignments(
    _ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    _req: ListPartitionReassignmentsRequest,
) -> Option<ListPartitionReassignmentsResponse> {
    // A single node never has a reassignment in progress.
    Some(ListPartitionReassignmentsResponse::default())
}

pub async fn alter_partition_reassignments(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: AlterPartitionReassignmentsRequest,
) -> Option<AlterPartitionReassignmentsResponse> {
    let node = BrokerId(ctx.config.node_id);
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.metadata.topic(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let exists = topic.as_ref().and_then(|tp| tp.partition(p.partition_index));
                    let err = match (exists, &p.replicas) {
                        (None, _) => Some((
                            ResponseError::UnknownTopicOrPartition,
                            "The partition does not exist.".to_string(),
                        )),
                        (Some(_), None) => Some((
                            ResponseError::NoReassignmentInProgress,
                            "No reassignment is in progress for this partition.".to_string(),
                        )),
                        // Reassigning to where it already is: done at once.
                        (Some(_), Some(r)) if r.as_slice() == [node] => None,
                        (Some(_), Some(r)) => Some((
                            ResponseError::InvalidReplicaAssignment,
                            format!(
                                "Replica assignment {:?} names brokers that are not alive; this cluster has only broker {}",
                                r.iter().map(|b| b.0).collect::<Vec<_>>(),
                                node.0
                            ),
                        )),
                    };
                    let mut out = alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    if let Some((code, message)) = err {
                        out.error_code = code.code();
                        out.error_message = Some(sb(message));
                    }
                    out
                })
                .collect();
            alter_partition_reassignments_response::ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Some(AlterPartitionReassignmentsResponse::default().with_responses(responses))
}

pub async fn describe_topic_partitions(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: DescribeTopicPartitionsRequest,
) -> Option<DescribeTopicPartitionsResponse> {
    let live: Vec<i32> = ctx
        .brokers_and_controller(&rc.listener)
        .0
        .iter()
        .map(|b| b.0)
        .collect();
    let limit = req.response_partition_limit.max(1) as usize;
    // Topics in name order, starting at the cursor's topic, as Kafka pages them.
    let mut names: Vec<String> = if req.topics.is_empty() {
        ctx.metadata
            .topics()
            .iter()
            .map(|t| t.name.to_string())
            .collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut topics = Vec::new();
    let mut budget = limit;
    let mut next_cursor = None;
    for name in names {
        if cursor_topic.as_ref().is_some_and(|c| &name < c) {
            continue;
        }
        let first = if cursor_topic.as_ref() == Some(&name) {
            cursor_partition
        } else {
            0
        };
        let Some(topic) = ctx.metadata.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_name(Some(topic_name(&name)))
                    .with_topic_authorized_operations(i32::MIN),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(&name))
                    .with_partition_index(first),
            );
            break;
        }
        let count = topic.partitions.len() as i32;
        let end = (first as usize + budget).min(count as usize) as i32;
        let partitions: Vec<DescribeTopicPartitionsResponsePartition> = (first..end)
            .filter_map(|i| Some((i, topic.placement(i)?)))
            .map(|(i, p)| {
                let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
                let leader = if live.contains(&p.leader) { p.leader } else { -1 };
                let offline: Vec<i32> =
                    p.replicas.iter().copied().filter(|r| !live.contains(r)).collect();
                let mut out = describe_topic_partitions_response::DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(i)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr))
                    .with_offline_replicas(ids(&offline))
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()));
                if leader < 0 {
                    out.error_code = ResponseError::LeaderNotAvailable.code();
                }
                out
            })
            .collect();
        budget -= partitions.len();
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(&name)))
                .with_topic_id(topic.id)
                .with_is_internal(crate::metadata::is_internal_topic(&name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(super::cluster::TOPIC_OPERATIONS),
        );
        if end < count {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(&name))
                    .with_partition_index(end),
            );
            break;
        }
    }
    Some(
        DescribeTopicPartitionsResponse::default()
            .with_topics(topics)
            .with_next_cursor(next_cursor),
    )
}
