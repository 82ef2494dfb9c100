//! The broker over the real wire protocol: topics, produce, fetch, offsets, restarts.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::*;
use common::*;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use kafka_protocol::ResponseError;
use uuid::Uuid;

fn assert_same_records(got: &[Record], want: &[Record], first_offset: i64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.offset, first_offset + i as i64);
        assert_eq!(g.key, w.key, "key of record {i}");
        assert_eq!(g.value, w.value, "value of record {i}");
        assert_eq!(g.headers, w.headers, "headers of record {i}");
        assert_eq!(g.timestamp, w.timestamp, "timestamp of record {i}");
    }
}

#[tokio::test]
async fn api_versions_every_version_and_kip511_fallback() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for v in 0..=4 {
        let mut req = ApiVersionsRequest::default();
        if v >= 3 {
            req = req
                .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
                .with_client_software_version(StrBytes::from_static_str("1.0"));
        }
        let resp = c.send(&req, v).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (3, 13));
        assert!(resp
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Fetch as i16));
    }
    // ApiVersions v99: answered in the v0 format with UNSUPPORTED_VERSION and the table.
    let mut raw = Vec::new();
    raw.extend_from_slice(&18i16.to_be_bytes());
    raw.extend_from_slice(&99i16.to_be_bytes());
    raw.extend_from_slice(&7i32.to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes());
    raw.extend_from_slice(&[0, 0, 0]);
    c.send_raw_frame(&raw).await;
    let mut frame = c.recv_frame().await.expect("fallback response");
    use kafka_protocol::protocol::Decodable;
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 7);
    let resp = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Metadata as i16));
}

#[tokio::test]
async fn produce_and_fetch_are_byte_exact_for_every_codec_and_version() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let created = create_topic(&mut c, "codecs", 2).await;
    assert_eq!(created.topics[0].error_code, 0);
    let topic_id = created.topics[0].topic_id;
    assert_ne!(topic_id, Uuid::nil());

    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut all = Vec::new();
    let mut next = 0i64;
    for (round, codec) in codecs.iter().enumerate() {
        let recs: Vec<Record> = (0..7)
            .map(|i| record(round as i64 * 10 + i, 1_700_000_000_000 + i))
            .collect();
        let version = [3, 7, 9, 11, 12][round];
        let (err, base) = produce(&mut c, "codecs", 1, batch(&recs, *codec), version).await;
        assert_eq!(err, 0, "codec {codec:?}");
        assert_eq!(base, next);
        next += recs.len() as i64;
        all.extend(recs);
    }
    // Produce v13 addresses the topic by id.
    let recs: Vec<Record> = (0..3).map(|i| record(100 + i, 5)).collect();
    let resp = c
        .send(
            &produce_req("", topic_id, 1, batch(&recs, Compression::None), 1),
            13,
        )
        .await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, next);
    all.extend(recs);

    for version in [4, 7, 11, 12] {
        let p = fetch(&mut c, "codecs", 1, 0, version).await;
        assert_eq!(p.error_code, 0);
        assert_eq!(p.high_watermark, all.len() as i64);
        assert_same_records(&decode_records(p.records.unwrap()), &all, 0);
    }
    for version in [13, 16, 18] {
        let resp = c.send(&fetch_req("", topic_id, 1, 0), version).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_same_records(&decode_records(p.records.clone().unwrap()), &all, 0);
    }
    // Fetching from the middle of a batch returns that whole batch.
    let p = fetch(&mut c, "codecs", 1, 9, 12).await;
    let got = decode_records(p.records.unwrap());
    assert_eq!(got[0].offset, 7);
    // The other partition is untouched.
    let p = fetch(&mut c, "codecs", 0, 0, 12).await;
    assert_eq!(p.high_watermark, 0);
    assert!(p.records.unwrap().is_empty());
}

