//! Transactions over the wire: markers, the last stable offset and the aborted list that
//! read_committed readers rely on, fencing and Kafka's errors, offsets committed with a
//! transaction, the broker's timeout abort, and state that survives a restart.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::*;
use common::*;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use kafka_protocol::ResponseError;
use uuid::Uuid;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(sb(s))
}

pub(crate) async fn init(
    c: &mut Client,
    id: &str,
    timeout_ms: i32,
    version: i16,
) -> (i16, i64, i16) {
    let r = c
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id(id)))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        )
        .await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// AddPartitionsToTxn v3; returns each partition's error code in request order.
pub(crate) async fn add_partitions(
    c: &mut Client,
    id: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, i32)],
) -> Vec<i16> {
    let topics = parts
        .iter()
        .map(|(t, p)| {
            AddPartitionsToTxnTopic::default()
                .with_name(tn(t))
                .with_partitions(vec![*p])
        })
        .collect();
    let r = c
        .send(
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(id))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(topics),
            3,
        )
        .await;
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

pub(crate) async fn end_txn(
    c: &mut Client,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
    v: i16,
) -> i16 {
    c.send(
        &EndTxnRequest::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
        v,
    )
    .await
    .error_code
}

pub(crate) async fn fetch_iso(
    c: &mut Client,
    topic: &str,
    offset: i64,
    iso: i8,
) -> fetch_response::PartitionData {
    let req = fetch_req(topic, Uuid::nil(), 0, offset).with_isolation_level(iso);
    let r = c.send(&req, 12).await;
    r.responses[0].partitions[0].clone()
}

pub(crate) async fn latest(c: &mut Client, topic: &str, iso: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(iso)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let r = c.send(&req, 7).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    r.topics[0].partitions[0].offset
}

/// (base offset, is control, producer id, values) of every batch in a fetch.
pub(crate) fn batches(records: &Bytes) -> Vec<(i64, bool, i64, Vec<String>)> {
    let mut out = Vec::new();
    let mut buf = records.clone();
    while !buf.is_empty() {
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        let first = &set.records[0];
        out.push((
            first.offset,
            first.control,
            first.producer_id,
            set.records
                .iter()
                .map(|r| {
                    r.value
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                })
                .collect(),
        ));
    }
    out
}

