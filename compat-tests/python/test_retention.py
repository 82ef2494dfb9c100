"""DeleteRecords and retention through confluent-kafka, kafka-python and aiokafka.

DeleteRecords (AdminClient.delete_records, KafkaAdminClient.delete_records,
AIOKafkaAdminClient.delete_records): the answered low watermark, the watermarks clients
then see (ListOffsets earliest/latest), consumers from the beginning starting exactly at
the new log start offset (also inside a batch), a consumer positioned below it reset by
auto.offset.reset (earliest -> the log start offset, latest -> the end, error/none ->
OFFSET_OUT_OF_RANGE raised to the application), -1 meaning the high watermark, offsets
below the log start leaving it in place, OFFSET_OUT_OF_RANGE past the high watermark or
negative, UNKNOWN_TOPIC_OR_PARTITION for unknown topics and partitions, several
partitions in one request, and all of it surviving SIGTERM and SIGKILL restarts (an
emptied log resumes at its old end offset).

Retention (broker started with --log-retention-check-interval-ms 100): batches whose
newest timestamp is older than retention.ms are deleted from the front (a batch with one
recent record is kept, and so is everything after it), retention.bytes trims whole
batches while the rest still reaches the limit, compact-only topics are never trimmed
(compact,delete ones are, and switching the policy to delete lets them be), retention.ms
set later by IncrementalAlterConfigs or AlterConfigs and the dynamic log.retention.ms of
the cluster default "" or of broker "1" take effect without a restart (a topic's own
retention.ms wins over them), and a trimmed or emptied log stays so across a SIGKILL
restart.

DeleteRecords on a compact-only topic is a POLICY_VIOLATION, as in Kafka.

"Nothing was trimmed" is never concluded from a sleep: `retention_passes` waits until
fresh probe topics (one expired record each) created afterwards were trimmed, so complete
retention passes have run over every topic since.
"""
import asyncio
import json
import random
import signal
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException,
                             TopicPartition)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, NewTopic)

from kclients import AioKafka as AK, Confluent as CK, KafkaPython as KP, Rec

BROKER_ARGS = ("--log-retention-check-interval-ms", "100")
HOUR_MS = 3_600_000
WAIT_S = 10.0


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture
def rbroker(broker_factory):
    """A broker whose retention task runs every 100 ms."""
    return broker_factory(*BROKER_ARGS)


# --------------------------------------------------------------------------- helpers
def ck_admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap})


def create(adm, topic, config=None, partitions=1):
    adm.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                config=config or {})])[topic].result(timeout=15)


def recs(tag, n, ts, seed=0, keyed=False):
    """n records with (some null) keys, binary values and headers, timestamps ts, ts+1, ...
    keyed: every key set and unique (compacted topics refuse null keys and would
    compact duplicates away)."""
    rnd = random.Random(f"{tag}-{seed}")
    return [Rec(f"{tag}-k{i}".encode() if keyed or i % 3 else None,
                rnd.randbytes(rnd.randint(1, 300)),
                (("i", str(i).encode()), ("tag", tag.encode())) if i % 2 else (), ts + i)
            for i in range(n)]


def ck_produce_batches(b, topic, batches, partition=0):
    """Produces each list of Recs as one batch (flush between them); returns the offsets."""
    p = CK.producer(b.bootstrap, **{"linger.ms": 1000, "acks": "all"})
    offsets = []
    for batch in batches:
        got, errors = [], []

        def cb(err, msg):
            (errors if err is not None else got).append(err or msg.offset())

        for r in batch:
            p.produce(topic, key=r.key, value=r.value, headers=list(r.headers) or None,
                      timestamp=r.timestamp or 0, partition=partition, on_delivery=cb)
        assert p.flush(15) == 0 and not errors, errors
        offsets.append(sorted(got))
    return offsets


def watermarks(b, topic, partition=0):
    c = CK.consumer(b.bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10,
                                       cached=False)
    finally:
        c.close()


