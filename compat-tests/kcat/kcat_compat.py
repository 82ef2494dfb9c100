#!/usr/bin/env python3
"""kcat compatibility tests for the Klamm broker.

Runs Debian's kcat (librdkafka) against a Klamm broker started by this script and
compares what comes back byte for byte with what was sent.  Standard library only.

Environment:
  KLAMM_BIN      broker binary (default /root/.cache/klamm/target/release/klamm)
  KCAT           kcat binary (default: kcat on PATH)
  KCAT_DEBUG     if set (e.g. "protocol,broker"), passed to every kcat call as -d
  KCAT_ONLY      comma-separated test names to run (default: all)
  KCAT_VERBOSE   if set, print every kcat command line

Exit status is non-zero if any test failed; the last line is
"kcat: N passed, M failed".
"""

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

KLAMM_BIN = os.environ.get("KLAMM_BIN") or "/root/.cache/klamm/target/release/klamm"
KCAT = os.environ.get("KCAT") or shutil.which("kcat") or "/usr/bin/kcat"
KCAT_DEBUG = os.environ.get("KCAT_DEBUG", "")
VERBOSE = bool(os.environ.get("KCAT_VERBOSE"))
READY_TIMEOUT = 20.0
KCAT_TIMEOUT = 30.0
NUM_PARTITIONS = 3  # partitions of auto-created topics on the main broker

# Consumer output format: every field we check, with lengths so that keys and
# values may hold any bytes (including the separators).  Headers come last as
# kcat prints them ("n=v" CSV) up to the newline.
FMT = "R|%t|%p|%o|%T|%K|%S|%k%s|%h\\n"


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def check_eq(actual, expected, what):
    if actual != expected:
        raise TestFailure(f"{what}: expected {short(expected)}, got {short(actual)}")


def short(v, limit=600):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------
# Broker process
# --------------------------------------------------------------------------------------

class Broker:
    """One Klamm process; can be stopped and started again on the same port and data dir.
    `listeners=["PLAINTEXT", "SSL", ...]` starts it with Kafka's `--listeners` instead of
    `--listen`, one free port per listener (`address(name)`; `port` is the first one's)."""

    def __init__(self, workdir, name, extra_args=(), listeners=None):
        self.name = name
        self.listeners = None if listeners is None else {n: free_port() for n in listeners}
        self.port = next(iter(self.listeners.values())) if self.listeners else free_port()
        self.data_dir = os.path.join(workdir, f"{name}-data")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.extra_args = list(extra_args)
        self.proc = None
        self.starts = 0

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def address(self, listener):
        return f"127.0.0.1:{self.listeners[listener]}"

    def listen_args(self):
        if self.listeners is None:
            return ["--listen", self.bootstrap]
        return ["--listeners", ",".join(f"{n}://{self.address(n)}" for n in self.listeners)]

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        # Do not let KLAMM_* variables of the caller change the broker under test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLAMM_")}
        env["NO_COLOR"] = "1"
        cmd = [KLAMM_BIN] + self.listen_args() + ["--data-dir", self.data_dir] + self.extra_args
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
        log.flush()
        offset = log.tell()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if b"klamm ready on" in f.read():
                    return
            if self.proc.poll() is not None:
                raise TestFailure(f"broker {self.name} exited with {self.proc.returncode} "
                                  f"before ready:\n{self.log_tail()}")
            time.sleep(0.05)
        self.kill()
        raise TestFailure(f"broker {self.name} not ready within {READY_TIMEOUT}s:\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stop by PID with the given signal; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise TestFailure(f"broker {self.name} did not exit within {timeout}s "
                                  f"after signal {sig!r}; killed")
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join("    | " + l for l in lines[-n:])
        except OSError:
            return "    | (no log)"


# --------------------------------------------------------------------------------------
# kcat helpers
# --------------------------------------------------------------------------------------

class Msg:
    __slots__ = ("topic", "partition", "offset", "ts", "key", "value", "headers")

    def __init__(self, topic, partition, offset, ts, key, value, headers):
        self.topic, self.partition, self.offset, self.ts = topic, partition, offset, ts
        self.key, self.value, self.headers = key, value, headers

    def __repr__(self):
        return (f"Msg(p={self.partition}, o={self.offset}, ts={self.ts}, key={short(self.key, 60)}, "
                f"value={short(self.value, 60)}, headers={short(self.headers, 60)})")


def parse_fmt_output(out):
    """Parse kcat -f FMT output into Msg objects (byte-exact keys and values)."""
    msgs = []
    i = 0
    n = len(out)
    while i < n:
        if out[i:i + 2] != b"R|":
            raise TestFailure(f"unparsable kcat output at byte {i}: {out[i:i + 80]!r}")
        i += 2
        fields = []
        for _ in range(6):  # topic, partition, offset, ts, keylen, valuelen
            j = out.index(b"|", i)
            fields.append(out[i:j])
            i = j + 1
        topic = fields[0].decode()
        partition, offset, ts, klen, vlen = (int(x) for x in fields[1:])
        key = None
        if klen >= 0:
            key = out[i:i + klen]
            i += klen
        value = None
        if vlen >= 0:
            value = out[i:i + vlen]
            i += vlen
        if out[i:i + 1] != b"|":
            raise TestFailure(f"kcat output: expected '|' after payload at byte {i}: {out[i:i + 80]!r}")
        i += 1
        j = out.index(b"\n", i)
        headers = out[i:j]
        i = j + 1
        msgs.append(Msg(topic, partition, offset, ts, key, value, headers))
    return msgs


def bytes_from_json_str(s):
    """kcat -J writes keys/values raw (no UTF-8 validation); we decoded the output with
    surrogateescape, so encoding back the same way restores the original bytes."""
    return None if s is None else s.encode("utf-8", "surrogateescape")


