"""Reference mode of bench.py (`bench.py KLAMM_BIN --reference`): the same workloads against
Klamm and against a real Apache Kafka 4.4 broker (compat-tests/kafka/kafka.sh, single-node
KRaft, its JVM settings as kafka.sh sets them), in one run on one machine, one broker at a
time, and a table of Klamm, Kafka and the ratio Klamm/Kafka.

What it measures, for each broker:
  - time to ready, measured the same way for both: from exec (Klamm's binary; for Kafka,
    `kafka.sh start DIR`, which formats a fresh KRaft data dir in a JVM of its own and then
    starts the broker's JVM) until the first answered ApiVersions v0 + Metadata v1 request
    listing at least one broker, probed over a socket every millisecond (one connection
    waits up to 20 s for its answer, so a bound but not yet serving port is timed to its
    first answer). Also Klamm's `klamm ready on` line, and Kafka's broker JVM alone (from
    the pid file's appearance);
  - idle RSS (VmRSS and RssAnon) 1 s after ready, before any load; the broker's CPU time
    from exec to that point;
  - per round, on a fresh broker: kcat produce, kcat consume (default and
    queued.min.messages=10M), the plain librdkafka consumer, kcat idempotent produce (the
    functions of bench.py), Kafka's ProducerPerformance (`--num-records N --record-size 100
    --throughput -1`, Java client defaults: acks=all, idempotent, linger.ms=5, 16 KiB batches)
    and ConsumerPerformance (`--num-records N`, a group of one, classic protocol) reading
    what ProducerPerformance wrote, then produce latency at a fixed rate (bench.py's
    latency()); the RSS after the round, and the broker's CPU time (utime + stime from
    /proc/PID/stat) for the round and for each workload, which a shared machine's load
    disturbs far less than the wall-clock rates.
Every topic is created with one partition before the clock starts (Kafka creates topics
in hundreds of milliseconds, Klamm in a few; topic creation is not what is measured here).
Rounds alternate between the brokers (Klamm, Kafka, Klamm, ...), so a change in the load
of a shared machine falls on both; each number is the median over rounds.
"""
import os
import re
import signal
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KAFKA_SH = os.path.join(HERE, "..", "kafka", "kafka.sh")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The Java perf tools log only warnings, to stderr, so stdout holds only their results.
TOOLS_LOG4J = """status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
"""