def wait_low(b, topic, want, partition=0, timeout=WAIT_S):
    """Polls the watermarks until the low one is `want` (bounded); returns (low, high)."""
    deadline = time.monotonic() + timeout
    wm = watermarks(b, topic, partition)
    while wm[0] != want and time.monotonic() < deadline:
        time.sleep(0.05)
        wm = watermarks(b, topic, partition)
    assert wm[0] == want, f"{topic}: low watermark {wm[0]}, want {want} (high {wm[1]})"
    return wm


def retention_passes(b, adm, n=2):
    """Returns once n probe topics, each created after the previous was trimmed, lost
    their one expired record: whole retention passes have run since the call."""
    for i in range(n):
        probe = f"probe-{time.monotonic_ns()}-{i}"
        create(adm, probe, {"retention.ms": "60000"})
        ck_produce_batches(b, probe, [[Rec(b"p", b"probe", (), now_ms() - HOUR_MS)]])
        assert wait_low(b, probe, 1) == (1, 1)


def ck_delete(adm, topic, offset, partition=0):
    tp = TopicPartition(topic, partition, offset)
    return adm.delete_records([tp], request_timeout=10)[tp].result(timeout=15).low_watermark


def ck_delete_error(adm, topic, offset, partition=0):
    tp = TopicPartition(topic, partition, offset)
    with pytest.raises(KafkaException) as ei:
        adm.delete_records([tp], request_timeout=10)[tp].result(timeout=15)
    return ei.value.args[0].code()


def with_offsets(rs, first):
    return [(first + i, r) for i, r in enumerate(rs)]


def got_with_offsets(got):
    return [(m.offset, Rec(m.key, m.value, m.headers, m.timestamp)) for m in got]


def ck_from_beginning(b, topic, count, partition=0):
    return CK.consume(b.bootstrap, topic, partition, OFFSET_BEGINNING, count)


def twenty(topic, b):
    """Offsets 0-9 (batch 1) and 10-19 (batch 2), timestamps a minute old."""
    ts = now_ms() - 60_000
    data = recs("a", 10, ts) + recs("b", 10, ts + 100)
    assert ck_produce_batches(b, topic, [data[:10], data[10:]]) == \
        [list(range(10)), list(range(10, 20))]
    return data


# --------------------------------------------------------------------------- confluent-kafka
def test_confluent_delete_records_moves_the_low_watermark(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic)
    data = twenty(topic, rbroker)
    assert watermarks(rbroker, topic) == (0, 20)

    # Inside the first batch: Kafka's log start may fall mid-batch.
    assert ck_delete(adm, topic, 5) == 5
    assert watermarks(rbroker, topic) == (5, 20)
    got = ck_from_beginning(rbroker, topic, 15)
    assert got_with_offsets(got) == with_offsets(data[5:], 5)
    # Below the log start: nothing moves, the answer is the current log start.
    assert ck_delete(adm, topic, 3) == 5
    assert ck_delete(adm, topic, 5) == 5
    # Exactly at a batch boundary, then inside the second batch.
    assert ck_delete(adm, topic, 10) == 10
    assert watermarks(rbroker, topic) == (10, 20)
    assert ck_delete(adm, topic, 17) == 17
    assert watermarks(rbroker, topic) == (17, 20)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 3)) == with_offsets(data[17:], 17)
    # An explicit offset inside the kept range still reads from there.
    assert got_with_offsets(CK.consume(rbroker.bootstrap, topic, 0, 18, 2)) == \
        with_offsets(data[18:], 18)
    # New records continue the offsets.
    more = recs("c", 3, now_ms())
    assert ck_produce_batches(rbroker, topic, [more]) == [[20, 21, 22]]
    assert watermarks(rbroker, topic) == (17, 23)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 6)) == \
        with_offsets(data[17:] + more, 17)


