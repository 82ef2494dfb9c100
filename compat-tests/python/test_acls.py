"""ACLs (Kafka's StandardAuthorizer) through confluent-kafka, kafka-python and aiokafka.

Every test starts its own broker with `--authorizer`, `--super-users User:admin`, a
SASL_PLAINTEXT and a PLAINTEXT listener and three SASL users (admin, alice, bob). The super
user `admin` creates the topics and the ACLs; alice and bob then act over SASL (PLAIN or
SCRAM) and PLAINTEXT clients are `User:ANONYMOUS`.

* The ACL admin API: CreateAcls / DescribeAcls (every filter kind: LITERAL, PREFIXED,
  MATCH, ANY, principal, host, operation, permission) / DeleteAcls, with the returned
  bindings compared exactly, through confluent-kafka's and kafka-python's admin clients
  (aiokafka has no ACL API).
* Enforcement: produce/consume byte-exact with the right ACLs in all three clients, the
  client's own authorization error without them (topic, group, transactional id,
  cluster), PREFIXED and wildcard ACLs, DENY over ALLOW, host-specific ACLs, Metadata
  filtering, auto-creation needing CREATE, allow.everyone.if.no.acl.found, persistence
  across a restart, SECURITY_DISABLED without an authorizer.

No refusal is concluded from a sleep: every negative test waits (bounded) for the error the
client itself reports.

With COMPAT_BROKER=kafka the brokers are a real Kafka 4.4 with the StandardAuthorizer and
a SASL_PLAINTEXT listener whose users are PLAIN JAAS users (no SCRAM credentials there, so
only PLAIN is used); User:ANONYMOUS, the broker/controller principal, is a super user there
(see `_KafkaAclBroker`), so the PLAINTEXT-as-ANONYMOUS test is Klamm-only.
"""
import asyncio
import os
import signal
import time

import pytest
from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ConfigResource, NewTopic,
                                   ResourcePatternType, ResourceType)

from conftest import KafkaBroker, free_port, new_broker, on_kafka
from kclients import CLIENTS, Rec, assert_same, check_offsets, now_ms, sample_records

# confluent-kafka (librdkafka) names Kafka's ACL resource type 4, CLUSTER, "BROKER".
CLUSTER = ResourceType.BROKER
USERS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw"}
LISTENERS = ["SASL_PLAINTEXT", "PLAINTEXT"]
SUPER = "User:admin"
ERROR_WAIT = 10.0  # bound on waiting for a client's error report
OP_TIMEOUT = 10.0  # admin futures
ALICE, BOB, ANON = "User:alice", "User:bob", "User:ANONYMOUS"
# Kafka's names of the mechanisms the users can log in with: Klamm's --bootstrap-users
# makes SCRAM credentials as well; the Kafka reference only has the PLAIN JAAS users.
MECHS = ["PLAIN"] if on_kafka() else ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


# --------------------------------------------------------------------------- brokers
class _KafkaAclBroker(KafkaBroker):
    """A reference Kafka 4.4 with the StandardAuthorizer and the same two listeners."""

    def __init__(self, base_dir, authorizer, super_users, allow_everyone):
        super().__init__(base_dir, ())
        sasl, plain, ctrl = free_port(), free_port(), free_port()
        self.listeners = {"SASL_PLAINTEXT": sasl, "PLAINTEXT": plain}
        jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
        # kafka.sh probes (and prints) the PLAINTEXT listener of the final `listeners`.
        self.props = [
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{sasl},PLAINTEXT://127.0.0.1:{plain},"
            f"CONTROLLER://127.0.0.1:{ctrl}",
            f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{sasl},"
            f"PLAINTEXT://127.0.0.1:{plain}",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{ctrl}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN",
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
        ]
        if authorizer:
            # The broker and controller talk to each other as User:ANONYMOUS over the
            # PLAINTEXT / CONTROLLER listeners; it must be a super user there. So the
            # tests' PLAINTEXT clients are super users on Kafka (not on Klamm).
            supers = ";".join([*super_users, ANON])
            self.props += [
                "authorizer.class.name="
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                f"super.users={supers}",
                f"allow.everyone.if.no.acl.found={'true' if allow_everyone else 'false'}",
            ]

    def address(self, listener):
        return f"127.0.0.1:{self.listeners[listener]}"


@pytest.fixture
def acl_broker_factory(request, tmp_path):
    """acl_broker_factory(authorizer=True, allow_everyone=None, super_users=("User:admin",))"""
    brokers = []

    def make(authorizer=True, allow_everyone=None, super_users=(SUPER,)):
        n = len(brokers)
        if on_kafka():
            b = _KafkaAclBroker(tmp_path / f"kafka-{n}", authorizer, super_users,
                                bool(allow_everyone)).start()
        else:
            args = ["--bootstrap-users", ",".join(f"{u}:{p}" for u, p in USERS.items())]
            if authorizer:
                args += ["--authorizer", "--super-users", ";".join(super_users)]
            if allow_everyone is not None:
                args += ["--allow-everyone-if-no-acl-found", str(allow_everyone).lower()]
            b = new_broker(tmp_path, f"data{n}", f"klamm{n}.log", args, LISTENERS)
        brokers.append(b)
        return b

    yield make
    rep = getattr(request.node, "rep_call", None)
    for b in brokers:
        code = b.stop()
        if rep is not None and rep.failed:
            print(f"\n----- broker log ({b.log_path}) -----\n{b.log_tail(60)}")
        assert code in (None, 0, -signal.SIGTERM), f"broker exited with {code}"


@pytest.fixture
def acl_broker(acl_broker_factory):
    return acl_broker_factory()


# --------------------------------------------------------------------------- client settings
def sasl(client, user, mechanism="PLAIN"):
    """SASL_PLAINTEXT settings for `user` in `client`'s own spelling."""
    if client == "confluent":
        return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                "sasl.username": user, "sasl.password": USERS[user]}
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
            "sasl_plain_username": user, "sasl_plain_password": USERS[user]}


def mech(i):
    """A mechanism for the i-th client of a test, so the tests use all of them."""
    return MECHS[i % len(MECHS)]


