"""Consumer-group membership across processes, for each client family.

Three consumers of one group, each in its own process (`test_groups_support.Worker`),
subscribe to a 6-partition topic while a background producer writes to every partition.
Proves, at every step, that the members' own assignments are an exact cover of the six
partitions (none owned twice, none left out), balanced, and equal to what the broker
reports in DescribeGroups; and that in each stable generation every record produced
meanwhile is consumed exactly once, by the partition's owner:
  three members settle -> one closes cleanly (LeaveGroup) -> two cover all six
  -> one is SIGKILLed -> after its session times out the last one covers all six
  -> a new member joins -> work is rebalanced across both.
At the end no (generation, partition, offset) was consumed twice and every produced
record was consumed at least once with its exact value.
"""
import time

import pytest

from test_groups_support import (SESSION_MS, Feeder, create_topic, dupes_within_generation,
                                 wait_settled, wait_until)

CLIENTS = ["confluent", "kafka-python", "aiokafka"]
PARTS = list(range(6))


def consumed_by_key(all_workers):
    out = {}
    for w in all_workers:
        for gen, p, o, v, who in w.consumed():
            out.setdefault((p, o), []).append((gen, who, v))
    return out


def assert_balanced(settled):
    sizes = sorted(len(ps) for ps in settled.assignment.values())
    assert sizes[-1] - sizes[0] <= 1, f"unbalanced assignment {settled.assignment}"


def describe_assignment(adm, group):
    """(state, {member_id: set(partitions)}, assignor) as the broker reports it."""
    d = adm.describe_consumer_groups([group])[group].result(timeout=15)
    return (d.state.name, {m.member_id: frozenset(tp.partition for tp in m.assignment.topic_partitions)
                           for m in d.members}, d.partition_assignor)


def assert_broker_agrees(adm, group, settled):
    want = {settled.members[n]: ps for n, ps in settled.assignment.items()}
    state, got, _ = describe_assignment(adm, group)
    assert state == "STABLE", f"DescribeGroups state {state}, want STABLE"
    assert got == want, f"DescribeGroups assignment {got} != members' own {want}"


def check_stable_window(feeder, all_workers, live, settled, duration=1.0):
    """Records delivered while the group is settled are consumed exactly once, by the
    owner of their partition in this generation, with the produced value."""
    # At least `duration`, then until the feeder has delivered enough: right after a broker
    # restart its producer may still sit in librdkafka's reconnect backoff (up to 10 s).
    time.sleep(duration)
    deadline = time.monotonic() + 20
    while True:
        t1 = time.time()
        window = [d for d in feeder.snapshot() if settled.at <= d[3] <= t1]
        if len(window) >= 10 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(window) >= 10, f"feeder delivered only {len(window)} records in the window"
    keys = {(p, o): v for p, o, v, _ in window}
    wait_until(lambda: keys.keys() <= consumed_by_key(all_workers).keys(), 20,
               what=f"{len(keys)} records of generation {settled.gen} to be consumed: missing "
                    f"{sorted(keys.keys() - consumed_by_key(all_workers).keys())[:10]}")
    got = consumed_by_key(all_workers)
    problems = []
    for (p, o), v in sorted(keys.items()):
        seen = got[(p, o)]
        owner = settled.owner(p)
        if len(seen) != 1:
            problems.append(f"p{p}@{o} consumed {len(seen)} times: {seen}")
        elif seen[0][1] != owner or seen[0][2] != v or seen[0][0] not in (settled.gen, None):
            problems.append(f"p{p}@{o} consumed as {seen[0]}, want owner {owner} gen "
                            f"{settled.gen} value {v!r}")
    assert not problems, f"generation {settled.gen} window:\n" + "\n".join(problems[:20])
    for w in live:
        assert w.state()[1] == settled.gen, \
            f"{w.name} rebalanced during a stable window: {w.assignment_events()[-3:]}"