def test_confluent_delete_up_to_the_high_watermark(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic)
    twenty(topic, rbroker)
    assert ck_delete(adm, topic, OFFSET_END) == 20  # -1: the high watermark
    assert watermarks(rbroker, topic) == (20, 20)
    # At the high watermark already: again 20, and an offset equal to it is fine too.
    assert ck_delete(adm, topic, OFFSET_END) == 20
    assert ck_delete(adm, topic, 20) == 20
    more = recs("after", 2, now_ms())
    assert ck_produce_batches(rbroker, topic, [more]) == [[20, 21]]
    assert watermarks(rbroker, topic) == (20, 22)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 2)) == with_offsets(more, 20)


def test_confluent_delete_records_errors(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic)
    twenty(topic, rbroker)
    assert ck_delete(adm, topic, 4) == 4
    assert ck_delete_error(adm, topic, 21) == KafkaError.OFFSET_OUT_OF_RANGE
    assert ck_delete_error(adm, topic, 1_000_000) == KafkaError.OFFSET_OUT_OF_RANGE
    assert watermarks(rbroker, topic) == (4, 20)
    # librdkafka looks the leader up in Metadata first and fails unknown partitions itself
    # (_NOENT), as against Kafka; the broker's own UNKNOWN_TOPIC_OR_PARTITION answer is
    # checked with kafka-python below.
    assert ck_delete_error(adm, topic + "-missing", 0) == KafkaError._NOENT
    assert ck_delete_error(adm, topic, 0, partition=7) == KafkaError._NOENT
    # The unknown topic was not auto-created on the way.
    assert topic + "-missing" not in adm.list_topics(timeout=10).topics
    assert watermarks(rbroker, topic) == (4, 20)


def test_confluent_delete_records_several_partitions(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic, partitions=3)
    data = {}
    for p in range(3):
        data[p] = recs(f"p{p}", 6, now_ms() - 1000)
        assert ck_produce_batches(rbroker, topic, [data[p]], partition=p) == [list(range(6))]
    tps = [TopicPartition(topic, 0, 2), TopicPartition(topic, 1, OFFSET_END),
           TopicPartition(topic, 2, 9)]
    futs = adm.delete_records(tps, request_timeout=10)
    assert futs[tps[0]].result(15).low_watermark == 2
    assert futs[tps[1]].result(15).low_watermark == 6
    with pytest.raises(KafkaException) as ei:
        futs[tps[2]].result(15)
    assert ei.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert [watermarks(rbroker, topic, p) for p in range(3)] == [(2, 6), (6, 6), (0, 6)]
    assert got_with_offsets(CK.consume(rbroker.bootstrap, topic, 0, OFFSET_BEGINNING, 4)) == \
        with_offsets(data[0][2:], 2)
    assert got_with_offsets(CK.consume(rbroker.bootstrap, topic, 2, OFFSET_BEGINNING, 6)) == \
        with_offsets(data[2], 0)


def ck_stats_consumer(b, reset, stats):
    def on_stats(js):
        stats.append(json.loads(js))
    return CK.consumer(b.bootstrap, **{"auto.offset.reset": reset,
                                       "statistics.interval.ms": 100, "stats_cb": on_stats})


def ck_next_offset(stats, topic):
    if not stats:
        return None
    return stats[-1].get("topics", {}).get(topic, {}).get("partitions", {}).get("0", {}) \
        .get("next_offset")


