"""Transactional producers and isolation-aware readers over confluent-kafka, kafka-python
and aiokafka, for the transaction tests (`test_transactions*.py`); holds no tests.

* `TXN[family](bootstrap, txn_id, timeout_ms)`: one transactional producer per client
  family behind one interface: `init()`, `begin()`, `send(topic, partition, rec)`,
  `flush()` (-> [(partition, offset)] of the sends since the last flush, in send order),
  `send_offsets(group, {(topic, partition): offset})`, `commit()`, `abort()`, `close()`.
  Every call is bounded (API_TIMEOUT); aiokafka runs on the adapter's own event loop.
* `Reader(family, bootstrap, [(topic, partition)], isolation)`: a consumer with manual
  assignment from the beginning of each partition (no group) that stays open, so a test
  can read, change something, and read on. `read_all(...)` opens, reads and closes one.
  Records come back as `Got(topic, partition, offset, Rec)`.
* Broker-side views through confluent's AdminClient: `end_offsets` (ListOffsets latest,
  READ_COMMITTED gives the last stable offset, READ_UNCOMMITTED the high watermark),
  `committed` (OffsetFetch without require_stable: pending transactional offsets are not
  shown), `wait_for` (bounded polling).
"""
import asyncio
import time
from typing import NamedTuple

from kclients import Rec, assert_same, with_debug

FAMILIES = ["confluent", "kafka-python", "aiokafka"]
API_TIMEOUT = 30.0      # seconds, every transactional API call
READ_TIMEOUT = 15.0     # seconds to wait for an expected record count
SETTLE = 0.6            # seconds polled after the expected count, to catch extra records
RC, RU = "read_committed", "read_uncommitted"


class Got(NamedTuple):
    topic: str
    partition: int
    offset: int
    rec: Rec


# =========================================================================== producers
class CkTxn:
    """confluent-kafka (librdkafka) transactional producer."""
    family = "confluent"

    def __init__(self, bootstrap, txn_id, timeout_ms=60000, **conf):
        from confluent_kafka import Producer
        self.bootstrap = bootstrap
        base = {"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                "transaction.timeout.ms": timeout_ms, "linger.ms": 5,
                # librdkafka: socket.timeout.ms <= transaction.timeout.ms + 100
                "socket.timeout.ms": min(10000, timeout_ms + 100)}
        base.update(conf)
        self.p = Producer(with_debug(base))
        self.slots = []

    def init(self):
        self.p.init_transactions(API_TIMEOUT)

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic, partition, rec):
        slot = {}

        def on_delivery(err, msg):
            if err is not None:
                slot["err"] = err
            else:
                slot["po"] = (msg.partition(), msg.offset())

        kw = {"key": rec.key, "value": rec.value, "partition": partition,
              "on_delivery": on_delivery}
        if rec.headers:
            kw["headers"] = list(rec.headers)
        if rec.timestamp is not None:
            kw["timestamp"] = rec.timestamp
        self.p.produce(topic, **kw)
        self.p.poll(0)
        self.slots.append(slot)

    def flush(self):
        left = self.p.flush(API_TIMEOUT)
        slots, self.slots = self.slots, []
        assert left == 0, f"{left} transactional messages not delivered"
        errors = [s["err"] for s in slots if "err" in s]
        assert not errors, f"delivery errors: {errors[:5]}"
        return [s["po"] for s in slots]

    def send_offsets(self, group, offsets):
        from confluent_kafka import Consumer, TopicPartition
        # The group metadata of a consumer that has not joined: generation -1, no member id
        # (a "simple" consumer committing for its group, accepted by Kafka for an empty group).
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            md = c.consumer_group_metadata()
        finally:
            c.close()
        self.p.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in offsets.items()], md, API_TIMEOUT)

    def commit(self):
        self.p.commit_transaction(API_TIMEOUT)

    def abort(self):
        self.p.abort_transaction(API_TIMEOUT)

    def close(self):
        self.p = None


