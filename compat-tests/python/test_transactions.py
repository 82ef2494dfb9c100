"""Kafka transactions (KIP-98) through confluent-kafka, kafka-python and aiokafka.

Every test is parametrized over the transactional producer's client family, and reads
back with consumers of all three families, at read_committed and read_uncommitted,
byte-exact (key, value, headers, timestamp) and offset-exact. What Kafka does, and so
what is asserted:

* A committed transaction over several partitions of two topics is seen whole, in order
  per partition. Each transaction ends with one control record (the commit or abort
  marker) per partition it wrote to, which takes an offset: the next transaction's first
  record comes after it, and the high watermark counts it. No client ever returns a
  control record as a message.
* Records of an aborted transaction are never returned to read_committed consumers (the
  fetch response lists the aborted transactions and the clients drop their batches),
  while read_uncommitted consumers get them. Committed, aborted and committed
  transactions interleave in one partition.
* An open transaction holds read_committed consumers at the last stable offset (LSO, the
  first offset of the oldest open transaction), even for non-transactional records written
  after it; ListOffsets at READ_COMMITTED answers the LSO, at READ_UNCOMMITTED the high
  watermark. Commit or abort releases them.
* send_offsets_to_transaction: the group's offsets become committed only when the
  transaction commits; an aborted transaction's offsets never appear.
* Fencing: InitProducerId with a transactional.id that has an open transaction aborts it
  and bumps the epoch; the old producer's next transactional call fails with a fatal
  fenced error (PRODUCER_FENCED, which Kafka answers as INVALID_PRODUCER_EPOCH to
  EndTxn v0/v1).
* Timeout: a transaction open longer than its transaction.timeout.ms is aborted by the
  coordinator (checked every transaction.abort.timed.out.transaction.cleanup.interval.ms,
  here 200 ms); consumers move past it and the producer's later commit is fenced.
  transaction.timeout.ms above --transaction-max-timeout-ms is refused by InitProducerId
  (INVALID_TRANSACTION_TIMEOUT).
* Restart: the transaction coordinator's state is durable, so committed transactions,
  transactional offset commits and an open transaction survive a broker restart (SIGTERM
  and SIGKILL); the open transaction still holds the LSO after the restart and the same
  producer commits it afterwards.

Kafka writes transaction markers after answering EndTxn, so what a commit or abort makes
visible is waited for (bounded), never read once.
"""
import signal
import time

import pytest

from ktxn import (FAMILIES, RC, RU, TXN, Reader, assert_read, committed, create_topics,
                  end_offsets, fenced_error, plain_produce, read_all, recs, wait_for)

TIMEOUT_BROKER_ARGS = ("--transaction-abort-timed-out-transaction-cleanup-interval-ms", "200")


@pytest.fixture
def txn_broker(broker_factory):
    """A broker that looks for timed-out transactions every 200 ms."""
    return broker_factory(*TIMEOUT_BROKER_ARGS)


def txn_id(topic, tag="p"):
    return f"tx-{tag}-{topic}"


def produce_txn(p, sends):
    """Sends [(topic, partition, Rec)] in the open transaction and flushes: returns the
    delivered offsets, in send order."""
    for t, part, r in sends:
        p.send(t, part, r)
    got = p.flush()
    assert [pp for pp, _ in got] == [part for _, part, _ in sends], got
    return [o for _, o in got]


def expect(sends, offsets):
    """{(topic, partition): [(offset, Rec)]} of the sends, in send order."""
    out = {}
    for (t, part, r), o in zip(sends, offsets):
        out.setdefault((t, part), []).append((o, r))
    return out


def merge(*wants):
    out = {}
    for w in wants:
        for tp, rs in w.items():
            out.setdefault(tp, []).extend(rs)
    return {tp: sorted(rs, key=lambda x: x[0]) for tp, rs in out.items()}


