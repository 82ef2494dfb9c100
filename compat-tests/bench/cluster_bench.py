#!/usr/bin/env python3
"""Klamm cluster benchmark: prints numbers, asserts nothing about speed.

Starts ZooKeeper (Debian's zkServer.sh, a zoo.cfg of its own on a free port) and three
brokers (node ids 1, 2, 3, free loopback ports, data dirs in one temp dir), then, on that
one cluster:
  1. produce throughput of N x 100-byte messages with an idempotent confluent-kafka
     producer (acks=all, linger.ms=5, round-robin over the partitions) to a 6-partition
     topic with replication factor 3 and to one with replication factor 1; the ratio;
  2. produce latency p50/p99 (produce() to delivery callback, per message) at a fixed
     rate (default 2000 msgs/s for 5 s, linger.ms=0) to both topics;
  3. failover after SIGKILL: a producer (acks=all, idempotent, long message.timeout.ms)
     writes continuously to a 1-partition RF=3 topic, the partition's leader gets SIGKILL,
     and the time from the kill to the first acknowledgement of a message produced after
     it is measured (the controller moves leadership once the killed broker's ZooKeeper
     session expires). A consumer then reads the topic from the beginning: every
     acknowledged message must be there exactly once;
  4. controlled shutdown: the killed broker is started again (same id and data dir) and
     waited for until it is back in the ISR, then the partition's (new) leader gets SIGTERM;
     the same time to first ack, the delivery errors the producer saw (should be 0), and
     the same exactly-once check.
Usage: cluster_bench.py KLAMM_BIN [--messages N] [--rate R] [--seconds S]
       [--session-timeout-ms MS] [--keep]
Every process it starts is stopped by PID at the end, and the temp dir removed (unless
--keep), on failure too.
"""
import argparse
import collections
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ZK_SERVER = "/usr/share/zookeeper/bin/zkServer.sh"
VALUE = b"v" * 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({e})"


class Cluster:
    """ZooKeeper plus brokers 1..n, each a Popen stopped by its PID."""

    def __init__(self, binary, root, session_ms, lag_ms, log_level):
        self.binary, self.root = binary, root
        self.session_ms, self.lag_ms, self.log_level = session_ms, lag_ms, log_level
        self.zk = None
        self.zk_port = None
        self.brokers = {}  # id -> Popen
        self.ports = {}  # id -> port
        self.logs = {}  # id -> log path

    def start_zookeeper(self, timeout=60):
        self.zk_port = free_port()
        data = os.path.join(self.root, "zk")
        os.makedirs(data)
        cfg = os.path.join(self.root, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=500\nminSessionTimeout=1000\ndataDir={data}\n"
                    f"clientPort={self.zk_port}\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\n")
        env = dict(os.environ, ZOOCFGDIR=self.root, ZOO_LOG_DIR=self.root)
        # start-foreground execs java, so the Popen pid is ZooKeeper's own.
        self.zk = subprocess.Popen([ZK_SERVER, "start-foreground", cfg], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.zk.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.zk.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.zk_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"ZooKeeper did not listen on {self.zk_port} within {timeout} s")

    def start_broker(self, node, timeout=30):
        """Starts broker `node` (again, on its old port and data dir after a stop) and waits,
        bounded, for its ready line. Returns seconds from exec to ready."""
        port = self.ports.setdefault(node, free_port())
        log = self.logs.setdefault(node, os.path.join(self.root, f"b{node}.log"))
        start = os.path.getsize(log) if os.path.exists(log) else 0
        cmd = [self.binary, "--listen", f"127.0.0.1:{port}",
               "--data-dir", os.path.join(self.root, f"b{node}"),
               "--node-id", str(node),
               "--zookeeper-connect", f"127.0.0.1:{self.zk_port}/bench",
               "--zookeeper-session-timeout-ms", str(self.session_ms),
               "--replica-lag-time-max-ms", str(self.lag_ms),
               "--log-level", self.log_level]
        t0 = time.perf_counter()
        with open(log, "ab") as f:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f)
        self.brokers[node] = proc
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(log, "rb") as f:
                f.seek(start)
                if b"klamm ready on" in f.read():
                    return time.perf_counter() - t0
            if proc.poll() is not None:
                raise RuntimeError(f"broker {node} exited with {proc.returncode}:\n{tail(log)}")
            time.sleep(0.02)
        raise RuntimeError(f"broker {node}: no ready line within {timeout} s:\n{tail(log)}")

    def alive(self):
        return sorted(n for n, p in self.brokers.items() if p.poll() is None)

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.ports[n]}" for n in self.alive())

    def signal(self, node, sig):
        self.brokers[node].send_signal(sig)

    def stop_all(self):
        for node, proc in self.brokers.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for node, proc in self.brokers.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                print(f"broker {node} (pid {proc.pid}) ignored SIGTERM for 15 s; SIGKILL",
                      file=sys.stderr)
                proc.kill()
                proc.wait(10)
        if self.zk is not None and self.zk.poll() is None:
            self.zk.kill()
            self.zk.wait(15)


