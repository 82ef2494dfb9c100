//! KIP-890 on the partition's side: verification of transactional produce (part 1) and
//! the implicit add of transaction.version 2 producers (part 2).
//!
//! Before the first transactional batch of a producer's transaction is appended to a
//! partition, its leader asks the coordinator (AddPartitionsToTxn v4, verify only) whether
//! the partition is in the producer's open transaction, as Kafka's leaders do since 3.6. A
//! batch the coordinator does not know of would otherwise open a transaction that no marker
//! ever ends (a hanging transaction: the partition's last stable offset stuck for good).
//! On a single node (or with the coordinator on this broker) the append asks the
//! coordinator directly, under the partition's append lock.
//!
//! A transaction.version 2 producer sends no AddPartitionsToTxn or AddOffsetsToTxn: its
//! Produce v12+ and TxnOffsetCommit v5+ add the partition (or the group) themselves. The
//! leader (or group coordinator) adds it on the transaction coordinator, wherever that is,
//! before the append, as Kafka's AddPartitionsToTxnManager does (verify_only false).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::context::Context;
use crate::log::batch::BatchHeader;
use crate::metadata::Topic;

/// Bound on the question to the coordinator.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// Backoff and attempts of an implicit add that finds the producer's previous transaction
/// still being completed (CONCURRENT_TRANSACTIONS): Kafka's leader retries it too
/// (`add.partitions.to.txn.retry.backoff.ms`), so the client does not see the wait.
const ADD_RETRY_BACKOFF: Duration = Duration::from_millis(20);
const ADD_ATTEMPTS: u32 = 10;

