//! The share coordinator's APIs (KIP-932): InitializeShareGroupState, ReadShareGroupState,
//! WriteShareGroupState, DeleteShareGroupState and ReadShareGroupStateSummary. In a cluster
//! the leaders of share partitions on other brokers call them (see `share::persister`);
//! they need CLUSTER_ACTION, as in Kafka. The work is `share::coordinator`'s.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::context::Context;
use crate::share::partition::{PersistedBatch, ShareSnapshot};
use crate::share::records::StateKey;

fn key(group: &StrBytes, topic_id: uuid::Uuid, partition: i32) -> StateKey {
    (group.to_string(), topic_id, partition)
}

/// The error code and Kafka's message for a failed partition.
fn failure(e: ResponseError) -> (i16, Option<StrBytes>) {
    (
        e.code(),
        Some(StrBytes::from_string(e.description().to_string())),
    )
}

/// Refuses a request with no group id, as Kafka's coordinator does.
fn group_ok(group: &StrBytes) -> bool {
    !group.is_empty()
}

pub async fn read(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: ReadShareGroupStateRequest,
) -> Option<ReadShareGroupStateResponse> {
    use read_share_group_state_response::{PartitionResult, ReadStateResult, StateBatch};
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r = PartitionResult::default()
                .with_partition(p.partition)
                .with_start_offset(-1);
            let answer = if group_ok(&req.group_id) {
                ctx.share_coordinator.read(
                    ctx,
                    &key(&req.group_id, t.topic_id, p.partition),
                    p.leader_epoch,
                )
            } else {
                Err(ResponseError::InvalidRequest)
            };
            match answer {
                Ok(Some(s)) => {
                    r.state_epoch = s.state_epoch;
                    r.start_offset = s.start_offset;
                    r.state_batches = s
                        .batches
                        .iter()
                        .map(|b| {
                            StateBatch::default()
                                .with_first_offset(b.first_offset)
                                .with_last_offset(b.last_offset)
                                .with_delivery_state(b.delivery_state)
                                .with_delivery_count(b.delivery_count)
                        })
                        .collect();
                }
                Ok(None) => {}
                Err(e) => (r.error_code, r.error_message) = failure(e),
            }
            partitions.push(r);
        }
        results.push(
            ReadStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    Some(ReadShareGroupStateResponse::default().with_results(results))
}

pub async fn write(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: WriteShareGroupStateRequest,
) -> Option<WriteShareGroupStateResponse> {
    use write_share_group_state_response::{PartitionResult, WriteStateResult};
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let snapshot = ShareSnapshot {
                state_epoch: p.state_epoch,
                start_offset: p.start_offset,
                delivery_complete_count: p.delivery_complete_count,
                batches: p
                    .state_batches
                    .iter()
                    .map(|b| PersistedBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        delivery_state: b.delivery_state,
                        delivery_count: b.delivery_count,
                    })
                    .collect(),
            };
            let answer = if !group_ok(&req.group_id) || !well_formed(&snapshot) {
                Err(ResponseError::InvalidRequest)
            } else {
                ctx.share_coordinator
                    .write(
                        ctx,
                        &key(&req.group_id, t.topic_id, p.partition),
                        p.leader_epoch,
                        snapshot,
                    )
                    .await
            };
            let mut r = PartitionResult::default().with_partition(p.partition);
            if let Err(e) = answer {
                (r.error_code, r.error_message) = failure(e);
            }
            partitions.push(r);
        }
        results.push(
            WriteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    Some(WriteShareGroupStateResponse::default().with_results(results))
}

/// A state a share partition could load: a start offset, and batches in order.
fn well_formed(s: &ShareSnapshot) -> bool {
    s.start_offset >= 0
        && s.batches
            .windows(2)
            .all(|w| w[0].last_offset < w[1].first_offset)
        && s.batches.iter().all(|b| b.first_offset <= b.last_offset)
}

pub async fn initialize(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: InitializeShareGroupStateRequest,
) -> Option<InitializeShareGroupStateResponse> {
    use initialize_share_group_state_response::{InitializeStateResult, PartitionResult};
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let answer = if !group_ok(&req.group_id) || p.start_offset < -1 {
                Err(ResponseError::InvalidRequest)
            } else {
                ctx.share_coordinator
                    .initialize(
                        ctx,
                        &key(&req.group_id, t.topic_id, p.partition),
                        p.state_epoch,
                        p.start_offset,
                    )
                    .await
            };
            let mut r = PartitionResult::default().with_partition(p.partition);
            if let Err(e) = answer {
                (r.error_code, r.error_message) = failure(e);
            }
            partitions.push(r);
        }
        results.push(
            InitializeStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    Some(InitializeShareGroupStateResponse::default().with_results(results))
}

