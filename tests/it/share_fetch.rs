//! KIP-932 ShareFetch and ShareAcknowledge over the wire: records handed out under a lock,
//! byte-exact; acknowledgements piggybacked or alone; release and redelivery with the
//! delivery count; the share session's epoch rules; a closed session or connection giving
//! its records back; long polls woken by new records; lock expiry.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::*;
use common::*;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use uuid::Uuid;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Sets group configs (the GROUP resource, type 32).
pub(crate) async fn group_configs(c: &mut Client, group: &str, configs: &[(&str, &str)]) {
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(sb(group))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            ),
    ]);
    let r = c.send(&alter, 1).await;
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
}

/// A topic of one partition holding `n` test records in one batch; its id and the batch.
pub(crate) async fn topic_with(c: &mut Client, name: &str, n: i64) -> (Uuid, Bytes) {
    let id = create_topic(c, name, 1).await.topics[0].topic_id;
    let records: Vec<_> = (0..n).map(|i| record(i, 1_700_000_000_000 + i)).collect();
    let b = batch(&records, Compression::None);
    assert_eq!(produce(c, name, 0, b.clone(), 9).await.0, 0);
    (id, b)
}

/// ShareFetch v1 of partition 0 of `topic`, with acknowledgements for it.
pub(crate) fn fetch_req(
    group: &str,
    member: &str,
    epoch: i32,
    topic: Uuid,
    acks: &[(i64, i64, i8)],
    max_wait_ms: i32,
) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(sb(group))))
        .with_member_id(Some(sb(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(500)
        .with_batch_size(500)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![FetchPartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(
                    acks.iter()
                        .map(|&(f, l, t)| {
                            AcknowledgementBatch::default()
                                .with_first_offset(f)
                                .with_last_offset(l)
                                .with_acknowledge_types(vec![t])
                        })
                        .collect(),
                )])])
}

pub(crate) fn ack_req(
    group: &str,
    member: &str,
    epoch: i32,
    topic: Uuid,
    acks: &[(i64, i64, i8)],
) -> ShareAcknowledgeRequest {
    ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(sb(group))))
        .with_member_id(Some(sb(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![AcknowledgeTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(
                    acks.iter()
                        .map(|&(f, l, t)| {
                            AckBatch::default()
                                .with_first_offset(f)
                                .with_last_offset(l)
                                .with_acknowledge_types(vec![t])
                        })
                        .collect(),
                )])])
}

/// (first, last, delivery count) of every acquired range of partition 0.
pub(crate) fn acquired(r: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .flat_map(|p| p.acquired_records.iter())
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

fn partition(r: &ShareFetchResponse) -> &share_fetch_response::PartitionData {
    &r.responses[0].partitions[0]
}

#[tokio::test]
async fn records_are_locked_to_one_member_acknowledged_and_released_for_redelivery() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let (topic, produced) = topic_with(&mut c, "sf-basic", 10).await;
    group_configs(&mut c, "sfg", &[("share.auto.offset.reset", "earliest")]).await;

    // m1 opens its session and takes all ten, byte-exact, delivered once.
    let r = c
        .send(&fetch_req("sfg", "m1", 0, topic, &[], 5000), 1)
        .await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.acquisition_lock_timeout_ms, 30_000);
    assert_eq!(acquired(&r), vec![(0, 9, 1)]);
    let p = partition(&r);
    assert_eq!(p.error_code, 0);
    assert_eq!(p.current_leader.leader_id, 1);
    let got = decode_records(p.records.clone().unwrap());
    let want = decode_records(produced.clone());
    assert_eq!(got.len(), 10);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            (&g.key, &g.value, &g.headers),
            (&w.key, &w.value, &w.headers)
        );
    }

    // m2 finds nothing to take while m1 holds them: its fetch waits out its max wait.
    let r = c.send(&fetch_req("sfg", "m2", 0, topic, &[], 300), 1).await;
    assert_eq!((r.error_code, acquired(&r)), (0, vec![]));

    // m1 accepts 0..=4 and releases 5..=9 alone (ShareAcknowledge, epoch 1).
    let r = c
        .send(&ack_req("sfg", "m1", 1, topic, &[(0, 4, 1), (5, 9, 2)]), 1)
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    // Accepting the released ones now is refused: they are no longer m1's. (Accepted
    // records are behind the start offset, and acknowledging those is skipped, as Kafka
    // skips them.)
    let r = c
        .send(&ack_req("sfg", "m1", 2, topic, &[(5, 9, 1)]), 1)
        .await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::InvalidRecordState.code()
    );

    // m2's next fetch gets the released five, on their second delivery, and nothing else.
    let r = c
        .send(&fetch_req("sfg", "m2", 1, topic, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(5, 9, 2)]);
    // Its records hold only batches with acquired offsets (here the one batch).
    assert_eq!(
        decode_records(partition(&r).records.clone().unwrap()).len(),
        10
    );
    // m2 rejects them, piggybacked on its next fetch: the acknowledgement result rides in
    // the fetch answer, and with nothing left to take the fetch waits and returns empty.
    let r = c
        .send(&fetch_req("sfg", "m2", 2, topic, &[(5, 9, 3)], 300), 1)
        .await;
    assert_eq!(r.error_code, 0);
    let p = partition(&r);
    assert_eq!((p.acknowledge_error_code, p.error_code), (0, 0));
    assert!(p.acquired_records.is_empty());

    // Every record is done with: a new record is all the next fetch gets.
    assert_eq!(
        produce(
            &mut c,
            "sf-basic",
            0,
            batch(&[record(10, 1)], Compression::None),
            9
        )
        .await
        .0,
        0
    );
    let r = c
        .send(&fetch_req("sfg", "m1", 3, topic, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(10, 10, 1)]);
}