#[tokio::test]
async fn fetch_respects_byte_limits_but_always_returns_one_batch() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "limits", 1).await;
    let mut sizes = Vec::new();
    for i in 0..5 {
        let recs: Vec<Record> = (0..10).map(|j| record(i * 10 + j, 1)).collect();
        let b = batch(&recs, Compression::None);
        sizes.push(b.len());
        produce(&mut c, "limits", 0, b, 9).await;
    }
    let mut req = fetch_req("limits", Uuid::nil(), 0, 0);
    req.topics[0].partitions[0].partition_max_bytes = 1;
    let resp = c.send(&req, 12).await;
    let got = decode_records(resp.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(
        got.len(),
        10,
        "exactly one batch although it exceeds the limit"
    );
    let mut req = fetch_req("limits", Uuid::nil(), 0, 0);
    req.max_bytes = (sizes[0] + sizes[1] + sizes[2] - 1) as i32;
    let resp = c.send(&req, 12).await;
    let got = decode_records(resp.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(got.len(), 20, "two batches fit in max_bytes");
}

/// The broker's `fetch.max.bytes` caps a response whatever the client asks for, and still
/// returns at least one batch.
#[tokio::test]
async fn broker_fetch_max_bytes_caps_what_a_client_asks_for() {
    let broker = start_with(klamm::BrokerConfig {
        fetch_max_bytes: 1024,
        ..klamm::BrokerConfig::ephemeral()
    })
    .await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "capped", 1).await;
    let mut sizes = Vec::new();
    for i in 0..6 {
        let mut r = record(i, 1);
        r.value = Some(Bytes::from(vec![b'v'; 400]));
        let b = batch(&[r], Compression::None);
        sizes.push(b.len());
        assert_eq!(produce(&mut c, "capped", 0, b, 9).await.0, 0);
    }
    let fits = sizes
        .iter()
        .scan(0, |sum, s| {
            *sum += s;
            Some(*sum)
        })
        .take_while(|sum| *sum <= 1024)
        .count();
    assert!((1..6).contains(&fits));
    let resp = c.send(&fetch_req("capped", Uuid::nil(), 0, 0), 12).await;
    let got = decode_records(resp.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(got.len(), fits, "the broker's cap, not the client's 50 MiB");
    // A batch larger than the cap still comes back alone.
    let mut big = record(9, 1);
    big.value = Some(Bytes::from(vec![b'b'; 4000]));
    assert_eq!(
        produce(&mut c, "capped", 0, batch(&[big], Compression::None), 9)
            .await
            .0,
        0
    );
    let resp = c.send(&fetch_req("capped", Uuid::nil(), 0, 6), 12).await;
    let got = decode_records(resp.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value.as_ref().map(|v| v.len()), Some(4000));
}

#[tokio::test]
async fn list_offsets_by_special_values_and_time() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "times", 1).await;
    let a: Vec<Record> = (0..3).map(|i| record(i, 1000 + i * 10)).collect(); // 1000,1010,1020
    let b: Vec<Record> = (0..3).map(|i| record(i, 5000 + i * 10)).collect(); // 5000..5020
    let d: Vec<Record> = (0..2).map(|i| record(i, 3000 + i)).collect(); // out of order
    produce(&mut c, "times", 0, batch(&a, Compression::Lz4), 9).await;
    produce(&mut c, "times", 0, batch(&b, Compression::Gzip), 9).await;
    produce(&mut c, "times", 0, batch(&d, Compression::None), 9).await;
    for v in [1, 4, 7, 10] {
        assert_eq!(list_offset(&mut c, "times", 0, -2, v).await, (0, 0, -1));
        assert_eq!(list_offset(&mut c, "times", 0, -1, v).await, (0, 8, -1));
        assert_eq!(list_offset(&mut c, "times", 0, 1010, v).await, (0, 1, 1010));
        assert_eq!(list_offset(&mut c, "times", 0, 1011, v).await, (0, 2, 1020));
        assert_eq!(list_offset(&mut c, "times", 0, 2000, v).await, (0, 3, 5000));
        assert_eq!(list_offset(&mut c, "times", 0, 9999, v).await, (0, -1, -1));
    }
    assert_eq!(list_offset(&mut c, "times", 0, -3, 7).await, (0, 5, 5020));
    let (err, _, _) = list_offset(&mut c, "nope", 0, -1, 7).await;
    assert_eq!(err, ResponseError::UnknownTopicOrPartition.code());
}

