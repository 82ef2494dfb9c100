"""A Klamm process under test: started on a free loopback port, observed through /proc,
stopped (or SIGKILLed, or paused with SIGSTOP) by its own PID only. Also the ZooKeeper a
cluster of them joins, stopped by its PID too, and Netlab: network namespaces on a private
bridge, for a cluster whose network can be partitioned."""

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


def check_execs(proc, binary, timeout=5.0):
    """For a child started under a wrapper that must exec `binary` (`ip netns exec`):
    waits (bounded) until the child's PID runs `binary`, so that signals sent to that PID
    reach it. Raises (after killing the child) if it never does."""
    want = os.path.realpath(binary)
    deadline = time.monotonic() + timeout
    exe = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            exe = os.path.realpath(f"/proc/{proc.pid}/exe")
        except OSError:
            exe = None
        if exe == want:
            return
        time.sleep(0.005)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
        raise RuntimeError(f"PID {proc.pid} runs {exe}, not {want}: the wrapper did not exec it")


ALL = []  # every Broker made, so the runner can scan each case's logs afterwards


class Broker:
    """One broker; start() may be called again after kill9()/stop() on the same port and
    data dir, which is what the crash cycles need."""

    def __init__(self, workdir, name, args=(), nofile=None, host="127.0.0.1", prefix=()):
        self.name = name
        # host: the address it listens on (and its admin port); prefix: a command the
        # broker runs under, which must exec it (Netlab.exec_prefix: `ip netns exec NS`),
        # so that the PID held is still the broker's. A port free here is free in a fresh
        # network namespace too.
        self.host = host
        self.prefix = list(prefix)
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
        return (self.host, self.port)

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

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
        cmd = self.prefix + [KLAMM_BIN, "--listen", self.bootstrap, "--data-dir", self.data_dir,
                             "--http", f"{self.host}:{self.http_port}"] + self.args
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            offset = log.tell()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         preexec_fn=self._preexec)
        if self.prefix:
            check_execs(self.proc, KLAMM_BIN)
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
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}/metrics",
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
    """Debian's ZooKeeper, standalone, on a free loopback port (or `host`, under `prefix`
    as for Broker) with a config and data dir of its own. `zkServer.sh start-foreground`
    execs java, so the PID is the JVM's."""

    def __init__(self, workdir, name, host="127.0.0.1", prefix=()):
        self.name = name
        self.host = host
        self.prefix = list(prefix)
        self.port = free_port()
        self.dir = os.path.join(workdir, f"{name}-data")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc = None

    @property
    def connect(self):
        return f"{self.host}:{self.port}"

    def start(self, timeout=30.0):
        """Starts it and waits (bounded) until its client port accepts TCP."""
        os.makedirs(os.path.join(self.dir, "zk"), exist_ok=True)
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=500\nminSessionTimeout=1000\ndataDir={self.dir}/zk\n"
                    f"clientPort={self.port}\nclientPortAddress={self.host}\n"
                    "admin.enableServer=false\n")
        env = dict(os.environ, ZOOCFGDIR=self.dir, ZOO_LOG_DIR=self.dir)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.prefix + [ZK_SERVER, "start-foreground", cfg],
                                         stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
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