#[tokio::test]
async fn share_session_epochs_follow_kafkas_rules() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let (topic, _) = topic_with(&mut c, "sf-epochs", 1).await;
    let code =
        |r: &ShareFetchResponse| (r.error_code, r.error_message.clone().map(|m| m.to_string()));

    // No session: only epoch 0 opens one.
    let r = c.send(&fetch_req("sfe", "m1", 3, topic, &[], 0), 1).await;
    assert_eq!(code(&r), (ResponseError::ShareSessionNotFound.code(), None));
    let r = c.send(&fetch_req("sfe", "m1", -1, topic, &[], 0), 1).await;
    assert_eq!(code(&r), (ResponseError::ShareSessionNotFound.code(), None));
    // A new session carries no acknowledgements.
    let r = c
        .send(&fetch_req("sfe", "m1", 0, topic, &[(0, 0, 1)], 0), 1)
        .await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    // ShareAcknowledge never opens one.
    let r = c
        .send(&ack_req("sfe", "m1", 0, topic, &[(0, 0, 1)]), 1)
        .await;
    assert_eq!(r.error_code, ResponseError::InvalidShareSessionEpoch.code());
    let r = c
        .send(&ack_req("sfe", "m1", 1, topic, &[(0, 0, 1)]), 1)
        .await;
    assert_eq!(r.error_code, ResponseError::ShareSessionNotFound.code());

    let r = c.send(&fetch_req("sfe", "m1", 0, topic, &[], 0), 1).await;
    assert_eq!(code(&r), (0, None));
    // The next epoch is 1: 2 is refused, and so is 1 once used.
    let r = c.send(&fetch_req("sfe", "m1", 2, topic, &[], 0), 1).await;
    assert_eq!(r.error_code, ResponseError::InvalidShareSessionEpoch.code());
    let r = c.send(&fetch_req("sfe", "m1", 1, topic, &[], 0), 1).await;
    assert_eq!(r.error_code, 0);
    let r = c.send(&ack_req("sfe", "m1", 1, topic, &[]), 1).await;
    assert_eq!(r.error_code, ResponseError::InvalidShareSessionEpoch.code());
    let r = c.send(&ack_req("sfe", "m1", 2, topic, &[]), 1).await;
    assert_eq!(r.error_code, 0);

    // Bad identities, with Kafka's messages.
    let mut bad = fetch_req("sfe", "", 0, topic, &[], 0);
    let r = c.send(&bad, 1).await;
    assert_eq!(
        code(&r),
        (
            ResponseError::InvalidRequest.code(),
            Some("Invalid member id in the request.".into())
        )
    );
    bad.member_id = Some(sb("m1"));
    bad.group_id = None;
    let r = c.send(&bad, 1).await;
    assert_eq!(
        code(&r),
        (
            ResponseError::InvalidRequest.code(),
            Some("Invalid group id in the request.".into())
        )
    );
    // v2: a renewing request fetches nothing and says so.
    let mut renew = fetch_req("sfe", "m1", 3, topic, &[], 100);
    renew.is_renew_ack = true;
    let r = c.send(&renew, 2).await;
    assert_eq!(
        code(&r),
        (
            ResponseError::InvalidRequest.code(),
            Some(
                "maxBytes must be set to 0, minBytes must be set to 0, maxRecords must be set to 0, maxWaitMs must be set to 0, if isRenewAck is true."
                    .into()
            )
        )
    );
    // Malformed acknowledgements are the partition's INVALID_REQUEST, not the request's.
    let r = c
        .send(&ack_req("sfe", "m1", 3, topic, &[(5, 2, 1)]), 1)
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::InvalidRequest.code()
    );
}

