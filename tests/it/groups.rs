//! The classic group protocol over the wire: joins, rebalances, sessions, static members,
//! committed offsets (also across restarts) and the admin calls.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use klamm::BrokerConfig;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

/// A broker whose group session limits allow sub-second sessions, so expiry tests are quick.
async fn broker_in(dir: Option<&std::path::Path>) -> klamm::BrokerHandle {
    let mut config = match dir {
        Some(d) => config_in(d),
        None => BrokerConfig::ephemeral(),
    };
    config.group_min_session_timeout_ms = 100;
    start_with(config).await
}

fn join_req(group: &str, member: &str, meta: &[u8], session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(5_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::copy_from_slice(meta))])
}

/// Joins with KIP-394's two steps and returns the final response.
async fn join(c: &mut Client, group: &str, meta: &[u8], session_ms: i32) -> JoinGroupResponse {
    let first = c.send(&join_req(group, "", meta, session_ms), 9).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert!(!first.member_id.is_empty());
    c.send(&join_req(group, &first.member_id, meta, session_ms), 9)
        .await
}

fn sync_req(
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        )
}

fn heartbeat(group: &str, generation: i32, member: &str) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
}

fn commit(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
    meta: Option<&str>,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(meta.map(s))])])
}

async fn fetch_offset(c: &mut Client, group: &str, topic: &str) -> (i64, Option<String>) {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]));
    let resp = c.send(&req, 7).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (
        p.committed_offset,
        p.metadata.as_ref().map(|m| m.to_string()),
    )
}

async fn create_topic(c: &mut Client, name: &str) {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
}

