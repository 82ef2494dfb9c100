//! KIP-848 consumer groups over the wire: joining, revocation before reassignment, fencing
//! and Kafka's errors, leaving, session expiry, assignors, regex subscriptions, the describe
//! and list views, offset commits checked against member epochs, and exclusion of classic
//! members.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::wire::*;
use common::*;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

struct Hb<'a> {
    member: &'a str,
    epoch: i32,
    topics: Option<&'a [&'a str]>,
    regex: Option<&'a str>,
    assignor: Option<&'a str>,
    owned: Option<Vec<(Uuid, i32)>>,
    instance: Option<&'a str>,
}

fn hb<'a>(member: &'a str, epoch: i32) -> Hb<'a> {
    Hb {
        member,
        epoch,
        topics: None,
        regex: None,
        assignor: None,
        owned: None,
        instance: None,
    }
}

async fn heartbeat(c: &mut Client, group: &str, h: Hb<'_>) -> ConsumerGroupHeartbeatResponse {
    let owned = h
        .owned
        .map(|parts| owned_partitions(&parts.into_iter().collect()));
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(h.member))
        .with_member_epoch(h.epoch)
        .with_rebalance_timeout_ms(if h.epoch == 0 { 30_000 } else { -1 })
        .with_subscribed_topic_names(h.topics.map(|ts| ts.iter().map(|t| tn(t)).collect()))
        .with_subscribed_topic_regex(h.regex.map(sb))
        .with_server_assignor(h.assignor.map(sb))
        .with_instance_id(h.instance.map(sb))
        .with_topic_partitions(owned);
    c.send(&req, 1).await
}

fn parts(r: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<(Uuid, i32)>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
            .collect()
    })
}

async fn topic_id(c: &mut Client, name: &str, partitions: i32) -> Uuid {
    let r = create_topic(c, name, partitions).await;
    r.topics[0].topic_id
}