def conn(broker, client, user, mechanism="PLAIN"):
    """(bootstrap, conf) for `user` (None: the PLAINTEXT listener, User:ANONYMOUS)."""
    if user is None:
        return broker.address("PLAINTEXT"), {}
    return broker.address("SASL_PLAINTEXT"), sasl(client, user, mechanism)


def cadmin(broker, user="admin", mechanism="PLAIN"):
    bootstrap, conf = conn(broker, "confluent", user, mechanism)
    return AdminClient({"bootstrap.servers": bootstrap, **conf})


def kpadmin(broker, user="admin", mechanism="PLAIN"):
    from kafka import KafkaAdminClient
    bootstrap, conf = conn(broker, "kafka-python", user, mechanism)
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **conf)


def short_records(seed):
    return sample_records(seed=seed, n_small=6)


# --------------------------------------------------------------------------- ACL helpers
def binding(rtype, name, principal, op, perm=AclPermissionType.ALLOW,
            pattern=ResourcePatternType.LITERAL, host="*"):
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


def topic_acl(name, principal, op, **kw):
    return binding(ResourceType.TOPIC, name, principal, op, **kw)


def group_acl(name, principal, op, **kw):
    return binding(ResourceType.GROUP, name, principal, op, **kw)


def afilter(rtype=ResourceType.ANY, name=None, pattern=ResourcePatternType.ANY,
            principal=None, host=None, op=AclOperation.ANY, perm=AclPermissionType.ANY):
    return AclBindingFilter(rtype, name, pattern, principal, host, op, perm)


# The group.id kclients' confluent consumers carry (they only assign): librdkafka still
# sends FindCoordinator for it, which needs DESCRIBE on the group.
NOGROUP = "klamm-compat-nogroup"


def open_nogroup(admin):
    """Let everyone DESCRIBE the NOGROUP group, so assign-only confluent consumers work."""
    create_acls(admin, [group_acl(NOGROUP, "User:*", AclOperation.DESCRIBE)])


def create_acls(admin, bindings):
    """Create `bindings` with a confluent AdminClient; every one must succeed. Then wait
    (bounded) until DescribeAcls lists them: Kafka answers CreateAcls once the controller
    committed them, and its brokers' authorizer applies them a moment later (DescribeAcls
    reads that authorizer); Klamm applies them before it answers."""
    for b, fut in admin.create_acls(bindings, request_timeout=OP_TIMEOUT).items():
        assert fut.result(timeout=OP_TIMEOUT) is None, b
    deadline = time.monotonic() + ERROR_WAIT
    while not set(bindings) <= set(describe(admin)):
        assert time.monotonic() < deadline, f"created ACLs not listed: {bindings}"
        time.sleep(0.05)


def describe(admin, flt=None):
    return sorted(admin.describe_acls(flt or afilter(), request_timeout=OP_TIMEOUT)
                  .result(timeout=OP_TIMEOUT))


def create_topics(admin, *names, partitions=1):
    futs = admin.create_topics([NewTopic(n, partitions, 1) for n in names],
                               operation_timeout=OP_TIMEOUT, request_timeout=OP_TIMEOUT)
    for n, f in futs.items():
        assert f.result(timeout=OP_TIMEOUT) is None, n


def admin_error(fut):
    """The KafkaError a confluent admin future failed with."""
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=OP_TIMEOUT)
    return ei.value.args[0]


# --------------------------------------------------------------------------- refusals
def confluent_produce_error(bootstrap, conf, topic, timeout=ERROR_WAIT):
    """Produce one record with confluent-kafka and wait (bounded) for its delivery report;
    returns the report's KafkaError (None: delivered) and the error_cb's errors."""
    errors, reports = [], []
    p = Producer({"bootstrap.servers": bootstrap, "error_cb": errors.append,
                  "message.timeout.ms": int(timeout * 1000), "linger.ms": 5, **conf})
    try:
        p.produce(topic, b"v", key=b"k", on_delivery=lambda err, _m: reports.append(err))
        deadline = time.monotonic() + timeout + 5
        while not reports and time.monotonic() < deadline:
            p.poll(0.05)
        assert reports, f"no delivery report within {timeout + 5}s; errors: {errors}"
        p.purge()
        p.poll(0)
    finally:
        del p
    return reports[0], errors


def confluent_consume_error(bootstrap, conf, topic, want_code, group=NOGROUP, subscribe=False,
                            timeout=ERROR_WAIT):
    """A confluent consumer (assigned to partition 0, or subscribed) polled until it reports
    `want_code` as a message error; returns that error and the other errors seen."""
    errors, seen = [], []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 100, "error_cb": errors.append, **conf})
    try:
        if subscribe:
            c.subscribe([topic])
        else:
            c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and m.error() is not None:
                seen.append(m.error())
                if m.error().code() == want_code:
                    return m.error(), seen + errors
            assert m is None or m.error() is not None, \
                f"consumed {m.topic()}[{m.partition()}]@{m.offset()} without authorization"
    finally:
        c.close()
    pytest.fail(f"no {KafkaError(want_code).name()} within {timeout}s; "
                f"errors: {[e.str() for e in seen + errors]}")


def kp_produce_raises(bootstrap, conf, topic):
    """kafka-python: the exception send(...).get() raises (bounded by max_block_ms)."""
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False,
                      request_timeout_ms=5000, max_block_ms=int(ERROR_WAIT * 1000),
                      delivery_timeout_ms=int(ERROR_WAIT * 1000), retries=0, **conf)
    try:
        with pytest.raises(Exception) as ei:
            p.send(topic, b"v", key=b"k").get(timeout=ERROR_WAIT + 5)
        return ei.value
    finally:
        p.close(timeout=2)


def kp_consume_raises(bootstrap, conf, topic, group=None):
    """kafka-python: the exception poll() raises (assigned, or subscribed with `group`)."""
    from kafka import KafkaConsumer, TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", fetch_max_wait_ms=100,
                      request_timeout_ms=5000, **conf)
    try:
        if group is None:
            c.assign([KTP(topic, 0)])
            c.seek(KTP(topic, 0), 0)
        else:
            c.subscribe([topic])
        deadline = time.monotonic() + ERROR_WAIT
        while time.monotonic() < deadline:
            try:
                got = c.poll(timeout_ms=100)
            except Exception as e:  # the client's own authorization error
                return e
            assert not any(got.values()), "consumed without authorization"
        pytest.fail(f"kafka-python raised nothing within {ERROR_WAIT}s")
    finally:
        c.close()


