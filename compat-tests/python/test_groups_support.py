"""Shared machinery for the consumer-group tests (`test_groups_*.py`); holds no tests.

Two halves:

* Run as a script (`python test_groups_support.py '<json config>'`) it is a group
  consumer in its own process, for confluent-kafka, kafka-python or aiokafka. It
  subscribes, and prints one JSON object per line on stdout:
    {"ev": "start"}                                   process is up
    {"ev": "assign"|"revoke"|"lost", "parts": [...],  assignment after the callback,
     "delta": [...], "gen": G, "member": ID}          what changed, generation, member id
    {"ev": "gen", "parts": [...], "gen": G, ...}     kafka-python: a new stable generation
                                                      (cooperative rebalances may call no
                                                      listener at all)
    {"ev": "msgs", "gen": G|null, "recs": [[p, o, value], ...]}
                                                      records consumed; gen is null when the
                                                      generation changed during the poll
    {"ev": "closed"}                                  consumer closed cleanly
  A "close" line (or EOF) on stdin makes it close the consumer cleanly and exit 0.
  Client logs (librdkafka `debug`, Python logging) go to stderr.

* Imported by the tests it gives `Worker` (one such process, its events collected by
  a reader thread), `wait_settled` (until a set of workers settles on an exact cover of
  the partitions), a background `Feeder` producer, and `wait_until`.

Workers auto-commit (every 200 ms, and on revoke/close as each client does) unless
started with commit="none".
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

# librdkafka debug contexts for group workers (stderr, printed on failure).
RDKAFKA_GROUP_DEBUG = os.environ.get("KLAMM_GROUP_DEBUG", "cgrp")
SESSION_MS = 3000       # clients' session.timeout.ms; the broker runs with a 1000 ms minimum
HEARTBEAT_MS = 300
REBALANCE_MS = 10000    # max.poll.interval.ms / rebalance timeout
GROUP_BROKER_ARGS = ["--group-min-session-timeout-ms", "1000"]


# =========================================================================== worker side
def _emit(obj):
    obj.setdefault("t", time.time())
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _stdin_watch(stop):
    """Sets `stop` on a "close" line or EOF (the test died: never outlive it)."""
    def run():
        for line in sys.stdin:
            if line.strip() == "close":
                break
        stop.set()
    threading.Thread(target=run, daemon=True).start()


def _worker_confluent(cfg, stop):
    import struct
    from confluent_kafka import Consumer, KafkaError

    conf = {
        "bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"],
        "client.id": cfg["name"], "auto.offset.reset": "earliest",
        "enable.auto.commit": cfg["commit"] == "auto", "auto.commit.interval.ms": 200,
        "session.timeout.ms": cfg["session_ms"], "heartbeat.interval.ms": cfg["heartbeat_ms"],
        "max.poll.interval.ms": cfg["rebalance_ms"],
        "partition.assignment.strategy": cfg["assignor"] or "range",
        "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000,
    }
    if cfg.get("instance_id"):
        conf["group.instance.id"] = cfg["instance_id"]
    if cfg.get("debug"):
        conf["debug"] = cfg["debug"]
    c = Consumer(conf)
    cooperative = "cooperative" in (cfg["assignor"] or "")
    owned = set()

    closing = threading.Event()

    def gen():
        # consumer_group_metadata() is librdkafka's serialized CGMD: b"CGMDv2:" then the
        # generation id as a native int32. Not called from the revoke callback that
        # close() runs: there it can block forever (the group handler is terminating) or
        # raise (then confluent-kafka-python 2.16 fails with "SystemError: _PyErr_SetObject").
        if closing.is_set():
            return None
        try:
            md = c.consumer_group_metadata()
        except Exception:  # noqa: BLE001
            return None
        return struct.unpack_from("=i", md, 7)[0] if md[:7] == b"CGMDv2:" else None

    def member(consumer):
        if closing.is_set():
            return None
        try:
            return consumer.memberid()
        except Exception:  # noqa: BLE001
            return None

    def on_assign(consumer, parts):
        delta = sorted(p.partition for p in parts)
        if cooperative:
            owned.update(delta)
            consumer.incremental_assign(parts)
        else:
            owned.clear()
            owned.update(delta)
            consumer.assign(parts)
        _emit({"ev": "assign", "parts": sorted(owned), "delta": delta, "gen": gen(),
               "member": member(consumer)})

    def on_revoke(consumer, parts, ev="revoke"):
        delta = sorted(p.partition for p in parts)
        owned.difference_update(delta)
        if cooperative:
            consumer.incremental_unassign(parts)
        else:
            consumer.unassign()
        _emit({"ev": ev, "parts": sorted(owned), "delta": delta, "gen": gen(),
               "member": member(consumer)})

    def on_lost(consumer, parts):
        on_revoke(consumer, parts, "lost")

    c.subscribe([cfg["topic"]], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    try:
        while not stop.is_set():
            g0 = gen()
            msgs = c.consume(num_messages=200, timeout=0.1)
            g1 = gen()
            recs = []
            for m in msgs:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        _emit({"ev": "error", "err": str(m.error())})
                    continue
                recs.append([m.partition(), m.offset(), m.value().decode()])
            if recs:
                _emit({"ev": "msgs", "gen": g1 if g0 == g1 else None, "recs": recs})
    finally:
        closing.set()
        c.close()
    _emit({"ev": "closed"})


def _kp_assignor(name):
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
    return {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
            "sticky": StickyPartitionAssignor,
            "cooperative-sticky": CooperativeStickyAssignor}[name or "range"]


def _worker_kafka_python(cfg, stop):
    import logging
    from kafka import KafkaConsumer
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.coordinator.base import MemberState

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if cfg.get("debug") else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    kw = dict(bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"], client_id=cfg["name"],
              auto_offset_reset="earliest", enable_auto_commit=cfg["commit"] == "auto",
              auto_commit_interval_ms=200, session_timeout_ms=cfg["session_ms"],
              heartbeat_interval_ms=cfg["heartbeat_ms"], max_poll_interval_ms=cfg["rebalance_ms"],
              partition_assignment_strategy=[_kp_assignor(cfg["assignor"])],
              fetch_max_wait_ms=100, request_timeout_ms=15000)
    if cfg.get("instance_id"):
        kw["group_instance_id"] = cfg["instance_id"]
    c = KafkaConsumer(**kw)
    owned = set()

    def gen():
        return c._coordinator._generation.generation_id

    def member():
        return c._coordinator._generation.member_id

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            # kafka-python 3 runs listeners on its IO thread: no blocking consumer calls
            # here; it auto-commits itself before rejoining.
            delta = sorted(tp.partition for tp in revoked)
            owned.difference_update(delta)
            _emit({"ev": "revoke", "parts": sorted(owned), "delta": delta, "gen": gen(),
                   "member": member()})

        def on_partitions_assigned(self, assigned):
            delta = sorted(tp.partition for tp in assigned)
            owned.update(delta)
            _emit({"ev": "assign", "parts": sorted(owned), "delta": delta, "gen": gen(),
                   "member": member()})

        def on_partitions_lost(self, lost):
            delta = sorted(tp.partition for tp in lost)
            owned.difference_update(delta)
            _emit({"ev": "lost", "parts": sorted(owned), "delta": delta, "gen": gen(),
                   "member": member()})

    # Load the topic's metadata before joining. kafka-python 3.0.12 wedges a leader whose
    # first assignment ran without metadata: the metadata-triggered rejoin that follows
    # completes JoinGroup/SyncGroup after poll()'s timeout, and the next poll sees
    # need_rejoin() False and never applies the result (no heartbeats; session expires).
    deadline = time.monotonic() + 15
    while not c.partitions_for_topic(cfg["topic"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    c.subscribe([cfg["topic"]], listener=Listener())
    # Same race once subscribed: the coordinator's metadata snapshot is only taken on the
    # next metadata update; a leader assigning before it rejoins right after (a needless
    # rebalance, e.g. right after a static member's restart).
    while not c._coordinator._metadata_snapshot.get(cfg["topic"]) and time.monotonic() < deadline:
        c._cluster.request_update()
        time.sleep(0.05)
    reported, candidate = None, None
    try:
        while not stop.is_set():
            g0 = gen()
            batches = c.poll(timeout_ms=100)
            g1 = gen()
            # Cooperative rebalances call on_partitions_assigned only for added partitions:
            # report every new stable generation with the consumer's own assignment, once
            # seen on two polls in a row (STABLE is set just before the assignment is).
            now = None
            if c._coordinator.state is MemberState.STABLE:
                now = (g1, tuple(sorted(tp.partition for tp in c.assignment())))
            if now is not None and now == candidate and now != reported:
                reported = now
                _emit({"ev": "gen", "parts": list(now[1]), "delta": [], "gen": now[0],
                       "member": member()})
            candidate = now
            recs = [[m.partition, m.offset, m.value.decode()]
                    for batch in batches.values() for m in batch]
            if recs:
                _emit({"ev": "msgs", "gen": g1 if g0 == g1 else None, "recs": recs})
    finally:
        c.close()
    _emit({"ev": "closed"})


def _worker_aiokafka(cfg, stop):
    import asyncio
    import logging
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if cfg.get("debug") else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    assignor = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                "sticky": StickyPartitionAssignor}[cfg["assignor"] or "range"]

    async def main():
        kw = dict(bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"],
                  client_id=cfg["name"], auto_offset_reset="earliest",
                  enable_auto_commit=cfg["commit"] == "auto", auto_commit_interval_ms=200,
                  session_timeout_ms=cfg["session_ms"], heartbeat_interval_ms=cfg["heartbeat_ms"],
                  rebalance_timeout_ms=cfg["rebalance_ms"], max_poll_interval_ms=cfg["rebalance_ms"],
                  partition_assignment_strategy=(assignor,), fetch_max_wait_ms=100,
                  request_timeout_ms=15000)
        if cfg.get("instance_id"):
            kw["group_instance_id"] = cfg["instance_id"]
        c = AIOKafkaConsumer(**kw)
        owned = set()

        def gen():
            return c._coordinator.generation if c._coordinator else None

        def member():
            return c._coordinator.member_id if c._coordinator else None

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                delta = sorted(tp.partition for tp in revoked)
                owned.difference_update(delta)
                _emit({"ev": "revoke", "parts": sorted(owned), "delta": delta, "gen": gen(),
                       "member": member()})

            async def on_partitions_assigned(self, assigned):
                delta = sorted(tp.partition for tp in assigned)
                owned.clear()
                owned.update(delta)
                _emit({"ev": "assign", "parts": sorted(owned), "delta": delta, "gen": gen(),
                       "member": member()})

        await c.start()
        c.subscribe([cfg["topic"]], listener=Listener())
        try:
            while not stop.is_set():
                g0 = gen()
                batches = await c.getmany(timeout_ms=100)
                g1 = gen()
                recs = [[m.partition, m.offset, m.value.decode()]
                        for batch in batches.values() for m in batch]
                if recs:
                    _emit({"ev": "msgs", "gen": g1 if g0 == g1 else None, "recs": recs})
        finally:
            await c.stop()

    asyncio.run(main())
    _emit({"ev": "closed"})


WORKERS = {"confluent": _worker_confluent, "kafka-python": _worker_kafka_python,
           "aiokafka": _worker_aiokafka}


def worker_main(cfg):
    import faulthandler
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stack dump on a hang
    stop = threading.Event()
    _stdin_watch(stop)
    _emit({"ev": "start", "pid": os.getpid()})
    WORKERS[cfg["client"]](cfg, stop)


# =========================================================================== test side
def wait_until(cond, timeout, interval=0.05, what="condition"):
    """Polls `cond()` until it returns a truthy value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Worker:
    """One group-consumer process; events are collected from its stdout by a thread."""

    def __init__(self, client, bootstrap, group, topic, name, log_dir, assignor=None,
                 instance_id=None, commit="auto", session_ms=SESSION_MS,
                 heartbeat_ms=HEARTBEAT_MS, rebalance_ms=REBALANCE_MS, debug=None):
        if debug is None:
            debug = RDKAFKA_GROUP_DEBUG if client == "confluent" else os.environ.get("KLAMM_GROUP_DEBUG")
        self.client, self.name = client, name
        self.cfg = dict(client=client, bootstrap=bootstrap, group=group, topic=topic, name=name,
                        assignor=assignor, instance_id=instance_id, commit=commit,
                        session_ms=session_ms, heartbeat_ms=heartbeat_ms,
                        rebalance_ms=rebalance_ms, debug=debug)
        self.log_path = os.path.join(str(log_dir), f"worker-{name}.log")
        self.events = []
        self.lock = threading.Lock()
        self.killed = False
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), json.dumps(self.cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line}
            with self.lock:
                self.events.append(ev)

    def evs(self, kind=None):
        with self.lock:
            return [e for e in self.events if kind is None or e["ev"] == kind]

    def assignment_events(self):
        return [e for e in self.evs() if e["ev"] in ("assign", "revoke", "lost", "gen")]

    def state(self):
        """(parts, gen, member) after the latest assignment callback, or None."""
        evs = self.assignment_events()
        if not evs:
            return None
        e = evs[-1]
        return frozenset(e["parts"]), e["gen"], e["member"]

    def consumed(self):
        """[(gen, partition, offset, value, worker)] in consumption order."""
        return [(e["gen"], p, o, v, self.name) for e in self.evs("msgs") for p, o, v in e["recs"]]

    def alive(self):
        return self.proc.poll() is None

    def close(self, timeout=20):
        """Clean close (the consumer leaves the group); asserts exit code 0."""
        try:
            self.proc.stdin.write("close\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.dump_stacks()
            self.kill()
            raise AssertionError(f"worker {self.name} did not close within {timeout}s:\n"
                                 f"{self.log_tail()}")
        self.reader.join(5)
        assert rc == 0, f"worker {self.name} exited with {rc}:\n{self.log_tail()}"
        assert self.evs("closed"), f"worker {self.name} exited without closing:\n{self.log_tail()}"

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.killed = True
        self.reader.join(5)

    def dump_stacks(self):
        """Asks the worker to write all its threads' stacks to its log (diagnosing hangs)."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(0.2)

    def log_tail(self, n=80, grep=None):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "<no log>"
        if grep:
            lines = [ln for ln in lines if any(g in ln for g in grep)]
        return "\n".join(lines[-n:])


class Settled:
    """A settled group: every worker's assignment and the common generation."""

    def __init__(self, assignment, gen, members, at):
        self.assignment = assignment   # name -> frozenset(partitions)
        self.gen = gen
        self.members = members         # name -> member id
        self.at = at                   # time.time() when detected

    def owner(self, partition):
        return next(n for n, ps in self.assignment.items() if partition in ps)


def cover_problem(assignment, partitions):
    """Why `assignment` (name -> set) is not an exact cover of `partitions`, or None."""
    seen = {}
    for name, ps in assignment.items():
        for p in ps:
            if p in seen:
                return f"partition {p} owned by both {seen[p]} and {name}"
            seen[p] = name
    missing = set(partitions) - set(seen)
    extra = set(seen) - set(partitions)
    if missing or extra:
        return f"missing partitions {sorted(missing)}, unexpected {sorted(extra)}"
    return None


def wait_settled(workers, partitions, timeout, after_gen=-1, quiet=0.6, since=None):
    """Waits until the live `workers` report one common generation > `after_gen` whose
    assignments are an exact cover of `partitions` (no partition twice, none left out),
    unchanged for `quiet` seconds. With `since` ({name: number of assignment events}),
    every worker must also have reported a new assignment event since then (for after a
    broker restart, when generations start over). Returns a `Settled`; on timeout the
    failure shows each worker's last assignment events."""
    deadline = time.monotonic() + timeout
    stable_since, last_key = None, None
    since = since or {}
    while time.monotonic() < deadline:
        for w in workers:
            assert w.alive(), f"worker {w.name} died (rc={w.proc.poll()}):\n{w.log_tail()}"
        states = {w.name: w.state() for w in workers}
        fresh = all(len(w.assignment_events()) > since.get(w.name, 0) for w in workers)
        key = None
        if fresh and all(s is not None for s in states.values()):
            gens = {s[1] for s in states.values()}
            assignment = {n: s[0] for n, s in states.items()}
            if len(gens) == 1 and next(iter(gens)) is not None and next(iter(gens)) > after_gen \
                    and cover_problem(assignment, partitions) is None:
                key = tuple(sorted((n, tuple(sorted(s[0])), s[1]) for n, s in states.items()))
        if key is not None and key == last_key:
            if time.monotonic() - stable_since >= quiet:
                return Settled({n: s[0] for n, s in states.items()}, key[0][2],
                               {n: s[2] for n, s in states.items()}, time.time())
        else:
            stable_since, last_key = time.monotonic(), key
        time.sleep(0.05)
    for w in workers:
        w.dump_stacks()
    detail = "\n".join(
        f"  {w.name}: " + ", ".join(f"{e['ev']}{e['parts']}@gen{e['gen']}"
                                    for e in w.assignment_events()[-6:])
        for w in workers)
    states = {w.name: w.state() for w in workers}
    problem = cover_problem({n: (s[0] if s else frozenset()) for n, s in states.items()},
                            partitions)
    raise AssertionError(f"group did not settle within {timeout}s on an exact cover of "
                         f"{sorted(partitions)} after gen {after_gen} ({problem}); "
                         f"last assignment events:\n{detail}")


def dupes_within_generation(consumed):
    """(gen, partition, offset) consumed more than once within one generation."""
    seen, dupes = {}, []
    for gen, p, o, v, who in consumed:
        if gen is None:
            continue
        k = (gen, p, o)
        if k in seen:
            dupes.append((k, seen[k], who))
        else:
            seen[k] = who
    return dupes


class Feeder:
    """Background producer: values `<prefix>-<seq>` round-robin over explicit partitions.
    `delivered` holds (partition, offset, value, delivery time.time())."""

    def __init__(self, bootstrap, topic, partitions, prefix="m", interval=0.02):
        from confluent_kafka import Producer
        self.p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                           "message.timeout.ms": 20000, "acks": "all"})
        self.topic, self.partitions, self.prefix, self.interval = topic, partitions, prefix, interval
        self.delivered, self.errors = [], []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.seq = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _cb(self, err, msg):
        with self.lock:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.delivered.append((msg.partition(), msg.offset(), msg.value().decode(),
                                       time.time()))

    def produce(self, n):
        for _ in range(n):
            part = self.partitions[self.seq % len(self.partitions)]
            self.p.produce(self.topic, value=f"{self.prefix}-{self.seq}".encode(),
                           partition=part, on_delivery=self._cb)
            self.seq += 1
        self.p.flush(15)

    def _run(self):
        while not self.stop_ev.is_set():
            part = self.partitions[self.seq % len(self.partitions)]
            self.p.produce(self.topic, value=f"{self.prefix}-{self.seq}".encode(),
                           partition=part, on_delivery=self._cb)
            self.seq += 1
            self.p.poll(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        if self.thread.is_alive():
            self.thread.join(10)
        left = self.p.flush(20)
        self.p = None  # let librdkafka go now, not when the broker is already stopped
        assert left == 0 and not self.errors, f"undelivered={left} errors={self.errors[:5]}"

    def snapshot(self):
        with self.lock:
            return list(self.delivered)


def create_topic(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    adm = AdminClient({"bootstrap.servers": bootstrap})
    for f in adm.create_topics([NewTopic(topic, num_partitions=partitions,
                                         replication_factor=1)]).values():
        f.result(timeout=15)
    return adm


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))
