"""KIP-848 consumer groups (`group.protocol=consumer`) with real confluent-kafka clients.

The broker runs with `--group-consumer-heartbeat-interval-ms 500` and
`--group-consumer-session-timeout-ms 6000` (Kafka's `group.consumer.*`); the assignment is
computed on the broker (`uniform` by default, `range` on request) and handed to each member
in its ConsumerGroupHeartbeat answers. Only confluent-kafka (librdkafka 2.16) speaks the
consumer protocol here; kafka-python and aiokafka do not.

Every group member is a separate process: this file run as a script
(`python test_groups_consumer_protocol.py '<json config>'`) is one confluent consumer with
`group.protocol=consumer` that prints JSON lines on stdout:
    {"ev": "start"}
    {"ev": "assign"|"revoke"|"lost", "tps": [[topic, p], ...], "delta": [...],
     "gen": E, "member": ID}            after an (incremental) rebalance callback; E is the
                                        member epoch librdkafka holds
    {"ev": "gen", "tps": [...], "gen": E, "member": ID}
                                        the (member epoch, assignment) pair changed: a member
                                        whose partitions stay the same gets no callback when
                                        the group epoch moves, only a new epoch
    {"ev": "msgs", "gen": E|null, "recs": [[topic, p, offset, value], ...]}
                                        records consumed (gen null: the epoch moved meanwhile)
    {"ev": "committed", "offs": [[topic, p, offset], ...]}
                                        a synchronous commit succeeded
    {"ev": "commit_error", "err": ..., "code": N}
                                        one attempt failed; retried while retriable (e.g.
                                        STALE_MEMBER_EPOCH: the broker bumped the epoch in a
                                        heartbeat answer the client had not seen yet)
    {"ev": "commit_failed", ...}        gave up: that batch stays uncommitted
    {"ev": "closed"}                    consumer closed cleanly (it left the group)
A "close" line (or EOF) on stdin closes the consumer and exits 0. librdkafka `cgrp` debug
logs go to stderr (the worker's log, printed when a test fails).

Workers commit synchronously after every batch they consume (enable.auto.commit=false)
and before the next poll, in which revocations are served. So a partition changes owner
only with everything its previous owner consumed committed, and the new owner must start
exactly at the committed offset: a record is consumed twice only when its first consumer
was killed (or fenced) before that batch's commit succeeded.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

HEARTBEAT_MS = 500
SESSION_MS = 6000
REBALANCE_MS = 10000     # max.poll.interval.ms = the members' rebalance timeout
CP_BROKER_ARGS = ["--group-consumer-heartbeat-interval-ms", str(HEARTBEAT_MS),
                  "--group-consumer-session-timeout-ms", str(SESSION_MS)]
RDKAFKA_DEBUG = os.environ.get("KLAMM_GROUP_DEBUG", "cgrp")


# =========================================================================== worker side
def _emit(obj):
    obj.setdefault("t", time.time())
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# Commit errors worth retrying: the partitions stay ours while we do not poll (revocations
# are only served inside consume()), so a retry cannot commit for someone else's partition.
RETRIABLE_COMMIT = {"STALE_MEMBER_EPOCH", "REBALANCE_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE",
                    "NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS", "REQUEST_TIMED_OUT",
                    "_TRANSPORT", "_WAIT_COORD", "_TIMED_OUT", "_IN_PROGRESS"}


def worker_main(cfg):
    import faulthandler
    import struct
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stack dump on a hang
    stop = threading.Event()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "close":
                break
        stop.set()
    threading.Thread(target=watch_stdin, daemon=True).start()
    _emit({"ev": "start", "pid": os.getpid()})

    conf = {
        "bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"],
        "group.protocol": "consumer", "client.id": cfg["name"],
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "max.poll.interval.ms": REBALANCE_MS, "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
    }
    if cfg.get("assignor"):
        conf["group.remote.assignor"] = cfg["assignor"]
    if cfg.get("debug"):
        conf["debug"] = cfg["debug"]
    c = Consumer(conf)
    closing = threading.Event()

    def epoch():
        # librdkafka's serialized group metadata: b"CGMDv2:" then the generation id (the
        # member epoch under the consumer protocol) as a native int32. Not from the revoke
        # callback close() runs (it can block there).
        if closing.is_set():
            return None
        try:
            md = c.consumer_group_metadata()
        except Exception:  # noqa: BLE001
            return None
        return struct.unpack_from("=i", md, 7)[0] if md[:7] == b"CGMDv2:" else None

    def member():
        if closing.is_set():
            return None
        try:
            return c.memberid()
        except Exception:  # noqa: BLE001
            return None

    owned = set()
    # The last (epoch, assignment) reported by a "gen" line; a callback's line resets it so
    # the main loop reports its view again even when that equals an older one (e.g. the same
    # epoch and partitions again after the broker restarted and the member rejoined).
    last = [None]

    def on_assign(consumer, parts):
        delta = sorted((p.topic, p.partition) for p in parts)
        owned.update(delta)
        consumer.incremental_assign(parts)
        last[0] = None
        _emit({"ev": "assign", "tps": sorted(owned), "delta": delta, "gen": epoch(),
               "member": member()})

    def on_revoke(consumer, parts, ev="revoke"):
        delta = sorted((p.topic, p.partition) for p in parts)
        owned.difference_update(delta)
        consumer.incremental_unassign(parts)
        last[0] = None
        _emit({"ev": ev, "tps": sorted(owned), "delta": delta, "gen": epoch(),
               "member": member()})

    def on_lost(consumer, parts):
        on_revoke(consumer, parts, "lost")

    def commit(recs):
        nxt = {}
        for t, p, o, _ in recs:
            nxt[(t, p)] = max(nxt.get((t, p), 0), o + 1)
        offs = [TopicPartition(t, p, o) for (t, p), o in sorted(nxt.items())]
        deadline = time.monotonic() + 8
        while True:
            try:
                res = c.commit(offsets=offs, asynchronous=False)
                bad = [tp for tp in res if tp.error is not None]
                if not bad:
                    _emit({"ev": "committed", "offs": [[tp.topic, tp.partition, tp.offset]
                                                       for tp in res]})
                    return
                err = bad[0].error
            except KafkaException as e:
                err = e.args[0]
            _emit({"ev": "commit_error", "err": str(err), "code": err.code(),
                   "name": err.name()})
            if err.name() not in RETRIABLE_COMMIT or time.monotonic() > deadline:
                _emit({"ev": "commit_failed", "err": str(err), "offs": [
                    [tp.topic, tp.partition, tp.offset] for tp in offs]})
                return
            time.sleep(0.1)

    c.subscribe(cfg["topics"], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    try:
        while not stop.is_set():
            g0 = epoch()
            msgs = c.consume(num_messages=200, timeout=0.1)
            g1 = epoch()
            recs = []
            for m in msgs:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        _emit({"ev": "error", "err": str(m.error()), "code": m.error().code(),
                               "name": m.error().name()})
                    continue
                recs.append([m.topic(), m.partition(), m.offset(), m.value().decode()])
            if recs:
                _emit({"ev": "msgs", "gen": g1 if g0 == g1 else None, "recs": recs})
                commit(recs)
            now = (epoch(), sorted((tp.topic, tp.partition) for tp in c.assignment()))
            if now != last[0]:
                last[0] = now
                _emit({"ev": "gen", "tps": now[1], "delta": [], "gen": now[0],
                       "member": member()})
    finally:
        closing.set()
        c.close()
    _emit({"ev": "closed"})


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))
    sys.exit(0)


# =========================================================================== test side
import pytest  # noqa: E402
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from test_groups_support import Feeder, create_topic, wait_until  # noqa: E402

PARTS = list(range(6))


class CWorker:
    """One consumer-protocol group member process; a reader thread collects its events."""

    def __init__(self, bootstrap, group, topics, name, log_dir, assignor=None, debug=RDKAFKA_DEBUG):
        self.name = name
        self.cfg = dict(bootstrap=bootstrap, group=group, topics=list(topics), name=name,
                        assignor=assignor, debug=debug)
        self.log_path = os.path.join(str(log_dir), f"worker-{name}.log")
        self.events = []
        self.lock = threading.Lock()
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

    def evs(self, *kinds):
        with self.lock:
            return [e for e in self.events if not kinds or e["ev"] in kinds]

    def assignment_events(self):
        return self.evs("assign", "revoke", "lost", "gen")

    def state(self):
        """(frozenset of (topic, p), member epoch, member id) as last reported, or None."""
        evs = self.assignment_events()
        if not evs:
            return None
        e = evs[-1]
        return frozenset(tuple(tp) for tp in e["tps"]), e["gen"], e["member"]

    def consumed(self):
        """[(gen, topic, p, offset, value, worker, t)] in consumption order."""
        return [(e["gen"], t, p, o, v, self.name, e["t"])
                for e in self.evs("msgs") for t, p, o, v in e["recs"]]

    def committed(self):
        """{(topic, p): highest offset this worker committed successfully}."""
        out = {}
        for e in self.evs("committed"):
            for t, p, o in e["offs"]:
                out[(t, p)] = max(out.get((t, p), -1), o)
        return out

    def alive(self):
        return self.proc.poll() is None

    def close(self, timeout=20):
        """Clean close: the member leaves the group (heartbeat with epoch -1)."""
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
        self.reader.join(5)

    def dump_stacks(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(0.2)

    def log_tail(self, n=80):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "<no log>"
        return "\n".join(lines[-n:])


@pytest.fixture
def cp_broker(broker_factory):
    """A broker with fast consumer-protocol heartbeats and a 6 s session timeout."""
    return broker_factory(*CP_BROKER_ARGS)


@pytest.fixture
def cworkers(request, tmp_path):
    """Factory of `CWorker` processes; all are SIGKILLed at teardown (logs printed on
    failure, with the events each one reported last)."""
    started = []

    def make(*args, **kwargs):
        w = CWorker(*args, log_dir=tmp_path, **kwargs)
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for w in started:
            tail = [e for e in w.events if e["ev"] != "msgs"][-12:]
            print(f"\n----- worker {w.name} ({w.log_path}) -----\n{w.log_tail(60)}\n"
                  f"last events: {tail}")


# --------------------------------------------------------------------------- helpers
class Settled:
    def __init__(self, assignment, gen, members, at):
        self.assignment = assignment   # name -> frozenset((topic, p))
        self.gen = gen                 # the common member epoch
        self.members = members         # name -> member id
        self.at = at                   # time.time() when detected

    def owner(self, tp):
        return next(n for n, tps in self.assignment.items() if tp in tps)

    def parts(self, name):
        return sorted(p for _, p in self.assignment[name])


def cover_problem(assignment, tps):
    seen = {}
    for name, owned in assignment.items():
        for tp in owned:
            if tp in seen:
                return f"{tp} owned by both {seen[tp]} and {name}"
            seen[tp] = name
    missing, extra = set(tps) - set(seen), set(seen) - set(tps)
    if missing or extra:
        return f"missing {sorted(missing)}, unexpected {sorted(extra)}"
    return None


def settle(workers, tps, timeout, after_gen=-1, quiet=1.0, since=None):
    """Waits until the live `workers` report one common member epoch > `after_gen` whose
    assignments are an exact cover of `tps` (no partition twice, none left out), unchanged
    for `quiet` seconds (two heartbeat intervals). With `since` ({name: number of
    assignment events}) every worker must have reported something new since then."""
    tps = {tuple(tp) for tp in tps}
    since = since or {}
    deadline = time.monotonic() + timeout
    stable_since, last_key = None, None
    while time.monotonic() < deadline:
        for w in workers:
            assert w.alive(), f"worker {w.name} died (rc={w.proc.poll()}):\n{w.log_tail()}"
        states = {w.name: w.state() for w in workers}
        fresh = all(len(w.assignment_events()) > since.get(w.name, 0) for w in workers)
        key = None
        if fresh and all(s is not None for s in states.values()):
            gens = {s[1] for s in states.values()}
            assignment = {n: s[0] for n, s in states.items()}
            g = next(iter(gens))
            if len(gens) == 1 and g is not None and g > after_gen \
                    and cover_problem(assignment, tps) is None:
                key = tuple(sorted((n, tuple(sorted(s[0])), s[1], s[2])
                                   for n, s in states.items()))
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
        f"  {w.name}: " + ", ".join(f"{e['ev']}{[p for _, p in e['tps']]}@epoch{e['gen']}"
                                    for e in w.assignment_events()[-6:])
        for w in workers)
    states = {w.name: w.state() for w in workers}
    problem = cover_problem({n: (s[0] if s else frozenset()) for n, s in states.items()}, tps)
    raise AssertionError(f"group did not settle within {timeout}s on an exact cover of "
                         f"{len(tps)} partitions after epoch {after_gen} ({problem}); "
                         f"last assignment events:\n{detail}")


def marks(workers):
    return {w.name: len(w.assignment_events()) for w in workers}


def consumed_by_key(all_workers):
    """{(topic, p, offset): [(gen, worker, value, t), ...]} over every worker."""
    out = {}
    for w in all_workers:
        for gen, t, p, o, v, who, ts in w.consumed():
            out.setdefault((t, p, o), []).append((gen, who, v, ts))
    return out


def describe(adm, group):
    return adm.describe_consumer_groups([group])[group].result(timeout=15)


def assert_broker_agrees(adm, group, settled, assignor="uniform"):
    """ConsumerGroupDescribe (AdminClient.describe_consumer_groups) reports a STABLE group
    of type CONSUMER whose members, assignments and target assignments are exactly what
    the members themselves report."""
    from confluent_kafka import ConsumerGroupState, ConsumerGroupType
    d = describe(adm, group)
    want = {settled.members[n]: (n, tps) for n, tps in settled.assignment.items()}
    got = {m.member_id: (m.client_id, frozenset((tp.topic, tp.partition)
                                                for tp in m.assignment.topic_partitions))
           for m in d.members}
    target = {m.member_id: frozenset((tp.topic, tp.partition)
                                     for tp in m.target_assignment.topic_partitions)
              for m in d.members if m.target_assignment is not None}
    assert d.type == ConsumerGroupType.CONSUMER, f"group type {d.type}, want CONSUMER"
    assert d.state == ConsumerGroupState.STABLE, f"group state {d.state}, want STABLE"
    assert not d.is_simple_consumer_group
    assert d.partition_assignor == assignor, f"assignor {d.partition_assignor!r}, want {assignor!r}"
    assert got == want, f"described members {got} != members' own {want}"
    assert target == {m: tps for m, (_, tps) in want.items()}, \
        f"target assignments {target} differ from the (stable) current ones {want}"


def check_stable_window(feeder, topic, all_workers, live, settled, duration=1.0):
    """Records the feeder delivered while the group is settled are consumed exactly once,
    by their partition's owner, at the settled member epoch, with the produced value."""
    time.sleep(duration)
    deadline = time.monotonic() + 20
    while True:
        t1 = time.time()
        window = [d for d in feeder.snapshot() if settled.at <= d[3] <= t1]
        if len(window) >= 10 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(window) >= 10, f"feeder delivered only {len(window)} records in the window"
    keys = {(topic, p, o): v for p, o, v, _ in window}
    wait_until(lambda: keys.keys() <= consumed_by_key(all_workers).keys(), 20,
               what=f"{len(keys)} records of epoch {settled.gen} to be consumed: missing "
                    f"{sorted(keys.keys() - consumed_by_key(all_workers).keys())[:10]}")
    got = consumed_by_key(all_workers)
    problems = []
    for (t, p, o), v in sorted(keys.items()):
        seen = got[(t, p, o)]
        owner = settled.owner((t, p))
        if len(seen) != 1:
            problems.append(f"p{p}@{o} consumed {len(seen)} times: {seen}")
        elif seen[0][1] != owner or seen[0][2] != v or seen[0][0] not in (settled.gen, None):
            problems.append(f"p{p}@{o} consumed as {seen[0][:3]}, want owner {owner} epoch "
                            f"{settled.gen} value {v!r}")
    assert not problems, f"epoch {settled.gen} window:\n" + "\n".join(problems[:20])
    for w in live:
        st = w.state()
        assert st[1] == settled.gen and st[0] == settled.assignment[w.name], \
            f"{w.name} rebalanced during a stable window: {w.assignment_events()[-3:]}"