#[tokio::test]
async fn a_closed_session_or_connection_gives_its_records_back() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let (topic, _) = topic_with(&mut c, "sf-close", 3).await;
    group_configs(&mut c, "sfc", &[("share.auto.offset.reset", "earliest")]).await;

    let r = c
        .send(&fetch_req("sfc", "m1", 0, topic, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(0, 2, 1)]);
    // Closing the session (epoch -1) accepts offset 0 and releases the rest.
    let r = c
        .send(&ack_req("sfc", "m1", -1, topic, &[(0, 0, 1)]), 1)
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    let r = c.send(&ack_req("sfc", "m1", 1, topic, &[]), 1).await;
    assert_eq!(r.error_code, ResponseError::ShareSessionNotFound.code());

    // m2, on a connection of its own, takes them (second delivery) and then goes away.
    let mut c2 = Client::connect(broker.addr()).await;
    let r = c2
        .send(&fetch_req("sfc", "m2", 0, topic, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(1, 2, 2)]);
    drop(c2);
    // m3's fetch waits, and is woken when the closed connection's records come free.
    let started = Instant::now();
    let r = c
        .send(&fetch_req("sfc", "m3", 0, topic, &[], 20_000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(1, 2, 3)]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woken by the release, not the max wait"
    );
}

#[tokio::test]
async fn a_waiting_share_fetch_is_woken_by_new_records() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let topic = create_topic(&mut c, "sf-wait", 1).await.topics[0].topic_id;
    // The default reset is latest: records produced before the first fetch are not seen.
    assert_eq!(
        produce(
            &mut c,
            "sf-wait",
            0,
            batch(&[record(0, 1)], Compression::None),
            9
        )
        .await
        .0,
        0
    );
    // A first fetch makes the share partition, at the high watermark (offset 1).
    let r = c.send(&fetch_req("sfw", "m0", 0, topic, &[], 0), 1).await;
    assert_eq!((r.error_code, acquired(&r)), (0, vec![]));
    let addr = broker.addr();
    let waiter = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let started = Instant::now();
        let r = c
            .send(&fetch_req("sfw", "m1", 0, topic, &[], 20_000), 1)
            .await;
        (acquired(&r), started.elapsed())
    });
    wait_for_in_flight(&broker, "ShareFetch", 1).await;
    assert_eq!(
        produce(
            &mut c,
            "sf-wait",
            0,
            batch(&[record(1, 2)], Compression::None),
            9
        )
        .await
        .0,
        0
    );
    let (got, took) = waiter.await.unwrap();
    assert_eq!(got, vec![(1, 1, 1)]);
    assert!(
        took < Duration::from_secs(15),
        "woken by the append: {took:?}"
    );
}

/// Kafka's DelayedShareFetch: records are acquired once the log holds minBytes past the
/// share partition's fetch offset, or when maxWaitMs runs out, whichever comes first.
#[tokio::test]
async fn a_share_fetch_waits_for_min_bytes_or_its_max_wait() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let topic = create_topic(&mut c, "sf-min", 1).await.topics[0].topic_id;
    let r = c.send(&fetch_req("sfm", "m0", 0, topic, &[], 0), 1).await;
    assert_eq!((r.error_code, acquired(&r)), (0, vec![]));
    let small = batch(&[record(0, 1)], Compression::None);
    assert!(small.len() < 1_000);
    assert_eq!(produce(&mut c, "sf-min", 0, small, 9).await.0, 0);

    // 1 record of under 1 KB is there, 100 KB are asked for: the fetch answers it at the
    // end of its wait, not before.
    let started = Instant::now();
    let r = c
        .send(
            &fetch_req("sfm", "m0", 1, topic, &[], 600).with_min_bytes(100_000),
            1,
        )
        .await;
    let took = started.elapsed();
    assert_eq!((r.error_code, acquired(&r)), (0, vec![(0, 0, 1)]));
    assert!(
        took >= Duration::from_millis(550),
        "answered after {took:?}"
    );

    // A waiting fetch of 4 KB is not answered by a small append, and is by a large one:
    // it gets both together.
    let addr = broker.addr();
    let waiter = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let r = c
            .send(
                &fetch_req("sfm", "m1", 0, topic, &[], 20_000).with_min_bytes(4_000),
                1,
            )
            .await;
        acquired(&r)
    });
    wait_for_in_flight(&broker, "ShareFetch", 1).await;
    let small = batch(&[record(2, 2)], Compression::None);
    assert_eq!(produce(&mut c, "sf-min", 0, small, 9).await.0, 0);
    let mut big = record(3, 3);
    big.value = Some(Bytes::from(vec![7u8; 5_000]));
    assert_eq!(
        produce(&mut c, "sf-min", 0, batch(&[big], Compression::None), 9)
            .await
            .0,
        0
    );
    let got = tokio::time::timeout(Duration::from_secs(15), waiter)
        .await
        .expect("answered once 4 KB were there")
        .unwrap();
    let offsets: Vec<i64> = got.iter().flat_map(|&(f, l, _)| f..=l).collect();
    assert_eq!(offsets, vec![1, 2], "{got:?}");
}