class Kcat:
    def __init__(self, broker, bootstrap=None, conf=(), history=None):
        """`bootstrap` defaults to the broker's; `conf` are extra kcat arguments given to
        every call (e.g. ["-X", "security.protocol=SSL"]); `history` may be shared."""
        self.broker = broker
        self.bootstrap = bootstrap or broker.bootstrap
        self.conf = list(conf)
        self.history = [] if history is None else history  # (cmd, rc, stderr) of recent calls

    def run(self, args, input=b"", timeout=KCAT_TIMEOUT, check_rc=True):
        cmd = [KCAT, "-b", self.bootstrap] + self.conf + list(args)
        if KCAT_DEBUG:
            cmd += ["-d", KCAT_DEBUG]
        if VERBOSE:
            print("    $ " + " ".join(cmd), flush=True)
        try:
            p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.history.append((cmd, "timeout", e.stderr or b""))
            raise TestFailure(f"kcat timed out after {timeout}s: {' '.join(cmd)}")
        self.history.append((cmd, p.returncode, p.stderr))
        del self.history[:-6]
        if check_rc and p.returncode != 0:
            raise TestFailure(f"kcat exited {p.returncode}: {' '.join(cmd)}\n"
                              f"    stderr: {p.stderr.decode('utf-8', 'replace').strip()[-2000:]}")
        return p

    # -- producing ----------------------------------------------------------------------
    def produce(self, topic, data=b"", args=(), partition=0, files=None):
        """kcat -P; data is stdin (split by the delimiter) unless files are given."""
        a = ["-P", "-t", topic, "-X", "message.timeout.ms=20000"]
        if partition is not None:
            a += ["-p", str(partition)]
        a += list(args)
        if files:
            a += list(files)
        p = self.run(a, input=data)
        err = p.stderr.decode("utf-8", "replace")
        check("Delivery failed" not in err and "ERROR" not in err,
              f"kcat producer reported errors: {err.strip()[-2000:]}")
        return p

    # -- consuming ----------------------------------------------------------------------
    def consume(self, topic, partition=0, offset="beginning", args=()):
        a = ["-C", "-t", topic, "-o", str(offset), "-e", "-f", FMT]
        if partition is not None:
            a += ["-p", str(partition)]
        a += list(args)
        return parse_fmt_output(self.run(a).stdout)

    def consume_json(self, topic, partition=0, offset="beginning"):
        a = ["-C", "-t", topic, "-o", str(offset), "-e", "-J"]
        if partition is not None:
            a += ["-p", str(partition)]
        out = self.run(a).stdout.decode("utf-8", "surrogateescape")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def consume_until(self, topic, count, partition=0, timeout=15.0):
        """Consume from the beginning until at least `count` messages are visible
        (for acks=0, where the producer does not wait for the broker)."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.consume(topic, partition)
            if len(msgs) >= count or time.monotonic() > deadline:
                return msgs
            time.sleep(0.3)

    def metadata_json(self, topic=None):
        a = ["-L", "-J"]
        if topic:
            a += ["-t", topic]
        return json.loads(self.run(a).stdout)


def check_msgs(actual, expected, what, check_offsets=True):
    """expected: list of (key, value) or (key, value, offset); compares bytes exactly."""
    check_eq(len(actual), len(expected), f"{what}: message count")
    for idx, (m, e) in enumerate(zip(actual, expected)):
        check_eq(m.key, e[0], f"{what}: key of message #{idx} (offset {m.offset})")
        check_eq(m.value, e[1], f"{what}: value of message #{idx} (offset {m.offset})")
        if check_offsets:
            exp_off = e[2] if len(e) > 2 else idx
            check_eq(m.offset, exp_off, f"{what}: offset of message #{idx}")


def rand_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Ctx:
    def __init__(self, workdir, broker):
        self.workdir = workdir
        self.broker = broker
        self.kc = Kcat(broker)
        self._pki = None

    def path(self, name):
        return os.path.join(self.workdir, name)

    def pki(self):
        """The security cases' certificates, made on first use (see make_pki)."""
        if self._pki is None:
            self._pki = make_pki(self.path("pki"))
        return self._pki


@test
def metadata_list_text(ctx):
    topic = "md-text"
    ctx.kc.produce(topic, b"hello\n", partition=0)
    out = ctx.kc.run(["-L"]).stdout.decode()
    check(" 1 brokers:" in out, f"-L should list exactly 1 broker:\n{out}")
    check(f"broker 1 at {ctx.broker.bootstrap}" in out,
          f"-L should list 'broker 1 at {ctx.broker.bootstrap}':\n{out}")
    check(f"broker 1 at {ctx.broker.bootstrap} (controller)" in out,
          f"broker 1 should be reported as controller:\n{out}")
    check(f'topic "{topic}" with {NUM_PARTITIONS} partitions:' in out,
          f"-L should list auto-created {topic} with {NUM_PARTITIONS} partitions:\n{out}")
    for p in range(NUM_PARTITIONS):
        check(f"partition {p}, leader 1, replicas: 1, isrs: 1\n" in out,
              f"partition {p} line missing or wrong:\n{out}")
    out_t = ctx.kc.run(["-L", "-t", topic]).stdout.decode()
    check(f"Metadata for {topic} " in out_t and f'topic "{topic}" with {NUM_PARTITIONS} partitions:' in out_t,
          f"-L -t {topic} output wrong:\n{out_t}")
    check(" 1 topics:" in out_t, f"-L -t should list only that topic:\n{out_t}")


@test
def metadata_list_json(ctx):
    topic = "md-json"
    ctx.kc.produce(topic, b"x\n", partition=1)
    md = ctx.kc.metadata_json()
    check_eq(md["brokers"], [{"id": 1, "name": ctx.broker.bootstrap}], "-L -J brokers")
    check_eq(md["controllerid"], 1, "-L -J controllerid")
    check_eq(md["originating_broker"]["id"], 1, "-L -J originating_broker.id")
    topics = {t["topic"]: t for t in md["topics"]}
    check(topic in topics, f"{topic} missing from -L -J topics {sorted(topics)}")
    t = topics[topic]
    check("error" not in t, f"topic error: {t.get('error')}")
    check_eq(sorted(p["partition"] for p in t["partitions"]), list(range(NUM_PARTITIONS)),
             "partition ids")
    for p in t["partitions"]:
        check("error" not in p, f"partition {p['partition']} error: {p.get('error')}")
        check_eq(p["leader"], 1, f"leader of partition {p['partition']}")
        check_eq(p["replicas"], [{"id": 1}], f"replicas of partition {p['partition']}")
        check_eq(p["isrs"], [{"id": 1}], f"isrs of partition {p['partition']}")
    md_t = ctx.kc.metadata_json(topic)
    check_eq(md_t["query"]["topic"], topic, "-L -J -t query.topic")
    check_eq([x["topic"] for x in md_t["topics"]], [topic], "-L -J -t topics")