#[tokio::test]
async fn markers_last_stable_offset_and_aborted_transactions() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(create_topic(&mut c, "tx", 1).await.topics[0].error_code, 0);
    let (err, pid, epoch) = init(&mut c, "app-1", 60_000, 4).await;
    assert_eq!((err, epoch), (0, 0));
    assert!(pid >= 0);

    // Writing before the partition is in the transaction is refused and stores nothing.
    let (err, _) = produce(&mut c, "tx", 0, txn_batch(pid, epoch, 0, 3, "early"), 9).await;
    assert_eq!(err, ResponseError::InvalidTxnState.code());

    // An unknown partition fails alone; the rest of the request is not attempted.
    assert_eq!(
        add_partitions(&mut c, "app-1", pid, epoch, &[("tx", 0), ("tx", 7)]).await,
        vec![
            ResponseError::OperationNotAttempted.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
    assert_eq!(
        add_partitions(&mut c, "app-1", pid, epoch, &[("tx", 0)]).await,
        vec![0]
    );
    assert_eq!(
        produce(&mut c, "tx", 0, txn_batch(pid, epoch, 0, 3, "aborted"), 9).await,
        (0, 0)
    );
    // A plain producer writes after the open transaction.
    let plain = batch(&[record(0, 5), record(1, 5)], Compression::None);
    assert_eq!(produce(&mut c, "tx", 0, plain, 9).await, (0, 3));

    // A client cannot end it with WriteTxnMarkers: a single broker takes markers from no
    // one (CLUSTER_AUTHORIZATION_FAILED), and the transaction stays open.
    let forged = c
        .send(&marker_req((pid, epoch), true, 0, "tx", vec![0]), 1)
        .await;
    assert_eq!(
        forged.markers[0].topics[0].partitions[0].error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );

    // The open transaction holds read_committed readers at its first offset.
    assert_eq!(latest(&mut c, "tx", 0).await, 5);
    assert_eq!(latest(&mut c, "tx", 1).await, 0);
    let p = fetch_iso(&mut c, "tx", 0, 1).await;
    assert_eq!(
        (p.error_code, p.high_watermark, p.last_stable_offset),
        (0, 5, 0)
    );
    assert!(p.records.as_ref().unwrap().is_empty());
    let p = fetch_iso(&mut c, "tx", 0, 0).await;
    assert_eq!(batches(p.records.as_ref().unwrap()).len(), 2);
    assert_eq!(p.last_stable_offset, 0);
    assert_eq!(
        p.aborted_transactions, None,
        "read_uncommitted gets no aborted list"
    );

    // Abort: a marker at offset 5, and the transaction on the aborted list.
    assert_eq!(end_txn(&mut c, "app-1", pid, epoch, false, 3).await, 0);
    let p = fetch_iso(&mut c, "tx", 0, 1).await;
    assert_eq!((p.high_watermark, p.last_stable_offset), (6, 6));
    let got = batches(p.records.as_ref().unwrap());
    assert_eq!(got.len(), 3);
    assert_eq!((got[2].0, got[2].1, got[2].2), (5, true, pid));
    let aborted = p.aborted_transactions.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (pid, 0)
    );
    // Retrying the abort succeeds; committing what was aborted does not.
    assert_eq!(end_txn(&mut c, "app-1", pid, epoch, false, 3).await, 0);
    assert_eq!(
        end_txn(&mut c, "app-1", pid, epoch, true, 3).await,
        ResponseError::InvalidTxnState.code()
    );

    // A committed transaction: sequences continue, nothing new on the aborted list.
    assert_eq!(
        add_partitions(&mut c, "app-1", pid, epoch, &[("tx", 0)]).await,
        vec![0]
    );
    assert_eq!(
        produce(&mut c, "tx", 0, txn_batch(pid, epoch, 3, 2, "kept"), 9).await,
        (0, 6)
    );
    assert_eq!(end_txn(&mut c, "app-1", pid, epoch, true, 3).await, 0);
    assert_eq!(latest(&mut c, "tx", 1).await, 9);
    let p = fetch_iso(&mut c, "tx", 6, 1).await;
    assert_eq!(p.aborted_transactions, Some(vec![]));
    let got = batches(p.records.as_ref().unwrap());
    assert_eq!(got[0].3, vec!["kept-0", "kept-1"]);
    assert_eq!((got[1].0, got[1].1), (8, true));
    assert_eq!(
        end_txn(&mut c, "app-1", pid, epoch, true, 3).await,
        0,
        "a retried commit succeeds"
    );
    // A transaction with nothing open cannot end.
    let (_, pid2, e2) = init(&mut c, "app-2", 60_000, 4).await;
    assert_eq!(
        end_txn(&mut c, "app-2", pid2, e2, true, 3).await,
        ResponseError::InvalidTxnState.code()
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_new_instance_fences_the_old_and_aborts_its_transaction() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "fence", 1).await;
    let (_, pid, e0) = init(&mut c, "fenced", 60_000, 4).await;
    add_partitions(&mut c, "fenced", pid, e0, &[("fence", 0)]).await;
    assert_eq!(
        produce(&mut c, "fence", 0, txn_batch(pid, e0, 0, 2, "zombie"), 9).await,
        (0, 0)
    );

    let (err, pid_new, e_new) = init(&mut c, "fenced", 60_000, 4).await;
    assert_eq!(err, 0);
    assert_eq!(pid_new, pid, "same producer id, newer epoch");
    assert!(e_new > e0);
    // The old instance's open transaction was aborted by a marker.
    assert_eq!(latest(&mut c, "fence", 1).await, 3);
    let p = fetch_iso(&mut c, "fence", 0, 1).await;
    let aborted = p.aborted_transactions.unwrap();
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (pid, 0)
    );

    // The old epoch is fenced everywhere, with each API's error for its version.
    let (err, _) = produce(&mut c, "fence", 0, txn_batch(pid, e0, 2, 1, "late"), 9).await;
    assert_eq!(err, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(
        end_txn(&mut c, "fenced", pid, e0, true, 3).await,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        end_txn(&mut c, "fenced", pid, e0, true, 1).await,
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(
        add_partitions(&mut c, "fenced", pid, e0, &[("fence", 0)]).await,
        vec![ResponseError::ProducerFenced.code()]
    );
    assert_eq!(
        add_partitions(&mut c, "fenced", pid + 1000, e_new, &[("fence", 0)]).await,
        vec![ResponseError::InvalidProducerIdMapping.code()]
    );
    assert_eq!(
        add_partitions(&mut c, "nobody", pid, e_new, &[("fence", 0)]).await,
        vec![ResponseError::InvalidProducerIdMapping.code()]
    );
    // The new instance works, from sequence 0.
    add_partitions(&mut c, "fenced", pid, e_new, &[("fence", 0)]).await;
    assert_eq!(
        produce(&mut c, "fence", 0, txn_batch(pid, e_new, 0, 1, "new"), 9).await,
        (0, 3)
    );
    assert_eq!(end_txn(&mut c, "fenced", pid, e_new, true, 3).await, 0);

    // transaction.timeout.ms above transaction.max.timeout.ms.
    let (err, _, _) = init(&mut c, "too-long", 900_001, 4).await;
    assert_eq!(err, ResponseError::InvalidTransactionTimeout.code());
    broker.shutdown().await;
}

pub(crate) async fn committed(
    c: &mut Client,
    group: &str,
    topic: &str,
    require_stable: bool,
) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(tn(topic))
            .with_partition_indexes(vec![0])]));
    let r = c.send(&req, 7).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

