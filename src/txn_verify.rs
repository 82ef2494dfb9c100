//! Cluster mode: KIP-890's verification of transactional produce on a partition whose
//! transaction coordinator is another broker.
//!
//! Before the first transactional batch of a producer's transaction is appended to a
//! partition, its leader asks the coordinator (AddPartitionsToTxn v4, verify only) whether
//! the partition is in the producer's open transaction, as Kafka's leaders do since 3.6. A
//! batch the coordinator does not know of would otherwise open a transaction that no marker
//! ever ends (a hanging transaction: the partition's last stable offset stuck for good).

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

/// The partitions of a Produce whose transactional batches the coordinator refused, by
/// (topic slot in the request, partition index), with the error each gets. Partitions this
/// broker does not lead, and producers already in a transaction on a partition, are not
/// asked about (the partition's open transaction was verified with its first batch).
pub async fn refused_partitions(
    ctx: &Context,
    transactional_id: &str,
    data: &[TopicProduceData],
    topics: &[Result<Arc<Topic>, ResponseError>],
) -> HashMap<(usize, i32), ResponseError> {
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
            if p.in_transaction(h.producer_id) {
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
    let answer = ask_coordinator(ctx, transactional_id, pid, epoch, &ask).await;
    let mut refused = HashMap::new();
    match answer {
        Ok(codes) => {
            for (topic, parts) in &ask {
                for (slot, index) in parts {
                    let code = codes.get(&(topic.clone(), *index)).copied().unwrap_or(0);
                    if code != 0 {
                        refused.insert((*slot, *index), produce_error(code));
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(transactional_id, producer_id = pid, error = %e, "transactional produce not verified: the coordinator did not answer");
            for parts in ask.values() {
                for key in parts {
                    refused.insert(*key, ResponseError::NotEnoughReplicas);
                }
            }
        }
    }
    if !refused.is_empty() {
        tracing::warn!(transactional_id, producer_id = pid, partitions = refused.len(), "transactional batches refused: the coordinator has no open transaction on these partitions for the producer");
    }
    refused
}

/// What a Produce answers for the coordinator's verdict: a coordinator that is moving or
/// busy is NOT_ENOUGH_REPLICAS (retriable for every Produce version, as in Kafka); a refusal
/// is passed on.
fn produce_error(code: i16) -> ResponseError {
    match ResponseError::try_from_code(code) {
        Some(
            ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::NotCoordinator
            | ResponseError::ConcurrentTransactions,
        )
        | None => ResponseError::NotEnoughReplicas,
        Some(e) => e,
    }
}

/// AddPartitionsToTxn v4 (verify only) to the transactional id's coordinator: the error
/// code of each partition asked about.
async fn ask_coordinator(
    ctx: &Context,
    transactional_id: &str,
    pid: i64,
    epoch: i16,
    ask: &BTreeMap<String, Vec<(usize, i32)>>,
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
            .with_verify_only(true)
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