pub async fn delete(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: DeleteShareGroupStateRequest,
) -> Option<DeleteShareGroupStateResponse> {
    use delete_share_group_state_response::{DeleteStateResult, PartitionResult};
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let answer = if group_ok(&req.group_id) {
                ctx.share_coordinator
                    .delete(ctx, &key(&req.group_id, t.topic_id, p.partition))
                    .await
            } else {
                Err(ResponseError::InvalidRequest)
            };
            let mut r = PartitionResult::default().with_partition(p.partition);
            if let Err(e) = answer {
                (r.error_code, r.error_message) = failure(e);
            }
            partitions.push(r);
        }
        results.push(
            DeleteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    Some(DeleteShareGroupStateResponse::default().with_results(results))
}

pub async fn summary(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: ReadShareGroupStateSummaryRequest,
) -> Option<ReadShareGroupStateSummaryResponse> {
    use read_share_group_state_summary_response::{PartitionResult, ReadStateSummaryResult};
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r = PartitionResult::default()
                .with_partition(p.partition)
                .with_start_offset(-1)
                .with_leader_epoch(-1)
                .with_delivery_complete_count(-1);
            let answer = if group_ok(&req.group_id) {
                ctx.share_coordinator
                    .summary(ctx, &key(&req.group_id, t.topic_id, p.partition))
            } else {
                Err(ResponseError::InvalidRequest)
            };
            match answer {
                Ok(Some(s)) => {
                    r.state_epoch = s.snapshot.state_epoch;
                    r.leader_epoch = s.leader_epoch;
                    r.start_offset = s.snapshot.start_offset;
                    r.delivery_complete_count = s.snapshot.delivery_complete_count;
                }
                Ok(None) => {}
                Err(e) => (r.error_code, r.error_message) = failure(e),
            }
            partitions.push(r);
        }
        results.push(
            ReadStateSummaryResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    Some(ReadShareGroupStateSummaryResponse::default().with_results(results))
}

/// The answers of a request refused CLUSTER_ACTION: every partition gets
/// CLUSTER_AUTHORIZATION_FAILED, as Kafka's error responses of these APIs.
pub mod refused {
    use kafka_protocol::messages::*;
    use kafka_protocol::ResponseError;

    const DENIED: ResponseError = ResponseError::ClusterAuthorizationFailed;

    macro_rules! refusal {
        ($name:ident, $req:ty, $resp:ty, $module:ident, $result:ident) => {
            pub fn $name(r: $req) -> $resp {
                use $module::{$result, PartitionResult};
                <$resp>::default().with_results(
                    r.topics
                        .iter()
                        .map(|t| {
                            $result::default()
                                .with_topic_id(t.topic_id)
                                .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        PartitionResult::default()
                                            .with_partition(p.partition)
                                            .with_error_code(DENIED.code())
                                            .with_error_message(Some(
                                                kafka_protocol::protocol::StrBytes::from_static_str(
                                                    "Cluster authorization failed.",
                                                ),
                                            ))
                                    })
                                    .collect(),
                            )
                        })
                        .collect(),
                )
            }
        };
    }

    refusal!(
        read,
        ReadShareGroupStateRequest,
        ReadShareGroupStateResponse,
        read_share_group_state_response,
        ReadStateResult
    );
    refusal!(
        write,
        WriteShareGroupStateRequest,
        WriteShareGroupStateResponse,
        write_share_group_state_response,
        WriteStateResult
    );
    refusal!(
        initialize,
        InitializeShareGroupStateRequest,
        InitializeShareGroupStateResponse,
        initialize_share_group_state_response,
        InitializeStateResult
    );
    refusal!(
        delete,
        DeleteShareGroupStateRequest,
        DeleteShareGroupStateResponse,
        delete_share_group_state_response,
        DeleteStateResult
    );
    refusal!(
        summary,
        ReadShareGroupStateSummaryRequest,
        ReadShareGroupStateSummaryResponse,
        read_share_group_state_summary_response,
        ReadStateSummaryResult
    );
}
