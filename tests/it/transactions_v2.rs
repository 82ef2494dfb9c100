//! Transactions v2 (KIP-890 part 2) over the wire: the feature clients negotiate it by,
//! partitions and groups added implicitly by Produce v12+ and TxnOffsetCommit v5+, the
//! epoch bump of every EndTxn v5 (markers at the new epoch, the new ids in the response),
//! retries recognised, stale epochs fenced, and version 0/1 clients beside them.

use crate::common;
use crate::transactions::{
    add_partitions, batches, committed, end_txn, fetch_iso, init, latest, txn_id,
};

use common::wire::*;
use common::*;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

/// A transactional Produce carrying its transactional id; the partition's error code.
async fn produce_txn(
    c: &mut Client,
    id: &str,
    topic: &str,
    records: bytes::Bytes,
    version: i16,
) -> i16 {
    let req =
        produce_req(topic, Uuid::nil(), 0, records, -1).with_transactional_id(Some(txn_id(id)));
    c.send(&req, version).await.responses[0].partition_responses[0].error_code
}

/// EndTxn v5: (error, producer id, epoch) of the response.
async fn end_v5(c: &mut Client, id: &str, pid: i64, epoch: i16, commit: bool) -> (i16, i64, i16) {
    let r = c
        .send(
            &EndTxnRequest::default()
                .with_transactional_id(txn_id(id))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit),
            5,
        )
        .await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// The producer's epoch and open transaction's first offset on partition 0, as
/// DescribeProducers reports them (the epoch of its last batch or marker there).
async fn producer_on(c: &mut Client, topic: &str, pid: i64) -> (i32, i64) {
    let r = c
        .send(
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(tn(topic))
                    .with_partition_indexes(vec![0]),
            ]),
            0,
        )
        .await;
    let p = r.topics[0].partitions[0]
        .active_producers
        .iter()
        .find(|p| p.producer_id.0 == pid)
        .expect("the producer has state on the partition");
    (p.producer_epoch, p.current_txn_start_offset)
}

async fn txn_offset_commit(
    c: &mut Client,
    id: &str,
    (pid, epoch): (i64, i16),
    group: &str,
    offset: i64,
    version: i16,
) -> i16 {
    let r = c
        .send(
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id(id))
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(tn("src"))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)])]),
            version,
        )
        .await;
    r.topics[0].partitions[0].error_code
}

#[tokio::test]
async fn the_broker_offers_transaction_version_2() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let r = c
        .send(
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
            3,
        )
        .await;
    assert_eq!(r.error_code, 0);
    let finalized: Vec<(String, i16, i16)> = r
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect();
    assert!(finalized.contains(&("transaction.version".into(), 2, 2)));
    let supported = r
        .supported_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .expect("transaction.version is supported");
    assert_eq!((supported.min_version, supported.max_version), (0, 2));
    let max = |key: ApiKey| {
        r.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| k.max_version)
    };
    // What a Java 4.x producer needs before it turns transaction version 2 on.
    assert_eq!(max(ApiKey::EndTxn), Some(5));
    assert_eq!(max(ApiKey::TxnOffsetCommit), Some(6));
    assert!(max(ApiKey::Produce) >= Some(12));
    broker.shutdown().await;
}

