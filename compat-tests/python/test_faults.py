"""Testing your client's retry logic with Klamm's fault injection (`--http`, `/faults`).

Each test starts a broker with the admin HTTP port, sets fault rules over HTTP (exactly as
a user's own test suite would: `POST /faults`, `GET /faults`, `DELETE /faults`), runs a
real client through them and asserts what reached the log, byte-exact and offset-exact.
What is shown, and what Kafka's clients do:

* Produce answered NOT_LEADER_OR_FOLLOWER 3 times (not written): every client refreshes
  its metadata and retries; the first record costs exactly 4 Produce requests, every
  record lands once, in order. A rule with a topic leaves other topics alone, and a rule
  with a count is gone once used up.
* Produce written but its answer lost (`drop_response`, the connection closes) 3 times in
  the middle of a 2,000-record stream: an idempotent producer retries with the same
  producer id and sequence numbers, the broker answers the duplicates with their first
  offsets, and the log holds every record once, contiguous, in send order per partition.
  A non-idempotent producer retries the same way but the broker cannot recognise the
  batch: Kafka's at-least-once delivery, so only "nothing lost" is asserted (duplicates
  are reported in the output).
* A consumer group whose coordinator is "loading" for 2 s (FindCoordinator answers
  COORDINATOR_LOAD_IN_PROGRESS) and whose first JoinGroup has its connection closed: the
  consumer keeps looking for the coordinator, rejoins, and consumes everything, no record
  before the coordinator is found and all of them within a bound.
* Fetch delayed 300 ms: consumers still read everything.
* OffsetCommit answered COORDINATOR_NOT_AVAILABLE once: every client looks the
  coordinator up again and resends the commit itself (2 OffsetCommit requests, the
  synchronous commit call returns normally). Answered REBALANCE_IN_PROGRESS once: every
  client raises it to the application (librdkafka: KafkaException REBALANCE_IN_PROGRESS,
  kafka-python and aiokafka: CommitFailedError) without resending; nothing is committed
  until the application, polling on, commits again.
* EndTxn answered CONCURRENT_TRANSACTIONS twice: the transactional producer retries the
  commit, which succeeds; read_committed consumers see the records once.
"""
import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition as CkTP

from conftest import free_port
from kclients import CLIENTS, assert_same, with_debug
from ktxn import FAMILIES, RC, RU, TXN, assert_read, committed, create_topics, read_all, recs

HTTP_TIMEOUT = 10.0
API_TIMEOUT = 30.0


# =========================================================================== fault control
class Faults:
    """The broker's /faults and /metrics endpoints, as a user's test suite would use them."""

    def __init__(self, http):
        self.base = f"http://{http}"

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def add(self, **rule):
        """POST /faults: the rule as the broker lists it (id, matched 0)."""
        status, text = self._call("POST", "/faults", rule)
        assert status == 201, f"POST /faults {rule}: {status} {text}"
        view = json.loads(text)
        assert view["matched"] == 0 and view["api"] == rule["api"], view
        assert view.get("remaining") == rule.get("count"), view
        return view

    def list(self):
        status, text = self._call("GET", "/faults")
        assert status == 200, f"GET /faults: {status} {text}"
        return json.loads(text)

    def get(self, rule_id):
        """The rule with this id as listed now, or None once it is used up or expired."""
        return next((r for r in self.list() if r["id"] == rule_id), None)

    def clear(self, rule_id=None):
        status, text = self._call("DELETE", "/faults" if rule_id is None else f"/faults/{rule_id}")
        assert status == 200, f"DELETE /faults: {status} {text}"
        return json.loads(text)["removed"]

    def metric(self, name, **labels):
        """Sum of a Prometheus counter/gauge over the series whose labels include `labels`."""
        req = urllib.request.Request(self.base + "/metrics")
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
            text = r.read().decode()
        total = 0.0
        want = [f'{k}="{v}"' for k, v in labels.items()]
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, _, value = line.rpartition(" ")
            head = series.split("{", 1)
            if head[0] != name:
                continue
            lbl = head[1] if len(head) > 1 else ""
            if all(w in lbl for w in want):
                total += float(value)
        return total


