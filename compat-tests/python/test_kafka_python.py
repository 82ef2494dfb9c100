"""kafka-python against Klamm.

Proves, byte-exact: produce/consume of keys, null keys/values, duplicate and
binary headers and explicit timestamps with every codec and acks=0/1/all;
explicit partitions on an admin-created 3-partition topic; auto topic creation
(produce and metadata); earliest/latest/offset/timestamp start positions;
long-poll wake-up; delete topic / create partitions via KafkaAdminClient; data
surviving SIGTERM and SIGKILL restarts; the default (idempotent) producer.
"""
import threading
import time

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.errors import (InvalidPartitionsError, OffsetOutOfRangeError,
                          TopicAlreadyExistsError, UnknownTopicOrPartitionError)

from kclients import (CODECS, KafkaPython as KP, Rec, assert_same, check_offsets, now_ms,
                      sample_records)


def admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)


def partitions_of(adm, topic):
    [t] = adm.describe_topics([topic])
    assert t["error_code"] == 0, t
    return sorted((p["partition_index"], p["leader_id"]) for p in t["partitions"])


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip_codec(broker, topic, codec):
    recs = sample_records(seed=11)
    produced = KP.produce(broker.bootstrap, topic, recs, codec=codec)
    check_offsets("all", produced, 0)
    got = KP.consume(broker.bootstrap, topic, 0, 0, len(recs))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(broker, topic, acks):
    recs = sample_records(seed=12, n_small=10)
    produced = KP.produce(broker.bootstrap, topic, recs, acks=acks)
    check_offsets(acks, produced, 0)
    assert_same(KP.consume(broker.bootstrap, topic, 0, 0, len(recs)), recs)


def test_three_partitions_explicit(broker, topic):
    adm = admin(broker)
    try:
        adm.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
        assert partitions_of(adm, topic) == [(0, 1), (1, 1), (2, 1)]
        with pytest.raises(TopicAlreadyExistsError):
            adm.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    finally:
        adm.close()
    per_part = {p: [Rec(f"p{p}-k{i}".encode(), f"p{p}-v{i}".encode(), (), now_ms() - 1000 + i)
                    for i in range(12)] for p in range(3)}
    for p, recs in per_part.items():
        check_offsets("all", KP.produce(broker.bootstrap, topic, recs, codec="lz4", partition=p), p)
    for p, recs in per_part.items():
        got = KP.consume(broker.bootstrap, topic, p, 0, len(recs))
        assert_same(got, recs)
        assert {r.partition for r in got} == {p}


def test_auto_create_on_produce(broker, topic):
    recs = sample_records(seed=13, n_small=3)
    check_offsets("all", KP.produce(broker.bootstrap, topic, recs), 0)
    assert_same(KP.consume(broker.bootstrap, topic, 0, 0, len(recs)), recs)
    adm = admin(broker)
    try:
        assert topic in adm.list_topics()
        assert partitions_of(adm, topic) == [(0, 1)]
    finally:
        adm.close()


def test_auto_create_on_metadata(broker, topic):
    p = KP.producer(broker.bootstrap, max_block_ms=10000)
    try:
        assert p.partitions_for(topic) == {0}
    finally:
        p.close(timeout=5)
    adm = admin(broker)
    try:
        assert partitions_of(adm, topic) == [(0, 1)]
    finally:
        adm.close()


def test_start_earliest_latest_offset(broker, topic):
    recs = [Rec(f"k{i}".encode(), f"v{i}".encode() * (i + 1), (), now_ms() - 5000 + i)
            for i in range(10)]
    KP.produce(broker.bootstrap, topic, recs, codec="gzip")  # one compressed batch
    tp = TopicPartition(topic, 0)

    c = KP.consumer(broker.bootstrap, auto_offset_reset="earliest")
    try:
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 10}
        c.assign([tp])
        assert_same(KP.drain(c, 10), recs)
    finally:
        c.close()

    c = KP.consumer(broker.bootstrap)
    try:  # specific offset in the middle of a compressed batch
        c.assign([tp])
        c.seek(tp, 7)
        got = KP.drain(c, 3)
        assert_same(got, recs[7:])
        assert [r.offset for r in got] == [7, 8, 9]
    finally:
        c.close()

    c = KP.consumer(broker.bootstrap, auto_offset_reset="latest")
    try:
        c.assign([tp])
        assert c.position(tp, timeout_ms=10000) == 10
        more = [Rec(b"late", f"late-{i}".encode(), (("x", b"y"),), now_ms()) for i in range(3)]
        check_offsets("all", KP.produce(broker.bootstrap, topic, more), 0, start=10)
        got = KP.drain(c, 3)
        assert_same(got, more)
        assert [r.offset for r in got] == [10, 11, 12]
    finally:
        c.close()