/// The partitions of a transactional Produce the coordinator refused, by (topic slot in
/// the request, partition index), with the error each gets. Produce v12+ (transaction
/// version 2) adds the partitions to the transaction; older versions are verified here
/// only when the coordinator is another broker (else the append asks it). Partitions this
/// broker does not lead, and producers already in a transaction at this epoch on a
/// partition, are not asked about (verified or added with the transaction's first batch).
pub async fn refused_partitions(
    ctx: &Context,
    transactional_id: &str,
    version: i16,
    data: &[TopicProduceData],
    topics: &[Result<Arc<Topic>, ResponseError>],
) -> HashMap<(usize, i32), ResponseError> {
    let add = version >= 12;
    let remote = ctx.cluster.is_some() && ctx.coordinator_error(1, transactional_id).is_some();
    if !add && !remote {
        return HashMap::new();
    }
    let mut ask: BTreeMap<String, Vec<(usize, i32)>> = BTreeMap::new();
    let mut producer = None;
    for (slot, (t, topic)) in data.iter().zip(topics).enumerate() {
        let Ok(topic) = topic else { continue };
        for pd in &t.partition_data {
            let Some(h) = pd.records.as_deref().and_then(BatchHeader::parse) else {
                continue;
            };
            if !h.is_transactional() || h.producer_id < 0 {
                continue;
            }
            let Ok(p) = ctx.metadata.led_partition(topic, pd.index) else {
                continue;
            };
            if p.in_transaction(h.producer_id, h.producer_epoch) {
                continue;
            }
            producer = Some((h.producer_id, h.producer_epoch));
            ask.entry(topic.name.to_string())
                .or_default()
                .push((slot, pd.index));
        }
    }
    let Some((pid, epoch)) = producer else {
        return HashMap::new();
    };
    let mut refused = HashMap::new();
    if add {
        let partitions: Vec<(String, i32)> = ask
            .iter()
            .flat_map(|(t, parts)| parts.iter().map(move |(_, i)| (t.clone(), *i)))
            .collect();
        if let Err(e) =
            add_to_transaction(ctx, transactional_id, pid, epoch, &partitions, None).await
        {
            let e = produce_error(e.code(), version);
            for key in ask.values().flatten() {
                refused.insert(*key, e);
            }
        }
    } else {
        match ask_coordinator(ctx, transactional_id, pid, epoch, &ask, true).await {
            Ok(codes) => {
                for (topic, parts) in &ask {
                    for (slot, index) in parts {
                        let code = codes.get(&(topic.clone(), *index)).copied().unwrap_or(0);
                        if code != 0 {
                            refused.insert((*slot, *index), produce_error(code, version));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(transactional_id, producer_id = pid, error = %e, "transactional produce not verified: the coordinator did not answer");
                for key in ask.values().flatten() {
                    refused.insert(*key, ResponseError::NotEnoughReplicas);
                }
            }
        }
    }
    if !refused.is_empty() {
        tracing::warn!(transactional_id, producer_id = pid, partitions = refused.len(), add, "transactional batches refused: the coordinator has no open transaction on these partitions for the producer");
    }
    refused
}

/// Adds `partitions` (or, with `group`, the group: TxnOffsetCommit v5+) to a transaction
/// version 2 producer's transaction on its coordinator: this broker's coordinator directly,
/// another broker's with AddPartitionsToTxn (verify_only false). A group's coordinator
/// elsewhere gets the group's partition of `__consumer_offsets`, whose marker commits the
/// offsets the group coordinator holds.
pub async fn add_to_transaction(
    ctx: &Context,
    transactional_id: &str,
    pid: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    group: Option<&str>,
) -> Result<(), ResponseError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = add_once(ctx, transactional_id, pid, epoch, partitions, group).await;
        match result {
            Err(ResponseError::ConcurrentTransactions) if attempt < ADD_ATTEMPTS => {
                tokio::time::sleep(ADD_RETRY_BACKOFF).await;
            }
            r => return r,
        }
    }
}

async fn add_once(
    ctx: &Context,
    transactional_id: &str,
    pid: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    group: Option<&str>,
) -> Result<(), ResponseError> {
    if ctx.coordinator_error(1, transactional_id).is_none() {
        match group {
            Some(g) => {
                let offsets_partition = ctx.cluster.as_ref().and(partitions.first().cloned());
                ctx.txns
                    .add_offsets(transactional_id, pid, epoch, g, offsets_partition, true)?
            }
            None => {
                ctx.txns
                    .add_partitions(transactional_id, pid, epoch, partitions, false, true)?
            }
        }
        // Cluster mode: in the replicated state before the producer writes there, so a new
        // coordinator knows where the markers go.
        return ctx.txn_durable(transactional_id).await;
    }
    let mut ask: BTreeMap<String, Vec<(usize, i32)>> = BTreeMap::new();
    for (t, i) in partitions {
        ask.entry(t.clone()).or_default().push((0, *i));
    }
    let codes = ask_coordinator(ctx, transactional_id, pid, epoch, &ask, false)
        .await
        .map_err(|e| {
            tracing::warn!(transactional_id, producer_id = pid, error = %e, "implicit add to the transaction failed: the coordinator did not answer");
            ResponseError::CoordinatorNotAvailable
        })?;
    match codes.values().find(|c| **c != 0) {
        None => Ok(()),
        Some(code) => {
            Err(ResponseError::try_from_code(*code).unwrap_or(ResponseError::UnknownServerError))
        }
    }
}

/// What a Produce answers for the coordinator's verdict, as Kafka's leader maps it: a
/// coordinator that is moving or busy is NOT_ENOUGH_REPLICAS (retriable for every Produce
/// version); PRODUCER_FENCED is INVALID_PRODUCER_EPOCH; TRANSACTION_ABORTABLE (a partition
/// not in the transaction) is INVALID_TXN_STATE for clients older than Produce v11, which
/// do not know it; the rest is passed on.
pub fn produce_error(code: i16, version: i16) -> ResponseError {
    match ResponseError::try_from_code(code) {
        Some(
            ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::NotCoordinator
            | ResponseError::NetworkException
            | ResponseError::ConcurrentTransactions,
        )
        | None => ResponseError::NotEnoughReplicas,
        Some(ResponseError::ProducerFenced) => ResponseError::InvalidProducerEpoch,
        Some(ResponseError::TransactionAbortable | ResponseError::InvalidTxnState) => {
            if version >= 11 {
                ResponseError::TransactionAbortable
            } else {
                ResponseError::InvalidTxnState
            }
        }
        Some(e) => e,
    }
}

/// AddPartitionsToTxn v4 to the transactional id's coordinator (`verify_only`: whether
/// the partitions are in the open transaction; else add them): the error code of each
/// partition asked about. v4 and v5 are the same on the wire; v4 is what every Klamm
/// broker takes.
async fn ask_coordinator(
    ctx: &Context,
    transactional_id: &str,
    pid: i64,
    epoch: i16,
    ask: &BTreeMap<String, Vec<(usize, i32)>>,
    verify_only: bool,
) -> anyhow::Result<HashMap<(String, i32), i16>> {
    let addr = coordinator_address(ctx, transactional_id)
        .ok_or_else(|| anyhow::anyhow!("no live coordinator for the transactional id"))?;
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(
                ask.iter()
                    .map(|(t, parts)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.clone())))
                            .with_partitions(parts.iter().map(|(_, i)| *i).collect())
                    })
                    .collect(),
            ),
    ]);
    let resp = tokio::time::timeout(VERIFY_TIMEOUT, async {
        let mut client = ctx.dial(&addr, VERIFY_TIMEOUT).await?;
        client.set_timeout(VERIFY_TIMEOUT);
        client.send(&req, 4).await
    })
    .await
    .map_err(|_| anyhow::anyhow!("timed out"))??;
    if resp.error_code != 0 {
        anyhow::bail!("error {}", resp.error_code);
    }
    let mut codes = HashMap::new();
    for tx in &resp.results_by_transaction {
        for t in &tx.topic_results {
            for p in &t.results_by_partition {
                codes.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.partition_error_code,
                );
            }
        }
    }
    Ok(codes)
}

/// HOST:PORT of the leader of the transactional id's partition of `__transaction_state`.
fn coordinator_address(ctx: &Context, transactional_id: &str) -> Option<String> {
    let leader = ctx
        .metadata
        .coordinator_placement(crate::coordinator_log::TXN_TOPIC, transactional_id)?
        .leader;
    ctx.broker_address(leader)
}
