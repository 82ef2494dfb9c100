//! Kafka's group metadata expiration (`offsets.retention.minutes`): which committed offsets
//! expire for each kind of group and state, that groups left with no members and no
//! offsets are deleted, that the result survives a restart, and that the broker's own timer
//! runs it.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use klamm::clock::now_ms;

const RETENTION_MS: i64 = 1_000_000;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

/// A consumer protocol subscription (version 0) to `topics`, as JoinGroup carries it.
fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut b = BytesMut::new();
    b.put_i16(0);
    sub.encode(&mut b, 0).unwrap();
    b.freeze()
}

/// Joins (KIP-394's two steps) and syncs as the only member: (member id, generation).
async fn join_and_sync(c: &mut Client, group: &str, topics: &[&str]) -> (String, i32) {
    let req = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(gid(group))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(5_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(topics))])
    };
    let first = c.send(&req(""), 9).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let joined = c.send(&req(first.member_id.as_str()), 9).await;
    assert_eq!(joined.error_code, 0);
    let me = joined.member_id.to_string();
    let sync = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&me))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(&me))
            .with_assignment(Bytes::new())]);
    assert_eq!(c.send(&sync, 5).await.error_code, 0);
    (me, joined.generation_id)
}

async fn commit(
    c: &mut Client,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
) {
    commit_v(c, group, generation, member, topic, offset, 8).await
}

/// OffsetCommit at `version` (v9+ for members of the modern protocols).
async fn commit_v(
    c: &mut Client,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
    version: i16,
) {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let r = c.send(&req, version).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 0,
        "commit {group} {topic}"
    );
}

async fn committed(c: &mut Client, group: &str, topic: &str) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]));
    let resp = c.send(&req, 7).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    resp.topics[0].partitions[0].committed_offset
}

async fn groups(c: &mut Client) -> Vec<String> {
    let mut ids: Vec<String> = c
        .send(&ListGroupsRequest::default(), 4)
        .await
        .groups
        .iter()
        .map(|g| g.group_id.to_string())
        .collect();
    ids.sort();
    ids
}

fn expire(broker: &klamm::BrokerHandle, now: i64) -> klamm::group::ExpiryStats {
    let ctx = broker.context().expect("broker running");
    ctx.groups
        .expire_offsets(
            &ctx.consumer_groups,
            &ctx.streams_groups,
            &HashMap::new(),
            now,
            RETENTION_MS,
        )
        .unwrap()
}

