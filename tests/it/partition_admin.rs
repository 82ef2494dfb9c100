//! The single-node answers of the partition admin APIs: DescribeLogDirs sizes, the one
//! leader epoch's end offset, nothing to elect or reassign, and DescribeTopicPartitions
//! paging.

use crate::common;

use common::wire::*;
use common::*;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

#[tokio::test]
async fn partition_admin_apis_answer_for_one_node() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(create_topic(&mut c, "a", 3).await.topics[0].error_code, 0);
    assert_eq!(create_topic(&mut c, "b", 2).await.topics[0].error_code, 0);
    let records: Vec<_> = (0..5).map(|i| record(i, 1000)).collect();
    let payload = batch(&records, Compression::None);
    let size = payload.len() as i64;
    assert_eq!(produce(&mut c, "a", 1, payload, 9).await, (0, 0));

    // DescribeLogDirs: every partition of "a" with its real size, "b" filtered out.
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(tn("a"))
            .with_partitions(vec![0, 1, 2, 9]),
        DescribableLogDirTopic::default()
            .with_topic(tn("missing"))
            .with_partitions(vec![0]),
    ]));
    let r = c.send(&req, 4).await;
    assert_eq!(r.results.len(), 1);
    let dir = &r.results[0];
    assert_eq!(dir.error_code, 0);
    assert!(!dir.log_dir.is_empty());
    assert_eq!(dir.topics.len(), 1);
    let sizes: Vec<(i32, i64)> = dir.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size))
        .collect();
    assert_eq!(sizes, vec![(0, 0), (1, size), (2, 0)]);

    // OffsetForLeaderEpoch: epoch 0 ends at the log end; a later epoch is unknown; a
    // newer current epoch is UNKNOWN_LEADER_EPOCH.
    let part = |p: i32, current: i32, epoch: i32| {
        OffsetForLeaderPartition::default()
            .with_partition(p)
            .with_current_leader_epoch(current)
            .with_leader_epoch(epoch)
    };
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(tn("a"))
            .with_partitions(vec![
                part(1, 0, 0),
                part(1, -1, 3),
                part(1, 5, 0),
                part(7, 0, 0),
            ])]);
    let r = c.send(&req, 4).await;
    let got: Vec<(i16, i32, i64)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 0, 5),
            (0, -1, -1),
            (ResponseError::UnknownLeaderEpoch.code(), -1, -1),
            (ResponseError::UnknownTopicOrPartition.code(), -1, -1),
        ]
    );

    // ElectLeaders: the preferred leader already leads.
    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(tn("a"))
            .with_partitions(vec![0, 5])]));
    let r = c.send(&req, 2).await;
    let codes: Vec<i16> = r.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::ElectionNotNeeded.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );

    // Reassignments: none in progress; onto this broker is a no-op, elsewhere refused.
    let r = c
        .send(&ListPartitionReassignmentsRequest::default(), 0)
        .await;
    assert_eq!((r.error_code, r.topics.len()), (0, 0));
    let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(tn("a"))
            .with_partitions(vec![
                ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(Some(vec![BrokerId(1)])),
                ReassignablePartition::default()
                    .with_partition_index(1)
                    .with_replicas(Some(vec![BrokerId(2)])),
                ReassignablePartition::default()
                    .with_partition_index(2)
                    .with_replicas(None),
            ]),
    ]);
    let r = c.send(&req, 0).await;
    let codes: Vec<i16> = r.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![
            0,
            ResponseError::InvalidReplicaAssignment.code(),
            ResponseError::NoReassignmentInProgress.code()
        ]
    );

    // DescribeTopicPartitions pages by partition count with a cursor.
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![
            TopicRequest::default().with_name(tn("b")),
            TopicRequest::default().with_name(tn("a")),
        ])
        .with_response_partition_limit(4);
    let r = c.send(&req, 0).await;
    let seen: Vec<(String, Vec<i32>)> = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![("a".into(), vec![0, 1, 2]), ("b".into(), vec![0])]
    );
    let cursor = r.next_cursor.expect("more to come");
    assert_eq!(
        (cursor.topic_name.0.as_str(), cursor.partition_index),
        ("b", 1)
    );
    let r = c
        .send(
            &req.clone().with_cursor(Some(
                kafka_protocol::messages::describe_topic_partitions_request::Cursor::default()
                    .with_topic_name(tn("b"))
                    .with_partition_index(1),
            )),
            0,
        )
        .await;
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].partitions[0].partition_index, 1);
    assert_eq!(r.topics[0].partitions[0].leader_id, BrokerId(1));
    assert!(r.next_cursor.is_none());
}