#[tokio::test]
async fn members_join_revoke_then_reassign_and_leave() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let t = topic_id(&mut c, "cg", 4).await;
    let all: BTreeSet<(Uuid, i32)> = (0..4).map(|p| (t, p)).collect();

    // The first member gets everything, at group epoch 1.
    let r = heartbeat(
        &mut c,
        "g",
        Hb {
            topics: Some(&["cg"]),
            ..hb("a", 0)
        },
    )
    .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_id.as_deref(), Some("a"));
    assert_eq!(r.member_epoch, 1);
    assert!(r.heartbeat_interval_ms > 0);
    assert_eq!(parts(&r), Some(all.clone()));
    // Nothing changed: no assignment in the answer.
    let r = heartbeat(&mut c, "g", hb("a", 1)).await;
    assert_eq!((r.member_epoch, parts(&r)), (1, None));

    // A second member (server-made member id, v0 style): it gets nothing while "a" still
    // owns the partitions; "a" is told to give half up and keeps its epoch meanwhile.
    let r = heartbeat(
        &mut c,
        "g",
        Hb {
            topics: Some(&["cg"]),
            ..hb("", 0)
        },
    )
    .await;
    let b = r.member_id.clone().unwrap().to_string();
    assert!(!b.is_empty());
    assert_eq!(r.member_epoch, 2);
    assert_eq!(parts(&r), Some(BTreeSet::new()));
    let r = heartbeat(&mut c, "g", hb("a", 1)).await;
    assert_eq!(r.member_epoch, 1, "epoch waits for the revocation");
    let kept = parts(&r).unwrap();
    assert_eq!(kept.len(), 2);
    // "b" still gets nothing: the partitions are not released yet.
    let r = heartbeat(&mut c, "g", hb(&b, 2)).await;
    assert_eq!(parts(&r), None);
    // "a" confirms by reporting what it owns now: it reaches epoch 2.
    let r = heartbeat(
        &mut c,
        "g",
        Hb {
            owned: Some(kept.iter().copied().collect()),
            ..hb("a", 1)
        },
    )
    .await;
    assert_eq!(r.member_epoch, 2);
    // "b" gets the released half.
    let r = heartbeat(&mut c, "g", hb(&b, 2)).await;
    let got_b = parts(&r).unwrap();
    assert_eq!(got_b.len(), 2);
    assert!(got_b.is_disjoint(&kept));
    assert_eq!(&got_b | &kept, all);

    // ConsumerGroupDescribe and ListGroups.
    let d = c
        .send(
            &ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(sb("g")), GroupId(sb("nope"))]),
            1,
        )
        .await;
    let g = &d.groups[0];
    assert_eq!(
        (
            g.error_code,
            g.group_state.as_str(),
            g.group_epoch,
            g.assignment_epoch
        ),
        (0, "Stable", 2, 2)
    );
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    let member_a = g
        .members
        .iter()
        .find(|m| m.member_id.as_str() == "a")
        .unwrap();
    assert_eq!(
        member_a.assignment.topic_partitions[0]
            .topic_name
            .0
            .as_str(),
        "cg"
    );
    assert_eq!(
        d.groups[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    let l = c.send(&ListGroupsRequest::default(), 5).await;
    let listed = l
        .groups
        .iter()
        .find(|x| x.group_id.0.as_str() == "g")
        .unwrap();
    assert_eq!(
        (
            listed.group_type.as_str(),
            listed.group_state.as_str(),
            listed.protocol_type.as_str()
        ),
        ("consumer", "Stable", "consumer")
    );
    // DescribeGroups, as Kafka: not a classic group.
    let dg = c
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("g"))]),
            5,
        )
        .await;
    assert_eq!(
        dg.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );

    // Errors: wrong epoch, unknown member, bad assignor, missing subscription on join.
    assert_eq!(
        heartbeat(&mut c, "g", hb("a", 7)).await.error_code,
        ResponseError::FencedMemberEpoch.code()
    );
    assert_eq!(
        heartbeat(&mut c, "g", hb("ghost", 3)).await.error_code,
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        heartbeat(
            &mut c,
            "g",
            Hb {
                topics: Some(&["cg"]),
                assignor: Some("sticky"),
                ..hb("x", 0)
            }
        )
        .await
        .error_code,
        ResponseError::UnsupportedAssignor.code()
    );
    assert_eq!(
        heartbeat(&mut c, "g", hb("y", 0)).await.error_code,
        ResponseError::InvalidRequest.code()
    );

    // OffsetCommit is checked against the member epoch: the current one, or an older one
    // for partitions the member still owns (Kafka 4.4 accepts a commit that raced the
    // member's new epoch); not a newer one, nor an older one for a partition it gave up.
    let commit = |member: &str, epoch: i32, partition: i32| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_member_id(sb(member))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(tn("cg"))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(5)])])
    };
    let code = |r: OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    let mine = kept.iter().next().unwrap().1;
    let theirs = got_b.iter().next().unwrap().1;
    assert_eq!(code(c.send(&commit("a", 2, theirs), 9).await), 0);
    assert_eq!(code(c.send(&commit("a", 1, mine), 9).await), 0);
    assert_eq!(
        code(c.send(&commit("a", 1, theirs), 9).await),
        ResponseError::StaleMemberEpoch.code()
    );
    assert_eq!(
        code(c.send(&commit("a", 3, mine), 9).await),
        ResponseError::StaleMemberEpoch.code()
    );
    assert_eq!(
        code(c.send(&commit("ghost", 2, mine), 9).await),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        code(c.send(&commit("", -1, mine), 9).await),
        ResponseError::UnknownMemberId.code()
    );

    // A classic member cannot join; DeleteGroups refuses a group with members.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(sb("consumer"));
    assert_eq!(
        c.send(&join, 5).await.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let del = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("g"))]);
    assert_eq!(
        c.send(&del, 2).await.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );

    // Leaving: "b" goes (-1); "a" gets everything at the next epoch.
    let r = heartbeat(&mut c, "g", hb(&b, -1)).await;
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    let r = heartbeat(&mut c, "g", hb("a", 2)).await;
    assert_eq!(r.member_epoch, 3);
    assert_eq!(parts(&r), Some(all.clone()));
    heartbeat(&mut c, "g", hb("a", -1)).await;
    assert_eq!(
        c.send(&del, 2).await.results[0].error_code,
        0,
        "empty: deletable"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn expired_members_release_partitions_and_assignors_and_regex_work() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.group_consumer_session_timeout_ms = 300;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    let t = topic_id(&mut c, "exp", 2).await;

    // Range: contiguous ranges per topic, in member-id order.
    let r1 = heartbeat(
        &mut c,
        "rg",
        Hb {
            topics: Some(&["exp"]),
            assignor: Some("range"),
            ..hb("m1", 0)
        },
    )
    .await;
    assert_eq!(parts(&r1).unwrap().len(), 2);
    let r2 = heartbeat(
        &mut c,
        "rg",
        Hb {
            topics: Some(&["exp"]),
            assignor: Some("range"),
            ..hb("m2", 0)
        },
    )
    .await;
    let e2 = r2.member_epoch;
    let r1 = heartbeat(&mut c, "rg", hb("m1", 1)).await;
    assert_eq!(
        parts(&r1),
        Some([(t, 0)].into_iter().collect()),
        "m1 keeps the first range"
    );
    heartbeat(
        &mut c,
        "rg",
        Hb {
            owned: Some(vec![(t, 0)]),
            ..hb("m1", 1)
        },
    )
    .await;
    let r2 = heartbeat(&mut c, "rg", hb("m2", e2)).await;
    assert_eq!(parts(&r2), Some([(t, 1)].into_iter().collect()));

    // m1 stops heartbeating: after the session timeout m2 gets its partition.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = BTreeSet::new();
    let mut epoch = e2;
    while got.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = heartbeat(&mut c, "rg", hb("m2", epoch)).await;
        assert_eq!(r.error_code, 0);
        epoch = r.member_epoch;
        if let Some(p) = parts(&r) {
            got = p;
        }
    }
    assert_eq!(got, [(t, 0), (t, 1)].into_iter().collect());
    assert_eq!(
        heartbeat(&mut c, "rg", hb("m1", 1)).await.error_code,
        ResponseError::UnknownMemberId.code(),
        "the expired member must rejoin"
    );

    // A regex subscription picks up topics created later.
    let r = heartbeat(
        &mut c,
        "re",
        Hb {
            regex: Some("rx-.*"),
            ..hb("r", 0)
        },
    )
    .await;
    assert_eq!(parts(&r), Some(BTreeSet::new()));
    let rx = topic_id(&mut c, "rx-1", 3).await;
    let r = heartbeat(&mut c, "re", hb("r", r.member_epoch)).await;
    assert_eq!(parts(&r), Some((0..3).map(|p| (rx, p)).collect()));
    assert_eq!(
        heartbeat(
            &mut c,
            "re2",
            Hb {
                regex: Some("("),
                ..hb("r", 0)
            }
        )
        .await
        .error_code,
        ResponseError::InvalidRegularExpression.code()
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn api_versions_advertise_group_version() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let r = c
        .send(
            &ApiVersionsRequest::default()
                .with_client_software_name(sb("t"))
                .with_client_software_version(sb("1")),
            3,
        )
        .await;
    let f = &r.finalized_features[0];
    assert_eq!((f.name.as_str(), f.max_version_level), ("group.version", 1));
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ConsumerGroupHeartbeat as i16 && k.max_version == 1));
    broker.shutdown().await;
}