def admin(cluster):
    # log_level 4: no notice when a short-lived handle drops a queued event on close.
    return AdminClient({"bootstrap.servers": cluster.bootstrap(), "log_level": 4})


def describe(cluster, topic):
    """(controller id, {partition: (leader, replicas, isr)}) from a fresh Metadata request."""
    md = admin(cluster).list_topics(topic, timeout=5)
    t = md.topics[topic]
    if t.error is not None:
        return md.controller_id, None
    return md.controller_id, {p.id: (p.leader, list(p.replicas), sorted(p.isrs))
                              for p in t.partitions.values()}


def wait_for(cluster, topic, ok, timeout, what):
    """Polls the topic's metadata until ok(parts) or the timeout; returns the parts."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            _, parts = describe(cluster, topic)
            last = parts
            if parts and ok(parts):
                return parts
        except Exception as e:  # a broker just went away: ask again
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"{topic}: {what} not reached within {timeout} s; last metadata: {last}")


def create_topic(cluster, topic, partitions, rf, timeout=30):
    a = admin(cluster)  # kept alive until the result arrives
    a.create_topics([NewTopic(topic, partitions, rf)])[topic].result(timeout)
    del a
    return wait_for(cluster, topic,
                    lambda ps: len(ps) == partitions and all(
                        l >= 0 and len(isr) == rf for l, _, isr in ps.values()),
                    timeout, f"{partitions} partitions with a leader and {rf} in-sync replicas")


def producer_conf(cluster, **extra):
    conf = {"bootstrap.servers": cluster.bootstrap(), "acks": "all",
            "enable.idempotence": True, "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000}
    conf.update(extra)
    return conf


def throughput(cluster, topic, partitions, n):
    """Seconds to produce and have acknowledged n x 100 B, round-robin over the partitions."""
    counts = {"ok": 0, "err": 0}
    errors = collections.Counter()

    def done(err, msg):
        if err is None:
            counts["ok"] += 1
        else:
            counts["err"] += 1
            errors[err.name()] += 1

    p = Producer(producer_conf(cluster, on_delivery=done))
    for part in range(partitions):  # connections and producer id before the clock starts
        p.produce(topic, b"warm-up", partition=part)
    if p.flush(30) != 0 or counts["ok"] != partitions:
        raise RuntimeError(f"{topic}: warm-up not acknowledged ({counts}, {dict(errors)})")
    counts["ok"] = 0
    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, VALUE, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.001)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(120)
    elapsed = time.perf_counter() - t0
    if left or counts["ok"] != n:
        raise RuntimeError(f"{topic}: {counts['ok']} of {n} acknowledged, {left} still queued "
                           f"after 120 s, errors {dict(errors)}")
    return elapsed


def latency(cluster, topic, partitions, rate, seconds):
    """Per-message produce() -> delivery callback latencies (ms) at a fixed rate."""
    lat, errors = [], collections.Counter()

    def done(err, msg, sent):
        if err is None:
            lat.append((time.perf_counter() - sent) * 1000)
        else:
            errors[err.name()] += 1

    p = Producer(producer_conf(cluster, **{"linger.ms": 0}))
    for part in range(partitions):
        p.produce(topic, b"warm-up", partition=part)
    p.flush(30)
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        target = start + i * interval
        while True:
            now = time.perf_counter()
            if now >= target:
                break
            p.poll(min(target - now, 0.001))
        sent = time.perf_counter()
        p.produce(topic, VALUE, partition=i % partitions,
                  on_delivery=lambda e, m, s=sent: done(e, m, s))
        p.poll(0)
    left = p.flush(60)
    if left or errors or not lat:
        raise RuntimeError(f"{topic}: latency run: {left} unacknowledged, errors {dict(errors)}")
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], lat[-1], len(lat)


def failover(cluster, topic, phase, sig, rate, settle, after, bound):
    """Produces `rate` msgs/s to partition 0 of `topic`; after `settle` s sends `sig` to its
    leader. Returns a dict of what happened; the values acknowledged are in ["acked"]."""
    controller, parts = describe(cluster, topic)
    leader, replicas, isr = parts[0]
    if leader not in cluster.alive():
        raise RuntimeError(f"{topic}: leader {leader} is not a live broker ({cluster.alive()})")
    sent = []  # produce time of message i
    acked = {}  # value -> ack time
    errors = collections.Counter()  # final delivery errors (librdkafka retries the others)
    events = collections.Counter()  # error_cb: connection losses, all brokers down, fatal

    mark = {"sig": None, "first_new": None, "first_any": None}

    def done(err, msg):
        if err is not None:
            errors[f"{err.name()}{' (fatal)' if err.fatal() else ''}"] += 1
            return
        now = time.perf_counter()
        v = msg.value()
        acked[v] = now
        if mark["sig"] is None or b"warm-up" in v:
            return
        if mark["first_any"] is None:
            mark["first_any"] = now
        if mark["first_new"] is None and sent[int(v.split(b"-")[1])] >= mark["sig"]:
            mark["first_new"] = now

    def on_error(err):
        events[f"{err.name()}{' (fatal)' if err.fatal() else ''}"] += 1

    p = Producer(producer_conf(cluster, on_delivery=done, error_cb=on_error,
                               **{"message.timeout.ms": 300_000, "log_level": 2}))
    p.produce(topic, f"{phase}-warm-up".encode(), partition=0)
    p.flush(30)
    interval = 1.0 / rate
    start = time.perf_counter()
    t_sig, t_exit = None, None
    i = 0
    while True:
        now = time.perf_counter()
        if t_sig is None and now - start >= settle:
            cluster.signal(leader, sig)
            t_sig = mark["sig"] = time.perf_counter()
        if t_sig is not None:
            if t_exit is None and cluster.brokers[leader].poll() is not None:
                t_exit = time.perf_counter()
            first_new = mark["first_new"]
            if first_new is not None and now - first_new >= after:
                break
            if now - t_sig >= bound:
                break
        target = start + i * interval
        if now < target:
            p.poll(min(target - now, 0.001))
            continue
        sent.append(time.perf_counter())
        p.produce(topic, f"{phase}-{i:08d}".encode(), partition=0)
        i += 1
        p.poll(0)
    left = p.flush(max(30, bound))
    if t_exit is None:
        try:
            cluster.brokers[leader].wait(15)
        except subprocess.TimeoutExpired:
            pass
        if cluster.brokers[leader].poll() is not None:
            t_exit = time.perf_counter()
    first_new, first_any = mark["first_new"], mark["first_any"]
    new_controller, new_parts = None, None
    try:
        new_controller, new_parts = describe(cluster, topic)
    except Exception:
        pass
    return {
        "leader": leader, "isr_before": isr, "controller": controller,
        "new_controller": new_controller, "parts_after": new_parts,
        "sent": len(sent), "acked": acked, "left": left, "errors": errors, "events": events,
        "to_first_new_ack": None if first_new is None else first_new - t_sig,
        "to_first_any_ack": None if first_any is None else first_any - t_sig,
        "to_exit": None if t_exit is None else t_exit - t_sig,
        "exit_code": cluster.brokers[leader].returncode, "bound": bound,
    }


def read_all(cluster, topic, timeout=60):
    """Every value of partition 0 of `topic`, from the beginning to the high watermark."""
    c = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": f"verify-{time.time_ns()}",
                  "enable.auto.commit": False, "enable.partition.eof": True, "log_level": 2})
    try:
        tp = TopicPartition(topic, 0)
        low, high = c.get_watermark_offsets(tp, timeout=10)
        c.assign([TopicPartition(topic, 0, low)])
        values, pos = [], low
        deadline = time.time() + timeout
        while pos < high and time.time() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if pos < high:
                        continue
                    break
                raise RuntimeError(f"consume {topic}: {msg.error()}")
            values.append(msg.value())
            pos = msg.offset() + 1
        if pos < high:
            raise RuntimeError(f"consume {topic}: reached offset {pos} of {high} in {timeout} s")
        return values, high
    finally:
        c.close()


def verify(cluster, topic, acked_sets):
    """(acknowledged, missing, duplicated acknowledged, unacknowledged present, log size)."""
    values, high = read_all(cluster, topic)
    count = collections.Counter(values)
    acked = set().union(*acked_sets)
    missing = sum(1 for v in acked if count[v] == 0)
    dups = sum(1 for v in acked if count[v] > 1)
    extra = sum(1 for v in count if v not in acked and b"warm-up" not in v)
    return len(acked), missing, dups, extra, high


def fmt_s(x):
    return "n/a" if x is None else f"{x * 1000:,.0f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--messages", type=int, default=200_000, help="per throughput run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="throughput runs per topic, alternating RF3/RF1; the median is reported")
    ap.add_argument("--rate", type=int, default=2000, help="latency run: messages/s")
    ap.add_argument("--seconds", type=float, default=5, help="latency run: seconds")
    ap.add_argument("--failover-rate", type=int, default=1000, help="failover producer msgs/s")
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--replica-lag-time-max-ms", type=int, default=10000)
    ap.add_argument("--log-level", default="info", help="brokers' --log-level (logs in the temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    args = ap.parse_args()
    print("command: " + " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv), flush=True)
    if not os.path.exists(ZK_SERVER):
        sys.exit(f"{ZK_SERVER} missing: install Debian's zookeeper package")

    t_start = time.perf_counter()
    root = tempfile.mkdtemp(prefix="klamm-cluster-bench-")
    # A private copy, so a rebuild of KLAMM_BIN during the run cannot make the broker
    # restarted in step 4 a different build from the others.
    binary = os.path.join(root, "klamm")
    cluster = Cluster(binary, root, args.session_timeout_ms, args.replica_lag_time_max_ms,
                      args.log_level)
    ok = False
    try:
        shutil.copy2(args.binary, binary)
        cluster.start_zookeeper()
        ready = {n: cluster.start_broker(n) for n in (1, 2, 3)}
        print(f"cluster: ZooKeeper 127.0.0.1:{cluster.zk_port}, brokers "
              + ", ".join(f"{n}@127.0.0.1:{cluster.ports[n]} (ready {ready[n] * 1000:.0f} ms)"
                          for n in (1, 2, 3))
              + f"; session timeout {args.session_timeout_ms} ms, "
                f"replica.lag.time.max.ms {args.replica_lag_time_max_ms}", flush=True)
        # All three must be registered before an RF=3 topic can be placed.
        deadline = time.time() + 30
        while len(admin(cluster).list_topics(timeout=5).brokers) < 3:
            if time.time() > deadline:
                raise RuntimeError("Metadata did not list 3 brokers within 30 s")
            time.sleep(0.1)

        # 1 + 2: throughput and latency, RF3 vs RF1.
        layouts = {}
        for rf in (3, 1):
            layouts[rf] = create_topic(cluster, f"tput-rf{rf}", 6, rf)
        runs = {3: [], 1: []}
        for _ in range(args.rounds):
            for rf in (3, 1):
                runs[rf].append(throughput(cluster, f"tput-rf{rf}", 6, args.messages))
        lats = {}
        for rf in (3, 1):
            layouts[rf] = create_topic(cluster, f"lat-rf{rf}", 6, rf)
            lats[rf] = latency(cluster, f"lat-rf{rf}", 6, args.rate, args.seconds)
        n = args.messages
        print()
        print(f"1. produce throughput: {n:,} x 100 B per run, {args.rounds} run(s) per topic "
              "alternating, median; idempotent, acks=all, linger.ms=5, 6 partitions round-robin")
        print(f"   {'topic':<22} {'msgs/s':>10} {'MB/s':>7}  runs")
        rates = {}
        for rf in (3, 1):
            t = statistics.median(runs[rf])
            rates[rf] = n / t
            leaders = sorted(l for l, _, _ in layouts[rf].values())
            print(f"   {f'6 partitions, RF={rf}':<22} {n / t:>10,.0f} {n * 100 / t / 1e6:>7.1f}  "
                  + ", ".join(f"{x:.2f} s" for x in runs[rf]) + f"  (leaders {leaders})")
        print(f"   ratio RF3/RF1: {rates[3] / rates[1]:.2f}")
        print()
        print(f"2. produce latency: fixed rate {args.rate} msgs/s for {args.seconds:g} s per topic, "
              "per message produce() -> delivery callback; idempotent, acks=all, linger.ms=0")
        print(f"   {'topic':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'acks':>7}")
        for rf in (3, 1):
            p50, p99, worst, cnt = lats[rf]
            print(f"   {f'6 partitions, RF={rf}':<22} {p50:>8.2f} {p99:>8.2f} {worst:>8.2f} {cnt:>7}")
        print(flush=True)

        # 3: SIGKILL the leader of a 1-partition RF=3 topic.
        topic = "failover"
        create_topic(cluster, topic, 1, 3)
        bound = args.session_timeout_ms / 1000 + 30
        k = failover(cluster, topic, "kill", signal.SIGKILL, args.failover_rate, 2.0, 1.0, bound)
        kv = verify(cluster, topic, [k["acked"]])
        report_phase("3. failover after SIGKILL of the leader", k, kv, args,
                     f"ZooKeeper session timeout {args.session_timeout_ms} ms")

        # The killed broker comes back and must rejoin the ISR before the next phase.
        killed = k["leader"]
        t0 = time.perf_counter()
        cluster.start_broker(killed)
        try:
            wait_for(cluster, topic, lambda ps: killed in ps[0][2], 60,
                     f"broker {killed} back in the ISR")
            print(f"   broker {killed} restarted and back in the ISR after "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
        except RuntimeError as e:
            print(f"   broker {killed} restarted but NOT back in the ISR: {e}", flush=True)
        print()

        # 4: SIGTERM the (new) leader.
        s = failover(cluster, topic, "term", signal.SIGTERM, args.failover_rate, 2.0, 1.0, 30)
        sv = verify(cluster, topic, [k["acked"], s["acked"]])
        report_phase("4. controlled shutdown: SIGTERM to the leader", s, sv, args,
                     f"broker exited {fmt_s(s['to_exit'])} after the signal, code {s['exit_code']}")
        print()
        print(f"total runtime {time.perf_counter() - t_start:.0f} s")
        ok = True
    finally:
        try:
            cluster.stop_all()
        finally:
            if not ok:
                for node, log in sorted(cluster.logs.items()):
                    print(f"--- broker {node} log tail ({log}) ---\n{tail(log)}", file=sys.stderr)
            if args.keep or not ok and os.environ.get("KEEP_ON_FAILURE"):
                print(f"kept {root}", file=sys.stderr)
            else:
                shutil.rmtree(root, ignore_errors=True)


def report_phase(title, r, v, args, note):
    acked, missing, dups, extra, high = v
    print(f"{title} ({note})")
    print(f"   1-partition RF=3 topic, producer {args.failover_rate} msgs/s, idempotent, acks=all, "
          f"linger.ms=5, message.timeout.ms=300000")
    print(f"   leader was broker {r['leader']} (ISR {r['isr_before']}), controller {r['controller']}"
          f" -> now controller {r['new_controller']}, partition {r['parts_after']}")
    print(f"   time to first ack of a message produced after the signal: "
          f"{fmt_s(r['to_first_new_ack'])}"
          + (f"  (none within {r['bound']:.0f} s)" if r["to_first_new_ack"] is None else ""))
    print(f"   time to first ack of any message after the signal:         {fmt_s(r['to_first_any_ack'])}")
    print(f"   produced {r['sent'] + 1:,} (incl. 1 warm-up before the signal), acknowledged "
          f"{len(r['acked']):,}, unacknowledged after flush "
          f"{r['left']}, delivery errors {sum(r['errors'].values())}"
          + (f" {dict(r['errors'])}" if r["errors"] else "")
          + f"; client error events {dict(r['events']) or 0}")
    print(f"   exactly-once check (topic read from the beginning, {high:,} records): "
          f"{acked:,} acknowledged so far, missing {missing}, duplicated {dups}, "
          f"unacknowledged present {extra}  -> {'OK' if not (missing or dups) else 'FAILED'}",
          flush=True)


if __name__ == "__main__":
    main()
