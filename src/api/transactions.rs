//! The transactional APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
//! and the admin views DescribeTransactions, ListTransactions and DescribeProducers. The
//! state machine is `txn::coordinator`; these handlers translate requests and errors.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::RequestContext;
use super::{sb, topic_name};
use crate::context::Context;
use crate::group::OFFSET_METADATA_MAX_BYTES;
use crate::txn::coordinator::{PendingOffset, TxnState};

/// Clients older than KIP-588 know a fenced producer as INVALID_PRODUCER_EPOCH; each API
/// got PRODUCER_FENCED from the version given.
pub(crate) fn fenced_for(e: ResponseError, version: i16, fenced_since: i16) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < fenced_since {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

fn code(r: Result<(), ResponseError>) -> i16 {
    r.err().map_or(0, |e| e.code())
}

/// One transaction's part of an AddPartitionsToTxn request (v0-3 have one, v4+ several).
struct AddPartitions<'a> {
    transactional_id: &'a str,
    producer_id: i64,
    epoch: i16,
    topics: &'a [AddPartitionsToTxnTopic],
    verify_only: bool,
}

/// Results for one transaction's partitions: an unknown partition fails alone and the
/// others are OPERATION_NOT_ATTEMPTED, as Kafka answers; otherwise all share `outcome`.
async fn add_partitions_one(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: AddPartitions<'_>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let AddPartitions {
        transactional_id,
        producer_id,
        epoch,
        topics,
        verify_only,
    } = req;
    let mut wanted = Vec::new();
    let mut unknown = Vec::new();
    for t in topics {
        let topic = ctx.metadata.topic(t.name.0.as_str());
        for p in &t.partitions {
            let key = (t.name.0.to_string(), *p);
            if topic.as_ref().and_then(|tp| tp.partition(*p)).is_some() {
                wanted.push(key);
            } else {
                unknown.push(key);
            }
        }
    }
    // v4+ comes from brokers: without verify_only it is a partition leader adding a
    // transaction.version 2 producer's partition implicitly (its Produce v12+).
    let tv2 = version >= 4 && !verify_only;
    let mut outcome = if unknown.is_empty() {
        ctx.txns
            .add_partitions(
                transactional_id,
                producer_id,
                epoch,
                &wanted,
                verify_only,
                tv2,
            )
            .map_err(|e| fenced_for(e, version, 2))
    } else {
        Err(ResponseError::OperationNotAttempted)
    };
    if outcome.is_ok() && !verify_only {
        // Cluster mode: the partitions are in the replicated state before the producer
        // writes to them, so a new coordinator knows where the markers go.
        outcome = ctx.txn_durable(transactional_id).await;
    }
    match outcome {
        // The previous transaction's markers are still being written: the client retries
        // in milliseconds, as against Kafka; not worth a warning each time.
        Err(ResponseError::ConcurrentTransactions) => {
            tracing::debug!(peer = %rc.peer, client_id = rc.client_id(), transactional_id, "AddPartitionsToTxn: previous transaction still completing");
        }
        Err(e) => {
            tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), transactional_id, error = ?e, "AddPartitionsToTxn refused");
        }
        Ok(()) => {}
    }
    topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|p| {
                    let key = (t.name.0.to_string(), *p);
                    let error = if unknown.contains(&key) {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        code(outcome)
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(error)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(results)
        })
        .collect()
}

pub async fn add_partitions_to_txn(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> Option<AddPartitionsToTxnResponse> {
    let mut resp = AddPartitionsToTxnResponse::default();
    if version <= 3 {
        resp.results_by_topic_v3_and_below = add_partitions_one(
            ctx,
            rc,
            version,
            AddPartitions {
                transactional_id: req.v3_and_below_transactional_id.as_str(),
                producer_id: req.v3_and_below_producer_id.0,
                epoch: req.v3_and_below_producer_epoch,
                topics: &req.v3_and_below_topics,
                verify_only: false,
            },
        )
        .await;
    } else {
        let mut results = Vec::with_capacity(req.transactions.len());
        for t in &req.transactions {
            let topic_results = add_partitions_one(
                ctx,
                rc,
                version,
                AddPartitions {
                    transactional_id: t.transactional_id.as_str(),
                    producer_id: t.producer_id.0,
                    epoch: t.producer_epoch,
                    topics: &t.topics,
                    verify_only: t.verify_only,
                },
            )
            .await;
            results.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(t.transactional_id.clone())
                    .with_topic_results(topic_results),
            );
        }
        resp.results_by_transaction = results;
    }
    Some(resp)
}

