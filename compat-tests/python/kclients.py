"""Uniform produce/consume adapters over confluent-kafka, kafka-python and aiokafka.

Every adapter speaks the client's own public API; records are normalised into
`Rec` so results from different clients compare byte-exact with `==`.
Consumers never join a group: manual assignment + explicit offsets only.
`produce`/`consume` take `conf=`: extra client settings in the client's own spelling
(e.g. security settings: {"security.protocol": "SSL", ...} for confluent-kafka,
{"security_protocol": "SSL", ...} for kafka-python and aiokafka).
"""
import asyncio
import os
import random
import time
from dataclasses import dataclass, field

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CONSUME_TIMEOUT = 15.0
EXTRA_POLL = 0.3  # after the expected count, poll this long to catch extra/duplicate records


@dataclass(frozen=True)
class Rec:
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    timestamp: int | None = None
    partition: int | None = field(default=None, compare=False)
    offset: int | None = field(default=None, compare=False)

    def short(self):
        def s(b):
            return None if b is None else (b[:24] + (b"..." if len(b) > 24 else b""))
        return f"Rec(off={self.offset}, key={s(self.key)}, value={s(self.value)}, " \
               f"hdrs={len(self.headers)}, ts={self.timestamp})"


def now_ms():
    return int(time.time() * 1000)


def sample_records(seed=1, n_small=20, ts_base=None, null_header_value=False):
    """Keys, null keys, null values, empty bytes, binary, duplicate header keys, big values."""
    rnd = random.Random(seed)
    ts = now_ms() - 60_000 if ts_base is None else ts_base
    recs = [
        Rec(b"key-0", b"value-0", (("h", b"1"), ("h", b"2"), ("bin", bytes(range(256))))),
        Rec(None, b"value with null key"),
        Rec(b"tombstone", None),
        Rec(b"", b""),
        Rec(rnd.randbytes(64), rnd.randbytes(4096),
            (("empty", b""), ("utf8-kl\u00e4mm-\u043a\u043b\u044e\u0447", "w\u00e9rt".encode()))),
        Rec(b"big-compressible", (b"klamm compat " * 8000) + rnd.randbytes(16)),
        Rec(b"big-random", rnd.randbytes(100_000)),
    ]
    if null_header_value:
        recs.append(Rec(b"null-header", b"v", (("n", None), ("n", b"x"))))
    for i in range(n_small):
        hdrs = tuple((f"h{j}", rnd.randbytes(rnd.randint(0, 8))) for j in range(i % 3))
        recs.append(Rec(f"k{i}".encode() if i % 4 else None,
                        rnd.randbytes(rnd.randint(0, 200)), hdrs))
    return [Rec(r.key, r.value, r.headers, ts + i) for i, r in enumerate(recs)]


def strip(recs):
    """Drop partition/offset so lists compare on content only (they are compare=False anyway)."""
    return [Rec(r.key, r.value, tuple(r.headers), r.timestamp) for r in recs]


def assert_same(got, want):
    """Byte-exact comparison with a readable first-difference message."""
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"record #{i} differs:\n got  {g.short()}\n want {w.short()}\n" \
                       f" got  {g!r:.600}\n want {w!r:.600}"
    assert len(got) == len(want), f"got {len(got)} records, want {len(want)}: " \
                                  f"extra={[r.short() for r in got[len(want):]][:5]}"


# --------------------------------------------------------------------------- confluent-kafka
def with_debug(conf):
    """KLAMM_RDKAFKA_DEBUG=protocol,broker turns on librdkafka debug logs (shown on failure)."""
    if os.environ.get("KLAMM_RDKAFKA_DEBUG"):
        conf = dict(conf, debug=os.environ["KLAMM_RDKAFKA_DEBUG"])
    return conf