/// Kafka's rules, pass by pass, with the pass's clock given: a standalone group's offsets
/// expire by commit time; a stable consumer group keeps the topics it subscribes to and loses
/// the others; an empty group counts from when it became empty, not from its commits; a
/// KIP-848 group keeps its subscribed topics; emptied groups are deleted; a restart keeps
/// the outcome.
#[tokio::test]
async fn offsets_expire_by_group_state_and_empty_groups_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.offsets_retention_ms = Some(RETENTION_MS as u64);
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    for t in ["ta", "tb"] {
        let r = wire::create_topic(&mut c, t, 1).await;
        assert_eq!(r.topics[0].error_code, 0);
    }

    // Standalone (assign()-mode) commits.
    commit(&mut c, "standalone", -1, "", "ta", 5).await;
    // A stable classic consumer group subscribed to ta only, with offsets for both topics.
    let (m2, g2) = join_and_sync(&mut c, "stable", &["ta"]).await;
    commit(&mut c, "stable", g2, &m2, "ta", 7).await;
    commit(&mut c, "stable", g2, &m2, "tb", 9).await;
    // A KIP-848 group subscribed to ta, with offsets for ta and tb.
    let hb = c
        .send(
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(gid("modern"))
                .with_member_id(s("m-modern-1234567890123"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![wire::tn("ta")])),
            1,
        )
        .await;
    assert_eq!(hb.error_code, 0);
    let epoch = hb.member_epoch;
    for (t, o) in [("ta", 1), ("tb", 2)] {
        let req = OffsetCommitRequest::default()
            .with_group_id(gid("modern"))
            .with_generation_id_or_member_epoch(epoch)
            .with_member_id(hb.member_id.clone().unwrap())
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(o)])]);
        assert_eq!(c.send(&req, 9).await.topics[0].partitions[0].error_code, 0);
    }
    // An empty KIP-848 group with no offsets: the member joins and leaves (epoch -1).
    let hb = c
        .send(
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(gid("modern-gone"))
                .with_member_id(s("m-gone-12345678901234567"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![wire::tn("ta")])),
            1,
        )
        .await;
    assert_eq!(hb.error_code, 0);
    let left = c
        .send(
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(gid("modern-gone"))
                .with_member_id(hb.member_id.clone().unwrap())
                .with_member_epoch(-1),
            1,
        )
        .await;
    assert_eq!(left.error_code, 0);
    // A group that commits, then empties well after its commit.
    let (m3, g3) = join_and_sync(&mut c, "emptied", &["ta"]).await;
    commit(&mut c, "emptied", g3, &m3, "ta", 3).await;
    let committed_at = now_ms();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left_at = now_ms();
    let leave = c
        .send(
            &LeaveGroupRequest::default()
                .with_group_id(gid("emptied"))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&m3))]),
            5,
        )
        .await;
    assert_eq!(leave.members[0].error_code, 0);
    let all = ["emptied", "modern", "modern-gone", "stable", "standalone"];
    assert_eq!(groups(&mut c).await, all);

    // Within retention of everything: nothing goes, not even empty groups' offsets.
    let stats = expire(&broker, committed_at + RETENTION_MS - 60_000);
    assert_eq!(stats.offsets, 0);
    assert_eq!(
        groups(&mut c).await,
        all[..]
            .iter()
            .filter(|g| **g != "modern-gone")
            .copied()
            .collect::<Vec<_>>(),
        "only the KIP-848 group with neither members nor offsets is deleted"
    );
    assert_eq!(stats.groups, 1);

    // Past the commits' retention but not past the emptied group's: standalone and the
    // unsubscribed topics go; "emptied" keeps its offset, counted from when it emptied.
    let stats = expire(&broker, left_at + RETENTION_MS - 100);
    assert_eq!(committed(&mut c, "standalone", "ta").await, -1);
    assert_eq!(committed(&mut c, "stable", "ta").await, 7);
    assert_eq!(committed(&mut c, "stable", "tb").await, -1);
    assert_eq!(committed(&mut c, "modern", "ta").await, 1);
    assert_eq!(committed(&mut c, "modern", "tb").await, -1);
    assert_eq!(committed(&mut c, "emptied", "ta").await, 3);
    assert_eq!(stats.offsets, 3);
    assert_eq!(stats.groups, 1, "the standalone group is deleted");
    assert_eq!(groups(&mut c).await, ["emptied", "modern", "stable"]);

    // Past the emptied group's retention.
    let stats = expire(&broker, left_at + RETENTION_MS + 60_000);
    assert_eq!(committed(&mut c, "emptied", "ta").await, -1);
    assert_eq!((stats.offsets, stats.groups), (1, 1));
    assert_eq!(groups(&mut c).await, ["modern", "stable"]);

    drop(c);
    broker.shutdown().await;
    let mut config = config_in(dir.path());
    config.offsets_retention_ms = Some(RETENTION_MS as u64);
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(committed(&mut c, "stable", "ta").await, 7);
    assert_eq!(committed(&mut c, "stable", "tb").await, -1);
    assert_eq!(committed(&mut c, "standalone", "ta").await, -1);
    assert_eq!(committed(&mut c, "emptied", "ta").await, -1);
    assert_eq!(committed(&mut c, "modern", "ta").await, 1);
    assert_eq!(groups(&mut c).await, ["modern", "stable"]);
}

/// The broker runs expiration itself every `offsets.retention.check.interval.ms`.
#[tokio::test]
async fn the_broker_expires_offsets_on_its_own_timer() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.offsets_retention_ms = Some(300);
    config.offsets_retention_check_interval_ms = 50;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(
        wire::create_topic(&mut c, "tt", 1).await.topics[0].error_code,
        0
    );
    commit(&mut c, "short-lived", -1, "", "tt", 42).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while committed(&mut c, "short-lived", "tt").await != -1 || !groups(&mut c).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "offsets never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ctx = broker.context().unwrap();
    assert_eq!(ctx.metrics.offsets_expired.get(), 1);
    assert_eq!(ctx.metrics.groups_expired.get(), 1);
}

/// A streams group (KIP-1071) keeps every offset while it has members, however old the
/// commits; once its last member left they expire by commit time, and the group with no
/// members and no offsets is deleted (Kafka's StreamsGroup).
#[tokio::test]
async fn a_running_streams_group_keeps_its_offsets() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.offsets_retention_ms = Some(RETENTION_MS as u64);
    config.group_streams_initial_rebalance_delay_ms = 0;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(
        wire::create_topic(&mut c, "words", 1).await.topics[0].error_code,
        0
    );
    let none = wire::Tasks::new();
    let member = "thread-1-uuid-0123456789";
    let joined = c
        .send(
            &wire::streams_heartbeat_req("app", member, 0, "words", &none),
            1,
        )
        .await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    commit_v(&mut c, "app", joined.member_epoch, member, "words", 11, 9).await;
    let far = now_ms() + 10 * RETENTION_MS;
    expire(&broker, far);
    assert_eq!(
        committed(&mut c, "app", "words").await,
        11,
        "a running group keeps it"
    );
    assert_eq!(groups(&mut c).await, ["app"]);

    let left = c
        .send(
            &wire::streams_heartbeat_req("app", member, -1, "words", &none),
            1,
        )
        .await;
    assert_eq!(left.error_code, 0, "{left:?}");
    let stats = expire(&broker, far);
    assert_eq!((stats.offsets, stats.groups), (1, 1));
    assert_eq!(committed(&mut c, "app", "words").await, -1);
    assert!(groups(&mut c).await.is_empty());
}