async def _aio_produce_raises(bootstrap, conf, topic):
    from aiokafka import AIOKafkaProducer
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000, **conf)
    await asyncio.wait_for(p.start(), ERROR_WAIT)
    try:
        with pytest.raises(Exception) as ei:
            await asyncio.wait_for(p.send_and_wait(topic, b"v", key=b"k"), ERROR_WAIT)
        return ei.value
    finally:
        await p.stop()


async def _aio_consume_raises(bootstrap, conf, topic, group=None):
    from aiokafka import AIOKafkaConsumer, TopicPartition as ATP
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", fetch_max_wait_ms=100,
                         request_timeout_ms=5000, **conf)
    await asyncio.wait_for(c.start(), ERROR_WAIT)
    try:
        if group is None:
            c.assign([ATP(topic, 0)])
            c.seek(ATP(topic, 0), 0)
        else:
            c.subscribe([topic])
        deadline = time.monotonic() + ERROR_WAIT
        while time.monotonic() < deadline:
            try:
                got = await c.getmany(timeout_ms=100)
            except Exception as e:
                return e
            assert not any(got.values()), "consumed without authorization"
        pytest.fail(f"aiokafka raised nothing within {ERROR_WAIT}s")
    finally:
        await c.stop()


def produce_refused(client, bootstrap, conf, topic):
    """Each client's topic authorization error on produce, checked by name."""
    if client == "confluent":
        err, _ = confluent_produce_error(bootstrap, conf, topic)
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
        return err
    if client == "kafka-python":
        from kafka.errors import TopicAuthorizationFailedError
        e = kp_produce_raises(bootstrap, conf, topic)
        assert isinstance(e, TopicAuthorizationFailedError), repr(e)
        return e
    from aiokafka.errors import TopicAuthorizationFailedError
    e = asyncio.run(_aio_produce_raises(bootstrap, conf, topic))
    assert isinstance(e, TopicAuthorizationFailedError), repr(e)
    return e


def consume_refused(client, bootstrap, conf, topic):
    if client == "confluent":
        return confluent_consume_error(bootstrap, conf, topic,
                                       KafkaError.TOPIC_AUTHORIZATION_FAILED)[0]
    if client == "kafka-python":
        from kafka.errors import TopicAuthorizationFailedError
        e = kp_consume_raises(bootstrap, conf, topic)
        assert isinstance(e, TopicAuthorizationFailedError), repr(e)
        return e
    from aiokafka.errors import TopicAuthorizationFailedError
    e = asyncio.run(_aio_consume_raises(bootstrap, conf, topic))
    assert isinstance(e, TopicAuthorizationFailedError), repr(e)
    return e


# --------------------------------------------------------------------------- group consumers
def confluent_group_consume(bootstrap, conf, topic, group, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 100, "session.timeout.ms": 6000, **conf})
    try:
        c.subscribe([topic])
        out = CLIENTS["confluent"].drain(c, count, timeout=20)
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(topic, 0)], timeout=OP_TIMEOUT)[0].offset
        return out, committed
    finally:
        c.close()


def kp_group_consume(bootstrap, conf, topic, group, count):
    from kafka import KafkaConsumer, TopicPartition as KTP
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      fetch_max_wait_ms=100, request_timeout_ms=10000, **conf)
    try:
        out = CLIENTS["kafka-python"].drain(c, count, timeout=20)
        c.commit()
        return out, c.committed(KTP(topic, 0))
    finally:
        c.close()


async def _aio_group_consume(bootstrap, conf, topic, group, count):
    from aiokafka import AIOKafkaConsumer, TopicPartition as ATP
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         fetch_max_wait_ms=100, request_timeout_ms=10000, **conf)
    await c.start()
    try:
        out = await CLIENTS["aiokafka"].adrain(c, count, timeout=20)
        await c.commit()
        return out, await c.committed(ATP(topic, 0))
    finally:
        await c.stop()


def group_consume(client, bootstrap, conf, topic, group, count):
    """Subscribe with `group`, read `count` records, commit; returns (records, committed)."""
    if client == "confluent":
        return confluent_group_consume(bootstrap, conf, topic, group, count)
    if client == "kafka-python":
        return kp_group_consume(bootstrap, conf, topic, group, count)
    return asyncio.run(_aio_group_consume(bootstrap, conf, topic, group, count))


# =========================================================================== the ACL admin API
# The bindings of the admin tests, by a short name.
CATALOG = {
    "orders-read": topic_acl("orders", ALICE, AclOperation.READ),
    "orders-write": topic_acl("orders", ALICE, AclOperation.WRITE),
    "ord-describe": topic_acl("ord", BOB, AclOperation.DESCRIBE,
                              pattern=ResourcePatternType.PREFIXED),
    "any-topic-deny": topic_acl("*", "User:carol", AclOperation.READ,
                                perm=AclPermissionType.DENY, host="10.0.0.1"),
    "g1-read": group_acl("g1", ALICE, AclOperation.READ),
    "cluster-describe": binding(CLUSTER, "kafka-cluster", "User:ops",
                                AclOperation.DESCRIBE),
    "tx-write": binding(ResourceType.TRANSACTIONAL_ID, "tx-", ALICE, AclOperation.WRITE,
                        pattern=ResourcePatternType.PREFIXED),
    "orders-all-wildcard": topic_acl("orders", "User:*", AclOperation.ALL),
}

