#!/usr/bin/env python3
"""Committed-offset expiration: run the same scenarios against one broker.

usage: offsets_expiry_compare.py BOOTSTRAP LABEL [GROUP_SUFFIX]
Broker must run with offsets retention = 1 min and check interval 1 s: Kafka 4.4 with
  kafka.sh start DIR offsets.retention.minutes=1 offsets.retention.check.interval.ms=1000 \
      group.initial.rebalance.delay.ms=0
and Klamm with --offsets-retention-minutes 1 --offsets-retention-check-interval-ms 1000.
Run it against both (at once is fine) and compare: about 3 minutes. Not part of CI (it is
minutes of waiting); the result of the last comparison is in the issue 14 note and the
README. Writes result-LABEL.json in the current directory and prints a timeline.

Scenarios (all run concurrently, t=0 is each scenario's "relevant moment"):
  S1 g-standalone   assign() only, commit t1-0=5, close.            moment = commit
  S2 g-empty        classic subscribe t1, commit once, keep polling 40 s more
                    (no further commits), close -> Empty.           moment = close (commit = -40 s)
  S3 g-stable       classic subscribe t1, commit t1 early, commit t2-0=3 explicitly,
                    keep polling to the end.                        moment = t2 commit
  S4 g-stable-848   as S3 with group.protocol=consumer.             moment = t2 commit
  S4b g-empty-848   as S2 with group.protocol=consumer.             moment = close (commit = -40 s)
Samples every 5 s from moment to moment+85 s: OffsetFetch (explicit t1-0,t2-0 and all),
ListGroups entry, DescribeGroups state.
"""
import json
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic

BOOT, LABEL = sys.argv[1], sys.argv[2]
SFX = sys.argv[3] if len(sys.argv) > 3 else ""  # group-name suffix for reruns on one broker
T0 = time.time()
GAP = 40          # seconds a consumer of S2/S4b keeps polling after its single commit
SAMPLES = list(range(0, 90, 5))
lock = threading.Lock()
results = {}      # scenario -> dict
stop_all = threading.Event()


def log(msg):
    with lock:
        print(f"[{LABEL} {time.time() - T0:6.1f}] {msg}", flush=True)


admin = AdminClient({"bootstrap.servers": BOOT})


def setup():
    fs = admin.create_topics([NewTopic(t, 1, 1) for t in ("t1", "t2")])
    for t, f in fs.items():
        try:
            f.result(15)
        except Exception as e:
            log(f"create {t}: {e}")
    p = Producer({"bootstrap.servers": BOOT})
    for t in ("t1", "t2"):
        for i in range(10):
            p.produce(t, f"m{i}".encode())
    assert p.flush(15) == 0
    log("produced 10 messages to t1 and t2")


def fetch_offsets(group, parts):
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in parts] if parts else None)
    try:
        r = admin.list_consumer_group_offsets([req], request_timeout=10)[group].result(15)
        return {f"{tp.topic}-{tp.partition}": (tp.offset if not tp.error else str(tp.error))
                for tp in r.topic_partitions}
    except Exception as e:
        return f"ERR {e}"


def group_state(group):
    out = {}
    try:
        lr = admin.list_consumer_groups(request_timeout=10).result(15)
        m = [g for g in lr.valid if g.group_id == group]
        out["listed"] = (f"{m[0].state.name}/{getattr(m[0], 'type', None) and m[0].type.name}"
                         if m else "absent")
    except Exception as e:
        out["listed"] = f"ERR {e}"
    try:
        d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(15)
        out["described"] = (f"{d.state.name} members={len(d.members)} simple={d.is_simple_consumer_group} "
                            f"type={getattr(d.type, 'name', d.type)}")
    except Exception as e:
        out["described"] = f"ERR {e.args[0].name() if e.args and hasattr(e.args[0], 'name') else e}"
    return out


def sample_loop(name, group, moment, extra):
    res = results.setdefault(name, {"group": group, "moment_t": round(moment - T0, 1), **extra, "samples": {}})
    for s in SAMPLES:
        delay = moment + s - time.time()
        if delay > 0:
            time.sleep(delay)
        snap = {"explicit": fetch_offsets(group, [("t1", 0), ("t2", 0)]),
                "all": fetch_offsets(group, None), **group_state(group)}
        res["samples"][s] = snap
        log(f"{name} +{s:2d}s {snap}")


def wait_assigned(c, timeout=30):
    end = time.time() + timeout
    got = 0
    while time.time() < end:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
        if c.assignment() and got >= 1:
            return True
    return False


def s1():
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "g-standalone" + SFX, "enable.auto.commit": False})
    c.assign([TopicPartition("t1", 0)])
    r = c.commit(offsets=[TopicPartition("t1", 0, 5)], asynchronous=False)
    moment = time.time()
    log(f"S1 committed {[(t.topic, t.partition, t.offset, t.error) for t in r]}")
    c.close()
    sample_loop("S1", "g-standalone" + SFX, moment, {})


def empty_group(name, group, proto):
    conf = {"bootstrap.servers": BOOT, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "group.protocol": proto}
    c = Consumer(conf)
    c.subscribe(["t1"])
    ok = wait_assigned(c)
    r = c.commit(asynchronous=False)
    commit_t = time.time()
    log(f"{name} assigned={ok} committed {[(t.topic, t.partition, t.offset, t.error) for t in r]}")
    while time.time() < commit_t + GAP:
        c.poll(0.5)
    c.close()
    moment = time.time()
    log(f"{name} closed (group should be Empty)")
    sample_loop(name, group, moment, {"commit_t": round(commit_t - T0, 1)})


def stable_group(name, group, proto):
    conf = {"bootstrap.servers": BOOT, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "group.protocol": proto}
    c = Consumer(conf)
    c.subscribe(["t1"])
    ok = wait_assigned(c)
    r1 = c.commit(asynchronous=False)
    log(f"{name} assigned={ok} {c.assignment()} committed t1 {[(t.topic, t.partition, t.offset, t.error) for t in r1]}")
    time.sleep(1)
    c.poll(0.1)
    try:
        r2 = c.commit(offsets=[TopicPartition("t2", 0, 3)], asynchronous=False)
        r2 = [(t.topic, t.partition, t.offset, str(t.error) if t.error else None) for t in r2]
    except Exception as e:
        r2 = f"ERR {e}"
    moment = time.time()
    log(f"{name} committed t2 {r2}")
    t = threading.Thread(target=sample_loop, args=(name, group, moment, {"t2_commit": r2}))
    t.start()
    while t.is_alive():
        c.poll(0.5)
    log(f"{name} final assignment {c.assignment()}")
    c.close()


def main():
    setup()
    threads = [threading.Thread(target=f, args=a) for f, a in [
        (s1, ()),
        (empty_group, ("S2", "g-empty" + SFX, "classic")),
        (stable_group, ("S3", "g-stable" + SFX, "classic")),
        (stable_group, ("S4", "g-stable-848" + SFX, "consumer")),
        (empty_group, ("S4b", "g-empty-848" + SFX, "consumer")),
    ]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    with open(f"result-{LABEL}.json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    log("done")


main()
