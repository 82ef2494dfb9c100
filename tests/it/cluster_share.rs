//! Cluster mode, share groups (KIP-932): a share partition's delivery state lives with its
//! share coordinator on the replicated `__share_group_state`, so what a consumer
//! acknowledged survives the loss of the partition's leader, and of the coordinator: the
//! new leader hands out exactly the records not done with, with their delivery counts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use crate::cluster::{
    find_coordinator, free_port, partitions_of, start_broker_with, start_cluster, start_zookeeper,
    test_dir, wait_isr,
};
use crate::common::wire::*;
use crate::common::*;
use crate::share_fetch::{ack_req, acquired, fetch_req};

const GROUP: &str = "sq-group";

async fn client(port: u16) -> Client {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    Client::connect(addr).await
}

/// The leader of partition 0 of `topic` as `port` sees it, once it is not `not`.
async fn leader_other_than(port: u16, topic: &str, not: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, parts) = partitions_of(port, topic).await;
        let leader = parts[0].1;
        if leader > 0 && leader != not {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader of {topic}: {parts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The share coordinator (FindCoordinator v6, key type 2) of the share partition, asked at
/// `port`, once it is not `not`.
async fn share_coordinator(port: u16, topic_id: uuid::Uuid, not: i32) -> i32 {
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic_id.as_bytes());
    let key = StrBytes::from_string(format!("{GROUP}:{id}:0"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = client(port)
            .await
            .send(
                &FindCoordinatorRequest::default()
                    .with_key_type(2)
                    .with_coordinator_keys(vec![key.clone()]),
                6,
            )
            .await;
        let c = &resp.coordinators[0];
        if c.error_code == 0 && c.node_id.0 != not {
            return c.node_id.0;
        }
        assert!(
            Instant::now() < deadline,
            "no share coordinator other than {not}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ReadShareGroupStateSummary v1 at the coordinator: (state epoch, start offset).
async fn summary(port: u16, topic_id: uuid::Uuid) -> (i32, i64) {
    use read_share_group_state_summary_request::{PartitionData, ReadStateSummaryData};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = ReadShareGroupStateSummaryRequest::default()
            .with_group_id(StrBytes::from_static_str(GROUP))
            .with_topics(vec![ReadStateSummaryData::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![PartitionData::default()
                    .with_partition(0)
                    .with_leader_epoch(-1)])]);
        let resp = client(port).await.send(&req, 1).await;
        let p = &resp.results[0].partitions[0];
        // COORDINATOR_LOAD_IN_PROGRESS (14) while a new coordinator reads the log.
        if p.error_code != 14 {
            assert_eq!(p.error_code, 0, "{p:?}");
            return (p.state_epoch, p.start_offset);
        }
        assert!(Instant::now() < deadline, "the coordinator never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ShareFetch at `port` until records come (bounded): a new leader may first answer
/// NOT_LEADER_OR_FOLLOWER or UNKNOWN_SERVER_ERROR while the metadata and the share
/// coordinator settle. The connection is returned: closing it would end the member's
/// share session and give its records back.
async fn fetch_records(
    port: u16,
    member: &str,
    topic_id: uuid::Uuid,
) -> (Client, ShareFetchResponse) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = client(port).await;
        let r = c
            .send(&fetch_req(GROUP, member, 0, topic_id, &[], 2000), 1)
            .await;
        assert_eq!(r.error_code, 0, "{r:?}");
        let p = &r.responses[0].partitions[0];
        if !p.acquired_records.is_empty() {
            return (c, r);
        }
        assert!(
            [0, 6, 3, 100, -1].contains(&p.error_code),
            "unexpected partition error: {p:?}"
        );
        assert!(
            Instant::now() < deadline,
            "the new leader never handed out records: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The records handed out are the produced batch byte for byte, but for the partition
/// leader epoch (bytes 12..16) that the leader stamps (outside the CRC).
fn same_batch(r: &ShareFetchResponse, produced: &bytes::Bytes) {
    let got = r.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    assert_eq!(got.len(), produced.len());
    assert_eq!(got[..12], produced[..12]);
    assert_eq!(got[16..], produced[16..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_state_survives_the_loss_of_the_leader_and_of_the_share_coordinator() {
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port(), free_port()];
    let flags = [
        "--share-coordinator-state-topic-num-partitions",
        "3",
        "--offsets-topic-num-partitions",
        "3",
        "--default-replication-factor",
        "3",
        "--replica-lag-time-max-ms",
        "1500",
    ];
    let mut brokers = start_cluster(dir.path(), zk_port, &ports, &flags).await;
    let port_of = |id: i32| ports[id as usize - 1];
    let created = client(ports[0])
        .await
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(tn("sq"))
                    .with_num_partitions(1)
                    .with_replication_factor(3)])
                .with_timeout_ms(10_000),
            7,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    wait_isr(ports[0], "sq", "all in sync", |s| {
        s.len() == 1 && s[0].1.len() == 3
    })
    .await;
    let (_, topic_id, parts) = partitions_of(ports[0], "sq").await;
    let leader = parts[0].1;
    // The group coordinators' topic is made now, while all three brokers live.
    find_coordinator(ports[0], 0, GROUP).await;

    // The first fetch makes the share partition at the log end (share.auto.offset.reset
    // latest); then ten records come, all on the in-sync replicas.
    let mut c = client(port_of(leader)).await;
    let r = c
        .send(&fetch_req(GROUP, "m1", 0, topic_id, &[], 100), 1)
        .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    assert!(acquired(&r).is_empty());
    let records: Vec<_> = (0..10).map(|i| record(i, 1_700_000_000_000 + i)).collect();
    let b = batch(&records, Compression::None);
    assert_eq!(produce(&mut c, "sq", 0, b.clone(), 9).await.0, 0);
    let r = c
        .send(&fetch_req(GROUP, "m1", 1, topic_id, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(0, 9, 1)]);
    same_batch(&r, &b);
    // 0..=3 accepted, 4 rejected, 5 released; 6..=9 still locked to m1.
    let r = c
        .send(
            &ack_req(GROUP, "m1", 2, topic_id, &[(0, 3, 1), (4, 4, 3), (5, 5, 2)]),
            1,
        )
        .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");

    // The leader dies. The new one reads the state from the share coordinator: 5..=9 come
    // back, byte-exact, on their second delivery; 0..=4 never again.
    brokers[leader as usize - 1].take(); // SIGKILL
    let survivor = ports
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i32 + 1 != leader)
        .map(|(_, p)| *p)
        .unwrap();
    let second = leader_other_than(survivor, "sq", leader).await;
    let (mut m2, r) = fetch_records(port_of(second), "m2", topic_id).await;
    assert_eq!(acquired(&r), vec![(5, 9, 2)]);
    same_batch(&r, &b);

    // The dead broker comes back, and 5..=7 are accepted.
    let data = dir.path().join(format!("broker-{leader}"));
    brokers[leader as usize - 1] = Some(
        start_broker_with(leader, port_of(leader), zk_port, &data, &flags)
            .unwrap_or_else(|log| panic!("broker {leader} exited:\n{log}")),
    );
    wait_isr(survivor, "sq", "sq in sync again", |s| s[0].1.len() == 3).await;
    wait_isr(
        survivor,
        "__share_group_state",
        "__share_group_state in sync again",
        |s| s.len() == 3 && s.iter().all(|(_, isr)| isr.len() == 3),
    )
    .await;
    let r = m2
        .send(&ack_req(GROUP, "m2", 1, topic_id, &[(5, 7, 1)]), 1)
        .await;
    assert_eq!((r.error_code, r.responses.len()), (0, 1), "{r:?}");
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    let coordinator = share_coordinator(survivor, topic_id, -1).await;
    let (state_epoch, start) = summary(port_of(coordinator), topic_id).await;
    assert_eq!(start, 8, "everything before 8 is done with");

    // The share coordinator dies. Its successor loads the state from the replicated log and
    // takes the next acknowledgement from the leader.
    brokers[coordinator as usize - 1].take(); // SIGKILL
    let alive = ports
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i32 + 1 != coordinator)
        .map(|(_, p)| *p)
        .unwrap();
    let next = share_coordinator(alive, topic_id, coordinator).await;
    assert_eq!(
        summary(port_of(next), topic_id).await,
        (state_epoch, 8),
        "the new coordinator has the state"
    );
    let (leader_now, mut member, name) = if coordinator == second {
        // It led the partition too: the next leader hands 8..=9 out on their third
        // delivery (the acquisition went with the last write).
        let third = leader_other_than(alive, "sq", coordinator).await;
        let (mut m3, r) = fetch_records(port_of(third), "m3", topic_id).await;
        assert_eq!(acquired(&r), vec![(8, 9, 3)]);
        let r = m3
            .send(&ack_req(GROUP, "m3", 1, topic_id, &[(8, 9, 1)]), 1)
            .await;
        assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
        (third, m3, "m3")
    } else {
        let r = m2
            .send(&ack_req(GROUP, "m2", 2, topic_id, &[(8, 9, 1)]), 1)
            .await;
        assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
        (second, m2, "m2")
    };
    assert_eq!(
        summary(port_of(next), topic_id).await,
        (state_epoch, 10),
        "the last acknowledgement is at the new coordinator"
    );

    // kafka-share-groups' APIs at the group coordinator go to the share coordinator: the
    // member's session closes, the group's offsets are described, reset to 2, and the
    // leader hands out 2..=9 again as first deliveries; then they are deleted.
    close_session(&mut member, name).await;
    let (_, group_port) = find_coordinator(alive, 0, GROUP).await;
    let mut admin = client(group_port).await;
    assert_eq!(describe(&mut admin).await, (10, 0));
    let alter = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(vec![
            alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(tn("sq"))
                .with_partitions(vec![
                    alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default()
                        .with_partition_index(0)
                        .with_start_offset(2),
                ]),
        ]);
    let r = admin.send(&alter, 0).await;
    assert_eq!(
        (r.error_code, r.responses[0].partitions[0].error_code),
        (0, 0),
        "{r:?}"
    );
    assert_eq!(summary(port_of(next), topic_id).await, (state_epoch + 1, 2));
    assert_eq!(describe(&mut admin).await, (2, 8));
    let (mut m4, r) = fetch_records(port_of(leader_now), "m4", topic_id).await;
    assert_eq!(acquired(&r), vec![(2, 9, 1)], "read anew after the reset");
    close_session(&mut m4, "m4").await;
    let delete = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(vec![
            delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                .with_topic_name(tn("sq")),
        ]);
    let r = admin.send(&delete, 0).await;
    assert_eq!((r.error_code, r.responses[0].error_code), (0, 0), "{r:?}");
    assert_eq!(
        summary(port_of(next), topic_id).await.1,
        -1,
        "no state left"
    );
    // With no member and no state left, the group is gone, as on a single node.
    let r = admin.send(&delete, 0).await;
    assert_eq!(r.error_code, 69, "GROUP_ID_NOT_FOUND: {r:?}");

    // A member joins (the group is assigned `sq`), one more record is accepted, the member
    // leaves, and DeleteGroups drops the group's state at the share coordinator too.
    let heartbeat = |epoch: i32| {
        ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
            .with_member_id(StrBytes::from_static_str("m5"))
            .with_member_epoch(epoch)
            .with_subscribed_topic_names((epoch == 0).then(|| vec![tn("sq")]))
    };
    assert_eq!(admin.send(&heartbeat(0), 1).await.error_code, 0);
    let mut p = client(port_of(leader_now)).await;
    let r = p
        .send(&fetch_req(GROUP, "m5", 0, topic_id, &[], 100), 1)
        .await;
    assert!(acquired(&r).is_empty(), "{r:?}");
    let extra = batch(&[record(99, 1_700_000_000_099)], Compression::None);
    assert_eq!(produce(&mut p, "sq", 0, extra, 9).await.0, 0);
    let r = p
        .send(&fetch_req(GROUP, "m5", 1, topic_id, &[], 5000), 1)
        .await;
    assert_eq!(acquired(&r), vec![(10, 10, 1)]);
    let r = p
        .send(&ack_req(GROUP, "m5", 2, topic_id, &[(10, 10, 1)]), 1)
        .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    assert_eq!(summary(port_of(next), topic_id).await.1, 11);
    close_session(&mut p, "m5").await;
    assert_eq!(admin.send(&heartbeat(-1), 1).await.error_code, 0);
    let r = admin
        .send(
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_static_str(GROUP))]),
            2,
        )
        .await;
    assert_eq!(r.results[0].error_code, 0, "{r:?}");
    assert_eq!(
        summary(port_of(next), topic_id).await.1,
        -1,
        "DeleteGroups left no state"
    );

    // The group comes back and has state again; deleting the topic removes it at the
    // share coordinator (each broker removes the states it keeps, Kafka's onTopicsDeleted).
    assert_eq!(admin.send(&heartbeat(0), 1).await.error_code, 0);
    let mut p = client(port_of(leader_now)).await;
    // The new group starts at the end (share.auto.offset.reset=latest): fetch, then produce.
    let r = p
        .send(&fetch_req(GROUP, "m5", 0, topic_id, &[], 100), 1)
        .await;
    assert!(acquired(&r).is_empty(), "{r:?}");
    let extra = batch(&[record(100, 1_700_000_000_100)], Compression::None);
    assert_eq!(produce(&mut p, "sq", 0, extra, 9).await.0, 0);
    let r = p
        .send(&fetch_req(GROUP, "m5", 1, topic_id, &[], 5000), 1)
        .await;
    let got = acquired(&r);
    assert!(!got.is_empty(), "{r:?}");
    let (first, last, _) = got[0];
    let r = p
        .send(&ack_req(GROUP, "m5", 2, topic_id, &[(first, last, 1)]), 1)
        .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    assert_eq!(summary(port_of(next), topic_id).await.1, last + 1);
    let r = admin
        .send(
            &DeleteTopicsRequest::default().with_topic_names(vec![tn("sq")]),
            4,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0, "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while summary(port_of(next), topic_id).await.1 != -1 {
        assert!(
            Instant::now() < deadline,
            "the deleted topic's share state is still at its coordinator"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ends the member's share session (ShareFetch with the final epoch), which also writes
/// the releases and lets the leader forget the group's share partitions.
async fn close_session(c: &mut Client, member: &str) {
    let r = c
        .send(
            &ShareFetchRequest::default()
                .with_group_id(Some(GroupId(StrBytes::from_static_str(GROUP))))
                .with_member_id(Some(StrBytes::from_string(member.to_string())))
                .with_share_session_epoch(-1),
            1,
        )
        .await;
    assert_eq!(r.error_code, 0, "{r:?}");
}

/// DescribeShareGroupOffsets v1 of partition 0 of `sq`: (start offset, lag).
async fn describe(c: &mut Client) -> (i64, i64) {
    use describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    let r = c
        .send(
            &DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
                    .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(tn("sq"))
                        .with_partitions(vec![0])])),
            ]),
            1,
        )
        .await;
    assert_eq!(r.groups[0].error_code, 0, "{r:?}");
    let p = &r.groups[0].topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    (p.start_offset, p.lag)
}