def test_confluent_consumer_below_log_start_resets(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic)
    data = twenty(topic, rbroker)
    assert ck_delete(adm, topic, 5) == 5

    # earliest: to the log start (inside the first batch), not to the batch's base.
    for below in (0, 2, 4):
        c = CK.consumer(rbroker.bootstrap, **{"auto.offset.reset": "earliest"})
        try:
            c.assign([TopicPartition(topic, 0, below)])
            assert got_with_offsets(CK.drain(c, 15)) == with_offsets(data[5:], 5), below
        finally:
            c.close()

    # latest: to the high watermark; only records produced afterwards arrive.
    stats = []
    c = ck_stats_consumer(rbroker, "latest", stats)
    try:
        c.assign([TopicPartition(topic, 0, 2)])
        deadline = time.monotonic() + WAIT_S
        while ck_next_offset(stats, topic) != 20 and time.monotonic() < deadline:
            assert c.consume(num_messages=10, timeout=0.1) == []
        assert ck_next_offset(stats, topic) == 20, stats[-1:] and stats[-1].get("topics")
        more = recs("late", 2, now_ms())
        assert ck_produce_batches(rbroker, topic, [more]) == [[20, 21]]
        assert got_with_offsets(CK.drain(c, 2)) == with_offsets(more, 20)
    finally:
        c.close()

    # error: the application gets the out-of-range error and no records.
    c = CK.consumer(rbroker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 3)])
        err = None
        deadline = time.monotonic() + WAIT_S
        while err is None and time.monotonic() < deadline:
            for m in c.consume(num_messages=10, timeout=0.2):
                assert m.error() is not None, f"record at {m.offset()} below the log start"
                err = m.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
        assert "out of range" in err.str().lower(), err.str()
    finally:
        c.close()


def test_delete_records_survives_sigterm_and_sigkill_restarts(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic)
    data = twenty(topic, rbroker)

    assert ck_delete(adm, topic, 5) == 5
    rbroker.restart(signal.SIGTERM)
    assert watermarks(rbroker, topic) == (5, 20)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 15)) == with_offsets(data[5:], 5)

    adm = ck_admin(rbroker)
    assert ck_delete(adm, topic, 12) == 12
    rbroker.restart(signal.SIGKILL)
    assert watermarks(rbroker, topic) == (12, 20)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 8)) == with_offsets(data[12:], 12)
    # Below the restored log start: still out of range after the restart.
    c = CK.consumer(rbroker.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 10)])
        assert got_with_offsets(CK.drain(c, 8)) == with_offsets(data[12:], 12)
    finally:
        c.close()

    # Every batch deleted: the log resumes at its old end offset, whichever the signal.
    for sig in (signal.SIGKILL, signal.SIGTERM):
        adm = ck_admin(rbroker)
        _, high = watermarks(rbroker, topic)
        assert ck_delete(adm, topic, OFFSET_END) == high
        rbroker.restart(sig)
        assert watermarks(rbroker, topic) == (high, high), sig
        more = recs(f"after-{sig.name}", 2, now_ms())
        assert ck_produce_batches(rbroker, topic, [more]) == [[high, high + 1]]
        assert watermarks(rbroker, topic) == (high, high + 2)
        assert got_with_offsets(ck_from_beginning(rbroker, topic, 2)) == \
            with_offsets(more, high)
    assert watermarks(rbroker, topic) == (22, 24)


# --------------------------------------------------------------------------- kafka-python
def kp_admin(b):
    from kafka import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=10000)


def test_kafka_python_delete_records(rbroker, topic):
    from kafka import TopicPartition as KTP
    from kafka.errors import OffsetOutOfRangeError, UnknownTopicOrPartitionError

    create(ck_admin(rbroker), topic)
    data = twenty(topic, rbroker)
    tp = KTP(topic, 0)
    kadm = kp_admin(rbroker)
    try:
        res = kadm.delete_records({tp: 5})
        assert set(res) == {tp}
        assert (res[tp]["partition_index"], res[tp]["low_watermark"], res[tp]["error_code"]) \
            == (0, 5, 0)
        with pytest.raises(OffsetOutOfRangeError):
            kadm.delete_records({tp: 21})
        # Straight to the broker (no client-side metadata check): its own answers.
        with pytest.raises(OffsetOutOfRangeError):
            kadm.delete_records({tp: -2}, partition_leader_id=1)
        with pytest.raises(UnknownTopicOrPartitionError):
            kadm.delete_records({KTP(topic + "-missing", 0): 1}, partition_leader_id=1)
        with pytest.raises(UnknownTopicOrPartitionError):
            kadm.delete_records({KTP(topic, 3): 1}, partition_leader_id=1)
        with pytest.raises(UnknownTopicOrPartitionError):
            kadm.delete_records({KTP(topic + "-missing", 0): 1})
        assert kadm.delete_records({tp: 2})[tp]["low_watermark"] == 5
    finally:
        kadm.close()

    c = KP.consumer(rbroker.bootstrap)
    try:
        assert c.beginning_offsets([tp]) == {tp: 5}
        assert c.end_offsets([tp]) == {tp: 20}
        c.assign([tp])
        c.seek_to_beginning(tp)
        assert got_with_offsets(KP.drain(c, 15)) == with_offsets(data[5:], 5)
    finally:
        c.close()

    kadm = kp_admin(rbroker)
    try:
        assert kadm.delete_records({tp: -1})[tp]["low_watermark"] == 20
    finally:
        kadm.close()
    c = KP.consumer(rbroker.bootstrap)
    try:
        assert c.beginning_offsets([tp]) == {tp: 20}
        assert c.end_offsets([tp]) == {tp: 20}
    finally:
        c.close()


