"""Group-protocol requests sent one by one with kafka-python's protocol classes (through
its KafkaAdminClient's connection), to check Kafka's error codes on bad input.

A member joins by hand (JoinGroup -> MEMBER_ID_REQUIRED -> JoinGroup -> SyncGroup), so
the test knows the real member id and generation. Then: heartbeats, syncs and commits
with a wrong generation (ILLEGAL_GENERATION) or an unknown member (UNKNOWN_MEMBER_ID),
joins with an unknown member id, a foreign protocol type or no common protocol
(INCONSISTENT_GROUP_PROTOCOL), out-of-range session timeouts (INVALID_SESSION_TIMEOUT),
leaving with an unknown member, deleting a group with members (NON_EMPTY_GROUP) or an
unknown one (GROUP_ID_NOT_FOUND), describing an unknown group (Dead; GROUP_ID_NOT_FOUND
from v6), OffsetDelete of an unknown group, oversized commit metadata
(OFFSET_METADATA_TOO_LARGE), commits to unknown partitions; null commit metadata must
read back as "" (Kafka stores OffsetAndMetadata.NO_METADATA); and OffsetCommit/OffsetFetch
must be answered at every version the broker advertises in ApiVersions.
"""
import struct
import time
import uuid

import pytest
from kafka.protocol.admin import DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.consumer import (HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
                                     OffsetCommitRequest, OffsetDeleteRequest,
                                     OffsetFetchRequest, SyncGroupRequest)

from test_groups_support import create_topic

NONE, OFFSET_METADATA_TOO_LARGE, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL = 0, 12, 22, 23
UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_MEMBER_ID, INVALID_SESSION_TIMEOUT = 3, 25, 26
NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND = 68, 69
COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR = 14, 15, 16
MEMBER_ID_REQUIRED, GROUP_SUBSCRIBED_TO_TOPIC = 79, 86
SESSION_MS = 10000
# OffsetCommit/OffsetFetch version for the helpers: what kafka-python's own consumer and
# admin client pin (test_every_advertised_offset_version sweeps all advertised versions).
OFFSETS_VERSION = 8