/// A dead-letter write to a DLQ partition another broker leads goes there over the
/// inter-broker listener: the record the source partition's leader archives lands, with
/// its headers and copied value, on the other broker's partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dlq_record_is_produced_to_the_dlq_partitions_leader_on_another_broker() {
    use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port(), free_port()];
    let flags = [
        "--share-coordinator-state-topic-num-partitions",
        "1",
        "--offsets-topic-num-partitions",
        "1",
    ];
    let _brokers = start_cluster(dir.path(), zk_port, &ports, &flags).await;
    // One partition, placed on broker `on`.
    let create = |name: &str, on: i32, configs: &[(&str, &str)]| {
        create_with_configs(name, configs)
            .topics
            .remove(0)
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(on)])])
    };
    let mut c = client(ports[0]).await;
    let created = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![
                    create("src", 1, &[]),
                    create(
                        "dlq.c",
                        2,
                        &[("errors.deadletterqueue.group.enable", "true")],
                    ),
                ])
                .with_timeout_ms(10_000),
            7,
        )
        .await;
    for t in &created.topics {
        assert_eq!(t.error_code, 0, "{:?}", t.error_message);
    }
    wait_isr(ports[0], "dlq.c", "dlq.c led by 2", |s| s[0].0 == 2).await;
    wait_isr(ports[0], "src", "src led by 1", |s| s[0].0 == 1).await;
    let (_, topic_id, _) = partitions_of(ports[0], "src").await;
    find_coordinator(ports[0], 0, GROUP).await;
    crate::share_fetch::group_configs(
        &mut c,
        GROUP,
        &[
            ("share.auto.offset.reset", "earliest"),
            ("errors.deadletterqueue.topic.name", "dlq.c"),
            ("errors.deadletterqueue.copy.record.enable", "true"),
        ],
    )
    .await;
    let b = batch(&[record(1, 1_700_000_000_000)], Compression::None);
    assert_eq!(produce(&mut c, "src", 0, b.clone(), 9).await.0, 0);
    let (mut m, r) = fetch_records(ports[0], "m1", topic_id).await;
    assert_eq!(acquired(&r), vec![(0, 0, 1)]);
    let r = m
        .send(&ack_req(GROUP, "m1", 1, topic_id, &[(0, 0, 3)]), 1)
        .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");

    let mut on_2 = client(ports[1]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let p = fetch(&mut on_2, "dlq.c", 0, 0, 12).await;
        let code = p.error_code;
        let got = p.records.map(decode_records).unwrap_or_default();
        if !got.is_empty() {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "no DLQ record on broker 2 ({code})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let want = &decode_records(b)[0];
    assert_eq!(got.len(), 1);
    assert_eq!((&got[0].key, &got[0].value), (&want.key, &want.value));
    let headers: Vec<(String, Vec<u8>)> = got[0]
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone().unwrap().to_vec()))
        .collect();
    assert_eq!(
        headers,
        vec![
            ("__dlq.errors.topic".to_string(), b"src".to_vec()),
            ("__dlq.errors.partition".to_string(), b"0".to_vec()),
            ("__dlq.errors.offset".to_string(), b"0".to_vec()),
            ("__dlq.errors.group".to_string(), GROUP.as_bytes().to_vec()),
            ("__dlq.errors.delivery.count".to_string(), b"1".to_vec()),
            (
                "__dlq.errors.message".to_string(),
                b"Offset rejected by client.".to_vec()
            ),
        ]
    );
}