def kp_wait_position_change(c, tp, start):
    deadline = time.monotonic() + WAIT_S
    while c.position(tp) == start and time.monotonic() < deadline:
        assert c.poll(timeout_ms=100) == {}
    return c.position(tp)


def test_kafka_python_consumer_below_log_start_resets(rbroker, topic):
    from kafka import TopicPartition as KTP
    from kafka.errors import OffsetOutOfRangeError

    create(ck_admin(rbroker), topic)
    data = twenty(topic, rbroker)
    kadm = kp_admin(rbroker)
    try:
        assert kadm.delete_records({KTP(topic, 0): 5})[KTP(topic, 0)]["low_watermark"] == 5
    finally:
        kadm.close()
    tp = KTP(topic, 0)

    c = KP.consumer(rbroker.bootstrap, auto_offset_reset="earliest")
    try:
        c.assign([tp])
        c.seek(tp, 2)
        assert got_with_offsets(KP.drain(c, 15)) == with_offsets(data[5:], 5)
    finally:
        c.close()

    c = KP.consumer(rbroker.bootstrap, auto_offset_reset="latest")
    try:
        c.assign([tp])
        c.seek(tp, 2)
        assert kp_wait_position_change(c, tp, 2) == 20
        more = recs("late", 2, now_ms())
        assert ck_produce_batches(rbroker, topic, [more]) == [[20, 21]]
        assert got_with_offsets(KP.drain(c, 2)) == with_offsets(more, 20)
    finally:
        c.close()

    c = KP.consumer(rbroker.bootstrap, auto_offset_reset="none")
    try:
        c.assign([tp])
        c.seek(tp, 4)
        deadline = time.monotonic() + WAIT_S
        with pytest.raises(OffsetOutOfRangeError):
            while time.monotonic() < deadline:
                assert c.poll(timeout_ms=100) == {}
    finally:
        c.close()


# --------------------------------------------------------------------------- aiokafka
def test_aiokafka_delete_records_and_resets(rbroker, topic):
    from aiokafka import TopicPartition as ATP
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.records_to_delete import RecordsToDelete
    from aiokafka.errors import OffsetOutOfRangeError

    create(ck_admin(rbroker), topic)
    data = twenty(topic, rbroker)
    tp = ATP(topic, 0)

    async def run():
        a = AIOKafkaAdminClient(bootstrap_servers=rbroker.bootstrap, request_timeout_ms=10000)
        await a.start()
        try:
            assert await a.delete_records({tp: RecordsToDelete(7)}) == {tp: 7}
            with pytest.raises(OffsetOutOfRangeError):
                await a.delete_records({tp: RecordsToDelete(25)})
            assert await a.delete_records({tp: RecordsToDelete(1)}) == {tp: 7}
        finally:
            await a.close()

        c = AK.consumer(rbroker.bootstrap)
        await c.start()
        try:
            assert await c.beginning_offsets([tp]) == {tp: 7}
            assert await c.end_offsets([tp]) == {tp: 20}
            c.assign([tp])
            await c.seek_to_beginning(tp)
            assert got_with_offsets(await AK.adrain(c, 13)) == with_offsets(data[7:], 7)
            # Below the log start with earliest: back to 7.
            c.seek(tp, 3)
            assert got_with_offsets(await AK.adrain(c, 13)) == with_offsets(data[7:], 7)
        finally:
            await c.stop()

        c = AK.consumer(rbroker.bootstrap, auto_offset_reset="latest")
        await c.start()
        try:
            c.assign([tp])
            c.seek(tp, 3)
            deadline = time.monotonic() + WAIT_S
            while await c.position(tp) == 3 and time.monotonic() < deadline:
                assert await c.getmany(timeout_ms=100) == {}
            assert await c.position(tp) == 20
        finally:
            await c.stop()

        c = AK.consumer(rbroker.bootstrap, auto_offset_reset="none")
        await c.start()
        try:
            c.assign([tp])
            c.seek(tp, 6)
            deadline = time.monotonic() + WAIT_S
            with pytest.raises(OffsetOutOfRangeError):
                while time.monotonic() < deadline:
                    assert await c.getmany(timeout_ms=100) == {}
        finally:
            await c.stop()

    asyncio.run(run())