def check_exactly_once(delivered, all_workers, killed=()):
    """Every delivered record ((topic, p, o) -> value) was consumed with its value; one
    consumed twice only if its first consumer was killed before committing past it (then
    exactly twice). Returns the number of such re-consumed records."""
    wait_until(lambda: delivered.keys() <= consumed_by_key(all_workers).keys(), 20,
               what="every produced record to be consumed: missing "
                    f"{sorted(delivered.keys() - consumed_by_key(all_workers).keys())[:10]}")
    got = consumed_by_key(all_workers)
    assert got.keys() <= delivered.keys(), \
        f"consumed records never produced: {sorted(got.keys() - delivered.keys())[:5]}"
    wrong = [(k, v, got[k]) for k, v in delivered.items() if any(x[2] != v for x in got[k])]
    assert not wrong, f"consumed values differ from produced: {wrong[:5]}"
    by_name = {w.name: w for w in all_workers}
    problems, again = [], 0
    for (t, p, o), seen in sorted(got.items()):
        if len(seen) == 1:
            continue
        first = seen[0][1]
        uncommitted = first in killed and by_name[first].committed().get((t, p), -1) <= o
        if len(seen) == 2 and uncommitted and seen[1][1] != first:
            again += 1
        else:
            problems.append(f"{t}/{p}@{o} consumed {len(seen)} times {[s[:2] for s in seen]}"
                            f" (first consumer committed up to "
                            f"{by_name[first].committed().get((t, p))})")
    assert not problems, "records consumed more than once though committed:\n" + \
        "\n".join(problems[:20])
    return again


