"""Fixtures that run a real Klamm broker for each test.

`broker` starts `$KLAMM_BIN` on a free loopback port with a fresh data dir,
waits for the `klamm ready on 127.0.0.1:PORT` line and stops it by PID at
teardown (SIGTERM, then SIGKILL). `broker.restart()` / `broker.kill()` reuse
the same data dir and port. The broker log is printed when a test fails.

`listeners=["PLAINTEXT", "SSL", ...]` (on `Broker`, `new_broker` and `broker_factory`)
starts it with Kafka's `--listeners` instead of `--listen`: one free loopback port per
listener name, `broker.address(name)` gives its HOST:PORT and `broker.port` is the first
listener's (the one the ready line names).

With COMPAT_BROKER=kafka (default `klamm`) every broker is instead a real Apache
Kafka 4.4 (single-node KRaft) run by `compat-tests/kafka/kafka.sh`: the Klamm flags a
test passes are translated into Kafka properties (`KAFKA_PROPS`), and a test that
needs a Klamm-only feature (`KLAMM_ONLY`, or the `klamm_only` marker) is skipped.
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

DEFAULT_BIN = "/root/.cache/klamm/target/release/klamm"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


COMPAT_BROKER = os.environ.get("COMPAT_BROKER", "klamm")
KAFKA_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka", "kafka.sh")
KAFKA_START_TIMEOUT = 180.0

# Klamm flag -> the Kafka broker properties it stands for (each gets the flag's value).
KAFKA_PROPS = {
    "--num-partitions": ["num.partitions"],
    "--auto-create-topics-enable": ["auto.create.topics.enable"],
    "--message-max-bytes": ["message.max.bytes"],
    "--group-min-session-timeout-ms": ["group.min.session.timeout.ms"],
    "--group-initial-rebalance-delay-ms": ["group.initial.rebalance.delay.ms"],
    # Kafka refuses a consumer-group heartbeat/session below its configured minimum.
    "--group-consumer-heartbeat-interval-ms": ["group.consumer.heartbeat.interval.ms",
                                               "group.consumer.min.heartbeat.interval.ms"],
    "--group-consumer-session-timeout-ms": ["group.consumer.session.timeout.ms",
                                            "group.consumer.min.session.timeout.ms"],
    "--log-cleaner-backoff-ms": ["log.cleaner.backoff.ms"],
    # Klamm's retention task starts at once; Kafka's first runs after
    # log.initial.task.delay.ms (30 s by default), so that gets the interval too.
    "--log-retention-check-interval-ms": ["log.retention.check.interval.ms",
                                          "log.initial.task.delay.ms"],
    "--transaction-abort-timed-out-transaction-cleanup-interval-ms": [
        "transaction.abort.timed.out.transaction.cleanup.interval.ms"],
    "--transaction-max-timeout-ms": ["transaction.max.timeout.ms"],
}
# Klamm flags with no Kafka equivalent: a test that passes one is skipped on Kafka.
KLAMM_ONLY = {
    "--http": "needs Klamm's admin HTTP port (/faults fault injection, /metrics)",
}


def on_kafka():
    return COMPAT_BROKER == "kafka"


def kafka_props(extra_args):
    """Klamm CLI args -> ["name=value", ...] for kafka.sh; skips the test for a Klamm-only flag."""
    args, props = list(extra_args), []
    while args:
        flag = args.pop(0)
        value = None
        if "=" in flag:
            flag, value = flag.split("=", 1)
        if flag in KLAMM_ONLY:
            pytest.skip(f"Klamm-only under COMPAT_BROKER=kafka: {flag} {KLAMM_ONLY[flag]}")
        if flag not in KAFKA_PROPS:
            pytest.skip(f"Klamm-only under COMPAT_BROKER=kafka: flag {flag} has no Kafka mapping")
        if value is None:
            value = args.pop(0)
        props += [f"{name}={value}" for name in KAFKA_PROPS[flag]]
    return props


def klamm_bin():
    return os.environ.get("KLAMM_BIN") or DEFAULT_BIN


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, data_dir, log_path, extra_args=(), listeners=None):
        self.data_dir = str(data_dir)
        self.log_path = str(log_path)
        self.extra_args = list(extra_args)
        # Listener name -> port; None: one plain `--listen` port (what every other test uses).
        self.listeners = None if listeners is None else {name: free_port() for name in listeners}
        assert self.listeners is None or len(self.listeners) == len(listeners), listeners
        self.port = next(iter(self.listeners.values())) if self.listeners else free_port()
        self.proc = None
        self.starts = 0

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def address(self, listener):
        """HOST:PORT of one of the `listeners` the broker was made with."""
        return f"127.0.0.1:{self.listeners[listener]}"

    def _listen_args(self):
        if self.listeners is None:
            return ["--listen", self.bootstrap]
        return ["--listeners", ",".join(f"{name}://{self.address(name)}" for name in self.listeners)]

    def start(self):
        assert self.proc is None, "broker already running"
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts} =====\n".encode())
        log.flush()
        start_offset = log.tell()
        # KLAMM_* variables would override broker defaults the tests rely on.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KLAMM_") or k == "KLAMM_LOG_LEVEL"}
        env["NO_COLOR"] = "1"
        cmd = [klamm_bin(), *self._listen_args(),
               "--data-dir", self.data_dir, *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        log.close()
        ready = re.compile(rf"klamm ready on 127\.0\.0\.1:{self.port}\b")
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(start_offset)
                text = ANSI.sub("", f.read().decode("utf-8", "replace"))
            if ready.search(text):
                # The other listeners are logged ("also listening on") before the ready line.
                missing = [name for name, port in (self.listeners or {}).items()
                           if f"127.0.0.1:{port}" not in text]
                if missing:
                    self.stop(signal.SIGKILL)
                    raise RuntimeError(f"listeners {missing} not in the klamm log:\n"
                                       f"{self.log_tail()}")
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"klamm exited with {self.proc.returncode} before ready:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.02)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"klamm not ready within {READY_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stop the broker by PID; returns its exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        return proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "<no log>"
        return "\n".join(lines[-n:])


class KafkaBroker:
    """The same interface as `Broker`, for a real Kafka run by `kafka.sh` in `base_dir`
    (its server.properties, kafka.log, pid and data/ all live there). `port` is known
    after the first start; restarts keep it, the data and the properties."""

    def __init__(self, base_dir, extra_args=()):
        self.base_dir = str(base_dir)
        self.data_dir = os.path.join(self.base_dir, "data")  # Kafka's log.dirs
        self.log_path = os.path.join(self.base_dir, "kafka.log")
        self.extra_args = list(extra_args)
        self.props = kafka_props(self.extra_args)
        self.port = None
        self.starts = 0
        self.running = False

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self):
        return os.path.join(self.base_dir, "pid")

    def _pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start(self):
        assert not self.running, "broker already running"
        self.starts += 1
        # The properties are written on the first start only; restarts reuse them.
        cmd = [KAFKA_SH, "start", self.base_dir, *(self.props if self.starts == 1 else [])]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=KAFKA_START_TIMEOUT)
        if r.returncode != 0:
            raise RuntimeError(f"kafka.sh start failed ({r.returncode}):\n"
                               f"{r.stderr.decode('utf-8', 'replace')}")
        bootstrap = r.stdout.decode().strip().splitlines()[-1]
        port = int(bootstrap.rsplit(":", 1)[1])
        assert self.port in (None, port), (self.port, port)
        self.port = port
        self.running = True
        return self

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stop Kafka by its PID (kafka.sh stop). Returns 0 after a clean stop (Kafka is
        not this process's child, so its real exit code is unknown), -SIGKILL after a
        kill, and "died" when it was no longer running before the stop."""
        if not self.running:
            return None
        self.running = False
        pid = self._pid()
        was_alive = pid is not None and _pid_alive(pid)
        subprocess.run([KAFKA_SH, "stop", self.base_dir, signal.Signals(sig).name[3:]],
                       stdin=subprocess.DEVNULL, timeout=120, check=True)
        if not was_alive:
            return "died"
        return -signal.SIGKILL if sig == signal.SIGKILL else 0

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        return self.start()

    def alive(self):
        pid = self._pid()
        return self.running and pid is not None and _pid_alive(pid)

    def log_tail(self, n=60):
        return Broker.log_tail(self, n)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # an exited process not yet reaped by init is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def new_broker(tmp_path, name, log_name, extra_args=(), listeners=None):
    """A started broker: Klamm (data dir tmp_path/name, log tmp_path/log_name) or,
    with COMPAT_BROKER=kafka, Kafka in tmp_path/kafka-<name>."""
    if on_kafka():
        if listeners is not None:
            pytest.skip("Klamm-only under COMPAT_BROKER=kafka: --listeners has no Kafka mapping yet")
        return KafkaBroker(tmp_path / f"kafka-{name}", extra_args).start()
    _require_bin()
    return Broker(tmp_path / name, tmp_path / log_name, extra_args, listeners).start()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "klamm_only(reason): the test needs a Klamm-only feature; "
                   "skipped under COMPAT_BROKER=kafka")