#[tokio::test]
async fn a_static_member_that_left_gets_its_partitions_back_without_a_rebalance() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.group_consumer_session_timeout_ms = 1_000;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    let t = topic_id(&mut c, "st", 4).await;
    let all: BTreeSet<(Uuid, i32)> = (0..4).map(|p| (t, p)).collect();
    let join = |m: &'static str, inst: Option<&'static str>| Hb {
        topics: Some(&["st"]),
        instance: inst,
        ..hb(m, 0)
    };
    let r = heartbeat(&mut c, "sg", join("s1", Some("i-1"))).await;
    assert_eq!(parts(&r), Some(all.clone()));
    let r = heartbeat(&mut c, "sg", join("x", None)).await;
    let ex = r.member_epoch;
    let r = heartbeat(&mut c, "sg", hb("s1", 1)).await;
    let s1_parts = parts(&r).unwrap();
    let e1 = r.member_epoch;
    heartbeat(
        &mut c,
        "sg",
        Hb {
            owned: Some(s1_parts.iter().copied().collect()),
            ..hb("s1", e1)
        },
    )
    .await;
    let x_parts = parts(&heartbeat(&mut c, "sg", hb("x", ex)).await).unwrap();
    assert_eq!(&s1_parts | &x_parts, all);

    // The instance id is in use: another process with it is refused.
    assert_eq!(
        heartbeat(&mut c, "sg", join("s1-dup", Some("i-1")))
            .await
            .error_code,
        ResponseError::UnreleasedInstanceId.code()
    );
    // s1 leaves for now (-2): x does not get its partitions.
    let r = heartbeat(&mut c, "sg", hb("s1", -2)).await;
    assert_eq!((r.error_code, r.member_epoch), (0, -2));
    let r = heartbeat(&mut c, "sg", hb("x", ex)).await;
    assert!(parts(&r).is_none_or(|p| p == x_parts));
    // Its restart (a new member id, same instance id) gets the same partitions at once.
    let r = heartbeat(&mut c, "sg", join("s2", Some("i-1"))).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(parts(&r), Some(s1_parts.clone()), "no rebalance");

    // Gone for longer than the session timeout: x takes everything.
    heartbeat(&mut c, "sg", hb("s2", r.member_epoch)).await;
    heartbeat(&mut c, "sg", hb("s2", -2)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut epoch = ex;
    let mut got = x_parts.clone();
    while got != all && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = heartbeat(&mut c, "sg", hb("x", epoch)).await;
        assert_eq!(r.error_code, 0);
        epoch = r.member_epoch;
        if let Some(p) = parts(&r) {
            got = p;
        }
    }
    assert_eq!(got, all);
    broker.shutdown().await;
}

