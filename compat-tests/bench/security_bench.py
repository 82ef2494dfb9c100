#!/usr/bin/env python3
"""Security benchmark: prints numbers, asserts nothing about speed.

One Klamm broker with PLAINTEXT, SSL and SASL_SSL listeners (certificates made with the
openssl CLI, a user from --bootstrap-users) and, on the same run:
  - produce and consume throughput of N x SIZE-byte messages with kcat (librdkafka) over
    PLAINTEXT and over SASL_SSL (SCRAM-SHA-512), median of R runs, and the ratio;
  - connections per second, one after another from one client: TCP + ApiVersions over
    PLAINTEXT, TLS + ApiVersions over SSL, and TLS + a full SCRAM-SHA-512 exchange over
    SASL_SSL (the client side of SCRAM written here from RFC 5802 with hashlib).
Usage: security_bench.py KLAMM_BIN [--messages N] [--size BYTES] [--runs R] [--seconds S]
"""
import argparse
import base64
import hashlib
import hmac
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import free_port, rss_kb, start_broker  # noqa: E402

USER, PASSWORD = "bench", "bench-secret"


def make_pki(d):
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Bench CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "broker.key",
        "-out", "broker.csr")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "broker.pem")


def start(binary, d, ports):
    listeners = ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items())
    proc, _ = start_broker(
        binary, None, listeners=listeners,
        extra=["--ssl-certificate", os.path.join(d, "broker.pem"),
               "--ssl-key", os.path.join(d, "broker.key"),
               "--bootstrap-users", f"{USER}:{PASSWORD}"])
    return proc


def kcat_args(kind, port, d):
    args = ["-b", f"127.0.0.1:{port}"]
    if kind == "SASL_SSL":
        args += ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={d}/ca.pem",
                 "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", f"sasl.username={USER}",
                 "-X", f"sasl.password={PASSWORD}"]
    return args


def throughput(kind, port, d, topic, payload_file, n, size):
    common = kcat_args(kind, port, d)
    t0 = time.perf_counter()
    subprocess.run(["kcat", *common, "-P", "-t", topic, "-l", "-X", "linger.ms=5",
                    "-X", "batch.num.messages=10000", payload_file], check=True)
    produce = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run(["kcat", *common, "-C", "-t", topic, "-o", "beginning", "-c", str(n),
                          "-e", "-q", "-f", "%s\n"], check=True, stdout=subprocess.PIPE)
    consume = time.perf_counter() - t0
    got = out.stdout.count(b"\n")
    if got != n:
        sys.exit(f"{kind}: consumed {got} of {n}")
    return n / produce, n / consume


def frame(api_key, version, correlation, body, flexible_header=False):
    client = b"bench"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    if flexible_header:
        header += b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_frame(s):
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = s.recv(n - len(b))
            if not chunk:
                raise ConnectionError("closed")
            b += chunk
        return b
    (n,) = struct.unpack(">i", exact(4))
    return exact(n)


def api_versions(s):
    s.sendall(frame(18, 0, 1, b""))
    recv_frame(s)


def scram_sha512(s):
    # SaslHandshake v1, then SaslAuthenticate v1 (non-flexible) twice.
    mech = b"SCRAM-SHA-512"
    s.sendall(frame(17, 1, 1, struct.pack(">h", len(mech)) + mech))
    resp = recv_frame(s)
    assert struct.unpack(">h", resp[4:6])[0] == 0, "handshake refused"
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={USER},r={nonce}"

    def authenticate(msg, corr):
        s.sendall(frame(36, 1, corr, struct.pack(">i", len(msg)) + msg))
        r = recv_frame(s)[4:]
        err = struct.unpack(">h", r[:2])[0]
        ml = struct.unpack(">h", r[2:4])[0]
        off = 4 + max(ml, 0)
        bl = struct.unpack(">i", r[off:off + 4])[0]
        if err:
            raise RuntimeError(f"SCRAM refused: {err}")
        return r[off + 4:off + 4 + bl]
    server_first = authenticate(("n,," + first_bare).encode(), 2).decode()
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha512", PASSWORD.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    stored = hashlib.sha512(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth = f"{first_bare},{server_first},{without_proof}".encode()
    sig = hmac.new(stored, auth, "sha512").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    authenticate(f"{without_proof},p={base64.b64encode(proof).decode()}".encode(), 3)


def connections_per_second(kind, port, d, seconds):
    ctx = None
    if kind != "PLAINTEXT":
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
        if kind == "SASL_SSL":
            scram_sha512(s)
        else:
            api_versions(s)
        s.close()
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="klamm-secbench-") as d:
        make_pki(d)
        ports = {"PLAINTEXT": free_port(), "SSL": free_port(), "SASL_SSL": free_port()}
        broker = start(a.binary, d, ports)
        try:
            payload = os.path.join(d, "payload")
            with open(payload, "wb") as f:
                line = (b"x" * (a.size - 1)) + b"\n"
                for _ in range(a.messages):
                    f.write(line)
            print(f"# {a.messages} x {a.size} B, kcat, median of {a.runs}; load "
                  f"{os.getloadavg()[0]:.2f}")
            results = {}
            for r in range(a.runs):
                for kind in ("PLAINTEXT", "SASL_SSL"):
                    p, c = throughput(kind, ports[kind], d, f"bench-{kind}-{r}", payload,
                                      a.messages, a.size)
                    results.setdefault(kind, []).append((p, c))
            mb = a.size / 1e6
            med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
                   for k, v in results.items()}
            for kind, (p, c) in med.items():
                print(f"{kind:10} produce {p:10.0f} msg/s {p * mb:7.1f} MB/s   "
                      f"consume {c:10.0f} msg/s {c * mb:7.1f} MB/s")
            pp, pc = med["PLAINTEXT"]
            sp, sc = med["SASL_SSL"]
            print(f"SASL_SSL / PLAINTEXT: produce {sp / pp:.2f}, consume {sc / pc:.2f}")
            print(f"# connections per second, sequential, {a.seconds:.0f} s each")
            for kind, what in (("PLAINTEXT", "TCP + ApiVersions"), ("SSL", "TLS + ApiVersions"),
                               ("SASL_SSL", "TLS + SCRAM-SHA-512 (4096 iterations)")):
                cps = connections_per_second(kind, ports[kind], d, a.seconds)
                print(f"{kind:10} {cps:8.0f} conn/s   {what}")
            print(f"broker RSS at the end: {rss_kb(broker.pid) / 1024:.1f} MB")
        finally:
            broker.terminate()
            try:
                broker.wait(10)
            except subprocess.TimeoutExpired:
                broker.kill()


if __name__ == "__main__":
    main()