#[tokio::test]
async fn one_member_lifecycle_offsets_and_admin() {
    let broker = broker_in(None).await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "t").await;

    let fc = c
        .send(&FindCoordinatorRequest::default().with_key(s("g1")), 3)
        .await;
    assert_eq!((fc.error_code, fc.port), (0, broker.addr().port() as i32));
    let fc = c
        .send(
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2")]),
            4,
        )
        .await;
    assert_eq!(fc.coordinators.len(), 2);
    assert!(fc
        .coordinators
        .iter()
        .all(|k| k.error_code == 0 && k.node_id.0 == 1));

    let j = join(&mut c, "g1", b"sub-a", 10_000).await;
    assert_eq!(j.error_code, 0);
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.leader, j.member_id, "the only member leads");
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].metadata, Bytes::from_static(b"sub-a"));
    let me = j.member_id.to_string();

    let sy = c
        .send(&sync_req("g1", 1, &me, &[(&me, b"assign-a")]), 5)
        .await;
    assert_eq!(
        (sy.error_code, sy.assignment.as_ref()),
        (0, &b"assign-a"[..])
    );
    assert_eq!(c.send(&heartbeat("g1", 1, &me), 4).await.error_code, 0);
    assert_eq!(
        c.send(&heartbeat("g1", 7, &me), 4).await.error_code,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        c.send(&heartbeat("g1", 1, "nobody"), 4).await.error_code,
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        c.send(&heartbeat("nogroup", 1, &me), 4).await.error_code,
        ResponseError::UnknownMemberId.code()
    );

    let r = c
        .send(&commit("g1", 1, &me, "t", 42, Some("meta ✓")), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        fetch_offset(&mut c, "g1", "t").await,
        (42, Some("meta ✓".to_string()))
    );
    let r = c.send(&commit("g1", 0, &me, "t", 99, None), 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
    let r = c.send(&commit("g1", 1, "stranger", "t", 99, None), 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownMemberId.code()
    );
    let r = c
        .send(&commit("g1", 1, &me, "no-such-topic", 1, None), 8)
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let long = "x".repeat(5000);
    let r = c.send(&commit("g1", 1, &me, "t", 1, Some(&long)), 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::OffsetMetadataTooLarge.code()
    );
    assert_eq!(
        fetch_offset(&mut c, "g1", "t").await.0,
        42,
        "rejected commits changed nothing"
    );

    let d = c
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![gid("g1"), gid("ghost")]),
            5,
        )
        .await;
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    assert_eq!(d.groups[0].protocol_data.as_str(), "range");
    assert_eq!(
        d.groups[0].members[0].member_assignment.as_ref(),
        b"assign-a"
    );
    assert_eq!(d.groups[1].group_state.as_str(), "Dead");
    let l = c.send(&ListGroupsRequest::default(), 4).await;
    assert_eq!(l.groups.len(), 1);
    assert_eq!(
        (
            l.groups[0].group_id.0.as_str(),
            l.groups[0].group_state.as_str()
        ),
        ("g1", "Stable")
    );
    let l = c
        .send(
            &ListGroupsRequest::default().with_states_filter(vec![s("Empty")]),
            4,
        )
        .await;
    assert!(l.groups.is_empty());

    let del = c
        .send(
            &DeleteGroupsRequest::default().with_groups_names(vec![gid("g1")]),
            2,
        )
        .await;
    assert_eq!(
        del.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
    let leave = c
        .send(
            &LeaveGroupRequest::default()
                .with_group_id(gid("g1"))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&me))]),
            5,
        )
        .await;
    assert_eq!(leave.members[0].error_code, 0);
    let d = c
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![gid("g1")]),
            5,
        )
        .await;
    assert_eq!(d.groups[0].group_state.as_str(), "Empty");
    let del = c
        .send(
            &DeleteGroupsRequest::default().with_groups_names(vec![gid("g1"), gid("g1x")]),
            2,
        )
        .await;
    assert_eq!(del.results[0].error_code, 0);
    assert_eq!(
        del.results[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    assert_eq!(
        fetch_offset(&mut c, "g1", "t").await.0,
        -1,
        "offsets deleted with the group"
    );
}

#[tokio::test]
async fn second_member_triggers_rebalance_and_leader_assigns_both() {
    let broker = broker_in(None).await;
    let addr = broker.addr();
    let mut a = Client::connect(addr).await;
    let ja = join(&mut a, "g2", b"A", 10_000).await;
    let a_id = ja.member_id.to_string();
    let sy = a
        .send(&sync_req("g2", 1, &a_id, &[(&a_id, b"all")]), 5)
        .await;
    assert_eq!(sy.error_code, 0);

    // B joins: its JoinGroup waits until A rejoins.
    let b_task = tokio::spawn(async move {
        let mut b = Client::connect(addr).await;
        let jb = join(&mut b, "g2", b"B", 10_000).await;
        (b, jb)
    });
    let mut rebalancing = false;
    for _ in 0..100 {
        if a.send(&heartbeat("g2", 1, &a_id), 4).await.error_code
            == ResponseError::RebalanceInProgress.code()
        {
            rebalancing = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rebalancing, "A is told to rejoin");
    let ja2 = a.send(&join_req("g2", &a_id, b"A", 10_000), 9).await;
    let (mut b, jb) = tokio::time::timeout(Duration::from_secs(10), b_task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ja2.error_code, jb.error_code), (0, 0));
    assert_eq!(ja2.generation_id, 2);
    assert_eq!(jb.generation_id, 2);
    assert_eq!(
        ja2.leader.as_str(),
        a_id.as_str(),
        "the surviving leader keeps leading"
    );
    assert_eq!(ja2.members.len(), 2);
    assert!(
        jb.members.is_empty(),
        "only the leader gets the member list"
    );
    let b_id = jb.member_id.to_string();

    // The follower's SyncGroup waits for the leader's assignment.
    let b_sync = tokio::spawn(async move { b.send(&sync_req("g2", 2, &b_id, &[]), 5).await });
    // B's SyncGroup is parked in the broker before the leader's arrives; its answer below
    // carries the leader's assignment for it, so it waited for it.
    wait_for_in_flight(&broker, "SyncGroup", 1).await;
    let assignments = [
        (a_id.as_str(), &b"p0"[..]),
        (jb.member_id.as_str(), &b"p1"[..]),
    ];
    let sa = a.send(&sync_req("g2", 2, &a_id, &assignments), 5).await;
    assert_eq!(sa.assignment.as_ref(), b"p0");
    let sb = tokio::time::timeout(Duration::from_secs(10), b_sync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((sb.error_code, sb.assignment.as_ref()), (0, &b"p1"[..]));
    // An old generation's commit is refused, whatever the topic (the group is checked
    // first, as Kafka does).
    let r = a.send(&commit("g2", 1, &a_id, "x", 1, None), 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
}

#[tokio::test]
async fn silent_member_expires_and_the_other_takes_over() {
    let broker = broker_in(None).await;
    let addr = broker.addr();
    let mut a = Client::connect(addr).await;
    let ja = join(&mut a, "g3", b"A", 400).await;
    let a_id = ja.member_id.to_string();
    a.send(&sync_req("g3", 1, &a_id, &[(&a_id, b"x")]), 5).await;
    let b_task = tokio::spawn(async move {
        let mut b = Client::connect(addr).await;
        join(&mut b, "g3", b"B", 10_000).await
    });
    // A never heartbeats or rejoins: after its 400 ms session the join completes without it.
    let jb = tokio::time::timeout(Duration::from_secs(10), b_task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jb.error_code, 0);
    assert_eq!(jb.leader, jb.member_id, "B leads alone");
    assert_eq!(jb.members.len(), 1);
    assert_eq!(
        a.send(&heartbeat("g3", 1, &a_id), 4).await.error_code,
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() {
    let broker = broker_in(None).await;
    let mut c = Client::connect(broker.addr()).await;
    let req = join_req("g4", "", b"S", 10_000).with_group_instance_id(Some(s("instance-1")));
    let j = c.send(&req, 9).await;
    assert_eq!(j.error_code, 0, "static members skip MEMBER_ID_REQUIRED");
    let old = j.member_id.to_string();
    c.send(&sync_req("g4", 1, &old, &[(&old, b"mine")]), 5)
        .await;
    // Restarted with the same instance id: new member id, same generation and assignment.
    let j2 = c.send(&req, 9).await;
    assert_eq!(j2.error_code, 0);
    assert_eq!(j2.generation_id, 1, "no rebalance");
    let new = j2.member_id.to_string();
    assert_ne!(new, old);
    let sy = c
        .send(
            &sync_req("g4", 1, &new, &[]).with_group_instance_id(Some(s("instance-1"))),
            5,
        )
        .await;
    assert_eq!(sy.assignment.as_ref(), b"mine");
    let hb = c
        .send(
            &heartbeat("g4", 1, &old).with_group_instance_id(Some(s("instance-1"))),
            4,
        )
        .await;
    assert_eq!(hb.error_code, ResponseError::FencedInstanceId.code());

    // The static leader comes back again with different subscription metadata (as a
    // cooperative consumer's owned partitions make it): the selected protocol is the same,
    // so Kafka keeps the generation and tells the leader to skip the assignment (KIP-814).
    let changed =
        join_req("g4", "", b"S-changed", 10_000).with_group_instance_id(Some(s("instance-1")));
    let j3 = c.send(&changed, 9).await;
    assert_eq!(j3.error_code, 0);
    assert_eq!(
        j3.generation_id, 1,
        "changed metadata alone must not rebalance"
    );
    assert_eq!(
        j3.leader, j3.member_id,
        "the returning member is still the leader"
    );
    assert!(
        j3.skip_assignment,
        "a Stable group's leader must skip the assignment"
    );
    assert_eq!(j3.members.len(), 1);
    assert_eq!(j3.members[0].metadata.as_ref(), b"S-changed");
    let sy = c
        .send(
            &sync_req("g4", 1, &j3.member_id, &[]).with_group_instance_id(Some(s("instance-1"))),
            5,
        )
        .await;
    assert_eq!(sy.assignment.as_ref(), b"mine");

    // Once everyone has left, the Empty group is still a "consumer" group.
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("g4"))
        .with_members(vec![MemberIdentity::default()
            .with_member_id(j3.member_id.clone())
            .with_group_instance_id(Some(s("instance-1")))]);
    assert_eq!(c.send(&leave, 5).await.error_code, 0);
    let l = c.send(&ListGroupsRequest::default(), 5).await;
    let g = l
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "g4")
        .unwrap();
    assert_eq!(
        (g.group_state.as_str(), g.protocol_type.as_str()),
        ("Empty", "consumer")
    );
}

#[tokio::test]
async fn bad_group_requests_get_their_errors() {
    let broker = broker_in(None).await;
    let mut c = Client::connect(broker.addr()).await;
    let j = c.send(&join_req("", "", b"x", 10_000), 9).await;
    assert_eq!(j.error_code, ResponseError::InvalidGroupId.code());
    let j = c.send(&join_req("g", "", b"x", 10), 9).await;
    assert_eq!(j.error_code, ResponseError::InvalidSessionTimeout.code());
    let j = c.send(&join_req("g", "made-up-id", b"x", 10_000), 9).await;
    assert_eq!(j.error_code, ResponseError::UnknownMemberId.code());
    let first = join(&mut c, "g", b"x", 10_000).await;
    assert_eq!(first.error_code, 0);
    let other = join_req("g", "", b"x", 10_000).with_protocol_type(s("connect"));
    assert_eq!(
        c.send(&other, 9).await.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let sy = c.send(&sync_req("g", 99, &first.member_id, &[]), 5).await;
    assert_eq!(sy.error_code, ResponseError::IllegalGeneration.code());
    let sy = c.send(&sync_req("zzz", 1, "m", &[]), 5).await;
    assert_eq!(sy.error_code, ResponseError::UnknownMemberId.code());
}

#[tokio::test]
async fn committed_offsets_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = broker_in(Some(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        create_topic(&mut c, "durable").await;
        // A simple (group-less) commit, as consumers using assign() make.
        let r = c
            .send(&commit("simple", -1, "", "durable", 17, Some("m")), 8)
            .await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        broker.shutdown().await;
    }
    let broker = broker_in(Some(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(
        fetch_offset(&mut c, "simple", "durable").await,
        (17, Some("m".to_string()))
    );
    let l = c.send(&ListGroupsRequest::default(), 4).await;
    assert_eq!(
        l.groups.len(),
        1,
        "a group with offsets exists after restart"
    );
    assert_eq!(l.groups[0].group_state.as_str(), "Empty");
    // v8 multi-group form, all topics.
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(gid("simple"))
            .with_topics(None),
    ]);
    let resp = c.send(&req, 8).await;
    let t = &resp.groups[0].topics[0];
    assert_eq!(
        (t.name.0.as_str(), t.partitions[0].committed_offset),
        ("durable", 17)
    );
}

/// Kafka's `validateOffsetCommit`: only a commit with generation -1 creates a (simple) group;
/// any other commit to an unknown group is refused (GROUP_ID_NOT_FOUND from v9, before that
/// ILLEGAL_GENERATION) and creates nothing. A group id too long for Kafka's offsets key
/// (over 32,767 bytes) gets INVALID_GROUP_ID: before, ids over 64 KiB wrapped the key's
/// two length bytes, so two groups could share keys.
#[tokio::test]
async fn commits_to_unknown_groups_and_overlong_ids_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let long = "g".repeat(70_000);
    {
        let broker = broker_in(Some(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        create_topic(&mut c, "t").await;
        let code = |r: OffsetCommitResponse| r.topics[0].partitions[0].error_code;
        let r = c.send(&commit("ghost", 3, "m", "t", 5, None), 9).await;
        assert_eq!(code(r), ResponseError::GroupIdNotFound.code());
        let r = c.send(&commit("ghost", 3, "m", "t", 5, None), 8).await;
        assert_eq!(code(r), ResponseError::IllegalGeneration.code());
        for v in [8, 9] {
            let r = c.send(&commit(&long, -1, "", "t", 5, None), v).await;
            assert_eq!(code(r), ResponseError::InvalidGroupId.code(), "v{v}");
        }
        let j = c.send(&join_req(&long, "", b"x", 10_000), 9).await;
        assert_eq!(j.error_code, ResponseError::InvalidGroupId.code());
        // A simple commit, with a member id as some admin tools send, to a group with no
        // members is accepted and creates the group.
        let r = c.send(&commit("short", -1, "admin", "t", 7, None), 9).await;
        assert_eq!(code(r), 0);
        assert_eq!(fetch_offset(&mut c, &long, "t").await.0, -1);
        broker.shutdown().await;
    }
    let broker = broker_in(Some(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    let l = c.send(&ListGroupsRequest::default(), 4).await;
    let ids: Vec<&str> = l.groups.iter().map(|g| g.group_id.0.as_str()).collect();
    assert_eq!(ids, vec!["short"]);
    assert_eq!(fetch_offset(&mut c, "short", "t").await.0, 7);
}

/// Joins that get MEMBER_ID_REQUIRED and never come back are pending members; they count
/// against group.max.size (10,000), so a client cannot grow the pending set without bound.
#[tokio::test]
async fn pending_members_count_against_group_max_size() {
    let broker = broker_in(None).await;
    let mut c = Client::connect(broker.addr()).await;
    for i in 0..10_000 {
        let j = c.send(&join_req("crowd", "", b"x", 60_000), 9).await;
        assert_eq!(
            j.error_code,
            ResponseError::MemberIdRequired.code(),
            "join {i}"
        );
    }
    let j = c.send(&join_req("crowd", "", b"x", 60_000), 9).await;
    assert_eq!(j.error_code, ResponseError::GroupMaxSizeReached.code());
}