@test
def produce_keys(ctx):
    topic = "keys"
    lines = [b"alpha:one", b"beta:two:with:colons", b"no-key-on-this-line", b"gamma:",
             b":empty-key", "ключ:значение ✓".encode()]
    ctx.kc.produce(topic, b"\n".join(lines) + b"\n", args=["-K", ":"])
    expected = [(b"alpha", b"one"), (b"beta", b"two:with:colons"), (None, b"no-key-on-this-line"),
                (b"gamma", b""), (b"", b"empty-key"), ("ключ".encode(), "значение ✓".encode())]
    check_msgs(ctx.kc.consume(topic), expected, "-K : round trip")
    # Same data through the JSON envelope.
    js = ctx.kc.consume_json(topic)
    check_eq([(bytes_from_json_str(m["key"]), bytes_from_json_str(m["payload"])) for m in js],
             expected, "-J key/payload")
    check_eq([m["offset"] for m in js], list(range(len(expected))), "-J offsets")
    check(all(m["partition"] == 0 and m["broker"] == 1 for m in js), f"-J partition/broker: {js}")
    # Fixed key with -k applies to every message without a per-message key.
    topic2 = "keys-fixed"
    ctx.kc.produce(topic2, b"v1\nk:v2\n", args=["-k", "FIXED", "-K", ":"])
    check_msgs(ctx.kc.consume(topic2), [(b"FIXED", b"v1"), (b"k", b"v2")], "-k fixed key")


@test
def produce_headers(ctx):
    topic = "headers"
    hdr_args = ["-H", "h1=v1", "-H", "empty=", "-H", "nullhdr", "-H", "h1=dup",
                "-H", "utf8=ünïcødé", "-H", "eq=a=b"]
    ctx.kc.produce(topic, b"k:with-headers\n", args=["-K", ":"] + hdr_args)
    ctx.kc.produce(topic, b"k2:no-headers\n", args=["-K", ":"])
    js = ctx.kc.consume_json(topic)
    check_eq(len(js), 2, "message count")
    check_eq(js[0].get("headers"),
             ["h1", "v1", "empty", "", "nullhdr", None, "h1", "dup", "utf8", "ünïcødé", "eq", "a=b"],
             "-J headers (order, duplicates, empty and null values)")
    check_eq(bytes_from_json_str(js[0]["payload"]), b"with-headers", "payload")
    check(not js[1].get("headers"), f"message without headers got headers: {js[1].get('headers')}")
    msgs = ctx.kc.consume(topic)
    check_eq(msgs[0].headers, "h1=v1,empty=,nullhdr=NULL,h1=dup,utf8=ünïcødé,eq=a=b".encode(), "%h output")
    check_eq(msgs[1].headers, b"", "%h of message without headers")


def codec_roundtrip(ctx, codec):
    topic = f"codec-{codec}"
    rng = random.Random(f"codec-{codec}")
    # Compressible text and incompressible random bytes, many messages per batch.
    expected = []
    for i in range(300):
        if i % 3 == 0:
            v = (f"message {i} " * rng.randint(1, 40)).encode()
        elif i % 3 == 1:
            v = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        else:
            v = b"\x00" * rng.randint(1, 2000)
        v = v.replace(b"\n", b" ").replace(b":", b";")
        expected.append((f"key-{i}".encode(), v))
    data = b"".join(k + b":" + v + b"\n" for k, v in expected)
    args = ["-K", ":", "-X", "linger.ms=100", "-X", "batch.num.messages=1000"]
    if codec != "none":
        args += ["-z", codec]
    ctx.kc.produce(topic, data, args=args)
    # A second, separate batch so the log holds several compressed batches.
    ctx.kc.produce(topic, b"last:final message\n", args=args)
    expected.append((b"last", b"final message"))
    check_msgs(ctx.kc.consume(topic), expected, f"codec {codec}")
    # Consuming from the middle of a compressed batch must start at the asked offset.
    check_msgs(ctx.kc.consume(topic, offset=150), [e + (150 + i,) for i, e in enumerate(expected[150:])],
               f"codec {codec} from offset 150")


for _codec in ("none", "gzip", "snappy", "lz4", "zstd"):
    def _mk(c):
        def t(ctx):
            codec_roundtrip(ctx, c)
        t.__name__ = f"codec_{c}"
        return t
    test(_mk(_codec))


@test
def codec_large_message(ctx):
    # One ~900 KB message (under the 1 MB default message.max.bytes) per codec.
    rng = random.Random("large")
    big_random = rand_bytes(rng, 400_000)
    big_text = (b"0123456789abcdef" * 31_250)  # 500 KB compressible
    payload = big_random + big_text
    for codec in ("none", "gzip", "lz4", "zstd", "snappy"):
        topic = f"large-{codec}"
        path = ctx.path(f"large-{codec}.bin")
        with open(path, "wb") as f:
            f.write(payload)
        args = ["-k", "big"] + ([] if codec == "none" else ["-z", codec])
        ctx.kc.produce(topic, args=args, files=[path])
        msgs = ctx.kc.consume(topic)
        check_eq(len(msgs), 1, f"{codec}: message count")
        check(msgs[0].value == payload,
              f"{codec}: 900 KB payload differs (got {len(msgs[0].value or b'')} bytes)")
        check_eq(msgs[0].key, b"big", f"{codec}: key")


def acks_roundtrip(ctx, name, conf):
    topic = f"acks-{name}"
    expected = [(f"k{i}".encode(), f"acks {name} message {i}".encode()) for i in range(50)]
    data = b"".join(k + b"=" + v + b"\n" for k, v in expected)
    ctx.kc.produce(topic, data, args=["-K", "=", "-X", conf])
    msgs = ctx.kc.consume_until(topic, len(expected))
    check_msgs(msgs, expected, f"-X {conf}")
    # A second producer run must continue at the next offset.
    ctx.kc.produce(topic, b"more=after\n", args=["-K", "=", "-X", conf])
    msgs = ctx.kc.consume_until(topic, len(expected) + 1)
    check_msgs(msgs, expected + [(b"more", b"after")], f"-X {conf} second run")


for _name, _conf in (("0", "acks=0"), ("1", "acks=1"), ("all", "acks=all"), ("minus1", "acks=-1"),
                     ("rra1", "request.required.acks=1"), ("rra-1", "request.required.acks=-1"),
                     ("rra0", "request.required.acks=0")):
    def _mk(n, c):
        def t(ctx):
            acks_roundtrip(ctx, n, c)
        t.__name__ = f"acks_{n.replace('-', 'm')}"
        return t
    test(_mk(_name, _conf))


