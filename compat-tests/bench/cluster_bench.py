#!/usr/bin/env python3
"""Klamm cluster benchmark: prints numbers, asserts nothing about speed.

Starts ZooKeeper (compat-tests/reliability/broker.py's ZooKeeper: Debian's zkServer.sh, a
zoo.cfg of its own on a free port) and three brokers (node ids 1, 2, 3, free loopback ports,
data dirs in one temp dir), then, on that one cluster:
  1. produce throughput of N x 100-byte messages with an idempotent confluent-kafka
     producer (acks=all, linger.ms=5, round-robin over the partitions) to a 6-partition
     topic with replication factor 3 and to one with replication factor 1, after an untimed
     run to each (--warmup-rounds: a JVM compiles its hot code first); the ratio;
  2. produce latency p50/p99 (produce() to delivery callback, per message) at a fixed
     rate (default 2000 msgs/s for 5 s, linger.ms=0) to both topics;
  3. OffsetCommit latency: a consumer group of one (classic protocol) subscribed to the
     6-partition RF=3 topic commits its 6 partitions' offsets synchronously
     (Consumer.commit(offsets, asynchronous=False)), timed one by one, after warm-up commits
     (the first creates __consumer_offsets: replication factor 3, 50 partitions on both
     systems, so a commit waits for that partition's ISR);
  4. failover after SIGKILL: a producer (acks=all, idempotent, long message.timeout.ms)
     writes continuously to a 1-partition RF=3 topic whose leader is placed (manual replica
     assignment) on the controller (default; --failover-leader other: on another broker);
     the leader gets SIGKILL, and the time from the kill to the first acknowledgement of a
     message produced after it is measured (the controller moves leadership once the
     killed broker's session expires). A consumer then reads the topic from the beginning:
     every acknowledged message must be there exactly once;
  5. controlled shutdown: the killed broker is started again (same id and data dir) and
     waited for until it is back in the ISR, then the partition's (new) leader gets SIGTERM;
     the same time to first ack, the delivery errors the producer saw (should be 0), and
     the same exactly-once check.
With --reference kafka, the same run then does all of it again against a three-node Apache
Kafka 4.4 cluster in KRaft combined mode (each node broker and controller, a static quorum
of the three; the jars and JVM settings of compat-tests/kafka/kafka.sh), one cluster at a
time (Klamm's is stopped first), and prints a table of both with the ratio Klamm/Kafka.
Kafka's failure detector is its controller's broker session: broker.session.timeout.ms is
set to Klamm's ZooKeeper session timeout, broker.heartbeat.interval.ms to a third of it (as
ZooKeeper's client pings), and replica.lag.time.max.ms to Klamm's. On a shared machine,
each cluster's part ends with the CPU time other processes took meanwhile (/proc/stat less
this process and its reaped children), which says more than the load average.
Usage: cluster_bench.py KLAMM_BIN [--reference kafka] [--messages N] [--rounds R]
       [--warmup-rounds W] [--rate R] [--seconds S] [--commits N] [--session-timeout-ms MS]
       [--failover-leader controller|other] [--keep]
Every process it starts is stopped by PID at the end, and the temp dir removed (unless
--keep), on failure too.
"""
import argparse
import base64
import collections
import importlib.util
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference  # noqa: E402  kafka.sh's install, JVM settings and Metadata probe