def subscription(topics):
    """ConsumerProtocolSubscription v0: version, [topic], null user data."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def assignment(topic, partitions):
    """ConsumerProtocolAssignment v0: version, [(topic, [partition])], null user data."""
    return (struct.pack(">hih", 0, 1, len(topic)) + topic.encode()
            + struct.pack(">i", len(partitions)) + b"".join(struct.pack(">i", p) for p in partitions)
            + struct.pack(">i", -1))


class Raw:
    """Sends single requests to the broker (node 1) and returns the decoded responses."""

    def __init__(self, bs):
        from kafka import KafkaAdminClient
        self.ka = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=15000)

    def wait_coordinator(self, timeout=30.0):
        """Waits (bounded) until node 1 coordinates groups, as a client's FindCoordinator
        would. The requests here go straight to node 1; Kafka creates __consumer_offsets on
        the first FindCoordinator (COORDINATOR_NOT_AVAILABLE meanwhile) and answers group
        requests with NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS until its partition is
        loaded. Klamm coordinates from the start: one round trip each."""
        from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
        deadline, probe = time.monotonic() + timeout, "klamm-compat-coordinator-probe"
        while True:
            if self.max_version(FindCoordinatorRequest) >= 4:
                r = self.send(FindCoordinatorRequest(key_type=0, coordinator_keys=[probe],
                                                     min_version=4))
                found = r.coordinators[0].error_code == NONE
            else:
                found = self.send(FindCoordinatorRequest(key=probe, key_type=0)).error_code == NONE
            if found:
                d = self.send(DescribeGroupsRequest(groups=[probe],
                                                    include_authorized_operations=False)).groups[0]
                if d.error_code not in (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
                                        NOT_COORDINATOR):
                    return
            assert time.monotonic() < deadline, "node 1 did not become the group coordinator"
            time.sleep(0.2)

    def send(self, req):
        async def go():
            return await self.ka._manager.send(req, node_id=1)
        return self.ka._manager.run(go)

    def max_version(self, cls):
        return self.ka._manager.broker_version_data.api_version(cls)

    def topic_id(self, topic):
        return uuid.UUID(str(self.ka.describe_topics([topic])[0]["topic_id"]))

    def close(self):
        self.ka.close()

    # ------------------------------------------------------------------ group requests
    def join(self, group, member_id="", topics=(), session_ms=SESSION_MS, protocol_type="consumer",
             protocols=("range",), **kw):
        P = JoinGroupRequest.JoinGroupRequestProtocol
        return self.send(JoinGroupRequest(
            group_id=group, session_timeout_ms=session_ms, rebalance_timeout_ms=SESSION_MS,
            member_id=member_id, group_instance_id=None, protocol_type=protocol_type,
            protocols=[P(name=n, metadata=subscription(list(topics))) for n in protocols], **kw))

    def sync(self, group, gen, member_id, assignments=()):
        A = SyncGroupRequest.SyncGroupRequestAssignment
        return self.send(SyncGroupRequest(
            group_id=group, generation_id=gen, member_id=member_id, group_instance_id=None,
            protocol_type="consumer", protocol_name="range",
            assignments=[A(member_id=m, assignment=a) for m, a in assignments]))

    def heartbeat(self, group, gen, member_id):
        return self.send(HeartbeatRequest(group_id=group, generation_id=gen, member_id=member_id,
                                          group_instance_id=None)).error_code

    def commit(self, group, topic, offsets, gen=-1, member_id="", version=OFFSETS_VERSION):
        """offsets: {partition: (offset, metadata)} -> {partition: error code}."""
        T = OffsetCommitRequest.OffsetCommitRequestTopic
        P = T.OffsetCommitRequestPartition
        kw = {"min_version": version, "max_version": version}
        t = T(name=topic, partitions=[P(partition_index=p, committed_offset=o, committed_leader_epoch=-1,
                                        committed_metadata=md) for p, (o, md) in offsets.items()])
        if version >= 10:
            t.topic_id = self.topic_id(topic)
        r = self.send(OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=gen,
                                          member_id=member_id, group_instance_id=None,
                                          retention_time_ms=-1, topics=[t], **kw))
        return {p.partition_index: p.error_code for t in r.topics for p in t.partitions}

    def fetch(self, group, topic, partitions, version=OFFSETS_VERSION):
        """-> {partition: (offset, metadata, error)} via OffsetFetch."""
        kw = {"min_version": version, "max_version": version}
        if version < 8:
            T = OffsetFetchRequest.OffsetFetchRequestTopic
            r = self.send(OffsetFetchRequest(group_id=group, topics=[
                T(name=topic, partition_indexes=list(partitions))], **kw))
            assert r.error_code == NONE, r
            topics = r.topics
        else:
            G = OffsetFetchRequest.OffsetFetchRequestGroup
            T = G.OffsetFetchRequestTopics
            t = T(name=topic, partition_indexes=list(partitions))
            if version >= 10:
                t.topic_id = self.topic_id(topic)
            r = self.send(OffsetFetchRequest(groups=[G(group_id=group, topics=[t])], **kw))
            assert [g.error_code for g in r.groups] == [NONE], r
            topics = r.groups[0].topics
        return {p.partition_index: (p.committed_offset, p.metadata, p.error_code)
                for t in topics for p in t.partitions}


@pytest.fixture
def raw(group_broker):
    r = Raw(group_broker.bootstrap)
    r.wait_coordinator()
    yield r
    r.close()


def join_by_hand(raw, group, topic, partitions):
    """One member joins and syncs; returns (member_id, generation)."""
    r = raw.join(group, topics=[topic])
    assert r.error_code == MEMBER_ID_REQUIRED and r.member_id and r.generation_id == -1, r
    member = r.member_id
    r = raw.join(group, member_id=member, topics=[topic])
    assert r.error_code == NONE, r
    assert (r.member_id, r.leader, r.protocol_name) == (member, member, "range"), r
    assert r.generation_id >= 1 and [m.member_id for m in r.members] == [member], r
    assert r.members[0].metadata == subscription([topic]), r.members
    gen = r.generation_id
    mine = assignment(topic, partitions)
    r = raw.sync(group, gen, member, [(member, mine)])
    assert (r.error_code, r.assignment) == (NONE, mine), r
    assert raw.heartbeat(group, gen, member) == NONE
    return member, gen


def test_join_sync_describe_leave_by_hand(group_broker, raw, topic):
    create_topic(group_broker.bootstrap, topic, 3)
    group = f"g-{topic}"
    member, gen = join_by_hand(raw, group, topic, [0, 1, 2])
    d = raw.send(DescribeGroupsRequest(groups=[group], include_authorized_operations=False)).groups[0]
    assert (d.error_code, d.group_state, d.protocol_type, d.protocol_data) == \
        (NONE, "Stable", "consumer", "range"), d
    assert [(m.member_id, m.member_metadata, m.member_assignment) for m in d.members] == \
        [(member, subscription([topic]), assignment(topic, [0, 1, 2]))], d.members
    groups = raw.send(ListGroupsRequest()).groups
    assert [(g.group_id, g.protocol_type) for g in groups] == [(group, "consumer")], groups

    # Rejoining with the same metadata while Stable answers with the current generation.
    r = raw.join(group, member_id=member, topics=[topic])
    assert r.error_code == NONE and r.member_id == member, r

    LM = LeaveGroupRequest.MemberIdentity
    r = raw.send(LeaveGroupRequest(group_id=group, members=[LM(member_id=member, group_instance_id=None)]))
    assert (r.error_code, [(m.member_id, m.error_code) for m in r.members]) == (NONE, [(member, NONE)]), r
    d = raw.send(DescribeGroupsRequest(groups=[group], include_authorized_operations=False)).groups[0]
    assert (d.group_state, d.members) == ("Empty", []), d
    assert raw.heartbeat(group, gen, member) == UNKNOWN_MEMBER_ID


def test_member_errors(group_broker, raw, topic):
    create_topic(group_broker.bootstrap, topic, 3)
    group = f"g-{topic}"
    member, gen = join_by_hand(raw, group, topic, [0, 1, 2])

    assert raw.heartbeat(group, gen + 1, member) == ILLEGAL_GENERATION
    assert raw.heartbeat(group, gen, "no-such-member") == UNKNOWN_MEMBER_ID
    assert raw.sync(group, gen + 1, member).error_code == ILLEGAL_GENERATION
    assert raw.sync(group, gen, "no-such-member").error_code == UNKNOWN_MEMBER_ID

    assert raw.commit(group, topic, {0: (1, "m")}, gen=gen + 5, member_id=member) == {0: ILLEGAL_GENERATION}
    assert raw.commit(group, topic, {0: (1, "m")}, gen=gen, member_id="no-such-member") == \
        {0: UNKNOWN_MEMBER_ID}
    assert raw.fetch(group, topic, [0]) == {0: (-1, "", NONE)}, "failed commits must store nothing"
    assert raw.commit(group, topic, {0: (7, "ok"), 1: (8, "")}, gen=gen, member_id=member) == \
        {0: NONE, 1: NONE}
    assert raw.commit(group, topic, {5: (1, "")}, gen=gen, member_id=member) == \
        {5: UNKNOWN_TOPIC_OR_PARTITION}
    assert raw.commit(group, "no-such-topic-" + topic, {0: (1, "")}, gen=gen, member_id=member) == \
        {0: UNKNOWN_TOPIC_OR_PARTITION}
    assert raw.fetch(group, topic, [0, 1, 2]) == {0: (7, "ok", NONE), 1: (8, "", NONE), 2: (-1, "", NONE)}

    assert raw.join(group, member_id="no-such-member", topics=[topic]).error_code == UNKNOWN_MEMBER_ID
    assert raw.join(group, topics=[topic], protocol_type="connect").error_code == \
        INCONSISTENT_GROUP_PROTOCOL
    assert raw.join(group, topics=[topic], protocols=("no-such-assignor",)).error_code == \
        INCONSISTENT_GROUP_PROTOCOL
    assert raw.join(group, topics=[topic], session_ms=500).error_code == INVALID_SESSION_TIMEOUT
    assert raw.join(group, topics=[topic], session_ms=1_800_001).error_code == INVALID_SESSION_TIMEOUT

    LM = LeaveGroupRequest.MemberIdentity
    r = raw.send(LeaveGroupRequest(group_id=group, members=[LM(member_id="no-such-member",
                                                               group_instance_id=None)]))
    assert [(m.member_id, m.error_code) for m in r.members] == [("no-such-member", UNKNOWN_MEMBER_ID)], r

    r = raw.send(DeleteGroupsRequest(groups_names=[group]))
    assert [(g.group_id, g.error_code) for g in r.results] == [(group, NON_EMPTY_GROUP)], r
    T = OffsetDeleteRequest.OffsetDeleteRequestTopic
    r = raw.send(OffsetDeleteRequest(group_id=group, topics=[
        T(name=topic, partitions=[T.OffsetDeleteRequestPartition(partition_index=0)])]))
    assert r.error_code == NONE and \
        [(p.partition_index, p.error_code) for t in r.topics for p in t.partitions] == \
        [(0, GROUP_SUBSCRIBED_TO_TOPIC)], r

    # None of the refused requests disturbed the member.
    assert raw.heartbeat(group, gen, member) == NONE
    d = raw.send(DescribeGroupsRequest(groups=[group], include_authorized_operations=False)).groups[0]
    assert d.group_state == "Stable" and [m.member_id for m in d.members] == [member], d


def test_unknown_group_errors(group_broker, raw, topic):
    create_topic(group_broker.bootstrap, topic, 1)
    for version, want in [(5, (NONE, "Dead")), (6, (GROUP_ID_NOT_FOUND, "Dead"))]:
        r = raw.send(DescribeGroupsRequest(groups=["no-such-group"], include_authorized_operations=False,
                                           min_version=version, max_version=version))
        d = r.groups[0]
        assert (d.error_code, d.group_state, d.members) == (*want, []), (version, d)
    r = raw.send(DeleteGroupsRequest(groups_names=["no-such-group"]))
    assert [(g.group_id, g.error_code) for g in r.results] == [("no-such-group", GROUP_ID_NOT_FOUND)]
    T = OffsetDeleteRequest.OffsetDeleteRequestTopic
    r = raw.send(OffsetDeleteRequest(group_id="no-such-group", topics=[
        T(name=topic, partitions=[T.OffsetDeleteRequestPartition(partition_index=0)])]))
    assert r.error_code == GROUP_ID_NOT_FOUND, r
    assert raw.fetch("no-such-group", topic, [0]) == {0: (-1, "", NONE)}
    assert raw.send(ListGroupsRequest()).groups == []


def test_commit_metadata_limits(group_broker, raw, topic):
    create_topic(group_broker.bootstrap, topic, 2)
    group = f"g-{topic}"
    assert raw.commit(group, topic, {0: (3, "x" * 4096), 1: (4, "y" * 4097)}) == \
        {0: NONE, 1: OFFSET_METADATA_TOO_LARGE}
    assert raw.fetch(group, topic, [0, 1]) == {0: (3, "x" * 4096, NONE), 1: (-1, "", NONE)}


def test_null_commit_metadata_reads_back_empty(group_broker, raw, topic):
    """Kafka stores a null committed_metadata as OffsetAndMetadata.NO_METADATA (""), so
    OffsetFetch never returns null metadata for a committed offset."""
    create_topic(group_broker.bootstrap, topic, 1)
    group = f"g-{topic}"
    assert raw.commit(group, topic, {0: (5, None)}) == {0: NONE}
    assert raw.fetch(group, topic, [0]) == {0: (5, "", NONE)}


@pytest.mark.parametrize("api", ["OffsetCommit", "OffsetFetch"])
def test_every_advertised_offset_version(group_broker, raw, topic, api):
    """Every version ApiVersions advertises must be decoded and answered (a broker that
    cannot decode a version it advertises drops the client's connection)."""
    create_topic(group_broker.bootstrap, topic, 1)
    group = f"g-{topic}"
    cls = OffsetCommitRequest if api == "OffsetCommit" else OffsetFetchRequest
    top = raw.max_version(cls)
    lo = cls.valid_versions[0]
    assert top >= 4, f"{api} negotiated only up to v{top}"
    failures = []
    for v in range(lo, top + 1):
        try:
            if api == "OffsetCommit":
                assert raw.commit(group, topic, {0: (v, f"v{v}")}, version=v) == {0: NONE}
                assert raw.fetch(group, topic, [0])[0] == (v, f"v{v}", NONE)
            else:
                assert raw.commit(group, topic, {0: (100 + v, f"f{v}")}) == {0: NONE}
                assert raw.fetch(group, topic, [0], version=v)[0][:2] == (100 + v, f"f{v}")
        except Exception as e:  # noqa: BLE001 - collect every failing version
            failures.append(f"v{v}: {type(e).__name__}: {e}")
    assert not failures, f"{api} versions advertised up to v{top} but failing:\n" + "\n".join(failures)