@test
def null_values_tombstones(ctx):
    topic = "tombstones"
    data = b"k1:v1\nk1:\n:v3\nk4:v4\n:\nk6:\n"
    ctx.kc.produce(topic, data, args=["-K", ":", "-Z"])
    expected = [(b"k1", b"v1"), (b"k1", None), (None, b"v3"), (b"k4", b"v4"), (None, None), (b"k6", None)]
    check_msgs(ctx.kc.consume(topic), expected, "-Z null values and keys")
    js = ctx.kc.consume_json(topic)
    check_eq([(m["key"], m["payload"]) for m in js],
             [(None if k is None else k.decode(), None if v is None else v.decode()) for k, v in expected],
             "-J null key/payload")
    # Consumer -Z prints NULL for null fields.
    out = ctx.kc.run(["-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-Z", "-f", "%k=%s\\n"]).stdout
    check_eq(out, b"k1=v1\nk1=NULL\nNULL=v3\nk4=v4\nNULL=NULL\nk6=NULL\n", "consumer -Z output")


@test
def binary_files_one_message_each(ctx):
    rng = random.Random("binfiles")
    payloads = [
        bytes(range(256)),                      # every byte value
        rand_bytes(rng, 65_536),                # random 64 KiB
        b"\n\n\x00\r\n\xff\xfe" * 100,          # delimiters and NULs inside a message
        b"\x00",                                # a single NUL
        "utf-8 ✓ \u0000 \U0001F600".encode(),   # multibyte
    ]
    files = []
    for i, p in enumerate(payloads):
        path = ctx.path(f"bin-{i}.bin")
        with open(path, "wb") as f:
            f.write(p)
        files.append(path)
    topic = "binary-files"
    ctx.kc.produce(topic, args=["-k", "\x01bin\x7f"], files=files)
    check_msgs(ctx.kc.consume(topic), [(b"\x01bin\x7f", p) for p in payloads], "binary files")
    js = ctx.kc.consume_json(topic)
    check_eq([bytes_from_json_str(m["payload"]) for m in js], payloads, "binary files via -J")


@test
def binary_delimiters(ctx):
    rng = random.Random("bindelim")
    delim = b"|~|"
    key_delim = b"\x01\x02"
    expected = []
    for i in range(200):
        while True:
            k = rand_bytes(rng, rng.randint(1, 20))
            v = rand_bytes(rng, rng.randint(1, 500))
            msg = k + key_delim + v
            # kcat splits at the first occurrence of each delimiter: draw again if the
            # random bytes would create an earlier one.
            if msg.find(key_delim) == len(k) and (msg + delim).find(delim) == len(msg):
                break
        expected.append((k, v))
    data = delim.join(k + key_delim + v for k, v in expected) + delim
    topic = "binary-delim"
    ctx.kc.produce(topic, data, args=["-D", "|~|", "-K", "\\x01\\x02"])
    check_msgs(ctx.kc.consume(topic), expected, "-D '|~|' -K '\\x01\\x02' binary")
    # -l: the same data read from a file instead of stdin.
    path = ctx.path("delim-input.bin")
    with open(path, "wb") as f:
        f.write(data)
    ctx.kc.produce(topic, args=["-D", "|~|", "-K", "\\x01\\x02", "-l"], files=[path])
    n = len(expected)
    check_msgs(ctx.kc.consume(topic, offset=n), [e + (n + i,) for i, e in enumerate(expected)],
               "-l file with -D")
    # A control byte as delimiter (kcat cannot use NUL: its delimiters are C strings).
    topic2 = "rs-delim"
    vals = [b"a\nb", b"c\rd\x00", b"\xff\xfe", b"plain"]
    ctx.kc.produce(topic2, b"\x1e".join(vals) + b"\x1e", args=["-D", "\\x1e"])
    check_msgs(ctx.kc.consume(topic2), [(None, v) for v in vals], "-D '\\x1e'")


@test
def consume_format_and_timestamps(ctx):
    topic = "fmt"
    t0 = int(time.time() * 1000)
    ctx.kc.produce(topic, b"k:v\n", args=["-K", ":", "-H", "a=b"], partition=2)
    t1 = int(time.time() * 1000)
    out = ctx.kc.run(["-C", "-t", topic, "-p", "2", "-o", "beginning", "-e",
                      "-f", "topic=%t part=%p off=%o key=%k klen=%K val=%s vlen=%S hdr=%h ts=%T\\n"]).stdout.decode()
    m = re.fullmatch(r"topic=fmt part=2 off=0 key=k klen=1 val=v vlen=1 hdr=a=b ts=(\d+)\n", out)
    check(m is not None, f"unexpected -f output: {out!r}")
    ts = int(m.group(1))
    check(t0 - 1000 <= ts <= t1 + 1000, f"timestamp {ts} not within produce window [{t0}, {t1}]")
    js = ctx.kc.consume_json(topic, partition=2)
    check_eq(js[0]["tstype"], "create", "-J tstype")
    check_eq(js[0]["ts"], ts, "-J ts")
    check_eq(js[0]["topic"], topic, "-J topic")
    # -K / -D on the consumer side.
    out2 = ctx.kc.run(["-C", "-t", topic, "-p", "2", "-o", "beginning", "-e", "-K", "\\t", "-D", "#\\n"]).stdout
    check_eq(out2, b"k\tv#\n", "consumer -K '\\t' -D '#\\n' output")


