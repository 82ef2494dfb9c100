"""aiokafka against Klamm.

Proves, byte-exact: produce/consume of keys, null keys/values, duplicate and
binary headers and explicit timestamps with every codec and acks=0/1/all;
explicit partitions on an AIOKafkaAdminClient-created 3-partition topic; auto
topic creation (produce and metadata); earliest/latest/offset/timestamp start
positions; long-poll wake-up; delete topic / create partitions via the admin
client; data surviving SIGTERM and SIGKILL restarts. Consumers use group_id=None + assign().
"""
import asyncio
import functools
import random
import time

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import InvalidPartitionsError, OffsetOutOfRangeError

from kclients import (CODECS, AioKafka as AK, Rec, assert_same, check_offsets, now_ms,
                      sample_records)

TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION = 36, 3


def aio(fn):
    """Run an async test body on a fresh event loop, bounded in time."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 90))
    return wrapper


async def admin(broker):
    adm = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    await adm.start()
    return adm


async def partitions_of(adm, topic, want=None, timeout=10.0):
    """[(partition, leader)] of the topic. With `want`, described again (bounded) until it
    matches: Kafka answers CreateTopics/CreatePartitions once the controller committed the
    change, and its broker's metadata cache catches up a moment later (UNKNOWN_TOPIC_OR_
    PARTITION or the old partition count meanwhile). Klamm answers from the new state at once."""
    deadline = time.monotonic() + timeout
    while True:
        [t] = await adm.describe_topics([topic])
        got = (sorted((p["partition"], p["leader"]) for p in t["partitions"])
               if t["error_code"] == 0 else None)
        if want is None or got == want or time.monotonic() > deadline:
            assert t["error_code"] == 0, t
            return got
        await asyncio.sleep(0.05)


async def topic_listed(adm, topic, want, timeout=10.0):
    """Whether ListTopics shows the topic, polled (bounded) until it is `want` (see
    partitions_of: Kafka's broker learns of a deleted topic a moment after DeleteTopics)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = topic in await adm.list_topics()
        if listed == want or time.monotonic() > deadline:
            return listed
        await asyncio.sleep(0.05)


def topic_errors(resp):
    return {t[0]: t[1] for t in getattr(resp, "topic_errors", None) or resp.topic_error_codes}


@pytest.mark.parametrize("codec", CODECS)
@aio
async def test_roundtrip_codec(broker, topic, codec):
    recs = sample_records(seed=31)
    check_offsets("all", await AK.aproduce(broker.bootstrap, topic, recs, codec=codec), 0)
    got = await AK.aconsume(broker.bootstrap, topic, 0, 0, len(recs))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))


@pytest.mark.parametrize("acks", [0, 1, "all"])
@aio
async def test_acks(broker, topic, acks):
    recs = sample_records(seed=32, n_small=10)
    check_offsets(acks, await AK.aproduce(broker.bootstrap, topic, recs, acks=acks), 0)
    assert_same(await AK.aconsume(broker.bootstrap, topic, 0, 0, len(recs)), recs)


@aio
async def test_three_partitions_explicit(broker, topic):
    adm = await admin(broker)
    try:
        resp = await adm.create_topics([NewTopic(topic, 3, 1)])
        assert topic_errors(resp) == {topic: 0}
        assert await partitions_of(adm, topic, [(0, 1), (1, 1), (2, 1)]) == [(0, 1), (1, 1), (2, 1)]
        resp = await adm.create_topics([NewTopic(topic, 3, 1)])
        assert topic_errors(resp) == {topic: TOPIC_ALREADY_EXISTS}
    finally:
        await adm.close()
    per_part = {p: [Rec(f"p{p}-k{i}".encode(), f"p{p}-v{i}".encode(), (), now_ms() - 1000 + i)
                    for i in range(12)] for p in range(3)}
    for p, recs in per_part.items():
        produced = await AK.aproduce(broker.bootstrap, topic, recs, codec="gzip", partition=p)
        check_offsets("all", produced, p)
    for p, recs in per_part.items():
        got = await AK.aconsume(broker.bootstrap, topic, p, 0, len(recs))
        assert_same(got, recs)
        assert {r.partition for r in got} == {p}


@aio
async def test_auto_create_on_produce(broker, topic):
    recs = sample_records(seed=33, n_small=3)
    check_offsets("all", await AK.aproduce(broker.bootstrap, topic, recs), 0)
    assert_same(await AK.aconsume(broker.bootstrap, topic, 0, 0, len(recs)), recs)
    adm = await admin(broker)
    try:
        assert topic in await adm.list_topics()
    finally:
        await adm.close()