# --------------------------------------------------------------------------- retention
def test_retention_ms_deletes_expired_batches_from_the_front(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic, {"retention.ms": "60000"})
    now, old = now_ms(), now_ms() - HOUR_MS
    a = recs("old", 5, old)                                        # 0-4: expired
    mixed = [Rec(b"m0", b"old record, recent batch", (), old),    # 5-6: newest is recent
             Rec(b"m1", b"recent", (("h", b"v"),), now)]
    c = recs("new", 3, now)                                        # 7-9
    d = recs("old-after", 2, old + 10)                             # 10-11: expired, but behind
    assert ck_produce_batches(rbroker, topic, [a, mixed, c, d]) == \
        [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9], [10, 11]]

    assert wait_low(rbroker, topic, 5) == (5, 12)
    retention_passes(rbroker, adm)
    assert watermarks(rbroker, topic) == (5, 12)
    want = with_offsets(mixed + c + d, 5)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 7)) == want
    # The expired offsets are out of range now.
    co = CK.consumer(rbroker.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        co.assign([TopicPartition(topic, 0, 1)])
        assert got_with_offsets(CK.drain(co, 7)) == want
    finally:
        co.close()

    rbroker.restart(signal.SIGKILL)
    assert watermarks(rbroker, topic) == (5, 12)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 7)) == want


def test_retention_ms_can_empty_the_log(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic, {"retention.ms": "60000"})
    old = now_ms() - 2 * HOUR_MS
    assert ck_produce_batches(rbroker, topic, [recs("x", 2, old), recs("y", 3, old)]) == \
        [[0, 1], [2, 3, 4]]
    assert wait_low(rbroker, topic, 5) == (5, 5)
    rbroker.restart(signal.SIGKILL)
    assert watermarks(rbroker, topic) == (5, 5)
    fresh = recs("fresh", 2, now_ms())
    assert ck_produce_batches(rbroker, topic, [fresh]) == [[5, 6]]
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 2)) == with_offsets(fresh, 5)