@test
def start_offsets(ctx):
    topic = "offsets"
    groups = []
    for g in range(3):
        data = b"".join(f"g{g}-m{i}\n".encode() for i in range(4))
        ctx.kc.produce(topic, data)
        groups.append(data)
        time.sleep(0.3)
    allm = ctx.kc.consume(topic)
    check_msgs(allm, [(None, f"g{g}-m{i}".encode()) for g in range(3) for i in range(4)], "-o beginning")
    n = len(allm)
    check_eq(ctx.kc.consume(topic, offset="end"), [], "-o end (nothing new)")
    check_msgs(ctx.kc.consume(topic, offset=5), [(None, m.value, m.offset) for m in allm[5:]], "-o 5")
    check_msgs(ctx.kc.consume(topic, offset=0), [(None, m.value, m.offset) for m in allm], "-o 0")
    check_msgs(ctx.kc.consume(topic, offset=n - 1), [(None, allm[-1].value, n - 1)], f"-o {n - 1}")
    check_msgs(ctx.kc.consume(topic, offset=-3), [(None, m.value, m.offset) for m in allm[-3:]], "-o -3")
    check_msgs(ctx.kc.consume(topic, offset=-n), [(None, m.value, m.offset) for m in allm], f"-o -{n}")
    # Timestamps: CreateTime as set by the producer, non-decreasing, groups apart.
    ts = [m.ts for m in allm]
    check(all(ts[i] <= ts[i + 1] for i in range(n - 1)), f"timestamps not monotonic: {ts}")
    check(ts[4] > ts[3] and ts[8] > ts[7], f"produce groups should have distinct timestamps: {ts}")
    for start in (4, 8, 0):
        t = ts[start]
        first = next(i for i, x in enumerate(ts) if x >= t)
        check_msgs(ctx.kc.consume(topic, offset=f"s@{t}"), [(None, m.value, m.offset) for m in allm[first:]],
                   f"-o s@{t} (timestamp of offset {start})")
    # A timestamp between two groups starts at the first message of the later group.
    mid = ts[3] + 1
    first = next(i for i, x in enumerate(ts) if x >= mid)
    check_msgs(ctx.kc.consume(topic, offset=f"s@{mid}"), [(None, m.value, m.offset) for m in allm[first:]],
               f"-o s@{mid} (between groups)")
    # After the last timestamp: nothing.
    check_eq(ctx.kc.consume(topic, offset=f"s@{ts[-1] + 60_000}"), [], "-o s@<future>")
    # e@: stop before the given timestamp.
    got = ctx.kc.consume(topic, args=["-o", f"e@{ts[8]}"])
    check_eq([m.offset for m in got], [i for i in range(n) if ts[i] < ts[8]], f"-o beginning -o e@{ts[8]}")
    # Query mode (ListOffsets by timestamp).
    q = json.loads(ctx.kc.run(["-Q", "-J", "-t", f"{topic}:0:{ts[4]}"]).stdout)
    check_eq(q[topic]["0"]["offset"], 4, f"-Q {topic}:0:{ts[4]}")
    check("error" not in q[topic]["0"], f"-Q error: {q}")
    q = ctx.kc.run(["-Q", "-t", f"{topic}:0:{ts[-1] + 60_000}"]).stdout.decode()
    check(re.search(rf"{topic} \[0\] offset -1\b", q) is not None, f"-Q with future timestamp: {q!r}")
    # Special timestamps: -1 = latest (high watermark), -2 = earliest.
    q = json.loads(ctx.kc.run(["-Q", "-J", "-t", f"{topic}:0:-1"]).stdout)
    check_eq(q[topic]["0"]["offset"], n, f"-Q {topic}:0:-1 (latest)")
    q = json.loads(ctx.kc.run(["-Q", "-J", "-t", f"{topic}:0:-2"]).stdout)
    check_eq(q[topic]["0"]["offset"], 0, f"-Q {topic}:0:-2 (earliest)")
    # An offset past the end: the broker answers OFFSET_OUT_OF_RANGE and the client
    # resets according to auto.offset.reset.
    check_msgs(ctx.kc.consume(topic, offset=n + 1000, args=["-X", "auto.offset.reset=smallest"]),
               [(None, m.value, m.offset) for m in allm], f"-o {n + 1000} with auto.offset.reset=smallest")
    check_eq(ctx.kc.consume(topic, offset=n + 1000, args=["-X", "auto.offset.reset=largest"]), [],
             f"-o {n + 1000} with auto.offset.reset=largest")
    # read_uncommitted sees the same (no transactions here).
    check_msgs(ctx.kc.consume(topic, args=["-X", "isolation.level=read_uncommitted"]),
               [(None, m.value, m.offset) for m in allm], "isolation.level=read_uncommitted")


@test
def oversized_message_rejected(ctx):
    # The broker's message.max.bytes is Kafka's default (1048588): a 1.5 MB record batch
    # must be refused with MESSAGE_TOO_LARGE, and nothing of it stored.
    topic = "oversized"
    ctx.kc.produce(topic, b"before\n")
    path = ctx.path("oversized.bin")
    with open(path, "wb") as f:
        f.write(rand_bytes(random.Random("oversized"), 1_500_000))
    p = ctx.kc.run(["-P", "-t", topic, "-p", "0", "-X", "message.max.bytes=4000000",
                    "-X", "message.timeout.ms=10000", path], check_rc=False)
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode != 0, f"a 1.5 MB message should be rejected; kcat rc=0, stderr: {err[-1000:]}")
    check("too large" in err.lower() or "MSG_SIZE_TOO_LARGE" in err,
          f"expected a message-size error, got: {err[-1000:]}")
    ctx.kc.produce(topic, b"after\n")
    check_msgs(ctx.kc.consume(topic), [(None, b"before"), (None, b"after")], "topic after rejected message")


@test
def multiple_partitions(ctx):
    topic = "multi"
    per_part = {}
    for p in range(NUM_PARTITIONS):
        vals = [f"p{p}-m{i}".encode() for i in range(5 + p)]
        per_part[p] = vals
        ctx.kc.produce(topic, b"\n".join(vals) + b"\n", partition=p)
    for p in range(NUM_PARTITIONS):
        msgs = ctx.kc.consume(topic, partition=p)
        check_msgs(msgs, [(None, v) for v in per_part[p]], f"partition {p}")
        check(all(m.partition == p for m in msgs), f"partition field wrong: {msgs}")
    # Whole topic without -p: every partition, each in offset order.
    allm = ctx.kc.consume(topic, partition=None)
    by_p = {}
    for m in allm:
        by_p.setdefault(m.partition, []).append(m)
    check_eq(sorted(by_p), list(range(NUM_PARTITIONS)), "partitions seen without -p")
    for p, ms in by_p.items():
        check_eq([m.value for m in ms], per_part[p], f"partition {p} without -p")
        check_eq([m.offset for m in ms], list(range(len(per_part[p]))), f"offsets of partition {p}")
    # Producing to a partition that does not exist fails.
    p = ctx.kc.run(["-P", "-t", topic, "-p", str(NUM_PARTITIONS), "-X", "message.timeout.ms=5000"],
                   input=b"nope\n", check_rc=False)
    check(p.returncode != 0, f"producing to partition {NUM_PARTITIONS} of a {NUM_PARTITIONS}-partition "
                             f"topic should fail; rc=0 stderr={p.stderr[-500:]!r}")
    # Random partitioner (-p -1): all messages land somewhere, offsets dense per partition.
    topic2 = "multi-random"
    vals = [f"r{i}".encode() for i in range(90)]
    ctx.kc.produce(topic2, b"\n".join(vals) + b"\n", partition=-1)
    allm = ctx.kc.consume(topic2, partition=None)
    check_eq(sorted(m.value for m in allm), sorted(vals), "random partitioner: all messages back")
    for p in range(NUM_PARTITIONS):
        offs = [m.offset for m in allm if m.partition == p]
        check_eq(offs, list(range(len(offs))), f"random partitioner: offsets of partition {p}")
    # Keyed messages (default partitioner): one key always maps to one partition.
    topic3 = "multi-keyed"
    data = b"".join(f"key{i % 7}:v{i}\n".encode() for i in range(70))
    ctx.kc.produce(topic3, data, args=["-K", ":"], partition=None)
    allm = ctx.kc.consume(topic3, partition=None)
    check_eq(len(allm), 70, "keyed: message count")
    where = {}
    for m in allm:
        where.setdefault(m.key, set()).add(m.partition)
    check(all(len(s) == 1 for s in where.values()), f"a key spread over partitions: {where}")
    # An empty partition: consuming it with -e returns nothing and exits 0.
    topic4 = "multi-empty"
    ctx.kc.produce(topic4, b"only-in-0\n", partition=0)
    check_eq(ctx.kc.consume(topic4, partition=1), [], "empty partition 1")


