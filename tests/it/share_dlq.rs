//! The share-group dead-letter queue (KIP-1191) over the wire: a rejected record, and one
//! released after its last delivery, land in the group's dead-letter topic with Kafka's six
//! context headers (and the original key and value when the group copies them), in
//! partition `source % partitions`; an unusable topic gets nothing and the record is
//! archived regardless; a lock that runs out at the limit needs no fetch to get there.

use crate::common;
use crate::share_fetch::{ack_req, acquired, fetch_req, group_configs, topic_with};

use std::time::Duration;

use common::wire::*;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, Record, TimestampType};
use kafka_protocol::ResponseError;

fn dlq_broker() -> klamm::config::BrokerConfig {
    let mut config = klamm::config::BrokerConfig::ephemeral();
    config.errors_deadletterqueue_auto_create_topics_enable = true;
    config.group_share_min_record_lock_duration_ms = 1000;
    config
}

/// Every record of `topic`-`partition`, once there are `n` (20 s at most).
async fn dlq_records(c: &mut Client, topic: &str, partition: i32, n: usize) -> Vec<Record> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = fetch(c, topic, partition, 0, 12).await;
        let got = if p.error_code == 0 {
            p.records.map(decode_records).unwrap_or_default()
        } else {
            Vec::new()
        };
        if got.len() >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}-{partition} holds {} records, not {n}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn headers(r: &Record) -> Vec<(String, String)> {
    r.headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8(v.clone().unwrap_or_default().to_vec()).unwrap(),
            )
        })
        .collect()
}