@pytest.fixture
def fbroker(broker_factory):
    """A broker with its admin HTTP port on; `fbroker.faults` controls the fault rules."""
    http = f"127.0.0.1:{free_port()}"
    b = broker_factory("--http", http)
    b.faults = Faults(http)
    assert b.faults.list() == []
    return b


def produce_requests(b):
    return b.faults.metric("klamm_requests_total", api="Produce")


# =========================================================================== producers
class Producer:
    """One producer of a client family: `send(topic, partition, rec)` does not wait,
    `wait()` waits for every send since the last wait and returns [(partition, offset)]
    in send order (asserting no delivery failed)."""

    def __init__(self, family, bootstrap, idempotent, **conf):
        self.family = family
        self.pending = []
        if family == "confluent":
            from confluent_kafka import Producer as CkProducer
            base = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                    "enable.idempotence": idempotent, "message.timeout.ms": 30000,
                    "socket.timeout.ms": 10000, "retry.backoff.ms": 50}
            if not idempotent:
                # Order across retries without idempotence needs one request in flight.
                base["max.in.flight.requests.per.connection"] = 1
            base.update(conf)
            self.p = CkProducer(with_debug(base))
        elif family == "kafka-python":
            from kafka import KafkaProducer
            base = dict(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                        enable_idempotence=idempotent, request_timeout_ms=10000,
                        delivery_timeout_ms=30000, retry_backoff_ms=50)
            if not idempotent:
                base["max_in_flight_requests_per_connection"] = 1
            base.update(conf)
            self.p = KafkaProducer(**base)
        else:
            from aiokafka import AIOKafkaProducer
            self.loop = asyncio.new_event_loop()
            base = dict(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                        enable_idempotence=idempotent, request_timeout_ms=10000,
                        retry_backoff_ms=50)
            base.update(conf)

            async def make():
                p = AIOKafkaProducer(**base)
                await p.start()
                return p

            self.p = self.run(make())

    def run(self, coro, timeout=API_TIMEOUT):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def send(self, topic, partition, rec):
        if self.family == "confluent":
            slot = {}

            def on_delivery(err, msg):
                if err is not None:
                    slot["err"] = err
                else:
                    slot["po"] = (msg.partition(), msg.offset())

            kw = {"key": rec.key, "value": rec.value, "partition": partition,
                  "timestamp": rec.timestamp, "on_delivery": on_delivery}
            if rec.headers:
                kw["headers"] = list(rec.headers)
            self.p.produce(topic, **kw)
            self.p.poll(0)
            self.pending.append(slot)
        elif self.family == "kafka-python":
            self.pending.append(self.p.send(topic, key=rec.key, value=rec.value,
                                            headers=list(rec.headers), partition=partition,
                                            timestamp_ms=rec.timestamp))
        else:
            self.pending.append(self.run(self.p.send(topic, key=rec.key, value=rec.value,
                                                     headers=list(rec.headers),
                                                     partition=partition,
                                                     timestamp_ms=rec.timestamp)))

    def wait(self):
        pending, self.pending = self.pending, []
        if self.family == "confluent":
            left = self.p.flush(API_TIMEOUT)
            assert left == 0, f"{left} messages not delivered"
            errors = [s["err"] for s in pending if "err" in s]
            assert not errors, f"delivery errors: {errors[:5]}"
            return [s["po"] for s in pending]
        if self.family == "kafka-python":
            self.p.flush(timeout=API_TIMEOUT)
            return [(md.partition, md.offset) for md in
                    (f.get(timeout=API_TIMEOUT) for f in pending)]

        async def gather():
            return await asyncio.gather(*pending)

        return [(md.partition, md.offset) for md in self.run(gather())]

    def close(self):
        if self.family == "confluent":
            self.p.flush(10)
        elif self.family == "kafka-python":
            self.p.close(timeout=10)
        else:
            try:
                self.run(self.p.stop(), timeout=10)
            finally:
                self.loop.close()