def assert_exclusive_ownership(workers, killed_at=None, after=None, until=None):
    """No partition was ever owned by two members at once, over the whole history: a member
    owns a partition from its assign callback until its revoke/lost callback, its close, or
    its SIGKILL (`killed_at`: {name: time.time()}). The broker only hands a partition over
    once the previous owner confirmed revoking it (or was removed), so the new owner's
    assign callback comes strictly after the old owner's revoke callback. With `after`
    ({name: time}) / `until` (a time) only the events after / before those count."""
    killed_at, after = killed_at or {}, after or {}
    intervals = {}
    for w in workers:
        held = {}
        for e in w.evs("assign", "revoke", "lost", "closed"):
            if e["t"] <= after.get(w.name, 0) or (until is not None and e["t"] > until):
                continue
            if e["ev"] == "assign":
                for tp in map(tuple, e["delta"]):
                    assert tp not in held, f"{w.name} was assigned {tp} it already owned"
                    held[tp] = e["t"]
            elif e["ev"] == "closed":
                for tp, t0 in held.items():
                    intervals.setdefault(tp, []).append((t0, e["t"], w.name))
                held = {}
            else:
                for tp in map(tuple, e["delta"]):
                    intervals.setdefault(tp, []).append((held.pop(tp), e["t"], w.name))
        for tp, t0 in held.items():
            intervals.setdefault(tp, []).append((t0, killed_at.get(w.name, float("inf")), w.name))
    problems = []
    for tp, ivs in sorted(intervals.items()):
        ivs.sort()
        for x, y in zip(ivs, ivs[1:]):
            if y[0] < x[1]:
                problems.append(f"{tp[1]}: {x[2]} owned it until {x[1]:.3f}, {y[2]} from {y[0]:.3f}")
    assert not problems, "partitions owned by two members at once:\n" + "\n".join(problems[:20])
    return sum(len(v) for v in intervals.values())


