"""Consumer-group administration: confluent-kafka AdminClient and kafka-python
KafkaAdminClient against live groups (members in separate processes).

Proves: ListGroups with and without state filters (Stable member group, Empty
offsets-only group), DescribeGroups (state, assignor, members with client id, host and
the assignment the members themselves report), OffsetFetch of what the members
committed, DeleteGroups refused for a group with members (NON_EMPTY_GROUP) and done
once they left (after which the group and its offsets are gone), AlterOffsets on an
empty group, OffsetDelete (GROUP_SUBSCRIBED_TO_TOPIC for the topic the members consume,
allowed for another topic and once the group is empty), and Kafka's answers for
unknown groups and for altering the offsets of a group that has members.
"""
import time

import pytest
from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError,
                             KafkaException, TopicPartition as CTP)
from confluent_kafka.admin import AclOperation

from test_groups_support import Feeder, create_topic, wait_settled, wait_until

PARTS = list(range(6))


def kp_admin(bs):
    from kafka import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=15000)


def end_offsets(feeder):
    ends = {p: 0 for p in PARTS}
    for p, o, _, _ in feeder.snapshot():
        ends[p] = max(ends[p], o + 1)
    return ends


def produce_all(bs, topic, n=60):
    f = Feeder(bs, topic, PARTS)
    f.produce(n)
    f.stop()
    return end_offsets(f)


def ck_offsets(adm, group):
    res = adm.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group] \
        .result(timeout=15)
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions if tp.error is None}


def ck_error(fut):
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=15)
    return ei.value.args[0].code()


def test_confluent_admin_lifecycle(group_broker, workers, topic):
    bs = group_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    ends = produce_all(bs, topic)
    group, offsets_only = f"g-{topic}", f"e-{topic}"

    # A group with committed offsets and no members (AlterConsumerGroupOffsets = simple commit).
    res = adm.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        offsets_only, [CTP(topic, 1, 5)])])[offsets_only].result(timeout=15)
    assert [(tp.partition, tp.offset, tp.error) for tp in res.topic_partitions] == [(1, 5, None)]

    ws = [workers("confluent", bs, group, topic, n) for n in ("m1", "m2")]
    s = wait_settled(ws, PARTS, 40)

    listed = {g.group_id: g for g in adm.list_consumer_groups().result(timeout=15).valid}
    assert set(listed) == {group, offsets_only}, listed
    assert listed[group].state == ConsumerGroupState.STABLE
    assert not listed[group].is_simple_consumer_group
    assert listed[offsets_only].state == ConsumerGroupState.EMPTY
    assert listed[offsets_only].is_simple_consumer_group
    for states, want in [({ConsumerGroupState.STABLE}, {group}),
                         ({ConsumerGroupState.EMPTY}, {offsets_only}),
                         ({ConsumerGroupState.STABLE, ConsumerGroupState.EMPTY}, {group, offsets_only}),
                         ({ConsumerGroupState.PREPARING_REBALANCING}, set())]:
        got = adm.list_consumer_groups(states=states).result(timeout=15).valid
        assert {g.group_id for g in got} == want, (states, got)

    d = adm.describe_consumer_groups([group])[group].result(timeout=15)
    assert (d.group_id, d.state, d.partition_assignor, d.is_simple_consumer_group) == \
        (group, ConsumerGroupState.STABLE, "range", False)
    assert d.coordinator.id == 1 and d.coordinator.port == group_broker.port, d.coordinator
    members = {m.member_id: m for m in d.members}
    assert set(members) == set(s.members.values()), (members, s.members)
    for name, mid in s.members.items():
        m = members[mid]
        assert m.client_id == name and m.host.endswith("127.0.0.1") and m.group_instance_id is None
        assert {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions} == \
            {(topic, p) for p in s.assignment[name]}

    assert ck_error(adm.delete_consumer_groups([group])[group]) == KafkaError.NON_EMPTY_GROUP

    # The members consume everything and auto-commit it.
    want = {(topic, p): ends[p] for p in PARTS}
    wait_until(lambda: ck_offsets(adm, group) == want, 20,
               what=f"members' auto-commits to reach the end offsets {ends}")

    for w in ws:
        w.close()
    d = adm.describe_consumer_groups([group])[group].result(timeout=15)
    assert (d.state, d.members) == (ConsumerGroupState.EMPTY, []), (d.state, d.members)
    got = adm.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(timeout=15).valid
    assert {g.group_id for g in got} == {group, offsets_only}

    res = adm.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        group, [CTP(topic, 0, 3, metadata="rewind")])])[group].result(timeout=15)
    assert [(tp.partition, tp.offset, tp.error) for tp in res.topic_partitions] == [(0, 3, None)]
    assert ck_offsets(adm, group) == {**want, (topic, 0): 3}

    assert adm.delete_consumer_groups([group])[group].result(timeout=15) is None
    assert {g.group_id for g in adm.list_consumer_groups().result(timeout=15).valid} == {offsets_only}
    assert ck_offsets(adm, group) == {}, "a deleted group's offsets must be gone"
    d = adm.describe_consumer_groups([group])[group].result(timeout=15)
    assert (d.state, d.members) == (ConsumerGroupState.DEAD, [])
    assert adm.delete_consumer_groups([offsets_only])[offsets_only].result(timeout=15) is None
    assert adm.list_consumer_groups().result(timeout=15).valid == []
    assert ck_error(adm.delete_consumer_groups([group])[group]) == KafkaError.GROUP_ID_NOT_FOUND


