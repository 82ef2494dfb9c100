//! Idempotent producers: a retried batch is not stored twice, gaps and stale epochs are
//! refused with Kafka's errors, and the producer state survives a restart.

use crate::common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use kafka_protocol::ResponseError;

/// A batch of `n` records from producer `pid`/`epoch` starting at sequence `seq`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            producer_id: pid,
            producer_epoch: epoch,
            ..record(i64::from(seq + i), 1)
        })
        .collect();
    // `batch` numbers records 0..n with sequence offset-1; shift to the wanted sequence.
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: i as i64,
            sequence: seq + i as i32,
            ..r
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: Compression::Lz4,
        },
    )
    .unwrap();
    buf.freeze()
}

async fn produce(c: &mut Client, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("idem")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let r = c.send(&req, 9).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn init(c: &mut Client) -> (i64, i16) {
    let r = c
        .send(
            &InitProducerIdRequest::default().with_transactional_id(None),
            4,
        )
        .await;
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

#[tokio::test]
async fn retries_are_deduplicated_and_sequence_errors_reported_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pid;
    {
        let broker = start_with(config_in(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        let (id, epoch) = init(&mut c).await;
        pid = id;
        assert_eq!(
            produce(&mut c, idempotent_batch(pid, epoch, 0, 5)).await,
            (0, 0)
        );
        assert_eq!(
            produce(&mut c, idempotent_batch(pid, epoch, 5, 5)).await,
            (0, 5)
        );
        // The same batch again (a retry after a lost response): original offset, no append.
        assert_eq!(
            produce(&mut c, idempotent_batch(pid, epoch, 0, 5)).await,
            (0, 0)
        );
        assert_eq!(
            produce(&mut c, idempotent_batch(pid, epoch, 5, 5)).await,
            (0, 5)
        );
        // A gap.
        let (err, _) = produce(&mut c, idempotent_batch(pid, epoch, 20, 2)).await;
        assert_eq!(err, ResponseError::OutOfOrderSequenceNumber.code());
        // Another producer is independent.
        let (other, other_epoch) = init(&mut c).await;
        assert_eq!(
            produce(&mut c, idempotent_batch(other, other_epoch, 0, 1)).await,
            (0, 10)
        );
        broker.shutdown().await;
    }
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    // Still a duplicate after the restart, and the next sequence continues.
    assert_eq!(
        produce(&mut c, idempotent_batch(pid, 0, 5, 5)).await,
        (0, 5)
    );
    assert_eq!(
        produce(&mut c, idempotent_batch(pid, 0, 10, 1)).await,
        (0, 11)
    );
    // A bumped epoch starts over at sequence 0; the old epoch is then fenced.
    assert_eq!(
        produce(&mut c, idempotent_batch(pid, 1, 0, 1)).await,
        (0, 12)
    );
    let (err, _) = produce(&mut c, idempotent_batch(pid, 0, 11, 1)).await;
    assert_eq!(err, ResponseError::InvalidProducerEpoch.code());
    let (err, _) = produce(&mut c, idempotent_batch(pid, 2, 3, 1)).await;
    assert_eq!(err, ResponseError::OutOfOrderSequenceNumber.code());

    // Exactly 13 records stored, each once.
    let req = FetchRequest::default()
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("idem")))
            .with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    let r = c.send(&req, 12).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 13);
    let recs = decode_records(p.records.clone().unwrap());
    assert_eq!(recs.len(), 13);
    assert!(recs.iter().enumerate().all(|(i, r)| r.offset == i as i64));
}

/// Kafka's `producer.id.expiration.ms`: a partition forgets a producer whose last batch is
/// older than that (and that has no open transaction), so the producer map does not grow
/// with every producer id ever seen; a recent producer is kept.
#[tokio::test]
async fn idle_producer_ids_expire() {
    let config = klamm::BrokerConfig {
        producer_id_expiration_ms: 3_600_000,
        log_retention_check_interval_ms: 50,
        ..klamm::BrokerConfig::ephemeral()
    };
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    let (old_pid, epoch) = init(&mut c).await;
    let (new_pid, _) = init(&mut c).await;
    // Batches' timestamps are the producers' last activity: one from long ago, one now.
    assert_eq!(
        produce(&mut c, idempotent_batch(old_pid, epoch, 0, 2))
            .await
            .0,
        0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let recent: Vec<Record> = (0..2)
        .map(|i| Record {
            producer_id: new_pid,
            producer_epoch: epoch,
            offset: i,
            sequence: i as i32,
            ..record(i, now)
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut buf,
        &recent,
        &kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    assert_eq!(produce(&mut c, buf.freeze()).await.0, 0);

    let producers = |r: DescribeProducersResponse| {
        let mut ids: Vec<i64> = r.topics[0].partitions[0]
            .active_producers
            .iter()
            .map(|p| p.producer_id.0)
            .collect();
        ids.sort();
        ids
    };
    let req = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(TopicName(StrBytes::from_static_str("idem")))
            .with_partition_indexes(vec![0]),
    ]);
    wait_for_pass(&broker, |m| m.retention_passes.get()).await;
    assert_eq!(producers(c.send(&req, 0).await), vec![new_pid]);
}