async fn send_offsets(
    c: &mut Client,
    id: &str,
    pid: i64,
    epoch: i16,
    group: &str,
    offset: i64,
) -> (i16, i16) {
    let add = c
        .send(
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id(id))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(sb(group))),
            3,
        )
        .await
        .error_code;
    let r = c
        .send(
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id(id))
                .with_group_id(GroupId(sb(group)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(tn("src"))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(sb("m")))])]),
            3,
        )
        .await;
    (add, r.topics[0].partitions[0].error_code)
}

#[tokio::test]
async fn offsets_sent_in_a_transaction_are_committed_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "src", 1).await;
    let (_, pid, epoch) = init(&mut c, "ctp", 60_000, 4).await;

    assert_eq!(
        send_offsets(&mut c, "ctp", pid, epoch, "g", 42).await,
        (0, 0)
    );
    assert_eq!(committed(&mut c, "g", "src", false).await, (0, -1));
    assert_eq!(
        committed(&mut c, "g", "src", true).await.0,
        ResponseError::UnstableOffsetCommit.code()
    );
    assert_eq!(end_txn(&mut c, "ctp", pid, epoch, true, 3).await, 0);
    assert_eq!(committed(&mut c, "g", "src", true).await, (0, 42));

    assert_eq!(
        send_offsets(&mut c, "ctp", pid, epoch, "g", 50).await,
        (0, 0)
    );
    assert_eq!(end_txn(&mut c, "ctp", pid, epoch, false, 3).await, 0);
    assert_eq!(committed(&mut c, "g", "src", false).await, (0, 42));

    // An open transaction's pending offsets survive a restart and commit after it.
    assert_eq!(
        send_offsets(&mut c, "ctp", pid, epoch, "g", 60).await,
        (0, 0)
    );
    broker.shutdown().await;
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(committed(&mut c, "g", "src", false).await, (0, 42));
    assert_eq!(end_txn(&mut c, "ctp", pid, epoch, true, 3).await, 0);
    assert_eq!(committed(&mut c, "g", "src", false).await, (0, 60));

    // A fenced producer's offsets are refused (TxnOffsetCommit v3: PRODUCER_FENCED).
    let (_, _, newer) = init(&mut c, "ctp", 60_000, 4).await;
    assert!(newer > epoch);
    let (_, err) = send_offsets(&mut c, "ctp", pid, epoch, "g", 70).await;
    assert_eq!(err, ResponseError::ProducerFenced.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn open_transactions_survive_a_restart_and_time_out_on_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.transaction_abort_timed_out_transaction_cleanup_interval_ms = 50;
    let broker = start_with(config.clone()).await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "dur", 1).await;
    // One aborted transaction, one left open across the restart.
    let (_, pid, epoch) = init(&mut c, "dur-a", 60_000, 4).await;
    add_partitions(&mut c, "dur-a", pid, epoch, &[("dur", 0)]).await;
    produce(&mut c, "dur", 0, txn_batch(pid, epoch, 0, 2, "x"), 9).await;
    assert_eq!(end_txn(&mut c, "dur-a", pid, epoch, false, 3).await, 0);
    let (_, pid_b, eb) = init(&mut c, "dur-b", 60_000, 4).await;
    add_partitions(&mut c, "dur-b", pid_b, eb, &[("dur", 0)]).await;
    assert_eq!(
        produce(&mut c, "dur", 0, txn_batch(pid_b, eb, 0, 2, "y"), 9).await,
        (0, 3)
    );
    broker.shutdown().await;

    let broker = start_with(config.clone()).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(
        latest(&mut c, "dur", 1).await,
        3,
        "still open after restart"
    );
    let p = fetch_iso(&mut c, "dur", 0, 1).await;
    let aborted = p.aborted_transactions.unwrap();
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (pid, 0)
    );
    assert_eq!(end_txn(&mut c, "dur-b", pid_b, eb, true, 3).await, 0);
    assert_eq!(latest(&mut c, "dur", 1).await, 6);

    // A transaction left open past its timeout is aborted and its producer fenced.
    let (_, pid_c, ec) = init(&mut c, "dur-c", 300, 4).await;
    add_partitions(&mut c, "dur-c", pid_c, ec, &[("dur", 0)]).await;
    assert_eq!(
        produce(&mut c, "dur", 0, txn_batch(pid_c, ec, 0, 1, "z"), 9).await,
        (0, 6)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while latest(&mut c, "dur", 1).await == 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(latest(&mut c, "dur", 1).await, 8, "aborted by the broker");
    let p = fetch_iso(&mut c, "dur", 6, 1).await;
    let aborted = p.aborted_transactions.unwrap();
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (pid_c, 6)
    );
    assert_eq!(
        end_txn(&mut c, "dur-c", pid_c, ec, true, 3).await,
        ResponseError::ProducerFenced.code()
    );
    let d = c
        .send(
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn_id("dur-c"), txn_id("missing")]),
            0,
        )
        .await;
    let s = &d.transaction_states[0];
    assert_eq!(s.transaction_state.as_str(), "CompleteAbort");
    assert_eq!((s.producer_id.0, s.producer_epoch), (pid_c, ec + 1));
    assert_eq!(
        d.transaction_states[1].error_code,
        ResponseError::TransactionalIdNotFound.code()
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn describe_and_list_transactions_and_producers() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "adm", 1).await;
    let (_, pid, epoch) = init(&mut c, "adm-open", 45_000, 4).await;
    add_partitions(&mut c, "adm-open", pid, epoch, &[("adm", 0)]).await;
    produce(&mut c, "adm", 0, txn_batch(pid, epoch, 0, 3, "o"), 9).await;
    let (_, other, _) = init(&mut c, "adm-idle", 45_000, 4).await;

    let d = c
        .send(
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn_id("adm-open")]),
            0,
        )
        .await;
    let s = &d.transaction_states[0];
    assert_eq!(s.error_code, 0);
    assert_eq!(s.transaction_state.as_str(), "Ongoing");
    assert_eq!(s.transaction_timeout_ms, 45_000);
    assert!(s.transaction_start_time_ms > 0);
    assert_eq!(s.topics.len(), 1);
    assert_eq!(
        (s.topics[0].topic.0.as_str(), &s.topics[0].partitions[..]),
        ("adm", &[0][..])
    );

    let l = c.send(&ListTransactionsRequest::default(), 0).await;
    let mut listed: Vec<(String, i64, String)> = l
        .transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.to_string(),
                t.producer_id.0,
                t.transaction_state.to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("adm-idle".to_string(), other, "Empty".to_string()),
            ("adm-open".to_string(), pid, "Ongoing".to_string())
        ]
    );
    let l = c
        .send(
            &ListTransactionsRequest::default()
                .with_state_filters(vec![sb("Ongoing"), sb("Bogus")]),
            0,
        )
        .await;
    assert_eq!(l.transaction_states.len(), 1);
    assert_eq!(l.unknown_state_filters, vec![sb("Bogus")]);
    // v2 (KIP-1152): the pattern must match the whole transactional id.
    let ids = |l: &ListTransactionsResponse| {
        let mut v: Vec<String> = l
            .transaction_states
            .iter()
            .map(|t| t.transactional_id.to_string())
            .collect();
        v.sort();
        v
    };
    for (pattern, want) in [
        ("adm-.*", vec!["adm-idle", "adm-open"]),
        ("adm-o.*", vec!["adm-open"]),
        ("adm", vec![]),
        ("", vec!["adm-idle", "adm-open"]),
    ] {
        let l = c
            .send(
                &ListTransactionsRequest::default()
                    .with_transactional_id_pattern(Some(sb(pattern))),
                2,
            )
            .await;
        assert_eq!(l.error_code, 0, "{pattern}");
        assert_eq!(ids(&l), want, "pattern {pattern:?}");
    }
    let l = c
        .send(
            &ListTransactionsRequest::default().with_transactional_id_pattern(Some(sb("adm-("))),
            2,
        )
        .await;
    assert_eq!(l.error_code, ResponseError::InvalidRegularExpression.code());
    assert!(l.transaction_states.is_empty());

    let r = c
        .send(
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(tn("adm"))
                    .with_partition_indexes(vec![0, 9]),
            ]),
            0,
        )
        .await;
    let parts = &r.topics[0].partitions;
    assert_eq!(parts[0].error_code, 0);
    let p = &parts[0].active_producers[0];
    assert_eq!(
        (
            p.producer_id.0,
            p.producer_epoch,
            p.last_sequence,
            p.current_txn_start_offset
        ),
        (pid, i32::from(epoch), 2, 0)
    );
    assert_eq!(p.coordinator_epoch, -1, "no marker written yet");
    assert_eq!(
        parts[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // After the commit marker: no open transaction, and the epoch of the coordinator that
    // wrote the marker (0 on a single node), as Kafka reports it.
    assert_eq!(end_txn(&mut c, "adm-open", pid, epoch, true, 3).await, 0);
    let r = c
        .send(
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(tn("adm"))
                    .with_partition_indexes(vec![0]),
            ]),
            0,
        )
        .await;
    let p = &r.topics[0].partitions[0].active_producers[0];
    assert_eq!(
        (
            p.producer_id.0,
            p.current_txn_start_offset,
            p.coordinator_epoch
        ),
        (pid, -1, 0)
    );
    broker.shutdown().await;
}