class KpTxn:
    """kafka-python 3 transactional KafkaProducer."""
    family = "kafka-python"

    def __init__(self, bootstrap, txn_id, timeout_ms=60000, **conf):
        from kafka import KafkaProducer
        base = dict(bootstrap_servers=bootstrap, transactional_id=txn_id,
                    transaction_timeout_ms=timeout_ms, linger_ms=5, request_timeout_ms=10000,
                    max_block_ms=int(API_TIMEOUT * 1000))
        base.update(conf)
        self.p = KafkaProducer(**base)
        self.futs = []

    def init(self):
        self.p.init_transactions()

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic, partition, rec):
        self.futs.append(self.p.send(topic, value=rec.value, key=rec.key,
                                     headers=list(rec.headers), partition=partition,
                                     timestamp_ms=rec.timestamp))

    def flush(self):
        self.p.flush(timeout=API_TIMEOUT)
        futs, self.futs = self.futs, []
        mds = [f.get(timeout=API_TIMEOUT) for f in futs]
        return [(md.partition, md.offset) for md in mds]

    def send_offsets(self, group, offsets):
        from kafka import OffsetAndMetadata, TopicPartition
        self.p.send_offsets_to_transaction(
            {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()},
            group)

    def commit(self):
        self.p.commit_transaction()

    def abort(self):
        self.p.abort_transaction()

    def close(self):
        try:
            self.p.close(timeout=5)
        except Exception:  # noqa: BLE001 - a fenced producer may fail to close cleanly
            pass


class AioTxn:
    """aiokafka transactional AIOKafkaProducer, driven on its own event loop."""
    family = "aiokafka"

    def __init__(self, bootstrap, txn_id, timeout_ms=60000, **conf):
        self.loop = asyncio.new_event_loop()
        base = dict(bootstrap_servers=bootstrap, transactional_id=txn_id,
                    transaction_timeout_ms=timeout_ms, enable_idempotence=True, linger_ms=5,
                    request_timeout_ms=10000)
        base.update(conf)

        async def make():
            from aiokafka import AIOKafkaProducer
            return AIOKafkaProducer(**base)

        self.p = self.run(make())
        self.futs = []
        self.started = False

    def run(self, coro, timeout=API_TIMEOUT):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def init(self):
        # start() sends InitProducerId with the transactional id (= init_transactions).
        self.started = True
        self.run(self.p.start())

    def begin(self):
        self.run(self.p.begin_transaction())

    def send(self, topic, partition, rec):
        self.futs.append(self.run(self.p.send(topic, value=rec.value, key=rec.key,
                                              partition=partition, timestamp_ms=rec.timestamp,
                                              headers=list(rec.headers))))

    def flush(self):
        futs, self.futs = self.futs, []

        async def gather():
            return await asyncio.gather(*futs)

        return [(md.partition, md.offset) for md in self.run(gather())]

    def send_offsets(self, group, offsets):
        from aiokafka import TopicPartition
        self.run(self.p.send_offsets_to_transaction(
            {TopicPartition(t, p): o for (t, p), o in offsets.items()}, group))

    def commit(self):
        self.run(self.p.commit_transaction())

    def abort(self):
        self.run(self.p.abort_transaction())

    def close(self):
        try:
            if self.started:
                self.run(self.p.stop(), timeout=10)
        except Exception:  # noqa: BLE001 - a fenced producer's sender task ended with an error
            pass
        finally:
            self.loop.close()


TXN = {c.family: c for c in (CkTxn, KpTxn, AioTxn)}