def read_partition(bootstrap, topic, partition, count, family="confluent"):
    return CLIENTS[family].consume(bootstrap, topic, partition, 0, count)


def at_offsets(got):
    """{offset: Rec} of records read (asserting no offset came twice)."""
    out = {}
    for r in got:
        assert r.offset not in out, f"offset {r.offset} read twice"
        out[r.offset] = r
    return out


# =========================================================================== produce retries
@pytest.mark.parametrize("family", FAMILIES)
def test_produce_retries_through_not_leader(fbroker, topic, family):
    bs, faults = fbroker.bootstrap, fbroker.faults
    other = topic + "-other"
    create_topics(bs, {topic: 1, other: 1})
    rule = faults.add(api="Produce", topic=topic, action="error",
                      error="NOT_LEADER_OR_FOLLOWER", count=3)
    data = recs("nl", 200)
    p = Producer(family, bs, idempotent=False)
    try:
        # A topic the rule does not name is not touched.
        p.send(other, 0, data[0])
        assert p.wait() == [(0, 0)]
        assert faults.get(rule["id"])["matched"] == 0

        # The first record alone: 3 refused Produce requests (nothing written), then the
        # retry that writes it at offset 0; the rule is then used up and gone.
        before = produce_requests(fbroker)
        p.send(topic, 0, data[0])
        assert p.wait() == [(0, 0)]
        assert produce_requests(fbroker) - before == 4, "3 refused Produce requests + 1 write"
        assert faults.get(rule["id"]) is None, faults.list()

        # The rest flows normally, contiguous after it.
        for r in data[1:]:
            p.send(topic, 0, r)
        assert p.wait() == [(0, o) for o in range(1, len(data))]
    finally:
        p.close()
    assert faults.list() == []
    for reader in FAMILIES:
        got = read_partition(bs, topic, 0, len(data), reader)
        assert_same(got, data)
        assert [r.offset for r in got] == list(range(len(data))), reader
    assert_same(read_partition(bs, other, 0, 1), data[:1])


# =========================================================================== lost acks
N_STREAM = 2000
STREAM_PARTITIONS = 3
RULE_AFTER = 600          # sends before the drop_response rule is set, mid-stream
SMALL_BATCHES = {          # many Produce requests, so the 3 drops land mid-stream
    "confluent": {"batch.num.messages": 25},
    "kafka-python": {"batch_size": 2048},
    "aiokafka": {"max_batch_size": 2048},
}


def stream_with_lost_acks(fbroker, topic, family, idempotent):
    """Sends N_STREAM records round-robin over the partitions; after RULE_AFTER sends the
    next 3 Produce requests are written but their answers dropped (connection closed).
    Returns (records sent per partition, delivery offsets per partition)."""
    bs, faults = fbroker.bootstrap, fbroker.faults
    create_topics(bs, {topic: STREAM_PARTITIONS})
    data = recs("drop", N_STREAM)
    sent = {p: [] for p in range(STREAM_PARTITIONS)}
    accepted = faults.metric("klamm_connections_accepted_total")
    prod = Producer(family, bs, idempotent=idempotent, **SMALL_BATCHES[family])
    try:
        rule = None
        for i, r in enumerate(data):
            if i == RULE_AFTER:
                rule = faults.add(api="Produce", topic=topic, action="drop_response", count=3)
            part = i % STREAM_PARTITIONS
            prod.send(topic, part, r)
            sent[part].append(r)
        delivered = prod.wait()
    finally:
        prod.close()
    # All three drops happened (a counted rule goes at its last match), and the producer
    # reconnected after each.
    assert faults.get(rule["id"]) is None, faults.list()
    assert faults.metric("klamm_connections_accepted_total") - accepted >= 3
    offsets = {p: [] for p in range(STREAM_PARTITIONS)}
    for i, (part, off) in enumerate(delivered):
        assert part == i % STREAM_PARTITIONS, (i, part)
        offsets[part].append(off)
    return sent, offsets


