"""Exactly-once consume-transform-produce through SIGKILLs (confluent-kafka).

A worker process (this file run as a script) reads the input topic in a consumer group at
read_committed, writes each record transformed to the same partition of the output topic
inside a transaction, and every N records sends the consumed offsets with
send_offsets_to_transaction (with the consumer's group metadata, KIP-447) and commits.
The test SIGKILLs the worker at seeded random points (after reaching random progress
thresholds, plus a random delay, so kills land mid-transaction, mid-commit and during
startup) and starts a new one with the same transactional.id, five times, then lets the
last one finish. Kafka's guarantees make the output, read at read_committed, exactly the
transformed input: nothing missing, nothing twice, in input order per partition. The new
worker's init_transactions aborts the killed one's open transaction (and with it its
pending offsets), and its consumer resumes from the offsets committed with the last
committed transaction.

Worker protocol (stdout, one JSON object per line): {"ev": "ready"} once
init_transactions returned and it subscribed, {"ev": "commit", "pos": {partition:
next offset}, "n": records in the transaction} after each commit, {"ev": "error", ...}
then exit 3 on any transactional error, {"ev": "closed"} after a clean close ("close" on
stdin or EOF).
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

PARTITIONS = 2
PER_PARTITION = 1000
COMMIT_EVERY = 25
KILLS = 5
SEED = 20260525
SESSION_MS = 2000
BROKER_ARGS = ("--group-min-session-timeout-ms", "1000",
               "--transaction-abort-timed-out-transaction-cleanup-interval-ms", "200")


def transform(value):
    return b"eos:" + value[::-1]


# =========================================================================== worker side
def _emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker_main(cfg):
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

    stop = threading.Event()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "close":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    p = Producer({"bootstrap.servers": cfg["bootstrap"], "transactional.id": cfg["txn_id"],
                  "transaction.timeout.ms": 10000, "linger.ms": 5, "socket.timeout.ms": 10000})
    p.init_transactions(30)
    c = Consumer({"bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"],
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": SESSION_MS,
                  "heartbeat.interval.ms": 300, "max.poll.interval.ms": 10000,
                  "partition.assignment.strategy": "range", "fetch.wait.max.ms": 50,
                  "socket.timeout.ms": 10000})
    state = {"in_txn": False, "pending": 0, "next": {}}

    def abort_open():
        if state["in_txn"]:
            p.abort_transaction(30)
        state.update(in_txn=False, pending=0, next={})

    def on_revoke(consumer, parts):
        # Uncommitted work on revoked partitions must not be committed by this member.
        abort_open()

    c.subscribe([cfg["input"]], on_revoke=on_revoke)
    _emit({"ev": "ready", "pid": os.getpid()})

    def commit():
        offsets = [TopicPartition(cfg["input"], part, off) for part, off in state["next"].items()]
        p.send_offsets_to_transaction(offsets, c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        _emit({"ev": "commit", "pos": {str(k): v for k, v in state["next"].items()},
               "n": state["pending"]})
        state.update(in_txn=False, pending=0)

    try:
        while not stop.is_set():
            msgs = c.consume(num_messages=COMMIT_EVERY, timeout=0.1)
            for m in msgs:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(m.error())
                    continue
                if not state["in_txn"]:
                    p.begin_transaction()
                    state["in_txn"] = True
                p.produce(cfg["output"], key=m.key(), value=transform(m.value()),
                          partition=m.partition(),
                          headers=[("src", f"{m.partition()}:{m.offset()}".encode())])
                state["next"][m.partition()] = m.offset() + 1
                state["pending"] += 1
                time.sleep(cfg["pace"])
                if state["pending"] >= COMMIT_EVERY:
                    commit()
            if not msgs and state["in_txn"] and state["pending"] > 0:
                commit()  # the tail of the input
            p.poll(0)
    except KafkaException as e:
        err = e.args[0]
        _emit({"ev": "error", "err": str(err), "fatal": err.fatal(),
               "abortable": err.txn_requires_abort(), "retriable": err.retriable()})
        os._exit(3)
    abort_open()
    c.close()
    _emit({"ev": "closed"})


# =========================================================================== test side
class Worker:
    def __init__(self, cfg, log_path):
        self.log_path = log_path
        self.events = []
        self.lock = threading.Lock()
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), json.dumps(cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                bufsize=1, env=dict(os.environ, PYTHONUNBUFFERED="1"))
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

    def evs(self, kind):
        with self.lock:
            return [e for e in self.events if e["ev"] == kind]

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.reader.join(5)

    def close(self, timeout=30):
        try:
            self.proc.stdin.write("close\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(5)
        return rc

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return "<no log>"


class Progress:
    """Committed input position, as reported by the workers (monotonic across them)."""

    def __init__(self):
        self.pos = {}

    def update(self, worker):
        for e in worker.evs("commit"):
            for k, v in e["pos"].items():
                self.pos[int(k)] = max(self.pos.get(int(k), 0), v)
        return sum(self.pos.values())


@pytest.mark.timeout(150)
def test_exactly_once_through_sigkills(broker_factory, topic, tmp_path):
    from kclients import Confluent, Rec, assert_same
    from ktxn import RC, RU, by_tp, committed, create_topics, read_all

    b = broker_factory(*BROKER_ARGS)
    src, out, group = topic + "-in", topic + "-out", "g-" + topic
    create_topics(b.bootstrap, {src: PARTITIONS, out: PARTITIONS})
    rnd = random.Random(SEED)
    ts = int(time.time() * 1000) - 60_000
    inputs = {}
    for part in range(PARTITIONS):
        inputs[part] = [Rec(f"k{part}-{i}".encode() if i % 5 else None,
                            f"v{part}-{i}:".encode() + rnd.randbytes(rnd.randint(0, 40)), (),
                            ts + i) for i in range(PER_PARTITION)]
        Confluent.produce(b.bootstrap, src, inputs[part], partition=part)
    total = PARTITIONS * PER_PARTITION

    cfg = dict(bootstrap=b.bootstrap, txn_id="eos-" + topic, group=group, input=src,
               output=out, pace=0.001)
    # Kill plan: one kill shortly after a start (startup, init, rebalance), the others at
    # random progress thresholds plus a random delay (mid-transaction or mid-commit).
    thresholds = sorted(rnd.sample(range(150, total - 150), KILLS - 1))
    plan = [("progress", th, rnd.uniform(0.0, 0.15)) for th in thresholds]
    plan.insert(rnd.randrange(KILLS), ("startup", None, rnd.uniform(0.2, 1.2)))
    progress = Progress()
    workers = []

    def start():
        w = Worker(cfg, str(tmp_path / f"worker{len(workers)}.log"))
        workers.append(w)
        return w

    try:
        w = start()
        for kind, threshold, delay in plan:
            deadline = time.monotonic() + 40
            if kind == "progress":
                while progress.update(w) < threshold:
                    assert w.proc.poll() is None, \
                        f"worker died (rc={w.proc.returncode}): {w.evs('error')}\n{w.log_tail()}"
                    assert time.monotonic() < deadline, \
                        f"no progress to {threshold} (at {progress.update(w)}):\n{w.log_tail()}"
                    time.sleep(0.01)
            time.sleep(delay)
            assert w.proc.poll() is None, \
                f"worker died (rc={w.proc.returncode}): {w.evs('error')}\n{w.log_tail()}"
            w.kill()
            progress.update(w)
            w = start()
        # The last worker runs to the end of the input.
        wait_deadline = time.monotonic() + 60
        while progress.update(w) < total:
            assert w.proc.poll() is None, \
                f"worker died (rc={w.proc.returncode}): {w.evs('error')}\n{w.log_tail()}"
            assert time.monotonic() < wait_deadline, \
                f"stuck at {progress.update(w)}/{total}:\n{w.log_tail()}"
            time.sleep(0.05)
        rc = w.close()
        assert rc == 0 and w.evs("closed"), f"last worker exited with {rc}:\n{w.log_tail()}"
    finally:
        for x in workers:
            x.kill()

    assert progress.pos == {p: PER_PARTITION for p in range(PARTITIONS)}, progress.pos
    in_tps = [(src, p) for p in range(PARTITIONS)]
    assert committed(b.bootstrap, group, in_tps) == {(src, p): PER_PARTITION
                                                     for p in range(PARTITIONS)}
    # Exactly once, in order: output partition p is input partition p, transformed.
    # Offsets depend on where the kills landed (aborted batches and markers take offsets)
    # and timestamps are the worker's: content is compared, offsets must only ascend.
    out_tps = [(out, p) for p in range(PARTITIONS)]
    got = read_all("confluent", b.bootstrap, out_tps, RC, total, timeout=30, settle=1.0)
    have = by_tp(got)
    assert sorted(have) == out_tps, sorted(have)
    for p in range(PARTITIONS):
        rs = have[(out, p)]
        want = [Rec(r.key, transform(r.value), (("src", f"{p}:{i}".encode()),))
                for i, r in enumerate(inputs[p])]
        try:
            assert_same([Rec(g.rec.key, g.rec.value, g.rec.headers) for g in rs], want)
        except AssertionError as e:
            srcs = [dict(g.rec.headers).get("src") for g in rs]
            dupes = sorted({s for s in srcs if srcs.count(s) > 1})[:10]
            raise AssertionError(f"output partition {p} at read_committed: {e}\n"
                                 f"duplicated sources: {dupes}") from None
        offs = [g.offset for g in rs]
        assert offs == sorted(set(offs)), f"output partition {p}: offsets not ascending"
    # Informational: what the kills left behind in aborted transactions.
    ru = read_all("confluent", b.bootstrap, out_tps, RU, total, timeout=30, settle=1.0)
    assert len(ru) >= total
    print(f"{len(workers)} workers, {sum(len(x.evs('commit')) for x in workers)} commits, "
          f"{len(ru) - total} output records in aborted transactions")


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))
