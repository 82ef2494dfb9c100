"""A Klamm process under test: started on a free loopback port, observed through /proc,
stopped (or SIGKILLed, or paused with SIGSTOP) by its own PID only. Also the ZooKeeper a
cluster of them joins, stopped by its PID too."""

import ctypes
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

KLAMM_BIN = os.environ.get("KLAMM_BIN") or os.path.expanduser(
    "~/.cache/klamm/target/release/klamm")
READY_TIMEOUT = 30.0
# Debian's ZooKeeper (package `zookeeper`, which run.sh installs when it is missing).
ZK_SERVER = "/usr/share/zookeeper/bin/zkServer.sh"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    """/proc/PID/status as {field: kB or text}; {} once the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.strip()
                out[k] = int(v.split()[0]) if v.endswith(" kB") else v
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return out


def die_with_parent():
    """preexec_fn: if the battery itself dies (a crash, a CI timeout's SIGKILL), the child
    goes with it instead of lingering on its ports. PR_SET_PDEATHSIG = 1; it survives the
    exec, and zkServer.sh's own exec of java."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


ALL = []  # every Broker made, so the runner can scan each case's logs afterwards


class Broker:
    """One broker; start() may be called again after kill9()/stop() on the same port and
    data dir, which is what the crash cycles need."""

    def __init__(self, workdir, name, args=(), nofile=None):
        self.name = name
        self.port = free_port()
        # The admin HTTP port gives the broker's own count of open client connections,
        # which the connection cases wait on.
        self.http_port = free_port()
        self.data_dir = os.path.join(workdir, f"{name}-data")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.args = list(args)
        self.nofile = nofile  # (soft, hard) RLIMIT_NOFILE to start the broker with
        self.proc = None
        self.starts = 0
        self.watchdog = None
        self.paused = False
        ALL.append(self)

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def _preexec(self):
        die_with_parent()
        # Lets a case start the broker with a low open-file limit (a low hard limit, which
        # the broker cannot raise past) instead of the limit this process raised for its
        # own sockets. Lowering the hard limit needs no privilege.
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        # The caller's KLAMM_* variables (KLAMM_BIN, or a developer's KLAMM_FSYNC) must not
        # change the broker under test: every setting is a flag here.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLAMM_")}
        env["NO_COLOR"] = "1"
        cmd = [KLAMM_BIN, "--listen", self.bootstrap, "--data-dir", self.data_dir,
               "--http", f"127.0.0.1:{self.http_port}"] + self.args
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            offset = log.tell()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         preexec_fn=self._preexec)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if b"klamm ready on" in f.read():
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker {self.name} exited with {self.proc.returncode} "
                                   f"before ready:\n{self.log_tail()}")
            time.sleep(0.01)
        self.kill9()
        raise RuntimeError(f"broker {self.name} not ready in {READY_TIMEOUT}s:\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)  # a stopped (SIGSTOP) process dies too
        if self.proc is not None:
            self.proc.wait(timeout=30)
        self.paused = False

    def pause(self):
        """SIGSTOP: the process stays, its sockets open, but it answers nothing and sends no
        ZooKeeper heartbeats until resume()."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.paused and self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self, timeout=20.0):
        self.stop_watchdog()
        self.resume()  # a stopped process would only see the SIGTERM once continued
        if not self.alive():
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def status(self):
        return proc_status(self.proc.pid) if self.alive() else {}

    def hwm_mb(self):
        """Peak resident memory (VmHWM) so far, in MB; None once the process is gone."""
        kb = self.status().get("VmHWM")
        return None if kb is None else kb / 1024.0

    def rss_mb(self):
        kb = self.status().get("VmRSS")
        return None if kb is None else kb / 1024.0

    def fd_count(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except FileNotFoundError:
            return 0

    def nofile_limits(self):
        """The broker's (soft, hard) RLIMIT_NOFILE from /proc/PID/limits, or None."""
        try:
            with open(f"/proc/{self.proc.pid}/limits") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        soft, hard = line.split()[3:5]
                        return (int(soft) if soft.isdigit() else soft,
                                int(hard) if hard.isdigit() else hard)
        except (FileNotFoundError, ProcessLookupError):
            pass
        return None

    def metric(self, name):
        """A Prometheus sample without labels from /metrics, or None."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics",
                                        timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def connections(self):
        v = self.metric("klamm_connections")
        return -1 if v is None else int(v)

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except FileNotFoundError:
            return ""

    def log_count(self, needle):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().count(needle.encode())
        except FileNotFoundError:
            return 0

    def log_lines(self, needle, limit=3):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return [ln for ln in lines if needle in ln][:limit]

    def thread_report(self, out_path, gdb_timeout=60.0):
        """Where a running broker's threads are, for a broker that may be stuck: their
        states and kernel wait channels (/proc), the CPU time it used over one second
        (spinning or blocked), and, if gdb is installed, every thread's backtrace, written
        whole to out_path. Returns a summary of a few lines."""
        pid = self.proc.pid

        def cpu_ticks():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        lines = []
        try:
            t0 = cpu_ticks()
            time.sleep(1.0)
            used = (cpu_ticks() - t0) / os.sysconf("SC_CLK_TCK")
            lines.append(f"CPU used over 1 s: {used:.2f} s")
            threads = {}
            for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
                base = f"/proc/{pid}/task/{tid}"
                with open(f"{base}/comm") as f:
                    comm = f.read().strip()
                with open(f"{base}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                with open(f"{base}/wchan") as f:
                    wchan = f.read().strip() or "-"
                threads.setdefault(f"{comm} {state} {wchan}", []).append(tid)
            lines.append("threads (name, state, wait channel): " + "; ".join(
                f"{k} x{len(v)}" for k, v in sorted(threads.items())))
        except (OSError, IndexError, ValueError) as e:
            lines.append(f"/proc unreadable: {e}")
        gdb = shutil.which("gdb")
        if gdb:
            try:
                out = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx",
                                      "-ex", "set pagination off",
                                      "-ex", "thread apply all bt 40"],
                                     capture_output=True, text=True, timeout=gdb_timeout,
                                     stdin=subprocess.DEVNULL).stdout
            except (OSError, subprocess.TimeoutExpired) as e:
                out = f"gdb failed: {e}"
            with open(out_path, "w") as f:
                f.write(out)
            # One line per thread that is inside the broker's own code (its name and its
            # innermost frames' functions); the idle ones (parked workers, RocksDB's pools)
            # are only counted.
            cur, frames, idle = None, [], 0
            for ln in out.splitlines() + ["Thread end"]:
                if ln.startswith("Thread "):
                    if cur is not None and any("klamm" in fr for fr in frames):
                        lines.append(f"{cur}: " + " < ".join(frames[:10]))
                    elif cur is not None:
                        idle += 1
                    cur, frames = ln.split(" (", 1)[0] + " " + ln.split('"', 2)[1] \
                        if '"' in ln else ln, []
                elif ln.startswith("#") and cur is not None:
                    fn = ln.split(" in ", 1)[1] if " in " in ln else ln.split(None, 1)[-1]
                    frames.append(re.sub(r"::h[0-9a-f]{16}$", "", fn.split(" (", 1)[0]))
            lines.append(f"{idle} more threads with no frame in klamm's code; "
                         f"full backtraces: {out_path}")
        else:
            lines.append("gdb not installed: no backtraces")
        return lines

    # A memory guard: some cases are designed to make a broken broker allocate without
    # bound (decompression bombs). This is shared machine: kill the broker before it takes
    # the machine down, and remember that it had to.
    def start_watchdog(self, kill_mb, interval=0.02):
        self.stop_watchdog()
        wd = {"stop": threading.Event(), "killed_at_mb": None, "peak_rss_mb": 0.0}
        pid = self.proc.pid

        def run():
            while not wd["stop"].is_set():
                kb = proc_status(pid).get("VmRSS")
                if kb is None:
                    return
                mb = kb / 1024.0
                wd["peak_rss_mb"] = max(wd["peak_rss_mb"], mb)
                if mb > kill_mb:
                    wd["killed_at_mb"] = mb
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    return
                wd["stop"].wait(interval)

        wd["thread"] = threading.Thread(target=run, daemon=True)
        wd["thread"].start()
        self.watchdog = wd
        return wd

    def stop_watchdog(self):
        if self.watchdog:
            self.watchdog["stop"].set()
            self.watchdog["thread"].join(timeout=5)


class ZooKeeper:
    """Debian's ZooKeeper, standalone, on a free loopback port with a config and data dir
    of its own. `zkServer.sh start-foreground` execs java, so the PID is the JVM's."""

    def __init__(self, workdir, name):
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(workdir, f"{name}-data")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc = None

    @property
    def connect(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30.0):
        """Starts it and waits (bounded) until its client port accepts TCP."""
        os.makedirs(os.path.join(self.dir, "zk"), exist_ok=True)
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=500\nminSessionTimeout=1000\ndataDir={self.dir}/zk\n"
                    f"clientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\n")
        env = dict(os.environ, ZOOCFGDIR=self.dir, ZOO_LOG_DIR=self.dir)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([ZK_SERVER, "start-foreground", cfg], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ZooKeeper not listening in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout=15.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""
