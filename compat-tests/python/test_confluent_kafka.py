"""confluent-kafka (librdkafka) against Klamm.

Proves, byte-exact: produce/consume of keys, null keys/values, duplicate, binary
and null-valued headers and explicit timestamps with every codec and
acks=0/1/all; explicit partitions on an AdminClient-created 3-partition topic;
auto topic creation (produce and metadata); BEGINNING/END/offset/timestamp start
positions and the ListOffsets admin API; long-poll wake-up; delete topic /
create partitions / describe cluster; data surviving SIGTERM and SIGKILL.
Consumers set a group.id (librdkafka requires one) but only use assign().
Set KLAMM_RDKAFKA_DEBUG=protocol,broker for librdkafka wire logs on failure.
"""
import json
import os
import random
import threading
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic, OffsetSpec

from kclients import (CODECS, Confluent as CK, Rec, assert_same, check_offsets, now_ms,
                      sample_records)


def admin(broker):
    conf = {"bootstrap.servers": broker.bootstrap}
    if os.environ.get("KLAMM_RDKAFKA_DEBUG"):
        conf["debug"] = os.environ["KLAMM_RDKAFKA_DEBUG"]
    return AdminClient(conf)


def wait_all(futures):
    return {k: f.result(timeout=15) for k, f in futures.items()}


def error_code(excinfo):
    return excinfo.value.args[0].code()


def partitions_of(client, topic):
    t = client.list_topics(topic, timeout=10).topics[topic]
    assert t.error is None, t.error
    return sorted((p.id, p.leader) for p in t.partitions.values())


def topic_exists(adm, topic):
    return topic in adm.list_topics(timeout=10).topics


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip_codec(broker, topic, codec):
    recs = sample_records(seed=21, null_header_value=True)
    check_offsets("all", CK.produce(broker.bootstrap, topic, recs, codec=codec), 0)
    got = CK.consume(broker.bootstrap, topic, 0, 0, len(recs))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, topic, acks):
    recs = sample_records(seed=22, n_small=10)
    check_offsets(acks, CK.produce(broker.bootstrap, topic, recs, acks=acks), 0)
    assert_same(CK.consume(broker.bootstrap, topic, 0, 0, len(recs)), recs)


def test_three_partitions_explicit(broker, topic):
    adm = admin(broker)
    wait_all(adm.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]))
    assert partitions_of(adm, topic) == [(0, 1), (1, 1), (2, 1)]
    with pytest.raises(KafkaException) as ei:
        wait_all(adm.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]))
    assert error_code(ei) == KafkaError.TOPIC_ALREADY_EXISTS
    per_part = {p: [Rec(f"p{p}-k{i}".encode(), f"p{p}-v{i}".encode(), (("p", bytes([p])),),
                        now_ms() - 1000 + i) for i in range(12)] for p in range(3)}
    for p, recs in per_part.items():
        check_offsets("all", CK.produce(broker.bootstrap, topic, recs, codec="zstd",
                                        partition=p), p)
    for p, recs in per_part.items():
        got = CK.consume(broker.bootstrap, topic, p, 0, len(recs))
        assert_same(got, recs)
        assert {r.partition for r in got} == {p}


def test_auto_create_on_produce(broker, topic):
    recs = sample_records(seed=23, n_small=3)
    check_offsets("all", CK.produce(broker.bootstrap, topic, recs), 0)
    assert_same(CK.consume(broker.bootstrap, topic, 0, 0, len(recs)), recs)
    assert partitions_of(admin(broker), topic) == [(0, 1)]


def test_auto_create_on_metadata(broker, topic):
    # librdkafka producers send Metadata with allow_auto_topic_creation=true
    # (allow.auto.create.topics defaults to true for producers).
    p = CK.producer(broker.bootstrap)
    deadline = time.monotonic() + 10
    while True:
        t = p.list_topics(topic, timeout=10).topics[topic]
        if t.error is None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert t.error is None, t.error
    assert sorted(t.partitions) == [0]
    assert topic_exists(admin(broker), topic)


def fetch_stats_consumer(broker, **conf):
    """A consumer whose librdkafka statistics expose per-partition fetch state."""
    stats = {}
    c = CK.consumer(broker.bootstrap, **{"statistics.interval.ms": 100,
                                         "stats_cb": lambda s: stats.update(json.loads(s))},
                    **conf)
    return c, stats