def assert_no_commit_errors(workers, allowed_errors=()):
    """Every batch's commit succeeded, at the latest after retrying retriable errors, and
    the consumers reported no errors (but `allowed_errors`, by name). Returns the number of
    commit attempts that were retried."""
    for w in workers:
        errors = [e for e in w.evs("error", "garbage") if e.get("name") not in allowed_errors]
        assert not errors, f"{w.name} reported errors: {errors[:5]}"
        failed = w.evs("commit_failed")
        assert not failed, f"{w.name}'s commits failed: {failed[:5]} " \
                           f"(errors {w.evs('commit_error')[:5]})"
    return sum(len(w.evs("commit_error")) for w in workers)


def committed_offsets(adm, group, topic):
    res = adm.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {tp.partition: tp.offset for tp in res.result(timeout=15).topic_partitions
            if tp.topic == topic}


def produce(bootstrap, records):
    """Produces [(topic, partition, value)]; returns {(topic, p, offset): value}."""
    out, errors = {}, []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            out[(msg.topic(), msg.partition(), msg.offset())] = msg.value().decode()
    for t, part, v in records:
        p.produce(t, value=v.encode(), partition=part, on_delivery=cb)
    assert p.flush(20) == 0 and not errors, f"produce failed: {errors[:5]}"
    return out