def fenced_error(family, exc):
    """None when `exc` is the family's "this producer was fenced" error, else why not.

    librdkafka folds INVALID_PRODUCER_EPOCH and PRODUCER_FENCED into its fatal _FENCED;
    kafka-python raises ProducerFencedError for either; aiokafka (EndTxn v0) raises
    ProducerFenced for INVALID_PRODUCER_EPOCH, which is what Kafka answers to EndTxn < v2."""
    if family == "confluent":
        from confluent_kafka import KafkaError, KafkaException
        if not isinstance(exc, KafkaException):
            return f"not a KafkaException: {exc!r}"
        err = exc.args[0]
        if err.code() != KafkaError._FENCED:
            return f"error {err.name()} ({err}), want _FENCED"
        if not err.fatal():
            return f"_FENCED error is not fatal: {err}"
        return None
    if family == "kafka-python":
        from kafka.errors import ProducerFencedError
        return None if isinstance(exc, ProducerFencedError) else \
            f"not ProducerFencedError: {type(exc).__name__}: {exc}"
    from aiokafka.errors import ProducerFenced
    return None if isinstance(exc, ProducerFenced) else \
        f"not ProducerFenced: {type(exc).__name__}: {exc}"


# =========================================================================== readers
class Reader:
    """A consumer of `tps` from their beginning, or from `start` ({(topic, partition):
    offset}), with manual assignment and no group, reading at `isolation`. Stays open
    between `read` calls."""

    def __init__(self, family, bootstrap, tps, isolation, start=None):
        self.family, self.tps, self.isolation = family, list(tps), isolation
        start = start or {}
        self.loop = None
        if family == "confluent":
            from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
            self.c = Consumer(with_debug({
                "bootstrap.servers": bootstrap, "group.id": "klamm-compat-nogroup",
                "enable.auto.commit": False, "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
                "isolation.level": isolation}))
            self.c.assign([TopicPartition(t, p, start.get((t, p), OFFSET_BEGINNING))
                           for t, p in self.tps])
        elif family == "kafka-python":
            from kafka import KafkaConsumer, TopicPartition
            self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                   enable_auto_commit=False, auto_offset_reset="earliest",
                                   fetch_max_wait_ms=100, request_timeout_ms=10000,
                                   isolation_level=isolation)
            tps = [TopicPartition(t, p) for t, p in self.tps]
            self.c.assign(tps)
            self.c.seek_to_beginning(*tps)
            for tp in tps:
                if (tp.topic, tp.partition) in start:
                    self.c.seek(tp, start[(tp.topic, tp.partition)])
        else:
            from aiokafka import AIOKafkaConsumer, TopicPartition
            self.loop = asyncio.new_event_loop()

            async def make():
                c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                     enable_auto_commit=False, auto_offset_reset="earliest",
                                     fetch_max_wait_ms=100, request_timeout_ms=10000,
                                     isolation_level=isolation)
                await c.start()
                tps = [TopicPartition(t, p) for t, p in self.tps]
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                for tp in tps:
                    if (tp.topic, tp.partition) in start:
                        c.seek(tp, start[(tp.topic, tp.partition)])
                return c

            self.c = self.loop.run_until_complete(asyncio.wait_for(make(), API_TIMEOUT))

    def _poll(self):
        """One short poll: [Got]."""
        if self.family == "confluent":
            out = []
            for m in self.c.consume(num_messages=500, timeout=0.1):
                assert m.error() is None, f"consume error: {m.error()}"
                out.append(Got(m.topic(), m.partition(), m.offset(),
                               Rec(m.key(), m.value(), tuple(m.headers() or ()),
                                   m.timestamp()[1])))
            return out
        if self.family == "kafka-python":
            batches = self.c.poll(timeout_ms=100)
        else:
            batches = self.loop.run_until_complete(self.c.getmany(timeout_ms=100))
        return [Got(m.topic, m.partition, m.offset,
                    Rec(m.key, m.value, tuple(m.headers or ()), m.timestamp))
                for batch in batches.values() for m in batch]

    def read(self, count, timeout=READ_TIMEOUT, settle=SETTLE):
        """Polls until `count` records arrived (or `timeout`), then `settle` seconds more to
        catch anything extra; returns the records got by this call."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            out.extend(self._poll())
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            out.extend(self._poll())
        return out

    def close(self):
        if self.family == "aiokafka":
            try:
                self.loop.run_until_complete(asyncio.wait_for(self.c.stop(), 10))
            finally:
                self.loop.close()
        else:
            self.c.close()


def read_all(family, bootstrap, tps, isolation, count, timeout=READ_TIMEOUT, settle=SETTLE,
             start=None):
    r = Reader(family, bootstrap, tps, isolation, start)
    try:
        return r.read(count, timeout, settle)
    finally:
        r.close()


def by_tp(got):
    """{(topic, partition): [Got]} in the order read."""
    out = {}
    for g in got:
        out.setdefault((g.topic, g.partition), []).append(g)
    return out


def assert_read(got, want, what):
    """`got` ([Got]) holds exactly `want` ({(topic, partition): [(offset, Rec)]}), byte-exact
    and in offset order per partition; partitions absent from `want` must be empty."""
    have = by_tp(got)
    for tp in sorted(set(have) | set(want)):
        g = have.get(tp, [])
        w = want.get(tp, [])
        try:
            assert_same([x.rec for x in g], [r for _, r in w])
        except AssertionError as e:
            raise AssertionError(f"{what}: {tp[0]}[{tp[1]}]: {e}") from None
        assert [x.offset for x in g] == [o for o, _ in w], \
            f"{what}: {tp[0]}[{tp[1]}]: offsets {[x.offset for x in g]}, want {[o for o, _ in w]}"


# =========================================================================== broker views
def admin(bootstrap):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topics(bootstrap, partitions):
    """partitions: {topic: number of partitions}."""
    from confluent_kafka.admin import NewTopic
    adm = admin(bootstrap)  # kept referenced until the futures are resolved
    futs = adm.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in partitions.items()])
    for f in futs.values():
        f.result(timeout=15)


def end_offsets(bootstrap, tps, isolation):
    """ListOffsets latest at `isolation`: {(topic, partition): offset}."""
    from confluent_kafka import IsolationLevel, TopicPartition
    from confluent_kafka.admin import OffsetSpec
    level = IsolationLevel.READ_COMMITTED if isolation == RC else IsolationLevel.READ_UNCOMMITTED
    adm = admin(bootstrap)
    futs = adm.list_offsets({TopicPartition(t, p): OffsetSpec.latest() for t, p in tps},
                            isolation_level=level, request_timeout=10)
    return {(tp.topic, tp.partition): f.result(timeout=15).offset for tp, f in futs.items()}


def committed(bootstrap, group, tps):
    """The group's committed offsets (OffsetFetch, require_stable false): {(topic,
    partition): offset or None}."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in tps])
    adm = admin(bootstrap)
    res = adm.list_consumer_group_offsets([req], request_timeout=10)[group].result(timeout=15)
    out = {}
    for tp in res.topic_partitions:
        assert tp.error is None, f"committed offset of {tp.topic}[{tp.partition}]: {tp.error}"
        out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
    return out


