"""Fixtures that run a real Klamm broker for each test.

`broker` starts `$KLAMM_BIN` on a free loopback port with a fresh data dir,
waits for the `klamm ready on 127.0.0.1:PORT` line and stops it by PID at
teardown (SIGTERM, then SIGKILL). `broker.restart()` / `broker.kill()` reuse
the same data dir and port. The broker log is printed when a test fails.
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


def klamm_bin():
    return os.environ.get("KLAMM_BIN") or DEFAULT_BIN


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, data_dir, log_path, extra_args=()):
        self.data_dir = str(data_dir)
        self.log_path = str(log_path)
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.proc = None
        self.starts = 0

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

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
        cmd = [klamm_bin(), "--listen", self.bootstrap,
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _require_bin():
    if not os.path.exists(klamm_bin()):
        pytest.fail(f"klamm binary not found at {klamm_bin()} (set KLAMM_BIN)")


def _make_broker(request, tmp_path, extra_args=()):
    _require_bin()
    b = Broker(tmp_path / "data", tmp_path / "klamm.log", extra_args).start()
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
    """Start a broker with extra CLI args, e.g. ["--num-partitions", "3"]."""
    brokers = []

    def make(*extra_args):
        _require_bin()
        b = Broker(tmp_path / f"data{len(brokers)}", tmp_path / f"klamm{len(brokers)}.log",
                   extra_args).start()
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