fn grow(topic: &str, count: i32) -> CreatePartitionsRequest {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(tn(topic))
            .with_count(count)])
}

async fn partitions_of(c: &mut Client, topic: &str) -> usize {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(tn(topic))),
    ]));
    c.send(&req, 12).await.topics[0].partitions.len()
}

/// Measured before: one mutated CreatePartitions grew a topic to 32,516 partitions. As Kafka's
/// controller, one request may create at most 10,000 records (topics, partitions, configs)
/// and gets POLICY_VIOLATION past that, whole; `--max-partitions` bounds the broker's total.
#[tokio::test]
async fn partition_counts_are_capped_per_request_and_in_total() {
    let config = klamm::BrokerConfig {
        max_partitions: 20_050,
        ..klamm::BrokerConfig::ephemeral()
    };
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(create_topic(&mut c, "t", 1).await.topics[0].error_code, 0);
    let r = c.send(&grow("t", 32_516), 3).await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    assert_eq!(partitions_of(&mut c, "t").await, 1, "nothing added");

    // Two topics of 6,000 partitions in one request: 12,002 records, both refused.
    let req = CreateTopicsRequest::default().with_topics(
        ["x", "y"]
            .iter()
            .map(|n| {
                kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                    .with_name(tn(n))
                    .with_num_partitions(6_000)
                    .with_replication_factor(1)
            })
            .collect(),
    );
    let r = c.send(&req, 7).await;
    for t in &r.topics {
        assert_eq!(t.error_code, ResponseError::PolicyViolation.code());
    }
    let names = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(names.topics.len(), 1, "neither topic was created");

    // Within one request's bound, but past --max-partitions in total.
    assert_eq!(
        create_topic(&mut c, "a", 9_999).await.topics[0].error_code,
        0
    );
    assert_eq!(
        create_topic(&mut c, "b", 9_999).await.topics[0].error_code,
        0
    );
    let r = create_topic(&mut c, "c", 100).await;
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    let r = c.send(&grow("t", 100), 3).await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    assert_eq!(c.send(&grow("t", 51), 3).await.results[0].error_code, 0);
    assert_eq!(partitions_of(&mut c, "t").await, 51);
    broker.shutdown().await;
}

/// The first size of a log is counted by a scan that runs without the append lock, while
/// appends go on; the appends made during the scan are added to it, so the size comes out
/// exact however the two interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_size_scan_counts_appends_that_race_it() {
    let broker = start().await;
    let addr = broker.addr();
    let mut c = Client::connect(addr).await;
    assert_eq!(create_topic(&mut c, "s", 1).await.topics[0].error_code, 0);
    let one = batch(&[record(1, 1000)], Compression::None);
    for _ in 0..2000 {
        assert_eq!(produce(&mut c, "s", 0, one.clone(), 9).await.0, 0);
    }
    let writer = tokio::spawn({
        let one = one.clone();
        async move {
            let mut w = Client::connect(addr).await;
            for _ in 0..300 {
                assert_eq!(produce(&mut w, "s", 0, one.clone(), 9).await.0, 0);
            }
        }
    });
    let req =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(tn("s"))
                .with_partitions(vec![0])]));
    let size = |r: DescribeLogDirsResponse| r.results[0].topics[0].partitions[0].partition_size;
    let first = size(c.send(&req, 4).await);
    writer.await.unwrap();
    let last = size(c.send(&req, 4).await);
    assert!(first >= 2000 * one.len() as i64);
    assert_eq!(
        last,
        2300 * one.len() as i64,
        "every stored batch counted once"
    );
    broker.shutdown().await;
}
