//! Metadata: brokers, controller, topics and partition leaders; auto-creates topics.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use super::{sb, topic_name};
use crate::context::Context;
use crate::metadata::{validate_topic_name, Topic};

/// Upper bound on topics named in one Metadata request that we will auto-create.
const MAX_AUTO_CREATE_PER_REQUEST: usize = 1000;

pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: MetadataRequest,
) -> Option<MetadataResponse> {
    let (brokers, controller) = ctx.brokers_and_controller(&rc.listener);
    let node: Vec<i32> = brokers.iter().map(|b| b.0).collect();
    let node = &node[..];
    let mut resp = MetadataResponse::default()
        .with_brokers(
            brokers
                .into_iter()
                .map(|(id, host, port)| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(sb(host))
                        .with_port(port)
                })
                .collect(),
        )
        .with_controller_id(BrokerId(controller));
    if version >= 2 {
        resp.cluster_id = Some(sb(ctx.metadata.cluster_id()));
    }
    if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = super::cluster::CLUSTER_OPERATIONS;
    }
    let allow_auto_create =
        ctx.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);
    let want_topic_ops = version >= 8 && req.include_topic_authorized_operations;

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let mut created = 0usize;
    resp.topics = match requested {
        None => ctx
            .metadata
            .topics()
            .iter()
            .map(|t| describe_topic(t, node, want_topic_ops))
            .collect(),
        Some(topics) => {
            let mut out = Vec::with_capacity(topics.len());
            for t in topics {
                out.push(match t.name {
                    Some(name) => {
                        let name = name.0.as_str();
                        match ctx.metadata.topic(name) {
                            Some(topic) => describe_topic(&topic, node, want_topic_ops),
                            None => {
                                let may_create =
                                    allow_auto_create && created < MAX_AUTO_CREATE_PER_REQUEST;
                                created += 1;
                                auto_create(ctx, rc, name, may_create, node, want_topic_ops).await
                            }
                        }
                    }
                    None => match ctx.metadata.topic_by_id(&t.topic_id) {
                        Some(topic) => describe_topic(&topic, node, want_topic_ops),
                        None => MetadataResponseTopic::default()
                            .with_error_code(ResponseError::UnknownTopicId.code())
                            .with_topic_id(t.topic_id),
                    },
                });
            }
            out
        }
    };
    Some(resp)
}

async fn auto_create(
    ctx: &Context,
    rc: &RequestContext,
    name: &str,
    may_create: bool,
    live: &[i32],
    want_topic_ops: bool,
) -> MetadataResponseTopic {
    let unknown = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_error_code(code.code())
            .with_name(Some(topic_name(name)))
            .with_topic_id(Uuid::nil())
    };
    if let Err(why) = validate_topic_name(name) {
        tracing::debug!(
            client_id = rc.client_id(),
            "metadata for invalid topic: {why}"
        );
        return unknown(ResponseError::InvalidTopicException);
    }
    if !may_create {
        return unknown(ResponseError::UnknownTopicOrPartition);
    }
    match auto_create_topic(ctx, name).await {
        Ok(topic) => describe_topic(&topic, live, want_topic_ops),
        Err(code) => unknown(code),
    }
}

/// Creates `name` with the broker defaults, or returns the topic a concurrent request made.
/// In a cluster, a topic not yet arrived in this broker's metadata is LEADER_NOT_AVAILABLE,
/// as Kafka answers while an auto-created topic's leaders are being elected.
pub async fn auto_create_topic(ctx: &Context, name: &str) -> Result<Arc<Topic>, ResponseError> {
    auto_create_topic_with(ctx, name, Default::default()).await
}

/// Like [`auto_create_topic`], with topic configs (a share group's dead-letter topic).
pub async fn auto_create_topic_with(
    ctx: &Context,
    name: &str,
    configs: std::collections::BTreeMap<String, String>,
) -> Result<Arc<Topic>, ResponseError> {
    let created = ctx
        .metadata
        .create(crate::metadata::NewTopic {
            name: name.to_string(),
            partitions: ctx.config.num_partitions,
            replication_factor: ctx.config.default_replication_factor,
            assignment: None,
            configs,
            validate_only: false,
            wait: std::time::Duration::from_secs(5),
        })
        .await;
    match created {
        Ok(_) | Err((ResponseError::TopicAlreadyExists, _)) => {
            ctx.metadata
                .topic(name)
                .ok_or(if ctx.metadata.cluster().is_some() {
                    ResponseError::LeaderNotAvailable
                } else {
                    ResponseError::UnknownTopicOrPartition
                })
        }
        Err((code, _)) => Err(code),
    }
}

/// A topic as Metadata lists it. A leader that is not live is reported as none
/// (LEADER_NOT_AVAILABLE), and replicas that are not live as offline, as Kafka does.
fn describe_topic(topic: &Topic, live: &[i32], want_topic_ops: bool) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(crate::metadata::is_internal_topic(&topic.name))
        .with_partitions(
            topic
                .placements
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let leader = if live.contains(&p.leader) {
                        p.leader
                    } else {
                        -1
                    };
                    let mut out = MetadataResponsePartition::default()
                        .with_partition_index(i as i32)
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                        .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                        .with_offline_replicas(
                            p.replicas
                                .iter()
                                .filter(|r| !live.contains(r))
                                .copied()
                                .map(BrokerId)
                                .collect(),
                        );
                    if leader < 0 {
                        out.error_code = ResponseError::LeaderNotAvailable.code();
                    }
                    out
                })
                .collect(),
        );
    if want_topic_ops {
        t.topic_authorized_operations = super::cluster::TOPIC_OPERATIONS;
    }
    t
}
