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
        send_markers(&ctx, prepared).await;
        let _ = tokio::time::timeout(RETRY, wake).await;
    }
}

/// The leader epoch of the transactional id's partition of `__transaction_state`: the
/// coordinator epoch its markers carry, so a partition refuses markers of a coordinator
/// that lost the id (TRANSACTION_COORDINATOR_FENCED), as in Kafka. 0 on a single node.
pub fn coordinator_epoch(metadata: &crate::metadata::Metadata, transactional_id: &str) -> i32 {
    if metadata.cluster().is_none() {
        return 0;
    }
    metadata
        .coordinator_placement(crate::coordinator_log::TXN_TOPIC, transactional_id)
        .map_or(0, |p| p.leader_epoch)
}

/// One pass over the prepared transactions: one WriteTxnMarkers per remote leader, carrying
/// the markers of every transaction with partitions there, sent to all leaders at once (a
/// slow leader delays only its own partitions, as Kafka's per-broker marker queues do).
/// Every partition a leader marked is forgotten, and a transaction completes when none of
/// its partitions is left.
async fn send_markers(ctx: &Weak<Context>, prepared: Vec<TxnMeta>) {
    // Only transactions whose prepared state is on every in-sync replica of the id's
    // partition of __transaction_state: a new coordinator must find them prepared.
    let mut ready = Vec::new();
    for meta in prepared {
        let commit = match meta.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => continue,
        };
        let Some(c) = ctx.upgrade() else { return };
        match c.txn_durable(&meta.transactional_id).await {
            Ok(()) => ready.push((meta, commit)),
            Err(e) => {
                tracing::debug!(transactional_id = %meta.transactional_id, error = ?e, "prepared state not replicated yet; markers wait");
            }
        }
    }
    // Leader address -> the markers for it: (transactional id, marker).
    let mut by_leader: BTreeMap<String, Vec<(String, WritableTxnMarker)>> = BTreeMap::new();
    let mut all_marked: BTreeMap<String, bool> = BTreeMap::new();
    {
        let Some(c) = ctx.upgrade() else { return };
        let Some(cluster) = &c.cluster else { return };
        let view = cluster.view();
        for (meta, commit) in &ready {
            all_marked.insert(meta.transactional_id.clone(), true);
            let mut topics: BTreeMap<String, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
            for (topic, index) in &meta.partitions {
                let Some(t) = c.metadata.topic(topic) else {
                    continue; // deleted: the coordinator forgets it on its next pass
                };
                let Some(leader) = t.placements.get(*index as usize).map(|p| p.leader) else {
                    continue;
                };
                if leader == c.config.node_id {
                    continue;
                }
                let Some(addr) = view.address(leader, &c.inter_broker_listener) else {
                    all_marked.insert(meta.transactional_id.clone(), false);
                    continue; // no live leader now: retried
                };
                topics
                    .entry(addr)
                    .or_default()
                    .entry(topic.clone())
                    .or_default()
                    .push(*index);
            }
            let epoch = coordinator_epoch(&c.metadata, &meta.transactional_id);
            for (addr, topics) in topics {
                let marker = WritableTxnMarker::default()
                    .with_producer_id(ProducerId(meta.producer_id))
                    .with_producer_epoch(meta.producer_epoch)
                    .with_transaction_result(*commit)
                    .with_coordinator_epoch(epoch)
                    .with_transaction_version(if meta.tv2 { 2 } else { 0 })
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                WritableTxnMarkerTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(t)))
                                    .with_partition_indexes(ps)
                            })
                            .collect(),
                    );
                by_leader
                    .entry(addr)
                    .or_default()
                    .push((meta.transactional_id.clone(), marker));
            }
        }
    }
    let mut sends = tokio::task::JoinSet::new();
    for (addr, markers) in by_leader {
        let Some(security) = ctx.upgrade().map(|c| c.inter_broker.clone()) else {
            return;
        };
        sends.spawn(async move {
            let ids: Vec<String> = markers.iter().map(|(id, _)| id.clone()).collect();
            // v2 carries each marker's transaction.version (KIP-1228); v1 is kept for
            // markers of version 0/1 transactions, which every Klamm broker takes.
            let version = if markers.iter().any(|(_, m)| m.transaction_version >= 2) {
                2
            } else {
                1
            };
            let req = WriteTxnMarkersRequest::default()
                .with_markers(markers.into_iter().map(|(_, m)| m).collect());
            let resp = async {
                let mut client =
                    Client::connect_with(&addr, Duration::from_secs(5), &security).await?;
                client.set_timeout(REQUEST_TIMEOUT);
                client.send(&req, version).await
            }
            .await;
            (addr, ids, resp)
        });
    }
    while let Some(joined) = sends.join_next().await {
        let Ok((addr, ids, resp)) = joined else {
            continue;
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(leader = %addr, transactions = ids.len(), error = %e, "WriteTxnMarkers failed; retried");
                for id in ids {
                    all_marked.insert(id, false);
                }
                continue;
            }
        };
        let Some(c) = ctx.upgrade() else { return };
        // Markers are answered in request order, one per transaction.
        for (id, m) in ids.iter().zip(&resp.markers) {
            for t in &m.topics {
                for p in &t.partitions {
                    if p.error_code == 0 {
                        c.txns.marked(id, t.name.0.as_str(), p.partition_index);
                    } else {
                        all_marked.insert(id.clone(), false);
                        tracing::warn!(transactional_id = %id, leader = %addr, topic = %t.name.0.as_str(), partition = p.partition_index, error_code = p.error_code, "transaction marker refused; retried");
                    }
                }
            }
        }
        if resp.markers.len() < ids.len() {
            for id in &ids[resp.markers.len()..] {
                all_marked.insert(id.clone(), false);
            }
        }
    }
    let Some(c) = ctx.upgrade() else { return };
    for (id, done) in all_marked {
        if !done {
            continue; // retried after RETRY, not at once: the leader may need a moment
        }
        let c2 = c.clone();
        // The completion writes local markers and offsets (store writes): off the runtime.
        let _ = tokio::task::spawn_blocking(move || c2.txns.complete_prepared(&c2.txn_env(), &id))
            .await;
    }
}
