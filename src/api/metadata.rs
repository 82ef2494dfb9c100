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
use crate::log::partition::LEADER_EPOCH;
use crate::metadata::{validate_topic_name, Topic};

/// Upper bound on topics named in one Metadata request that we will auto-create.
const MAX_AUTO_CREATE_PER_REQUEST: usize = 1000;

pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: MetadataRequest,
) -> Option<MetadataResponse> {
    let node = BrokerId(ctx.config.node_id);
    let (brokers, controller) = ctx.brokers_and_controller();
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
        Some(topics) => topics
            .into_iter()
            .map(|t| match t.name {
                Some(name) => {
                    let name = name.0.as_str();
                    match ctx.metadata.topic(name) {
                        Some(topic) => describe_topic(&topic, node, want_topic_ops),
                        None => {
                            let may_create =
                                allow_auto_create && created < MAX_AUTO_CREATE_PER_REQUEST;
                            created += 1;
                            auto_create(ctx, rc, name, may_create, node, want_topic_ops)
                        }
                    }
                }
                None => match ctx.metadata.topic_by_id(&t.topic_id) {
                    Some(topic) => describe_topic(&topic, node, want_topic_ops),
                    None => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(t.topic_id),
                },
            })
            .collect(),
    };
    Some(resp)
}

fn auto_create(
    ctx: &Context,
    rc: &RequestContext,
    name: &str,
    may_create: bool,
    node: BrokerId,
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
    match auto_create_topic(ctx, name) {
        Ok(topic) => describe_topic(&topic, node, want_topic_ops),
        Err(code) => unknown(code),
    }
}

/// Creates `name` with the broker defaults, or returns the topic a concurrent request made.
pub fn auto_create_topic(ctx: &Context, name: &str) -> Result<Arc<Topic>, ResponseError> {
    match ctx
        .metadata
        .create_topic(name, ctx.config.num_partitions, Default::default(), false)
    {
        Ok(t) => Ok(t),
        Err((ResponseError::TopicAlreadyExists, _)) => ctx
            .metadata
            .topic(name)
            .ok_or(ResponseError::UnknownTopicOrPartition),
        Err((code, _)) => Err(code),
    }
}

fn describe_topic(topic: &Topic, node: BrokerId, want_topic_ops: bool) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(matches!(
            &*topic.name,
            "__consumer_offsets" | "__transaction_state"
        ))
        .with_partitions(
            topic
                .partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(node)
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        );
    if want_topic_ops {
        t.topic_authorized_operations = super::cluster::TOPIC_OPERATIONS;
    }
    t
}