@pytest.mark.parametrize("family", FAMILIES)
def test_idempotent_producer_lost_acks_no_duplicates(fbroker, topic, family):
    """Issue 5: a connection cut mid-stream is retried without duplicates or gaps."""
    sent, offsets = stream_with_lost_acks(fbroker, topic, family, idempotent=True)
    for part in range(STREAM_PARTITIONS):
        n = len(sent[part])
        # Delivery reports: contiguous from 0, in send order (a retried batch answered as
        # a duplicate gets its first offsets back).
        assert offsets[part] == list(range(n)), f"partition {part}: delivery offsets"
        got = read_partition(fbroker.bootstrap, topic, part, n)
        # The log: exactly the records sent, once each, in send order, offsets contiguous.
        assert [r.offset for r in got] == list(range(n)), f"partition {part}: log offsets"
        assert len({r.value for r in got}) == n, f"partition {part}: duplicate values"
        assert_same(got, sent[part])
    end = {p: len(sent[p]) for p in range(STREAM_PARTITIONS)}
    assert sum(end.values()) == N_STREAM
    # Another client family agrees (the log end is exactly the records sent, no more).
    other = "kafka-python" if family != "kafka-python" else "aiokafka"
    for part in range(STREAM_PARTITIONS):
        assert_same(read_partition(fbroker.bootstrap, topic, part, end[part], other), sent[part])


@pytest.mark.parametrize("family", FAMILIES)
def test_non_idempotent_producer_lost_acks_nothing_lost(fbroker, topic, family):
    """Without idempotence a retried batch whose first write succeeded is written again:
    Kafka's at-least-once delivery. Only "nothing lost" holds, plus: every delivery report
    points at a copy of its record, and the log has no gaps."""
    sent, offsets = stream_with_lost_acks(fbroker, topic, family, idempotent=False)
    dups = 0
    for part in range(STREAM_PARTITIONS):
        n = len(sent[part])
        # Read until the partition's end (at least n records, perhaps more).
        got = read_partition(fbroker.bootstrap, topic, part, n)
        assert [r.offset for r in got] == list(range(len(got))), f"partition {part}: gaps"
        by_off = at_offsets(got)
        for i, (r, off) in enumerate(zip(sent[part], offsets[part])):
            assert by_off.get(off) == r, f"partition {part}: record #{i} not at its offset {off}"
        values = [r.value for r in got]
        missing = [i for i, r in enumerate(sent[part]) if r.value not in set(values)]
        assert not missing, f"partition {part}: records lost: {missing[:10]}"
        # Each copy is byte-exact (same key, headers, timestamp) as the record sent.
        want = {r.value: r for r in sent[part]}
        for r in got:
            assert r == want[r.value], f"partition {part}: {r.short()} is no record sent"
        dups += len(got) - n
    print(f"{family}: {dups} duplicate records after 3 lost acks (at-least-once)")


# =========================================================================== consumer groups
N_GROUP = 100


