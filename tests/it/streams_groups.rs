//! Streams groups (KIP-1071) on the wire, single node: a member joins and gets its tasks,
//! commits with its epoch, and the other group APIs treat the id as Kafka 4.4 does
//! (DescribeGroups, ConsumerGroupDescribe and ShareGroupDescribe refuse it by type,
//! OffsetDelete keeps the topics the running application reads, ListGroups filters by
//! type, DeleteGroups refuses a group with members).

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::common::wire::*;
use crate::common::*;

const GROUP: &str = "wordcount";
const MEMBER: &str = "thread-1-0123456789abcdef";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

/// A described group's error as (code, message).
fn error_of(code: i16, message: &Option<StrBytes>) -> (i16, Option<&str>) {
    (code, message.as_ref().map(|m| m.as_str()))
}

async fn commit(c: &mut Client, epoch: i32, topic: &str, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(GROUP))
        .with_generation_id_or_member_epoch(epoch)
        .with_member_id(s(MEMBER))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    c.send(&req, 9).await.topics[0].partitions[0].error_code
}

async fn offset_delete(c: &mut Client, topic: &str) -> (i16, i16) {
    let req = OffsetDeleteRequest::default()
        .with_group_id(gid(GROUP))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let r = c.send(&req, 0).await;
    (
        r.error_code,
        r.topics.first().map_or(-1, |t| t.partitions[0].error_code),
    )
}

#[tokio::test]
async fn a_streams_group_on_the_wire() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.group_streams_initial_rebalance_delay_ms = 0;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    for t in ["words", "other"] {
        assert_eq!(create_topic(&mut c, t, 2).await.topics[0].error_code, 0);
    }

    // The member joins with its topology and gets both tasks of subtopology 0.
    let none = Tasks::new();
    let joined = c
        .send(&streams_heartbeat_req(GROUP, MEMBER, 0, "words", &none), 1)
        .await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let epoch = joined.member_epoch;
    let tasks = streams_active(&joined).expect("tasks at the join");
    assert_eq!(
        tasks,
        [("0".to_string(), 0), ("0".to_string(), 1)].into(),
        "{joined:?}"
    );
    let again = c
        .send(
            &streams_heartbeat_req(GROUP, MEMBER, epoch, "words", &tasks),
            1,
        )
        .await;
    assert_eq!((again.error_code, again.member_epoch), (0, epoch));
    assert_eq!(
        again.active_tasks, None,
        "unchanged tasks are not sent again"
    );

    // Commits: with its epoch, yes; from a future epoch, STALE_MEMBER_EPOCH; from a
    // stranger, UNKNOWN_MEMBER_ID.
    assert_eq!(commit(&mut c, epoch, "words", 5).await, 0);
    assert_eq!(commit(&mut c, epoch, "other", 6).await, 0);
    assert_eq!(commit(&mut c, epoch + 1, "words", 7).await, 113);
    let stranger = OffsetCommitRequest::default()
        .with_group_id(gid(GROUP))
        .with_generation_id_or_member_epoch(epoch)
        .with_member_id(s("nobody"))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tn("words"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    assert_eq!(
        c.send(&stranger, 9).await.topics[0].partitions[0].error_code,
        25
    );

    // OffsetFetch v9 checks the member as Kafka's StreamsGroup.validateOffsetFetch: its
    // epoch passes, another is STALE_MEMBER_EPOCH (113), a stranger UNKNOWN_MEMBER_ID (25),
    // an admin (no member, epoch -1) passes.
    for (member, e, code) in [
        (Some(MEMBER), epoch, 0),
        (None, -1, 0),
        (Some(MEMBER), epoch + 1, 113),
        (Some("nobody"), epoch, 25),
    ] {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
        let r = c
            .send(
                &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default(
                )
                .with_group_id(gid(GROUP))
                .with_member_id(member.map(s))
                .with_member_epoch(e)
                .with_topics(None)]),
                9,
            )
            .await;
        assert_eq!(r.groups[0].error_code, code, "{member:?} at {e}");
    }

    // The id is a streams group's: the other describes refuse it by type, as Kafka 4.4.
    let classic = c
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![gid(GROUP)]),
            6,
        )
        .await;
    let g = &classic.groups[0];
    assert_eq!(g.group_state.as_str(), "Dead");
    assert_eq!(
        error_of(g.error_code, &g.error_message),
        (69, Some("Group wordcount is not a classic group."))
    );
    let consumer = c
        .send(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid(GROUP)]),
            0,
        )
        .await;
    let g = &consumer.groups[0];
    assert_eq!(
        error_of(g.error_code, &g.error_message),
        (69, Some("Group wordcount is not a consumer group."))
    );
    let share = c
        .send(
            &ShareGroupDescribeRequest::default().with_group_ids(vec![gid(GROUP)]),
            1,
        )
        .await;
    let g = &share.groups[0];
    assert_eq!(
        error_of(g.error_code, &g.error_message),
        (69, Some("Group wordcount is not a share group."))
    );
    let described = c
        .send(
            &StreamsGroupDescribeRequest::default().with_group_ids(vec![gid(GROUP)]),
            1,
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.members.len(), 1);

    // ListGroups by type.
    let listed = |types: &[&str]| {
        ListGroupsRequest::default().with_types_filter(types.iter().map(|t| s(t)).collect())
    };
    let streams = c.send(&listed(&["streams"]), 5).await;
    assert_eq!(streams.groups.len(), 1);
    assert_eq!(streams.groups[0].group_type.as_str(), "streams");
    assert_eq!(streams.groups[0].group_state.as_str(), "Stable");
    assert!(c.send(&listed(&["classic"]), 5).await.groups.is_empty());

    // OffsetDelete: the source topic of the running application is kept, another goes.
    assert_eq!(offset_delete(&mut c, "words").await, (0, 86));
    assert_eq!(offset_delete(&mut c, "other").await, (0, 0));

    // DeleteGroups refuses a group with members; after the member left it goes.
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![gid(GROUP)]);
    assert_eq!(c.send(&delete, 2).await.results[0].error_code, 68);
    let left = c
        .send(&streams_heartbeat_req(GROUP, MEMBER, -1, "words", &none), 1)
        .await;
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    assert_eq!(
        offset_delete(&mut c, "words").await,
        (0, 0),
        "no longer read"
    );
    assert_eq!(c.send(&delete, 2).await.results[0].error_code, 0);
    let gone = c
        .send(
            &StreamsGroupDescribeRequest::default().with_group_ids(vec![gid(GROUP)]),
            1,
        )
        .await;
    assert_eq!(
        error_of(gone.groups[0].error_code, &gone.groups[0].error_message),
        (69, Some("Group wordcount not found."))
    );

    // A classic group's id is not a streams group's.
    let standalone = OffsetCommitRequest::default()
        .with_group_id(gid("plain"))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tn("words"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    assert_eq!(
        c.send(&standalone, 8).await.topics[0].partitions[0].error_code,
        0
    );
    let other = c
        .send(
            &StreamsGroupDescribeRequest::default().with_group_ids(vec![gid("plain")]),
            1,
        )
        .await;
    assert_eq!(
        error_of(other.groups[0].error_code, &other.groups[0].error_message),
        (69, Some("Group plain is not a streams group."))
    );
}

