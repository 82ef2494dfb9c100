"""Cross-client compatibility against Klamm.

Proves that records produced by one client (confluent-kafka, kafka-python,
aiokafka) are read back byte-exact (key, value, headers, timestamp, offset) by
each other client, for every codec; concurrent producers on one partition get
unique contiguous offsets; big batches of small records and fetch limits smaller
than one batch (KIP-74) work for every consumer; that data acknowledged just before a
SIGKILL is readable by another client after restart; and that the broker's
--num-partitions and --auto-create-topics-enable flags are honoured as seen
through the clients' metadata.
"""
import asyncio
import itertools
import threading

import pytest
from aiokafka import TopicPartition as AioTP
from confluent_kafka import KafkaError, TopicPartition as CkTP
from kafka import TopicPartition as KpTP
from kafka.errors import KafkaTimeoutError

from kclients import CLIENTS, CODECS, Rec, assert_same, check_offsets, now_ms, sample_records

PAIRS = [(p, c) for p, c in itertools.permutations(CLIENTS, 2)]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer,consumer", PAIRS)
def test_produced_by_one_read_by_other(broker, topic, producer, consumer, codec):
    recs = sample_records(seed=41, n_small=8, null_header_value=(producer == "confluent"))
    produced = CLIENTS[producer].produce(broker.bootstrap, topic, recs, codec=codec)
    check_offsets("all", produced, 0)
    got = CLIENTS[consumer].consume(broker.bootstrap, topic, 0, 0, len(recs))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))


@pytest.mark.parametrize("producer,consumer", [("confluent", "aiokafka"),
                                               ("kafka-python", "confluent"),
                                               ("aiokafka", "kafka-python")])
def test_sigkill_after_ack_read_by_other(broker, topic, producer, consumer):
    recs = sample_records(seed=42, n_small=10)
    check_offsets("all", CLIENTS[producer].produce(broker.bootstrap, topic, recs, codec="gzip"), 0)
    broker.kill()
    broker.start()
    assert_same(CLIENTS[consumer].consume(broker.bootstrap, topic, 0, 0, len(recs)), recs)


def test_num_partitions_flag_applies_to_auto_created_topics(broker_factory, topic):
    from kafka import KafkaAdminClient
    b = broker_factory("--num-partitions", "3")
    recs = [Rec(b"k", f"v{i}".encode(), (), now_ms()) for i in range(3)]
    for p in range(3):  # explicit partitions of an auto-created topic
        check_offsets("all", CLIENTS["kafka-python"].produce(b.bootstrap, topic, recs[p:p + 1],
                                                             partition=p), p)
    adm = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=10000)
    try:
        [t] = adm.describe_topics([topic])
        assert sorted(p["partition_index"] for p in t["partitions"]) == [0, 1, 2]
    finally:
        adm.close()
    for p in range(3):
        assert_same(CLIENTS["confluent"].consume(b.bootstrap, topic, p, 0, 1), recs[p:p + 1])


def test_auto_create_disabled(broker_factory, topic):
    b = broker_factory("--auto-create-topics-enable", "false")
    ck = CLIENTS["confluent"].producer(b.bootstrap)
    t = ck.list_topics(topic, timeout=10).topics[topic]
    assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, t.error

    kp = CLIENTS["kafka-python"].producer(b.bootstrap, max_block_ms=2000)
    try:
        with pytest.raises(KafkaTimeoutError):
            kp.send(topic, b"value").get(timeout=5)
    finally:
        kp.close(timeout=2)
    assert topic not in ck.list_topics(timeout=10).topics

    # Explicit creation still works, and then producing does.
    from confluent_kafka.admin import AdminClient, NewTopic
    adm = AdminClient({"bootstrap.servers": b.bootstrap})
    adm.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)
    recs = sample_records(seed=43, n_small=2)
    check_offsets("all", CLIENTS["kafka-python"].produce(b.bootstrap, topic, recs), 0)
    assert_same(CLIENTS["aiokafka"].consume(b.bootstrap, topic, 0, 0, len(recs)), recs)


def test_concurrent_producers_one_partition(broker, topic):
    """Three clients producing at once: unique contiguous offsets, each stream in order."""
    streams = {name: [Rec(name.encode(), f"{name}-{i}".encode(), (("seq", str(i).encode()),),
                          now_ms() - 10_000 + i) for i in range(150)] for name in CLIENTS}
    results, errors = {}, []

    def run(name):
        try:  # small slices so the three clients' batches interleave
            results[name] = [po for i in range(0, 150, 10) for po in
                             CLIENTS[name].produce(broker.bootstrap, topic, streams[name][i:i + 10],
                                                   codec="snappy")]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((name, e))

    threads = [threading.Thread(target=run, args=(n,)) for n in CLIENTS]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors, errors
    all_offsets = sorted(o for r in results.values() for _, o in r)
    assert all_offsets == list(range(450))
    got = CLIENTS["kafka-python"].consume(broker.bootstrap, topic, 0, 0, 450)
    assert [r.offset for r in got] == list(range(450))
    for name, recs in streams.items():
        mine = [r for r in got if r.key == name.encode()]
        assert_same(mine, recs)
        assert [r.offset for r in mine] == [o for _, o in results[name]]


def test_many_small_records_in_big_batches(broker, topic):
    recs = [Rec(None if i % 7 == 0 else str(i).encode(), (b"x" * (i % 50)) + str(i).encode(),
                (), now_ms() - 50_000 + i) for i in range(3000)]
    produced = CLIENTS["confluent"].produce(broker.bootstrap, topic, recs, codec="lz4")
    check_offsets("all", produced, 0)
    for name in ("kafka-python", "aiokafka"):
        got = CLIENTS[name].consume(broker.bootstrap, topic, 0, 1234, len(recs) - 1234)
        assert_same(got, recs[1234:])
        assert got[0].offset == 1234


@pytest.mark.parametrize("consumer", list(CLIENTS))
def test_fetch_limit_smaller_than_batch_still_progresses(broker, topic, consumer):
    """KIP-74: the first batch is returned even when larger than the fetch limits."""
    big = [Rec(b"big", bytes([i]) * 200_000, (), now_ms()) for i in range(3)]
    CLIENTS["kafka-python"].produce(broker.bootstrap, topic, big)
    limits = {
        "confluent": {"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024,
                      "message.max.bytes": 1000},
        "kafka-python": {"fetch_max_bytes": 1024, "max_partition_fetch_bytes": 1024},
        "aiokafka": {"fetch_max_bytes": 1024, "max_partition_fetch_bytes": 1024},
    }[consumer]
    cls = CLIENTS[consumer]
    if consumer == "aiokafka":
        async def go():
            c = cls.consumer(broker.bootstrap, **limits)
            await c.start()
            try:
                c.assign([AioTP(topic, 0)])
                return await cls.adrain(c, 3)
            finally:
                await c.stop()
        got = asyncio.run(go())
    elif consumer == "kafka-python":
        c = cls.consumer(broker.bootstrap, **limits)
        try:
            c.assign([KpTP(topic, 0)])
            got = cls.drain(c, 3)
        finally:
            c.close()
    else:
        c = cls.consumer(broker.bootstrap, **limits)
        try:
            c.assign([CkTP(topic, 0, 0)])
            got = cls.drain(c, 3)
        finally:
            c.close()
    assert_same(got, big)