pub async fn add_offsets_to_txn(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> Option<AddOffsetsToTxnResponse> {
    if let Some(e) = ctx.coordinator_error(1, req.transactional_id.0.as_str()) {
        return Some(AddOffsetsToTxnResponse::default().with_error_code(e.code()));
    }
    let group = req.group_id.0.as_str();
    let result = if let Err(e) = crate::group::validate_group_id(group) {
        Err(e)
    } else {
        // Cluster mode: the group's partition of __consumer_offsets joins the transaction,
        // so its marker reaches the group's coordinator wherever that is.
        let offsets_partition = ctx
            .cluster
            .as_ref()
            .and_then(|_| ctx.metadata.topic(crate::coordinator_log::OFFSETS_TOPIC))
            .map(|t| {
                (
                    t.name.to_string(),
                    crate::context::coordinator_partition(group, t.placements.len()),
                )
            });
        ctx.txns
            .add_offsets(
                req.transactional_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                group,
                offsets_partition,
                false,
            )
            .map_err(|e| fenced_for(e, version, 2))
    };
    let result = match result {
        Ok(()) => ctx.txn_durable(req.transactional_id.as_str()).await,
        e => e,
    };
    if let Err(e) = result {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), transactional_id = %req.transactional_id.as_str(), error = ?e, "AddOffsetsToTxn refused");
    }
    Some(AddOffsetsToTxnResponse::default().with_error_code(code(result)))
}

pub async fn end_txn(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: EndTxnRequest,
) -> Option<EndTxnResponse> {
    let none = || {
        EndTxnResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(e) = ctx.coordinator_error(1, req.transactional_id.0.as_str()) {
        return Some(none().with_error_code(e.code()));
    }
    let commit = req.committed;
    let id = req.transactional_id.as_str();
    // The markers are one small RocksDB write per partition, like a Produce's append.
    // v5 is sent by transaction.version 2 producers only (KIP-890 part 2): every end bumps
    // the epoch, and the response carries the ids the producer continues with.
    let env = ctx.txn_env();
    let result = if version >= 5 {
        ctx.txns
            .end_txn_v2(&env, id, req.producer_id.0, req.producer_epoch, commit)
            .map(Some)
    } else {
        ctx.txns
            .end_txn(&env, id, req.producer_id.0, req.producer_epoch, commit)
            .map(|()| None)
    }
    .map_err(|e| fenced_for(e, version, 2));
    // Cluster mode: answered once the prepared state is replicated (the markers follow).
    let result = match result {
        Ok(ids) => ctx.txn_durable(id).await.map(|()| ids),
        Err(e) => Err(e),
    };
    match result {
        Err(e) => {
            tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), transactional_id = %id, committed = commit, error = ?e, "EndTxn refused");
            Some(none().with_error_code(e.code()))
        }
        Ok(None) => Some(none()),
        Ok(Some((producer_id, epoch))) => Some(
            EndTxnResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
        ),
    }
}