def first_offsets(worker, topic, after=0.0):
    """{p: lowest offset `worker` consumed of `topic`/p in events after time `after`}."""
    out = {}
    for _, t, p, o, _, _, ts in worker.consumed():
        if t == topic and ts > after:
            out[p] = min(out.get(p, o), o)
    return out


# --------------------------------------------------------------------------- tests
def test_consumer_protocol_lifecycle(cp_broker, cworkers, topic):
    """Three members settle 2/2/2 -> one leaves (close) and two cover all six at once -> one
    is SIGKILLed and only after the 6 s session timeout the survivor owns all six -> a new
    member joins and gets three. At each step: exact cover, balanced, what
    describe_consumer_groups reports, and a stable window consumed exactly once by owners.
    Over the whole run every record is consumed, and a record twice only when the killed
    member had consumed it without committing."""
    bs = cp_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    tps = [(topic, p) for p in PARTS]
    feeder = Feeder(bs, topic, PARTS).start()
    all_w = []

    def start(name):
        w = cworkers(bs, group, [topic], name)
        all_w.append(w)
        return w

    try:
        a, b, c = start("a"), start("b"), start("c")
        s1 = settle([a, b, c], tps, 40)
        assert sorted(len(x) for x in s1.assignment.values()) == [2, 2, 2], s1.assignment
        assert_broker_agrees(adm, group, s1)
        check_stable_window(feeder, topic, all_w, [a, b, c], s1)

        t0 = time.monotonic()
        a.close()
        s2 = settle([b, c], tps, 30, after_gen=s1.gen)
        leave_s = time.monotonic() - t0
        assert sorted(len(x) for x in s2.assignment.values()) == [3, 3], s2.assignment
        for n in ("b", "c"):   # uniform is sticky: survivors keep what they had
            assert s1.assignment[n] <= s2.assignment[n], (s1.assignment, s2.assignment)
        assert_broker_agrees(adm, group, s2)
        check_stable_window(feeder, topic, all_w, [b, c], s2)

        t0 = time.monotonic()
        b.kill()
        kill_t = time.time()
        # Nobody can commit b's partitions until its session expired: these are where the
        # successor must resume.
        at_kill = committed_offsets(adm, group, topic)
        s3 = settle([c], tps, 40, after_gen=s2.gen)
        expire_s = time.monotonic() - t0
        assert s3.assignment["c"] == frozenset(tps)
        assert_broker_agrees(adm, group, s3)
        check_stable_window(feeder, topic, all_w, [c], s3)
        # c took b's partitions over exactly at b's committed offsets.
        resumed = first_offsets(c, topic, after=kill_t)
        for p in s2.parts("b"):
            assert resumed.get(p) == at_kill[p], \
                f"c took p{p} over at {resumed.get(p)}, the committed offset was {at_kill[p]}"
            assert at_kill[p] >= b.committed()[(topic, p)], (at_kill, b.committed())

        d = start("d")
        s4 = settle([c, d], tps, 30, after_gen=s3.gen)
        assert sorted(len(x) for x in s4.assignment.values()) == [3, 3], s4.assignment
        assert_broker_agrees(adm, group, s4)
        check_stable_window(feeder, topic, all_w, [c, d], s4)
    finally:
        feeder.stop()

    delivered = {(topic, p, o): v for p, o, v, _ in feeder.snapshot()}
    again = check_exactly_once(delivered, all_w, killed={"b"})
    assert_no_commit_errors([a, c, d])
    assert_exclusive_ownership(all_w, killed_at={"b": kill_t})
    # Leaving is immediate; a crashed member is only noticed after its session timeout.
    assert expire_s >= SESSION_MS / 1000 * 0.8, \
        f"killed member replaced after {expire_s:.1f}s, before its {SESSION_MS} ms session expired"
    assert expire_s < SESSION_MS / 1000 + 10, f"killed member replaced only after {expire_s:.1f}s"
    assert leave_s < expire_s, f"clean leave took {leave_s:.1f}s, session expiry {expire_s:.1f}s"
    print(f"\nepochs {s1.gen}->{s2.gen}->{s3.gen}->{s4.gen}, leave {leave_s:.1f}s, expiry "
          f"{expire_s:.1f}s, {len(delivered)} records, {again} re-consumed after the kill; "
          f"final {({n: sorted(p for _, p in x) for n, x in s4.assignment.items()})}")
    c.close()
    d.close()
    from confluent_kafka import ConsumerGroupState
    dd = describe(adm, group)
    assert (dd.state, dd.members) == (ConsumerGroupState.EMPTY, []), (dd.state, dd.members)
    final = committed_offsets(adm, group, topic)
    ends = {}
    for (_, p, o) in delivered:
        ends[p] = max(ends.get(p, 0), o + 1)
    assert final == ends, f"committed offsets {final} != end offsets {ends}"