class GroupConsumer:
    """A subscribed group consumer of one client family, polled by the test."""

    def __init__(self, family, bootstrap, group, topic, **conf):
        self.family = family
        self.loop = None
        if family == "confluent":
            from confluent_kafka import Consumer
            base = {"bootstrap.servers": bootstrap, "group.id": group,
                    "auto.offset.reset": "earliest", "enable.auto.commit": False,
                    "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                    "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000}
            base.update(conf)
            self.c = Consumer(with_debug(base))
            self.c.subscribe([topic])
        elif family == "kafka-python":
            from kafka import KafkaConsumer
            base = dict(bootstrap_servers=bootstrap, group_id=group,
                        auto_offset_reset="earliest", enable_auto_commit=False,
                        session_timeout_ms=10000, heartbeat_interval_ms=500,
                        fetch_max_wait_ms=100, request_timeout_ms=10000,
                        retry_backoff_ms=100)
            base.update(conf)
            self.c = KafkaConsumer(**base)
            # kafka-python 3.0.12 wedges a leader whose first assignment ran without the
            # topic's metadata: the metadata-triggered rejoin completes after poll()'s 100 ms
            # timeout, the next poll sees need_rejoin() False and never applies the result
            # (no heartbeats, no fetches; the session expires). Seen on a loaded CI machine;
            # the same as test_groups_support.py works around. Load the metadata first.
            deadline = time.monotonic() + 15
            while not self.c.partitions_for_topic(topic) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.c.subscribe([topic])
            while (not self.c._coordinator._metadata_snapshot.get(topic)
                   and time.monotonic() < deadline):
                self.c._cluster.request_update()
                time.sleep(0.05)
        else:
            from aiokafka import AIOKafkaConsumer
            self.loop = asyncio.new_event_loop()
            base = dict(bootstrap_servers=bootstrap, group_id=group,
                        auto_offset_reset="earliest", enable_auto_commit=False,
                        session_timeout_ms=10000, heartbeat_interval_ms=500,
                        fetch_max_wait_ms=100, request_timeout_ms=10000,
                        retry_backoff_ms=100)
            base.update(conf)

            async def make():
                c = AIOKafkaConsumer(topic, **base)
                await c.start()
                return c

            self.c = self.run(make())

    def run(self, coro, timeout=API_TIMEOUT):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def poll(self):
        """One short poll: [Rec] (with partition and offset)."""
        if self.family == "confluent":
            out = []
            for m in self.c.consume(num_messages=500, timeout=0.1):
                assert m.error() is None, f"consume error: {m.error()}"
                out.append(CLIENTS["confluent"].to_rec(m))
            return out
        if self.family == "kafka-python":
            batches = self.c.poll(timeout_ms=100)
        else:
            batches = self.run(self.c.getmany(timeout_ms=100))
        return [CLIENTS[self.family].to_rec(m) for b in batches.values() for m in b]

    def commit(self, topic, partition, offset):
        """Synchronous commit of one offset, as the client's API does it."""
        if self.family == "confluent":
            return self.c.commit(offsets=[CkTP(topic, partition, offset)], asynchronous=False)
        if self.family == "kafka-python":
            from kafka import OffsetAndMetadata, TopicPartition
            return self.c.commit({TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)})
        from aiokafka import TopicPartition
        return self.run(self.c.commit({TopicPartition(topic, partition): offset}))

    def close(self):
        if self.family == "confluent":
            self.c.close()
        elif self.family == "kafka-python":
            self.c.close()
        else:
            try:
                self.run(self.c.stop(), timeout=10)
            finally:
                self.loop.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_group_joins_through_coordinator_loading_and_closed_join(fbroker, topic, family):
    bs, faults = fbroker.bootstrap, fbroker.faults
    create_topics(bs, {topic: 1})
    data = recs("grp", N_GROUP)
    CLIENTS["confluent"].produce(bs, topic, data, partition=0)

    t0 = time.monotonic()
    loading = faults.add(api="FindCoordinator", action="error",
                         error="COORDINATOR_LOAD_IN_PROGRESS", duration_ms=2000)
    closed = faults.add(api="JoinGroup", action="close", count=1)
    # One second in, while the coordinator is still "loading": how often the client asked.
    loading_seen = []
    snap = threading.Timer(1.0, lambda: loading_seen.append(faults.get(loading["id"])))
    snap.start()
    c = None
    got, first_at = [], None
    try:
        # (aiokafka's start() already waits for the coordinator.)
        c = GroupConsumer(family, bs, f"g-{topic}", topic)
        deadline = t0 + 30
        while len(got) < N_GROUP and time.monotonic() < deadline:
            batch = c.poll()
            if batch and first_at is None:
                first_at = time.monotonic() - t0
            got.extend(batch)
        done_at = time.monotonic() - t0
        extra_until = time.monotonic() + 0.5
        while time.monotonic() < extra_until:
            got.extend(c.poll())
    finally:
        snap.join()
        if c is not None:
            c.close()
    assert loading_seen[0] is not None and loading_seen[0]["matched"] >= 1, \
        f"FindCoordinator rule after 1 s: {loading_seen[0]}"
    # The JoinGroup whose connection was closed happened (the rule is used up), and the
    # FindCoordinator rule has expired.
    assert faults.list() == [], faults.list()
    assert_same(got, data)
    assert [r.offset for r in got] == list(range(N_GROUP))
    # No assignment, so no record, before the coordinator could be found; all within a bound.
    assert first_at is not None and first_at >= 2.0, f"first record after {first_at:.2f}s"
    assert done_at < 20.0, f"all records after {done_at:.2f}s"
    print(f"{family}: FindCoordinator refused {loading_seen[0]['matched']} times in 1 s; "
          f"first record after {first_at:.2f}s, all after {done_at:.2f}s")


