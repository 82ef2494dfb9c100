"""Committed offsets of consumer groups, per client family.

Proves with each client's own subscribe/commit API on a 3-partition topic:
* auto-commit: what a member consumed is committed (offset = last + 1), and a new
  member of the group resumes exactly after it (only newer records, none twice);
* manual commits, synchronous and asynchronous (with a completion callback where the
  client has one), of explicit offsets with metadata strings: the client's committed()
  and the AdminClient (OffsetFetch) both return those offsets and metadata;
* durability: after a SIGTERM and a restart on the same data dir, offsets and metadata
  are unchanged, the group is listed as Empty, and a new member resumes at them.
"""
import asyncio
import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition as CTP

from test_groups_support import HEARTBEAT_MS, SESSION_MS, Feeder, create_topic, wait_until

CLIENTS = ["confluent", "kafka-python", "aiokafka"]
PARTS = [0, 1, 2]
PER_PART = 10


class ConfluentC:
    def __init__(self, bs, group, topic, auto_commit):
        from confluent_kafka import Consumer
        self.topic, self.commits = topic, []
        self.c = Consumer({
            "bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": auto_commit, "auto.commit.interval.ms": 200,
            "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS,
            "fetch.wait.max.ms": 100, "debug": "cgrp",
            "on_commit": lambda err, parts: self.commits.append((err, parts))})
        self.c.subscribe([topic])

    def poll(self, timeout):
        out = []
        for m in self.c.consume(num_messages=500, timeout=timeout):
            assert m.error() is None, m.error()
            out.append((m.partition(), m.offset(), m.value().decode()))
        return out

    def commit_sync(self, offsets):
        res = self.c.commit(offsets=[CTP(self.topic, p, o, metadata=md)
                                     for p, (o, md) in offsets.items()], asynchronous=False)
        assert all(tp.error is None for tp in res), res
        return {tp.partition: tp.offset for tp in res}

    def commit_async(self, offsets):
        self.commits.clear()
        self.c.commit(offsets=[CTP(self.topic, p, o, metadata=md) for p, (o, md) in offsets.items()],
                      asynchronous=True)
        wait_until(lambda: self.poll(0.05) == [] and self.commits, 15, what="commit callback")
        err, parts = self.commits[-1]
        assert err is None, err
        return {tp.partition: tp.offset for tp in parts if tp.error is None}

    def committed(self):
        res = self.c.committed([CTP(self.topic, p) for p in PARTS], timeout=10)
        return {tp.partition: (tp.offset, tp.metadata) for tp in res}

    def close(self):
        self.c.close()


class KafkaPythonC:
    def __init__(self, bs, group, topic, auto_commit):
        from kafka import KafkaConsumer
        self.topic = topic
        self.c = KafkaConsumer(
            bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=auto_commit, auto_commit_interval_ms=200,
            session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
            fetch_max_wait_ms=100, request_timeout_ms=15000)
        wait_until(lambda: self.c.partitions_for_topic(topic), 15, what="topic metadata")
        self.c.subscribe([topic])

    def tp(self, p):
        from kafka import TopicPartition
        return TopicPartition(self.topic, p)

    def poll(self, timeout):
        return [(m.partition, m.offset, m.value.decode())
                for b in self.c.poll(timeout_ms=int(timeout * 1000)).values() for m in b]

    def _offsets(self, offsets):
        from kafka.structs import OffsetAndMetadata
        return {self.tp(p): OffsetAndMetadata(o, md, -1) for p, (o, md) in offsets.items()}

    def commit_sync(self, offsets):
        self.c.commit(self._offsets(offsets))
        return {p: o for p, (o, _) in offsets.items()}

    def commit_async(self, offsets):
        done = []
        self.c.commit_async(self._offsets(offsets), callback=lambda offs, resp: done.append(resp))
        wait_until(lambda: self.poll(0.05) == [] and done, 15, what="commit callback")
        assert not isinstance(done[0], Exception), done[0]
        return {p: o for p, (o, _) in offsets.items()}

    def committed(self):
        out = {}
        for p in PARTS:
            om = self.c.committed(self.tp(p), metadata=True)
            out[p] = (om.offset, om.metadata) if om is not None else (None, None)
        return out

    def close(self):
        self.c.close()


