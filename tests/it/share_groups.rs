//! KIP-932 share group membership over the wire: joining and sharing partitions, epochs
//! and fencing, Kafka's validation messages, leaving, the size cap, session expiry, group
//! ids that belong to other kinds of groups, and the describe and list views.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::wire::*;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// ShareGroupHeartbeat v1; `topics` None leaves the subscription unchanged.
async fn hb(
    c: &mut Client,
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
) -> ShareGroupHeartbeatResponse {
    let req = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names(topics.map(|ts| ts.iter().map(|t| tn(t)).collect()));
    c.send(&req, 1).await
}

fn parts(r: &ShareGroupHeartbeatResponse) -> Option<BTreeSet<(Uuid, i32)>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
            .collect()
    })
}

async fn topic_id(c: &mut Client, name: &str, partitions: i32) -> Uuid {
    create_topic(c, name, partitions).await.topics[0].topic_id
}

fn msg(r: &ShareGroupHeartbeatResponse) -> (i16, &str) {
    (r.error_code, r.error_message.as_deref().unwrap_or(""))
}

#[tokio::test]
async fn members_share_one_partition_and_split_four() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let one = topic_id(&mut c, "sh-one", 1).await;

    // Join: epoch 1 and the whole topic.
    let r = hb(&mut c, "sg", "m1", 0, Some(&["sh-one"])).await;
    assert_eq!(msg(&r), (0, ""));
    assert_eq!(r.member_id.as_deref(), Some("m1"));
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(parts(&r), Some([(one, 0)].into()));
    // Nothing changed: no assignment in the answer.
    let r = hb(&mut c, "sg", "m1", 1, None).await;
    assert_eq!((r.error_code, r.member_epoch, parts(&r)), (0, 1, None));

    // A second member gets the single partition too: it is shared.
    let r = hb(&mut c, "sg", "m2", 0, Some(&["sh-one"])).await;
    assert_eq!(r.member_epoch, 2);
    assert_eq!(parts(&r), Some([(one, 0)].into()));
    // m1 moves to epoch 2 at once (no revocation) and keeps the partition; unchanged, so
    // nothing is sent.
    let r = hb(&mut c, "sg", "m1", 1, None).await;
    assert_eq!((r.error_code, r.member_epoch, parts(&r)), (0, 2, None));

    // 4 partitions over 2 members: 2 + 2, disjoint.
    let four = topic_id(&mut c, "sh-four", 4).await;
    let a = hb(&mut c, "sg4", "a", 0, Some(&["sh-four"])).await;
    assert_eq!(parts(&a).map(|p| p.len()), Some(4));
    let b = hb(&mut c, "sg4", "b", 0, Some(&["sh-four"])).await;
    let a = hb(&mut c, "sg4", "a", a.member_epoch, None).await;
    let (pa, pb) = (parts(&a).unwrap(), parts(&b).unwrap());
    assert_eq!((pa.len(), pb.len()), (2, 2));
    assert!(pa.is_disjoint(&pb));
    assert!(pa.union(&pb).all(|tp| tp.0 == four));
    broker.shutdown().await;
}