/// TxnOffsetCommit v3+ from a KIP-848 member (Java's `sendOffsetsToTransaction(offsets,
/// consumer.groupMetadata())` with `group.protocol=consumer`): the member id and epoch are
/// checked by the group's one owner, as OffsetCommit checks them, and the offsets become the
/// group's committed offsets when the transaction commits.
#[tokio::test]
async fn transactional_commits_from_a_consumer_protocol_member() {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    topic_id(&mut c, "in", 1).await;
    let r = heartbeat(
        &mut c,
        "tg",
        Hb {
            topics: Some(&["in"]),
            ..hb("m1", 0)
        },
    )
    .await;
    assert_eq!((r.error_code, r.member_epoch), (0, 1));

    let init = c
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(sb("tx"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .await;
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id, init.producer_epoch);
    let add = c
        .send(
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(sb("tx")))
                .with_producer_id(pid)
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(sb("tg"))),
            3,
        )
        .await;
    assert_eq!(add.error_code, 0);
    let commit = |member: &str, member_epoch: i32, offset: i64| {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(sb("tx")))
            .with_group_id(GroupId(sb("tg")))
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_generation_id_or_member_epoch(member_epoch)
            .with_member_id(sb(member))
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(tn("in"))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1)])])
    };
    let code = |r: TxnOffsetCommitResponse| r.topics[0].partitions[0].error_code;
    assert_eq!(
        code(c.send(&commit("nobody", 1, 5), 3).await),
        ResponseError::UnknownMemberId.code()
    );
    // Kafka's validateTransactionalOffsetCommit answers a stale member epoch with
    // ILLEGAL_GENERATION (STALE_MEMBER_EPOCH is OffsetCommit's answer).
    assert_eq!(
        code(c.send(&commit("m1", 0, 5), 3).await),
        ResponseError::IllegalGeneration.code()
    );
    // v6 (KIP-1319): topics by id; a stale member epoch is STALE_MEMBER_EPOCH now, and an
    // unknown topic id UNKNOWN_TOPIC_ID.
    let in_id = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("in"))
        .map(|t| t.topic_id)
        .expect("topic in");
    let by_id = |member_epoch: i32, topic: Uuid, offset: i64| {
        let mut r = commit("m1", member_epoch, offset);
        r.topics[0].name = tn("");
        r.topics[0].topic_id = topic;
        r
    };
    let r = c.send(&by_id(0, in_id, 5), 6).await;
    assert_eq!(code(r), ResponseError::StaleMemberEpoch.code());
    let r = c.send(&by_id(1, Uuid::from_u128(99), 5), 6).await;
    assert_eq!(r.topics[0].topic_id, Uuid::from_u128(99));
    assert_eq!(code(r), ResponseError::UnknownTopicId.code());
    let r = c.send(&by_id(1, in_id, 6), 6).await;
    assert_eq!(r.topics[0].topic_id, in_id);
    assert_eq!(code(r), 0);
    // v3 again, by name: the last commit of the transaction wins.
    assert_eq!(code(c.send(&commit("m1", 1, 7), 3).await), 0);
    let end = c
        .send(
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(sb("tx")))
                .with_producer_id(pid)
                .with_producer_epoch(epoch)
                .with_committed(true),
            3,
        )
        .await;
    assert_eq!(end.error_code, 0);
    let fetched = c
        .send(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(sb("tg")))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(tn("in"))
                    .with_partition_indexes(vec![0])])),
            7,
        )
        .await;
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, 7);
}