def test_confluent_unknown_group(group_broker):
    from confluent_kafka.admin import AdminClient
    adm = AdminClient({"bootstrap.servers": group_broker.bootstrap})
    # librdkafka uses DescribeGroups < v6: Kafka answers an unknown group with state Dead.
    d = adm.describe_consumer_groups(["no-such-group"])["no-such-group"].result(timeout=15)
    assert (d.state, d.members, d.partition_assignor) == (ConsumerGroupState.DEAD, [], "")
    assert ck_error(adm.delete_consumer_groups(["no-such-group"])["no-such-group"]) == \
        KafkaError.GROUP_ID_NOT_FOUND
    assert ck_offsets(adm, "no-such-group") == {}


def test_describe_authorized_operations(group_broker, workers, topic):
    """With no authorizer Kafka reports every operation valid for a GROUP resource:
    READ, DESCRIBE, DELETE (plus DESCRIBE_CONFIGS, ALTER_CONFIGS since Kafka 3.8)."""
    bs = group_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    w = workers("confluent", bs, group, topic, "m1")
    wait_settled([w], PARTS, 30)
    d = adm.describe_consumer_groups([group], include_authorized_operations=True)[group] \
        .result(timeout=15)
    ops = set(d.authorized_operations or [])
    group_ops = {AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE}
    assert group_ops <= ops <= group_ops | {AclOperation.DESCRIBE_CONFIGS,
                                            AclOperation.ALTER_CONFIGS}, \
        f"authorized operations of a group: {sorted(o.name for o in ops)}"


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_alter_offsets_of_active_group(group_broker, workers, topic, client):
    """AlterConsumerGroupOffsets is a simple commit (generation -1, no member id): Kafka
    refuses it with UNKNOWN_MEMBER_ID while the group has members (ClassicGroup
    .validateOffsetCommit), and the committed offsets stay untouched."""
    bs = group_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    w = workers("confluent", bs, group, topic, "m1", commit="none")
    wait_settled([w], PARTS, 30)
    if client == "confluent":
        res = adm.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
            group, [CTP(topic, 0, 3)])])[group].result(timeout=15)
        errs = {tp.partition: tp.error.code() if tp.error else None for tp in res.topic_partitions}
        want = {0: KafkaError.UNKNOWN_MEMBER_ID}
    else:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata
        ka = kp_admin(bs)
        try:
            res = ka.alter_group_offsets(group, {TopicPartition(topic, 0): OffsetAndMetadata(3, "", -1)})
        finally:
            ka.close()
        errs = {tp.partition: e.errno for tp, e in res.items()}
        want = {0: 25}  # UNKNOWN_MEMBER_ID
    assert errs == want, f"altering offsets of a group with members: {errs}, Kafka answers {want}"
    assert ck_offsets(adm, group) == {}