#[tokio::test]
async fn epochs_are_fenced_and_the_previous_one_is_accepted() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    topic_id(&mut c, "sh-ep", 2).await;
    hb(&mut c, "fg", "m1", 0, Some(&["sh-ep"])).await;
    hb(&mut c, "fg", "m2", 0, Some(&["sh-ep"])).await;
    // m1 reaches epoch 2; its previous epoch is 1.
    let r = hb(&mut c, "fg", "m1", 1, None).await;
    assert_eq!(r.member_epoch, 2);

    let r = hb(&mut c, "fg", "m1", 3, None).await;
    assert_eq!(
        msg(&r),
        (
            ResponseError::FencedMemberEpoch.code(),
            "The share group member has a greater member epoch (3) than the one known by the group coordinator (2). The member must abandon all its partitions and rejoin."
        )
    );
    // The previous epoch (a lost answer): accepted, the assignment sent again.
    let r = hb(&mut c, "fg", "m1", 1, None).await;
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    assert_eq!(parts(&r).map(|p| p.len()), Some(1));
    // A third member: m1 moves to 3, so 1 is no longer its previous epoch.
    hb(&mut c, "fg", "m3", 0, Some(&["sh-ep"])).await;
    let r = hb(&mut c, "fg", "m1", 2, None).await;
    assert_eq!(r.member_epoch, 3);
    let r = hb(&mut c, "fg", "m1", 1, None).await;
    assert_eq!(
        msg(&r),
        (
            ResponseError::FencedMemberEpoch.code(),
            "The share group member has a smaller member epoch (1) than the one known by the group coordinator (3), and it does not match the previous member epoch (2). The member must abandon all its partitions and rejoin."
        )
    );
    let r = hb(&mut c, "fg", "ghost", 1, None).await;
    assert_eq!(
        msg(&r),
        (
            ResponseError::UnknownMemberId.code(),
            "Member ghost is not a member of group fg."
        )
    );
    let r = hb(&mut c, "nogroup", "m1", 1, None).await;
    assert_eq!(
        msg(&r),
        (
            ResponseError::GroupIdNotFound.code(),
            "Share group nogroup not found."
        )
    );

    // Leaving answers -1; the member is gone afterwards.
    let r = hb(&mut c, "fg", "m2", -1, None).await;
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    assert_eq!(r.member_id.as_deref(), Some("m2"));
    let r = hb(&mut c, "fg", "m2", -1, None).await;
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    let r = hb(&mut c, "fg", "m2", 3, None).await;
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn requests_are_validated_with_kafkas_messages() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let invalid = ResponseError::InvalidRequest.code();
    let long = "m".repeat(37);
    for (group, member, epoch, topics, want) in [
        (
            "g",
            "",
            0,
            Some(&["t"][..]),
            "Invalid member id in the request.",
        ),
        (
            "g",
            long.as_str(),
            0,
            Some(&["t"][..]),
            "Invalid member id in the request.",
        ),
        ("g", "  ", 0, Some(&["t"][..]), "MemberId can't be empty."),
        ("", "m", 0, Some(&["t"][..]), "GroupId can't be empty."),
        (
            "g",
            "m",
            0,
            None,
            "SubscribedTopicNames must be set in first request.",
        ),
        (
            "g",
            "m",
            0,
            Some(&[][..]),
            "SubscribedTopicNames must be set in first request.",
        ),
        ("g", "m", -2, None, "MemberEpoch is invalid."),
    ] {
        let r = hb(&mut c, group, member, epoch, topics).await;
        assert_eq!(msg(&r), (invalid, want), "{group:?} {member:?} {epoch}");
    }
    let req = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_member_id(sb("m"))
        .with_rack_id(Some(sb(" ")))
        .with_subscribed_topic_names(Some(vec![tn("t")]));
    let r: ShareGroupHeartbeatResponse = c.send(&req, 1).await;
    assert_eq!(msg(&r), (invalid, "RackId can't be empty."));
    // None of these created a group.
    let l = c.send(&ListGroupsRequest::default(), 5).await;
    assert!(l.groups.is_empty());
    broker.shutdown().await;
}