@aio
async def test_auto_create_on_metadata(broker, topic):
    p = AK.producer(broker.bootstrap)
    await p.start()
    try:
        assert await p.partitions_for(topic) == {0}
    finally:
        await p.stop()
    adm = await admin(broker)
    try:
        assert topic in await adm.list_topics()
    finally:
        await adm.close()


@aio
async def test_start_earliest_latest_offset(broker, topic):
    recs = [Rec(f"k{i}".encode(), f"v{i}".encode() * (i + 1), (), now_ms() - 5000 + i)
            for i in range(10)]
    await AK.aproduce(broker.bootstrap, topic, recs, codec="zstd")
    tp = TopicPartition(topic, 0)
    c = AK.consumer(broker.bootstrap, auto_offset_reset="earliest")
    await c.start()
    try:
        assert await c.beginning_offsets([tp]) == {tp: 0}
        assert await c.end_offsets([tp]) == {tp: 10}
        c.assign([tp])
        assert_same(await AK.adrain(c, 10), recs)
        c.seek(tp, 7)  # middle of a compressed batch
        got = await AK.adrain(c, 3)
        assert_same(got, recs[7:])
        assert [r.offset for r in got] == [7, 8, 9]
    finally:
        await c.stop()

    c = AK.consumer(broker.bootstrap, auto_offset_reset="latest")
    await c.start()
    try:
        c.assign([tp])
        assert await c.position(tp) == 10
        more = [Rec(b"late", f"late-{i}".encode(), (("x", b"y"),), now_ms()) for i in range(3)]
        check_offsets("all", await AK.aproduce(broker.bootstrap, topic, more), 0, start=10)
        got = await AK.adrain(c, 3)
        assert_same(got, more)
        assert [r.offset for r in got] == [10, 11, 12]
    finally:
        await c.stop()


@aio
async def test_out_of_range_offset(broker, topic):
    recs = [Rec(b"k", f"v{i}".encode(), (), now_ms() - 100 + i) for i in range(5)]
    await AK.aproduce(broker.bootstrap, topic, recs)
    tp = TopicPartition(topic, 0)
    c = AK.consumer(broker.bootstrap, auto_offset_reset="earliest")
    await c.start()
    try:  # OFFSET_OUT_OF_RANGE from the broker makes the client reset to earliest
        c.assign([tp])
        c.seek(tp, 100)
        assert_same(await AK.adrain(c, 5), recs)
    finally:
        await c.stop()
    c = AK.consumer(broker.bootstrap, auto_offset_reset="none")
    await c.start()
    try:
        c.assign([tp])
        c.seek(tp, 100)
        with pytest.raises(OffsetOutOfRangeError):
            await asyncio.wait_for(c.getone(tp), 10)
    finally:
        await c.stop()


@aio
async def test_offsets_for_times(broker, topic):
    base = now_ms() - 100_000
    recs = [Rec(b"k", f"v{i}".encode(), (), base + i * 1000) for i in range(10)]
    await AK.aproduce(broker.bootstrap, topic, recs, codec="gzip")
    tp = TopicPartition(topic, 0)
    c = AK.consumer(broker.bootstrap)
    await c.start()
    try:
        async def lookup(ts):
            return (await c.offsets_for_times({tp: ts}))[tp]
        r = await lookup(base + 3500)
        assert (r.offset, r.timestamp) == (4, base + 4000)
        r = await lookup(base - 10)
        assert (r.offset, r.timestamp) == (0, base)
        assert await lookup(base + 60_000) is None
        c.assign([tp])
        c.seek(tp, (await lookup(base + 7001)).offset)
        assert_same(await AK.adrain(c, 2), recs[8:])
    finally:
        await c.stop()


@aio
async def test_long_poll_wakeup(broker, topic):
    await AK.aproduce(broker.bootstrap, topic, [Rec(b"k", b"first")])
    tp = TopicPartition(topic, 0)
    c = AK.consumer(broker.bootstrap, fetch_max_wait_ms=5000, auto_offset_reset="latest")
    await c.start()
    late = Rec(b"late-key", b"late-value", (("h", b"\x00\x01"),), now_ms())
    try:
        c.assign([tp])
        assert await c.position(tp) == 1

        async def produce_later():
            await asyncio.sleep(1.0)
            await AK.aproduce(broker.bootstrap, topic, [late])
            return time.monotonic()

        task = asyncio.create_task(produce_later())
        m = await asyncio.wait_for(c.getone(tp), 10)
        received_at = time.monotonic()
        acked_at = await task
    finally:
        await c.stop()
    got = AK.to_rec(m)
    assert_same([got], [late])
    assert got.offset == 1
    # aiokafka may return the record before the producer task sees its ack.
    assert received_at - acked_at < 3.0