@test
def consumer_waits_for_new_messages(ctx):
    # A consumer started at the end receives messages produced later (Fetch long-poll and
    # high watermark updates), without -e.
    topic = "live"
    ctx.kc.produce(topic, b"old-1\nold-2\n")
    cmd = [KCAT, "-b", ctx.broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "2", "-c", "3", "-f", FMT]
    consumer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        check(consumer.poll() is None, f"consumer exited early: {consumer.poll()}")
        t0 = time.monotonic()
        for i in range(3):
            ctx.kc.produce(topic, f"new-{i}\n".encode())
            time.sleep(0.3)
        try:
            out, err = consumer.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            raise TestFailure("consumer did not receive 3 new messages within 15 s")
        elapsed = time.monotonic() - t0
        check_eq(consumer.returncode, 0, f"consumer exit code (stderr {err[-500:]!r})")
        check_msgs(parse_fmt_output(out), [(None, b"new-0", 2), (None, b"new-1", 3), (None, b"new-2", 4)],
                   "messages seen by a waiting consumer")
        check(elapsed < 6, f"new messages took {elapsed:.1f}s to arrive")
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()


@test
def many_messages_fetch_paging(ctx):
    # Enough data that the consumer needs many Fetch round trips.
    topic = "many"
    expected = [(f"{i:06d}".encode(), (f"{i:06d}-" + "x" * (i % 200)).encode()) for i in range(20_000)]
    data = b"".join(k + b":" + v + b"\n" for k, v in expected)
    ctx.kc.produce(topic, data, args=["-K", ":", "-z", "lz4"])
    # Small fetch limits: the lz4 batches are bigger than max.partition.fetch.bytes, so the
    # broker must still return at least one whole batch per Fetch (KIP-74) for progress.
    msgs = ctx.kc.consume(topic, args=["-X", "fetch.max.bytes=65536", "-X", "max.partition.fetch.bytes=16384",
                                       "-X", "message.max.bytes=65536"])
    check_msgs(msgs, expected, "20000 messages with small fetch sizes")
    msgs = ctx.kc.consume(topic, offset=12345)
    check_msgs(msgs, [e + (12345 + i,) for i, e in enumerate(expected[12345:])], "from offset 12345")


@test
def auto_create_topics(ctx):
    topic = "auto-created-by-produce"
    md = ctx.kc.metadata_json()
    check(topic not in [t["topic"] for t in md["topics"]], "topic exists before first produce")
    ctx.kc.produce(topic, b"first\n", partition=None)
    md = ctx.kc.metadata_json(topic)
    t = [x for x in md["topics"] if x["topic"] == topic]
    check(len(t) == 1 and "error" not in t[0], f"auto-created topic metadata: {md['topics']}")
    check_eq(len(t[0]["partitions"]), NUM_PARTITIONS, "auto-created topic partition count")
    allm = ctx.kc.consume(topic, partition=None)
    check_eq([m.value for m in allm], [b"first"], "auto-created topic content")


@test
def auto_create_disabled(ctx):
    b2 = Broker(ctx.workdir, "noauto", ["--auto-create-topics-enable", "false"])
    b2.start()
    try:
        kc = Kcat(b2)
        p = kc.run(["-P", "-t", "not-there", "-p", "0", "-X", "message.timeout.ms=4000"],
                   input=b"x\n", check_rc=False, timeout=30)
        ctx.kc.history = kc.history
        check(p.returncode != 0, "producing to an unknown topic with auto-create disabled should fail")
        md = kc.metadata_json()
        check("not-there" not in [t["topic"] for t in md["topics"]],
              f"topic was created although auto-create is disabled: {md['topics']}")
        md = kc.metadata_json("not-there")
        t = [x for x in md["topics"] if x["topic"] == "not-there"]
        check(not t or t[0].get("error"), f"metadata for unknown topic should carry an error: {md}")
        check(b2.alive(), "broker died")
    finally:
        b2.stop()


def restart_roundtrip(ctx, sig, tag):
    topic = f"restart-{tag}"
    rng = random.Random(topic)
    expected = {p: [] for p in range(NUM_PARTITIONS)}
    for p in range(NUM_PARTITIONS):
        for codec in ("none", "gzip", "zstd"):
            batch = [(f"{codec}-{i}".encode(), rand_bytes(rng, 40).replace(b"\n", b"N").replace(b":", b";"))
                     for i in range(10)]
            args = ["-K", ":", "-X", "acks=all"] + ([] if codec == "none" else ["-z", codec])
            ctx.kc.produce(topic, b"".join(k + b":" + v + b"\n" for k, v in batch), args=args, partition=p)
            expected[p] += batch
    before = {p: ctx.kc.consume(topic, partition=p) for p in range(NUM_PARTITIONS)}
    for p in range(NUM_PARTITIONS):
        check_msgs(before[p], expected[p], f"before restart, partition {p}")
    rc = ctx.broker.stop(sig)
    if sig == signal.SIGTERM:
        check(rc == 0, f"broker exit code after SIGTERM: {rc}\n{ctx.broker.log_tail()}")
    ctx.broker.start()
    md = ctx.kc.metadata_json(topic)
    check_eq(len(md["topics"][0]["partitions"]), NUM_PARTITIONS, "partitions after restart")
    for p in range(NUM_PARTITIONS):
        after = ctx.kc.consume(topic, partition=p)
        check_msgs(after, expected[p], f"after {tag} restart, partition {p}")
        check_eq([m.ts for m in after], [m.ts for m in before[p]], f"timestamps after restart, partition {p}")
    # Offsets continue where they were.
    ctx.kc.produce(topic, b"post:restart\n", args=["-K", ":"], partition=0)
    after = ctx.kc.consume(topic, partition=0)
    check_msgs(after, expected[0] + [(b"post", b"restart")], f"produce after {tag} restart")