@pytest.mark.parametrize("client", CLIENTS)
def test_membership_lifecycle(group_broker, workers, topic, client):
    bs = group_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    feeder = Feeder(bs, topic, PARTS).start()
    all_w = []

    def start(name):
        w = workers(client, bs, group, topic, name)
        all_w.append(w)
        return w

    try:
        a, b, c = start("a"), start("b"), start("c")
        s1 = wait_settled([a, b, c], PARTS, 40)
        assert_balanced(s1)
        assert all(len(ps) == 2 for ps in s1.assignment.values()), s1.assignment
        assert_broker_agrees(adm, group, s1)
        check_stable_window(feeder, all_w, [a, b, c], s1)

        # Clean close: the member leaves; the two others take over its partitions.
        t0 = time.monotonic()
        a.close()
        s2 = wait_settled([b, c], PARTS, 30, after_gen=s1.gen)
        leave_s = time.monotonic() - t0
        assert_balanced(s2)
        assert_broker_agrees(adm, group, s2)
        check_stable_window(feeder, all_w, [b, c], s2)

        # SIGKILL: no LeaveGroup; the broker must expire the session.
        t0 = time.monotonic()
        b.kill()
        s3 = wait_settled([c], PARTS, 30, after_gen=s2.gen)
        expire_s = time.monotonic() - t0
        assert s3.assignment["c"] == frozenset(PARTS)
        assert_broker_agrees(adm, group, s3)
        check_stable_window(feeder, all_w, [c], s3)

        # A new member joins: work is split across both.
        d = start("d")
        s4 = wait_settled([c, d], PARTS, 30, after_gen=s3.gen)
        assert_balanced(s4)
        assert all(len(ps) == 3 for ps in s4.assignment.values()), s4.assignment
        assert_broker_agrees(adm, group, s4)
        check_stable_window(feeder, all_w, [c, d], s4)
    finally:
        feeder.stop()

    delivered = {(p, o): v for p, o, v, _ in feeder.snapshot()}
    wait_until(lambda: delivered.keys() <= consumed_by_key(all_w).keys(), 20,
               what="every produced record to be consumed")
    got = consumed_by_key(all_w)
    wrong = [(k, v, got[k]) for k, v in delivered.items() if any(x[2] != v for x in got[k])]
    assert not wrong, f"consumed values differ from produced: {wrong[:5]}"
    assert got.keys() <= delivered.keys(), f"consumed unknown records {sorted(got.keys() - delivered.keys())[:5]}"
    dupes = dupes_within_generation([x for w in all_w for x in w.consumed()])
    assert not dupes, f"consumed twice within one generation: {dupes[:10]}"
    # Leaving is immediate; a crashed member is only noticed after its session timeout.
    assert expire_s >= SESSION_MS / 1000 * 0.8, \
        f"killed member replaced after {expire_s:.1f}s, before its {SESSION_MS} ms session expired"
    assert leave_s < expire_s, f"clean leave took {leave_s:.1f}s, session expiry {expire_s:.1f}s"
    print(f"\n{client}: gens {s1.gen}->{s2.gen}->{s3.gen}->{s4.gen}, leave {leave_s:.1f}s, "
          f"expiry {expire_s:.1f}s, {len(delivered)} records, "
          f"{sum(len(x) for x in got.values()) - len(got)} re-consumed across generations; "
          f"final {dict(s4.assignment)}")
    c.close()
    d.close()
    state, members, _ = describe_assignment(adm, group)
    assert (state, members) == ("EMPTY", {}), (state, members)


@pytest.mark.parametrize("client", CLIENTS)
def test_members_rejoin_after_broker_restart(group_broker, workers, topic, client):
    """Membership is in memory only: after a broker restart (SIGTERM, same data dir) the
    members must find the coordinator again, rejoin and settle on an exact cover, and
    every record produced across the restart is consumed."""
    bs = group_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    feeder = Feeder(bs, topic, PARTS).start()
    all_w = [workers(client, bs, group, topic, n) for n in ("a", "b")]
    try:
        s1 = wait_settled(all_w, PARTS, 40)
        assert_broker_agrees(adm, group, s1)
        check_stable_window(feeder, all_w, all_w, s1)
        marks = {w.name: len(w.assignment_events()) for w in all_w}
        group_broker.restart()
        s2 = wait_settled(all_w, PARTS, 60, since=marks)
        # A fresh admin client: the old one may still sit in librdkafka's reconnect backoff
        # (up to 10 s) after a broker down for seconds (Kafka; Klamm restarts in ms).
        from confluent_kafka.admin import AdminClient
        adm = AdminClient({"bootstrap.servers": bs})
        assert_balanced(s2)
        assert set(s2.members.values()).isdisjoint(s1.members.values()), \
            "members kept member ids the restarted broker cannot know"
        assert_broker_agrees(adm, group, s2)
        check_stable_window(feeder, all_w, all_w, s2)
    finally:
        feeder.stop()
    delivered = {(p, o): v for p, o, v, _ in feeder.snapshot()}
    wait_until(lambda: delivered.keys() <= consumed_by_key(all_w).keys(), 20,
               what="every record produced across the restart to be consumed")
    got = consumed_by_key(all_w)
    assert all(x[2] == v for k, v in delivered.items() for x in got[k])
    for w in all_w:
        w.close()


def test_initial_rebalance_delay(broker_factory, workers, topic):
    """--group-initial-rebalance-delay-ms (Kafka's group.initial.rebalance.delay.ms): the
    first rebalance of an empty group waits for more members, so three members started
    together land in generation 1 together, after at least the delay."""
    from test_groups_support import GROUP_BROKER_ARGS
    delay_ms = 2500
    b = broker_factory(*GROUP_BROKER_ARGS, "--group-initial-rebalance-delay-ms", str(delay_ms))
    create_topic(b.bootstrap, topic, len(PARTS))
    group = f"g-{topic}"
    t0 = time.monotonic()
    ws = [workers("confluent", b.bootstrap, group, topic, n) for n in ("a", "b", "c")]
    s = wait_settled(ws, PARTS, 40)
    assert time.monotonic() - t0 >= delay_ms / 1000, "first rebalance did not wait for the delay"
    assert s.gen == 1, f"members joined one by one (generation {s.gen}) despite the initial delay"
    for w in ws:
        assert [e["ev"] for e in w.assignment_events()] == ["assign"], w.assignment_events()
    for w in ws:
        w.close()