pub async fn txn_offset_commit(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    mut req: TxnOffsetCommitRequest,
) -> Option<TxnOffsetCommitResponse> {
    // v6 (KIP-1319) names topics by id only: resolved here to the names the rest of the
    // path keys offsets by. An id this broker does not know keeps an empty name and is
    // answered UNKNOWN_TOPIC_ID.
    if version >= 6 {
        for t in req.topics.iter_mut() {
            t.name = ctx
                .metadata
                .topic_by_id(&t.topic_id)
                .map_or_else(|| topic_name(""), |tp| topic_name(&tp.name));
        }
    }
    let group = req.group_id.0.as_str();
    // v3+ carries the consumer's generation (classic) or member epoch (KIP-848): a zombie
    // member's offsets are refused as OffsetCommit would refuse them. Without it (-1, no
    // member) Kafka validates nothing but the group id and the producer.
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let committed: Vec<(uuid::Uuid, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            let id = ctx.metadata.topic(t.name.0.as_str()).map(|tp| tp.id);
            t.partitions
                .iter()
                .filter_map(move |p| id.map(|id| (id, p.partition_index)))
        })
        .collect();
    let check = crate::group::CommitCheck {
        group_id: group,
        generation_or_epoch: req.generation_id_or_member_epoch,
        member_id: req.member_id.as_str(),
        instance_id: &instance,
        partitions: &committed,
        topic_name: &|id| ctx.metadata.topic_by_id(id).map(|t| t.name.to_string()),
        transactional: true,
        version,
    };
    let mut pending = Vec::new();
    let mut per_partition: Vec<(usize, i32, Option<ResponseError>)> = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = ctx.metadata.topic(t.name.0.as_str());
        for p in &t.partitions {
            let error = if version >= 6 && topic.is_none() {
                Some(ResponseError::UnknownTopicId)
            } else if topic
                .as_ref()
                .and_then(|tp| tp.partition(p.partition_index))
                .is_none()
            {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
            {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                pending.push(PendingOffset {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
                None
            };
            per_partition.push((ti, p.partition_index, error));
        }
    }
    // The member check and the offsets' hand-over happen with the group held, so a
    // rebalance cannot slip between them. A single broker is also the transaction's
    // coordinator and holds them in the transaction's state. A cluster's group coordinator
    // holds them itself, as Kafka's does, as the producer's transactional records on the
    // group's partition of __consumer_offsets, which the transaction's marker (sent there
    // like to any partition of the transaction) commits or aborts.
    // v5+ (transaction.version 2 producers) carries the AddOffsetsToTxn the producer no
    // longer sends: the group (in a cluster, its partition of __consumer_offsets) joins
    // the transaction first, on its coordinator wherever that is.
    let implicit = match ctx.coordinator_error(0, group) {
        None if version >= 5 => add_group_implicitly(ctx, &req, group).await,
        _ => Ok(()),
    };
    let shared = match ctx.coordinator_error(0, group) {
        Some(e) => Err(e),
        None if implicit.is_err() => implicit,
        None if ctx.cluster.is_some() => {
            let now = crate::clock::now_ms();
            let offsets: Vec<(String, i32, crate::group::CommittedOffset)> = pending
                .into_iter()
                .map(|o| {
                    (
                        o.topic,
                        o.partition,
                        crate::group::CommittedOffset {
                            offset: o.offset,
                            leader_epoch: o.leader_epoch,
                            metadata: o.metadata,
                            commit_timestamp_ms: now,
                        },
                    )
                })
                .collect();
            let write = crate::group::commit_checked(
                &ctx.groups,
                &ctx.consumer_groups,
                &ctx.streams_groups,
                &check,
                || {
                    ctx.groups
                        .offsets
                        .commit_txn(group, req.producer_id.0, req.producer_epoch, &offsets)
                        .map_err(|e| fenced_for(e, version, 3))
                },
            )
            .and_then(|r| r);
            match write {
                Ok(w) => crate::group::journal::settle(w).await,
                Err(e) => Err(e),
            }
        }
        None => crate::group::commit_checked(
            &ctx.groups,
            &ctx.consumer_groups,
            &ctx.streams_groups,
            &check,
            || {
                ctx.txns
                    .add_pending_offsets(
                        req.transactional_id.as_str(),
                        req.producer_id.0,
                        req.producer_epoch,
                        group,
                        pending,
                    )
                    .map_err(|e| fenced_for(e, version, 3))
            },
        )
        .and_then(|r| r),
    };
    if let Err(e) = shared {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), transactional_id = %req.transactional_id.as_str(), group, error = ?e, "TxnOffsetCommit refused");
    }
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = req
        .topics
        .iter()
        .map(|t| {
            let r = TxnOffsetCommitResponseTopic::default();
            if version >= 6 {
                r.with_topic_id(t.topic_id)
            } else {
                r.with_name(t.name.clone())
            }
        })
        .collect();
    for (ti, index, error) in per_partition {
        let error = error.map_or_else(|| code(shared), |e| e.code());
        topics[ti].partitions.push(
            TxnOffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(error),
        );
    }
    Some(TxnOffsetCommitResponse::default().with_topics(topics))
}