class AioKafkaC:
    def __init__(self, bs, group, topic, auto_commit):
        self.topic = topic
        self.loop = asyncio.new_event_loop()
        self.run(self._start(bs, group, topic, auto_commit))

    async def _start(self, bs, group, topic, auto_commit):
        from aiokafka import AIOKafkaConsumer
        self.c = AIOKafkaConsumer(
            bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=auto_commit, auto_commit_interval_ms=200,
            session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
            fetch_max_wait_ms=100, request_timeout_ms=15000)
        await self.c.start()
        self.c.subscribe([topic])

    def run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    def tp(self, p):
        from aiokafka import TopicPartition
        return TopicPartition(self.topic, p)

    def poll(self, timeout):
        batches = self.run(self.c.getmany(timeout_ms=int(timeout * 1000)))
        return [(m.partition, m.offset, m.value.decode()) for b in batches.values() for m in b]

    def commit_sync(self, offsets):
        self.run(self.c.commit({self.tp(p): (o, md) for p, (o, md) in offsets.items()}))
        return {p: o for p, (o, _) in offsets.items()}

    def commit_async(self, offsets):
        # aiokafka has no callback-style commit: the commit runs as a task next to getmany().
        async def go():
            task = asyncio.ensure_future(
                self.c.commit({self.tp(p): (o, md) for p, (o, md) in offsets.items()}))
            while not task.done():
                await self.c.getmany(timeout_ms=50)
            return task.result()
        self.run(go())
        return {p: o for p, (o, _) in offsets.items()}

    def committed(self):
        got = self.run(self.c._coordinator.fetch_committed_offsets([self.tp(p) for p in PARTS]))
        plain = {p: self.run(self.c.committed(self.tp(p))) for p in PARTS}
        out = {}
        for p in PARTS:
            om = got.get(self.tp(p))
            out[p] = (om.offset, om.metadata) if om is not None else (None, None)
            assert plain[p] == out[p][0], (plain, out)
        return out

    def close(self):
        try:
            self.run(self.c.stop())
        finally:
            self.loop.close()


ADAPTERS = {"confluent": ConfluentC, "kafka-python": KafkaPythonC, "aiokafka": AioKafkaC}