async fn streams_members(c: &mut Client, group: &str) -> usize {
    let req = StreamsGroupDescribeRequest::default().with_group_ids(vec![gid(group)]);
    c.send(&req, 1).await.groups[0].members.len()
}

/// `streams.session.timeout.ms` and `streams.heartbeat.interval.ms` set on one group
/// (IncrementalAlterConfigs on GROUP) apply to it alone; the broker's apply to the others.
#[tokio::test]
async fn a_streams_groups_own_configs_apply_to_it_alone() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let mut config = klamm::BrokerConfig::ephemeral();
    config.group_streams_session_timeout_ms = 300;
    config.group_streams_initial_rebalance_delay_ms = 0;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(create_topic(&mut c, "in", 1).await.topics[0].error_code, 0);
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s("long"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("streams.session.timeout.ms"))
                    .with_value(Some(s("45000"))),
                AlterableConfig::default()
                    .with_name(s("streams.heartbeat.interval.ms"))
                    .with_value(Some(s("6000"))),
            ]),
    ]);
    let r = c.send(&alter, 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0]);

    let none = Tasks::new();
    let long = c
        .send(&streams_heartbeat_req("long", "l1", 0, "in", &none), 1)
        .await;
    assert_eq!((long.error_code, long.heartbeat_interval_ms), (0, 6000));
    let short = c
        .send(&streams_heartbeat_req("short", "s1", 0, "in", &none), 1)
        .await;
    assert_eq!((short.error_code, short.heartbeat_interval_ms), (0, 5000));

    // The short group's member expires at the broker's 300 ms; the long group's member,
    // which joined first, is still there afterwards.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while streams_members(&mut c, "short").await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the short group's member never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(streams_members(&mut c, "long").await, 1);
    let tasks = streams_active(&long).unwrap_or_default();
    let again = c
        .send(
            &streams_heartbeat_req("long", "l1", long.member_epoch, "in", &tasks),
            1,
        )
        .await;
    assert_eq!(again.error_code, 0, "{:?}", again.error_message);
}