# (filter, the CATALOG names it matches)
DESCRIBE_CASES = {
    "any": (afilter(), set(CATALOG)),
    "topic-literal-exact": (afilter(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL),
                            {"orders-read", "orders-write", "orders-all-wildcard"}),
    "topic-literal-wildcard-name": (afilter(ResourceType.TOPIC, "*",
                                            ResourcePatternType.LITERAL),
                                    {"any-topic-deny"}),
    "topic-prefixed": (afilter(ResourceType.TOPIC, "ord", ResourcePatternType.PREFIXED),
                       {"ord-describe"}),
    "topic-prefixed-other-name": (afilter(ResourceType.TOPIC, "orders",
                                          ResourcePatternType.PREFIXED), set()),
    "topic-match": (afilter(ResourceType.TOPIC, "orders", ResourcePatternType.MATCH),
                    {"orders-read", "orders-write", "orders-all-wildcard", "ord-describe",
                     "any-topic-deny"}),
    "topic-match-unrelated": (afilter(ResourceType.TOPIC, "payments",
                                      ResourcePatternType.MATCH), {"any-topic-deny"}),
    "topic-any-pattern": (afilter(ResourceType.TOPIC),
                          {"orders-read", "orders-write", "orders-all-wildcard", "ord-describe",
                           "any-topic-deny"}),
    "principal": (afilter(principal=ALICE), {"orders-read", "orders-write", "g1-read",
                                             "tx-write"}),
    "principal-wildcard-literally": (afilter(principal="User:*"), {"orders-all-wildcard"}),
    "operation": (afilter(op=AclOperation.WRITE), {"orders-write", "tx-write"}),
    "permission": (afilter(perm=AclPermissionType.DENY), {"any-topic-deny"}),
    "host": (afilter(host="10.0.0.1"), {"any-topic-deny"}),
    "group": (afilter(ResourceType.GROUP, "g1", ResourcePatternType.ANY), {"g1-read"}),
    "cluster": (afilter(CLUSTER), {"cluster-describe"}),
    "transactional-id-match": (afilter(ResourceType.TRANSACTIONAL_ID, "tx-42",
                                       ResourcePatternType.MATCH), {"tx-write"}),
    "nothing": (afilter(ResourceType.GROUP, "g2", ResourcePatternType.LITERAL), set()),
}


def _want(names):
    return sorted(CATALOG[n] for n in names)


def test_confluent_create_describe_delete(acl_broker):
    admin = cadmin(acl_broker)
    assert describe(admin) == []
    create_acls(admin, list(CATALOG.values()))
    # Creating an existing binding again is accepted and changes nothing.
    create_acls(admin, [CATALOG["orders-read"]])
    failed = []
    for case, (flt, names) in DESCRIBE_CASES.items():
        got = describe(admin, flt)
        if got != _want(names):
            failed.append(f"{case}: got {got}\n   want {_want(names)}")
    assert not failed, "\n".join(failed)

    # DeleteAcls: two filters in one request, each answers with the bindings it removed.
    f_alice_topics = afilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, principal=ALICE)
    f_none = afilter(ResourceType.GROUP, "no-such-group", ResourcePatternType.LITERAL)
    res = admin.delete_acls([f_alice_topics, f_none], request_timeout=OP_TIMEOUT)
    assert sorted(res[f_alice_topics].result(timeout=OP_TIMEOUT)) == \
        _want({"orders-read", "orders-write"})
    assert res[f_none].result(timeout=OP_TIMEOUT) == []
    # A MATCH filter deletes what applies to the name: literal, prefixed and wildcard ones.
    f_match = afilter(ResourceType.TOPIC, "orders", ResourcePatternType.MATCH)
    res = admin.delete_acls([f_match], request_timeout=OP_TIMEOUT)
    assert sorted(res[f_match].result(timeout=OP_TIMEOUT)) == \
        _want({"orders-all-wildcard", "ord-describe", "any-topic-deny"})
    assert describe(admin) == _want({"g1-read", "cluster-describe", "tx-write"})
    f_all = afilter()
    res = admin.delete_acls([f_all], request_timeout=OP_TIMEOUT)
    assert sorted(res[f_all].result(timeout=OP_TIMEOUT)) == \
        _want({"g1-read", "cluster-describe", "tx-write"})
    assert describe(admin) == []


def _kp_types():
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, ResourcePattern, ResourcePatternFilter,
                             ResourceType as KRT)
    return ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, \
        ResourcePattern, ResourcePatternFilter, KRT


def _kp_key(acl):
    """A kafka-python ACL as a comparable tuple."""
    rp = acl.resource_pattern
    return (rp.resource_type.name, rp.resource_name, rp.pattern_type.name, acl.principal,
            acl.host, acl.operation.name, acl.permission_type.name)