def test_consumer_protocol_commit_resume(cp_broker, cworkers, topic):
    """Committed offsets: a member consumes and commits, closes; a new process in the same
    group starts exactly at the committed offsets (no gap, no duplicate). Then with a second
    member sharing the partitions one is SIGKILLed: the survivor takes its partitions over
    exactly at the committed offsets read right after the kill."""
    bs = cp_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    tps = [(topic, p) for p in PARTS]
    all_w = []

    def start(name):
        w = cworkers(bs, group, [topic], name)
        all_w.append(w)
        return w

    delivered = produce(bs, [(topic, i % 6, f"first-{i}") for i in range(120)])
    a = start("a")
    wait_until(lambda: len(a.consumed()) >= 120 and
               all(a.committed().get(tp) == 20 for tp in tps), 30,
               what="a to consume and commit the first 120 records")
    a.close()
    assert committed_offsets(adm, group, topic) == {p: 20 for p in PARTS}

    delivered.update(produce(bs, [(topic, i % 6, f"second-{i}") for i in range(60)]))
    b = start("b")
    wait_until(lambda: len(b.consumed()) >= 60 and
               all(b.committed().get(tp) == 30 for tp in tps), 30,
               what="the restarted consumer to consume and commit 60 new records")
    assert first_offsets(b, topic) == {p: 20 for p in PARTS}, \
        f"new process did not resume at the committed offsets: {first_offsets(b, topic)}"
    assert sorted((p, o) for _, _, p, o, *_ in b.consumed()) == \
        sorted((p, o) for p in PARTS for o in range(20, 30))

    # Two members; the second is killed mid-stream with a background producer running.
    s1 = settle([b], tps, 20)
    feeder = Feeder(bs, topic, PARTS, prefix="third").start()
    try:
        c = start("c")
        s2 = settle([b, c], tps, 30, after_gen=s1.gen)
        assert sorted(len(x) for x in s2.assignment.values()) == [3, 3], s2.assignment
        check_stable_window(feeder, topic, all_w, [b, c], s2)
        c_parts = s2.parts("c")
        c.kill()
        kill_t = time.time()
        at_kill = committed_offsets(adm, group, topic)
        s3 = settle([b], tps, 40, after_gen=s2.gen)
        check_stable_window(feeder, topic, all_w, [b], s3)
    finally:
        feeder.stop()
    resumed = first_offsets(b, topic, after=kill_t)
    for p in c_parts:
        assert resumed.get(p) == at_kill[p], \
            f"b took p{p} over at {resumed.get(p)}, the committed offset was {at_kill[p]}"
        assert at_kill[p] >= c.committed()[(topic, p)], (at_kill, c.committed())
    delivered.update({(topic, p, o): v for p, o, v, _ in feeder.snapshot()})
    again = check_exactly_once(delivered, all_w, killed={"c"})
    assert_no_commit_errors([a, b])
    assert_exclusive_ownership(all_w, killed_at={"c": kill_t})
    b.close()
    ends = {}
    for (_, p, o) in delivered:
        ends[p] = max(ends.get(p, 0), o + 1)
    assert committed_offsets(adm, group, topic) == ends
    print(f"\n{len(delivered)} records, {again} re-consumed after the kill")