@aio
async def test_delete_topic_and_create_partitions(broker, topic):
    adm = await admin(broker)
    try:
        assert topic_errors(await adm.create_topics([NewTopic(topic, 1, 1)])) == {topic: 0}
        first = [Rec(k, v, (), now_ms()) for k, v in [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]]
        check_offsets("all", await AK.aproduce(broker.bootstrap, topic, first, partition=0), 0)

        await adm.create_partitions({topic: NewPartitions(3)})
        assert await partitions_of(adm, topic, [(0, 1), (1, 1), (2, 1)]) == [(0, 1), (1, 1), (2, 1)]
        with pytest.raises(InvalidPartitionsError):
            await adm.create_partitions({topic: NewPartitions(2)})
        new = [Rec(b"p2", b"in new partition", (("h", b"v"),), now_ms())]
        check_offsets("all", await AK.aproduce(broker.bootstrap, topic, new, partition=2), 2)
        assert_same(await AK.aconsume(broker.bootstrap, topic, 2, 0, 1), new)
        assert_same(await AK.aconsume(broker.bootstrap, topic, 0, 0, 3), first)

        assert topic_errors(await adm.delete_topics([topic])) == {topic: 0}
        assert not await topic_listed(adm, topic, False)
        assert topic_errors(await adm.delete_topics([topic])) == \
            {topic: UNKNOWN_TOPIC_OR_PARTITION}
        assert topic_errors(await adm.create_topics([NewTopic(topic, 1, 1)])) == {topic: 0}
        assert await partitions_of(adm, topic, [(0, 1)]) == [(0, 1)]
    finally:
        await adm.close()
    c = AK.consumer(broker.bootstrap)
    await c.start()
    try:  # a re-created topic starts empty
        tp = TopicPartition(topic, 0)
        assert await c.beginning_offsets([tp]) == {tp: 0}
        assert await c.end_offsets([tp]) == {tp: 0}
    finally:
        await c.stop()


@aio
async def test_restart_sigterm(broker, topic):
    recs = sample_records(seed=34)
    await AK.aproduce(broker.bootstrap, topic, recs[:15], codec="lz4")
    await AK.aproduce(broker.bootstrap, topic, recs[15:], codec="none")
    broker.restart()
    assert_same(await AK.aconsume(broker.bootstrap, topic, 0, 0, len(recs)), recs)
    more = [Rec(b"after", b"restart", (), now_ms())]
    check_offsets("all", await AK.aproduce(broker.bootstrap, topic, more), 0, start=len(recs))


@aio
async def test_sigkill_mid_stream_keeps_acked(broker, topic):
    rnd = random.Random(35)
    p = AK.producer(broker.bootstrap, acks="all", linger_ms=0, request_timeout_ms=3000)
    await p.start()
    acked, sent, killer = {}, [], None
    loop = asyncio.get_running_loop()
    try:
        for i in range(5000):
            if i == 40:  # kill from another thread while sends are in flight
                killer = loop.run_in_executor(None, lambda: (time.sleep(rnd.uniform(0, 0.05)),
                                                             broker.kill()))
            rec = Rec(f"key-{i}".encode(), rnd.randbytes(rnd.randint(1, 20_000)),
                      (("i", str(i).encode()),), now_ms())
            sent.append(rec)
            try:
                md = await asyncio.wait_for(
                    p.send_and_wait(topic, key=rec.key, value=rec.value,
                                    headers=list(rec.headers), timestamp_ms=rec.timestamp), 5)
            except Exception:
                break
            acked[md.offset] = rec
    finally:
        try:
            await asyncio.wait_for(p.stop(), 5)
        except asyncio.TimeoutError:
            pass
    if killer:
        await killer
    print(f"acked before SIGKILL: {len(acked)}, sent: {len(sent)}")
    assert len(acked) >= 40, "broker died before the kill"
    assert sorted(acked) == list(range(len(acked))), "acked offsets not contiguous"
    broker.start()
    got = await AK.aconsume(broker.bootstrap, topic, 0, 0, len(acked))
    assert len(got) in (len(acked), len(acked) + 1), len(got)
    assert_same(got[:len(acked)], [acked[o] for o in range(len(acked))])
    assert_same(got[len(acked):], sent[len(acked):len(got)])
    more = [Rec(b"after", b"crash", (), now_ms())]
    check_offsets("all", await AK.aproduce(broker.bootstrap, topic, more), 0, start=len(got))