def test_kafka_python_create_describe_delete(acl_broker):
    (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
     ResourcePattern, ResourcePatternFilter, KRT) = _kp_types()
    admin = kpadmin(acl_broker, mechanism=mech(1))
    try:
        acls = [
            ACL(ALICE, "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                ResourcePattern(KRT.TOPIC, "orders")),
            ACL(ALICE, "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
                ResourcePattern(KRT.TOPIC, "ord", ACLResourcePatternType.PREFIXED)),
            ACL(BOB, "127.0.0.1", ACLOperation.READ, ACLPermissionType.DENY,
                ResourcePattern(KRT.GROUP, "*")),
        ]
        res = admin.create_acls(acls)
        assert res["failed"] == [] and res["succeeded"] == acls, res
        want = sorted(map(_kp_key, acls))

        def desc(rt=KRT.ANY, name=None, pt=ACLResourcePatternType.ANY, principal=None,
                 op=ACLOperation.ANY, perm=ACLPermissionType.ANY):
            got, err = admin.describe_acls(ACLFilter(principal, None, op, perm,
                                                     ResourcePatternFilter(rt, name, pt)))
            assert err.__name__ == "NoError", err
            return sorted(map(_kp_key, got))

        assert desc() == want
        assert desc(KRT.TOPIC, "orders", ACLResourcePatternType.MATCH) == \
            sorted(map(_kp_key, acls[:2]))
        assert desc(KRT.TOPIC, "orders", ACLResourcePatternType.LITERAL) == [_kp_key(acls[0])]
        assert desc(KRT.TOPIC, "ord", ACLResourcePatternType.PREFIXED) == [_kp_key(acls[1])]
        assert desc(principal=BOB) == [_kp_key(acls[2])]
        assert desc(perm=ACLPermissionType.DENY) == [_kp_key(acls[2])]
        assert desc(op=ACLOperation.WRITE) == [_kp_key(acls[1])]

        flt = ACLFilter(ALICE, None, ACLOperation.ANY, ACLPermissionType.ANY,
                        ResourcePatternFilter(KRT.TOPIC, None, ACLResourcePatternType.ANY))
        [(f, matched, err)] = admin.delete_acls([flt])
        assert f is flt and err.__name__ == "NoError", (f, err)
        assert sorted(map(_kp_key, matched)) == sorted(map(_kp_key, acls[:2]))
        assert desc() == [_kp_key(acls[2])]
    finally:
        admin.close()


# =========================================================================== who may manage ACLs
def test_non_super_user_cannot_manage_acls(acl_broker):
    """CreateAcls/DeleteAcls need ALTER on the cluster, DescribeAcls DESCRIBE: alice gets
    CLUSTER_AUTHORIZATION_FAILED in both admin clients until she is granted them."""
    from kafka.errors import ClusterAuthorizationFailedError
    admin = cadmin(acl_broker)
    alice = cadmin(acl_broker, "alice", mech(1))
    b = topic_acl("t", ALICE, AclOperation.READ)
    assert admin_error(alice.create_acls([b], request_timeout=OP_TIMEOUT)[b]).code() == \
        KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # librdkafka drops DescribeAcls' top-level error (rd_kafka_DescribeAclsResponse_parse
    # reads error_code but never fails the result with it): the refusal is an empty list.
    # kafka-python below raises the error the broker sent.
    assert describe(alice) == []
    f = afilter()
    assert admin_error(alice.delete_acls([f], request_timeout=OP_TIMEOUT)[f]).code() == \
        KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert describe(admin) == []

    (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
     ResourcePattern, ResourcePatternFilter, KRT) = _kp_types()
    kp = kpadmin(acl_broker, "alice", mech(2))
    try:
        kacl = ACL(ALICE, "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                   ResourcePattern(KRT.TOPIC, "t"))
        res = kp.create_acls([kacl])
        assert res["succeeded"] == [] and res["failed"] == [ClusterAuthorizationFailedError], \
            res
        with pytest.raises(ClusterAuthorizationFailedError):
            kp.describe_acls(ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                       ResourcePatternFilter(KRT.ANY, None,
                                                             ACLResourcePatternType.ANY)))
    finally:
        kp.close()

    # ALTER on the cluster lets alice create and delete; describing needs DESCRIBE, which
    # ALTER implies.
    alter = binding(CLUSTER, "kafka-cluster", ALICE, AclOperation.ALTER)
    create_acls(admin, [alter])
    create_acls(alice, [b])
    assert describe(alice) == sorted([alter, b])
    res = alice.delete_acls([afilter(ResourceType.TOPIC)], request_timeout=OP_TIMEOUT)
    assert [x.result(timeout=OP_TIMEOUT) for x in res.values()] == [[b]]


def test_security_disabled_without_authorizer(acl_broker_factory):
    """Without an authorizer every ACL request answers SECURITY_DISABLED (54)."""
    from kafka.errors import SecurityDisabledError
    broker = acl_broker_factory(authorizer=False)
    admin = cadmin(broker)
    b = topic_acl("t", ALICE, AclOperation.READ)
    err = admin_error(admin.create_acls([b], request_timeout=OP_TIMEOUT)[b])
    assert err.code() == KafkaError.SECURITY_DISABLED, err
    assert describe(admin) == []  # librdkafka drops the error (see above); kafka-python:
    f = afilter()
    err = admin_error(admin.delete_acls([f], request_timeout=OP_TIMEOUT)[f])
    assert err.code() == KafkaError.SECURITY_DISABLED, err

    (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
     ResourcePattern, ResourcePatternFilter, KRT) = _kp_types()
    kp = kpadmin(broker)
    try:
        res = kp.create_acls([ACL(ALICE, "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                                  ResourcePattern(KRT.TOPIC, "t"))])
        assert res["failed"] == [SecurityDisabledError], res
        with pytest.raises(SecurityDisabledError):
            kp.describe_acls(ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                       ResourcePatternFilter(KRT.ANY, None,
                                                             ACLResourcePatternType.ANY)))
    finally:
        kp.close()


# =========================================================================== enforcement
@pytest.mark.parametrize("client", list(CLIENTS))
def test_alice_produces_and_consumes_with_acls(acl_broker, topic, client):
    """READ+WRITE on the topic and READ on the group: produce, group-consume and commit,
    byte-exact."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    group = f"grp-{topic}"
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.WRITE),
                        topic_acl(topic, ALICE, AclOperation.READ),
                        group_acl(group, ALICE, AclOperation.READ)])
    i = list(CLIENTS).index(client)
    bootstrap, conf = conn(acl_broker, client, "alice", mech(i))
    recs = short_records(seed=30 + i)
    kc = CLIENTS[client]
    check_offsets("all", kc.produce(bootstrap, topic, recs, codec="lz4", conf=conf), 0)
    got, committed = group_consume(client, bootstrap, conf, topic, group, len(recs))
    assert_same(got, recs)
    assert committed == len(recs)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_bob_is_refused(acl_broker, topic, client):
    """bob has no ACL on alice's topic: Metadata answers TOPIC_AUTHORIZATION_FAILED for it
    and each client fails the send with its topic authorization error. With DESCRIBE (and
    no READ/WRITE) he sees the topic, and the Produce and Fetch responses refuse him with
    the same error. The topic keeps only what alice wrote."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    open_nogroup(admin)
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.WRITE)])
    recs = [Rec(b"k", b"alice's", (), now_ms())]
    i = list(CLIENTS).index(client)
    bootstrap, conf = conn(acl_broker, client, "alice", mech(i))
    CLIENTS[client].produce(bootstrap, topic, recs, conf=conf)
    bootstrap, conf = conn(acl_broker, client, "bob", mech(i + 1))
    produce_refused(client, bootstrap, conf, topic)
    create_acls(admin, [topic_acl(topic, BOB, AclOperation.DESCRIBE)])
    produce_refused(client, bootstrap, conf, topic)
    consume_refused(client, bootstrap, conf, topic)
    adm_bootstrap, adm_conf = conn(acl_broker, "confluent", "admin")
    assert_same(CLIENTS["confluent"].consume(adm_bootstrap, topic, 0, 0, 1, conf=adm_conf),
                recs)


