#!/usr/bin/env python3
"""Durable produce under concurrency: prints numbers, asserts nothing about speed.

With `--fsync` every acknowledged produce waits for a WAL sync. N producers (processes, raw
sockets, so the client costs little) each send one-record Produce requests with acks=all to
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import free_port, start_broker  # noqa: E402

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(v):
    u = (v << 1) ^ (v >> 63)
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def one_record_batch(value):
    body = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(len(value)) + value + varint(0)
    record = varint(len(body)) + body
    ts = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, 0, ts, ts, -1, -1, -1, 1) + record
    head = struct.pack(">qii", 0, 4 + 1 + 4 + len(after_crc), -1) + b"\x02"
    return head + struct.pack(">I", crc32c(after_crc)) + after_crc


def frame(api_key, version, corr, body):
    header = struct.pack(">hhih", api_key, version, corr, 5) + b"bench"
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def produce_body(topic, partition, batch):
    t = topic.encode()
    return (struct.pack(">hhii", -1, -1, 30_000, 1) + struct.pack(">h", len(t)) + t
            + struct.pack(">iii", 1, partition, len(batch)) + batch)


def recv_frame(s):
    def exact(n):
        buf = bytearray()
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError("broker closed the connection")
            buf += chunk
        return bytes(buf)
    (n,) = struct.unpack(">i", exact(4))
    return exact(n)


def produce_error(resp):
    # v8: correlation id, topics[name, partitions[index, error_code, ...]]
    pos = 4 + 4
    (nlen,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + nlen + 4 + 4
    (err,) = struct.unpack_from(">h", resp, pos)
    return err


def producer(port, topic, partition, seconds, out):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    batch = one_record_batch(b"x" * 100)
    body = produce_body(topic, partition, batch)
    n, errors, corr = 0, 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        corr += 1
        s.sendall(frame(0, 8, corr, body))
        if produce_error(recv_frame(s)) != 0:
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
        s.sendall(frame(18, 0, corr, b""))
        recv_frame(s)
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
        s.sendall(frame(0, 8, 1, produce_body("durable", 0, one_record_batch(b"warm"))))
        recv_frame(s)
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