/// One batch of keyed records, transactional when `pid` is given.
fn keyed(pid: Option<(i64, i16, i32)>, kvs: &[(&str, &str)]) -> Bytes {
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: pid.is_some(),
            producer_id: pid.map_or(-1, |p| p.0),
            producer_epoch: pid.map_or(-1, |p| p.1),
            sequence: pid.map_or(-1, |p| p.2 + i as i32),
            offset: i as i64,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(v.to_string())),
            ..record(1, 1)
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

#[tokio::test]
async fn compaction_drops_aborted_records_and_leaves_open_transactions_alone() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.log_cleaner_backoff_ms = 50;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    let req = create_with_configs("ctx", &[("cleanup.policy", "compact")]);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
    assert_eq!(
        produce(&mut c, "ctx", 0, keyed(None, &[("k", "committed")]), 9).await,
        (0, 0)
    );
    let (_, pid, e) = init(&mut c, "ctx-a", 60_000, 4).await;
    add_partitions(&mut c, "ctx-a", pid, e, &[("ctx", 0)]).await;
    assert_eq!(
        produce(
            &mut c,
            "ctx",
            0,
            keyed(Some((pid, e, 0)), &[("k", "aborted")]),
            9
        )
        .await,
        (0, 1)
    );
    assert_eq!(end_txn(&mut c, "ctx-a", pid, e, false, 3).await, 0); // marker at 2
                                                                     // An open transaction rewrites "j"; the older "j" before it must survive until it ends.
    assert_eq!(
        produce(&mut c, "ctx", 0, keyed(None, &[("j", "old")]), 9).await,
        (0, 3)
    );
    let (_, pid_b, eb) = init(&mut c, "ctx-b", 60_000, 4).await;
    add_partitions(&mut c, "ctx-b", pid_b, eb, &[("ctx", 0)]).await;
    assert_eq!(
        produce(
            &mut c,
            "ctx",
            0,
            keyed(Some((pid_b, eb, 0)), &[("j", "open")]),
            9
        )
        .await,
        (0, 4)
    );

    // The cleaner runs every 50 ms: wait for the aborted batch at offset 1 to go.
    let values = |p: &fetch_response::PartitionData| -> Vec<(i64, String)> {
        batches(p.records.as_ref().unwrap())
            .into_iter()
            .filter(|b| !b.1)
            .flat_map(|b| b.3.into_iter().map(move |v| (b.0, v)))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = values(&fetch_iso(&mut c, "ctx", 0, 0).await);
    while got.iter().any(|(_, v)| v == "aborted") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        got = values(&fetch_iso(&mut c, "ctx", 0, 0).await);
    }
    assert_eq!(
        got,
        vec![
            (0, "committed".to_string()),
            (3, "old".to_string()),
            (4, "open".to_string())
        ],
        "the aborted value is gone, the committed one kept, the open transaction untouched"
    );
    broker.shutdown().await;
}