#[tokio::test]
async fn groups_are_capped_and_silent_members_expire() {
    let config = klamm::BrokerConfig {
        group_share_max_size: 2,
        group_share_session_timeout_ms: 500,
        ..klamm::BrokerConfig::ephemeral()
    };
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    let t = topic_id(&mut c, "sh-cap", 2).await;
    assert_eq!(
        hb(&mut c, "cap", "a", 0, Some(&["sh-cap"]))
            .await
            .error_code,
        0
    );
    let b = hb(&mut c, "cap", "b", 0, Some(&["sh-cap"])).await;
    assert_eq!(b.error_code, 0);
    let r = hb(&mut c, "cap", "c", 0, Some(&["sh-cap"])).await;
    assert_eq!(
        msg(&r),
        (
            ResponseError::GroupMaxSizeReached.code(),
            "The share group has reached its maximum capacity of 2 members."
        )
    );

    // "a" goes silent: after its session timeout "b" holds both partitions.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut epoch = b.member_epoch;
    let mut got = parts(&b).unwrap_or_default();
    while got.len() < 2 {
        assert!(Instant::now() < deadline, "a's partitions never moved to b");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = hb(&mut c, "cap", "b", epoch, None).await;
        assert_eq!(r.error_code, 0);
        epoch = r.member_epoch;
        if let Some(p) = parts(&r) {
            got = p;
        }
    }
    assert_eq!(got, [(t, 0), (t, 1)].into());
    assert_eq!(
        hb(&mut c, "cap", "a", 1, None).await.error_code,
        ResponseError::UnknownMemberId.code(),
        "the expired member must rejoin"
    );
    // Room again: "c" joins.
    assert_eq!(
        hb(&mut c, "cap", "c", 0, Some(&["sh-cap"]))
            .await
            .error_code,
        0
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn group_ids_of_other_group_types_are_refused_both_ways() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    topic_id(&mut c, "sh-x", 1).await;
    // A KIP-848 consumer group.
    let cg = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb("cg")))
        .with_member_id(sb("c1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![tn("sh-x")]));
    assert_eq!(c.send(&cg, 1).await.error_code, 0);
    let r = hb(&mut c, "cg", "m", 0, Some(&["sh-x"])).await;
    assert_eq!(
        msg(&r),
        (
            ResponseError::GroupIdNotFound.code(),
            "Group cg is not a share group."
        )
    );
    // A share group refuses consumer and classic members.
    assert_eq!(
        hb(&mut c, "sg", "m", 0, Some(&["sh-x"])).await.error_code,
        0
    );
    let r = c
        .send(&cg.clone().with_group_id(GroupId(sb("sg"))), 1)
        .await;
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
    assert_eq!(
        r.error_message.as_deref(),
        Some("Group sg is not a consumer group.")
    );
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(sb("sg")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(sb("consumer"));
    assert_eq!(
        c.send(&join, 5).await.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    // ShareGroupDescribe of the consumer group and of nothing.
    let d = c
        .send(
            &ShareGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(sb("cg")), GroupId(sb("none"))]),
            1,
        )
        .await;
    let got: Vec<(i16, &str)> = d
        .groups
        .iter()
        .map(|g| (g.error_code, g.error_message.as_deref().unwrap_or("")))
        .collect();
    let nf = ResponseError::GroupIdNotFound.code();
    assert_eq!(
        got,
        vec![
            (nf, "Group cg is not a share group."),
            (nf, "Group none not found.")
        ]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn share_groups_are_listed_described_and_deleted() {
    let broker = start().await;
    let mut c = Client::connect_as(broker.addr(), "share-client").await;
    let t = topic_id(&mut c, "sh-d", 2).await;
    hb(&mut c, "dg", "m1", 0, Some(&["sh-d"])).await;
    let r = hb(&mut c, "dg", "m2", 0, Some(&["sh-d"])).await;
    assert_eq!(r.member_epoch, 2);
    // A classic group next to it.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("classic")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tn("sh-d"))
                .with_partitions(vec![
                    kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0),
                ]),
        ]);
    c.send(&commit, 8).await;

    // ListGroups v5: the type filter, case-insensitive, and the state filter.
    let list = |types: &[&str], states: &[&str]| {
        ListGroupsRequest::default()
            .with_types_filter(types.iter().map(|t| sb(t)).collect())
            .with_states_filter(states.iter().map(|t| sb(t)).collect())
    };
    let l = c.send(&list(&["Share"], &[]), 5).await;
    let got: Vec<(&str, &str, &str, &str)> = l
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.as_str(),
                g.protocol_type.as_str(),
                g.group_state.as_str(),
                g.group_type.as_str(),
            )
        })
        .collect();
    assert_eq!(got, vec![("dg", "share", "Stable", "share")]);
    assert!(c
        .send(&list(&["share"], &["empty"]), 5)
        .await
        .groups
        .is_empty());
    let all = c.send(&list(&[], &[]), 5).await;
    assert_eq!(all.groups.len(), 2);
    assert!(c
        .send(&list(&["classic"], &[]), 5)
        .await
        .groups
        .iter()
        .all(|g| g.group_id.0.as_str() == "classic"));

    // DescribeGroups v6: a share group is not a classic group; v5 says Dead.
    let dg = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("dg"))]);
    let d = c.send(&dg, 6).await;
    assert_eq!(
        d.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    assert_eq!(
        d.groups[0].error_message.as_deref(),
        Some("Group dg is not a classic group.")
    );
    assert_eq!(d.groups[0].group_state.as_str(), "Dead");

    // ShareGroupDescribe: every field.
    let d = c
        .send(
            &ShareGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(sb("dg"))])
                .with_include_authorized_operations(true),
            1,
        )
        .await;
    let g = &d.groups[0];
    assert_eq!((g.error_code, g.group_id.0.as_str()), (0, "dg"));
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
    assert_eq!(g.assignor_name.as_str(), "simple");
    assert!(g.authorized_operations > 0);
    assert_eq!(g.members.len(), 2);
    let m2 = g
        .members
        .iter()
        .find(|m| m.member_id.as_str() == "m2")
        .unwrap();
    assert_eq!(m2.member_epoch, 2);
    assert_eq!(m2.client_id.as_str(), "share-client");
    assert_eq!(m2.client_host.as_str(), "/127.0.0.1");
    assert_eq!(m2.rack_id, None);
    assert_eq!(m2.subscribed_topic_names, vec![tn("sh-d")]);
    let tps = &m2.assignment.topic_partitions;
    assert_eq!(tps.len(), 1);
    assert_eq!((tps[0].topic_id, tps[0].topic_name.0.as_str()), (t, "sh-d"));
    assert_eq!(tps[0].partitions.len(), 1);

    // DeleteGroups: refused while members remain, done once the group is empty.
    let del = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("dg"))]);
    assert_eq!(
        c.send(&del, 2).await.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
    hb(&mut c, "dg", "m1", -1, None).await;
    hb(&mut c, "dg", "m2", -1, None).await;
    let l = c.send(&list(&["share"], &["Empty"]), 5).await;
    assert_eq!(l.groups.len(), 1);
    assert_eq!(c.send(&del, 2).await.results[0].error_code, 0);
    assert!(c.send(&list(&["share"], &[]), 5).await.groups.is_empty());
    broker.shutdown().await;
}