def fetch_versions(b):
    """{version: Fetch requests} from /metrics."""
    return {v: int(b.faults.metric("klamm_requests_total", api="Fetch", version=v))
            for v in range(4, 19) if b.faults.metric("klamm_requests_total", api="Fetch",
                                                     version=v)}


@pytest.mark.parametrize("family", FAMILIES)
def test_fetch_delayed_still_reads_everything(fbroker, topic, family):
    bs, faults = fbroker.bootstrap, fbroker.faults
    create_topics(bs, {topic: 1})
    data = recs("slow", 60)
    CLIENTS["confluent"].produce(bs, topic, data, partition=0)
    rule = faults.add(api="Fetch", topic=topic, action="delay", delay_ms=300)
    t0 = time.monotonic()
    got = read_partition(bs, topic, 0, len(data), family)
    elapsed = time.monotonic() - t0
    assert_same(got, data)
    assert [r.offset for r in got] == list(range(len(data)))
    # Every Fetch of the topic waited 300 ms first: the rule lasts until deleted.
    matched = faults.get(rule["id"])["matched"]
    assert matched >= 1, \
        f"the Fetch rule for topic {topic} never matched {family}'s Fetch requests " \
        f"(Fetch v13+ names topics by id): {fetch_versions(fbroker)}"
    assert elapsed >= 0.3, elapsed
    assert faults.clear(rule["id"]) == 1
    assert faults.list() == []
    print(f"{family}: {matched} delayed Fetch requests, read in {elapsed:.2f}s")


def commit_requests(b):
    return b.faults.metric("klamm_requests_total", api="OffsetCommit")


@pytest.mark.parametrize("family", FAMILIES)
def test_offset_commit_coordinator_not_available_retried_by_client(fbroker, topic, family):
    """COORDINATOR_NOT_AVAILABLE is retriable: every client looks the coordinator up again
    and resends the commit itself; the synchronous commit call returns normally."""
    bs, faults = fbroker.bootstrap, fbroker.faults
    create_topics(bs, {topic: 1})
    data = recs("commit", 20)
    CLIENTS["confluent"].produce(bs, topic, data, partition=0)
    group = f"g-{topic}"
    c = GroupConsumer(family, bs, group, topic)
    try:
        assert_same(poll_n(c, len(data)), data)
        rule = faults.add(api="OffsetCommit", topic=topic, action="error",
                          error="COORDINATOR_NOT_AVAILABLE", count=1)
        before = commit_requests(fbroker)
        c.commit(topic, 0, len(data))
        # One refused OffsetCommit, then the client's own retry.
        assert commit_requests(fbroker) - before == 2
        assert faults.get(rule["id"]) is None, faults.list()
        assert committed(bs, group, [(topic, 0)]) == {(topic, 0): len(data)}
    finally:
        c.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_offset_commit_rebalance_in_progress_raised_to_app(fbroker, topic, family):
    """REBALANCE_IN_PROGRESS is not retried by the commit call: every client raises it
    (librdkafka: KafkaException REBALANCE_IN_PROGRESS; kafka-python and aiokafka:
    CommitFailedError) and nothing is committed. The application keeps polling (the client
    rejoins) and commits again."""
    bs, faults = fbroker.bootstrap, fbroker.faults
    create_topics(bs, {topic: 1})
    data = recs("commit", 20)
    CLIENTS["confluent"].produce(bs, topic, data, partition=0)
    group = f"g-{topic}"
    c = GroupConsumer(family, bs, group, topic)
    try:
        assert_same(poll_n(c, len(data)), data)
        rule = faults.add(api="OffsetCommit", topic=topic, action="error",
                          error="REBALANCE_IN_PROGRESS", count=1)
        before = commit_requests(fbroker)
        with pytest.raises(Exception) as ei:
            c.commit(topic, 0, len(data))
        check_rebalance_in_progress(family, ei.value)
        assert commit_requests(fbroker) - before == 1, "the client did not resend it"
        assert faults.get(rule["id"]) is None, faults.list()
        assert committed(bs, group, [(topic, 0)]) == {(topic, 0): None}
        # The application's retry: poll on, commit again (bounded). A client that rejoins
        # and resets its position to the committed offset (none: earliest) delivers the
        # uncommitted records again (aiokafka does): at-least-once, from offset 0 on.
        replay = []
        deadline = time.monotonic() + 15
        while True:
            replay.extend(c.poll())
            try:
                c.commit(topic, 0, len(data))
                break
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                if time.monotonic() > deadline:
                    raise AssertionError(f"commit still failing after 15 s: {e!r}") from e
        assert committed(bs, group, [(topic, 0)]) == {(topic, 0): len(data)}
        assert_same(replay, data[:len(replay)])
        assert [r.offset for r in replay] == list(range(len(replay)))
        print(f"{family}: {len(replay)} records delivered again before the commit succeeded")
    finally:
        c.close()