@test
def restart_sigterm(ctx):
    restart_roundtrip(ctx, signal.SIGTERM, "sigterm")


@test
def restart_sigkill(ctx):
    restart_roundtrip(ctx, signal.SIGKILL, "sigkill")


@test
def restart_twice_everything_back(ctx):
    # All topics written by earlier tests, consumed before and after two more restarts.
    for p in range(NUM_PARTITIONS):
        ctx.kc.produce("restart-twice", f"p{p}-a\np{p}-b\n".encode(), args=["-z", "snappy"], partition=p)
    md = ctx.kc.metadata_json()
    quick = ["-X", "fetch.wait.max.ms=100"]  # many topics: do not wait 500 ms at each end
    snapshot = {}
    for t in md["topics"]:
        snapshot[t["topic"]] = ctx.kc.consume(t["topic"], partition=None, args=quick)
    check_eq(len(snapshot["restart-twice"]), 2 * NUM_PARTITIONS, "messages in restart-twice")
    for sig in (signal.SIGKILL, signal.SIGTERM):
        ctx.broker.stop(sig)
        ctx.broker.start()
    md2 = ctx.kc.metadata_json()
    check_eq(sorted(t["topic"] for t in md2["topics"]), sorted(snapshot), "topic list after restarts")
    for name, msgs in snapshot.items():
        got = ctx.kc.consume(name, partition=None, args=quick)
        key = lambda m: (m.partition, m.offset)
        check_eq([(m.partition, m.offset, m.ts, m.key, m.value, m.headers) for m in sorted(got, key=key)],
                 [(m.partition, m.offset, m.ts, m.key, m.value, m.headers) for m in sorted(msgs, key=key)],
                 f"topic {name} after SIGKILL+SIGTERM restarts")


# --------------------------------------------------------------------------------------
# Security: TLS and SASL listeners, mutual TLS
# --------------------------------------------------------------------------------------

SEC_USERS = {"alice": "alice-secret", "bob": "bob-pw"}
SEC_LISTENERS = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


def openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=30)
    check(p.returncode == 0, f"openssl {' '.join(args)}: {p.stdout.decode(errors='replace')}")


def make_pki(d):
    """CA; broker certificate for 127.0.0.1/localhost; client certificate signed by the CA;
    an untrusted self-signed client certificate. X.509 v3 throughout (rustls refuses v1;
    `openssl x509 -req` writes v3 only with -extfile). Returns {name: path}."""
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                                     "-subj", "/CN=klamm-kcat-ca"], d)
    with open(os.path.join(d, "broker.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    for name, subj, serial in (("broker", "/CN=localhost", "0x2001"),
                               ("client", "/CN=kcat-client/O=klamm", "0x2002")):
        openssl(["req", "-new"] + ec + ["-keyout", f"{name}.key", "-out", f"{name}.csr",
                                        "-subj", subj], d)
        openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", serial, "-days", "2", "-out", f"{name}.pem",
                 "-extfile", f"{name}.ext"], d)
    openssl(["req", "-x509"] + ec + ["-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2",
                                     "-subj", "/CN=rogue-client",
                                     "-addext", "basicConstraints=critical,CA:FALSE",
                                     "-addext", "extendedKeyUsage=clientAuth"], d)
    return {n: os.path.join(d, n) for n in ("ca.pem", "broker.pem", "broker.key", "client.pem",
                                            "client.key", "rogue.pem", "rogue.key")}


@contextlib.contextmanager
def sec_broker(ctx, name, *extra, listeners=SEC_LISTENERS):
    """A broker of its own with the given listeners, TLS certificate and SASL users; its log
    tail is added to a failure, it must still run at the end."""
    pki = ctx.pki()
    b = Broker(ctx.workdir, name,
               ["--ssl-certificate", pki["broker.pem"], "--ssl-key", pki["broker.key"],
                "--bootstrap-users", ",".join(f"{u}:{pw}" for u, pw in SEC_USERS.items())]
               + list(extra), listeners=listeners)
    b.start()
    try:
        yield b
        check(b.alive(), f"broker {name} died:\n{b.log_tail()}")
    except TestFailure as e:
        raise TestFailure(f"{e}\n    broker {name} log ({b.log_path}):\n{b.log_tail(15)}") from None
    finally:
        b.stop()


def sec_kcat(ctx, broker, listener, mechanism=None, user="alice", password=None, cert=None):
    """kcat on one listener of `broker`; `cert` is "client" or "rogue" for mutual TLS."""
    pki = ctx.pki()
    conf = ["-X", f"security.protocol={listener}"]
    if listener in ("SSL", "SASL_SSL"):
        conf += ["-X", f"ssl.ca.location={pki['ca.pem']}"]
        if cert:
            conf += ["-X", f"ssl.certificate.location={pki[cert + '.pem']}",
                     "-X", f"ssl.key.location={pki[cert + '.key']}"]
    if listener.startswith("SASL_"):
        conf += ["-X", f"sasl.mechanisms={mechanism}", "-X", f"sasl.username={user}",
                 "-X", f"sasl.password={SEC_USERS.get(user) if password is None else password}"]
    return Kcat(broker, bootstrap=broker.address(listener), conf=conf, history=ctx.kc.history)


def sec_messages(seed):
    """(key, value) pairs with binary bytes (no newline or ':'), an empty value, 64 KB."""
    rng = random.Random(seed)
    msgs = [(f"k{i}".encode() + rand_bytes(rng, 8), rand_bytes(rng, rng.randint(0, 300)))
            for i in range(25)] + [(b"empty", b""), (b"big", rand_bytes(rng, 65536))]
    clean = lambda b: b.replace(b"\n", b"N").replace(b":", b";")
    return [(clean(k), clean(v)) for k, v in msgs]


def sec_produce(kc, topic, msgs, args=()):
    kc.produce(topic, b"".join(k + b":" + v + b"\n" for k, v in msgs),
               args=["-K", ":", "-X", "acks=all"] + list(args))


def check_advertised(kc, broker, listener):
    """Metadata asked on a listener names the broker at that listener's address."""
    md = kc.metadata_json()
    check_eq(md["brokers"], [{"id": 1, "name": broker.address(listener)}],
             f"brokers in metadata asked over {listener}")


def check_refused(p, wants, what):
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode != 0, f"{what}: kcat exited 0; stderr: {err.strip()[-1500:]}")
    for want in wants:
        check(want in err, f"{what}: {want!r} not in kcat's stderr: {err.strip()[-1500:]}")


