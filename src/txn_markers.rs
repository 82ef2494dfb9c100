//! Cluster mode: the markers of prepared transactions.
//!
//! The transaction coordinator writes a commit or abort marker into every partition of a
//! transaction, once the prepared state is replicated on `__transaction_state`. Partitions
//! it leads itself it marks directly; for the others it sends WriteTxnMarkers to their
//! leaders, as Kafka's TransactionMarkerChannelManager does, and completes the transaction
//! once every leader wrote its marker. EndTxn is answered when
//! the transaction is prepared (as in Kafka); its producer's next transaction waits with
//! CONCURRENT_TRANSACTIONS until the markers are in.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::context::Context;
use crate::txn::coordinator::{TxnMeta, TxnState};

/// How often prepared transactions are looked at even without a wake-up: a leader that
/// refused (or moved) gets the marker again.
const RETRY: Duration = Duration::from_millis(200);
/// Bound on one WriteTxnMarkers round trip (the leader waits for its in-sync replicas).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends the markers of prepared transactions to the leaders of their remote partitions
/// until the broker is gone.
pub async fn run(ctx: Weak<Context>) {
    loop {
        let Some(c) = ctx.upgrade() else { return };
        let notify = c.txns.remote_markers();
        let wake = notify.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let prepared = c.txns.prepared();
        drop(c);
        for meta in prepared {
            send_markers(&ctx, &meta).await;
        }
        let _ = tokio::time::timeout(RETRY, wake).await;
    }
}

/// One pass over one prepared transaction: a WriteTxnMarkers per remote leader; every
/// partition a leader marked is forgotten, and the transaction completes when none is left.
async fn send_markers(ctx: &Weak<Context>, meta: &TxnMeta) {
    let commit = match meta.state {
        TxnState::PrepareCommit => true,
        TxnState::PrepareAbort => false,
        _ => return,
    };
    // No marker before the prepared state is on every in-sync replica of the id's
    // partition of __transaction_state: a new coordinator must find it prepared.
    {
        let Some(c) = ctx.upgrade() else { return };
        if let Err(e) = c.txn_durable(&meta.transactional_id).await {
            tracing::debug!(transactional_id = %meta.transactional_id, error = ?e, "prepared state not replicated yet; markers wait");
            return;
        }
    }
    // Remote partitions by their leader's address.
    let mut by_leader: BTreeMap<String, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    {
        let Some(c) = ctx.upgrade() else { return };
        let Some(cluster) = &c.cluster else { return };
        let view = cluster.view();
        for (topic, index) in &meta.partitions {
            let Some(t) = c.metadata.topic(topic) else {
                continue; // deleted: the coordinator forgets it on its next pass
            };
            let Some(leader) = t.placement(*index).map(|p| p.leader) else {
                continue;
            };
            if leader == c.config.node_id {
                continue;
            }
            let Some(e) = view.brokers.get(&leader) else {
                continue; // no live leader now: retried
            };
            by_leader
                .entry(format!("{}:{}", e.host, e.port))
                .or_default()
                .entry(topic.clone())
                .or_default()
                .push(*index);
        }
    }
    let mut all_marked = true;
    for (addr, topics) in by_leader {
        let req =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(meta.producer_id))
                .with_producer_epoch(meta.producer_epoch)
                .with_transaction_result(commit)
                .with_coordinator_epoch(0)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            WritableTxnMarkerTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t)))
                                .with_partition_indexes(ps)
                        })
                        .collect(),
                )]);
        let resp = async {
            let mut client = Client::connect(&addr, Duration::from_secs(5)).await?;
            client.set_timeout(REQUEST_TIMEOUT);
            client.send(&req, 1).await
        }
        .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(transactional_id = %meta.transactional_id, leader = %addr, error = %e, "WriteTxnMarkers failed; retried");
                all_marked = false;
                continue;
            }
        };
        let Some(c) = ctx.upgrade() else { return };
        for m in &resp.markers {
            for t in &m.topics {
                for p in &t.partitions {
                    if p.error_code == 0 {
                        c.txns
                            .marked(&meta.transactional_id, t.name.0.as_str(), p.partition_index);
                    } else {
                        all_marked = false;
                        tracing::warn!(transactional_id = %meta.transactional_id, leader = %addr, topic = %t.name.0.as_str(), partition = p.partition_index, error_code = p.error_code, "transaction marker refused; retried");
                    }
                }
            }
        }
    }
    if !all_marked {
        return; // retried after RETRY, not at once: the leader may need a moment
    }
    let Some(c) = ctx.upgrade() else { return };
    let id = meta.transactional_id.clone();
    let c2 = c.clone();
    // The completion writes local markers and offsets (store writes): off the runtime.
    let _ =
        tokio::task::spawn_blocking(move || c2.txns.complete_prepared(&c2.txn_env(), &id)).await;
}