def test_describe_without_write_refused_by_produce(acl_broker, topic):
    """bob may DESCRIBE (and READ) the topic, so Metadata shows it: the refusal comes from
    the Produce response itself, and fetching works."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    open_nogroup(admin)
    create_acls(admin, [topic_acl(topic, BOB, AclOperation.READ)])  # READ implies DESCRIBE
    bootstrap, conf = conn(acl_broker, "confluent", "bob")
    err, _ = confluent_produce_error(bootstrap, conf, topic)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    md = cadmin(acl_broker, "bob").list_topics(topic, timeout=OP_TIMEOUT)
    assert md.topics[topic].error is None and list(md.topics[topic].partitions) == [0]
    assert CLIENTS["confluent"].consume(bootstrap, topic, 0, 0, 0, conf=conf) == []


def test_prefixed_acls(acl_broker, topic):
    """PREFIXED ALLOWs apply to every topic (and group) that starts with the prefix."""
    admin = cadmin(acl_broker)
    mine, other = f"alice-{topic}", f"alic-{topic}"
    create_topics(admin, mine, other)
    create_acls(admin, [
        topic_acl("alice-", ALICE, AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED),
        topic_acl("alice-", ALICE, AclOperation.READ, pattern=ResourcePatternType.PREFIXED),
        group_acl("alice-", ALICE, AclOperation.READ, pattern=ResourcePatternType.PREFIXED)])
    bootstrap, conf = conn(acl_broker, "confluent", "alice", mech(2))
    recs = short_records(seed=41)
    check_offsets("all", CLIENTS["confluent"].produce(bootstrap, mine, recs, conf=conf), 0)
    got, committed = confluent_group_consume(bootstrap, conf, mine, f"alice-g-{topic}",
                                             len(recs))
    assert_same(got, recs)
    assert committed == len(recs)
    produce_refused("confluent", bootstrap, conf, other)
    # The prefix does not match a group outside it.
    err, _ = confluent_consume_error(bootstrap, conf, mine,
                                     KafkaError.GROUP_AUTHORIZATION_FAILED,
                                     group=f"alic-g-{topic}", subscribe=True)
    assert err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


@pytest.mark.parametrize("client", list(CLIENTS))
def test_deny_overrides_allow(acl_broker, topic, client):
    """ALLOW READ+WRITE for alice and DENY WRITE for User:*: produce is refused, READ works."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    open_nogroup(admin)
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.WRITE),
                        topic_acl(topic, ALICE, AclOperation.READ),
                        topic_acl(topic, "User:*", AclOperation.WRITE,
                                  perm=AclPermissionType.DENY)])
    recs = short_records(seed=50)
    CLIENTS["confluent"].produce(*conn(acl_broker, "confluent", "admin")[:1], topic, recs,
                                 conf=conn(acl_broker, "confluent", "admin")[1])
    bootstrap, conf = conn(acl_broker, client, "alice")
    produce_refused(client, bootstrap, conf, topic)
    assert_same(CLIENTS[client].consume(bootstrap, topic, 0, 0, len(recs), conf=conf), recs)


def test_deny_all_operations_beats_prefixed_allow(acl_broker, topic):
    """A DENY ALL on a LITERAL name wins over a PREFIXED ALLOW, for that name only."""
    admin = cadmin(acl_broker)
    a, b = f"pfx-{topic}-a", f"pfx-{topic}-b"
    create_topics(admin, a, b)
    create_acls(admin, [
        topic_acl("pfx-", ALICE, AclOperation.ALL, pattern=ResourcePatternType.PREFIXED),
        topic_acl(b, ALICE, AclOperation.ALL, perm=AclPermissionType.DENY)])
    bootstrap, conf = conn(acl_broker, "confluent", "alice")
    err, _ = confluent_produce_error(bootstrap, conf, a)
    assert err is None, err
    produce_refused("confluent", bootstrap, conf, b)
    # DENY ALL takes DESCRIBE too: b is not listed.
    md = cadmin(acl_broker, "alice").list_topics(timeout=OP_TIMEOUT)
    assert a in md.topics and b not in md.topics, sorted(md.topics)


def test_list_topics_filtered_by_describe(acl_broker, topic):
    """Metadata for all topics omits the ones bob cannot DESCRIBE; one he names explicitly
    comes back with TOPIC_AUTHORIZATION_FAILED."""
    admin = cadmin(acl_broker)
    visible, hidden, wild = f"{topic}-visible", f"{topic}-hidden", f"{topic}-w"
    create_topics(admin, visible, hidden, wild)
    create_acls(admin, [topic_acl(visible, BOB, AclOperation.DESCRIBE),
                        topic_acl(wild, "User:*", AclOperation.READ),
                        topic_acl(hidden, ALICE, AclOperation.DESCRIBE)])
    assert {visible, hidden, wild} <= set(admin.list_topics(timeout=OP_TIMEOUT).topics)
    bob = cadmin(acl_broker, "bob", mech(1))
    md = bob.list_topics(timeout=OP_TIMEOUT)
    assert {visible, wild} <= set(md.topics), sorted(md.topics)
    assert hidden not in md.topics, sorted(md.topics)
    assert not [t for t in md.topics if t.startswith("__")], sorted(md.topics)
    named = bob.list_topics(hidden, timeout=OP_TIMEOUT).topics[hidden]
    assert named.error is not None and \
        named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, named.error

    # kafka-python's admin client lists the same.
    kp = kpadmin(acl_broker, "bob", mech(2))
    try:
        listed = set(kp.list_topics())
        assert {visible, wild} <= listed and hidden not in listed, sorted(listed)
    finally:
        kp.close()


def test_auto_create_needs_create(acl_broker, topic):
    """Producing to a missing topic auto-creates it only with CREATE (on the topic or the
    cluster); DESCRIBE+WRITE alone gets TOPIC_AUTHORIZATION_FAILED and no topic."""
    admin = cadmin(acl_broker)
    create_acls(admin, [
        topic_acl("auto-", ALICE, AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED),
        topic_acl("auto-ok-", ALICE, AclOperation.CREATE, pattern=ResourcePatternType.PREFIXED)])
    bootstrap, conf = conn(acl_broker, "confluent", "alice")
    no, ok = f"auto-no-{topic}", f"auto-ok-{topic}"
    produce_refused("confluent", bootstrap, conf, no)
    err, _ = confluent_produce_error(bootstrap, conf, ok)
    assert err is None, err
    topics = admin.list_topics(timeout=OP_TIMEOUT).topics
    assert ok in topics and no not in topics, sorted(topics)