def _import_path(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The reliability battery's process helpers: ZooKeeper, free_port, die_with_parent.
rb = _import_path("reliability_broker", os.path.join(HERE, "..", "reliability", "broker.py"))
free_port = rb.free_port
VALUE = b"v" * 100


def cpu_mark():
    """(wall, CPU seconds the whole machine spent busy, CPU seconds of this process and of
    its children reaped so far): between two marks taken when every child is reaped, the
    difference of the last two is what other processes (other engineers' builds and tests)
    took from this run."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq = map(int, f.readline().split()[1:8])
    t = os.times()
    return (time.perf_counter(), (user + nice + system + irq + softirq) / reference.CLK_TCK,
            t.user + t.system + t.children_user + t.children_system)


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({e})"


class Nodes:
    """What the measurements need of a cluster of nodes 1..3, each a Popen stopped by its PID."""
    ids = (1, 2, 3)

    def __init__(self, root):
        self.root = root
        self.brokers = {}  # id -> Popen
        self.ports = {}  # id -> client port
        self.logs = {}  # id -> log path

    def alive(self):
        return sorted(n for n, p in self.brokers.items() if p.poll() is None)

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.ports[n]}" for n in self.alive())

    def signal(self, node, sig):
        self.brokers[node].send_signal(sig)

    def wait_registered(self, timeout=60):
        """All three must be registered (Kafka: and unfenced) before an RF=3 topic can be placed."""
        deadline = time.time() + timeout
        while True:
            try:
                if len(admin(self).list_topics(timeout=5).brokers) >= len(self.ids):
                    return
            except Exception:  # not serving yet
                pass
            if time.time() > deadline:
                raise RuntimeError(f"Metadata did not list {len(self.ids)} brokers within {timeout} s")
            time.sleep(0.1)

    def stop_brokers(self, bound=15):
        for node, proc in self.brokers.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for node, proc in self.brokers.items():
            try:
                proc.wait(bound)
            except subprocess.TimeoutExpired:
                print(f"   ({self.name} node {node}, pid {proc.pid}, still running {bound} s "
                      "after SIGTERM: SIGKILL)", file=sys.stderr)
                proc.kill()
                proc.wait(10)


class KlammCluster(Nodes):
    """ZooKeeper plus Klamm brokers 1..3."""
    name = "Klamm"

    def __init__(self, binary, root, session_ms, lag_ms, log_level):
        super().__init__(root)
        self.binary = binary
        self.session_ms, self.lag_ms, self.log_level = session_ms, lag_ms, log_level
        self.zk = rb.ZooKeeper(root, "zookeeper")

    def start(self):
        self.zk.start()
        ready = {n: self.start_broker(n) for n in self.ids}
        self.wait_registered()
        return (f"ZooKeeper {self.zk.connect}, brokers "
                + ", ".join(f"{n}@127.0.0.1:{self.ports[n]} (ready {ready[n] * 1000:.0f} ms)"
                            for n in self.ids)
                + f"; --zookeeper-session-timeout-ms {self.session_ms}, "
                  f"--replica-lag-time-max-ms {self.lag_ms}, offsets topic: the defaults "
                  "(--offsets-topic-replication-factor 3, --offsets-topic-num-partitions 50)")

    def start_broker(self, node, timeout=30):
        """Starts broker `node` (again, on its old port and data dir after a stop) and waits,
        bounded, for its ready line. Returns seconds from exec to ready."""
        port = self.ports.setdefault(node, free_port())
        log = self.logs.setdefault(node, os.path.join(self.root, f"b{node}.log"))
        start = os.path.getsize(log) if os.path.exists(log) else 0
        cmd = [self.binary, "--listen", f"127.0.0.1:{port}",
               "--data-dir", os.path.join(self.root, f"b{node}"),
               "--node-id", str(node),
               "--zookeeper-connect", f"{self.zk.connect}/bench",
               "--zookeeper-session-timeout-ms", str(self.session_ms),
               "--replica-lag-time-max-ms", str(self.lag_ms),
               "--log-level", self.log_level]
        t0 = time.perf_counter()
        with open(log, "ab") as f:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f,
                                    preexec_fn=rb.die_with_parent)
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

    def controller(self):
        """The controller: the broker ZooKeeper's /controller names, as Metadata reports it."""
        return admin(self).list_topics(timeout=5).controller_id

    def stop_all(self):
        try:
            self.stop_brokers()
        finally:
            self.zk.stop()


class KafkaCluster(Nodes):
    """Apache Kafka 4.4 nodes 1..3 in KRaft combined mode (broker and controller each, a
    static quorum of the three voters), as compat-tests/java's ClusterNode.Kafka starts them,
    with kafka.sh's jars, JVM and log4j settings."""
    name = "Kafka 4.4"

    def __init__(self, kafka_sh, root, session_ms, lag_ms):
        super().__init__(root)
        self.libs = reference.kafka_install(kafka_sh)
        self.java, self.jvm_opts, self.tool_opts = reference.kafka_sh_jvm(kafka_sh)
        self.log4j = os.path.join(os.path.dirname(self.libs), "log4j2.properties")
        self.session_ms, self.lag_ms = session_ms, lag_ms
        ports = set()
        while len(ports) < 2 * len(self.ids):
            ports.add(free_port())
        ports = sorted(ports)
        self.ports = dict(zip(self.ids, ports[:3]))
        self.cports = dict(zip(self.ids, ports[3:]))
        self.settings = [
            f"broker.session.timeout.ms={session_ms}",
            f"broker.heartbeat.interval.ms={session_ms // 3}",
            f"replica.lag.time.max.ms={lag_ms}",
            # Kafka's defaults, written out: the same as Klamm's.
            "offsets.topic.replication.factor=3", "offsets.topic.num.partitions=50",
            "group.initial.rebalance.delay.ms=0",  # Klamm's default (Kafka's is 3000)
        ]

    def dir(self, node):
        return os.path.join(self.root, f"kafka-{node}")

    def _java(self, node, opts, main_args):
        log = self.logs.setdefault(node, os.path.join(self.dir(node), "kafka.log"))
        with open(log, "ab") as f:
            f.write(f"===== {' '.join(main_args)} =====\n".encode())
            f.flush()
            return subprocess.Popen(
                [self.java, *opts, f"-Dlog4j2.configurationFile={self.log4j}",
                 f"-Dkafka.logs.dir={os.path.join(self.dir(node), 'logs')}",
                 "-cp", f"{self.libs}/*", *main_args],
                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=rb.die_with_parent)

    def start(self):
        voters = ",".join(f"{n}@127.0.0.1:{self.cports[n]}" for n in self.ids)
        while True:  # a Kafka Uuid, as kafka.sh makes one
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cluster_id.startswith("-"):
                break
        formats = {}
        for n in self.ids:
            os.makedirs(self.dir(n))
            lines = [
                "process.roles=broker,controller", f"node.id={n}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.ports[n]},"
                f"CONTROLLER://127.0.0.1:{self.cports[n]}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.ports[n]}",
                "inter.broker.listener.name=PLAINTEXT", "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={os.path.join(self.dir(n), 'data')}",
                "num.network.threads=2", "num.io.threads=4",
                "num.recovery.threads.per.data.dir=1", *self.settings]
            with open(os.path.join(self.dir(n), "server.properties"), "w") as f:
                f.write("\n".join(lines) + "\n")
            formats[n] = self._java(n, self.tool_opts, [
                "kafka.tools.StorageTool", "format", "-t", cluster_id,
                "-c", os.path.join(self.dir(n), "server.properties")])
        for n, proc in formats.items():
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.returncode != 0:
                raise RuntimeError(f"kafka node {n}: storage format failed:\n{tail(self.logs[n])}")
        # The nodes wait for a quorum of voters: launch all, then wait for each.
        t0 = {n: self.launch(n) for n in self.ids}
        ready = {n: self.wait_ready(n, t0[n]) for n in self.ids}
        self.wait_registered()
        return (", ".join(f"{n}@127.0.0.1:{self.ports[n]} (controller port {self.cports[n]}, "
                          f"ready {ready[n]:.1f} s)" for n in self.ids)
                + f"; JVM {' '.join(self.jvm_opts)}; " + ", ".join(self.settings))

    def launch(self, node):
        t0 = time.perf_counter()
        self.brokers[node] = self._java(node, self.jvm_opts, [
            "kafka.Kafka", os.path.join(self.dir(node), "server.properties")])
        return t0

    def wait_ready(self, node, t0, timeout=120):
        """Waits until the node answers Metadata listing itself (registered and unfenced: a
        KRaft broker lists only unfenced brokers); seconds from exec."""
        deadline = time.time() + timeout
        proc = self.brokers[node]
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"kafka node {node} exited with {proc.returncode}:\n"
                                   f"{tail(self.logs[node])}")
            if reference.probe(self.ports[node], timeout=5):
                try:
                    a = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.ports[node]}",
                                     "log_level": 2})
                    if node in a.list_topics(timeout=5).brokers:
                        return time.perf_counter() - t0
                except Exception:  # not serving yet
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"kafka node {node} not ready within {timeout} s:\n{tail(self.logs[node])}")

    def start_broker(self, node):
        """Starts node `node` again (same ports, same data); seconds from exec to ready."""
        return self.wait_ready(node, self.launch(node))

    def controller(self):
        """The active KRaft controller: the quorum leader in a live node's quorum-state file
        (Kafka's Metadata names a random broker as the controller in KRaft mode)."""
        best = (-1, None)
        for n in self.alive():
            try:
                with open(os.path.join(self.dir(n), "data", "__cluster_metadata-0",
                                       "quorum-state")) as f:
                    st = json.load(f)
            except (OSError, ValueError):
                continue
            if st.get("leaderId", -1) >= 0 and st.get("leaderEpoch", -1) > best[0]:
                best = (st["leaderEpoch"], st["leaderId"])
        return best[1]

    def stop_all(self):
        # The last nodes to stop have no quorum left for their controlled shutdown and may
        # wait for it until SIGKILL; nothing is measured here any more.
        self.stop_brokers(bound=10)