#[tokio::test]
async fn long_poll_returns_on_produce_and_not_before_min_bytes() {
    let broker = start().await;
    let addr = broker.addr();
    let mut c = Client::connect(addr).await;
    create_topic(&mut c, "poll", 1).await;
    let waiter = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let mut req = fetch_req("poll", Uuid::nil(), 0, 0);
        req.max_wait_ms = 15_000;
        req.min_bytes = 1;
        c.send(&req, 12).await
    });
    // The fetch is parked in the broker; its answer below carries the record produced
    // after, so it waited for it (with no data it would have answered empty).
    wait_for_in_flight(&broker, "Fetch", 1).await;
    let recs = vec![record(1, 42)];
    produce(&mut c, "poll", 0, batch(&recs, Compression::None), 9).await;
    let resp = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("fetch woke up on produce")
        .unwrap();
    let got = decode_records(resp.responses[0].partitions[0].records.clone().unwrap());
    assert_same_records(&got, &recs, 0);

    // Data already there: answered without waiting for max_wait.
    let mut req = fetch_req("poll", Uuid::nil(), 0, 0);
    req.max_wait_ms = 30_000;
    req.min_bytes = 1;
    let started = Instant::now();
    let resp = c.send(&req, 12).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!resp.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn data_and_topics_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Record> = (0..20).map(|i| record(i, 10_000 + i)).collect();
    let topic_id;
    {
        let broker = start_with(config_in(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        topic_id = create_topic(&mut c, "durable", 2).await.topics[0].topic_id;
        produce(
            &mut c,
            "durable",
            1,
            batch(&recs[..10], Compression::Zstd),
            9,
        )
        .await;
        produce(
            &mut c,
            "durable",
            1,
            batch(&recs[10..], Compression::Snappy),
            9,
        )
        .await;
        broker.shutdown().await;
    }
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    let md = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(md.topics.len(), 1);
    assert_eq!(md.topics[0].topic_id, topic_id);
    assert_eq!(md.topics[0].partitions.len(), 2);
    let p = fetch(&mut c, "durable", 1, 0, 12).await;
    assert_eq!(p.high_watermark, 20);
    assert_same_records(&decode_records(p.records.unwrap()), &recs, 0);
    assert_eq!(
        list_offset(&mut c, "durable", 1, 10_015, 7).await,
        (0, 15, 10_015)
    );
    // New appends continue after the recovered log end offset.
    let (err, base) = produce(
        &mut c,
        "durable",
        1,
        batch(&recs[..1], Compression::None),
        9,
    )
    .await;
    assert_eq!((err, base), (0, 20));
}

#[tokio::test]
async fn topic_admin_create_delete_recreate_and_add_partitions() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let r = create_topic(&mut c, "admin", 2).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].num_partitions, 2);
    let r = create_topic(&mut c, "admin", 2).await;
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
    let r = create_topic(&mut c, "bad/name", 1).await;
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(tn("rf3"))
        .with_num_partitions(1)
        .with_replication_factor(3)]);
    let r = c.send(&req, 5).await;
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );

    produce(
        &mut c,
        "admin",
        0,
        batch(&[record(1, 1)], Compression::None),
        9,
    )
    .await;
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(tn("admin"))
            .with_count(5)]);
    let r = c.send(&req, 3).await;
    assert_eq!(r.results[0].error_code, 0);
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(tn("admin"))
            .with_count(3)]);
    let r = c.send(&req, 3).await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::InvalidPartitions.code()
    );
    let md = c
        .send(
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(tn("admin")))
            ])),
            12,
        )
        .await;
    assert_eq!(md.topics[0].partitions.len(), 5);
    assert_eq!(fetch(&mut c, "admin", 0, 0, 12).await.high_watermark, 1);

    let req = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_name(Some(tn("admin")))
    ]);
    let r = c.send(&req, 6).await;
    assert_eq!(r.responses[0].error_code, 0);
    let r = c.send(&req, 6).await;
    assert_eq!(
        r.responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let req = DeleteTopicsRequest::default().with_topic_names(vec![tn("admin")]);
    let r = c.send(&req, 4).await;
    assert_eq!(
        r.responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    // Re-created under the same name: a new id, and none of the old data.
    let r = create_topic(&mut c, "admin", 1).await;
    assert_eq!(r.topics[0].error_code, 0);
    let p = fetch(&mut c, "admin", 0, 0, 12).await;
    assert_eq!(p.high_watermark, 0);
    assert!(p.records.unwrap().is_empty());
}

#[tokio::test]
async fn metadata_auto_creates_and_describes_cluster() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for v in [0, 1, 4, 9, 12, 13] {
        let name = format!("auto-{v}");
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(tn(&name)))
            ]))
            .with_allow_auto_topic_creation(true);
        let md = c.send(&req, v).await;
        assert_eq!(md.topics[0].error_code, 0, "v{v}");
        assert_eq!(md.topics[0].partitions.len(), 1);
        assert_eq!(md.brokers[0].port, broker.addr().port() as i32);
        assert_eq!(md.topics[0].partitions[0].leader_id, md.brokers[0].node_id);
    }
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(tn("no-auto")))
        ]))
        .with_allow_auto_topic_creation(false);
    let md = c.send(&req, 12).await;
    assert_eq!(
        md.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let dc = c.send(&DescribeClusterRequest::default(), 0).await;
    assert_eq!(dc.error_code, 0);
    assert_eq!(dc.brokers.len(), 1);
    assert_eq!(dc.controller_id, dc.brokers[0].broker_id);
    let md = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(md.cluster_id.as_deref(), Some(dc.cluster_id.as_str()));
    assert_eq!(md.topics.len(), 6);
}