#[tokio::test]
async fn an_expired_lock_makes_the_record_available_again() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let (topic, _) = topic_with(&mut c, "sf-lock", 1).await;
    group_configs(
        &mut c,
        "sfl",
        &[
            ("share.auto.offset.reset", "earliest"),
            ("share.record.lock.duration.ms", "15000"),
        ],
    )
    .await;
    let r = c
        .send(&fetch_req("sfl", "m1", 0, topic, &[], 5000), 1)
        .await;
    assert_eq!(r.acquisition_lock_timeout_ms, 15_000);
    assert_eq!(acquired(&r), vec![(0, 0, 1)]);
    let taken_at = Instant::now();
    // m2 waits; the lock's expiry (not a new record) wakes it with the record's second
    // delivery.
    let mut c2 = Client::connect(broker.addr()).await;
    let r = c2
        .send(&fetch_req("sfl", "m2", 0, topic, &[], 30_000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(0, 0, 2)]);
    let waited = taken_at.elapsed();
    assert!(
        waited >= Duration::from_secs(14) && waited < Duration::from_secs(25),
        "{waited:?}"
    );
    // m1's lock is gone: its late acceptance is refused.
    let r = c
        .send(&ack_req("sfl", "m1", 1, topic, &[(0, 0, 1)]), 1)
        .await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::InvalidRecordState.code()
    );
}

#[tokio::test]
async fn offsets_apis_refuse_a_share_groups_id() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "sf-off", 1).await;
    let hb = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb("sfo")))
        .with_member_id(sb("m1"))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![tn("sf-off")]));
    assert_eq!(c.send(&hb, 1).await.error_code, 0);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("sfo")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tn("sf-off"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    let r = c.send(&commit, 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb("sfo")))
            .with_topics(None),
    ]);
    let r = c.send(&fetch, 8).await;
    assert_eq!(
        r.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
}

