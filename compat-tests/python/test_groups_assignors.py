"""Partition assignors over the broker's classic group protocol, per client family.

Three members (separate processes) of one group on a 6-partition topic settle on an
exact cover; one then leaves cleanly and the other two settle on an exact cover again.
The assignment is checked against the assignor's definition computed from the real
member ids (range: contiguous blocks in member-id order; roundrobin: partition k to the
k-th member mod n), the protocol the broker selected (DescribeGroups) must be the
assignor's name, and the members' assignments must equal the broker's. Eager assignors
revoke everything on a rebalance; cooperative-sticky (KIP-429) must move partitions
without revoking the survivors' ones and keep them (sticky).
aiokafka has no cooperative assignor; its eager `sticky` is tested instead.
"""
import pytest

from test_groups_support import create_topic, wait_settled

PARTS = list(range(6))
CASES = [
    ("confluent", "range"), ("confluent", "roundrobin"), ("confluent", "cooperative-sticky"),
    ("kafka-python", "range"), ("kafka-python", "roundrobin"),
    ("kafka-python", "cooperative-sticky"),
    ("aiokafka", "range"), ("aiokafka", "roundrobin"), ("aiokafka", "sticky"),
]


def expected(assignor, member_ids):
    """member id -> partitions, per the assignor's definition (one topic, all subscribed)."""
    members = sorted(member_ids)
    n = len(members)
    if assignor == "range":
        per, extra = divmod(len(PARTS), n)
        out, start = {}, 0
        for i, m in enumerate(members):
            k = per + (1 if i < extra else 0)
            out[m] = frozenset(PARTS[start:start + k])
            start += k
        return out
    if assignor == "roundrobin":
        return {m: frozenset(p for p in PARTS if p % n == i) for i, m in enumerate(members)}
    return None  # sticky variants: balance + stickiness checked instead


def check(adm, group, assignor, settled):
    by_member = {settled.members[n]: ps for n, ps in settled.assignment.items()}
    sizes = sorted(len(ps) for ps in by_member.values())
    assert sizes[-1] - sizes[0] <= 1, f"{assignor}: unbalanced {by_member}"
    want = expected(assignor, by_member)
    if want is not None:
        assert by_member == want, f"{assignor}: assignment {by_member}, by definition {want}"
    d = adm.describe_consumer_groups([group])[group].result(timeout=15)
    assert d.state.name == "STABLE", d.state
    assert d.partition_assignor == assignor, \
        f"broker selected protocol {d.partition_assignor!r}, members only offered {assignor!r}"
    broker = {m.member_id: frozenset(tp.partition for tp in m.assignment.topic_partitions)
              for m in d.members}
    assert broker == by_member, f"DescribeGroups {broker} != members' own {by_member}"


@pytest.mark.parametrize("client,assignor", CASES)
def test_assignor(group_broker, workers, topic, client, assignor):
    bs = group_broker.bootstrap
    adm = create_topic(bs, topic, len(PARTS))
    group = f"g-{topic}"
    ws = [workers(client, bs, group, topic, n, assignor=assignor) for n in ("a", "b", "c")]
    s1 = wait_settled(ws, PARTS, 40)
    assert all(len(ps) == 2 for ps in s1.assignment.values()), s1.assignment
    check(adm, group, assignor, s1)

    marks = {w.name: len(w.assignment_events()) for w in ws[1:]}
    ws[0].close()
    s2 = wait_settled(ws[1:], PARTS, 30, after_gen=s1.gen)
    assert all(len(ps) == 3 for ps in s2.assignment.values()), s2.assignment
    check(adm, group, assignor, s2)

    for w in ws[1:]:
        # A client may rebalance more than once on its way to s2 (kafka-python's leader
        # sometimes drops a completed SyncGroup when its poll times out at that instant and
        # rejoins; Kafka answers a leader's rejoin with a rebalance too), so the eager rule
        # is checked on the first revocation after s1: it gives back everything owned.
        revocations = [set(e["delta"]) for e in w.assignment_events()[marks[w.name]:]
                       if e["ev"] != "assign"]
        revoked = set().union(*revocations)
        before, after = s1.assignment[w.name], s2.assignment[w.name]
        if "sticky" in assignor:
            assert before <= after, f"{assignor}: {w.name} had {set(before)}, now {set(after)}"
        if assignor.startswith("cooperative"):
            assert not revoked, f"cooperative rebalance revoked {revoked} from survivor {w.name}"
        else:
            assert revocations and revocations[0] == before, \
                f"eager rebalance: {w.name} revoked {revocations}, owned {set(before)}"
    for w in ws[1:]:
        w.close()