def poll_n(c, n, timeout=30):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.extend(c.poll())
    return got


def check_rebalance_in_progress(family, exc):
    if family == "confluent":
        assert isinstance(exc, KafkaException), repr(exc)
        err = exc.args[0]
        assert err.code() == KafkaError.REBALANCE_IN_PROGRESS, err
    elif family == "kafka-python":
        from kafka.errors import CommitFailedError, RebalanceInProgressError
        assert isinstance(exc, CommitFailedError), repr(exc)
        assert any(isinstance(a, RebalanceInProgressError) for a in exc.args), repr(exc)
    else:
        from aiokafka.errors import CommitFailedError
        assert isinstance(exc, CommitFailedError), repr(exc)


# =========================================================================== transactions
@pytest.mark.parametrize("family", FAMILIES)
def test_end_txn_concurrent_transactions_retried(fbroker, topic, family):
    bs, faults = fbroker.bootstrap, fbroker.faults
    create_topics(bs, {topic: 2})
    tps = [(topic, 0), (topic, 1)]
    data = recs("txn", 10)
    p = TXN[family](bs, f"tx-{topic}")
    try:
        p.init()
        p.begin()
        for i, r in enumerate(data):
            p.send(topic, i % 2, r)
        offs = p.flush()
        assert offs == [(i % 2, i // 2) for i in range(len(data))], offs
        rule = faults.add(api="EndTxn", action="error", error="CONCURRENT_TRANSACTIONS",
                          count=2)
        before = fbroker.faults.metric("klamm_requests_total", api="EndTxn")
        p.commit()
        # Two refused EndTxn, then the one that commits.
        assert faults.get(rule["id"]) is None, faults.list()
        assert fbroker.faults.metric("klamm_requests_total", api="EndTxn") - before == 3
        # The producer goes on with a second transaction normally.
        more = recs("txn2", 2)
        p.begin()
        p.send(topic, 0, more[0])
        p.send(topic, 1, more[1])
        assert p.flush() == [(0, 6), (1, 6)]   # after 5 records and the commit marker
        p.commit()
    finally:
        p.close()
    want = {(topic, part): [(i // 2, r) for i, r in enumerate(data) if i % 2 == part]
            + [(6, more[part])] for part in (0, 1)}
    for reader in FAMILIES:
        for iso in (RC, RU):
            assert_read(read_all(reader, bs, tps, iso, len(data) + 2), want,
                        f"{family} producer, {reader} {iso}")