def test_consumer_protocol_broker_restart(cp_broker, cworkers, topic):
    """Membership is in memory: after a broker restart (SIGTERM, same data dir) the members'
    heartbeats get UNKNOWN_MEMBER_ID, they lose their partitions and rejoin with epoch 0,
    and the group settles again on an exact cover that describe agrees with. Committed
    offsets are durable: every partition resumes exactly at its committed offset (nothing
    consumed again, nothing skipped)."""
    bs = cp_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    tps = [(topic, p) for p in PARTS]
    delivered = produce(bs, [(topic, i % 6, f"before-{i}") for i in range(120)])
    ws = [cworkers(bs, group, [topic], n) for n in ("a", "b")]
    s1 = settle(ws, tps, 40)
    assert_broker_agrees(adm, group, s1)
    wait_until(lambda: committed_offsets(adm, group, topic) == {p: 20 for p in PARTS}, 30,
               what="the first 120 records to be consumed and committed")

    m = marks(ws)
    restart_t = time.time()
    cp_broker.restart()
    # A fresh admin client: the old one may sit in its reconnect backoff (up to 10 s).
    adm = AdminClient({"bootstrap.servers": bs})
    s2 = settle(ws, tps, 60, since=m)
    assert sorted(len(x) for x in s2.assignment.values()) == [3, 3], s2.assignment
    assert_broker_agrees(adm, group, s2)
    lost_at = {}
    for w in ws:
        after = w.assignment_events()[m[w.name]:]
        lost = [e for e in after if e["ev"] == "lost"]
        assert lost, \
            f"{w.name} did not lose its partitions when the restarted broker forgot it: {after}"
        lost_at[w.name] = lost[0]["t"]
    assert committed_offsets(adm, group, topic) == {p: 20 for p in PARTS}

    delivered.update(produce(bs, [(topic, i % 6, f"after-{i}") for i in range(120)]))
    wait_until(lambda: committed_offsets(adm, group, topic) == {p: 40 for p in PARTS}, 30,
               what="the records produced after the restart to be consumed and committed")
    for w in ws:
        for p, o in first_offsets(w, topic, after=restart_t).items():
            assert o == 20, f"{w.name} resumed p{p} at {o} after the restart, committed was 20"
    check_exactly_once(delivered, ws)
    # Before the restart, and after every member rejoined (between the restart and a
    # member's lost callback it still holds partitions the restarted broker knows nothing
    # of: the zombie window every coordinator failover has).
    assert_exclusive_ownership(ws, until=restart_t)
    assert_exclusive_ownership(ws, after=lost_at)
    # librdkafka reports the lost connection while the broker restarts.
    assert_no_commit_errors(ws, allowed_errors={"_TRANSPORT", "_ALL_BROKERS_DOWN"})
    for w in ws:
        w.close()
    print(f"\nepoch {s1.gen} before, {s2.gen} after the restart; {dict(s2.members)}")


def test_consumer_protocol_range_assignor(cp_broker, cworkers, topic):
    """group.remote.assignor=range: per topic, contiguous ranges in the same member order
    for every topic (co-partitioned: equal partition counts give each member the same
    partition numbers in both topics), the first members one partition more; describe
    reports the assignor as `range`."""
    bs = cp_broker.bootstrap
    ta, tb = f"{topic}-a", f"{topic}-b"
    adm = create_topic(bs, ta, 7)
    create_topic(bs, tb, 7)
    group = f"g-{topic}"
    tps = [(t, p) for t in (ta, tb) for p in range(7)]
    ws = [cworkers(bs, group, [ta, tb], n, assignor="range") for n in ("a", "b", "c")]
    s = settle(ws, tps, 40)
    assert_broker_agrees(adm, group, s, assignor="range")
    per_topic = {}
    for t in (ta, tb):
        ranges = []
        for n, owned in s.assignment.items():
            ps = sorted(p for tt, p in owned if tt == t)
            assert ps and ps == list(range(ps[0], ps[-1] + 1)), \
                f"{n}'s partitions of {t} are not a contiguous range: {ps}"
            ranges.append((ps[0], len(ps), n))
        ranges.sort()
        assert [x[1] for x in ranges] == [3, 2, 2], f"range sizes of {t}: {ranges}"
        per_topic[t] = [x[2] for x in ranges]
    assert per_topic[ta] == per_topic[tb], f"member order differs between topics: {per_topic}"
    for n, owned in s.assignment.items():
        assert sorted(p for t, p in owned if t == ta) == sorted(p for t, p in owned if t == tb), \
            f"{n} is not co-partitioned: {sorted(owned)}"

    # Records of both topics go to the owners only, once.
    delivered = produce(bs, [(t, p, f"{t}-{p}-{i}") for t in (ta, tb) for p in range(7)
                             for i in range(5)])
    check_exactly_once(delivered, ws)
    got = consumed_by_key(ws)
    wrong = [(k, x[0][1]) for k, x in got.items() if x[0][1] != s.owner(k[:2])]
    assert not wrong, f"records consumed by non-owners: {wrong[:10]}"
    assert_no_commit_errors(ws)
    assert_exclusive_ownership(ws)
    for w in ws:
        w.close()


