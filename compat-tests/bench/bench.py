#!/usr/bin/env python3
"""Klamm benchmark: prints numbers, asserts nothing about speed.

Measures, against a release broker on an ephemeral data dir:
  - time from exec to the `klamm ready on` line, and idle RSS;
  - produce and consume throughput of N x 100-byte messages with kcat (librdkafka), and
    consume throughput with a plain librdkafka consumer (rdkafka_consume.c), median of 3
    runs (msgs/s and MB/s);
  - produce latency p50/p99 at a fixed rate with confluent-kafka (librdkafka), linger 0;
  - compaction throughput, and produce throughput while the cleaner runs vs alone;
  - RSS after each throughput run (the log grows by 2 N messages per run) and at the end.
Usage: bench.py KLAMM_BIN [--messages N] [--rdkafka-consume PATH]
       bench.py KLAMM_BIN --reference [--messages N] [--reference-rounds R] [--reference-starts S]
With --reference, the same workloads (and Kafka's Java perf tools) run against Klamm and a
real Kafka 4.4 broker (compat-tests/kafka/kafka.sh) one at a time, and a table gives the
ratios; see reference.py.
"""
import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def start_broker(binary, port, extra=(), log="warn,klamm::broker=info", listeners=None):
    """Starts `binary` on 127.0.0.1:`port` (or on `listeners`, Kafka's `NAME://HOST:PORT,...`)
    with an ephemeral store; returns the process and the milliseconds until it was ready."""
    t0 = time.perf_counter()
    where = ["--listeners", listeners] if listeners else ["--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [binary, *where, "--ephemeral", "--log-level", log, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "klamm ready on" in line:
            return proc, (time.perf_counter() - t0) * 1000
    proc.kill()
    sys.exit("broker did not become ready")


def kcat_produce(bootstrap, topic, path, extra=()):
    t0 = time.perf_counter()
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", *extra, "-l", path],
                   check=True)
    return time.perf_counter() - t0


def producer_modes(bootstrap, n, commit_every=1000):
    """Seconds for n x 100 B with confluent-kafka (librdkafka 2.16) as a plain producer, an
    idempotent one, and a transactional one committing every `commit_every` messages, each
    to a fresh one-partition topic, in the same broker run. None without confluent-kafka."""
    try:
        from confluent_kafka import Producer
    except ImportError:
        return None
    value = b"t" * 100
    out = {}
    for mode in ("plain", "idempotent", "transactional"):
        conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "queue.buffering.max.messages": 1_000_000}
        if mode == "idempotent":
            conf["enable.idempotence"] = True
        if mode == "transactional":
            conf["transactional.id"] = f"bench-{time.time_ns()}"
        topic = f"bench-{mode}-{time.time_ns()}"
        warm = Producer({"bootstrap.servers": bootstrap})
        warm.produce(topic, b"warm-up", partition=0)  # creates the topic before the clock starts
        warm.flush(30)
        p = Producer(conf)
        if mode == "transactional":
            p.init_transactions(30)
        t0 = time.perf_counter()
        if mode == "transactional":
            for start in range(0, n, commit_every):
                p.begin_transaction()
                for _ in range(min(commit_every, n - start)):
                    p.produce(topic, value, partition=0)
                p.commit_transaction(30)
        else:
            for i in range(n):
                while True:
                    try:
                        p.produce(topic, value, partition=0)
                        break
                    except BufferError:
                        p.poll(0.001)
            p.flush(60)
        out[mode] = time.perf_counter() - t0
    return out


def kcat_consume(bootstrap, topic, n, extra=()):
    # -c n stops at the n-th message. -e would add one empty long-poll at the end of the log
    # (fetch.wait.max.ms, 500 ms by default: Kafka answers a fetch at the high watermark only
    # when min.bytes arrive or the wait ends), which is end-of-log detection, not throughput.
    t0 = time.perf_counter()
    out = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-c", str(n), "-q",
         "-f", "%o\n", *extra],
        check=True,
        capture_output=True,
    ).stdout
    elapsed = time.perf_counter() - t0
    got = out.count(b"\n")
    if got != n:
        sys.exit(f"consumed {got} messages from {topic}, expected {n}")
    return elapsed


def rdkafka_consume(tool, bootstrap, topic, n):
    """Seconds for librdkafka (default settings, no formatting) to read n messages; see
    rdkafka_consume.c. None without the tool."""
    if not tool:
        return None
    out = subprocess.run([tool, bootstrap, topic, "0", str(n)], check=True, capture_output=True,
                         text=True).stdout
    fields = dict(kv.split("=") for kv in out.split())
    if int(fields["messages"]) != n or int(fields["bytes"]) != n * 100:
        sys.exit(f"rdkafka_consume read {out.strip()} from {topic}, expected {n} x 100 B")
    return float(fields["seconds"])