def wait_for(fn, want, timeout=15.0, what="value"):
    """Polls `fn()` until it returns `want` (bounded); returns the last value. Kafka writes
    transaction markers after EndTxn has been answered, so what a commit or abort makes
    visible is polled for, not read once."""
    deadline = time.monotonic() + timeout
    v = fn()
    while v != want and time.monotonic() < deadline:
        time.sleep(0.05)
        v = fn()
    assert v == want, f"{what}: {v}, want {want} (after {timeout}s)"
    return v


def plain_produce(bootstrap, topic, partition, recs):
    """Non-transactional confluent producer, acks=all: [(partition, offset)]."""
    from kclients import Confluent
    return Confluent.produce(bootstrap, topic, recs, partition=partition)


def recs(tag, n, seed=0, ts=None):
    """n records: keys (every third null), binary values, headers on odd ones."""
    import random
    rnd = random.Random(f"{tag}-{seed}")
    ts = int(time.time() * 1000) - 30_000 if ts is None else ts
    return [Rec(f"{tag}-k{i}".encode() if i % 3 else None,
                f"{tag}-{i}|".encode() + rnd.randbytes(rnd.randint(0, 120)),
                (("i", str(i).encode()), ("tag", tag.encode())) if i % 2 else (), ts + i)
            for i in range(n)]