#[tokio::test]
async fn a_restarted_broker_resumes_each_share_partition_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let topic;
    {
        let broker = start_with(config_in(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        (topic, _) = topic_with(&mut c, "sf-restart", 10).await;
        group_configs(&mut c, "sfr", &[("share.auto.offset.reset", "earliest")]).await;
        let r = c
            .send(&fetch_req("sfr", "m1", 0, topic, &[], 5000), 1)
            .await;
        assert_eq!(acquired(&r), vec![(0, 9, 1)]);
        // 0..=3 accepted, 4 rejected, 5..=9 still locked to m1 when the broker stops.
        let r = c
            .send(&ack_req("sfr", "m1", 1, topic, &[(0, 3, 1), (4, 4, 3)]), 1)
            .await;
        assert_eq!(r.responses[0].partitions[0].error_code, 0);
        // Another group has its own state, kept apart.
        group_configs(
            &mut c,
            "sfr-other",
            &[("share.auto.offset.reset", "earliest")],
        )
        .await;
        let r = c
            .send(&fetch_req("sfr-other", "o1", 0, topic, &[], 5000), 1)
            .await;
        assert_eq!(acquired(&r), vec![(0, 9, 1)]);
        broker.shutdown().await;
    }
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    // The locks did not survive, but the deliveries did: 5..=9 come back on their second
    // delivery, and the done records never again.
    let r = c
        .send(&fetch_req("sfr", "m2", 0, topic, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(5, 9, 2)]);
    let r = c
        .send(&fetch_req("sfr-other", "o2", 0, topic, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(0, 9, 2)]);
    // Deleting the topic deletes its share state: a new topic of the same name starts clean.
    let del = DeleteTopicsRequest::default()
        .with_topic_names(vec![tn("sf-restart")])
        .with_timeout_ms(5000);
    assert_eq!(c.send(&del, 4).await.responses[0].error_code, 0);
    broker.shutdown().await;
    let broker = start_with(config_in(dir.path())).await;
    let ctx = broker.context().expect("running");
    assert!(
        ctx.store.share_states().unwrap().is_empty(),
        "no share state left for a deleted topic"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn share_group_offsets_are_described_reset_and_deleted() {
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let (topic, _) = topic_with(&mut c, "sf-offsets", 10).await;
    group_configs(&mut c, "sfx", &[("share.auto.offset.reset", "earliest")]).await;
    let describe = |topics: Option<Vec<i32>>| {
        DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(sb("sfx")))
                .with_topics(topics.map(|ps| {
                    vec![DescribeShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(tn("sf-offsets"))
                        .with_partitions(ps)]
                })),
        ])
    };
    let offsets = |r: &DescribeShareGroupOffsetsResponse| -> Vec<(i32, i64, i64, i16)> {
        r.groups[0]
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| (p.partition_index, p.start_offset, p.lag, p.error_code))
            .collect()
    };
    // Never read: no start offset; an unknown partition is refused.
    let r = c.send(&describe(Some(vec![0, 7])), 1).await;
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(
        offsets(&r),
        vec![
            (0, -1, -1, 0),
            (7, -1, -1, ResponseError::UnknownTopicOrPartition.code())
        ]
    );

    // m1 takes all ten and accepts 0..=5: the start offset moves to 6, lag 4.
    let r = c
        .send(&fetch_req("sfx", "m1", 0, topic, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(0, 9, 1)]);
    let r = c
        .send(&ack_req("sfx", "m1", 1, topic, &[(0, 5, 1)]), 1)
        .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    let r = c.send(&describe(None), 1).await;
    assert_eq!(offsets(&r), vec![(0, 6, 4, 0)]);
    let r = c.send(&describe(None), 0).await;
    assert_eq!(offsets(&r), vec![(0, 6, -1, 0)], "v0 has no lag");

    // A group with members cannot be reset; an empty one can.
    let hb = |epoch: i32| {
        ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb("sfx")))
            .with_member_id(sb("m1"))
            .with_member_epoch(epoch)
            .with_subscribed_topic_names((epoch == 0).then(|| vec![tn("sf-offsets")]))
    };
    assert_eq!(c.send(&hb(0), 1).await.error_code, 0);
    let alter = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(sb("sfx")))
        .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
            .with_topic_name(tn("sf-offsets"))
            .with_partitions(vec![
                AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(0)
                    .with_start_offset(2),
                AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(3)
                    .with_start_offset(0),
            ])]);
    let r = c.send(&alter, 0).await;
    assert_eq!(r.error_code, ResponseError::NonEmptyGroup.code());
    assert_eq!(c.send(&hb(-1), 1).await.error_code, 0);
    let r = c.send(&alter, 0).await;
    assert_eq!(r.error_code, 0);
    let codes: Vec<i16> = r.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![0, ResponseError::UnknownTopicOrPartition.code()]
    );
    let r = c.send(&describe(None), 1).await;
    assert_eq!(offsets(&r), vec![(0, 2, 8, 0)]);
    // The next member starts at 2, first deliveries all (the reset forgot the old ones).
    let r = c
        .send(&fetch_req("sfx", "m2", 0, topic, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(2, 9, 1)]);
    assert!(
        c.send(&ack_req("sfx", "m2", -1, topic, &[]), 1)
            .await
            .error_code
            == 0
    );

    // Deleting the topic's offsets forgets them; a second delete has nothing to delete.
    let delete = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(sb("sfx")))
        .with_topics(vec![
            DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(tn("sf-offsets"))
        ]);
    let r = c.send(&delete, 0).await;
    assert_eq!((r.error_code, r.responses[0].error_code), (0, 0));
    let r = c.send(&describe(None), 1).await;
    assert_eq!(offsets(&r), vec![]);
    let r = c.send(&delete, 0).await;
    assert_eq!(
        (
            r.responses[0].error_code,
            r.responses[0].error_message.as_deref()
        ),
        (
            ResponseError::UnknownTopicOrPartition.code(),
            Some("There is no offset information to delete.")
        )
    );
    // A consumer group's id is not a share group's.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("sfx-consumers")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tn("sf-offsets"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    assert_eq!(
        c.send(&commit, 8).await.topics[0].partitions[0].error_code,
        0
    );
    let other = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(sb("sfx-consumers")))
            .with_topics(None),
    ]);
    let r = c.send(&other, 1).await;
    assert_eq!(
        (r.groups[0].error_code, r.groups[0].error_message.as_deref()),
        (
            ResponseError::GroupIdNotFound.code(),
            Some("Group sfx-consumers is not a share group.")
        )
    );
}
