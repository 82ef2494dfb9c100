//! Produce: validate each partition's record batches and append them to the log.

use std::sync::Arc;

use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use super::metadata::auto_create_topic;
use super::sb;
use crate::broker::Context;
use crate::log::batch::split_and_validate;
use crate::metadata::{validate_topic_name, Topic};
use crate::server::dispatch::RequestContext;

pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let acks_valid = matches!(acks, -1..=1);
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| produce_topic(ctx, rc, version, acks_valid, t))
        .collect();
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

fn resolve_topic(
    ctx: &Context,
    version: i16,
    data: &TopicProduceData,
) -> Result<Arc<Topic>, ResponseError> {
    if version >= 13 {
        return ctx
            .metadata
            .topic_by_id(&data.topic_id)
            .ok_or(ResponseError::UnknownTopicId);
    }
    let name = data.name.0.as_str();
    if let Some(t) = ctx.metadata.topic(name) {
        return Ok(t);
    }
    if validate_topic_name(name).is_err() {
        return Err(ResponseError::InvalidTopicException);
    }
    if !ctx.config.auto_create_topics_enable {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    auto_create_topic(ctx, name)
}

fn produce_topic(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    acks_valid: bool,
    data: TopicProduceData,
) -> TopicProduceResponse {
    let topic = if acks_valid {
        resolve_topic(ctx, version, &data)
    } else {
        Err(ResponseError::InvalidRequiredAcks)
    };
    let max_message_bytes = topic
        .as_ref()
        .ok()
        .and_then(|t| t.configs.get("max.message.bytes"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(ctx.config.message_max_bytes);
    let partition_responses = data
        .partition_data
        .iter()
        .map(|pd| {
            let mut out = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let result = topic.as_ref().map_err(|e| (*e, None)).and_then(|t| {
                let p = t
                    .partition(pd.index)
                    .ok_or((ResponseError::UnknownTopicOrPartition, None))?;
                let records = pd
                    .records
                    .as_ref()
                    .ok_or((ResponseError::CorruptMessage, None))?;
                let batches = split_and_validate(records, max_message_bytes).map_err(|e| {
                    tracing::warn!(
                        peer = %rc.peer,
                        client_id = rc.client_id(),
                        topic = %t.name,
                        partition = pd.index,
                        "rejected produce: {e}"
                    );
                    (e.error(), Some(e.to_string()))
                })?;
                p.append(&batches).map_err(|e| (e, None))
            });
            match result {
                Ok(r) => {
                    out.base_offset = r.base_offset;
                    out.log_start_offset = r.log_start_offset;
                }
                Err((code, message)) => {
                    out.error_code = code.code();
                    if version >= 8 {
                        out.error_message = message.map(sb);
                    }
                }
            }
            out
        })
        .collect();
    TopicProduceResponse::default()
        .with_name(data.name)
        .with_topic_id(data.topic_id)
        .with_partition_responses(partition_responses)
}