def test_out_of_range_offset(broker, topic):
    recs = [Rec(b"k", f"v{i}".encode(), (), now_ms() - 100 + i) for i in range(5)]
    KP.produce(broker.bootstrap, topic, recs)
    tp = TopicPartition(topic, 0)
    c = KP.consumer(broker.bootstrap, auto_offset_reset="earliest")
    try:  # OFFSET_OUT_OF_RANGE from the broker makes the client reset to earliest
        c.assign([tp])
        c.seek(tp, 100)
        assert_same(KP.drain(c, 5), recs)
    finally:
        c.close()
    c = KP.consumer(broker.bootstrap, auto_offset_reset="none")
    try:
        c.assign([tp])
        c.seek(tp, 100)
        with pytest.raises(OffsetOutOfRangeError):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert not c.poll(timeout_ms=200)
    finally:
        c.close()


def test_offsets_for_times(broker, topic):
    base = now_ms() - 100_000
    recs = [Rec(b"k", f"v{i}".encode(), (), base + i * 1000) for i in range(10)]
    KP.produce(broker.bootstrap, topic, recs, codec="snappy")
    tp = TopicPartition(topic, 0)
    c = KP.consumer(broker.bootstrap)
    try:
        r = c.offsets_for_times({tp: base + 3500})[tp]
        assert (r.offset, r.timestamp) == (4, base + 4000)
        r = c.offsets_for_times({tp: base + 5000})[tp]
        assert (r.offset, r.timestamp) == (5, base + 5000)
        r = c.offsets_for_times({tp: base - 10})[tp]
        assert (r.offset, r.timestamp) == (0, base)
        assert c.offsets_for_times({tp: base + 60_000})[tp] is None
        c.assign([tp])
        c.seek(tp, c.offsets_for_times({tp: base + 7001})[tp].offset)
        assert_same(KP.drain(c, 2), recs[8:])
    finally:
        c.close()


def test_long_poll_wakeup(broker, topic):
    KP.produce(broker.bootstrap, topic, [Rec(b"k", b"first")])
    tp = TopicPartition(topic, 0)
    c = KP.consumer(broker.bootstrap, fetch_max_wait_ms=5000, auto_offset_reset="latest")
    c.assign([tp])
    assert c.position(tp, timeout_ms=10000) == 1
    late = Rec(b"late-key", b"late-value", (("h", b"\x00\x01"),), now_ms())
    acked_at = []

    def produce_later():
        time.sleep(1.0)
        KP.produce(broker.bootstrap, topic, [late])
        acked_at.append(time.monotonic())

    t = threading.Thread(target=produce_later)
    t.start()
    try:
        got = []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=10000).values():
                got.extend(KP.to_rec(m) for m in batch)
        received_at = time.monotonic()
    finally:
        t.join(15)
        c.close()
    assert_same(got, [late])
    assert got[0].offset == 1
    # The fetch waiting at the log end must be woken by the new data, not by fetch_max_wait.
    assert received_at - acked_at[0] < 3.0, received_at - acked_at[0]