def latency(bootstrap, rate, seconds):
    try:
        from confluent_kafka import Producer
    except ImportError:
        return None
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    lat = []

    def done(err, msg, sent):
        if err is None:
            lat.append((time.perf_counter() - sent) * 1000)

    payload = b"x" * 100
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
        p.produce("latency", payload, callback=lambda e, m, s=sent: done(e, m, s))
        p.poll(0)
    p.flush(30)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1], len(lat)


def group_rebalance(bootstrap, members=3, protocol="classic"):
    """Seconds from the first subscribe until all members own partitions (6 partitions,
    confluent-kafka; classic: range assignor; consumer: KIP-848, server-side uniform), and
    from one member's close until the others own all."""
    try:
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        return None
    import threading

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"group-bench-{protocol}"
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(10)
    owned = {}
    lock = threading.Lock()
    stop = threading.Event()
    leave = {}

    def run(i):
        conf = {"bootstrap.servers": bootstrap, "group.id": f"bench-{protocol}",
                "enable.auto.commit": False}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 100})
        c = Consumer(conf)
        c.subscribe([topic])
        while not stop.is_set() and not leave.get(i):
            c.poll(0.01)
            with lock:
                owned[i] = {p.partition for p in c.assignment()}
        c.close()
        with lock:
            owned.pop(i, None)

    def covered(n):
        # Every member owns some partitions, and each partition exactly one owner.
        with lock:
            parts = [p for s in owned.values() for p in s]
            return (len(owned) == n and all(owned.values())
                    and sorted(parts) == list(range(6)))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(members)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while not covered(members) and time.time() < deadline:
        time.sleep(0.005)
    stable = time.perf_counter() - t0
    t1 = time.perf_counter()
    leave[0] = True
    threads[0].join()
    while not covered(members - 1) and time.time() < deadline:
        time.sleep(0.005)
    after_leave = time.perf_counter() - t1
    stop.set()
    for t in threads:
        t.join()
    return stable, after_leave