def test_retention_bytes_trims_whole_batches(rbroker, topic):
    """kafka-python producer: one record per batch, each ~1.07 KB. With retention.bytes
    2700 Kafka keeps deleting the oldest batch while the rest is still >= 2700 bytes:
    three batches (~3.2 KB) stay."""
    from kafka import TopicPartition as KTP

    adm = ck_admin(rbroker)
    create(adm, topic, {"retention.bytes": "2700"})
    rnd = random.Random(7)
    data = [Rec(f"k{i}".encode(), rnd.randbytes(1000), (), now_ms() + i) for i in range(7)]
    p = KP.producer(rbroker.bootstrap, linger_ms=0)
    try:
        def send(r):
            return p.send(topic, key=r.key, value=r.value, timestamp_ms=r.timestamp,
                          partition=0).get(timeout=10).offset
        assert [send(r) for r in data[:5]] == [0, 1, 2, 3, 4]
        assert wait_low(rbroker, topic, 2) == (2, 5)
        retention_passes(rbroker, adm)
        assert watermarks(rbroker, topic) == (2, 5)
        c = KP.consumer(rbroker.bootstrap)
        try:
            tp = KTP(topic, 0)
            assert c.beginning_offsets([tp]) == {tp: 2}
            c.assign([tp])
            c.seek_to_beginning(tp)
            assert got_with_offsets(KP.drain(c, 3)) == with_offsets(data[2:5], 2)
        finally:
            c.close()
        # Two more batches: two more go.
        assert [send(r) for r in data[5:]] == [5, 6]
        assert wait_low(rbroker, topic, 4) == (4, 7)
    finally:
        p.close(timeout=5)
    retention_passes(rbroker, adm)
    assert watermarks(rbroker, topic) == (4, 7)
    assert got_with_offsets(KP.consume(rbroker.bootstrap, topic, 0, 4, 3)) == \
        with_offsets(data[4:], 4)


def ak_send_batches(b, topic, batches):
    """aiokafka: each list of Recs sent as one explicit batch; returns the base offsets."""
    async def run():
        p = AK.producer(b.bootstrap)
        await p.start()
        try:
            bases = []
            for rs in batches:
                batch = p.create_batch()
                for r in rs:
                    assert batch.append(key=r.key, value=r.value, timestamp=r.timestamp,
                                        headers=list(r.headers)) is not None
                fut = await p.send_batch(batch, topic, partition=0)
                bases.append((await asyncio.wait_for(fut, 15)).offset)
            return bases
        finally:
            await p.stop()
    return asyncio.run(run())


def test_compact_topics_are_not_trimmed_by_time(rbroker, topic):
    adm = ck_admin(rbroker)
    compact, both = topic + "-c", topic + "-cd"
    create(adm, compact, {"cleanup.policy": "compact", "retention.ms": "60000"})
    create(adm, both, {"cleanup.policy": "compact,delete", "retention.ms": "60000"})
    old = recs("old", 5, now_ms() - HOUR_MS, keyed=True)
    new = recs("new", 5, now_ms(), keyed=True)
    for t in (compact, both):
        assert ak_send_batches(rbroker, t, [old, new]) == [0, 5]
    assert wait_low(rbroker, both, 5) == (5, 10)
    retention_passes(rbroker, adm)
    assert watermarks(rbroker, compact) == (0, 10)
    assert got_with_offsets(AK.consume(rbroker.bootstrap, compact, 0, 0, 10)) == \
        with_offsets(old + new, 0)
    assert got_with_offsets(AK.consume(rbroker.bootstrap, both, 0, 5, 5)) == \
        with_offsets(new, 5)
    # Switching the policy to delete lets retention trim it, without a restart.
    r = ConfigResource(ConfigResource.Type.TOPIC, compact, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)])
    adm.incremental_alter_configs([r])[r].result(timeout=15)
    assert wait_low(rbroker, compact, 5) == (5, 10)


def test_retention_ms_set_later_takes_effect_without_restart(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic)  # Kafka's default retention.ms: 7 days
    old, new = recs("old", 4, now_ms() - HOUR_MS), recs("new", 3, now_ms())
    assert ck_produce_batches(rbroker, topic, [old, new]) == [[0, 1, 2, 3], [4, 5, 6]]
    retention_passes(rbroker, adm)
    assert watermarks(rbroker, topic) == (0, 7)

    r = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)])
    adm.incremental_alter_configs([r])[r].result(timeout=15)
    assert wait_low(rbroker, topic, 4) == (4, 7)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 3)) == with_offsets(new, 4)