def test_group_denied(acl_broker, topic):
    """READ on the topic but no ACL on the group: each client's group authorization error
    when it joins; ListGroups as alice omits the group, DeleteGroups needs DELETE."""
    from kafka.errors import GroupAuthorizationFailedError as KPGroupErr
    from aiokafka.errors import GroupAuthorizationFailedError as AioGroupErr
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    group = f"g-{topic}"
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.READ)])
    b, c = conn(acl_broker, "confluent", "alice")
    err, _ = confluent_consume_error(b, c, topic, KafkaError.GROUP_AUTHORIZATION_FAILED,
                                     group=group, subscribe=True)
    assert err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    b, c = conn(acl_broker, "kafka-python", "alice")
    e = kp_consume_raises(b, c, topic, group=group)
    assert isinstance(e, KPGroupErr), repr(e)
    e = asyncio.run(_aio_consume_raises(b, c, topic, group=group))
    assert isinstance(e, AioGroupErr), repr(e)

    # A group admin made (as a super user, its members are gone) is not listed to alice,
    # and she may not delete it.
    recs = [Rec(b"k", b"v", (), now_ms())]
    CLIENTS["confluent"].produce(*conn(acl_broker, "confluent", "admin")[:1], topic, recs,
                                 conf=conn(acl_broker, "confluent", "admin")[1])
    adm_b, adm_c = conn(acl_broker, "confluent", "admin")
    got, committed = confluent_group_consume(adm_b, adm_c, topic, group, 1)
    assert_same(got, recs)
    listed = admin.list_consumer_groups(request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
    assert group in {g.group_id for g in listed.valid}
    alice = cadmin(acl_broker, "alice")
    listed = alice.list_consumer_groups(request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
    assert group not in {g.group_id for g in listed.valid}, listed.valid
    err = admin_error(alice.delete_consumer_groups([group], request_timeout=OP_TIMEOUT)[group])
    assert err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err
    # DESCRIBE on the group lists it; DELETE lets her delete it.
    create_acls(admin, [group_acl(group, ALICE, AclOperation.DELETE)])
    listed = alice.list_consumer_groups(request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
    assert group in {g.group_id for g in listed.valid}, listed.valid
    fut = alice.delete_consumer_groups([group], request_timeout=OP_TIMEOUT)[group]
    assert fut.result(timeout=OP_TIMEOUT) is None


@pytest.mark.parametrize("client", list(CLIENTS))
def test_transactional_id_denied(acl_broker, topic, client):
    """WRITE on the topic but not on the transactional id: InitProducerId answers
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED, each client raises its error for it."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.WRITE),
                        binding(ResourceType.TRANSACTIONAL_ID, "ok-", ALICE,
                                AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED)])
    txid = f"tx-{topic}"
    bootstrap, conf = conn(acl_broker, client, "alice")
    if client == "confluent":
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txid, **conf})
        with pytest.raises(KafkaException) as ei:
            p.init_transactions(ERROR_WAIT)
        assert ei.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, \
            ei.value.args[0]
        # The control: a transactional id under the granted prefix commits.
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"ok-{txid}", **conf})
        p.init_transactions(ERROR_WAIT)
        p.begin_transaction()
        p.produce(topic, b"committed")
        p.commit_transaction(ERROR_WAIT)
    elif client == "kafka-python":
        from kafka import KafkaProducer
        from kafka.errors import TransactionalIdAuthorizationFailedError
        p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txid,
                          request_timeout_ms=5000, max_block_ms=int(ERROR_WAIT * 1000), **conf)
        try:
            with pytest.raises(TransactionalIdAuthorizationFailedError):
                p.init_transactions()
        finally:
            p.close(timeout=2)
    else:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import TransactionalIdAuthorizationFailed

        async def run():
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txid,
                                 request_timeout_ms=5000, **conf)
            try:
                with pytest.raises(TransactionalIdAuthorizationFailed):
                    await asyncio.wait_for(p.start(), ERROR_WAIT)
            finally:
                await p.stop()
        asyncio.run(run())


def confluent_idempotent_produce(bootstrap, conf, topic, timeout=ERROR_WAIT):
    """One record from an idempotent confluent producer: returns (delivery error or None,
    the fatal error if the producer hit one). Waits (bounded) for either."""
    errors, reports = [], []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                  "error_cb": errors.append, "message.timeout.ms": int(timeout * 1000),
                  **conf})
    try:
        p.produce(topic, b"v", on_delivery=lambda err, _m: reports.append(err))
        deadline = time.monotonic() + timeout + 5
        while not reports and not [e for e in errors if e.fatal()] \
                and time.monotonic() < deadline:
            try:
                p.poll(0.05)
            except KafkaException as e:  # confluent-kafka 2.16 raises a fatal error in poll
                errors.append(e.args[0])
        fatal = [e for e in errors if e.fatal()]
        assert reports or fatal, f"neither a delivery report nor a fatal error; {errors}"
        if not fatal:
            p.purge()
            p.poll(0)
    finally:
        del p
    return (reports[0] if reports else None), (fatal[0] if fatal else None)


def test_idempotent_producer_needs_idempotent_write_or_some_topic_write(acl_broker, topic):
    """InitProducerId without a transactional id: a principal with no IDEMPOTENT_WRITE on
    the cluster and no WRITE on any topic gets CLUSTER_AUTHORIZATION_FAILED (a fatal error
    to librdkafka). WRITE on some other topic is enough for the producer id (the record is
    then refused by the topic's own check); so is IDEMPOTENT_WRITE."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    create_acls(admin, [topic_acl(topic, BOB, AclOperation.READ),
                        topic_acl(topic, ALICE, AclOperation.READ)])
    for user in ("bob", "alice"):
        bootstrap, conf = conn(acl_broker, "confluent", user)
        err, fatal = confluent_idempotent_produce(bootstrap, conf, topic)
        assert fatal is not None and fatal.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, \
            (user, err, fatal)
    create_acls(admin, [topic_acl(f"{topic}-other", BOB, AclOperation.WRITE),
                        binding(CLUSTER, "kafka-cluster", ALICE, AclOperation.IDEMPOTENT_WRITE)])
    err, fatal = confluent_idempotent_produce(*conn(acl_broker, "confluent", "bob"), topic)
    assert fatal is None and err is not None and \
        err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (err, fatal)
    err, fatal = confluent_idempotent_produce(*conn(acl_broker, "confluent", "alice"), topic)
    assert fatal is None and err is not None and \
        err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (err, fatal)
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.WRITE)])
    assert confluent_idempotent_produce(*conn(acl_broker, "confluent", "alice"), topic) == \
        (None, None)