def compaction(binary, n, keys=10_000):
    """Compaction throughput (MB/s of log read and rewritten by the cleaner) and kcat
    produce throughput to another topic while the cleaner runs, relative to alone."""
    try:
        from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
    except ImportError:
        return None
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    proc, _ = start_broker(binary, port, ["--log-cleaner-backoff-ms", "300"],
                           log="warn,klamm::broker=info,klamm::log::compaction=info")
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    adm = AdminClient({"bootstrap.servers": bootstrap})
    for f in adm.create_topics([NewTopic("cmp", 1, 1), NewTopic("plain", 1, 1)]).values():
        f.result()
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        for i in range(n):
            f.write(b"key-%05d:" % (i % keys) + b"v" * 90 + b"\n")
        keyed = f.name
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write((b"m" * 100 + b"\n") * (n // 5))
        plain = f.name
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", "cmp", "-p", "0", "-K", ":", "-l", keyed],
                   check=True)
    alone = [kcat_produce(bootstrap, "plain", plain) for _ in range(3)]
    res = ConfigResource(ConfigResource.Type.TOPIC, "cmp", set_config={"cleanup.policy": "compact"})
    adm.alter_configs([res])[res].result()
    # Produce in rounds until the cleaner reports, so every round overlaps the cleaning.
    during, deadline = [], time.time() + 120
    while not any("compacted" in l for l in lines) and time.time() < deadline:
        during.append(kcat_produce(bootstrap, "plain", plain))
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    os.unlink(keyed)
    os.unlink(plain)
    done = [l for l in lines if "compacted" in l]
    if not done:
        return None
    field = lambda name: float(re.search(name + r"=([0-9.]+)", done[0]).group(1))
    return (field("bytes_read"), field("elapsed_ms"), field("records_removed"),
            statistics.median(alone), during, n // 5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rdkafka-consume", help="path of the built rdkafka_consume.c")
    ap.add_argument("--starts", type=int, default=11, help="cold starts to time")
    ap.add_argument("--reference", action="store_true",
                    help="compare with a Kafka 4.4 broker (kafka.sh) instead; see reference.py")
    ap.add_argument("--reference-rounds", type=int, default=3,
                    help="with --reference: load rounds per broker, alternating, each on a fresh broker")
    ap.add_argument("--reference-starts", type=int, default=2,
                    help="with --reference: extra starts per broker timed alone (each round's start counts too)")
    ap.add_argument("--kafka-sh", help="with --reference: kafka.sh (default compat-tests/kafka/kafka.sh)")
    ap.add_argument("--java", help="with --reference: java for Kafka's perf tools (default: java on PATH)")
    args = ap.parse_args()
    if args.reference:
        import reference
        reference.run(args, sys.modules[__name__])
        return
    n = args.messages

    # Startup: median of cold starts on an empty ephemeral dir.
    starts = []
    for _ in range(args.starts):
        proc, ms = start_broker(args.binary, free_port())
        starts.append(ms)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    proc, _ = start_broker(args.binary, port)
    time.sleep(0.5)
    idle = rss_kb(proc.pid)

    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        line = b"m" * 100 + b"\n"
        f.write(line * n)
        path = f.name
    prod, cons, cons_q, rdk, idem, grown = [], [], [], [], [], []
    for run in range(3):
        topic = f"bench-{run}"
        prod.append(kcat_produce(bootstrap, topic, path))
        cons.append(kcat_consume(bootstrap, topic, n))
        # librdkafka stops fetching a partition once 100,000 messages wait for the application
        # (queued.min.messages) and looks again only at its next wake-up, up to 1 s later;
        # kcat formats more slowly than the broker serves, so its default runs include such
        # pauses. The same runs with the threshold above the message count show kcat without them.
        cons_q.append(kcat_consume(bootstrap, topic, n, ["-X", "queued.min.messages=10000000"]))
        r = rdkafka_consume(args.rdkafka_consume, bootstrap, topic, n)
        if r is not None:
            rdk.append(r)
        idem.append(kcat_produce(bootstrap, f"bench-idem-{run}", path,
                                 ["-X", "enable.idempotence=true"]))
        # Each run stores 2 n more messages; RSS should stay put as the log grows.
        grown.append(rss_kb(proc.pid))
    os.unlink(path)
    modes = producer_modes(bootstrap, n)
    lat = latency(bootstrap, args.rate, args.seconds)
    grp = group_rebalance(bootstrap)
    grp848 = group_rebalance(bootstrap, protocol="consumer")
    after = rss_kb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)

    def rate(ts):
        t = statistics.median(ts)
        return f"{n / t:,.0f} msg/s  {n * 100 / t / 1e6:,.1f} MB/s  (runs: {', '.join(f'{x:.2f}s' for x in ts)})"

    print(f"messages per run:        {n:,} x 100 B")
    print(f"produce (kcat -P):       {rate(prod)}")
    print(f"consume (kcat -C):       {rate(cons)}")
    print(f"consume (kcat -C, queued.min.messages=10M): {rate(cons_q)}")
    if rdk:
        print(f"consume (librdkafka):    {rate(rdk)}")
    else:
        print("consume (librdkafka):    skipped (no --rdkafka-consume)")
    print(f"produce, idempotent:     {rate(idem)}  (kcat -X enable.idempotence=true)")
    if modes:
        base = n / modes["plain"]
        for mode in ("plain", "idempotent", "transactional"):
            r = n / modes[mode]
            what = {"plain": "", "idempotent": "enable.idempotence=true",
                    "transactional": "commit every 1,000"}[mode]
            print(f"confluent-kafka {mode + ':':<15}{r:,.0f} msg/s  ({r / base:.0%} of plain) {what}")
    else:
        print("producer modes:          skipped (confluent-kafka not installed)")
    if lat:
        print(f"produce latency @{args.rate}/s:  p50 {lat[0]:.2f} ms  p99 {lat[1]:.2f} ms  ({lat[2]} acks, acks=all, linger.ms=0)")
    else:
        print("produce latency:         skipped (confluent-kafka not installed)")
    if grp:
        print(f"group of 3 to Stable:    {grp[0] * 1000:.0f} ms from first subscribe (6 partitions, range, initial delay 0)")
        print(f"rebalance after a leave: {grp[1] * 1000:.0f} ms until the other 2 own all partitions")
    if grp848:
        print(f"KIP-848 group of 3:      {grp848[0] * 1000:.0f} ms to cover (uniform, heartbeat interval 5 s, Kafka's default)")
        print(f"KIP-848 after a leave:   {grp848[1] * 1000:.0f} ms until the other 2 own all partitions")
    cmp = compaction(args.binary, n)
    if cmp:
        mb, ms, removed, alone, during, m = cmp
        print(f"compaction:              {mb / 1e6 / (ms / 1000):,.0f} MB/s of log read and rewritten "
              f"({mb / 1e6:,.0f} MB, {n:,} records of 10,000 keys, {removed:,.0f} removed, {ms:,.0f} ms)")
        rate_during = m * len(during) / sum(during) if during else 0
        print(f"produce while compacting: {rate_during:,.0f} msg/s vs {m / alone:,.0f} msg/s alone "
              f"({rate_during / (m / alone):.0%}; {len(during)} kcat runs of {m:,} overlapped the cleaning)")
    else:
        print("compaction:              skipped (confluent-kafka not installed or no cleaning seen)")
    print(f"exec -> ready:           median {statistics.median(starts):.1f} ms, min {min(starts):.1f}, "
          f"max {max(starts):.1f} ({len(starts)} starts)")
    print(f"RSS idle:                {idle / 1024:.1f} MB")
    stored = ", ".join(f"{kb / 1024:.1f} MB at {2 * n * (i + 1) / 1e6:g} M" for i, kb in enumerate(grown))
    print(f"RSS as the log grows:    {stored} messages stored")
    print(f"RSS after run:           {after / 1024:.1f} MB")


if __name__ == "__main__":
    main()