def test_consumer_protocol_regex_subscription(cp_broker, cworkers, topic):
    """subscribe(["^prefix-.*"]) is sent as SubscribedTopicRegex and resolved by the broker:
    a matching topic created after the members joined is picked up and assigned (with its
    records consumed from offset 0); a non-matching topic never is."""
    bs = cp_broker.bootstrap
    prefix = f"rx{time.monotonic_ns() % 100000}"
    t1, t2, other = f"{prefix}-one", f"{prefix}-two", f"not{prefix}-x"
    adm = create_topic(bs, t1, 3)
    create_topic(bs, other, 2)
    group = f"g-{topic}"
    ws = [cworkers(bs, group, [f"^{prefix}-.*"], n) for n in ("a", "b")]
    s1 = settle(ws, [(t1, p) for p in range(3)], 40)
    assert_broker_agrees(adm, group, s1)
    delivered = produce(bs, [(t1, p, f"one-{p}-{i}") for p in range(3) for i in range(5)]
                        + [(other, p, f"other-{p}") for p in range(2)])
    delivered = {k: v for k, v in delivered.items() if k[0] != other}

    t0 = time.monotonic()
    for f in adm.create_topics([NewTopic(t2, num_partitions=3, replication_factor=1)]).values():
        f.result(timeout=15)
    both = [(t, p) for t in (t1, t2) for p in range(3)]
    s2 = settle(ws, both, 40, after_gen=s1.gen)
    picked_s = time.monotonic() - t0
    assert sorted(len(x) for x in s2.assignment.values()) == [3, 3], s2.assignment
    assert_broker_agrees(adm, group, s2)
    delivered.update(produce(bs, [(t2, p, f"two-{p}-{i}") for p in range(3) for i in range(5)]))
    check_exactly_once(delivered, ws)
    assert all(t != other for w in ws for e in w.assignment_events() for t, _ in e["tps"]), \
        "a topic not matching the regex was assigned"
    assert_no_commit_errors(ws)
    assert_exclusive_ownership(ws)
    for w in ws:
        w.close()
    print(f"\nnew matching topic assigned {picked_s:.1f}s after its creation")


def test_consumer_protocol_rejects_classic_member(cp_broker, cworkers, topic):
    """A classic consumer (group.protocol=classic) subscribing with the group id of a
    consumer-protocol group with members gets INCONSISTENT_GROUP_PROTOCOL from JoinGroup
    (surfaced as a consumer error), is never assigned anything, and the group is not
    disturbed: same epoch and assignments, still STABLE, records still consumed once by
    their owners. ListGroups shows the group once, as type CONSUMER.

    (Kafka 3.8+ would instead admit the classic member into the consumer group through
    the classic-protocol interop of KIP-848's online migration; Klamm refuses mixing.)"""
    from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType
    bs = cp_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    tps = [(topic, p) for p in PARTS]
    feeder = Feeder(bs, topic, PARTS).start()
    ws = [cworkers(bs, group, [topic], n) for n in ("a", "b")]
    try:
        s1 = settle(ws, tps, 40)
        assert_broker_agrees(adm, group, s1)
        m = marks(ws)

        assigned, errors = [], []
        classic = Consumer({"bootstrap.servers": bs, "group.id": group,
                            "group.protocol": "classic", "client.id": "classic",
                            "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                            "heartbeat.interval.ms": 500})
        classic.subscribe([topic], on_assign=lambda c, ps: assigned.append(ps))
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and len(errors) < 2:
                msg = classic.poll(0.1)
                if msg is not None:
                    assert msg.error() is not None, f"classic consumer got a record {msg.offset()}"
                    errors.append(msg.error())
            assert errors, "the classic consumer saw no JoinGroup error in 15s"
            assert all(e.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL for e in errors), \
                f"classic consumer errors {[str(e) for e in errors]}, want INCONSISTENT_GROUP_PROTOCOL"
            assert not assigned and not classic.assignment(), \
                f"the classic consumer was assigned {assigned}"

            listed = [g for g in adm.list_consumer_groups().result(timeout=15).valid
                      if g.group_id == group]
            assert len(listed) == 1, f"group listed {len(listed)} times"
            assert listed[0].type == ConsumerGroupType.CONSUMER, listed[0].type
            assert listed[0].state == ConsumerGroupState.STABLE, listed[0].state
            assert_broker_agrees(adm, group, s1)
            check_stable_window(feeder, topic, ws, ws, s1)
        finally:
            classic.close()
        assert marks(ws) == m, \
            f"the classic join disturbed the group: {[w.assignment_events()[m[w.name]:] for w in ws]}"
    finally:
        feeder.stop()
    delivered = {(topic, p, o): v for p, o, v, _ in feeder.snapshot()}
    check_exactly_once(delivered, ws)
    assert_no_commit_errors(ws)
    assert_exclusive_ownership(ws)
    for w in ws:
        w.close()