class Confluent:
    name = "confluent"

    @staticmethod
    def producer(bootstrap, **conf):
        from confluent_kafka import Producer
        base = {"bootstrap.servers": bootstrap, "linger.ms": 20,
                "message.timeout.ms": 15000, "socket.timeout.ms": 10000}
        base.update(conf)
        return Producer(with_debug(base))

    @staticmethod
    def consumer(bootstrap, **conf):
        from confluent_kafka import Consumer
        base = {"bootstrap.servers": bootstrap, "group.id": "klamm-compat-nogroup",
                "enable.auto.commit": False, "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest", "fetch.wait.max.ms": 200}
        base.update(conf)
        return Consumer(with_debug(base))

    @classmethod
    def produce(cls, bootstrap, topic, recs, codec="none", acks="all", partition=None,
                conf=None):
        p = cls.producer(bootstrap, **{"compression.type": codec, "acks": str(acks)},
                         **(conf or {}))
        results = [None] * len(recs)
        errors = []

        def cb(i):
            def on_delivery(err, msg):
                if err is not None:
                    errors.append((i, err))
                else:
                    results[i] = (msg.partition(), msg.offset())
            return on_delivery

        for i, r in enumerate(recs):
            kw = {"key": r.key, "value": r.value, "on_delivery": cb(i)}
            if r.headers:
                kw["headers"] = list(r.headers)
            if r.timestamp is not None:
                kw["timestamp"] = r.timestamp
            if partition is not None:
                kw["partition"] = partition
            p.produce(topic, **kw)
            p.poll(0)
        left = p.flush(20)
        assert left == 0, f"{left} messages not delivered"
        assert not errors, f"delivery errors: {errors[:5]}"
        return results

    @classmethod
    def consume(cls, bootstrap, topic, partition, offset, count, timeout=CONSUME_TIMEOUT,
                conf=None):
        from confluent_kafka import TopicPartition
        c = cls.consumer(bootstrap, **(conf or {}))
        try:
            c.assign([TopicPartition(topic, partition, offset)])
            return cls.drain(c, count, timeout)
        finally:
            c.close()

    @staticmethod
    def to_rec(m):
        ts_type, ts = m.timestamp()
        return Rec(m.key(), m.value(), tuple(m.headers() or ()), ts,
                   m.partition(), m.offset())

    @classmethod
    def drain(cls, c, count, timeout=CONSUME_TIMEOUT):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=count - len(out), timeout=0.2):
                assert m.error() is None, f"consume error: {m.error()}"
                out.append(cls.to_rec(m))
        extra_deadline = time.monotonic() + EXTRA_POLL
        while time.monotonic() < extra_deadline:
            for m in c.consume(num_messages=100, timeout=0.1):
                assert m.error() is None, f"consume error: {m.error()}"
                out.append(cls.to_rec(m))
        return out


# --------------------------------------------------------------------------- kafka-python
class KafkaPython:
    name = "kafka-python"

    @staticmethod
    def producer(bootstrap, **conf):
        from kafka import KafkaProducer
        # Idempotence (kafka-python 3 default) needs InitProducerId; tested separately.
        base = dict(bootstrap_servers=bootstrap, linger_ms=20, enable_idempotence=False,
                    request_timeout_ms=10000, delivery_timeout_ms=15000)
        base.update(conf)
        return KafkaProducer(**base)

    @staticmethod
    def consumer(bootstrap, **conf):
        from kafka import KafkaConsumer
        base = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                    auto_offset_reset="earliest", fetch_max_wait_ms=200,
                    request_timeout_ms=10000)
        base.update(conf)
        return KafkaConsumer(**base)

    @classmethod
    def produce(cls, bootstrap, topic, recs, codec="none", acks="all", partition=None,
                conf=None):
        p = cls.producer(bootstrap, compression_type=None if codec == "none" else codec,
                         acks=acks, **(conf or {}))
        try:
            futs = [p.send(topic, value=r.value, key=r.key, headers=list(r.headers),
                           timestamp_ms=r.timestamp, partition=partition) for r in recs]
            p.flush(timeout=20)
            return [(md.partition, md.offset) for md in (f.get(timeout=10) for f in futs)]
        finally:
            p.close(timeout=5)

    @classmethod
    def consume(cls, bootstrap, topic, partition, offset, count, timeout=CONSUME_TIMEOUT,
                conf=None):
        from kafka import TopicPartition
        c = cls.consumer(bootstrap, **(conf or {}))
        try:
            tp = TopicPartition(topic, partition)
            c.assign([tp])
            c.seek(tp, offset)
            return cls.drain(c, count, timeout)
        finally:
            c.close()

    @staticmethod
    def to_rec(m):
        return Rec(m.key, m.value, tuple(m.headers or ()), m.timestamp, m.partition, m.offset)

    @classmethod
    def drain(cls, c, count, timeout=CONSUME_TIMEOUT):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=200).values():
                out.extend(cls.to_rec(m) for m in batch)
        extra_deadline = time.monotonic() + EXTRA_POLL
        while time.monotonic() < extra_deadline:
            for batch in c.poll(timeout_ms=100).values():
                out.extend(cls.to_rec(m) for m in batch)
        return out