def test_kafka_python_admin(group_broker, workers, topic):
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata
    bs = group_broker.bootstrap
    create_topic(bs, topic, len(PARTS))
    other = topic + "-other"
    create_topic(bs, other, 1)
    ends = produce_all(bs, topic)
    group = f"g-{topic}"
    ka = kp_admin(bs)
    try:
        # Offsets for a topic the members will not subscribe to, committed while empty.
        # The broker's first group request: Kafka answers FindCoordinator with
        # COORDINATOR_NOT_AVAILABLE (retriable) while it creates __consumer_offsets, and
        # kafka-python's admin client raises it instead of retrying.
        from kafka.errors import CoordinatorNotAvailableError
        deadline = time.monotonic() + 15
        while True:
            try:
                res = ka.alter_group_offsets(
                    group, {TopicPartition(other, 0): OffsetAndMetadata(0, "x", -1)})
                break
            except CoordinatorNotAvailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert {tp: e.errno for tp, e in res.items()} == {TopicPartition(other, 0): 0}

        ws = [workers("kafka-python", bs, group, topic, n) for n in ("m1", "m2")]
        s = wait_settled(ws, PARTS, 40)

        listed = {g["group_id"]: g for g in ka.list_groups()}
        assert set(listed) == {group} and listed[group]["protocol_type"] == "consumer", listed
        assert [g["group_id"] for g in ka.list_groups(states_filter=["Stable"])] == [group]
        assert ka.list_groups(states_filter=["Empty"]) == []

        d = ka.describe_groups([group])[group]
        assert d["error"] is None and d["group_state"] == "Stable", d
        assert d["protocol_type"] == "consumer" and d["protocol_data"] == "range", d
        got = {}
        for m in d["members"]:
            a = m["member_assignment"]
            got[m["member_id"]] = {p for t in a["assigned_partitions"] for p in t["partitions"]
                                   if t["topic"] == topic}
            assert m["client_id"] in s.members and m["client_host"].endswith("127.0.0.1"), m
        assert got == {s.members[n]: set(ps) for n, ps in s.assignment.items()}, got

        res = ka.delete_groups([group])
        assert res == {group: "NonEmptyGroupError"}, res

        wait_until(lambda: {tp.partition: om.offset for tp, om in
                            ka.list_group_offsets({group: None})[group].items()
                            if tp.topic == topic} == ends, 20,
                   what=f"members' auto-commits to reach {ends}")

        # OffsetDelete while members are active: refused for their topic, allowed otherwise.
        res = ka.delete_group_offsets(group, [TopicPartition(topic, 0), TopicPartition(other, 0)])
        assert {tp: e.errno for tp, e in res.items()} == \
            {TopicPartition(topic, 0): 86, TopicPartition(other, 0): 0}, res  # GROUP_SUBSCRIBED_TO_TOPIC
        offs = ka.list_group_offsets({group: None})[group]
        assert TopicPartition(other, 0) not in offs and offs[TopicPartition(topic, 0)].offset == ends[0]

        for w in ws:
            w.close()
        assert [g["group_state"] for g in ka.list_groups(states_filter=["Empty"])] == ["Empty"]
        res = ka.delete_group_offsets(group, [TopicPartition(topic, 0)])
        assert {tp: e.errno for tp, e in res.items()} == {TopicPartition(topic, 0): 0}, res
        offs = ka.list_group_offsets({group: None})[group]
        assert set(offs) == {TopicPartition(topic, p) for p in PARTS[1:]}, offs

        assert ka.delete_groups([group]) == {group: "OK"}
        assert ka.list_groups() == []
        assert ka.list_group_offsets({group: None})[group] == {}
        d = ka.describe_groups([group])[group]
        assert d["group_state"] == "Dead" and d["members"] == [], d
        assert "GroupIdNotFound" in (d["error"] or ""), f"DescribeGroups v6 of a deleted group: {d}"
        assert ka.delete_groups([group]) == {group: "GroupIdNotFoundError"}
    finally:
        ka.close()