def pytest_runtest_setup(item):
    mark = item.get_closest_marker("klamm_only")
    if mark is not None and on_kafka():
        reason = mark.args[0] if mark.args else mark.kwargs.get("reason", "Klamm-only feature")
        pytest.skip(f"Klamm-only under COMPAT_BROKER=kafka: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _require_bin():
    if not os.path.exists(klamm_bin()):
        pytest.fail(f"klamm binary not found at {klamm_bin()} (set KLAMM_BIN)")


def _make_broker(request, tmp_path, extra_args=()):
    b = new_broker(tmp_path, "data", "klamm.log", extra_args)
    yield b
    code = b.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n----- klamm log ({b.log_path}) -----\n{b.log_tail()}")
    # A broker that died on its own during the test is a failure by itself.
    assert code in (None, 0, -signal.SIGTERM), f"klamm exited with {code}:\n{b.log_tail()}"


@pytest.fixture
def broker(request, tmp_path):
    """A fresh single-node broker (1 partition per auto-created topic)."""
    yield from _make_broker(request, tmp_path)


@pytest.fixture
def broker_factory(request, tmp_path):
    """Start a broker with extra CLI args, e.g. ["--num-partitions", "3"]
    (and `listeners=[...]` for Kafka's `--listeners`, see `Broker`)."""
    brokers = []

    def make(*extra_args, listeners=None):
        b = new_broker(tmp_path, f"data{len(brokers)}", f"klamm{len(brokers)}.log", extra_args,
                       listeners)
        brokers.append(b)
        return b

    yield make
    rep = getattr(request.node, "rep_call", None)
    for b in brokers:
        b.stop()
        if rep is not None and rep.failed:
            print(f"\n----- klamm log ({b.log_path}) -----\n{b.log_tail()}")


@pytest.fixture
def topic(request):
    """A topic name unique to the test (valid Kafka chars only)."""
    name = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)[:180]
    return f"t-{name}-{time.monotonic_ns() % 100000}"


# --------------------------------------------------------------------------- consumer groups
@pytest.fixture
def group_broker(request, tmp_path):
    """A fresh broker whose group.min.session.timeout.ms is 1000 (fast session expiry)."""
    from test_groups_support import GROUP_BROKER_ARGS
    yield from _make_broker(request, tmp_path, GROUP_BROKER_ARGS)


@pytest.fixture
def workers(request, tmp_path):
    """Factory of group-consumer processes (`test_groups_support.Worker`); all are
    SIGKILLed at teardown, and their logs are printed when the test failed."""
    from test_groups_support import Worker
    started = []

    def make(*args, **kwargs):
        w = Worker(*args, log_dir=tmp_path, **kwargs)
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for w in started:
            print(f"\n----- worker {w.name} ({w.log_path}) -----\n{w.log_tail(60)}")