/// TxnOffsetCommit v5+'s implicit AddOffsetsToTxn (KIP-890 part 2). Errors as Kafka's
/// group coordinator answers them: a fenced producer as for TxnOffsetCommit itself; a
/// coordinator that is busy, moving or unreachable as COORDINATOR_NOT_AVAILABLE, which
/// the producer retries.
async fn add_group_implicitly(
    ctx: &Context,
    req: &TxnOffsetCommitRequest,
    group: &str,
) -> Result<(), ResponseError> {
    crate::group::validate_group_id(group)?;
    let offsets_partition: Vec<(String, i32)> = ctx
        .cluster
        .as_ref()
        .and_then(|_| ctx.metadata.topic(crate::coordinator_log::OFFSETS_TOPIC))
        .map(|t| {
            (
                t.name.to_string(),
                crate::context::coordinator_partition(group, t.placements.len()),
            )
        })
        .into_iter()
        .collect();
    crate::txn_verify::add_to_transaction(
        ctx,
        req.transactional_id.as_str(),
        req.producer_id.0,
        req.producer_epoch,
        &offsets_partition,
        Some(group),
    )
    .await
    .map_err(|e| match e {
        ResponseError::ConcurrentTransactions
        | ResponseError::NotCoordinator
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::NetworkException => ResponseError::CoordinatorNotAvailable,
        e => e,
    })
}

pub async fn describe_transactions(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: DescribeTransactionsRequest,
) -> Option<DescribeTransactionsResponse> {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let mut out = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1)
                .with_transaction_state(sb(""));
            match ctx.txns.describe(id.as_str()) {
                None => out.error_code = ResponseError::TransactionalIdNotFound.code(),
                Some(m) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (t, p) in &m.partitions {
                        match topics.last_mut() {
                            Some(last) if last.topic.0.as_str() == t => last.partitions.push(*p),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(topic_name(t))
                                    .with_partitions(vec![*p]),
                            ),
                        }
                    }
                    out = out
                        .with_transaction_state(sb(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(topics);
                }
            }
            out
        })
        .collect();
    Some(DescribeTransactionsResponse::default().with_transaction_states(states))
}

pub async fn list_transactions(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: ListTransactionsRequest,
) -> Option<ListTransactionsResponse> {
    const STATES: [TxnState; 6] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    // v2 (KIP-1152): a regular expression the whole transactional id must match; null or
    // empty lists all. Kafka compiles it with RE2J, whose syntax the regex crate shares.
    let pattern = match req.transactional_id_pattern.as_deref() {
        Some(p) if version >= 2 && !p.is_empty() => {
            match regex::RegexBuilder::new(&format!("^(?:{p})$"))
                .size_limit(1 << 20)
                .build()
            {
                Ok(re) => Some(re),
                Err(e) => {
                    tracing::warn!(pattern = p, error = %e, "ListTransactions: invalid transactional id pattern");
                    return Some(
                        ListTransactionsResponse::default()
                            .with_error_code(ResponseError::InvalidRegularExpression.code()),
                    );
                }
            }
        }
        _ => None,
    };
    let now = crate::clock::now_ms();
    let states = ctx
        .txns
        .list()
        .into_iter()
        .filter(|m| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == m.state.name())
        })
        .filter(|m| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
        })
        .filter(|m| {
            // v1 (KIP-994): only transactions running longer than the filter.
            version < 1
                || req.duration_filter < 0
                || (m.start_ms >= 0 && now - m.start_ms > req.duration_filter)
        })
        .filter(|m| {
            pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&m.transactional_id))
        })
        .map(|m| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(sb(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(sb(m.state.name()))
        })
        .collect();
    Some(
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(states),
    )
}