#[tokio::test]
async fn produce_errors_use_kafka_codes() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "errs", 1).await;
    let good = batch(&[record(1, 1)], Compression::None);
    assert_eq!(
        produce(&mut c, "errs", 7, good.clone(), 9).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let mut bad = good.to_vec();
    *bad.last_mut().unwrap() ^= 0x55;
    assert_eq!(
        produce(&mut c, "errs", 0, Bytes::from(bad), 9).await.0,
        ResponseError::CorruptMessage.code()
    );
    let big: Vec<Record> = (0..1)
        .map(|_| Record {
            value: Some(Bytes::from(vec![7u8; 1_100_000])),
            ..record(1, 1)
        })
        .collect();
    assert_eq!(
        produce(&mut c, "errs", 0, batch(&big, Compression::None), 9)
            .await
            .0,
        ResponseError::MessageTooLarge.code()
    );
    let resp = c
        .send(&produce_req("errs", Uuid::nil(), 0, good.clone(), 2), 9)
        .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code()
    );
    let mut v1 = good.to_vec();
    v1[16] = 1;
    assert_eq!(
        produce(&mut c, "errs", 0, Bytes::from(v1), 9).await.0,
        ResponseError::InvalidRecord.code()
    );
    // Nothing of the above was stored; the good batch still lands at offset 0.
    assert_eq!(produce(&mut c, "errs", 0, good, 9).await, (0, 0));
    let p = fetch(&mut c, "errs", 0, 5, 12).await;
    assert_eq!(p.error_code, ResponseError::OffsetOutOfRange.code());
}

#[tokio::test]
async fn acks_zero_gets_no_response_but_is_stored() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "fire", 1).await;
    let recs = vec![record(1, 1), record(2, 2)];
    c.send_only(
        &produce_req("fire", Uuid::nil(), 0, batch(&recs, Compression::None), 0),
        9,
    )
    .await;
    // The next response on this connection is for the next request, not the produce.
    let md = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(md.topics.len(), 1);
    let p = fetch(&mut c, "fire", 0, 0, 12).await;
    assert_same_records(&decode_records(p.records.unwrap()), &recs, 0);

    // A failed acks=0 produce has no response to carry its error: the broker closes the
    // connection, as Kafka does, and nothing is stored; other connections are unaffected.
    c.send_only(
        &produce_req("fire", Uuid::nil(), 7, batch(&recs, Compression::None), 0),
        9,
    )
    .await;
    assert!(c.recv_frame().await.is_none(), "connection closed");
    let mut c = Client::connect(broker.addr()).await;
    let (_, end, _) = list_offset(&mut c, "fire", 0, -1, 7).await;
    assert_eq!(end, 2);

    // A fire-and-forget client that closes right after sending is still written: the
    // broker finishes a produce whose client went away (only waiting requests are dropped).
    for _ in 0..20 {
        let mut quick = Client::connect(broker.addr()).await;
        quick
            .send_only(
                &produce_req("fire", Uuid::nil(), 0, batch(&recs, Compression::None), 0),
                9,
            )
            .await;
        drop(quick);
    }
    wait_until_end(&mut c, "fire", 42).await;
    // The same behind a request still being handled when the close arrives: the buffered
    // produce is carried out too.
    for _ in 0..20 {
        let mut quick = Client::connect(broker.addr()).await;
        quick
            .send_only(&MetadataRequest::default().with_topics(None), 12)
            .await;
        quick
            .send_only(
                &produce_req("fire", Uuid::nil(), 0, batch(&recs, Compression::None), 0),
                9,
            )
            .await;
        drop(quick);
    }
    wait_until_end(&mut c, "fire", 82).await;
}