class Netlab:
    """A private network for a cluster whose links can be cut: a Linux bridge in the root
    namespace holding 10.231.S.1/24, the address this process's clients (confluent-kafka,
    kwire) connect from, and one network namespace per member (each broker, ZooKeeper), its
    `eth0` a veth whose other end is a port of the bridge, at 10.231.S.HOST/24. Every
    address is on one L2 segment, so nothing is routed and net.ipv4.ip_forward is not
    touched. S is a /24 of 10.231.0.0/16 that no interface here uses yet.

    A cut between two members pins each one's neighbour (ARP) entry for the other to a MAC
    no interface has: their frames still leave, the bridge floods them, and no one takes
    them, so both ends see silence, as behind a dead link (no RST, no ICMP, no error from
    send), while every other pair still talks. It needs only `ip` (no tc, iptables or nft:
    this machine's kernel has none of netem, tc actions or netfilter tables). ZooKeeper has
    a namespace of its own, not the root namespace, so that a broker can be cut from
    ZooKeeper while the clients (in the root namespace) still reach it.

    Names carry this process's PID (namespaces klamm-PID-M, bridge klmbPID, host-side veths
    klmvPID-M), so runs beside each other do not meet. teardown() removes all of it; it must
    run after the processes in the namespaces have exited (a namespace lives on while a
    process is in it). Leftovers of a run that was SIGKILLed (whose PID is gone) are
    removed by the next setup()."""

    CLIENTS = "clients"             # the root namespace, as a member that can be cut
    DEAD_MAC = "02:00:00:00:00:00"  # locally administered, on no interface

    def __init__(self, members):
        """members: {name: host number (2-253)}; names are short (e.g. "zk", "b1")."""
        self.tag = str(os.getpid())
        self.members = dict(members)
        self.bridge = f"klmb{self.tag}"
        self.subnet = None
        self.cuts = set()      # frozenset({a, b}) pairs currently cut
        self.made = []         # ("ns", name) / ("link", name), in order of creation

    @staticmethod
    def unavailable():
        """Why this machine cannot host a Netlab, or None."""
        if not shutil.which("ip"):
            return "`ip` (iproute2) not installed"
        if os.geteuid() != 0:
            return "network namespaces need root (CAP_NET_ADMIN); run the battery as root"
        return None

    def ns(self, member):
        return f"klamm-{self.tag}-{member}"

    def veth(self, member):
        return f"klmv{self.tag}-{member}"

    def ip(self, member):
        """Address of a member (or of the clients)."""
        host = 1 if member == self.CLIENTS else self.members[member]
        return f"10.231.{self.subnet}.{host}"

    def exec_prefix(self, member):
        """`ip netns exec` execs the command (iproute2 forks only in batch mode), so the
        PID of the process started under it is the command's."""
        return ["ip", "netns", "exec", self.ns(member)]

    @staticmethod
    def _ip(*args, check=True):
        r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")
        return r.stdout

    @staticmethod
    def _pid_alive(pid):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def _remove_leftovers(self):
        """Namespaces and links of earlier runs whose process is gone."""
        for line in self._ip("netns", "list", check=False).splitlines():
            m = re.match(r"klamm-(\d+)-\S+", line)
            if m and not self._pid_alive(int(m.group(1))):
                self._ip("netns", "del", m.group(0), check=False)
        for line in self._ip("-o", "link", "show", check=False).splitlines():
            m = re.match(r"\d+: (klm[bv](\d+)(?:-[a-z0-9]+)?)[@:]", line)
            if m and not self._pid_alive(int(m.group(2))):
                self._ip("link", "del", m.group(1), check=False)

    def _pick_subnet(self):
        used = set(re.findall(r"inet 10\.231\.(\d+)\.", self._ip("-4", "-o", "addr", "show")))
        start = os.getpid() % 250
        for i in range(250):
            s = (start + i) % 250 + 1
            if str(s) not in used:
                return s
        raise RuntimeError("no free /24 in 10.231.0.0/16")

    def setup(self):
        self._remove_leftovers()
        self.subnet = self._pick_subnet()
        self._ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        self._ip("addr", "add", f"{self.ip(self.CLIENTS)}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for m in self.members:
            ns, veth = self.ns(m), self.veth(m)
            self._ip("netns", "add", ns)
            self.made.append(("ns", ns))
            self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.made.append(("link", veth))
            self._ip("link", "set", veth, "master", self.bridge, "up")
            self._ip("-n", ns, "addr", "add", f"{self.ip(m)}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")
            self._ip("-n", ns, "link", "set", "lo", "up")
        return self

    def _pin(self, member, other, dead):
        """Points `member`'s neighbour entry for `other` at DEAD_MAC (dead) or drops the
        pinned entry so that ARP finds the real one again."""
        where = [] if member == self.CLIENTS else ["-n", self.ns(member)]
        dev = self.bridge if member == self.CLIENTS else "eth0"
        if dead:
            self._ip(*where, "neigh", "replace", self.ip(other), "lladdr", self.DEAD_MAC,
                     "dev", dev, "nud", "permanent")
        else:
            self._ip(*where, "neigh", "del", self.ip(other), "dev", dev, check=False)

    def cut(self, member, others):
        """Cuts `member` off from each of `others` (members, or CLIENTS), both ways."""
        for o in others:
            self._pin(member, o, True)
            self._pin(o, member, True)
            self.cuts.add(frozenset((member, o)))

    def isolate(self, member):
        """Cuts `member` off from everyone: the other members and the clients."""
        self.cut(member, [m for m in list(self.members) + [self.CLIENTS] if m != member])

    def heal(self):
        """Undoes every cut."""
        for pair in list(self.cuts):
            a, b = tuple(pair)
            self._pin(a, b, False)
            self._pin(b, a, False)
            self.cuts.discard(pair)

    def teardown(self):
        """Removes the veths, namespaces and bridge this Netlab made (the clients' pinned
        entries go with the bridge). Returns what could not be removed (empty if all)."""
        for kind, name in reversed(self.made):
            if kind == "link":
                self._ip("link", "del", name, check=False)
            else:
                self._ip("netns", "del", name, check=False)
        netns = self._ip("netns", "list", check=False)
        links = self._ip("-o", "link", "show", check=False)
        left = [name for kind, name in self.made
                if (kind == "ns" and re.search(rf"^{re.escape(name)}\b", netns, re.M))
                or (kind == "link" and re.search(rf"^\d+: {re.escape(name)}[@:]", links, re.M))]
        self.made = []
        self.cuts.clear()
        return left