pub async fn describe_producers(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: DescribeProducersRequest,
) -> Option<DescribeProducersResponse> {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.metadata.topic(t.name.0.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|i| {
                    let mut out = PartitionResponse::default().with_partition_index(*i);
                    match topic.as_ref().and_then(|tp| tp.partition(*i)) {
                        None => out.error_code = ResponseError::UnknownTopicOrPartition.code(),
                        Some(p) => {
                            out.active_producers = p
                                .producers()
                                .into_iter()
                                .map(|(pid, e)| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(pid))
                                        .with_producer_epoch(i32::from(e.epoch))
                                        .with_last_sequence(
                                            e.batches.back().map_or(-1, |b| b.last_seq),
                                        )
                                        .with_last_timestamp(e.last_timestamp)
                                        .with_coordinator_epoch(e.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            e.txn_first_offset.unwrap_or(-1),
                                        )
                                })
                                .collect();
                        }
                    }
                    out
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Some(DescribeProducersResponse::default().with_topics(topics))
}

/// WriteTxnMarkers: a transaction coordinator on another broker ends a transaction on the
/// partitions this broker leads (cluster mode; `crate::txn_markers` is the sender). Each
/// marker is answered once the partition's in-sync replicas have it, as Kafka appends
/// markers with acks=all, so a completed transaction's markers survive a leader's loss.
pub async fn write_txn_markers(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: WriteTxnMarkersRequest,
) -> Option<WriteTxnMarkersResponse> {
    use crate::log::partition::Marker;
    rc.exempt_from_request_quota();
    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    let timeout = std::time::Duration::from_secs(10);
    // Only the brokers of a cluster send it. A single broker has no one to take it from,
    // and a client must not end other producers' transactions: refused as Kafka refuses a
    // principal without CLUSTER_ACTION.
    let refused = ctx.cluster.is_none();
    if refused {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), "WriteTxnMarkers refused: not in a cluster");
    }
    let mut markers = Vec::with_capacity(req.markers.len());
    for m in req.markers {
        let marker = if m.transaction_result {
            Marker::Commit
        } else {
            Marker::Abort
        };
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in m.topics {
            let topic = ctx.metadata.topic(t.name.0.as_str());
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for index in t.partition_indexes {
                let written = match &topic {
                    _ if refused => Err(ResponseError::ClusterAuthorizationFailed),
                    None => Err(ResponseError::UnknownTopicOrPartition),
                    Some(tp) => match ctx.metadata.led_partition(tp, index) {
                        Err(e) => Err(e),
                        Ok(p) => {
                            let epoch = p.leader_epoch();
                            // v2 (KIP-1228): the coordinator's transaction.version
                            // decides how strictly the marker's epoch is checked.
                            match p.write_marker(
                                m.producer_id.0,
                                m.producer_epoch,
                                marker,
                                m.coordinator_epoch,
                                m.transaction_version >= 2,
                            ) {
                                Ok(offset) => {
                                    let done =
                                        p.wait_for_high_watermark(offset + 1, epoch, timeout).await;
                                    // Offsets held for the transaction take effect once its
                                    // marker is replicated, as in Kafka.
                                    if done.is_ok()
                                        && tp.name.as_ref() == crate::coordinator_log::OFFSETS_TOPIC
                                    {
                                        ctx.groups.txn_marker_written(
                                            &ctx.consumer_groups,
                                            index,
                                            tp.placements.len(),
                                            m.producer_id.0,
                                            m.transaction_result,
                                        );
                                    }
                                    done
                                }
                                Err(e) => Err(e),
                            }
                        }
                    },
                };
                if let (Err(e), false) = (&written, refused) {
                    tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), topic = %t.name.0.as_str(), partition = index, producer_id = m.producer_id.0, error = ?e, "transaction marker not written");
                }
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code(written.map(|_| ()))),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    Some(WriteTxnMarkersResponse::default().with_markers(markers))
}