def check_all_readers(bootstrap, tps, isolation, want, what):
    n = sum(len(v) for v in want.values())
    for fam in FAMILIES:
        assert_read(read_all(fam, bootstrap, tps, isolation, n), want, f"{what} ({fam}, {isolation})")


def make(family, bootstrap, tid, **kw):
    p = TXN[family](bootstrap, tid, **kw)
    p.init()
    return p


# --------------------------------------------------------------------------- commit
@pytest.mark.parametrize("producer", FAMILIES)
def test_commit_across_partitions_and_topics(broker, topic, producer):
    a, b = topic + "-a", topic + "-b"
    create_topics(broker.bootstrap, {a: 3, b: 2})
    tps = [(a, 0), (a, 1), (a, 2), (b, 0), (b, 1)]
    p = make(producer, broker.bootstrap, txn_id(topic))
    try:
        # Transaction 1 writes to all five partitions, interleaved.
        data1 = recs("one", 15)
        sends1 = [(tps[i % 5][0], tps[i % 5][1], r) for i, r in enumerate(data1)]
        p.begin()
        off1 = produce_txn(p, sends1)
        p.commit()
        # Each partition got 3 records at offsets 0..2.
        assert off1 == [0] * 5 + [1] * 5 + [2] * 5, off1
        # Transaction 2 writes to a[0] and b[1] only: after transaction 1's commit marker.
        data2 = recs("two", 6)
        sends2 = [((a, 0), (b, 1))[i % 2] + (r,) for i, r in enumerate(data2)]
        p.begin()
        off2 = produce_txn(p, sends2)
        p.commit()
        assert off2 == [4, 4, 5, 5, 6, 6], off2
    finally:
        p.close()

    want = merge(expect(sends1, off1), expect(sends2, off2))
    ends = {(a, 0): 8, (a, 1): 4, (a, 2): 4, (b, 0): 4, (b, 1): 8}  # records + markers
    wait_for(lambda: end_offsets(broker.bootstrap, tps, RC), ends, what="LSO after commit")
    assert end_offsets(broker.bootstrap, tps, RU) == ends
    for iso in (RC, RU):
        check_all_readers(broker.bootstrap, tps, iso, want, "committed transactions")


# --------------------------------------------------------------------------- abort
@pytest.mark.parametrize("producer", FAMILIES)
def test_abort_interleaved_with_commits(broker, topic, producer):
    create_topics(broker.bootstrap, {topic: 2})
    tps = [(topic, 0), (topic, 1)]
    p = make(producer, broker.bootstrap, txn_id(topic))
    try:
        c1 = [(topic, i % 2, r) for i, r in enumerate(recs("c1", 5))]     # p0: 3, p1: 2
        a1 = [(topic, i % 2, r) for i, r in enumerate(recs("a1", 7))]     # p0: 4, p1: 3
        c2 = [(topic, 0, r) for r in recs("c2", 2)]                       # p0: 2
        p.begin()
        o_c1 = produce_txn(p, c1)
        p.commit()
        p.begin()
        o_a1 = produce_txn(p, a1)  # written to the log before the abort
        p.abort()
        p.begin()
        o_c2 = produce_txn(p, c2)
        p.commit()
    finally:
        p.close()

    # p0: c1 0-2, commit 3, a1 4-7, abort 8, c2 9-10, commit 11; p1: c1 0-1, commit 2,
    # a1 3-5, abort 6.
    assert o_c1 == [0, 0, 1, 1, 2], o_c1
    assert o_a1 == [4, 3, 5, 4, 6, 5, 7], o_a1
    assert o_c2 == [9, 10], o_c2
    ends = {(topic, 0): 12, (topic, 1): 7}
    wait_for(lambda: end_offsets(broker.bootstrap, tps, RC), ends, what="LSO after the last commit")
    assert end_offsets(broker.bootstrap, tps, RU) == ends

    committed_only = merge(expect(c1, o_c1), expect(c2, o_c2))
    everything = merge(expect(c1, o_c1), expect(a1, o_a1), expect(c2, o_c2))
    check_all_readers(broker.bootstrap, tps, RC, committed_only, "aborted records hidden")
    check_all_readers(broker.bootstrap, tps, RU, everything, "read_uncommitted")

    # A read_committed consumer starting inside the aborted transaction skips the rest of it.
    for fam in FAMILIES:
        got = read_all(fam, broker.bootstrap, [(topic, 0)], RC, 2, start={(topic, 0): 6})
        assert_read(got, {(topic, 0): expect(c2, o_c2)[(topic, 0)]},
                    f"read_committed from inside the aborted transaction ({fam})")