/// Polls the log end until it reaches `want` (20 s at most).
async fn wait_until_end(c: &mut Client, topic: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, end, _) = list_offset(c, topic, 0, -1, 7).await;
        if end == want {
            return;
        }
        assert!(
            end < want && Instant::now() < deadline,
            "log end {end}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn init_producer_id_hands_out_unique_ids_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first;
    {
        let broker = start_with(config_in(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        let a = c
            .send(&idempotent().with_transaction_timeout_ms(60_000), 4)
            .await;
        let b = c
            .send(&idempotent().with_transaction_timeout_ms(60_000), 0)
            .await;
        assert_eq!((a.error_code, b.error_code), (0, 0));
        assert!(a.producer_id.0 >= 0 && b.producer_id.0 >= 0);
        assert_ne!(a.producer_id, b.producer_id);
        assert_eq!(a.producer_epoch, 0);
        // KIP-360 epoch bump for an existing producer.
        let bumped = c
            .send(
                &idempotent()
                    .with_producer_id(a.producer_id)
                    .with_producer_epoch(0),
                4,
            )
            .await;
        assert_eq!(
            (bumped.producer_id, bumped.producer_epoch),
            (a.producer_id, 1)
        );
        let txn = c
            .send(
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx")))),
                4,
            )
            .await;
        assert_ne!(
            txn.error_code, 0,
            "transactions are refused until implemented"
        );
        first = b.producer_id.0.max(a.producer_id.0);
        broker.shutdown().await;
    }
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    let again = c.send(&idempotent(), 4).await;
    assert!(
        again.producer_id.0 > first,
        "ids are never reused after a restart"
    );
}

/// What idempotent producers send: no transactional id (null, not empty).
fn idempotent() -> InitProducerIdRequest {
    InitProducerIdRequest::default().with_transactional_id(None)
}

/// The version steps Kafka 4.3/4.4 took for APIs Klamm had: each new field is honoured.
#[tokio::test]
async fn kafka_4_4_version_steps() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let created = create_topic(&mut c, "v44", 2).await;
    let topic_id = created.topics[0].topic_id;
    let meta = c.send(&MetadataRequest::default(), 12).await;
    let cluster_id = meta.cluster_id.clone().unwrap();
    let node_id = meta.brokers[0].node_id.0;

    // ApiVersions v5 (KIP-1242): a client that names another cluster or node is told to
    // rebootstrap, with no table; the right pair, or none, gets the table.
    let av = |cluster: Option<StrBytes>, node: i32| {
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
            .with_client_software_version(StrBytes::from_static_str("1.0"))
            .with_cluster_id(cluster)
            .with_node_id(node)
    };
    for (cluster, node, want) in [
        (Some(cluster_id.clone()), node_id, 0),
        (None, -1, 0),
        (None, node_id + 7, 0),
        (
            Some(StrBytes::from_static_str("another-cluster")),
            node_id,
            ResponseError::RebootstrapRequired.code(),
        ),
        (
            Some(cluster_id.clone()),
            node_id + 1,
            ResponseError::RebootstrapRequired.code(),
        ),
    ] {
        let resp = c.send(&av(cluster.clone(), node), 5).await;
        assert_eq!(resp.error_code, want, "{cluster:?} {node}");
        assert_eq!(resp.api_keys.is_empty(), want != 0, "{cluster:?} {node}");
    }
    // An invalid software name: INVALID_REQUEST and, as Kafka, no table.
    let bad = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("-bad-"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    let resp = c.send(&bad, 4).await;
    assert_eq!(resp.error_code, ResponseError::InvalidRequest.code());
    assert!(resp.api_keys.is_empty());

    // ListOffsets v11: EARLIEST_PENDING_UPLOAD (-6) is -1 without tiered storage, while
    // the other timestamps still answer.
    produce(
        &mut c,
        "v44",
        0,
        batch(&[record(0, 1_000), record(1, 2_000)], Compression::None),
        9,
    )
    .await;
    for (ts, want) in [(-6i64, -1i64), (-2, 0), (-1, 2), (1_500, 1)] {
        let r = c
            .send(
                &ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(tn("v44"))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(ts),
                        ]),
                ]),
                11,
            )
            .await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset), (0, want), "timestamp {ts}");
    }

    // OffsetCommit and OffsetFetch v10 name topics by id; an unknown id is UNKNOWN_TOPIC_ID.
    let stranger = Uuid::new_v4();
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("v44-group")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(42)
                        .with_committed_metadata(Some(StrBytes::from_static_str("m"))),
                ]),
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_topic_id(stranger)
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    let r = c.send(&commit, 10).await;
    assert_eq!(r.topics[0].topic_id, topic_id);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(r.topics[1].topic_id, stranger);
    assert_eq!(
        r.topics[1].partitions[0].error_code,
        ResponseError::UnknownTopicId.code()
    );
    let fetch = |topics: Option<Vec<offset_fetch_request::OffsetFetchRequestTopics>>| {
        OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("v44-group")))
                .with_member_epoch(-1)
                .with_topics(topics),
        ])
    };
    let r = c
        .send(
            &fetch(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_topic_id(topic_id)
                    .with_partition_indexes(vec![0, 1]),
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_topic_id(stranger)
                    .with_partition_indexes(vec![0]),
            ])),
            10,
        )
        .await;
    let g = &r.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.topics[0].topic_id, topic_id);
    let got: Vec<(i32, i64, i16)> = g.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect();
    assert_eq!(got, vec![(0, -1, 0), (1, 42, 0)]);
    assert_eq!(g.topics[1].topic_id, stranger);
    assert_eq!(
        g.topics[1].partitions[0].error_code,
        ResponseError::UnknownTopicId.code()
    );
    // All of a group's offsets (topics null): listed by id.
    let r = c.send(&fetch(None), 10).await;
    let t = &r.groups[0].topics;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].topic_id, topic_id);
    assert_eq!(t[0].partitions[0].committed_offset, 42);

    // DeleteGroups v3: the cause beside the code.
    let r = c
        .send(
            &DeleteGroupsRequest::default().with_groups_names(vec![
                GroupId(StrBytes::from_static_str("v44-group")),
                GroupId(StrBytes::from_static_str("v44-nobody")),
            ]),
            3,
        )
        .await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(r.results[0].error_message, None);
    assert_eq!(
        r.results[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    assert!(r.results[1]
        .error_message
        .as_deref()
        .is_some_and(|m| !m.is_empty()));

    // DescribeQuorum: a single node is its own quorum's leader and only voter; any other
    // partition than __cluster_metadata-0 is unknown.
    {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        let req = DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(tn("__cluster_metadata"))
                .with_partitions(vec![
                    PartitionData::default().with_partition_index(0),
                    PartitionData::default().with_partition_index(1),
                ]),
            TopicData::default()
                .with_topic_name(tn("v44"))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]);
        let r = c.send(&req, 2).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_id.0, p.leader_epoch),
            (0, node_id, 1)
        );
        assert_eq!(p.current_voters.len(), 1);
        assert_eq!(p.current_voters[0].replica_id.0, node_id);
        assert!(p.observers.is_empty());
        assert_eq!(r.nodes.len(), 1);
        assert_eq!(
            r.nodes[0].listeners[0].port,
            broker.addr().port(),
            "the voter's endpoint"
        );
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(r.topics[0].partitions[1].error_code, unknown);
        assert_eq!(r.topics[1].partitions[0].error_code, unknown);
    }

    // UpdateFeatures: the level in force is accepted, any change refused with the reason;
    // v2 answers at the top level, v0-1 per feature.
    {
        use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
        let update = |feature: &'static str, level: i16| {
            UpdateFeaturesRequest::default().with_feature_updates(vec![FeatureUpdateKey::default()
                .with_feature(StrBytes::from_static_str(feature))
                .with_max_version_level(level)])
        };
        let invalid = ResponseError::InvalidUpdateVersion.code();
        assert_eq!(c.send(&update("group.version", 1), 2).await.error_code, 0);
        let r = c.send(&update("group.version", 0), 2).await;
        assert_eq!(r.error_code, invalid);
        assert!(r
            .error_message
            .as_deref()
            .unwrap()
            .contains("group.version"));
        assert_eq!(
            c.send(&update("transaction.version", 2), 2)
                .await
                .error_code,
            0
        );
        assert_eq!(
            c.send(&update("transaction.version", 1), 2)
                .await
                .error_code,
            invalid
        );
        let r = c.send(&update("group.version", 0), 1).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.results[0].error_code, invalid);
        // Nothing changed.
        let av = c
            .send(&av(None, -1), 4)
            .await
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.max_version_level))
            .collect::<Vec<_>>();
        assert_eq!(
            av,
            vec![
                ("group.version".to_string(), 1),
                ("transaction.version".to_string(), 2),
                ("share.version".to_string(), 2),
                ("streams.version".to_string(), 1),
            ]
        );
    }

    // ListConfigResources: every topic and the broker by type; an empty list is every type
    // (v0: client metrics only, of which there are none); an unsupported type is refused.
    {
        let addr = broker.addr();
        let list = |types: Vec<i8>, v: i16| async move {
            let mut c = Client::connect(addr).await;
            c.send(
                &ListConfigResourcesRequest::default().with_resource_types(types),
                v,
            )
            .await
        };
        let r = list(vec![2, 4], 1).await;
        assert_eq!(r.error_code, 0);
        let mut got: Vec<(String, i8)> = r
            .config_resources
            .iter()
            .map(|c| (c.resource_name.to_string(), c.resource_type))
            .collect();
        got.sort();
        assert_eq!(got, vec![(node_id.to_string(), 4), ("v44".to_string(), 2)]);
        let all = list(vec![], 1).await;
        assert_eq!(all.error_code, 0);
        assert!(all
            .config_resources
            .iter()
            .any(|c| (c.resource_name.as_str(), c.resource_type) == (&*node_id.to_string(), 8)));
        let v0 = list(vec![], 0).await;
        assert_eq!((v0.error_code, v0.config_resources.len()), (0, 0));
        assert_eq!(
            list(vec![3], 1).await.error_code,
            ResponseError::UnsupportedVersion.code()
        );
    }

    // Client telemetry (KIP-714): a new client gets an instance id and no metrics to push;
    // pushes are checked against the subscription and the size bound.
    {
        let sub = c
            .send(&GetTelemetrySubscriptionsRequest::default(), 0)
            .await;
        assert_eq!(sub.error_code, 0);
        assert!(!sub.client_instance_id.is_nil());
        assert!(sub.requested_metrics.is_empty(), "no subscription");
        assert!(sub.push_interval_ms > 0 && sub.telemetry_max_bytes > 0);
        let again = c
            .send(
                &GetTelemetrySubscriptionsRequest::default()
                    .with_client_instance_id(sub.client_instance_id),
                0,
            )
            .await;
        assert!(again.client_instance_id.is_nil(), "an id is assigned once");
        assert_eq!(again.subscription_id, sub.subscription_id);
        let push = |sid: i32, metrics: usize| {
            PushTelemetryRequest::default()
                .with_client_instance_id(sub.client_instance_id)
                .with_subscription_id(sid)
                .with_metrics(Bytes::from(vec![0u8; metrics]))
        };
        assert_eq!(
            c.send(&push(sub.subscription_id, 10), 0).await.error_code,
            0
        );
        assert_eq!(
            c.send(&push(sub.subscription_id.wrapping_add(1), 10), 0)
                .await
                .error_code,
            ResponseError::UnknownSubscriptionId.code()
        );
        assert_eq!(
            c.send(
                &push(sub.subscription_id, sub.telemetry_max_bytes as usize + 1),
                0
            )
            .await
            .error_code,
            ResponseError::TelemetryTooLarge.code()
        );
    }

    // DescribeLogDirs v5 (IsCordoned): the one data directory, not cordoned, with the topic.
    let r = c
        .send(&DescribeLogDirsRequest::default().with_topics(None), 5)
        .await;
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].error_code, 0);
    assert!(!r.results[0].is_cordoned);
    assert!(r.results[0]
        .topics
        .iter()
        .any(|t| t.name.0.as_str() == "v44"));
    broker.shutdown().await;
}
