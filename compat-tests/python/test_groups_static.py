"""Static membership (KIP-345, `group.instance.id`), per client family, with the eager range
assignor and (where the client has it) cooperative-sticky, whose subscription metadata
carries the owned partitions and so differs between the crashed and the restarted process.

Three static members (separate processes) settle on an exact cover of a 6-partition
topic; "a" starts first, so it is the group leader (the coordinator keeps a live leader).
A follower, then the leader, is SIGKILLed and restarted at once with the same instance
id: each time the restarted member must get the same partitions back in the same
generation while the other members see no revocation and no new generation, even after
the crashed process' session timeout has passed. Kafka's coordinator only rebalances a
Stable group on a static rejoin when the selected protocol would change (the leader gets
the member list, and its SyncGroup is answered with the current assignment); changed
subscription metadata alone does not rebalance. DescribeGroups keeps three members, the
restarted one under a new member id and the same instance id. Finally a static member
that never comes back is removed when its session expires.
"""
import time

import pytest

from test_groups_support import create_topic, wait_settled

CLIENTS = ["confluent", "kafka-python", "aiokafka"]
PARTS = list(range(6))
STATIC_SESSION_MS = 5000  # long enough for a process restart on a loaded 2-core CI machine, short enough for the test
CASES = [(c, "range") for c in CLIENTS] + [("confluent", "cooperative-sticky"),
                                           ("kafka-python", "cooperative-sticky")]


def describe(adm, group):
    d = adm.describe_consumer_groups([group])[group].result(timeout=15)
    return d.state.name, {m.group_instance_id: (m.member_id, frozenset(
        tp.partition for tp in m.assignment.topic_partitions)) for m in d.members}


@pytest.mark.parametrize("client,assignor", CASES)
def test_static_member_restart(group_broker, workers, topic, client, assignor):
    bs = group_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"

    def start(name, instance):
        return workers(client, bs, group, topic, name, instance_id=instance,
                       session_ms=STATIC_SESSION_MS, assignor=assignor)

    live = {"inst-a": start("a", "inst-a")}
    wait_settled(list(live.values()), PARTS, 30)  # a alone: a is the leader
    live["inst-b"], live["inst-c"] = start("b", "inst-b"), start("c", "inst-c")
    s1 = wait_settled(list(live.values()), PARTS, 40)
    state, before = describe(adm, group)
    assert state == "STABLE" and set(before) == set(live), (state, before)
    assert {i: ps for i, (_, ps) in before.items()} == \
        {i: s1.assignment[w.name] for i, w in live.items()}

    for instance, role in (("inst-b", "follower"), ("inst-a", "leader")):
        old = live[instance]
        others = [w for i, w in live.items() if i != instance]
        marks = {w.name: len(w.assignment_events()) for w in others}
        old.kill()
        new = live[instance] = start(old.name + "2", instance)
        s2 = wait_settled(list(live.values()), PARTS, 30, after_gen=s1.gen - 1,
                          since={new.name: 0})
        assert s2.gen == s1.gen, \
            f"restart of the static {role} moved the group from generation {s1.gen} to {s2.gen}"
        assert s2.assignment[new.name] == s1.assignment[old.name], \
            f"restarted static {role} got {set(s2.assignment[new.name])}, " \
            f"had {set(s1.assignment[old.name])}"
        assert s2.members[new.name] != s1.members[old.name], \
            "restarted member kept the crashed process' member id"
        mine = new.state()

        # Past the crashed process' session timeout: nothing may expire or rebalance.
        time.sleep(STATIC_SESSION_MS / 1000 + 1.0)
        for w in others:
            seen = w.assignment_events()[marks[w.name]:]
            assert not seen, f"{w.name} saw a rebalance after the static {role} restarted: {seen}"
        assert new.state() == mine, new.assignment_events()
        state, after = describe(adm, group)
        assert state == "STABLE" and set(after) == set(live), (state, after)
        assert after[instance] == (s2.members[new.name], s1.assignment[old.name]), after[instance]
        assert all(after[i] == before[i] for i in live if i != instance), (before, after)
        before = after
        s1.assignment[new.name], s1.members[new.name] = s2.assignment[new.name], s2.members[new.name]

    # A static member that does not come back is removed after its session timeout.
    t0 = time.monotonic()
    live.pop("inst-b").kill()
    s3 = wait_settled(list(live.values()), PARTS, 30, after_gen=s1.gen)
    assert time.monotonic() - t0 >= STATIC_SESSION_MS / 1000 * 0.8, \
        "static member removed before its session timeout"
    state, final = describe(adm, group)
    assert state == "STABLE" and set(final) == set(live), (state, final)
    assert {i: ps for i, (_, ps) in final.items()} == \
        {i: s3.assignment[w.name] for i, w in live.items()}
    for w in live.values():
        w.close()