#[tokio::test]
async fn every_end_bumps_the_epoch_and_produce_adds_partitions_implicitly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(create_topic(&mut c, "tv2", 1).await.topics[0].error_code, 0);
    let (err, pid, e0) = init(&mut c, "tv2-app", 60_000, 5).await;
    assert_eq!((err, e0), (0, 0));

    // Produce v11 (transaction version 1) to a partition not in the transaction: Kafka's
    // KIP-890 error, which such a client aborts on instead of dying.
    assert_eq!(
        produce_txn(&mut c, "tv2-app", "tv2", txn_batch(pid, e0, 0, 1, "x"), 11).await,
        ResponseError::TransactionAbortable.code()
    );
    // Produce v12 adds the partition itself: no AddPartitionsToTxn.
    assert_eq!(
        produce_txn(&mut c, "tv2-app", "tv2", txn_batch(pid, e0, 0, 3, "c"), 12).await,
        0
    );
    assert_eq!(latest(&mut c, "tv2", 1).await, 0, "open: LSO held");
    assert_eq!(producer_on(&mut c, "tv2", pid).await, (i32::from(e0), 0));

    // Commit: the marker goes out at the bumped epoch, which the response carries.
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid, e0, true).await,
        (0, pid, e0 + 1)
    );
    assert_eq!(latest(&mut c, "tv2", 1).await, 4);
    assert_eq!(
        producer_on(&mut c, "tv2", pid).await,
        (i32::from(e0 + 1), -1)
    );
    let p = fetch_iso(&mut c, "tv2", 0, 1).await;
    let got = batches(p.records.as_ref().unwrap());
    assert_eq!(got[0].3, vec!["c-0", "c-1", "c-2"]);
    assert_eq!((got[1].0, got[1].1), (3, true));

    // The retry of that commit (the client never saw the answer) is recognised: the same
    // ids again, no second marker. Asked as an abort it is refused.
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid, e0, true).await,
        (0, pid, e0 + 1)
    );
    assert_eq!(latest(&mut c, "tv2", 1).await, 4);
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid, e0, false).await.0,
        ResponseError::InvalidTxnState.code()
    );
    // A late batch of the ended transaction is fenced, not taken into the next one.
    assert_eq!(
        produce_txn(
            &mut c,
            "tv2-app",
            "tv2",
            txn_batch(pid, e0, 3, 1, "late"),
            12
        )
        .await,
        ResponseError::InvalidProducerEpoch.code()
    );

    // The next transaction runs at the new epoch from sequence 0; an abort bumps again
    // and its records are on read_committed readers' aborted list.
    let e1 = e0 + 1;
    assert_eq!(
        produce_txn(&mut c, "tv2-app", "tv2", txn_batch(pid, e1, 0, 2, "a"), 12).await,
        0
    );
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid, e1, false).await,
        (0, pid, e1 + 1)
    );
    let p = fetch_iso(&mut c, "tv2", 4, 1).await;
    let aborted = p.aborted_transactions.unwrap();
    assert_eq!(
        aborted
            .iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect::<Vec<_>>(),
        vec![(pid, 4)]
    );
    assert_eq!(
        producer_on(&mut c, "tv2", pid).await,
        (i32::from(e1 + 1), -1)
    );

    // An abort with nothing open still bumps (the Java producer aborts so after an error);
    // it writes no marker. A commit with nothing open is refused.
    let e2 = e1 + 1;
    let end = latest(&mut c, "tv2", 0).await;
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid, e2, false).await,
        (0, pid, e2 + 1)
    );
    assert_eq!(latest(&mut c, "tv2", 0).await, end);
    let e3 = e2 + 1;
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid, e3, true).await.0,
        ResponseError::InvalidTxnState.code()
    );
    // Older epochs than a retry's are fenced producers.
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid, e1, true).await.0,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid + 1000, e3, true).await.0,
        ResponseError::InvalidProducerIdMapping.code()
    );

    // The bumped epoch is the stored state: after a restart the producer goes on at it.
    broker.shutdown().await;
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(
        produce_txn(&mut c, "tv2-app", "tv2", txn_batch(pid, e3, 0, 1, "r"), 12).await,
        0
    );
    assert_eq!(
        end_v5(&mut c, "tv2-app", pid, e3, true).await,
        (0, pid, e3 + 1)
    );
    let p = fetch_iso(&mut c, "tv2", 7, 1).await;
    let got = batches(p.records.as_ref().unwrap());
    assert_eq!(got[0].3, vec!["r-0"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn txn_offset_commit_v5_adds_the_group_implicitly() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "src", 1).await;
    let (_, pid, e0) = init(&mut c, "tv2-off", 60_000, 5).await;

    // v4 still needs AddOffsetsToTxn first, as in Kafka.
    assert_eq!(
        txn_offset_commit(&mut c, "tv2-off", (pid, e0), "g2", 40, 4).await,
        ResponseError::InvalidTxnState.code()
    );
    // v5 adds the group itself; the offset waits for the commit.
    assert_eq!(
        txn_offset_commit(&mut c, "tv2-off", (pid, e0), "g2", 42, 5).await,
        0
    );
    assert_eq!(
        committed(&mut c, "g2", "src", true).await.0,
        ResponseError::UnstableOffsetCommit.code()
    );
    assert_eq!(
        end_v5(&mut c, "tv2-off", pid, e0, true).await,
        (0, pid, e0 + 1)
    );
    assert_eq!(committed(&mut c, "g2", "src", true).await, (0, 42));

    // The ended transaction's epoch is fenced; an aborted transaction's offsets are dropped.
    assert_eq!(
        txn_offset_commit(&mut c, "tv2-off", (pid, e0), "g2", 50, 5).await,
        ResponseError::ProducerFenced.code()
    );
    let e1 = e0 + 1;
    assert_eq!(
        txn_offset_commit(&mut c, "tv2-off", (pid, e1), "g2", 60, 5).await,
        0
    );
    assert_eq!(
        end_v5(&mut c, "tv2-off", pid, e1, false).await,
        (0, pid, e1 + 1)
    );
    assert_eq!(committed(&mut c, "g2", "src", true).await, (0, 42));
    broker.shutdown().await;
}

#[tokio::test]
async fn version_1_transactions_keep_their_epoch_beside_version_2() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "mix", 1).await;
    // A version 1 producer (Java 3.x, librdkafka): explicit adds, EndTxn v4, no bump.
    let (_, pid, e0) = init(&mut c, "v1-app", 60_000, 4).await;
    for round in 0..2 {
        assert_eq!(
            add_partitions(&mut c, "v1-app", pid, e0, &[("mix", 0)]).await,
            vec![0]
        );
        assert_eq!(
            produce_txn(
                &mut c,
                "v1-app",
                "mix",
                txn_batch(pid, e0, round * 2, 2, "v1"),
                9
            )
            .await,
            0
        );
        assert_eq!(end_txn(&mut c, "v1-app", pid, e0, true, 4).await, 0);
        assert_eq!(producer_on(&mut c, "mix", pid).await, (i32::from(e0), -1));
    }
    // A transaction begun the version 1 way and ended with EndTxn v5 is bumped at its end.
    assert_eq!(
        add_partitions(&mut c, "v1-app", pid, e0, &[("mix", 0)]).await,
        vec![0]
    );
    assert_eq!(
        produce_txn(&mut c, "v1-app", "mix", txn_batch(pid, e0, 4, 1, "v1"), 9).await,
        0
    );
    assert_eq!(
        end_v5(&mut c, "v1-app", pid, e0, true).await,
        (0, pid, e0 + 1)
    );
    assert_eq!(
        producer_on(&mut c, "mix", pid).await,
        (i32::from(e0 + 1), -1)
    );
    assert_eq!(latest(&mut c, "mix", 1).await, 8);
    broker.shutdown().await;
}