def test_delete_topic_and_create_partitions(broker, topic):
    adm = admin(broker)
    try:
        adm.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
        assert partitions_of(adm, topic) == [(0, 1)]
        first = [Rec(k, v, (), now_ms()) for k, v in [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]]
        check_offsets("all", KP.produce(broker.bootstrap, topic, first, partition=0), 0)

        adm.create_partitions({topic: 3})
        assert partitions_of(adm, topic) == [(0, 1), (1, 1), (2, 1)]
        with pytest.raises(InvalidPartitionsError):
            adm.create_partitions({topic: 2})
        new = [Rec(b"p2", b"in new partition", (("h", b"v"),), now_ms())]
        check_offsets("all", KP.produce(broker.bootstrap, topic, new, partition=2), 2)
        assert_same(KP.consume(broker.bootstrap, topic, 2, 0, 1), new)
        assert_same(KP.consume(broker.bootstrap, topic, 0, 0, 3), first)

        adm.delete_topics([topic])
        assert topic not in adm.list_topics()
        [t] = adm.describe_topics([topic])
        assert t["error_code"] == UnknownTopicOrPartitionError.errno, t
        with pytest.raises(UnknownTopicOrPartitionError):
            adm.delete_topics([topic])

        adm.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
        assert partitions_of(adm, topic) == [(0, 1)]
    finally:
        adm.close()
    c = KP.consumer(broker.bootstrap)
    try:  # a re-created topic starts empty
        tp = TopicPartition(topic, 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 0}
    finally:
        c.close()


def test_restart_sigterm(broker, topic):
    recs = sample_records(seed=14)
    KP.produce(broker.bootstrap, topic, recs[:15], codec="zstd")
    KP.produce(broker.bootstrap, topic, recs[15:], codec="none")
    broker.restart()
    assert_same(KP.consume(broker.bootstrap, topic, 0, 0, len(recs)), recs)
    more = [Rec(b"after", b"restart", (), now_ms())]
    check_offsets("all", KP.produce(broker.bootstrap, topic, more), 0, start=len(recs))


def test_sigkill_mid_stream_keeps_acked(broker, topic):
    import random
    rnd = random.Random(15)
    p = KP.producer(broker.bootstrap, acks="all", linger_ms=0, retries=0,
                    max_in_flight_requests_per_connection=1, request_timeout_ms=3000,
                    delivery_timeout_ms=4000, max_block_ms=3000)
    acked, sent = {}, []
    killer = None
    try:
        for i in range(5000):
            if i == 40:
                killer = threading.Timer(rnd.uniform(0.0, 0.05), broker.kill)
                killer.start()
            rec = Rec(f"key-{i}".encode(), rnd.randbytes(rnd.randint(1, 20_000)),
                      (("i", str(i).encode()),), now_ms())
            sent.append(rec)
            try:
                md = p.send(topic, key=rec.key, value=rec.value, headers=list(rec.headers),
                            timestamp_ms=rec.timestamp).get(timeout=5)
            except Exception:
                break
            acked[md.offset] = rec
    finally:
        p.close(timeout=2)
        if killer:
            killer.join()
    print(f"acked before SIGKILL: {len(acked)}, sent: {len(sent)}")
    assert len(acked) >= 40, "broker died before the kill"
    assert sorted(acked) == list(range(len(acked))), "acked offsets not contiguous"
    broker.start()
    got = KP.consume(broker.bootstrap, topic, 0, 0, len(acked))
    assert len(got) in (len(acked), len(acked) + 1), len(got)
    assert_same(got[:len(acked)], [acked[o] for o in range(len(acked))])
    assert_same(got[len(acked):], sent[len(acked):len(got)])  # only the in-flight one may follow
    more = [Rec(b"after", b"crash", (), now_ms())]
    check_offsets("all", KP.produce(broker.bootstrap, topic, more), 0, start=len(got))


def test_default_idempotent_producer(broker, topic):
    """kafka-python 3 enables idempotence by default (needs InitProducerId)."""
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, max_block_ms=10000,
                      request_timeout_ms=5000, delivery_timeout_ms=10000)
    try:
        recs = sample_records(seed=16, n_small=5)
        futs = [p.send(topic, key=r.key, value=r.value, headers=list(r.headers),
                       timestamp_ms=r.timestamp) for r in recs]
        p.flush(timeout=15)
        assert [f.get(timeout=1).offset for f in futs] == list(range(len(recs)))
    finally:
        p.close(timeout=5)
    assert_same(KP.consume(broker.bootstrap, topic, 0, 0, len(recs)), recs)