# --------------------------------------------------------------------------- aiokafka
class AioKafka:
    name = "aiokafka"

    @staticmethod
    def producer(bootstrap, **conf):
        from aiokafka import AIOKafkaProducer
        base = dict(bootstrap_servers=bootstrap, linger_ms=20, request_timeout_ms=10000)
        base.update(conf)
        return AIOKafkaProducer(**base)

    @staticmethod
    def consumer(bootstrap, **conf):
        from aiokafka import AIOKafkaConsumer
        base = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                    auto_offset_reset="earliest", fetch_max_wait_ms=200,
                    request_timeout_ms=10000)
        base.update(conf)
        return AIOKafkaConsumer(**base)

    @classmethod
    def produce(cls, bootstrap, topic, recs, codec="none", acks="all", partition=None,
                conf=None):
        return asyncio.run(cls.aproduce(bootstrap, topic, recs, codec, acks, partition, conf))

    @classmethod
    async def aproduce(cls, bootstrap, topic, recs, codec="none", acks="all", partition=None,
                       conf=None):
        p = cls.producer(bootstrap, compression_type=None if codec == "none" else codec,
                         acks=acks, **(conf or {}))
        await p.start()
        try:
            futs = [await p.send(topic, value=r.value, key=r.key, headers=list(r.headers),
                                 timestamp_ms=r.timestamp, partition=partition) for r in recs]
            mds = await asyncio.wait_for(asyncio.gather(*futs), 20)
            # aiokafka resolves acks=0 sends to None: no partition/offset known.
            return [(None, -1) if md is None else (md.partition, md.offset) for md in mds]
        finally:
            await p.stop()

    @classmethod
    def consume(cls, bootstrap, topic, partition, offset, count, timeout=CONSUME_TIMEOUT,
                conf=None):
        return asyncio.run(cls.aconsume(bootstrap, topic, partition, offset, count, timeout,
                                        conf))

    @classmethod
    async def aconsume(cls, bootstrap, topic, partition, offset, count, timeout=CONSUME_TIMEOUT,
                       conf=None):
        from aiokafka import TopicPartition
        c = cls.consumer(bootstrap, **(conf or {}))
        await c.start()
        try:
            tp = TopicPartition(topic, partition)
            c.assign([tp])
            c.seek(tp, offset)
            return await cls.adrain(c, count, timeout)
        finally:
            await c.stop()

    @staticmethod
    def to_rec(m):
        return Rec(m.key, m.value, tuple(m.headers or ()), m.timestamp, m.partition, m.offset)

    @classmethod
    async def adrain(cls, c, count, timeout=CONSUME_TIMEOUT):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for batch in (await c.getmany(timeout_ms=200)).values():
                out.extend(cls.to_rec(m) for m in batch)
        extra_deadline = time.monotonic() + EXTRA_POLL
        while time.monotonic() < extra_deadline:
            for batch in (await c.getmany(timeout_ms=100)).values():
                out.extend(cls.to_rec(m) for m in batch)
        return out


CLIENTS = {c.name: c for c in (Confluent, KafkaPython, AioKafka)}


def check_offsets(acks, produced, partition, start=0):
    """Delivery reports must give consecutive offsets from `start` (unknown for acks=0)."""
    if str(acks) == "0":
        return
    assert [p for p, _ in produced] == [partition] * len(produced), produced
    assert [o for _, o in produced] == list(range(start, start + len(produced))), produced
