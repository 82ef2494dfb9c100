//! DeleteRecords and retention: the log start offset moves, the data below it is gone
//! (OFFSET_OUT_OF_RANGE, ListOffsets earliest), and both survive a restart.

use crate::common;

use std::time::{Duration, Instant};

use common::wire::*;
use common::*;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces `batches` batches of three records each with timestamp `ts`; returns base offsets.
async fn produce_batches(c: &mut Client, topic: &str, batches: usize, ts: i64) -> Vec<i64> {
    let mut bases = Vec::new();
    for b in 0..batches {
        let records: Vec<_> = (0..3).map(|i| record((b * 3 + i) as i64, ts)).collect();
        let (err, base) = produce(c, topic, 0, batch(&records, Compression::None), 9).await;
        assert_eq!(err, 0);
        bases.push(base);
    }
    bases
}

async fn delete_records(c: &mut Client, topic: &str, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let r = c.send(&req, 2).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

async fn create_with(c: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let req = create_with_configs(topic, configs);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
}

#[tokio::test]
async fn delete_records_moves_the_low_watermark_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = start_with(config_in(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        assert_eq!(create_topic(&mut c, "t", 1).await.topics[0].error_code, 0);
        assert_eq!(
            produce_batches(&mut c, "t", 3, now_ms()).await,
            vec![0, 3, 6]
        );

        // Offset 4 is inside the second batch: the first batch goes, the start is 4.
        assert_eq!(delete_records(&mut c, "t", 4).await, (0, 4));
        assert_eq!(list_offset(&mut c, "t", 0, EARLIEST, 7).await.1, 4);
        let below = fetch(&mut c, "t", 0, 2, 12).await;
        assert_eq!(below.error_code, ResponseError::OffsetOutOfRange.code());
        assert_eq!(below.log_start_offset, 4);
        let at = fetch(&mut c, "t", 0, 4, 12).await;
        assert_eq!(at.error_code, 0);
        assert_eq!(at.log_start_offset, 4);
        let got = decode_records(at.records.unwrap());
        assert_eq!(
            got.first().map(|r| r.offset),
            Some(3),
            "whole batch holding 4"
        );
        // Moving backwards is a no-op; past the high watermark is an error.
        assert_eq!(delete_records(&mut c, "t", 1).await, (0, 4));
        assert_eq!(
            delete_records(&mut c, "t", 100).await.0,
            ResponseError::OffsetOutOfRange.code()
        );
        assert_eq!(
            delete_records(&mut c, "nope", 0).await.0,
            ResponseError::UnknownTopicOrPartition.code()
        );
        broker.shutdown().await;
    }
    {
        let broker = start_with(config_in(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        assert_eq!(list_offset(&mut c, "t", 0, EARLIEST, 7).await.1, 4);
        // -1: everything up to the high watermark.
        assert_eq!(delete_records(&mut c, "t", -1).await, (0, 9));
        broker.shutdown().await;
    }
    // With every batch deleted, the log must resume at 9, not start over at 0.
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(list_offset(&mut c, "t", 0, EARLIEST, 7).await.1, 9);
    assert_eq!(list_offset(&mut c, "t", 0, LATEST, 7).await.1, 9);
    assert_eq!(produce_batches(&mut c, "t", 1, now_ms()).await, vec![9]);
}

async fn wait_for_log_start(c: &mut Client, topic: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = list_offset(c, topic, 0, EARLIEST, 7).await.1;
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn retention_by_time_and_size_deletes_from_the_front() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.log_retention_check_interval_ms = 50;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;

    // By time: two old batches go, the recent one stays.
    create_with(&mut c, "by-time", &[("retention.ms", "60000")]).await;
    let old = now_ms() - 3_600_000;
    produce_batches(&mut c, "by-time", 2, old).await;
    produce_batches(&mut c, "by-time", 1, now_ms()).await;
    assert_eq!(wait_for_log_start(&mut c, "by-time", 6).await, 6);
    let kept = decode_records(fetch(&mut c, "by-time", 0, 6, 12).await.records.unwrap());
    assert_eq!(kept.len(), 3);

    // A compact-only topic is never trimmed by age.
    create_with(
        &mut c,
        "compacted",
        &[("retention.ms", "60000"), ("cleanup.policy", "compact")],
    )
    .await;
    for i in 0..2 {
        let mut r = record(i, old);
        r.key = Some(bytes::Bytes::from(format!("key-{i}")));
        let (err, _) = produce(&mut c, "compacted", 0, batch(&[r], Compression::None), 9).await;
        assert_eq!(err, 0);
    }

    // By size: five equal batches, room for two.
    create_with(&mut c, "by-size", &[]).await;
    produce_batches(&mut c, "by-size", 5, now_ms()).await;
    let all = fetch(&mut c, "by-size", 0, 0, 12).await;
    assert_eq!(all.high_watermark, 15);
    let one = all.records.unwrap().len() / 5;
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string("by-size".into()))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_string("retention.bytes".into()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string((2 * one + one / 2).to_string()))),
            ]),
    ]);
    assert_eq!(c.send(&alter, 1).await.responses[0].error_code, 0);
    // Kafka's rule: drop the oldest while what remains is still at least retention.bytes;
    // with room for 2.5 batches, two of five go and three stay.
    assert_eq!(wait_for_log_start(&mut c, "by-size", 6).await, 6);

    // A whole retention pass after the trims above leaves the compact-only topic alone.
    wait_for_pass(&broker, |m| m.retention_passes.get()).await;
    assert_eq!(list_offset(&mut c, "compacted", 0, EARLIEST, 7).await.1, 0);
    assert_eq!(list_offset(&mut c, "by-size", 0, EARLIEST, 7).await.1, 6);
    assert_eq!(list_offset(&mut c, "by-size", 0, LATEST, 7).await.1, 15);
}