# --------------------------------------------------------------------------- LSO
@pytest.mark.parametrize("end", ["commit", "abort"])
@pytest.mark.parametrize("producer", FAMILIES)
def test_open_transaction_holds_the_last_stable_offset(broker, topic, producer, end):
    create_topics(broker.bootstrap, {topic: 1})
    tp = (topic, 0)
    before = recs("before", 2)
    assert plain_produce(broker.bootstrap, topic, 0, before) == [(0, 0), (0, 1)]
    p = make(producer, broker.bootstrap, txn_id(topic))
    readers = {}
    try:
        txn = [(topic, 0, r) for r in recs("txn", 3)]
        p.begin()
        o_txn = produce_txn(p, txn)
        assert o_txn == [2, 3, 4]
        after = recs("after", 4)
        assert [o for _, o in plain_produce(broker.bootstrap, topic, 0, after)] == [5, 6, 7, 8]

        assert end_offsets(broker.bootstrap, [tp], RC) == {tp: 2}, "LSO of an open transaction"
        assert end_offsets(broker.bootstrap, [tp], RU) == {tp: 9}, "high watermark"
        assert_lso_seen_by_clients(broker.bootstrap, tp, 2)
        # Live read_committed consumers of each family stop at the LSO ...
        head = {tp: [(0, before[0]), (1, before[1])]}
        for fam in FAMILIES:
            readers[fam] = Reader(fam, broker.bootstrap, [tp], RC)
            assert_read(readers[fam].read(2, settle=1.5), head, f"before {end} ({fam})")
        # ... while read_uncommitted ones read everything.
        in_txn = expect(txn, o_txn)[tp]
        tail = [(5 + i, r) for i, r in enumerate(after)]
        check_all_readers(broker.bootstrap, [tp], RU, {tp: head[tp] + in_txn + tail},
                          "open transaction, read_uncommitted")

        if end == "commit":
            p.commit()
            rest = in_txn + tail
        else:
            p.abort()
            rest = tail
        wait_for(lambda: end_offsets(broker.bootstrap, [tp], RC), {tp: 10},
                 what=f"LSO after {end}")
        assert end_offsets(broker.bootstrap, [tp], RU) == {tp: 10}
        assert_lso_seen_by_clients(broker.bootstrap, tp, 10)
        # The same live consumers now get the rest, in offset order.
        for fam, r in readers.items():
            assert_read(r.read(len(rest)), {tp: rest}, f"after {end} ({fam})")
    finally:
        for r in readers.values():
            r.close()
        p.close()