@test
def security_ssl_listener(ctx):
    msgs = sec_messages("ssl")
    with sec_broker(ctx, "sec-ssl") as b:
        kc = sec_kcat(ctx, b, "SSL")
        check_advertised(kc, b, "SSL")
        check_advertised(sec_kcat(ctx, b, "PLAINTEXT"), b, "PLAINTEXT")
        sec_produce(kc, "tls", msgs, args=["-z", "lz4"])
        check_msgs(kc.consume("tls"), msgs, "produced and consumed over SSL")
        check_msgs(sec_kcat(ctx, b, "PLAINTEXT").consume("tls"), msgs,
                   "produced over SSL, consumed over PLAINTEXT")


@test
def security_sasl_ssl_scram_sha_512(ctx):
    msgs = sec_messages("scram")
    with sec_broker(ctx, "sec-scram") as b:
        kc = sec_kcat(ctx, b, "SASL_SSL", "SCRAM-SHA-512", "alice")
        check_advertised(kc, b, "SASL_SSL")
        sec_produce(kc, "scram", msgs, args=["-z", "zstd"])
        check_msgs(kc.consume("scram"), msgs, "produced and consumed over SASL_SSL SCRAM-SHA-512")
        bob = sec_kcat(ctx, b, "SASL_SSL", "SCRAM-SHA-512", "bob")
        check_msgs(bob.consume("scram"), msgs, "consumed by another SCRAM-SHA-512 user")
        check_msgs(sec_kcat(ctx, b, "SASL_PLAINTEXT", "PLAIN", "bob").consume("scram"), msgs,
                   "consumed over SASL_PLAINTEXT PLAIN")


@test
def security_mtls_client_certificate(ctx):
    msgs = sec_messages("mtls")
    ca = ctx.pki()["ca.pem"]
    with sec_broker(ctx, "sec-mtls", "--ssl-client-auth", "required", "--ssl-ca", ca,
                    listeners=["SSL", "PLAINTEXT"]) as b:
        kc = sec_kcat(ctx, b, "SSL", cert="client")
        check_advertised(kc, b, "SSL")
        sec_produce(kc, "mtls", msgs)
        check_msgs(kc.consume("mtls"), msgs, "produced and consumed with a client certificate")
        # Refused in the TLS handshake: over TLS 1.3 the broker's alert ends kcat's first
        # request. kcat's librdkafka 2.0 sends the untrusted certificate.
        for cert, alert in ((None, "alert certificate required"), ("rogue", "alert unknown ca")):
            p = sec_kcat(ctx, b, "SSL", cert=cert).run(
                ["-P", "-t", "mtls", "-p", "0"], input=b"refused:x\n", check_rc=False)
            check_refused(p, [alert], f"client certificate {cert}")
        check_msgs(sec_kcat(ctx, b, "PLAINTEXT").consume("mtls"), msgs,
                   "nothing written by the refused clients")


@test
def security_sasl_wrong_password(ctx):
    with sec_broker(ctx, "sec-badpw") as b:
        cases = [
            ("SASL_SSL", "SCRAM-SHA-512", "alice", "wrong",
             "invalid credentials with SASL mechanism SCRAM-SHA-512"),
            ("SASL_PLAINTEXT", "PLAIN", "mallory", "alice-secret",
             "Authentication failed: Invalid username or password"),
        ]
        for listener, mech, user, password, message in cases:
            p = sec_kcat(ctx, b, listener, mech, user, password).run(
                ["-P", "-t", "badpw", "-p", "0"], input=b"refused:x\n", check_rc=False)
            check_refused(p, ["Authentication failure", "SASL authentication error", message],
                          f"{listener} {mech} user {user}")
        md = sec_kcat(ctx, b, "PLAINTEXT").metadata_json()
        check("badpw" not in [t["topic"] for t in md["topics"]],
              f"a refused client created its topic: {md['topics']}")


# --------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------

def _terminate(signum, _frame):
    raise SystemExit(f"terminated by signal {signum}")


def main():
    signal.signal(signal.SIGTERM, _terminate)
    if not os.path.exists(KLAMM_BIN):
        print(f"klamm binary not found at {KLAMM_BIN} (set KLAMM_BIN)", file=sys.stderr)
        print("kcat: 0 passed, 1 failed")
        return 1
    only = [x for x in os.environ.get("KCAT_ONLY", "").split(",") if x]
    tests = [t for t in TESTS if not only or t.__name__ in only]
    workdir = tempfile.mkdtemp(prefix="klamm-kcat-")
    broker = Broker(workdir, "main", ["--num-partitions", str(NUM_PARTITIONS)])
    passed, failed = [], []
    started = time.monotonic()
    try:
        broker.start()
        print(f"klamm on {broker.bootstrap}, data {broker.data_dir}, kcat {KCAT}", flush=True)
        ctx = Ctx(workdir, broker)
        for t in tests:
            name = t.__name__
            t0 = time.monotonic()
            ctx.kc.history = []
            try:
                if not broker.alive():
                    print(f"  (broker was down before {name}; restarting)", flush=True)
                    broker.proc = None
                    broker.start()
                t(ctx)
                if not broker.alive():
                    rc = broker.proc.returncode if broker.proc else None
                    raise TestFailure(f"broker process is not running after the test (rc={rc})")
                passed.append(name)
                print(f"PASS {name} ({time.monotonic() - t0:.1f}s)", flush=True)
            except Exception as e:  # noqa: BLE001 - every error is a test failure
                failed.append(name)
                msg = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
                print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {msg}", flush=True)
                for cmd, rc, err in ctx.kc.history[-3:]:
                    print(f"    last kcat: {' '.join(cmd)} -> rc={rc}", flush=True)
                    tail = err.decode("utf-8", "replace").strip().splitlines()[-15:]
                    for line in tail:
                        print(f"      ! {line}", flush=True)
                if not broker.alive():
                    print(f"    broker is not running; log tail:\n{broker.log_tail()}", flush=True)
    except BaseException as e:  # broker could not start, or SIGTERM/SIGINT of this script
        print(f"FATAL: {e!r}", flush=True)
        failed.extend(t.__name__ for t in tests if t.__name__ not in passed and t.__name__ not in failed)
    finally:
        try:
            broker.stop(signal.SIGTERM)
        except Exception as e:  # noqa: BLE001
            print(f"broker stop: {e}", flush=True)
            broker.kill()
        if failed:
            print(f"broker log kept in {broker.log_path}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"({time.monotonic() - started:.0f}s)")
    if failed:
        print("failed: " + ", ".join(failed))
    print(f"kcat: {len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