#[tokio::test]
async fn api_versions_advertise_share_groups_and_share_version_2() {
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
    for (key, max) in [
        (ApiKey::ShareGroupHeartbeat, 1),
        (ApiKey::ShareGroupDescribe, 1),
        (ApiKey::ShareFetch, 2),
        (ApiKey::ShareAcknowledge, 2),
    ] {
        let k = r
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .expect("advertised");
        assert_eq!((k.min_version, k.max_version), (1, max), "{key:?}");
    }
    // Level 1 is share groups, level 2 their dead-letter queue (KIP-1191), as Kafka 4.4.
    let f = r
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "share.version")
        .expect("share.version finalized");
    assert_eq!((f.min_version_level, f.max_version_level), (2, 2));
    let s = r
        .supported_features
        .iter()
        .find(|f| f.name.as_str() == "share.version")
        .expect("share.version supported");
    assert_eq!((s.min_version, s.max_version), (0, 2));
    broker.shutdown().await;
}

/// `share.heartbeat.interval.ms` set on one share group (the GROUP config resource) is
/// what that group's members are told; another group keeps the broker's.
#[tokio::test]
async fn a_share_groups_own_heartbeat_interval_is_what_its_members_are_told() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    topic_id(&mut c, "sh-cfg", 1).await;
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(sb("sg-own"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(sb("share.heartbeat.interval.ms"))
                .with_value(Some(sb("7000")))]),
    ]);
    let r = c.send(&alter, 1).await;
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    let own = hb(&mut c, "sg-own", "m1", 0, Some(&["sh-cfg"])).await;
    assert_eq!((own.error_code, own.heartbeat_interval_ms), (0, 7000));
    let other = hb(&mut c, "sg-other", "m1", 0, Some(&["sh-cfg"])).await;
    assert_eq!((other.error_code, other.heartbeat_interval_ms), (0, 5000));
}