def assert_lso_seen_by_clients(bootstrap, tp, want):
    """kafka-python's and aiokafka's end_offsets at read_committed are the LSO."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition as AioTP
    from kafka import KafkaConsumer, TopicPartition as KpTP
    kc = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=RC, request_timeout_ms=10000)
    try:
        assert kc.end_offsets([KpTP(*tp)]) == {KpTP(*tp): want}, "kafka-python end_offsets"
    finally:
        kc.close()

    async def aio():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=RC,
                             request_timeout_ms=10000)
        await c.start()
        try:
            return await c.end_offsets([AioTP(*tp)])
        finally:
            await c.stop()

    assert asyncio.run(aio()) == {AioTP(*tp): want}, "aiokafka end_offsets"


# --------------------------------------------------------------------------- send_offsets
@pytest.mark.parametrize("producer", FAMILIES)
def test_send_offsets_commit_only_with_the_transaction(broker, topic, producer):
    src, out, group = topic + "-in", topic + "-out", "g-" + topic
    create_topics(broker.bootstrap, {src: 2, out: 1})
    for part in (0, 1):
        plain_produce(broker.bootstrap, src, part, recs(f"in{part}", 10))
    in_tps = [(src, 0), (src, 1)]
    none = {(src, 0): None, (src, 1): None}
    p = make(producer, broker.bootstrap, txn_id(topic))
    try:
        # Transaction 1: output + offsets {4, 3}; nothing is committed before the commit.
        p.begin()
        o1 = produce_txn(p, [(out, 0, r) for r in recs("t1", 2)])
        p.send_offsets(group, {(src, 0): 4, (src, 1): 3})
        assert committed(broker.bootstrap, group, in_tps) == none, "offsets before commit"
        p.commit()
        wait_for(lambda: committed(broker.bootstrap, group, in_tps), {(src, 0): 4, (src, 1): 3},
                 what="offsets after commit")
        # Transaction 2: offsets {9, 8}, aborted: never appear.
        p.begin()
        produce_txn(p, [(out, 0, r) for r in recs("t2", 2)])
        p.send_offsets(group, {(src, 0): 9, (src, 1): 8})
        p.abort()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert committed(broker.bootstrap, group, in_tps) == {(src, 0): 4, (src, 1): 3}, \
                "an aborted transaction's offsets"
            time.sleep(0.1)
        # Transaction 3: offsets only (no records), one partition.
        p.begin()
        p.send_offsets(group, {(src, 0): 6})
        p.commit()
        wait_for(lambda: committed(broker.bootstrap, group, in_tps), {(src, 0): 6, (src, 1): 3},
                 what="offsets after the offsets-only commit")
    finally:
        p.close()
    assert o1 == [0, 1]
    # What the group's own consumers see: kafka-python and aiokafka committed().
    assert_committed_seen_by_clients(broker.bootstrap, group, {(src, 0): 6, (src, 1): 3})


def assert_committed_seen_by_clients(bootstrap, group, want):
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition as AioTP
    from kafka import KafkaConsumer, TopicPartition as KpTP
    kc = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                       request_timeout_ms=10000)
    try:
        got = {tp: kc.committed(KpTP(*tp), timeout_ms=10000) for tp in want}
        assert got == want, f"kafka-python committed(): {got}"
    finally:
        kc.close(autocommit=False)

    async def aio():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, request_timeout_ms=10000)
        await c.start()
        try:
            return {tp: await c.committed(AioTP(*tp)) for tp in want}
        finally:
            await c.stop()

    got = asyncio.run(aio())
    assert got == want, f"aiokafka committed(): {got}"


# --------------------------------------------------------------------------- fencing
@pytest.mark.parametrize("producer", FAMILIES)
def test_second_producer_fences_the_first(broker, topic, producer):
    create_topics(broker.bootstrap, {topic: 1})
    tp = (topic, 0)
    tid = txn_id(topic)
    p1 = make(producer, broker.bootstrap, tid)
    p2 = None
    try:
        p1.begin()
        zombie = [(topic, 0, r) for r in recs("zombie", 3)]
        assert produce_txn(p1, zombie) == [0, 1, 2]
        # Same transactional.id: InitProducerId aborts p1's open transaction first.
        p2 = make(producer, broker.bootstrap, tid)
        with pytest.raises(Exception) as ei:
            p1.commit()
        why = fenced_error(producer, ei.value)
        assert why is None, f"first producer's commit after being fenced: {why}"
        if producer == "confluent":
            # Fatal: nothing transactional works on it any more.
            from confluent_kafka import KafkaException
            with pytest.raises(KafkaException) as ei2:
                p1.begin()
            assert ei2.value.args[0].fatal(), ei2.value.args[0]
        p2.begin()
        fresh = [(topic, 0, r) for r in recs("fresh", 2)]
        o2 = produce_txn(p2, fresh)
        p2.commit()
        assert o2 == [4, 5], o2  # after the abort marker at 3
    finally:
        p1.close()
        if p2 is not None:
            p2.close()
    wait_for(lambda: end_offsets(broker.bootstrap, [tp], RC), {tp: 7}, what="LSO")
    check_all_readers(broker.bootstrap, [tp], RC, expect(fresh, o2), "fenced transaction hidden")
    check_all_readers(broker.bootstrap, [tp], RU,
                      merge(expect(zombie, [0, 1, 2]), expect(fresh, o2)), "read_uncommitted")


# --------------------------------------------------------------------------- timeout
TXN_TIMEOUT_MS = 2500


@pytest.mark.parametrize("producer", FAMILIES)
def test_timed_out_transaction_is_aborted_by_the_broker(txn_broker, topic, producer):
    b = txn_broker
    create_topics(b.bootstrap, {topic: 1})
    tp = (topic, 0)
    p = make(producer, b.bootstrap, txn_id(topic), timeout_ms=TXN_TIMEOUT_MS)
    try:
        t0 = time.monotonic()
        p.begin()
        left_open = [(topic, 0, r) for r in recs("open", 3)]
        assert produce_txn(p, left_open) == [0, 1, 2]
        after = recs("after", 2)
        assert [o for _, o in plain_produce(b.bootstrap, topic, 0, after)] == [3, 4]
        # The transaction began after t0, so the broker cannot abort it before t0 plus its
        # timeout: an answer that came back before then was read while it was open. (The
        # clock is read after the call: a slow call under load proves nothing either way.)
        lso = end_offsets(b.bootstrap, [tp], RC)
        if time.monotonic() - t0 < TXN_TIMEOUT_MS / 1000 - 0.2:
            assert lso == {tp: 0}, "LSO before the transaction timed out"
        # The coordinator aborts it: the abort marker at 5, LSO = high watermark = 6.
        wait_for(lambda: end_offsets(b.bootstrap, [tp], RC), {tp: 6}, timeout=20,
                 what="LSO after the transaction timed out")
        elapsed = time.monotonic() - t0
        assert elapsed >= TXN_TIMEOUT_MS / 1000 - 0.1, \
            f"transaction aborted after {elapsed:.2f}s, before its {TXN_TIMEOUT_MS} ms timeout"
        assert end_offsets(b.bootstrap, [tp], RU) == {tp: 6}
        check_all_readers(b.bootstrap, [tp], RC, {tp: [(3 + i, r) for i, r in enumerate(after)]},
                          "timed-out transaction hidden")
        check_all_readers(b.bootstrap, [tp], RU,
                          {tp: [(i, r) for i, (_, _, r) in enumerate(left_open)]
                           + [(3 + i, r) for i, r in enumerate(after)]}, "read_uncommitted")
        # The coordinator bumped the epoch when it aborted: the producer is fenced.
        with pytest.raises(Exception) as ei:
            p.commit()
        why = fenced_error(producer, ei.value)
        assert why is None, f"commit after the broker aborted the transaction: {why}"
    finally:
        p.close()
    check_all_readers(b.bootstrap, [tp], RC, {tp: [(3 + i, r) for i, r in enumerate(after)]},
                      "after the failed commit")


@pytest.mark.parametrize("producer", FAMILIES)
def test_transaction_timeout_above_the_broker_maximum_is_refused(broker_factory, topic,
                                                                  producer):
    b = broker_factory("--transaction-max-timeout-ms", "5000")
    create_topics(b.bootstrap, {topic: 1})
    p = TXN[producer](b.bootstrap, txn_id(topic, "over"), timeout_ms=5001)
    try:
        with pytest.raises(Exception) as ei:
            p.init()
        e = ei.value
        if producer == "confluent":
            from confluent_kafka import KafkaError, KafkaException
            assert isinstance(e, KafkaException) and \
                e.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, repr(e)
        elif producer == "kafka-python":
            assert "InvalidTransactionTimeout" in str(e), repr(e)
        else:
            from aiokafka.errors import InvalidTransactionTimeout
            assert isinstance(e, InvalidTransactionTimeout), repr(e)
    finally:
        p.close()
    # Exactly the maximum is fine.
    p = make(producer, b.bootstrap, txn_id(topic, "max"), timeout_ms=5000)
    try:
        p.begin()
        data = [(topic, 0, r) for r in recs("max", 2)]
        off = produce_txn(p, data)
        p.commit()
    finally:
        p.close()
    assert off == [0, 1]
    assert_read(read_all("confluent", b.bootstrap, [(topic, 0)], RC, 2), expect(data, off),
                "transaction at the maximum timeout")


# --------------------------------------------------------------------------- restart
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
@pytest.mark.parametrize("producer", FAMILIES)
def test_transactions_survive_restart(broker, topic, producer, sig):
    src, out, group = topic + "-in", topic + "-out", "g-" + topic
    create_topics(broker.bootstrap, {src: 1, out: 1})
    plain_produce(broker.bootstrap, src, 0, recs("in", 10))
    tp, in_tp = (out, 0), (src, 0)
    p = make(producer, broker.bootstrap, txn_id(topic))
    try:
        first = [(out, 0, r) for r in recs("first", 3)]
        p.begin()
        assert produce_txn(p, first) == [0, 1, 2]
        p.send_offsets(group, {in_tp: 2})
        p.commit()
        wait_for(lambda: committed(broker.bootstrap, group, [in_tp]), {in_tp: 2},
                 what="offset of the first transaction")
        wait_for(lambda: end_offsets(broker.bootstrap, [tp], RC), {tp: 4}, what="LSO")
        # The second transaction is open (records and offsets sent) across the restart.
        second = [(out, 0, r) for r in recs("second", 2)]
        p.begin()
        assert produce_txn(p, second) == [4, 5]
        p.send_offsets(group, {in_tp: 5})

        broker.restart(sig)
        # Committed data and offsets are back; the open transaction still holds the LSO.
        assert end_offsets(broker.bootstrap, [tp], RC) == {tp: 4}, "LSO after restart"
        assert end_offsets(broker.bootstrap, [tp], RU) == {tp: 6}, "high watermark after restart"
        assert committed(broker.bootstrap, group, [in_tp]) == {in_tp: 2}
        check_all_readers(broker.bootstrap, [tp], RC, expect(first, [0, 1, 2]),
                          "after restart, second transaction open")

        # The coordinator's state is durable: the same producer commits after the restart.
        p.commit()
        wait_for(lambda: end_offsets(broker.bootstrap, [tp], RC), {tp: 7},
                 what="LSO after committing across the restart")
        wait_for(lambda: committed(broker.bootstrap, group, [in_tp]), {in_tp: 5},
                 what="offset committed across the restart")
        both = merge(expect(first, [0, 1, 2]), expect(second, [4, 5]))
        check_all_readers(broker.bootstrap, [tp], RC, both, "committed across the restart")

        broker.restart(sig)
        assert end_offsets(broker.bootstrap, [tp], RC) == {tp: 7}
        assert end_offsets(broker.bootstrap, [tp], RU) == {tp: 7}
        assert committed(broker.bootstrap, group, [in_tp]) == {in_tp: 5}
        check_all_readers(broker.bootstrap, [tp], RC, both, "after the second restart")
        # And the producer keeps working.
        third = [(out, 0, r) for r in recs("third", 1)]
        p.begin()
        assert produce_txn(p, third) == [7]
        p.commit()
    finally:
        p.close()
    wait_for(lambda: end_offsets(broker.bootstrap, [tp], RC), {tp: 9}, what="final LSO")
    check_all_readers(broker.bootstrap, [tp], RC, merge(both, expect(third, [7])), "final")