/// `group.consumer.max.size` caps a KIP-848 group (GROUP_MAX_SIZE_REACHED), and a refused
/// heartbeat leaves no group behind in ListGroups.
#[tokio::test]
async fn consumer_groups_are_capped_and_refused_heartbeats_create_nothing() {
    let config = klamm::BrokerConfig {
        group_consumer_max_size: 2,
        ..klamm::BrokerConfig::ephemeral()
    };
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    topic_id(&mut c, "capped", 2).await;
    for (member, want) in [
        ("a", 0),
        ("b", 0),
        ("c", ResponseError::GroupMaxSizeReached.code()),
    ] {
        let r = heartbeat(
            &mut c,
            "small",
            Hb {
                topics: Some(&["capped"]),
                ..hb(member, 0)
            },
        )
        .await;
        assert_eq!(r.error_code, want, "{member}");
    }
    // An unknown member leaving a group that does not exist: refused, nothing created.
    let r = heartbeat(&mut c, "ghost", hb("nobody", -1)).await;
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    let l = c.send(&ListGroupsRequest::default(), 5).await;
    let ids: Vec<&str> = l.groups.iter().map(|g| g.group_id.0.as_str()).collect();
    assert_eq!(ids, vec!["small"]);
}

/// Ids a KIP-848 group keeps per member are length-capped as Kafka's records cap them.
#[tokio::test]
async fn overlong_member_ids_are_refused() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    topic_id(&mut c, "ids", 1).await;
    let long = "m".repeat(40_000);
    let r = heartbeat(
        &mut c,
        "ids-group",
        Hb {
            topics: Some(&["ids"]),
            ..hb(&long, 0)
        },
    )
    .await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    let l = c.send(&ListGroupsRequest::default(), 5).await;
    assert!(l.groups.is_empty(), "the refused member created no group");
}