def drain(c, want, timeout=25, extra=0.6):
    """Polls until `want` records arrived, then `extra` seconds more (catches extras)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        out.extend(c.poll(0.1))
    end = time.monotonic() + extra
    while time.monotonic() < end:
        out.extend(c.poll(0.1))
    return out


def admin_offsets(bs, group, topic):
    """{partition: (offset, metadata)} of the group via kafka-python's KafkaAdminClient
    (OffsetFetch), which decodes metadata strings exactly."""
    from kafka import KafkaAdminClient
    from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError
    ka = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=15000)
    try:
        # Kafka answers COORDINATOR_LOAD_IN_PROGRESS (retriable) while it reloads the
        # group's offsets after a restart; kafka-python's admin client raises it.
        deadline = time.monotonic() + 15
        while True:
            try:
                res = ka.list_group_offsets({group: None})[group]
                break
            except (CoordinatorLoadInProgressError, CoordinatorNotAvailableError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        ka.close()
    return {tp.partition: (om.offset, om.metadata) for tp, om in res.items() if tp.topic == topic}


def on_wire(client, plan):
    """What the broker stores for `plan`: confluent-kafka-python 2.16 commits metadata with
    its C string's terminating NUL (metadata_size = strlen + 1) and strips it when reading
    (it also reads other clients' metadata as C strings: garbage past the end)."""
    if client != "confluent":
        return plan
    return {p: (o, md + "\x00") for p, (o, md) in plan.items()}


def produce(bs, topic, prefix, per_part):
    f = Feeder(bs, topic, PARTS, prefix=prefix)
    f.produce(per_part * len(PARTS))
    f.stop()
    return {(p, o): v for p, o, v, _ in f.snapshot()}


@pytest.mark.parametrize("client", CLIENTS)
def test_auto_commit_resume(group_broker, topic, client):
    bs = group_broker.bootstrap
    create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    first = produce(bs, topic, "first", PER_PART)
    c1 = ADAPTERS[client](bs, group, topic, auto_commit=True)
    got = drain(c1, len(first), extra=1.0)  # > auto.commit.interval.ms of polling
    assert sorted((p, o) for p, o, _ in got) == sorted(first), "first consumer's records"
    assert all(first[(p, o)] == v for p, o, v in got)
    def committed():
        return {p: o for p, (o, _) in admin_offsets(bs, group, topic).items()}
    wait_until(lambda: committed() == {p: PER_PART for p in PARTS}, 10,
               what=f"auto-commit of offset {PER_PART} on partitions {PARTS}")
    c1.close()
    assert committed() == {p: PER_PART for p in PARTS}

    second = produce(bs, topic, "second", 5)
    c2 = ADAPTERS[client](bs, group, topic, auto_commit=True)
    got2 = drain(c2, len(second))
    c2.close()
    assert sorted((p, o) for p, o, _ in got2) == sorted(second), \
        f"second member of the group must resume after the committed offsets: got " \
        f"{sorted((p, o) for p, o, _ in got2)[:12]}, want {sorted(second)[:12]}"
    assert all(second[(p, o)] == v for p, o, v in got2)


@pytest.mark.parametrize("client", CLIENTS)
def test_manual_commits_metadata_and_restart(group_broker, topic, client):
    bs = group_broker.bootstrap
    create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    recs = produce(bs, topic, "rec", PER_PART)
    c1 = ADAPTERS[client](bs, group, topic, auto_commit=False)
    got = drain(c1, len(recs), extra=0.3)
    assert sorted((p, o) for p, o, _ in got) == sorted(recs)

    plan = {0: (4, f"meta {client} p0 \u2713"), 1: (7, ""), 2: (PER_PART, "m" * 300)}
    assert c1.commit_sync({0: plan[0], 1: plan[1]}) == {0: 4, 1: 7}
    assert c1.commit_async({2: plan[2]}) == {2: PER_PART}
    assert c1.committed() == plan, "client's committed() offsets/metadata"
    assert admin_offsets(bs, group, topic) == on_wire(client, plan), "OffsetFetch offsets/metadata"
    # A second sync commit overwrites the first.
    plan[1] = (6, "second commit")
    c1.commit_sync({1: plan[1]})
    assert c1.committed() == plan
    c1.close()
    assert admin_offsets(bs, group, topic) == on_wire(client, plan), \
        "close() must not commit other offsets"

    code = group_broker.stop()
    assert code in (0, -15), f"klamm exited with {code} on SIGTERM"
    group_broker.start()
    from confluent_kafka.admin import AdminClient
    adm2 = AdminClient({"bootstrap.servers": bs})
    assert admin_offsets(bs, group, topic) == on_wire(client, plan), "offsets/metadata after a restart"
    if client == "confluent":
        res = adm2.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group] \
            .result(timeout=15)
        assert {tp.partition: (tp.offset, tp.metadata) for tp in res.topic_partitions} == plan
    listed = {g.group_id: g for g in adm2.list_consumer_groups().result(timeout=15).valid}
    assert group in listed, f"group with committed offsets not listed after restart: {listed}"
    assert listed[group].state.name == "EMPTY", listed[group].state

    c2 = ADAPTERS[client](bs, group, topic, auto_commit=False)
    assert c2.committed() == plan
    want = sorted(k for k in recs if k[1] >= plan[k[0]][0])
    got2 = drain(c2, len(want))
    c2.close()
    assert sorted((p, o) for p, o, _ in got2) == want, \
        f"after restart the group must resume at {plan}: got {sorted((p, o) for p, o, _ in got2)}"
    assert all(recs[(p, o)] == v for p, o, v in got2)