def kafka_install(kafka_sh=KAFKA_SH):
    """`kafka.sh install` (fetches the jars with Maven the first time, a no-op after): the
    libs dir of Kafka 4.4's jars."""
    out = subprocess.run([kafka_sh, "install"], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def kafka_sh_jvm(kafka_sh=KAFKA_SH):
    """How kafka.sh runs Kafka, read from kafka.sh itself so that its settings have one home:
    (java, the broker JVM's options, the options of its short-lived tool JVMs such as
    StorageTool), with kafka.sh's environment overrides (KAFKA_JAVA_HOME, KAFKA_HEAP_OPTS,
    KAFKA_JVM_OPTS) applied as bash's ${VAR:-default} applies them. The log4j2 config
    kafka.sh uses is os.path.join(os.path.dirname(libs), "log4j2.properties")."""
    with open(kafka_sh) as f:
        text = f.read()

    def setting(var):
        m = re.search(r"\$\{" + var + r":-([^}]*)\}", text)
        if not m:
            raise RuntimeError(f"{kafka_sh}: no ${{{var}:-...}} default found")
        return os.environ.get(var) or m.group(1)

    java = os.path.join(setting("KAFKA_JAVA_HOME"), "bin", "java")
    if not os.access(java, os.X_OK):
        java = shutil.which("java") or "java"
    m = re.search(r'^run_java\(\).*\n\s*"\$java" ([^\\\n]*)', text, re.M)
    if not m:
        raise RuntimeError(f"{kafka_sh}: no run_java() JVM options found")
    return (java, (setting("KAFKA_HEAP_OPTS") + " " + setting("KAFKA_JVM_OPTS")).split(),
            m.group(1).split())


def probe(port, timeout=20.0):
    """True once the broker on port answers ApiVersions v0 and then a Metadata v1 request
    (no topics) listing at least one broker: the request kafka.sh waits for."""

    def call(sock, api_key, version, corr, body=b""):
        client = b"bench"
        msg = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
        sock.sendall(struct.pack(">i", len(msg)) + msg)

        def read(n):
            buf = b""
            while len(buf) < n:
                chunk = sock.recv(n - len(buf))
                if not chunk:
                    raise EOFError
                buf += chunk
            return buf

        size = struct.unpack(">i", read(4))[0]
        data = read(size)
        if struct.unpack(">i", data[:4])[0] != corr:
            raise ValueError("correlation id")
        return data[4:]

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            r = call(s, 18, 0, 1)  # ApiVersions v0
            if struct.unpack(">h", r[:2])[0] != 0:
                return False
            r = call(s, 3, 1, 2, struct.pack(">i", 0))  # Metadata v1, no topics
            return struct.unpack(">i", r[:4])[0] >= 1
    except (OSError, EOFError, ValueError, struct.error):
        return False


def proc_mem(pid):
    """(VmRSS, RssAnon) in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out.get("VmRSS", -1), out.get("RssAnon", -1)


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Klamm:
    name = "Klamm"

    def __init__(self, binary, work):
        self.binary = binary
        self.work = work
        self.proc = None

    def start(self):
        """Starts a broker on a fresh ephemeral data dir; returns timings in ms."""
        port = bench.free_port()
        ready_line = {}
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{port}", "--ephemeral", "--log-level",
             "warn,klamm::broker=info"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def read_stderr():
            for line in proc.stderr:
                if "klamm ready on" in line and "t" not in ready_line:
                    ready_line["t"] = time.perf_counter()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        self.proc = proc
        deadline = time.time() + 30
        while not probe(port):
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                proc.wait()
                sys.exit("klamm did not answer a Metadata request")
            time.sleep(0.001)
        t_probe = time.perf_counter()
        for _ in range(1000):  # the line comes before the listener serves; bounded wait
            if "t" in ready_line:
                break
            time.sleep(0.001)
        self.proc, self.pid = proc, proc.pid
        self.bootstrap = f"127.0.0.1:{port}"
        out = {"ready": (t_probe - t0) * 1000}
        if "t" in ready_line:
            out["ready line"] = (ready_line["t"] - t0) * 1000
        return out

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def describe(self):
        return "release binary, --ephemeral data dir in /tmp"


class Kafka:
    name = "Kafka 4.4"

    def __init__(self, kafka_sh, work):
        self.kafka_sh = kafka_sh
        self.work = work
        self.dir = None
        self.count = 0
        self.jvm_opts = None

    def start(self):
        """`kafka.sh start` on a fresh dir (format + start); returns timings in ms."""
        self.count += 1
        d = os.path.join(self.work, f"kafka-{self.count}")
        props, pidf = os.path.join(d, "server.properties"), os.path.join(d, "pid")
        err = open(os.path.join(self.work, f"kafka-{self.count}.start.log"), "w")
        self.dir = d  # stop() works from here on, whatever start() reaches
        t0 = time.perf_counter()
        proc = subprocess.Popen([self.kafka_sh, "start", d], stdout=subprocess.PIPE, stderr=err,
                                text=True)
        port, t_jvm = None, None
        deadline = time.time() + 180
        while True:
            if port is None and os.path.exists(props):
                with open(props) as f:
                    m = re.search(r"^listeners=PLAINTEXT://127\.0\.0\.1:(\d+),", f.read(), re.M)
                if m:
                    port = int(m.group(1))
            if t_jvm is None and os.path.exists(pidf):
                t_jvm = time.perf_counter()
            if port is not None and t_jvm is not None and probe(port):
                break
            if proc.poll() is not None and proc.returncode != 0:
                err.close()
                sys.exit(f"kafka.sh start failed, see {err.name} and {d}/kafka.log")
            if time.time() > deadline:
                subprocess.run([self.kafka_sh, "stop", d, "KILL"])
                proc.wait()
                sys.exit("kafka did not answer a Metadata request within 180 s")
            time.sleep(0.001)
        t_probe = time.perf_counter()
        out, _ = proc.communicate(timeout=120)  # kafka.sh polls every 250 ms on its own
        t_script = time.perf_counter()
        err.close()
        if out.strip() != f"127.0.0.1:{port}":
            sys.exit(f"kafka.sh start printed {out!r}, expected 127.0.0.1:{port}")
        with open(pidf) as f:
            self.pid = int(f.read())
        self.bootstrap = f"127.0.0.1:{port}"
        if self.jvm_opts is None:
            with open(f"/proc/{self.pid}/cmdline", "rb") as f:
                args = f.read().decode().split("\0")
            self.jvm_opts = " ".join(a for a in args if a.startswith("-X"))
        return {"ready": (t_probe - t0) * 1000, "broker JVM": (t_probe - t_jvm) * 1000,
                "kafka.sh returned": (t_script - t0) * 1000}

    def stop(self):
        if self.dir is None:
            return
        subprocess.run([self.kafka_sh, "stop", self.dir], check=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def describe(self):
        return f"kafka.sh defaults: {self.jvm_opts}, data dir in /tmp"


def create_topics(bootstrap, names):
    """One-partition topics, created before any clock starts. False without confluent-kafka
    (then the clients' first requests auto-create them, inside the timings)."""
    try:
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        return False
    adm = AdminClient({"bootstrap.servers": bootstrap})
    for f in adm.create_topics([NewTopic(t, 1, 1) for t in names]).values():
        f.result(60)
    # Wait until the new leaders are known, as Kafka creates them asynchronously.
    deadline = time.time() + 60
    while time.time() < deadline:
        md = adm.list_topics(timeout=10)
        if all(t in md.topics and md.topics[t].error is None and md.topics[t].partitions
               and md.topics[t].partitions[0].leader >= 0 for t in names):
            return True
        time.sleep(0.05)
    sys.exit(f"topics {names} have no leader after 60 s")


def java_tool(java, libs, log4j, cls, args):
    out = subprocess.run(
        [java, "-Xmx512M", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*",
         f"org.apache.kafka.tools.{cls}", *args],
        capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"{cls} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def producer_perf(java, libs, log4j, bootstrap, topic, n):
    """(records/s, p50 ms, p99 ms) from ProducerPerformance's summary line."""
    out = java_tool(java, libs, log4j, "ProducerPerformance",
                    ["--topic", topic, "--num-records", str(n), "--record-size", "100",
                     "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}"])
    m = re.search(r"^(\d+) records sent, ([0-9.]+) records/sec .*?, (\d+) ms 50th, (\d+) ms 95th, "
                  r"(\d+) ms 99th", out, re.M)
    if not m or int(m.group(1)) != n:
        sys.exit(f"ProducerPerformance: no summary for {n} records in:\n{out[-2000:]}")
    return float(m.group(2)), float(m.group(3)), float(m.group(5))


def consumer_perf(java, libs, log4j, bootstrap, topic, n):
    """(records/s over the whole run, records/s while fetching, rebalance ms) from
    ConsumerPerformance's result line (its nMsg.sec counts from before the group join,
    fetch.nMsg.sec leaves the join out)."""
    out = java_tool(java, libs, log4j, "ConsumerPerformance",
                    ["--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(n),
                     "--timeout", "30000"])
    lines = out.strip().splitlines()
    hdr = [h.strip() for h in lines[0].split(",")] if lines else []
    if "nMsg.sec" not in hdr or len(lines) < 2:
        sys.exit(f"ConsumerPerformance: unexpected output:\n{out[-2000:]}")
    row = dict(zip(hdr, (v.strip() for v in lines[1].split(","))))
    if int(row["data.consumed.in.nMsg"]) != n:
        sys.exit(f"ConsumerPerformance read {row['data.consumed.in.nMsg']} records, expected {n}")
    return float(row["nMsg.sec"]), float(row["fetch.nMsg.sec"]), float(row["rebalance.time.ms"])


def settle(b, st):
    """Idle RSS and CPU time so far, 1 s after ready (the same wait for both)."""
    time.sleep(1.0)
    st["idle"] = proc_mem(b.pid)
    st["cpu"] = cpu_seconds(b.pid)


def load_round(b, n, path, args, java, libs, log4j, r):
    """One round of workloads on a fresh, idle broker b; returns the measurements."""
    res = {"load before": os.getloadavg()[0]}
    topics = [f"ref-{r}", f"ref-idem-{r}", f"java-{r}", "latency", "warm-up"]
    res["precreated"] = create_topics(b.bootstrap, topics)
    # One idempotent message first: Kafka hands out its first producer id only after a
    # round trip to its controller (InitProducerId answers COORDINATOR_LOAD_IN_PROGRESS
    # until then), a one-time cost that is not throughput.
    subprocess.run(["kcat", "-P", "-b", b.bootstrap, "-t", "warm-up", "-p", "0", "-X",
                    "enable.idempotence=true"], input=b"warm-up\n", check=True)
    cpu0 = cpu_seconds(b.pid)

    def step(key, fn, *a):
        # The broker's CPU time for each workload as well: less disturbed by other load on
        # the machine than the wall-clock rates.
        c = cpu_seconds(b.pid)
        res[key] = fn(*a)
        res["cpu " + key] = cpu_seconds(b.pid) - c

    step("kcat produce", bench.kcat_produce, b.bootstrap, topics[0], path)
    step("kcat consume", bench.kcat_consume, b.bootstrap, topics[0], n)
    step("kcat consume q", bench.kcat_consume, b.bootstrap, topics[0], n,
         ["-X", "queued.min.messages=10000000"])
    step("librdkafka consume", bench.rdkafka_consume, args.rdkafka_consume, b.bootstrap,
         topics[0], n)
    step("kcat produce idem", bench.kcat_produce, b.bootstrap, topics[1], path,
         ["-X", "enable.idempotence=true"])
    step("java produce", producer_perf, java, libs, log4j, b.bootstrap, topics[2], n)
    step("java consume", consumer_perf, java, libs, log4j, b.bootstrap, topics[2], n)
    step("latency", bench.latency, b.bootstrap, args.rate, args.seconds)
    res["cpu load"] = cpu_seconds(b.pid) - cpu0
    res["after"] = proc_mem(b.pid)
    res["load after"] = os.getloadavg()[0]
    return res


def run(args, bench_module):
    global bench
    bench = bench_module
    n = args.messages
    t_begin = time.time()
    kafka_sh = os.path.abspath(args.kafka_sh or KAFKA_SH)
    java = args.java or shutil.which("java") or "java"
    print(f"kafka.sh install ({kafka_sh}) ...", file=sys.stderr, flush=True)
    libs = kafka_install(kafka_sh)
    work = tempfile.mkdtemp(prefix="klamm-bench-ref-")
    log4j = os.path.join(work, "tools-log4j2.properties")
    with open(log4j, "w") as f:
        f.write(TOOLS_LOG4J)
    brokers = [Klamm(args.binary, work), Kafka(kafka_sh, work)]
    running = []

    def stop_all():
        for b in running:
            try:
                b.stop()
            except Exception as e:  # report and go on stopping
                print(f"stopping {b.name}: {e}", file=sys.stderr)
        running.clear()

    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write((b"m" * 100 + b"\n") * n)
        path = f.name
    starts = {b.name: [] for b in brokers}
    rounds = {b.name: [] for b in brokers}
    loads = [os.getloadavg()]
    try:
        # Start-ups alone (stopped at once), alternating; the load rounds' starts count too.
        for i in range(args.reference_starts):
            for b in brokers:
                print(f"start {i + 1}/{args.reference_starts}: {b.name}", file=sys.stderr, flush=True)
                running.append(b)
                st = b.start()
                settle(b, st)
                starts[b.name].append(st)
                stop_all()
        for r in range(args.reference_rounds):
            for b in brokers:
                print(f"round {r + 1}/{args.reference_rounds}: {b.name}", file=sys.stderr, flush=True)
                running.append(b)
                st = b.start()
                settle(b, st)
                starts[b.name].append(st)
                res = load_round(b, n, path, args, java, libs, log4j, r)
                rounds[b.name].append(res)
                stop_all()
                loads.append(os.getloadavg())
    finally:
        stop_all()
        os.unlink(path)
        shutil.rmtree(work, ignore_errors=True)
    report(args, brokers, starts, rounds, loads, time.time() - t_begin)


def report(args, brokers, starts, rounds, loads, wall):
    n = args.messages
    K, F = (b.name for b in brokers)
    med = statistics.median

    def runs_of(name, key, f=lambda v: v):
        return [f(r[key]) for r in rounds[name] if r.get(key) is not None]

    rows = []  # (metric, klamm value, kafka value, format, higher is better)

    def row(metric, key, f, fmt, higher, note=""):
        vals = [runs_of(name, key, f) for name in (K, F)]
        if not all(vals):
            rows.append((metric, None, None, fmt, higher, "skipped"))
            return
        rows.append((metric, med(vals[0]), med(vals[1]), fmt, higher, note))

    def srow(metric, key, f, fmt, higher, note=""):
        vals = [[f(s[key]) for s in starts[name] if key in s] for name in (K, F)]
        rows.append((metric, med(vals[0]), med(vals[1]), fmt, higher, note))

    rate = lambda t: n / t
    msgs = "{:,.0f} msg/s"
    row("produce, kcat", "kcat produce", rate, msgs, True)
    row("produce, kcat, enable.idempotence=true", "kcat produce idem", rate, msgs, True)
    row("consume, kcat, default settings", "kcat consume", rate, msgs, True,
        "librdkafka's queued.min.messages pauses, see BENCHMARKS.md")
    row("consume, kcat, queued.min.messages=10M", "kcat consume q", rate, msgs, True)
    row("consume, librdkafka (rdkafka_consume)", "librdkafka consume", rate, msgs, True)
    row("produce, Java ProducerPerformance", "java produce", lambda v: v[0], msgs, True,
        "acks=all, idempotent, linger.ms=5")
    row("consume, Java ConsumerPerformance (fetch.nMsg.sec)", "java consume", lambda v: v[1],
        msgs, True, "group join left out")
    row("consume, Java ConsumerPerformance (nMsg.sec)", "java consume", lambda v: v[0], msgs,
        True, "group join included")
    row("Java consumer group join (rebalance.time.ms)", "java consume", lambda v: v[2],
        "{:,.0f} ms", False)
    row(f"produce latency p50 @ {args.rate:,}/s", "latency", lambda v: v[0], "{:.2f} ms", False,
        "confluent-kafka, acks=all, linger.ms=0")
    row(f"produce latency p99 @ {args.rate:,}/s", "latency", lambda v: v[1], "{:.2f} ms", False)
    srow("exec -> first answered Metadata", "ready", lambda v: v, "{:,.1f} ms", False,
         "Kafka: kafka.sh start (format JVM + broker JVM)")
    rows.append(("  Klamm's ready line / Kafka's broker JVM alone",
                 med([s["ready line"] for s in starts[K] if "ready line" in s] or [float("nan")]),
                 med([s["broker JVM"] for s in starts[F]]), "{:,.1f} ms", False,
                 "Kafka: from its pid file to the first answer"))
    srow("broker CPU time, exec -> idle", "cpu", lambda v: v * 1000, "{:,.0f} ms", False,
         "/proc/PID/stat, 10 ms ticks")
    srow("RSS idle (VmRSS)", "idle", lambda v: v[0] / 1024, "{:,.1f} MB", False,
         "1 s after ready")
    srow("  of which RssAnon", "idle", lambda v: v[1] / 1024, "{:,.1f} MB", False)
    row("RSS after the round (VmRSS)", "after", lambda v: v[0] / 1024, "{:,.1f} MB", False,
        f"{3 * n / 1e6:g} M msgs written (+ latency's), {4 * n / 1e6:g} M read")
    row("  of which RssAnon", "after", lambda v: v[1] / 1024, "{:,.1f} MB", False)
    row("broker CPU time for the round's load", "cpu load", lambda v: v, "{:,.1f} s", False,
        "all of the above")
    for key, what in [("kcat produce", "kcat produce"), ("kcat produce idem", "kcat produce, idempotent"),
                      ("kcat consume q", "kcat consume, queued.min.messages=10M"),
                      ("librdkafka consume", "librdkafka consume"),
                      ("java produce", "Java ProducerPerformance"),
                      ("java consume", "Java ConsumerPerformance")]:
        row(f"  broker CPU time, {what}", "cpu " + key, lambda v: v, "{:,.2f} s", False,
            f"{n / 1e6:g} M msgs, 10 ms ticks")

    nstarts = len(starts[K])
    print()
    print(f"Klamm vs {F}: {n:,} x 100 B per workload, {args.reference_rounds} rounds "
          f"alternating Klamm/Kafka on a fresh broker each (median), {nstarts} starts each "
          f"({args.reference_starts} alone + 1 per round); run took {wall / 60:.1f} min")
    for b in brokers:
        print(f"{b.name}: {b.describe()}")
    if not all(r["precreated"] for rs in rounds.values() for r in rs):
        print("note: topics were not pre-created (no confluent-kafka): timings include auto-creation")
    print("load average (1 min) before the run and after each round: "
          + ", ".join(f"{l[0]:.2f}" for l in loads) + f"  ({os.cpu_count()} CPUs)")
    print()
    print(f"| metric | {K} | {F} | {K}/{F} | note |")
    print("|---|---:|---:|---:|---|")
    for metric, k, f, fmt, higher, note in rows:
        if k is None:
            print(f"| {metric} | – | – | – | {note} |")
            continue
        better = "higher is better" if higher else "lower is better"
        if k == 0 and "ticks" in note:  # below the clock's resolution
            tick = 10 if fmt.endswith("ms") else 0.01
            kv, ratio = "< 10 ms", f"< {tick / f:.2g}" if f else "–"
        else:
            kv, ratio = fmt.format(k), f"{k / f:.3g}" if f else "–"
        print(f"| {metric} | {kv} | {fmt.format(f)} | {ratio} | "
              f"{better}{'; ' + note if note else ''} |")
    print()
    print("per-round values (Klamm | Kafka):")
    for key, f, fmt in [("kcat produce", rate, "{:,.0f}"), ("kcat produce idem", rate, "{:,.0f}"),
                        ("kcat consume", rate, "{:,.0f}"), ("kcat consume q", rate, "{:,.0f}"),
                        ("librdkafka consume", rate, "{:,.0f}"),
                        ("java produce", lambda v: v[0], "{:,.0f}"),
                        ("java consume", lambda v: v[1], "{:,.0f}"),
                        ("latency", lambda v: v[1], "p99 {:.2f} ms"),
                        ("after", lambda v: v[0] / 1024, "{:.1f} MB"),
                        ("cpu load", lambda v: v, "{:.1f} s CPU"),
                        ("load before", lambda v: v, "load {:.1f}")]:
        vals = [", ".join(fmt.format(x) for x in runs_of(name, key, f)) for name in (K, F)]
        print(f"  {key:<20} {vals[0]}  |  {vals[1]}")
    for name in (K, F):
        ready = ", ".join(f"{s['ready']:.1f}" for s in starts[name])
        print(f"  {name} exec -> first answer (ms): {ready}")
    ks = ", ".join(f"{s['kafka.sh returned']:.0f}" for s in starts[F])
    print(f"  kafka.sh start returned after (ms; it polls every 250 ms): {ks}")
    for name in (K, F):
        lat = runs_of(name, "java produce", lambda v: f"p50 {v[1]:.0f} / p99 {v[2]:.0f} ms")
        print(f"  {name} ProducerPerformance latency at full speed: {', '.join(lat)}")
