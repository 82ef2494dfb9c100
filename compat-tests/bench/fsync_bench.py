#!/usr/bin/env python3
"""Durable produce under concurrency: prints numbers, asserts nothing about speed.

With `--fsync` every acknowledged produce waits for a WAL sync. N producers (processes, raw
sockets, one pre-encoded request sent over and over, so the client costs little) each send one-record Produce requests with acks=all to
a partition of their own and wait for each answer, the worst case for a durable log: every
request needs a sync. Group commit shows as requests/s growing with N, since concurrent
appends share one sync. Meanwhile a probe sends ApiVersions every 5 ms on its own connection
and records each round trip: the broker's other clients must not stall behind the syncs.

Usage: fsync_bench.py KLAMM_BIN [--seconds S] [--producers 1,4,16] [--no-fsync]
"""
import argparse
import multiprocessing as mp
import os
import socket
import statistics
import struct
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "reliability"))
from bench import free_port, start_broker  # noqa: E402
import kwire  # noqa: E402  (the reliability battery's wire encoders)


def one_record_batch(value):
    return kwire.simple_batch([value])


def recv_body(s):
    return kwire.read_response(s)[1]


def producer(port, topic, partition, seconds, out):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # One request encoded once and sent over and over (the broker does not care that the
    # correlation ids repeat), and the answer's error code read at its fixed position: the
    # client's CPU then goes to its two syscalls, and the two cores to the broker.
    request = kwire.produce(topic, partition, one_record_batch(b"x" * 100))
    err_at = 4 + 4 + 4 + 2 + len(topic.encode()) + 4 + 4  # size, cid, topics, name, parts, index
    n, errors = 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        s.sendall(request)
        buf = s.recv(65536)
        while len(buf) < 4 or len(buf) < 4 + struct.unpack_from(">i", buf)[0]:
            more = s.recv(65536)
            if not more:
                raise ConnectionError("broker closed the connection")
            buf += more
        if struct.unpack_from(">h", buf, err_at)[0] != 0:
            errors += 1
        n += 1
    out.put((n, errors))


def probe(port, seconds, out):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    deadline = time.perf_counter() + seconds
    corr = 0
    while time.perf_counter() < deadline:
        corr += 1
        t0 = time.perf_counter()
        s.sendall(kwire.api_versions_v0(corr))
        recv_body(s)
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.005)
    out.put(lat)


def run(port, producers, seconds):
    out, probe_out = mp.Queue(), mp.Queue()
    procs = [mp.Process(target=producer, args=(port, "durable", i % 16, seconds, out))
             for i in range(producers)]
    prober = mp.Process(target=probe, args=(port, seconds, probe_out))
    for p in procs:
        p.start()
    prober.start()
    results = [out.get() for _ in procs]
    lat = sorted(probe_out.get())
    for p in procs + [prober]:
        p.join()
    n = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return n / seconds, errors, statistics.median(lat), p99, lat[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--producers", default="1,4,16")
    ap.add_argument("--no-fsync", action="store_true")
    args = ap.parse_args()
    port = free_port()
    extra = ["--num-partitions", "16"] + ([] if args.no_fsync else ["--fsync"])
    broker, _ = start_broker(args.binary, port, extra=extra)
    try:
        # The first produce auto-creates the topic with 16 partitions.
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(kwire.produce("durable", 0, one_record_batch(b"warm")))
        recv_body(s)
        s.close()
        mode = "no fsync" if args.no_fsync else "--fsync"
        print(f"durable produce, {mode}: one-record acks=all requests, each producer waiting "
              f"for every answer; ApiVersions probe every 5 ms ({args.seconds:g} s per row)")
        print(f"{'producers':>9} {'requests/s':>11} {'x one':>6} {'errors':>6} "
              f"{'ApiVersions p50 ms':>18} {'p99 ms':>7} {'max ms':>7}")
        base = None
        for n in [int(x) for x in args.producers.split(",")]:
            rate, errors, p50, p99, worst = run(port, n, args.seconds)
            base = base or rate
            print(f"{n:>9} {rate:>11.0f} {rate / base:>6.2f} {errors:>6} {p50:>18.3f} "
                  f"{p99:>7.3f} {worst:>7.3f}")
    finally:
        broker.terminate()
        broker.wait(timeout=10)


if __name__ == "__main__":
    main()