/// `transactional.id.expiration.ms`: an idle transactional id (no transaction open) is
/// forgotten and comes back with a new producer id; one with an open transaction is kept.
#[tokio::test]
async fn idle_transactional_ids_expire_and_open_ones_stay() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.transactional_id_expiration_ms = 300;
    config.transaction_remove_expired_transaction_cleanup_interval_ms = 50;
    let broker = start_with(config).await;
    let ctx = broker.context().unwrap();
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(
        create_topic(&mut c, "tx-exp", 1).await.topics[0].error_code,
        0
    );
    let (err, idle_pid, _) = init(&mut c, "idle", 60_000, 4).await;
    assert_eq!(err, 0);
    let (err, open_pid, open_epoch) = init(&mut c, "open", 60_000, 4).await;
    assert_eq!(err, 0);
    assert_eq!(
        add_partitions(&mut c, "open", open_pid, open_epoch, &[("tx-exp", 0)]).await,
        [0]
    );
    wait_until("the idle id to expire", || {
        ctx.metrics.transactional_ids_expired.get() >= 1
    })
    .await;
    // Two more whole passes, each past the open id's expiration time too.
    wait_for_pass(&broker, |m| m.transactional_id_expiration_passes.get()).await;
    assert!(ctx.txns.describe("idle").is_none());
    assert_eq!(ctx.metrics.transactional_ids_expired.get(), 1);
    let open = ctx
        .txns
        .describe("open")
        .expect("an open transaction is kept");
    assert_eq!(open.producer_id, open_pid);
    // The returning producer gets a fresh producer id, not its old one.
    let (err, pid, epoch) = init(&mut c, "idle", 60_000, 4).await;
    assert_eq!((err, epoch), (0, 0));
    assert_ne!(pid, idle_pid);
    // The open transaction still commits.
    assert_eq!(
        end_txn(&mut c, "open", open_pid, open_epoch, true, 3).await,
        0
    );
}