def test_host_specific_acls(acl_broker, topic):
    """An ALLOW for another host does not apply to 127.0.0.1; one for 127.0.0.1 does."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.WRITE, host="10.9.8.7")])
    bootstrap, conf = conn(acl_broker, "confluent", "alice")
    produce_refused("confluent", bootstrap, conf, topic)
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.WRITE, host="127.0.0.1")])
    err, _ = confluent_produce_error(bootstrap, conf, topic)
    assert err is None, err


@pytest.mark.klamm_only("on the Kafka reference User:ANONYMOUS is a super user (inter-broker)")
def test_plaintext_clients_are_anonymous(acl_broker, topic):
    """PLAINTEXT clients are User:ANONYMOUS: refused until an ACL names that principal."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    bootstrap, conf = conn(acl_broker, "confluent", None)
    produce_refused("confluent", bootstrap, conf, topic)
    create_acls(admin, [topic_acl(topic, ANON, AclOperation.WRITE),
                        topic_acl(topic, ANON, AclOperation.READ)])
    recs = short_records(seed=60)
    check_offsets("all", CLIENTS["kafka-python"].produce(bootstrap, topic, recs), 0)
    assert_same(CLIENTS["aiokafka"].consume(bootstrap, topic, 0, 0, len(recs)), recs)


def test_allow_everyone_if_no_acl_found(acl_broker_factory, topic):
    """allow.everyone.if.no.acl.found=true: a topic with no ACL is open to bob, one with an
    ACL (for alice only) is not."""
    broker = acl_broker_factory(allow_everyone=True)
    admin = cadmin(broker)
    guarded = f"{topic}-guarded"
    create_topics(admin, topic, guarded)
    create_acls(admin, [topic_acl(guarded, ALICE, AclOperation.WRITE)])
    bootstrap, conf = conn(broker, "kafka-python", "bob")
    recs = short_records(seed=70)
    check_offsets("all", CLIENTS["kafka-python"].produce(bootstrap, topic, recs, conf=conf), 0)
    produce_refused("kafka-python", bootstrap, conf, guarded)


def test_config_acls(acl_broker, topic):
    """DescribeConfigs needs DESCRIBE_CONFIGS, AlterConfigs ALTER_CONFIGS (which implies
    DESCRIBE_CONFIGS)."""
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    alice = cadmin(acl_broker, "alice")
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    err = admin_error(alice.describe_configs([res], request_timeout=OP_TIMEOUT)[res])
    assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    create_acls(admin, [topic_acl(topic, ALICE, AclOperation.ALTER_CONFIGS)])
    got = alice.describe_configs([res], request_timeout=OP_TIMEOUT)[res].result(OP_TIMEOUT)
    assert "retention.ms" in got
    alter = ConfigResource(ConfigResource.Type.TOPIC, topic,
                           set_config={"retention.ms": "123456"})
    assert alice.alter_configs([alter], request_timeout=OP_TIMEOUT)[alter] \
        .result(OP_TIMEOUT) is None
    got = admin.describe_configs([res], request_timeout=OP_TIMEOUT)[res].result(OP_TIMEOUT)
    assert got["retention.ms"].value == "123456"


def test_create_and_delete_topics_acls(acl_broker, topic):
    """CreateTopics needs CREATE (cluster or topic), DeleteTopics DELETE on the topic."""
    admin = cadmin(acl_broker)
    alice = cadmin(acl_broker, "alice")
    mine = f"mine-{topic}"
    fut = alice.create_topics([NewTopic(topic, 1, 1)], request_timeout=OP_TIMEOUT)[topic]
    assert admin_error(fut).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    create_acls(admin, [topic_acl("mine-", ALICE, AclOperation.CREATE,
                                  pattern=ResourcePatternType.PREFIXED)])
    create_topics(alice, mine)
    fut = alice.delete_topics([mine], request_timeout=OP_TIMEOUT)[mine]
    assert admin_error(fut).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    create_acls(admin, [topic_acl(mine, ALICE, AclOperation.DELETE)])
    assert alice.delete_topics([mine], request_timeout=OP_TIMEOUT)[mine] \
        .result(OP_TIMEOUT) is None


def test_acls_survive_restart(acl_broker, topic):
    admin = cadmin(acl_broker)
    create_topics(admin, topic)
    acls = sorted([topic_acl(topic, ALICE, AclOperation.WRITE),
                   topic_acl(topic, ALICE, AclOperation.READ),
                   topic_acl("x-", BOB, AclOperation.DESCRIBE,
                             pattern=ResourcePatternType.PREFIXED),
                   topic_acl(topic, BOB, AclOperation.WRITE, perm=AclPermissionType.DENY)])
    create_acls(admin, acls)
    gone = topic_acl("deleted", BOB, AclOperation.READ)
    create_acls(admin, [gone])
    res = admin.delete_acls([afilter(ResourceType.TOPIC, "deleted",
                                     ResourcePatternType.LITERAL)], request_timeout=OP_TIMEOUT)
    assert [f.result(OP_TIMEOUT) for f in res.values()] == [[gone]]
    del admin
    acl_broker.restart()
    admin = cadmin(acl_broker)
    assert describe(admin) == acls
    bootstrap, conf = conn(acl_broker, "confluent", "alice")
    recs = short_records(seed=80)
    check_offsets("all", CLIENTS["confluent"].produce(bootstrap, topic, recs, conf=conf), 0)
    produce_refused("confluent", *conn(acl_broker, "confluent", "bob"), topic)
