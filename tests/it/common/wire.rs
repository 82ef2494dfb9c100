//! Request helpers shared by the wire-protocol tests: create a topic, produce one batch,
//! fetch one partition, list one offset.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use uuid::Uuid;

use super::Client;

pub fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub async fn create_topic(c: &mut Client, name: &str, partitions: i32) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    c.send(&req, 7).await
}

pub fn produce_req(
    topic: &str,
    topic_id: Uuid,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tn(topic))
            .with_topic_id(topic_id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces one batch and returns (error code, base offset).
pub async fn produce(
    c: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
    version: i16,
) -> (i16, i64) {
    let resp = c
        .send(
            &produce_req(topic, Uuid::nil(), partition, records, -1),
            version,
        )
        .await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn fetch_req(topic: &str, topic_id: Uuid, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(tn(topic))
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(10 * 1024 * 1024)])])
}

pub async fn fetch(
    c: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    version: i16,
) -> fetch_response::PartitionData {
    let resp = c
        .send(&fetch_req(topic, Uuid::nil(), partition, offset), version)
        .await;
    assert_eq!(resp.error_code, 0);
    resp.responses[0].partitions[0].clone()
}

pub async fn list_offset(
    c: &mut Client,
    topic: &str,
    partition: i32,
    ts: i64,
    version: i16,
) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(ts)])]);
    let resp = c.send(&req, version).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// CreateTopics (v7) for one single-partition topic with the given topic configs.
pub fn create_with_configs(name: &str, configs: &[(&str, &str)]) -> CreateTopicsRequest {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(tn(name))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        )])
}

/// A transactional batch of `n` records from `pid`/`epoch` starting at sequence `seq`.
pub fn txn_batch(pid: i64, epoch: i16, seq: i32, n: i32, tag: &str) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            producer_id: pid,
            producer_epoch: epoch,
            offset: i64::from(i),
            sequence: seq + i,
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            ..super::record(i64::from(i), 1)
        })
        .collect();
    // Not `super::batch`: that renumbers sequences, and these carry the producer's.
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

/// WriteTxnMarkers v1 of one marker for `producer`'s transaction on `partitions` of `topic`.
pub fn marker_req(
    (pid, epoch): (i64, i16),
    commit: bool,
    coordinator_epoch: i32,
    topic: &str,
    partitions: Vec<i32>,
) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest::default().with_markers(vec![
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(tn(topic))
                    .with_partition_indexes(partitions),
            ]),
    ])
}

/// ConsumerGroupHeartbeat's TopicPartitions for partitions a member owns, by topic id.
pub fn owned_partitions(
    parts: &std::collections::BTreeSet<(Uuid, i32)>,
) -> Vec<consumer_group_heartbeat_request::TopicPartitions> {
    let mut by: std::collections::BTreeMap<Uuid, Vec<i32>> = Default::default();
    for (t, p) in parts {
        by.entry(*t).or_default().push(*p);
    }
    by.into_iter()
        .map(|(t, ps)| {
            consumer_group_heartbeat_request::TopicPartitions::default()
                .with_topic_id(t)
                .with_partitions(ps)
        })
        .collect()
}

/// A streams group member's tasks: (subtopology id, partition).
pub type Tasks = std::collections::BTreeSet<(String, i32)>;

/// StreamsGroupHeartbeat v1 of `member` (its own process) owning the active tasks `owned`;
/// a join (epoch 0) carries the topology: one stateless subtopology "0" reading `topic`.
pub fn streams_heartbeat_req(
    group: &str,
    member: &str,
    epoch: i32,
    topic: &str,
    owned: &Tasks,
) -> StreamsGroupHeartbeatRequest {
    use kafka_protocol::messages::streams_group_heartbeat_request as hb;
    let sb = |s: &str| StrBytes::from_string(s.to_string());
    let mut by: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for (s, p) in owned {
        by.entry(s).or_default().push(*p);
    }
    let active = by
        .into_iter()
        .map(|(s, ps)| {
            hb::TaskIds::default()
                .with_subtopology_id(sb(s))
                .with_partitions(ps)
        })
        .collect();
    let topology = (epoch == 0).then(|| {
        hb::Topology::default().with_subtopologies(vec![hb::Subtopology::default()
            .with_subtopology_id(sb("0"))
            .with_source_topics(vec![tn(topic)])])
    });
    StreamsGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_endpoint_information_epoch(-1)
        .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
        .with_topology(topology)
        .with_process_id((epoch == 0).then(|| sb(&format!("process-{member}"))))
        .with_active_tasks(Some(active))
        .with_standby_tasks(Some(vec![]))
        .with_warmup_tasks(Some(vec![]))
}

/// The active tasks a StreamsGroupHeartbeat response gives (None: unchanged).
pub fn streams_active(r: &StreamsGroupHeartbeatResponse) -> Option<Tasks> {
    r.active_tasks.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.subtopology_id.to_string(), *p))
            })
            .collect()
    })
}