/// Offsets expiry keeps a group's offsets for partitions an open transaction holds offsets
/// for, and the group itself, as Kafka does; once the transaction is over they can expire.
#[tokio::test]
async fn offsets_held_by_an_open_transaction_do_not_expire() {
    let broker = start().await;
    let ctx = broker.context().unwrap();
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(create_topic(&mut c, "src", 1).await.topics[0].error_code, 0);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("gtx")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tn("src"))
                .with_partitions(vec![
                    kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    assert_eq!(
        c.send(&commit, 8).await.topics[0].partitions[0].error_code,
        0
    );
    let (err, pid, epoch) = init(&mut c, "tx-gtx", 60_000, 4).await;
    assert_eq!(err, 0);
    assert_eq!(
        send_offsets(&mut c, "tx-gtx", pid, epoch, "gtx", 5).await,
        (0, 0)
    );
    let far = klamm::clock::now_ms() + 30 * 24 * 3_600_000;
    let expire = |pending| {
        ctx.groups
            .expire_offsets(&ctx.consumer_groups, &ctx.streams_groups, &pending, far, 1)
            .unwrap()
    };
    let stats = expire(ctx.txns.groups_in_open_transactions());
    assert_eq!((stats.offsets, stats.groups), (0, 0));
    assert_eq!(committed(&mut c, "gtx", "src", false).await, (0, 1));
    assert_eq!(end_txn(&mut c, "tx-gtx", pid, epoch, true, 3).await, 0);
    assert_eq!(committed(&mut c, "gtx", "src", false).await, (0, 5));
    let stats = expire(ctx.txns.groups_in_open_transactions());
    assert_eq!((stats.offsets, stats.groups), (1, 1));
    assert_eq!(committed(&mut c, "gtx", "src", false).await, (0, -1));
}

/// The aborted-transaction index shrinks with the log: entries whose abort marker falls
/// below the log start (after DeleteRecords or retention) are dropped, in memory and in the
/// store, while those still reachable stay.
#[tokio::test]
async fn aborted_transaction_index_is_pruned_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(create_topic(&mut c, "txp", 1).await.topics[0].error_code, 0);
    let (err, pid, epoch) = init(&mut c, "pruner", 60_000, 4).await;
    assert_eq!(err, 0);
    let mut seq = 0;
    // Two aborted transactions: records 0..3 + marker 3, records 4..7 + marker 7.
    for _ in 0..2 {
        assert_eq!(
            add_partitions(&mut c, "pruner", pid, epoch, &[("txp", 0)]).await,
            [0]
        );
        let (err, _) = produce(&mut c, "txp", 0, txn_batch(pid, epoch, seq, 3, "ab"), 9).await;
        assert_eq!(err, 0);
        seq += 3;
        assert_eq!(end_txn(&mut c, "pruner", pid, epoch, false, 3).await, 0);
    }
    let aborted = |b: &klamm::BrokerHandle| {
        let ctx = b.context().unwrap();
        let t = ctx.metadata.topic("txp").unwrap();
        t.partition(0).unwrap().aborted_between(0, i64::MAX)
    };
    let markers =
        |b: &klamm::BrokerHandle| aborted(b).iter().map(|a| a.last_offset).collect::<Vec<_>>();
    assert_eq!(markers(&broker), [3, 7]);
    let req = DeleteRecordsRequest::default().with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default()
            .with_name(tn("txp"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(5),
            ]),
    ]);
    let r = c.send(&req, 2).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(r.topics[0].partitions[0].low_watermark, 5);
    assert_eq!(
        markers(&broker),
        [7],
        "the transaction aborted below the log start is gone"
    );
    let ctx = broker.context().unwrap();
    let uid = ctx.metadata.topic("txp").unwrap().partition(0).unwrap().uid;
    let stored: Vec<i64> = ctx
        .store
        .scan_aborted(uid)
        .unwrap()
        .iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(stored, [7], "and from the store");
    drop(ctx);
    drop(c);
    broker.shutdown().await;
    let broker = start_with(config_in(dir.path())).await;
    assert_eq!(markers(&broker), [7], "and stays gone after a restart");
}