/// `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` set on one group (the
/// GROUP config resource) win over the broker's for that group only.
#[tokio::test]
async fn a_groups_own_session_timeout_and_heartbeat_interval_apply_to_it_alone() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let mut config = klamm::BrokerConfig::ephemeral();
    config.group_consumer_session_timeout_ms = 300;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    topic_id(&mut c, "own-timeouts", 1).await;
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(sb("long"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(sb("consumer.session.timeout.ms"))
                    .with_value(Some(sb("45000"))),
                AlterableConfig::default()
                    .with_name(sb("consumer.heartbeat.interval.ms"))
                    .with_value(Some(sb("6000"))),
            ]),
    ]);
    let r = c.send(&alter, 1).await;
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );

    let join = |member| Hb {
        topics: Some(&["own-timeouts"]),
        ..hb(member, 0)
    };
    let long = heartbeat(&mut c, "long", join("l1")).await;
    assert_eq!((long.error_code, long.heartbeat_interval_ms), (0, 6000));
    let short = heartbeat(&mut c, "short", join("s1")).await;
    assert_eq!((short.error_code, short.heartbeat_interval_ms), (0, 5000));

    // The short group's member expires at the broker's 300 ms; the long group's member,
    // which heartbeat earlier, is still there afterwards.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while group_members(&mut c, "short").await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the short group's member never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(group_members(&mut c, "long").await, 1);
    let again = heartbeat(&mut c, "long", hb("l1", long.member_epoch)).await;
    assert_eq!(again.error_code, 0, "{:?}", again.error_message);
}

async fn group_members(c: &mut Client, group: &str) -> usize {
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]);
    c.send(&req, 0).await.groups[0].members.len()
}

/// OffsetFetch v9+ from a KIP-848 member checks its id and epoch, as Kafka's
/// `ConsumerGroup.validateOffsetFetch`: the current epoch passes, another is
/// STALE_MEMBER_EPOCH, an unknown member UNKNOWN_MEMBER_ID; no member with epoch -1 (an
/// admin) passes. The error is the group's, with no topics.
#[tokio::test]
async fn offset_fetch_checks_a_consumer_protocol_members_epoch() {
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopics,
    };
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    topic_id(&mut c, "of", 1).await;
    let r = heartbeat(
        &mut c,
        "ofg",
        Hb {
            topics: Some(&["of"]),
            ..hb("", 0)
        },
    )
    .await;
    assert_eq!(r.error_code, 0);
    let (member, epoch) = (r.member_id.clone().unwrap().to_string(), r.member_epoch);
    let fetch = |member: Option<&str>, epoch: i32| {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb("ofg")))
            .with_member_id(member.map(sb))
            .with_member_epoch(epoch)
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(tn("of"))
                .with_partition_indexes(vec![0])]))])
    };
    for (who, e, code) in [
        (Some(member.as_str()), epoch, 0),
        (None, -1, 0),
        (
            Some(member.as_str()),
            epoch + 1,
            ResponseError::StaleMemberEpoch.code(),
        ),
        (
            Some(member.as_str()),
            -1,
            ResponseError::StaleMemberEpoch.code(),
        ),
        (Some("nobody"), epoch, ResponseError::UnknownMemberId.code()),
        (None, epoch, ResponseError::UnknownMemberId.code()),
    ] {
        let r = c.send(&fetch(who, e), 9).await;
        let g = &r.groups[0];
        assert_eq!(g.error_code, code, "{who:?} at {e}");
        assert_eq!(
            g.topics.len(),
            if code == 0 { 1 } else { 0 },
            "{who:?} at {e}"
        );
    }
    // Below v9 there are no member fields: nothing to check.
    let r = c.send(&fetch(None, -1), 8).await;
    assert_eq!(r.groups[0].error_code, 0);
}
