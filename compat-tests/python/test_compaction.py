"""Log compaction seen through real clients (issue 6).

Keyed updates produced by one client family to a `cleanup.policy=compact` topic are read back
from the beginning by another after the cleaner ran: exactly the latest value of each key,
byte-exact, at the offset it was written at (offsets never change), with tombstones still
there within `delete.retention.ms` and gone after it; keyless records are refused; the
compacted log survives a SIGKILL restart. The broker runs its cleaner every 100 ms.
"""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

CLEANER = ("--log-cleaner-backoff-ms", "100")


def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap})


def create(b, topic, **configs):
    cfg = {"cleanup.policy": "compact", **configs}
    a = admin(b)  # the client must outlive its future
    a.create_topics([NewTopic(topic, 1, 1, config=cfg)])[topic].result(15)


def produce_confluent(b, topic, records, codec="none"):
    """records: (key, value) pairs; returns their offsets."""
    p = Producer({"bootstrap.servers": b.bootstrap, "compression.type": codec, "linger.ms": 5})
    offsets = {}

    def done(err, msg, i):
        assert err is None, err
        offsets[i] = msg.offset()

    for i, (k, v) in enumerate(records):
        p.produce(topic, key=k, value=v, partition=0, on_delivery=lambda e, m, i=i: done(e, m, i))
    assert p.flush(15) == 0
    return [offsets[i] for i in range(len(records))]


def produce_kafka_python(b, topic, records):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=b.bootstrap, compression_type="gzip", linger_ms=5)
    futs = [p.send(topic, key=k, value=v, partition=0) for k, v in records]
    offsets = [f.get(timeout=15).offset for f in futs]
    p.close()
    return offsets


def read_all(b, topic):
    """(offset, key, value) of every record from the beginning, with confluent-kafka."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"r-{topic}-{time.time()}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.monotonic() + 15
    while time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            raise KafkaException(m.error())
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def read_kafka_python(b, topic):
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=2000)
    tp = __import__("kafka").TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = [(r.offset, r.key, r.value) for r in c]
    c.close()
    return out


def wait_compacted(b, topic, want_len, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        got = read_all(b, topic)
        if len(got) == want_len or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def latest_per_key(records, offsets):
    last = {}
    for (k, v), o in zip(records, offsets):
        last[k] = (o, k, v)
    return sorted(last.values())


@pytest.mark.parametrize("producer", ["confluent-gzip", "confluent-zstd", "kafka-python"])
def test_latest_value_per_key_survives_at_its_offset(broker_factory, topic, producer):
    b = broker_factory(*CLEANER)
    create(b, topic)
    records = []
    for rnd in range(5):
        for k in range(20):
            value = None if (rnd == 4 and k % 5 == 0) else b"%d-%d-" % (k, rnd) + bytes(range(256))
            records.append((b"key-%02d" % k, value))
    if producer == "kafka-python":
        offsets = produce_kafka_python(b, topic, records)
    else:
        offsets = produce_confluent(b, topic, records, producer.split("-")[1])
    assert offsets == list(range(len(records)))
    want = latest_per_key(records, offsets)
    got = wait_compacted(b, topic, len(want))
    assert got == want, "exactly the latest record per key, at its original offset"
    assert read_kafka_python(b, topic) == want, "another client family reads the same"
    tombstones = [r for r in got if r[2] is None]
    assert len(tombstones) == 4, "tombstones stay within delete.retention.ms"

    # Shorten delete.retention.ms: the tombstones go, the live keys stay.
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("delete.retention.ms", "500", incremental_operation=AlterConfigOpType.SET)])
    a = admin(b)
    a.incremental_alter_configs([res])[res].result(15)
    live = [r for r in want if r[2] is not None]
    assert wait_compacted(b, topic, len(live)) == live


def test_keyless_records_are_refused(broker_factory, topic):
    b = broker_factory(*CLEANER)
    create(b, topic)
    p = Producer({"bootstrap.servers": b.bootstrap, "retries": 0})
    errs = []
    p.produce(topic, value=b"no key", partition=0, on_delivery=lambda e, m: errs.append(e))
    p.flush(15)
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.INVALID_RECORD, errs
    assert produce_confluent(b, topic, [(b"k", b"keyed")]) == [0], "nothing was stored"


def test_compacted_log_survives_sigkill(broker_factory, topic):
    b = broker_factory(*CLEANER)
    create(b, topic)
    records = [(b"k%d" % (i % 3), b"v%d" % i) for i in range(30)]
    offsets = produce_confluent(b, topic, records, "lz4")
    want = latest_per_key(records, offsets)
    assert wait_compacted(b, topic, len(want)) == want
    b.restart(sig=__import__("signal").SIGKILL)
    assert read_all(b, topic) == want
    assert produce_confluent(b, topic, [(b"k0", b"after")]) == [30], "the end offset is kept"