/// A marker that cannot be written leaves the transaction prepared: the partition's last
/// stable offset stays before it and the producer gets CONCURRENT_TRANSACTIONS, until the
/// coordinator's retry writes it. Before, the transaction was marked complete and the last
/// stable offset stayed pinned for good.
#[tokio::test]
async fn a_failed_marker_write_is_retried_until_the_transaction_completes() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.transaction_abort_timed_out_transaction_cleanup_interval_ms = 50;
    let broker = start_with(config).await;
    let ctx = broker.context().unwrap();
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(create_topic(&mut c, "txr", 1).await.topics[0].error_code, 0);
    let (err, pid, epoch) = init(&mut c, "retry", 60_000, 4).await;
    assert_eq!(err, 0);
    assert_eq!(
        add_partitions(&mut c, "retry", pid, epoch, &[("txr", 0)]).await,
        [0]
    );
    let (err, _) = produce(&mut c, "txr", 0, txn_batch(pid, epoch, 0, 3, "r"), 9).await;
    assert_eq!(err, 0);
    // The next three marker writes to txr fail, as a full disk would make them.
    ctx.faults
        .add(klamm::fault::RuleSpec {
            api: "WriteTxnMarkers".into(),
            topic: Some("txr".into()),
            action: "error".into(),
            error: Some(serde_json::json!("KAFKA_STORAGE_ERROR")),
            delay_ms: None,
            count: Some(3),
            duration_ms: None,
        })
        .unwrap();
    // The commit decision is durable, so EndTxn succeeds, as in Kafka.
    assert_eq!(end_txn(&mut c, "retry", pid, epoch, true, 3).await, 0);
    let state = ctx.txns.describe("retry").unwrap().state;
    // Either the first attempt failed (PrepareCommit) or, if the retry timer got there
    // first, still failing; it cannot be complete before three failures.
    if state != klamm::txn::coordinator::TxnState::CompleteCommit {
        assert_eq!(state, klamm::txn::coordinator::TxnState::PrepareCommit);
        assert_eq!(
            latest(&mut c, "txr", 1).await,
            0,
            "the last stable offset waits"
        );
        assert_eq!(
            add_partitions(&mut c, "retry", pid, epoch, &[("txr", 0)]).await,
            [ResponseError::ConcurrentTransactions.code()]
        );
    }
    wait_until("the retried commit", || {
        ctx.txns.describe("retry").unwrap().state
            == klamm::txn::coordinator::TxnState::CompleteCommit
    })
    .await;
    assert!(ctx.faults.list().is_empty(), "all three failures were used");
    // Three records and one marker: read_committed readers see all three.
    assert_eq!(latest(&mut c, "txr", 1).await, 4);
    let control = batches(
        fetch_iso(&mut c, "txr", 0, 1)
            .await
            .records
            .as_ref()
            .unwrap(),
    )
    .iter()
    .filter(|b| b.1)
    .count();
    assert_eq!(control, 1, "exactly one marker, however many attempts");
}