def admin(cluster):
    # log_level 4: no notice when a short-lived handle drops a queued event on close.
    return AdminClient({"bootstrap.servers": cluster.bootstrap(), "log_level": 4})


def describe(cluster, topic):
    """{partition: (leader, replicas, isr)} from a fresh Metadata request, None for an
    error. (Metadata's controller id is left out: in KRaft it names a random broker; see
    cluster.controller().)"""
    t = admin(cluster).list_topics(topic, timeout=5).topics[topic]
    if t.error is not None:
        return None
    return {p.id: (p.leader, list(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}


def wait_for(cluster, topic, ok, timeout, what):
    """Polls the topic's metadata until ok(parts) or the timeout; returns the parts."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            parts = describe(cluster, topic)
            last = parts
            if parts and ok(parts):
                return parts
        except Exception as e:  # a broker just went away: ask again
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"{topic}: {what} not reached within {timeout} s; last metadata: {last}")


def create_topic(cluster, topic, partitions, rf, timeout=60, assignment=None):
    """Creates the topic (replicas placed by the cluster, or by `assignment`: a list of
    replica lists, the first replica of each the preferred leader) and waits until every
    partition has a leader and a whole ISR."""
    a = admin(cluster)  # kept alive until the result arrives
    new = (NewTopic(topic, partitions, rf) if assignment is None
           else NewTopic(topic, len(assignment), replica_assignment=assignment))
    a.create_topics([new])[topic].result(timeout)
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


def commit_latency(cluster, topic, n, warmup=20):
    """A consumer group of one subscribed to `topic` commits its assignment's offsets with
    synchronous OffsetCommits; per-commit latencies (ms) of the n after `warmup` untimed ones
    (the first of which finds the coordinator, creating __consumer_offsets)."""
    group = f"commit-bench-{time.time_ns()}"
    c = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 2})
    try:
        c.subscribe([topic])
        deadline = time.time() + 60
        while not c.assignment():
            if time.time() > deadline:
                raise RuntimeError(f"commit bench: no assignment of {topic} within 60 s")
            c.poll(0.1)
        parts = sorted(tp.partition for tp in c.assignment())
        lat = []
        for i in range(warmup + n):
            offsets = [TopicPartition(topic, p, i + 1) for p in parts]
            t0 = time.perf_counter()
            out = c.commit(offsets=offsets, asynchronous=False)
            dt = (time.perf_counter() - t0) * 1000
            bad = [tp for tp in out if tp.error is not None]
            if bad:
                raise RuntimeError(f"commit {i}: {bad}")
            if i >= warmup:
                lat.append(dt)
        coordinator = None
        try:
            a = admin(cluster)
            coordinator = a.describe_consumer_groups([group])[group].result(10).coordinator.id
        except Exception:  # only informative
            pass
    finally:
        c.close()
    lat.sort()
    return {"p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max": lat[-1], "n": len(lat), "partitions": len(parts), "coordinator": coordinator}


def failover(cluster, topic, phase, sig, rate, settle, after, bound):
    """Produces `rate` msgs/s to partition 0 of `topic`; after `settle` s sends `sig` to its
    leader. Returns a dict of what happened; the values acknowledged are in ["acked"]."""
    controller = cluster.controller()
    leader, replicas, isr = describe(cluster, topic)[0]
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
            wall_sig = time.time()  # to find the moment in the brokers' logs
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
        new_controller, new_parts = cluster.controller(), describe(cluster, topic)
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
        "wall_sig": wall_sig, "max_gap": max_gap(t_sig, acked.values()),
    }


def max_gap(t_sig, ack_times):
    """The longest time without any acknowledgement from the signal on: for a SIGKILL the
    time to the first ack; after a SIGTERM, the pause while the leadership moves (if the old
    leader acknowledges at once, before it hands over)."""
    times = [t_sig] + sorted(t for t in ack_times if t >= t_sig)
    return max((b - a for a, b in zip(times, times[1:])), default=None)


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


def with_cpu(cluster, fn, *a):
    """(fn(*a), the CPU seconds the live brokers spent meanwhile (utime + stime of their
    PIDs), the CPU seconds the whole machine was busy, the wall-clock seconds of the call)."""
    pids = [cluster.brokers[n].pid for n in cluster.alive()]
    c0, m0 = [reference.cpu_seconds(p) for p in pids], cpu_mark()
    out = fn(*a)
    c1, m1 = [reference.cpu_seconds(p) for p in pids], cpu_mark()
    return out, sum(c1) - sum(c0), m1[1] - m0[1], m1[0] - m0[0]


def measure(cluster, args):
    """Starts `cluster`, runs every measurement on it and prints each as it comes; returns
    the numbers. The caller stops the cluster."""
    res = {"load before": os.getloadavg()[0]}
    t_begin = time.perf_counter()
    desc = cluster.start()
    res["ready"] = time.perf_counter() - t_begin
    print(f"\n=== {cluster.name}: {desc}; all 3 registered {res['ready']:.1f} s after the "
          f"first exec (load {res['load before']:.2f})", flush=True)

    # 1 + 2: throughput and latency, RF3 vs RF1.
    layouts = {}
    for rf in (3, 1):
        layouts[rf] = create_topic(cluster, f"tput-rf{rf}", 6, rf)
    for _ in range(args.warmup_rounds):  # untimed: a JVM compiles its hot code first
        for rf in (3, 1):
            throughput(cluster, f"tput-rf{rf}", 6, args.messages)
    runs = {3: [], 1: []}  # (seconds, brokers' CPU seconds, machine busy s, wall s)
    for _ in range(args.rounds):
        for rf in (3, 1):
            runs[rf].append(with_cpu(cluster, throughput, cluster, f"tput-rf{rf}", 6,
                                     args.messages))
    lats, lat_cpu = {}, {}
    for rf in (3, 1):
        layouts[rf] = create_topic(cluster, f"lat-rf{rf}", 6, rf)
        lats[rf], cpu, busy, wall = with_cpu(cluster, latency, cluster, f"lat-rf{rf}", 6,
                                             args.rate, args.seconds)
        lat_cpu[rf] = (cpu / wall, busy / wall)  # in CPUs
    n = args.messages
    print(f"1. produce throughput: {n:,} x 100 B per run, {args.rounds} run(s) per topic "
          f"alternating after {args.warmup_rounds} untimed, median; idempotent, acks=all, "
          "linger.ms=5, 6 partitions round-robin")
    print(f"   {'topic':<22} {'msgs/s':>10} {'MB/s':>7} {'brokers CPU':>11}  runs")
    rates, tput_cpu = {}, {}
    for rf in (3, 1):
        t = statistics.median(x[0] for x in runs[rf])
        rates[rf] = n / t
        tput_cpu[rf] = statistics.median(x[1] for x in runs[rf])
        leaders = sorted(l for l, _, _ in layouts[rf].values())
        print(f"   {f'6 partitions, RF={rf}':<22} {n / t:>10,.0f} {n * 100 / t / 1e6:>7.1f} "
              f"{tput_cpu[rf]:>9.2f} s  "
              + ", ".join(f"{x:.2f} s (machine {b / w:.1f} CPUs busy)" for x, _, b, w in runs[rf])
              + f"  (leaders {leaders})")
    print(f"   ratio RF3/RF1: {rates[3] / rates[1]:.2f}")
    print(f"2. produce latency: fixed rate {args.rate} msgs/s for {args.seconds:g} s per topic, "
          "per message produce() -> delivery callback; idempotent, acks=all, linger.ms=0")
    print(f"   {'topic':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'acks':>7}  "
          f"brokers' CPU, machine busy (of {os.cpu_count()} CPUs)")
    for rf in (3, 1):
        p50, p99, worst, cnt = lats[rf]
        print(f"   {f'6 partitions, RF={rf}':<22} {p50:>8.2f} {p99:>8.2f} {worst:>8.2f} {cnt:>7}  "
              f"{lat_cpu[rf][0]:.0%} of a core, {lat_cpu[rf][1]:.2f} CPUs")
    res.update(rates=rates, lats=lats, tput_cpu=tput_cpu, lat_cpu=lat_cpu)

    # 3: OffsetCommit latency on the RF=3 topic's group.
    cl = commit_latency(cluster, "lat-rf3", args.commits)
    offsets_parts = describe(cluster, "__consumer_offsets")
    rfs = sorted({len(r) for _, r, _ in (offsets_parts or {}).values()})
    print(f"3. OffsetCommit latency: {cl['n']} synchronous commits of {cl['partitions']} "
          f"partitions' offsets, one by one, after 20 untimed; coordinator broker "
          f"{cl['coordinator']}; __consumer_offsets: {len(offsets_parts or {})} partitions, "
          f"replication factor {rfs}")
    print(f"   p50 {cl['p50']:.2f} ms, p99 {cl['p99']:.2f} ms, max {cl['max']:.2f} ms", flush=True)
    res["commit"] = cl

    # 4: SIGKILL the leader of a 1-partition RF=3 topic, placed on (or off) the controller.
    topic = "failover"
    controller = cluster.controller()
    if args.failover_leader == "controller" and controller in cluster.ids:
        leader = controller
    else:
        leader = next(b for b in cluster.ids if b != controller)
    create_topic(cluster, topic, 1, 3,
                 assignment=[[leader] + [b for b in cluster.ids if b != leader]])
    bound = args.session_timeout_ms / 1000 + 30
    k = failover(cluster, topic, "kill", signal.SIGKILL, args.failover_rate, 2.0, 1.0, bound)
    kv = verify(cluster, topic, [k["acked"]])
    report_phase("4. failover after SIGKILL of the leader", k, kv, args,
                 f"session timeout {args.session_timeout_ms} ms")
    res.update(kill=k, kill_verify=kv)

    # The killed broker comes back and must rejoin the ISR before the next phase.
    killed = k["leader"]
    t0 = time.perf_counter()
    cluster.start_broker(killed)
    res["restart"] = time.perf_counter() - t0
    try:
        wait_for(cluster, topic, lambda ps: killed in ps[0][2], 90,
                 f"broker {killed} back in the ISR")
        res["rejoin"] = time.perf_counter() - t0
        print(f"   broker {killed} restarted (serving after {res['restart']:.1f} s) and back in "
              f"the ISR after {res['rejoin']:.1f} s", flush=True)
    except RuntimeError as e:
        print(f"   broker {killed} restarted but NOT back in the ISR: {e}", flush=True)

    # 5: SIGTERM the (new) leader.
    s = failover(cluster, topic, "term", signal.SIGTERM, args.failover_rate, 2.0, 1.0, 30)
    sv = verify(cluster, topic, [k["acked"], s["acked"]])
    report_phase("5. controlled shutdown: SIGTERM to the leader", s, sv, args,
                 f"the broker exited {fmt_s(s['to_exit'])} after the signal, "
                 f"code {s['exit_code']}")
    res.update(term=s, term_verify=sv)
    res["load after"] = os.getloadavg()[0]
    res["elapsed"] = time.perf_counter() - t_begin
    print(f"   ({cluster.name}: {res['elapsed']:.0f} s, load {res['load after']:.2f} at the end)",
          flush=True)
    return res


def compare(k, f, names):
    """A table of both systems' numbers and the ratio Klamm/Kafka."""
    K, F = names

    def eo(v):
        acked, missing, dups, extra, high = v
        return f"{missing} / {dups} of {acked:,}"

    ms = lambda x: "n/a" if x is None else f"{x:,.2f} ms"
    sec = lambda x: "n/a" if x is None else f"{x * 1000:,.0f} ms"
    rows = [  # (metric, klamm value, kafka value, format, note)
        ("produce, 6 partitions RF=3", k["rates"][3], f["rates"][3], "{:,.0f} msg/s",
         "higher is better"),
        ("produce, 6 partitions RF=1", k["rates"][1], f["rates"][1], "{:,.0f} msg/s",
         "higher is better"),
        ("  RF=3 / RF=1", k["rates"][3] / k["rates"][1], f["rates"][3] / f["rates"][1],
         "{:.2f}", "each system's own cost of replication"),
        ("  brokers' CPU time per run (all 3), RF=3", k["tput_cpu"][3], f["tput_cpu"][3],
         "{:.2f} s", "utime + stime, 10 ms ticks"),
        ("  brokers' CPU time per run (all 3), RF=1", k["tput_cpu"][1], f["tput_cpu"][1],
         "{:.2f} s", ""),
        ("produce latency p50, RF=3", k["lats"][3][0], f["lats"][3][0], ms, "lower is better"),
        ("produce latency p99, RF=3", k["lats"][3][1], f["lats"][3][1], ms, ""),
        ("produce latency p50, RF=1", k["lats"][1][0], f["lats"][1][0], ms, ""),
        ("produce latency p99, RF=1", k["lats"][1][1], f["lats"][1][1], ms, ""),
        ("  brokers' CPU during the RF=3 latency run", k["lat_cpu"][3][0], f["lat_cpu"][3][0],
         "{:.0%} of a core", "all 3 brokers"),
        ("  machine busy during the RF=3 latency run", k["lat_cpu"][3][1], f["lat_cpu"][3][1],
         "{:.2f} CPUs", f"of {os.cpu_count()}; brokers + client (+ anything else)"),
        ("OffsetCommit p50 (__consumer_offsets RF=3)", k["commit"]["p50"], f["commit"]["p50"],
         ms, "lower is better"),
        ("OffsetCommit p99", k["commit"]["p99"], f["commit"]["p99"], ms, ""),
        ("OffsetCommit max", k["commit"]["max"], f["commit"]["max"], ms, ""),
        ("SIGKILL of the leader: first ack of a new message", k["kill"]["to_first_new_ack"],
         f["kill"]["to_first_new_ack"], sec,
         f"leader {k['kill']['leader']} / {f['kill']['leader']}, controller "
         f"{k['kill']['controller']} / {f['kill']['controller']}"),
        ("  lost / duplicated of acknowledged", eo(k["kill_verify"]), eo(f["kill_verify"]),
         None, ""),
        ("  delivery errors", sum(k["kill"]["errors"].values()),
         sum(f["kill"]["errors"].values()), None, ""),
        ("killed broker restarted -> back in the ISR", k.get("rejoin"), f.get("rejoin"), sec,
         "informative"),
        ("SIGTERM of the leader: first ack of a new message", k["term"]["to_first_new_ack"],
         f["term"]["to_first_new_ack"], sec, "controlled shutdown"),
        ("  longest time without an ack", k["term"]["max_gap"], f["term"]["max_gap"], sec, ""),
        ("  delivery errors", sum(k["term"]["errors"].values()),
         sum(f["term"]["errors"].values()), None, ""),
        ("  lost / duplicated of acknowledged", eo(k["term_verify"]), eo(f["term_verify"]),
         None, "both phases' messages"),
        ("  signal -> process exit", k["term"]["to_exit"], f["term"]["to_exit"], sec, ""),
        ("cluster start -> 3 brokers registered", k["ready"], f["ready"], sec,
         "Kafka: 3 StorageTool JVMs, then 3 broker JVMs"),
    ]
    print()
    print(f"| metric | {K} | {F} | {K}/{F} | note |")
    print("|---|---:|---:|---:|---|")
    for metric, kv, fv, fmt, note in rows:
        if fmt is None:
            print(f"| {metric} | {kv} | {fv} | | {note} |")
            continue
        show = fmt if callable(fmt) else fmt.format
        ratio = f"{kv / fv:.3g}" if kv is not None and fv else "–"
        print(f"| {metric} | {show(kv)} | {show(fv)} | {ratio} | {note} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--reference", choices=["kafka"],
                    help="the same measurements on a 3-node Kafka 4.4 KRaft cluster as well")
    ap.add_argument("--kafka-sh", default=reference.KAFKA_SH,
                    help="with --reference: kafka.sh (default compat-tests/kafka/kafka.sh)")
    ap.add_argument("--messages", type=int, default=200_000, help="per throughput run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="throughput runs per topic, alternating RF3/RF1; the median is reported")
    ap.add_argument("--warmup-rounds", type=int, default=1,
                    help="untimed throughput runs per topic before the timed ones")
    ap.add_argument("--rate", type=int, default=2000, help="latency run: messages/s")
    ap.add_argument("--seconds", type=float, default=5, help="latency run: seconds")
    ap.add_argument("--commits", type=int, default=500, help="timed OffsetCommits")
    ap.add_argument("--failover-rate", type=int, default=1000, help="failover producer msgs/s")
    ap.add_argument("--failover-leader", choices=["controller", "other"], default="controller",
                    help="place the failover topic's leader on the controller or on another broker")
    ap.add_argument("--session-timeout-ms", type=int, default=6000,
                    help="Klamm's ZooKeeper session; Kafka's broker.session.timeout.ms")
    ap.add_argument("--replica-lag-time-max-ms", type=int, default=10000)
    ap.add_argument("--log-level", default="info", help="brokers' --log-level (logs in the temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    args = ap.parse_args()
    print("command: " + " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv), flush=True)
    if not os.path.exists(rb.ZK_SERVER):
        sys.exit(f"{rb.ZK_SERVER} missing: install Debian's zookeeper package")

    t_start = time.perf_counter()
    root = tempfile.mkdtemp(prefix="klamm-cluster-bench-")
    # A private copy, so a rebuild of KLAMM_BIN during the run cannot make the broker
    # restarted in step 5 a different build from the others.
    binary = os.path.join(root, "klamm")
    results, names = [], []
    running = None
    ok = False
    try:
        shutil.copy2(args.binary, binary)
        for d in ("klamm-cluster", "kafka-cluster"):
            os.makedirs(os.path.join(root, d))
        clusters = [lambda: KlammCluster(binary, os.path.join(root, "klamm-cluster"),
                                         args.session_timeout_ms, args.replica_lag_time_max_ms,
                                         args.log_level)]
        if args.reference:
            clusters.append(lambda: KafkaCluster(args.kafka_sh, os.path.join(root, "kafka-cluster"),
                                                 args.session_timeout_ms,
                                                 args.replica_lag_time_max_ms))
        for make in clusters:  # one cluster at a time
            before = cpu_mark()
            running = make()
            res = measure(running, args)
            running.stop_all()
            after = cpu_mark()
            wall, busy, own = (a - b for a, b in zip(after, before))
            res["cpu"] = (wall, own, max(0.0, busy - own))
            other = max(0.0, busy - own)  # /proc/stat and os.times() differ by ~1 s at most
            print(f"   CPU over these {wall:.0f} s: this run's processes {own:.1f} s, other "
                  f"processes {other:.1f} s ({other / wall / os.cpu_count():.0%} of "
                  f"the {os.cpu_count()} CPUs)", flush=True)
            results.append(res)
            names.append(running.name)
            running = None
        if args.reference:
            compare(*results, names)
        print(f"\ntotal runtime {time.perf_counter() - t_start:.0f} s; "
              f"{os.cpu_count()} CPUs, load (1 min) before/after each cluster: "
              + ", ".join(f"{n} {r['load before']:.2f}/{r['load after']:.2f}"
                          for n, r in zip(names, results))
              + "; CPU taken by other processes: "
              + ", ".join(f"{n} {r['cpu'][2]:.0f} s of {r['cpu'][0] * os.cpu_count():.0f}"
                          for n, r in zip(names, results)))
        ok = True
    finally:
        try:
            if running is not None:
                running.stop_all()
        finally:
            try:
                if not ok and running is not None:
                    for node, log in sorted(running.logs.items()):
                        print(f"--- {running.name} node {node} log tail ({log}) ---\n"
                              f"{tail(log)}", file=sys.stderr)
            finally:  # also when printing fails (a closed pipe)
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
    print(f"   longest time without an ack from the signal on:            {fmt_s(r['max_gap'])}"
          f"  (signal sent {time.strftime('%H:%M:%S', time.gmtime(r['wall_sig']))}"
          f".{int(r['wall_sig'] * 1000) % 1000:03d} UTC)")
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