def test_kafka_python_alter_configs_sets_retention_ms(rbroker, topic):
    """The legacy AlterConfigs path (kafka-python) in force at once."""
    from kafka.admin import ConfigResource as KRes, ConfigResourceType as KT

    adm = ck_admin(rbroker)
    create(adm, topic)
    old, new = recs("old", 3, now_ms() - HOUR_MS), recs("new", 2, now_ms())
    assert ck_produce_batches(rbroker, topic, [old, new]) == [[0, 1, 2], [3, 4]]
    kadm = kp_admin(rbroker)
    try:
        res = kadm.alter_configs([KRes(KT.TOPIC, topic, configs={"retention.ms": "600000"})],
                                 incremental=False)
        assert res == {"topic": {topic: "OK"}}
    finally:
        kadm.close()
    assert wait_low(rbroker, topic, 3) == (3, 5)
    assert got_with_offsets(ck_from_beginning(rbroker, topic, 2)) == with_offsets(new, 3)


def set_cluster_default_retention_ms(b, value):
    """IncrementalAlterConfigs on the cluster-default broker resource "" with kafka-python's
    own request encoding (its public alter_configs insists on an integer broker id, and
    confluent-kafka refuses an empty resource name)."""
    from kafka.admin import ConfigResource as KRes, ConfigResourceType as KT, KafkaAdminClient
    kadm = kp_admin(b)
    try:
        req = KafkaAdminClient._alter_configs_request(
            [KRes(KT.BROKER, "", {"log.retention.ms": value})], incremental=True)
        resp = kadm._manager.run(kadm._manager.send, req)
        assert [(r.error_code, r.resource_type, r.resource_name) for r in resp.responses] == \
            [(0, KT.BROKER, "")]
    finally:
        kadm.close()


def test_cluster_default_log_retention_ms_applies_to_topics_without_their_own(rbroker, topic):
    adm = ck_admin(rbroker)
    plain, own = topic + "-plain", topic + "-own"
    create(adm, plain)
    create(adm, own, {"retention.ms": "604800000"})
    old, new = recs("old", 3, now_ms() - HOUR_MS), recs("new", 2, now_ms())
    for t in (plain, own):
        assert ck_produce_batches(rbroker, t, [old, new]) == [[0, 1, 2], [3, 4]]
    set_cluster_default_retention_ms(rbroker, "60000")
    assert wait_low(rbroker, plain, 3) == (3, 5)
    retention_passes(rbroker, adm)
    assert watermarks(rbroker, own) == (0, 5)
    assert got_with_offsets(ck_from_beginning(rbroker, plain, 2)) == with_offsets(new, 3)
    assert got_with_offsets(ck_from_beginning(rbroker, own, 5)) == with_offsets(old + new, 0)


def test_broker_log_retention_ms_applies_to_topics_without_their_own(rbroker, topic):
    """The same through this broker's own resource "1" (confluent-kafka)."""
    adm = ck_admin(rbroker)
    plain, own = topic + "-plain", topic + "-own"
    create(adm, plain)
    create(adm, own, {"retention.ms": "604800000"})
    old, new = recs("old", 3, now_ms() - HOUR_MS), recs("new", 2, now_ms())
    for t in (plain, own):
        assert ck_produce_batches(rbroker, t, [old, new]) == [[0, 1, 2], [3, 4]]
    r = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)])
    adm.incremental_alter_configs([r])[r].result(timeout=15)
    assert wait_low(rbroker, plain, 3) == (3, 5)
    retention_passes(rbroker, adm)
    assert watermarks(rbroker, own) == (0, 5)
    assert got_with_offsets(ck_from_beginning(rbroker, plain, 2)) == with_offsets(new, 3)


# --------------------------------------------------------------------------- vs Kafka
def test_delete_records_on_compact_topic_is_a_policy_violation(rbroker, topic):
    adm = ck_admin(rbroker)
    create(adm, topic, {"cleanup.policy": "compact"})
    assert ak_send_batches(rbroker, topic, [recs("c", 4, now_ms(), keyed=True)]) == [0]
    code = None
    try:
        ck_delete(adm, topic, 2)
    except KafkaException as e:
        code = e.args[0].code()
    assert watermarks(rbroker, topic) == (0, 4)
    assert code == KafkaError.POLICY_VIOLATION
