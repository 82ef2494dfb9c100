"""Static membership (KIP-345, `group.instance.id`), per client family.

Three static members (separate processes) settle on an exact cover of a 6-partition
topic. One is SIGKILLed and restarted at once with the same instance id: it must get
the same partitions back in the same generation, while the two others see no
revocation and no new generation, even after the crashed process' session timeout
has passed; DescribeGroups keeps three members, the restarted one under a new member
id and the same instance id. Finally a static member that never comes back is
removed when its session expires, and the survivors take over its partitions.
"""
import time

import pytest

from test_groups_support import create_topic, wait_settled

CLIENTS = ["confluent", "kafka-python", "aiokafka"]
PARTS = list(range(6))
STATIC_SESSION_MS = 4000  # long enough for a process restart, short enough for the test


def describe(adm, group):
    d = adm.describe_consumer_groups([group])[group].result(timeout=15)
    return d.state.name, {m.group_instance_id: (m.member_id, frozenset(
        tp.partition for tp in m.assignment.topic_partitions)) for m in d.members}


@pytest.mark.parametrize("client", CLIENTS)
def test_static_member_restart(group_broker, workers, topic, client):
    bs = group_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"

    def start(name, instance):
        return workers(client, bs, group, topic, name, instance_id=instance,
                       session_ms=STATIC_SESSION_MS)

    a, b, c = start("a", "inst-a"), start("b", "inst-b"), start("c", "inst-c")
    s1 = wait_settled([a, b, c], PARTS, 40)
    state, before = describe(adm, group)
    assert state == "STABLE" and set(before) == {"inst-a", "inst-b", "inst-c"}, (state, before)
    assert {i: ps for i, (_, ps) in before.items()} == \
        {"inst-a": s1.assignment["a"], "inst-b": s1.assignment["b"], "inst-c": s1.assignment["c"]}
    marks = {w.name: len(w.assignment_events()) for w in (a, c)}

    b.kill()
    b2 = start("b2", "inst-b")
    s2 = wait_settled([a, b2, c], PARTS, 30, after_gen=s1.gen - 1, since={"b2": 0})
    assert s2.gen == s1.gen, f"static rejoin moved the group from generation {s1.gen} to {s2.gen}"
    assert s2.assignment["b2"] == s1.assignment["b"], \
        f"restarted static member got {set(s2.assignment['b2'])}, had {set(s1.assignment['b'])}"
    assert s2.members["b2"] != s1.members["b"], "restarted member kept the crashed process' member id"
    parts, gen, member = b2.state()

    # Past the crashed process' session timeout: nothing may expire or rebalance.
    time.sleep(STATIC_SESSION_MS / 1000 + 1.5)
    for w in (a, c):
        new = w.assignment_events()[marks[w.name]:]
        assert not new, f"{w.name} saw a rebalance after a static member restart: {new}"
    assert b2.state() == (parts, gen, member), b2.assignment_events()
    state, after = describe(adm, group)
    assert state == "STABLE", state
    assert set(after) == {"inst-a", "inst-b", "inst-c"}, after
    assert after["inst-b"] == (member, s1.assignment["b"]), after["inst-b"]
    assert after["inst-a"] == before["inst-a"] and after["inst-c"] == before["inst-c"], \
        (before, after)

    # A static member that does not come back is removed after its session timeout.
    t0 = time.monotonic()
    b2.kill()
    s3 = wait_settled([a, c], PARTS, 30, after_gen=s1.gen)
    assert time.monotonic() - t0 >= STATIC_SESSION_MS / 1000 * 0.8, \
        "static member removed before its session timeout"
    state, final = describe(adm, group)
    assert state == "STABLE" and set(final) == {"inst-a", "inst-c"}, (state, final)
    assert {i: ps for i, (_, ps) in final.items()} == \
        {"inst-a": s3.assignment["a"], "inst-c": s3.assignment["c"]}
    a.close()
    c.close()
