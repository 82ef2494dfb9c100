#!/usr/bin/env python3
"""Authorizer benchmark: prints numbers, asserts nothing about speed.

The same SASL_PLAINTEXT (PLAIN) broker twice in one run: without `--authorizer`, and with it
and N ACLs (the user's READ/WRITE on the topic and its group among N-2 others, half of them
PREFIXED). kcat (librdkafka) produces M x SIZE-byte messages as that user and reads them
back from their partition,
median of R runs each, and the ratio with/without. The ACLs are added with `klamm acls add`.
Usage: acl_bench.py KLAMM_BIN [--acls N] [--messages M] [--size BYTES] [--runs R]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import free_port, start_broker  # noqa: E402

USER, PASSWORD = "bench", "bench-secret"
ADMIN, ADMIN_PW = "admin", "admin-secret"


def start(binary, port, authorizer):
    extra = ["--bootstrap-users", f"{USER}:{PASSWORD},{ADMIN}:{ADMIN_PW}"]
    if authorizer:
        extra += ["--authorizer", "--super-users", f"User:{ADMIN}"]
    proc, _ = start_broker(binary, port, extra=extra,
                           listeners=f"SASL_PLAINTEXT://127.0.0.1:{port}")
    return proc


def add_acls(binary, port, n, topic):
    env = dict(os.environ, KLAMM_SASL_USER=ADMIN, KLAMM_SASL_PASSWORD=ADMIN_PW,
               KLAMM_BOOTSTRAP_SERVER=f"127.0.0.1:{port}")
    wanted = [("topic", topic, "literal", "write"), ("topic", topic, "literal", "read"),
              ("group", "bench-group", "literal", "read")]
    for i in range(max(n - len(wanted), 0)):
        wanted.append(("topic", f"other-{i}-", "prefixed" if i % 2 else "literal", "read"))
    # The user may not create topics: the admin does.
    subprocess.run([binary, "topics", "create", "--topic", topic, "--partitions", "1"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    t0 = time.perf_counter()
    for rt, name, pattern, op in wanted:
        subprocess.run([binary, "acls", "add", "--resource-type", rt, "--resource-name", name,
                        "--resource-pattern-type", pattern, "--principal", f"User:{USER}",
                        "--operation", op], env=env, check=True, stdout=subprocess.DEVNULL)
    return len(wanted), time.perf_counter() - t0


def throughput(port, topic, payload_file, n, start):
    common = ["-b", f"127.0.0.1:{port}", "-X", "security.protocol=SASL_PLAINTEXT",
              "-X", "sasl.mechanisms=PLAIN", "-X", f"sasl.username={USER}",
              "-X", f"sasl.password={PASSWORD}"]
    t0 = time.perf_counter()
    subprocess.run(["kcat", *common, "-P", "-t", topic, "-l", "-X", "linger.ms=5",
                    "-X", "batch.num.messages=10000", payload_file], check=True)
    produce = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run(["kcat", *common, "-C", "-t", topic, "-p", "0", "-o", str(start),
                          "-c", str(n), "-e", "-q", "-f", "%s\n"], check=True,
                         stdout=subprocess.PIPE)
    consume = time.perf_counter() - t0
    got = out.stdout.count(b"\n")
    if got != n:
        sys.exit(f"consumed {got} of {n}")
    return n / produce, n / consume


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--acls", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        payload = os.path.join(d, "payload")
        with open(payload, "w") as f:
            line = "x" * (a.size - 1)
            for _ in range(a.messages):
                f.write(line + "\n")
        results = {}
        for authorizer in (False, True):
            port = free_port()
            proc = start(a.binary, port, authorizer)
            try:
                if authorizer:
                    count, secs = add_acls(a.binary, port, a.acls, "bench-0")
                    print(f"{count} ACLs added with `klamm acls add` in {secs:.1f} s")
                # The same topic each run; each run reads back what it produced.
                runs = [throughput(port, "bench-0", payload, a.messages, i * a.messages)
                        for i in range(a.runs)]
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            prod = statistics.median(r[0] for r in runs)
            cons = statistics.median(r[1] for r in runs)
            label = f"--authorizer, {a.acls} ACLs" if authorizer else "no authorizer"
            print(f"{label:>24}: produce {prod:>9,.0f} msg/s, consume {cons:>9,.0f} msg/s "
                  f"({a.messages} x {a.size} B, median of {a.runs})")
            results[authorizer] = (prod, cons)
        print(f"ratio with/without: produce {results[True][0] / results[False][0]:.2f}, "
              f"consume {results[True][1] / results[False][1]:.2f}")


if __name__ == "__main__":
    main()