def wait_fetching(c, stats, topic, partition, timeout=10):
    """Wait until librdkafka resolved the start offset and is fetching; return it.

    (Consumer.position() only moves once a message was consumed.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not c.consume(num_messages=1, timeout=0.1)
        p = stats.get("topics", {}).get(topic, {}).get("partitions", {}).get(str(partition))
        if p and p["fetch_state"] == "active" and p["next_offset"] >= 0:
            return p["next_offset"]
    raise AssertionError(f"partition never reached fetch_state=active: {stats.get('topics')}")


def test_start_beginning_end_offset(broker, topic):
    recs = [Rec(f"k{i}".encode(), f"v{i}".encode() * (i + 1), (), now_ms() - 5000 + i)
            for i in range(10)]
    CK.produce(broker.bootstrap, topic, recs, codec="gzip")

    c, stats = fetch_stats_consumer(broker)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 10)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        assert_same(CK.drain(c, 10), recs)

        c.assign([TopicPartition(topic, 0, 7)])  # middle of a compressed batch
        got = CK.drain(c, 3)
        assert_same(got, recs[7:])
        assert [r.offset for r in got] == [7, 8, 9]

        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        assert wait_fetching(c, stats, topic, 0) == 10
        more = [Rec(b"late", f"late-{i}".encode(), (("x", b"y"),), now_ms()) for i in range(3)]
        check_offsets("all", CK.produce(broker.bootstrap, topic, more), 0, start=10)
        got = CK.drain(c, 3)
        assert_same(got, more)
        assert [r.offset for r in got] == [10, 11, 12]
    finally:
        c.close()


def test_out_of_range_offset(broker, topic):
    recs = [Rec(b"k", f"v{i}".encode(), (), now_ms() - 100 + i) for i in range(5)]
    CK.produce(broker.bootstrap, topic, recs)
    c = CK.consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    try:  # OFFSET_OUT_OF_RANGE from the broker makes librdkafka reset to earliest
        c.assign([TopicPartition(topic, 0, 100)])
        assert_same(CK.drain(c, 5), recs)
    finally:
        c.close()
    c = CK.consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 100)])
        m = c.poll(10)
        assert m is not None and m.error() is not None, m
        assert m.error().code() == KafkaError._AUTO_OFFSET_RESET, m.error()
    finally:
        c.close()


def test_offsets_for_times_and_list_offsets(broker, topic):
    base = now_ms() - 100_000
    recs = [Rec(b"k", f"v{i}".encode(), (), base + i * 1000) for i in range(10)]
    CK.produce(broker.bootstrap, topic, recs, codec="lz4")
    c = CK.consumer(broker.bootstrap)
    try:
        def lookup(ts):
            [r] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert r.error is None, r.error
            return r.offset
        assert lookup(base + 3500) == 4
        assert lookup(base + 5000) == 5
        assert lookup(base - 10) == 0
        assert lookup(base + 60_000) == -1
        c.assign([TopicPartition(topic, 0, lookup(base + 7001))])
        assert_same(CK.drain(c, 2), recs[8:])
    finally:
        c.close()

    tp = TopicPartition(topic, 0)
    adm = admin(broker)
    for spec, want in [(OffsetSpec.earliest(), 0), (OffsetSpec.latest(), 10),
                       (OffsetSpec.for_timestamp(base + 2500), 3)]:
        [info] = wait_all(adm.list_offsets({tp: spec})).values()
        assert info.offset == want, (spec, info)


def test_long_poll_wakeup(broker, topic):
    CK.produce(broker.bootstrap, topic, [Rec(b"k", b"first")])
    c, stats = fetch_stats_consumer(broker, **{"fetch.wait.max.ms": 5000})
    c.assign([TopicPartition(topic, 0, OFFSET_END)])
    assert wait_fetching(c, stats, topic, 0) == 1
    late = Rec(b"late-key", b"late-value", (("h", b"\x00\x01"),), now_ms())
    acked_at = []

    def produce_later():
        time.sleep(1.0)
        CK.produce(broker.bootstrap, topic, [late])
        acked_at.append(time.monotonic())

    t = threading.Thread(target=produce_later)
    t.start()
    try:
        m = c.poll(10)
        received_at = time.monotonic()
    finally:
        t.join(15)
        c.close()
    assert m is not None, "no message within the poll timeout"
    assert m.error() is None, m.error()
    got = CK.to_rec(m)
    assert_same([got], [late])
    assert got.offset == 1
    assert received_at - acked_at[0] < 3.0, received_at - acked_at[0]


def test_admin_delete_topic_create_partitions_describe_cluster(broker, topic):
    adm = admin(broker)
    cluster = adm.describe_cluster(request_timeout=10).result(timeout=15)
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]
    assert cluster.controller.id == 1
    assert cluster.cluster_id

    wait_all(adm.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]))
    first = [Rec(k, v, (), now_ms()) for k, v in [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]]
    check_offsets("all", CK.produce(broker.bootstrap, topic, first, partition=0), 0)

    wait_all(adm.create_partitions([NewPartitions(topic, 3)]))
    assert partitions_of(adm, topic) == [(0, 1), (1, 1), (2, 1)]
    with pytest.raises(KafkaException) as ei:
        wait_all(adm.create_partitions([NewPartitions(topic, 2)]))
    assert error_code(ei) == KafkaError.INVALID_PARTITIONS
    new = [Rec(b"p2", b"in new partition", (("h", b"v"),), now_ms())]
    check_offsets("all", CK.produce(broker.bootstrap, topic, new, partition=2), 2)
    assert_same(CK.consume(broker.bootstrap, topic, 2, 0, 1), new)
    assert_same(CK.consume(broker.bootstrap, topic, 0, 0, 3), first)

    wait_all(adm.delete_topics([topic]))
    assert not topic_exists(adm, topic)
    with pytest.raises(KafkaException) as ei:
        wait_all(adm.delete_topics([topic]))
    assert error_code(ei) == KafkaError.UNKNOWN_TOPIC_OR_PART

    wait_all(adm.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]))
    assert partitions_of(adm, topic) == [(0, 1)]
    c = CK.consumer(broker.bootstrap)
    try:  # a re-created topic starts empty
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
    finally:
        c.close()


def test_restart_sigterm(broker, topic):
    recs = sample_records(seed=24, null_header_value=True)
    CK.produce(broker.bootstrap, topic, recs[:15], codec="snappy")
    CK.produce(broker.bootstrap, topic, recs[15:], codec="none")
    broker.restart()
    assert_same(CK.consume(broker.bootstrap, topic, 0, 0, len(recs)), recs)
    more = [Rec(b"after", b"restart", (), now_ms())]
    check_offsets("all", CK.produce(broker.bootstrap, topic, more), 0, start=len(recs))


def test_sigkill_mid_stream_keeps_acked(broker, topic):
    rnd = random.Random(25)
    p = CK.producer(broker.bootstrap, **{"acks": "all", "linger.ms": 0,
                                         "message.timeout.ms": 3000, "retries": 0})
    acked, sent, failed = {}, [], []
    killer = None

    def on_delivery(rec):
        def cb(err, msg):
            if err is not None:
                failed.append(err)
            else:
                acked[msg.offset()] = rec
        return cb

    for i in range(5000):
        if i == 40:
            killer = threading.Timer(rnd.uniform(0.0, 0.05), broker.kill)
            killer.start()
        rec = Rec(f"key-{i}".encode(), rnd.randbytes(rnd.randint(1, 20_000)),
                  (("i", str(i).encode()),), now_ms())
        sent.append(rec)
        p.produce(topic, key=rec.key, value=rec.value, headers=list(rec.headers),
                  timestamp=rec.timestamp, on_delivery=on_delivery(rec))
        if p.flush(5) or failed:
            break
    p.purge()
    p.flush(1)
    del p
    if killer:
        killer.join()
    print(f"acked before SIGKILL: {len(acked)}, sent: {len(sent)}")
    assert len(acked) >= 40, "broker died before the kill"
    assert sorted(acked) == list(range(len(acked))), "acked offsets not contiguous"
    broker.start()
    got = CK.consume(broker.bootstrap, topic, 0, 0, len(acked))
    assert len(got) in (len(acked), len(acked) + 1), len(got)
    assert_same(got[:len(acked)], [acked[o] for o in range(len(acked))])
    assert_same(got[len(acked):], sent[len(acked):len(got)])
    more = [Rec(b"after", b"crash", (), now_ms())]
    check_offsets("all", CK.produce(broker.bootstrap, topic, more), 0, start=len(got))