fn expected(
    topic: &str,
    partition: i32,
    offset: i64,
    group: &str,
    dc: i16,
    message: &str,
) -> Vec<(String, String)> {
    [
        ("__dlq.errors.topic", topic.to_string()),
        ("__dlq.errors.partition", partition.to_string()),
        ("__dlq.errors.offset", offset.to_string()),
        ("__dlq.errors.group", group.to_string()),
        ("__dlq.errors.delivery.count", dc.to_string()),
        ("__dlq.errors.message", message.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

const REJECTED: &str = "Offset rejected by client.";
const EXCEEDED: &str = "Offset delivery count exceeded the threshold.";

async fn dlq_topic(c: &mut Client, name: &str, partitions: i32) {
    let mut req = create_with_configs(name, &[("errors.deadletterqueue.group.enable", "true")]);
    req.topics[0].num_partitions = partitions;
    let r = c.send(&req, 5).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

#[tokio::test]
async fn a_rejected_record_lands_in_the_dlq_with_kafkas_headers() {
    let broker = start_with(dlq_broker()).await;
    let mut c = Client::connect(broker.addr()).await;
    let (topic, produced) = topic_with(&mut c, "dlq-src", 3).await;
    dlq_topic(&mut c, "dlq.a", 2).await;
    group_configs(
        &mut c,
        "ga",
        &[
            ("share.auto.offset.reset", "earliest"),
            ("errors.deadletterqueue.topic.name", "dlq.a"),
            ("errors.deadletterqueue.copy.record.enable", "true"),
        ],
    )
    .await;
    let r = c.send(&fetch_req("ga", "m", 0, topic, &[], 5000), 1).await;
    assert_eq!(acquired(&r), vec![(0, 2, 1)]);
    let before = klamm::share::manager::now_ms();
    let r = c
        .send(
            &ack_req("ga", "m", 1, topic, &[(0, 0, 3), (1, 1, 1), (2, 2, 3)]),
            1,
        )
        .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);

    // Source partition 0 of a 2-partition DLQ topic: partition 0, in offset order.
    let got = dlq_records(&mut c, "dlq.a", 0, 2).await;
    let want = decode_records(produced);
    assert_eq!(got.len(), 2, "offset 1 was accepted");
    for (g, offset) in got.iter().zip([0i64, 2]) {
        let w = &want[offset as usize];
        assert_eq!(
            (&g.key, &g.value),
            (&w.key, &w.value),
            "the original record"
        );
        assert_eq!(
            headers(g),
            expected("dlq-src", 0, offset, "ga", 1, REJECTED)
        );
        assert_eq!(g.timestamp_type, TimestampType::Creation);
        assert!(
            g.timestamp >= before,
            "stamped when written, not the original's"
        );
    }
    assert_eq!(list_offset(&mut c, "dlq.a", 1, -1, 4).await.1, 0);

    // Archived: the share partition moved past them, and a new record comes alone.
    produce(
        &mut c,
        "dlq-src",
        0,
        batch(&[record(3, 1)], Compression::None),
        9,
    )
    .await;
    let r = c.send(&fetch_req("ga", "m", 2, topic, &[], 5000), 1).await;
    assert_eq!(acquired(&r), vec![(3, 3, 1)]);
    let ctx = broker.context().unwrap();
    wait_until("the write counted", || {
        ctx.metrics.share_dlq_writes.get() >= 1
    })
    .await;
    assert_eq!(ctx.metrics.share_dlq_failed_writes.get(), 0);

    // Without copy: the context alone, no key and no value.
    group_configs(
        &mut c,
        "gb",
        &[
            ("share.auto.offset.reset", "earliest"),
            ("errors.deadletterqueue.topic.name", "dlq.a"),
        ],
    )
    .await;
    let r = c.send(&fetch_req("gb", "m", 0, topic, &[], 5000), 1).await;
    assert_eq!(acquired(&r), vec![(0, 3, 1)]);
    c.send(&ack_req("gb", "m", 1, topic, &[(0, 2, 1), (3, 3, 3)]), 1)
        .await;
    let got = dlq_records(&mut c, "dlq.a", 0, 3).await;
    assert_eq!((&got[2].key, &got[2].value), (&None, &None));
    assert_eq!(
        headers(&got[2]),
        expected("dlq-src", 0, 3, "gb", 1, REJECTED)
    );
}

#[tokio::test]
async fn releases_and_expired_locks_at_the_limit_land_as_exceeded() {
    let broker = start_with(dlq_broker()).await;
    let mut c = Client::connect(broker.addr()).await;
    let (topic, _) = topic_with(&mut c, "dlq-rel", 1).await;
    group_configs(
        &mut c,
        "gr",
        &[
            ("share.auto.offset.reset", "earliest"),
            ("share.delivery.count.limit", "2"),
            ("errors.deadletterqueue.topic.name", "dlq.auto"),
        ],
    )
    .await;
    // Released twice: the second release is past the limit.
    let r = c.send(&fetch_req("gr", "m", 0, topic, &[], 5000), 1).await;
    assert_eq!(acquired(&r), vec![(0, 0, 1)]);
    let r = c
        .send(&fetch_req("gr", "m", 1, topic, &[(0, 0, 2)], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(0, 0, 2)]);
    c.send(&ack_req("gr", "m", 2, topic, &[(0, 0, 2)]), 1).await;
    // dlq.auto did not exist: made with the broker's defaults and Kafka's two configs.
    let got = dlq_records(&mut c, "dlq.auto", 0, 1).await;
    assert_eq!(
        headers(&got[0]),
        expected("dlq-rel", 0, 0, "gr", 2, EXCEEDED)
    );
    let d = c
        .send(
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(sb("dlq.auto"))
                    .with_configuration_keys(None),
            ]),
            4,
        )
        .await;
    let set: Vec<(String, String)> = d.results[0]
        .configs
        .iter()
        .filter(|c| c.config_source == 1)
        .map(|c| (c.name.to_string(), c.value.clone().unwrap().to_string()))
        .collect();
    assert_eq!(
        set,
        vec![
            ("errors.deadletterqueue.group.enable".into(), "true".into()),
            ("message.timestamp.type".into(), "CreateTime".into())
        ]
    );

    // A lock that runs out at the limit, with nobody fetching any more.
    group_configs(
        &mut c,
        "gl",
        &[
            ("share.auto.offset.reset", "earliest"),
            ("share.delivery.count.limit", "2"),
            ("share.record.lock.duration.ms", "1000"),
            ("errors.deadletterqueue.topic.name", "dlq.auto"),
        ],
    )
    .await;
    let r = c.send(&fetch_req("gl", "m", 0, topic, &[], 5000), 1).await;
    assert_eq!(acquired(&r), vec![(0, 0, 1)]);
    let r = c.send(&fetch_req("gl", "m", 1, topic, &[], 5000), 1).await;
    assert_eq!(
        acquired(&r),
        vec![(0, 0, 2)],
        "redelivered once the lock ran out"
    );
    let got = dlq_records(&mut c, "dlq.auto", 0, 2).await;
    assert_eq!(
        headers(&got[1]),
        expected("dlq-rel", 0, 0, "gl", 2, EXCEEDED)
    );
}

#[tokio::test]
async fn an_unusable_dlq_topic_gets_nothing_and_the_record_is_archived() {
    let mut config = dlq_broker();
    config.errors_deadletterqueue_auto_create_topics_enable = false;
    let broker = start_with(config).await;
    let ctx = broker.context().unwrap();
    let mut c = Client::connect(broker.addr()).await;
    let (topic, _) = topic_with(&mut c, "dlq-bad", 1).await;
    let r = c.send(&create_with_configs("dlq.off", &[]), 5).await;
    assert_eq!(r.topics[0].error_code, 0);
    let r = c
        .send(
            &create_with_configs(
                "noprefix",
                &[("errors.deadletterqueue.group.enable", "true")],
            ),
            5,
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    for (i, dlq) in ["dlq.off", "noprefix", "dlq.missing"]
        .into_iter()
        .enumerate()
    {
        let group = format!("g{i}");
        group_configs(
            &mut c,
            &group,
            &[
                ("share.auto.offset.reset", "earliest"),
                ("errors.deadletterqueue.topic.name", dlq),
            ],
        )
        .await;
        let failed = ctx.metrics.share_dlq_failed_writes.get();
        let r = c
            .send(&fetch_req(&group, "m", 0, topic, &[], 5000), 1)
            .await;
        assert_eq!(acquired(&r), vec![(0, 0, 1)]);
        c.send(&ack_req(&group, "m", 1, topic, &[(0, 0, 3)]), 1)
            .await;
        wait_until("the write given up", || {
            ctx.metrics.share_dlq_failed_writes.get() > failed
        })
        .await;
        // Archived regardless: the group's next fetch finds nothing to take.
        let r = c.send(&fetch_req(&group, "m", 2, topic, &[], 100), 1).await;
        assert_eq!(acquired(&r), vec![], "{dlq}");
    }
    assert_eq!(list_offset(&mut c, "dlq.off", 0, -1, 4).await.1, 0);
    assert_eq!(list_offset(&mut c, "noprefix", 0, -1, 4).await.1, 0);
    let (code, _, _) = list_offset(&mut c, "dlq.missing", 0, -1, 4).await;
    assert_eq!(
        code,
        ResponseError::UnknownTopicOrPartition.code(),
        "not created"
    );
    assert_eq!(ctx.metrics.share_dlq_writes.get(), 0);
}

fn sb(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}

/// ARCHIVING records a stop left behind (their write not done) are written when the broker
/// starts again, with no fetch: the cause is Kafka's guess from the delivery count.
#[tokio::test]
async fn a_restart_redoes_the_writes_a_stop_left_undone() {
    use klamm::share::partition::{PersistedBatch, ShareSnapshot};
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = common::config_in(dir.path());
        c.errors_deadletterqueue_auto_create_topics_enable = true;
        c
    };
    let topic = {
        let broker = start_with(config()).await;
        let mut c = Client::connect(broker.addr()).await;
        let (topic, _) = topic_with(&mut c, "dlq-restart", 2).await;
        group_configs(
            &mut c,
            "gs",
            &[
                ("errors.deadletterqueue.topic.name", "dlq.restart"),
                ("errors.deadletterqueue.copy.record.enable", "true"),
            ],
        )
        .await;
        // What a stop between the acknowledgement and the write leaves in the store.
        let batch = |offset, delivery_count| PersistedBatch {
            first_offset: offset,
            last_offset: offset,
            delivery_state: 3,
            delivery_count,
        };
        broker.context().unwrap().share_partitions.replace_stored(
            "gs",
            topic,
            0,
            Some(&ShareSnapshot {
                state_epoch: 0,
                start_offset: 0,
                delivery_complete_count: 0,
                batches: vec![batch(0, 1), batch(1, 5)],
            }),
        );
        broker.shutdown().await;
        topic
    };
    let broker = start_with(config()).await;
    let mut c = Client::connect(broker.addr()).await;
    let got = dlq_records(&mut c, "dlq.restart", 0, 2).await;
    assert_eq!(
        headers(&got[0]),
        expected("dlq-restart", 0, 0, "gs", 1, REJECTED)
    );
    assert_eq!(
        headers(&got[1]),
        expected("dlq-restart", 0, 1, "gs", 5, EXCEEDED)
    );
    let want = decode_records(
        fetch(&mut c, "dlq-restart", 0, 0, 12)
            .await
            .records
            .unwrap(),
    );
    assert_eq!((&got[1].key, &got[1].value), (&want[1].key, &want[1].value));
    // Both archived: the group has nothing left to take.
    let ctx = broker.context().unwrap();
    wait_until("both archived", || {
        ctx.share_partitions
            .summary("gs", topic, 0)
            .is_some_and(|(start, _)| start == 2)
    })
    .await;
}
