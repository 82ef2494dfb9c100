#!/usr/bin/env python3
"""Runs librdkafka's own integration test suite (tests/test-runner) against Klamm.

Called by run.sh once librdkafka and its test runner are built.  Standard library only.

- Reads the list of tests (name, flags, scenario) from tests/test.c of the source tree.
- Checks that every test is either in allowlist.txt or in skiplist.txt (with a reason).
- Starts one broker per test scenario ("default": auto-create on, 4 partitions, like the
  suite's scenarios/default.json; "noautocreate": auto-create off), on a kernel-chosen
  loopback port with an ephemeral data dir, and stops it by PID.
- Runs each selected test number as its own `test-runner -L` process (TESTS=NNNN) under a
  hard per-test timeout, a few processes at a time, and reads each test's state from the
  runner's summary table (or from its banners when the process had to be killed).
- Prints one line per test, the output tail of failing allow-listed tests, the tests that
  passed but are not allow-listed yet, and ends with "librdkafka: N passed, M failed"
  (allow-listed tests only).  Exit status 1 when an allow-listed test did not pass.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\(B")
SUMMARY_ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*([A-Z]+)\s*\|\s*([0-9.]+)s\s*\|\s?(.*)$")
BANNER = re.compile(r"================= Test (\S+) (PASSED|FAILED|SKIPPED) =================")
FAIL_LINE = re.compile(r'### Test "([^" ]+)[^"]*" failed at')


def log(msg=""):
    print(msg, flush=True)


# Running test-runner processes and brokers, so that SIGTERM/SIGINT (e.g. run.sh's overall
# timeout) can stop them all before the driver exits.
RUNNING = set()
RUNNING_LOCK = threading.Lock()
BROKERS = []


# ---------------------------------------------------------------- test list (test.c)


def parse_tests(test_c):
    """[(name, flags, scenario)] in test.c order."""
    src = open(test_c, encoding="utf-8", errors="replace").read()
    start = src.index("struct test tests[]")
    body = src[start : src.index("{NULL}", start)]
    tests = []
    for m in re.finditer(r"_TEST\(\s*(\w+)\s*,\s*([^,)]+)((?:[^()]|\([^()]*\))*)\)", body):
        name, flags, rest = m.group(1), m.group(2), m.group(3)
        sc = re.search(r'\.scenario\s*=\s*"([^"]*)"', rest)
        tests.append((name, " ".join(flags.split()), sc.group(1) if sc else "default"))
    return tests


def read_list(path, with_reason):
    """allowlist: one name per line; skiplist: name, whitespace, reason.  '#' comments."""
    entries = {}
    if not os.path.exists(path):
        return entries
    for lineno, raw in enumerate(open(path, encoding="utf-8"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        reason = parts[1].strip() if len(parts) > 1 else ""
        if not with_reason:
            reason = reason.lstrip("#").strip()
        entries[parts[0]] = (reason, lineno)
    return entries


# ---------------------------------------------------------------- broker


class Broker:
    def __init__(self, binary, scenario, workdir, extra_args):
        self.binary = binary
        self.scenario = scenario
        self.logpath = os.path.join(workdir, "broker-%s.log" % scenario)
        self.extra_args = extra_args
        self.proc = None
        self.port = None
        self.restarts = 0
        self.lock = threading.Lock()

    def args(self):
        a = [self.binary, "--listen", "127.0.0.1:0", "--ephemeral", "--num-partitions", "4"]
        a += ["--auto-create-topics-enable", "false" if self.scenario == "noautocreate" else "true"]
        return a + self.extra_args

    def start(self):
        logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        deadline = time.time() + 30
        ready = re.compile(r"klamm ready on 127\.0\.0\.1:(\d+)")
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited with %s, log: %s" % (self.proc.returncode, self.logpath))
            with open(self.logpath, "rb") as f:
                found = ready.findall(ANSI.sub("", f.read().decode("utf-8", "replace")))
            if found:
                self.port = int(found[-1])
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("broker not ready after 30s, log: %s" % self.logpath)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ensure_alive(self):
        """Restarts a dead broker; returns a note when it had died."""
        with self.lock:
            if self.alive():
                return None
            code = self.proc.returncode if self.proc else None
            self.restarts += 1
            self.start()
            return "broker (%s) had exited with status %s; restarted on port %d" % (
                self.scenario, code, self.port)

    def stop(self):
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------- running tests


def run_number(num, names, broker, opts, workdir):
    """Runs test number `num` once; returns ({name: (state, detail)}, seconds, logpath)."""
    note = broker.ensure_alive()
    conf = os.path.join(workdir, "test-%s-%s.conf" % (broker.scenario, num))
    with open(conf, "w") as f:
        f.write("bootstrap.servers=127.0.0.1:%d\n" % broker.port)
        f.write("test.timeout.multiplier=%s\n" % opts.multiplier)
        # Fresh topic names for every run (topics are created by the tests themselves).
        f.write("test.topic.random=true\n")
        if opts.debug:
            f.write("debug=%s\n" % opts.debug)
    env = dict(os.environ)
    env.update({
        "TESTS": num,
        "TEST_SCENARIO": broker.scenario,
        "TEST_KAFKA_VERSION": opts.kafka_version,
        "RDKAFKA_TEST_CONF": conf,
        "TEST_LEVEL": str(opts.test_level),
        "LD_LIBRARY_PATH": "../src:../src-cpp",
        "RDKAFKA_GITVER": "2.0.2-debian",
    })
    env.pop("TESTS_SKIP", None)
    env.pop("SUBTESTS", None)
    if opts.debug:
        env["TEST_DEBUG"] = opts.debug
    # Line-buffered, so the output of a test that has to be killed is not lost.
    args = ["stdbuf", "-oL", "-eL", "./test-runner", "-L", "-p1"]
    if opts.quick:
        args.append("-Q")
    logpath = os.path.join(workdir, "%s-%s.log" % (num, broker.scenario))
    t0 = time.time()
    timed_out = False
    with open(logpath, "wb") as out:
        if note:
            out.write(("### %s\n" % note).encode())
            out.flush()
        proc = subprocess.Popen(args, cwd=opts.testsdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        with RUNNING_LOCK:
            RUNNING.add(proc)
        try:
            proc.wait(timeout=opts.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc)
            proc.wait(timeout=30)
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(proc)
    secs = time.time() - t0
    text = ANSI.sub("", open(logpath, "rb").read().decode("utf-8", "replace"))

    results = {}
    failstr = {}
    for line in text.splitlines():
        m = SUMMARY_ROW.match(line.strip())
        if m and m.group(1) in names:
            results[m.group(1)] = (m.group(2), m.group(4).strip())
        m = BANNER.search(line)
        if m and m.group(1) in names and m.group(1) not in results:
            results[m.group(1)] = (m.group(2), "")
        m = FAIL_LINE.search(line)
        if m and m.group(1) in names and m.group(1) not in failstr:
            failstr[m.group(1)] = line.strip()
    for name in names:
        state, detail = results.get(name, (None, ""))
        if timed_out and state not in ("PASSED", "FAILED", "SKIPPED"):
            state, detail = "TIMEOUT", "killed after %ds (per-test timeout)" % opts.timeout
        elif state is None:
            state, detail = "FAILED", "no result (test-runner exit status %s)" % proc.returncode
        if state == "FAILED" and not detail and name in failstr:
            detail = failstr[name]
        results[name] = (state, detail)
    if not broker.alive():
        for name in names:
            st, d = results[name]
            if st != "PASSED":
                results[name] = (st, (d + "; " if d else "") + "broker process died during the test")
    return results, secs, logpath


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path, n):
    lines = ANSI.sub("", open(path, "rb").read().decode("utf-8", "replace")).splitlines()
    return "\n".join(lines[-n:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="librdkafka source tree (with tests/test-runner built)")
    ap.add_argument("--klamm-bin", required=True)
    ap.add_argument("--allowlist", required=True)
    ap.add_argument("--skiplist", required=True)
    ap.add_argument("--full", action="store_true",
                    help="run every broker test (allow- and skip-listed) without quick mode")
    ap.add_argument("--tests", default="", help="comma-separated test numbers or names to run (overrides the lists)")
    ap.add_argument("--jobs", type=int, default=2, help="test-runner processes at a time")
    ap.add_argument("--timeout", type=int, default=240, help="hard per-test-number timeout, seconds")
    ap.add_argument("--multiplier", default="2.0", help="test.timeout.multiplier")
    ap.add_argument("--kafka-version", default="3.1.0", help="TEST_KAFKA_VERSION")
    ap.add_argument("--debug", default="", help="librdkafka debug contexts for every client (e.g. protocol,broker)")
    ap.add_argument("--test-level", type=int, default=2)
    ap.add_argument("--logdir", default="", help="keep per-test logs here (default: a temp dir, kept on failure)")
    ap.add_argument("--tail", type=int, default=60, help="lines of output printed per failing allow-listed test")
    opts = ap.parse_args()
    opts.testsdir = os.path.join(opts.src, "tests")
    opts.quick = not opts.full

    tests = parse_tests(os.path.join(opts.testsdir, "test.c"))
    by_name = {n: (f, s) for n, f, s in tests}
    allow = read_list(opts.allowlist, with_reason=False)
    skip = read_list(opts.skiplist, with_reason=True)

    problems = []
    for name in allow:
        if name not in by_name:
            problems.append("allowlist: unknown test %s" % name)
        if name in skip:
            problems.append("%s is in both allowlist and skiplist" % name)
    for name, (reason, _) in skip.items():
        if name not in by_name:
            problems.append("skiplist: unknown test %s" % name)
        if not reason:
            problems.append("skiplist: %s has no reason" % name)
    for name in by_name:
        if name not in allow and name not in skip:
            problems.append("%s is in neither allowlist.txt nor skiplist.txt" % name)
    for p in problems:
        log("LIST ERROR: %s" % p)

    def runnable(name):
        flags = {f.strip() for f in by_name[name][0].split("|")}
        return not flags & {"TEST_F_LOCAL", "TEST_F_MANUAL", "TEST_F_KNOWN_ISSUE"}

    if opts.tests:
        wanted = [t.strip() for t in opts.tests.split(",") if t.strip()]
        selected = [n for n in by_name if any(n == w or n.split("_")[0] == w for w in wanted)]
        selected = [n for n in selected if runnable(n)]
    elif opts.full:
        selected = [n for n in by_name if runnable(n)]
    else:
        selected = [n for n in by_name if n in allow]
    if not selected:
        log("no test selected")

    # Group by (scenario, number): TESTS=NNNN selects by number.
    groups = {}
    for name in selected:
        scenario = by_name[name][1].split(",")[0]
        groups.setdefault((scenario, name.split("_")[0]), []).append(name)

    workdir = opts.logdir or tempfile.mkdtemp(prefix="klamm-librdkafka-")
    os.makedirs(workdir, exist_ok=True)
    brokers = {}
    log("librdkafka suite: %d tests in %d runner invocations, mode %s, %d at a time, "
        "timeout %ds each, logs in %s" % (len(selected), len(groups), "full" if opts.full else "ci (quick)",
                                           opts.jobs, opts.timeout, workdir))
    results = {}
    durations = {}
    logs = {}
    t_all = time.time()
    try:
        for scenario in sorted({s for s, _ in groups}):
            b = Broker(opts.klamm_bin, scenario, workdir, [])
            b.start()
            brokers[scenario] = b
            log("broker (scenario %s) on 127.0.0.1:%d, pid %d" % (scenario, b.port, b.proc.pid))

        def job(key):
            scenario, num = key
            return key, run_number(num, groups[key], brokers[scenario], opts, workdir)

        with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as ex:
            for key, (res, secs, logpath) in ex.map(job, sorted(groups, key=lambda k: (k[1], k[0]))):
                for name, (state, detail) in res.items():
                    results[name] = (state, detail)
                    durations[name] = secs
                    logs[name] = logpath
                    tag = "allow" if name in allow else "skip " if name in skip else "new  "
                    log("%-8s %-48s %6.1fs  [%s]%s" % (state, name, secs, tag,
                                                       ("  " + detail[:200]) if detail and state != "PASSED" else ""))
    finally:
        for b in brokers.values():
            b.stop()
        # The runner leaves per-test stats files and offset files in its cwd.
        for f in os.listdir(opts.testsdir):
            if f.startswith("stats_") and f.endswith(".json") or f.endswith(".offset"):
                try:
                    os.remove(os.path.join(opts.testsdir, f))
                except OSError:
                    pass

    allowed_run = [n for n in selected if n in allow]
    passed = [n for n in allowed_run if results.get(n, ("", ""))[0] == "PASSED"]
    failed = [n for n in allowed_run if n not in passed]
    ratchet = [n for n in selected if n not in allow and results.get(n, ("", ""))[0] == "PASSED"]

    for name in failed:
        log("\n----- %s: %s %s (log %s)" % (name, results[name][0], results[name][1], logs[name]))
        log(tail(logs[name], opts.tail))
    for b in brokers.values():
        if b.restarts:
            log("\nbroker (%s) died %d time(s); its log: %s" % (b.scenario, b.restarts, b.logpath))
            log(tail(b.logpath, 30))

    log("\nwall time: %.0fs" % (time.time() - t_all))
    if opts.full or opts.tests:
        other = [n for n in selected if n not in allow]
        log("not allow-listed: %d run, %d passed" % (len(other), len(ratchet)))
    if ratchet:
        log("passed but not allow-listed (add them to allowlist.txt):")
        for n in ratchet:
            log("  %s  (skip reason: %s)" % (n, skip.get(n, ("not listed", 0))[0]))
    else:
        log("passed but not allow-listed: none")
    if failed or problems:
        log("logs kept in %s" % workdir)
    elif not opts.logdir:
        shutil.rmtree(workdir, ignore_errors=True)
    log("librdkafka: %d passed, %d failed" % (len(passed), len(failed)))
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
