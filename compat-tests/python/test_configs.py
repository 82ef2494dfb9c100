"""Topic and broker configs: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and
CreateTopics with configs, through confluent-kafka's AdminClient, kafka-python's
KafkaAdminClient and aiokafka's AIOKafkaAdminClient.

Proves: Kafka's names and defaults for a topic that sets nothing (source DEFAULT_CONFIG,
is_default, not read-only), values set by CreateTopics / AlterConfigs /
IncrementalAlterConfigs reported as DYNAMIC_TOPIC_CONFIG with the broker default behind
them as a synonym, Kafka's normalised values (`compact, delete` -> `compact,delete`,
`TRUE` -> `true`), config types (DescribeConfigs v3+), the requested-keys filter;
INVALID_CONFIG for unknown names and bad values (retention.ms=-2 or `abc`, INT overflow,
cleanup.policy outside compact/delete, ...) on every path with nothing applied, APPEND and
SUBTRACT on LIST configs only (Kafka's default list as the base), DELETE back to the
default, AlterConfigs replacing the whole set, validate_only changing nothing,
UNKNOWN_TOPIC_OR_PARTITION for unknown topics, the broker resource "1" read-only
(INVALID_REQUEST on alter, STATIC_BROKER_CONFIG for a flag set on the command line and
inherited by topics), configs surviving SIGTERM and SIGKILL restarts and vanishing with
a deleted topic, and the topic's max.message.bytes really limiting produced batches
(MSG_SIZE_TOO_LARGE / MessageSizeTooLargeError, rejected batches not stored).

Known differences from Kafka found by this suite were fixed; the tests at the end pin them (synonym chains,
validators Klamm lacks or adds, documentation sent as "" instead of null).
"""
import asyncio
import os
import signal
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, ConfigSource, NewTopic)

from kclients import Confluent as CK, Rec, assert_same

DEFAULT = ConfigSource.DEFAULT_CONFIG.value
DYNAMIC_TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
STATIC_BROKER = ConfigSource.STATIC_BROKER_CONFIG.value

# Kafka 4.x topic-config defaults (LogConfig / ServerLogConfigs) for a broker with no
# server.properties overrides.
KAFKA_TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
    "index.interval.bytes": "4096",
    "max.compaction.lag.ms": "9223372036854775807",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0",
    "segment.ms": "604800000",
    "unclean.leader.election.enable": "false",
}


# --------------------------------------------------------------------------- helpers
def admin(broker):
    conf = {"bootstrap.servers": broker.bootstrap}
    if os.environ.get("KLAMM_RDKAFKA_DEBUG"):
        conf["debug"] = os.environ["KLAMM_RDKAFKA_DEBUG"]
    return AdminClient(conf)


def create(adm, topic, config=None, validate_only=False):
    fut = adm.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                      config=config or {})],
                            validate_only=validate_only)[topic]
    return fut.result(timeout=15)


def error_of(fut):
    """The KafkaError a failed admin future carries."""
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=15)
    return ei.value.args[0]


def topic_res(topic):
    return ConfigResource(ConfigResource.Type.TOPIC, topic)


def describe(adm, topic):
    r = topic_res(topic)
    return adm.describe_configs([r], request_timeout=10)[r].result(timeout=15)


def describe_broker(adm, broker_id="1"):
    r = ConfigResource(ConfigResource.Type.BROKER, broker_id)
    return adm.describe_configs([r], request_timeout=10)[r].result(timeout=15)


def values(entries):
    return {name: e.value for name, e in entries.items()}


def overrides(entries):
    """{name: value} of what the topic sets itself (DYNAMIC_TOPIC_CONFIG)."""
    return {n: e.value for n, e in entries.items() if e.source == DYNAMIC_TOPIC}


def incremental(adm, topic, ops, validate_only=False):
    """ops: [(name, AlterConfigOpType, value)] on one topic; returns its future."""
    r = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(n, v, incremental_operation=op) for n, op, v in ops])
    return adm.incremental_alter_configs([r], validate_only=validate_only,
                                         request_timeout=10)[r]


def legacy_alter(adm, restype, name, configs, validate_only=False):
    r = ConfigResource(restype, name, set_config=configs)
    return adm.alter_configs([r], validate_only=validate_only, request_timeout=10)[r]


def settled(fn, want, timeout=10.0):
    """fn() called again (bounded) until it returns `want`; returns its last value.
    Kafka answers an admin change once its controller has committed it, and applies it to
    the broker's metadata cache (what DescribeConfigs and Metadata answer from) a moment
    later; Klamm answers from the new state at once, so there this is a single call."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def describe_until(adm, topic, pred, timeout=10.0):
    """describe(), again (bounded, see settled) until pred(entries) holds; the last entries."""
    deadline = time.monotonic() + timeout
    while True:
        entries = describe(adm, topic)
        if pred(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def topic_exists(adm, topic):
    return topic in adm.list_topics(timeout=10).topics


def watermarks(bootstrap, topic):
    c = CK.consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def ck_produce_one(bootstrap, topic, value):
    """Produce one record with confluent-kafka; returns (error or None, offset)."""
    p = CK.producer(bootstrap, **{"acks": "all", "linger.ms": 0, "retries": 0,
                                  "message.timeout.ms": 10000})
    out = []
    p.produce(topic, key=b"k", value=value,
              on_delivery=lambda err, msg: out.append((err, msg.offset())))
    assert p.flush(15) == 0, "message not delivered"
    assert len(out) == 1
    return out[0]


def kp_admin(broker):
    from kafka import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)


def kp_describe(kadm, topic, keys=None, synonyms=False):
    from kafka.admin import ConfigResource as KRes
    configs = None if keys is None else {k: None for k in keys}
    res = kadm.describe_configs([KRes("TOPIC", topic, configs)], include_synonyms=synonyms,
                                config_filter="all")
    return res["topic"][topic]


# --------------------------------------------------------------------------- describe
def test_describe_defaults_of_created_and_auto_created_topics(broker, topic):
    adm = admin(broker)
    create(adm, topic)
    auto = topic + "-auto"
    # Metadata auto-creates it. Kafka's first answer for it is UNKNOWN_TOPIC_OR_PARTITION
    # (created through the controller meanwhile), Klamm's already has it.
    md = adm.list_topics(auto, timeout=10)
    deadline = time.monotonic() + 10
    while md.topics[auto].error is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        md = adm.list_topics(auto, timeout=10)
    assert md.topics[auto].error is None
    for name in (topic, auto):
        entries = describe(adm, name)
        assert {n: entries[n].value for n in KAFKA_TOPIC_DEFAULTS} == KAFKA_TOPIC_DEFAULTS
        for n, e in entries.items():
            assert e.source == DEFAULT, (n, e.source)
            assert e.is_default, n
            assert not e.is_read_only, n
            assert not e.is_sensitive, n
            assert not e.is_synonym, n
        assert overrides(entries) == {}


def test_create_topic_with_configs_then_describe_with_synonyms(broker, topic):
    adm = admin(broker)
    assert create(adm, topic, {"retention.ms": "3600000", "cleanup.policy": "compact, delete",
                               "max.message.bytes": "2048", "preallocate": "TRUE",
                               "min.cleanable.dirty.ratio": "0.25"}) is None
    entries = describe(adm, topic)
    # Kafka reports the parsed value: lists joined by ",", booleans in lower case.
    assert overrides(entries) == {"retention.ms": "3600000", "cleanup.policy": "compact,delete",
                                  "max.message.bytes": "2048", "preallocate": "true",
                                  "min.cleanable.dirty.ratio": "0.25"}
    for n in ("retention.ms", "cleanup.policy", "max.message.bytes", "preallocate"):
        assert not entries[n].is_default, n
        assert not entries[n].is_read_only, n
    # Untouched configs keep Kafka's defaults.
    assert entries["retention.bytes"].value == "-1"
    assert entries["retention.bytes"].source == DEFAULT
    assert entries["compression.type"].value == "producer"

    # Synonyms: the topic's own value first, then the broker config it falls back to.
    mmb = entries["max.message.bytes"].synonyms
    assert {n: (s.value, s.source) for n, s in mmb.items()} == {
        "max.message.bytes": ("2048", DYNAMIC_TOPIC),
        "message.max.bytes": ("1048588", DEFAULT)}
    assert all(s.is_synonym for s in mmb.values())
    cp = entries["cleanup.policy"].synonyms
    assert {n: (s.value, s.source) for n, s in cp.items()} == {
        "cleanup.policy": ("compact,delete", DYNAMIC_TOPIC),
        "log.cleanup.policy": ("delete", DEFAULT)}
    # A config the topic does not set has only the broker default as its synonym.
    rb = entries["retention.bytes"].synonyms
    assert {n: (s.value, s.source) for n, s in rb.items()} == {
        "log.retention.bytes": ("-1", DEFAULT)}


def test_describe_unknown_topic(broker, topic):
    adm = admin(broker)
    r = topic_res(topic + "-missing")
    err = error_of(adm.describe_configs([r], request_timeout=10)[r])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # DescribeConfigs must not auto-create the topic.
    assert not topic_exists(adm, topic + "-missing")


def test_describe_broker_is_read_only(broker):
    adm = admin(broker)
    entries = describe_broker(adm)
    assert entries["node.id"].value == "1"
    assert entries["broker.id"].value == "1"
    assert entries["message.max.bytes"].value == "1048588"
    assert entries["message.max.bytes"].source == DEFAULT
    assert entries["message.max.bytes"].is_default
    assert str(broker.port) in entries["advertised.listeners"].value
    for n in ("node.id", "broker.id", "log.dirs"):  # read-only in Kafka too
        assert entries[n].is_read_only, n
    assert entries["log.dirs"].value == broker.data_dir


# --------------------------------------------------------------------------- create topics
BAD_VALUES = [
    ("no.such.config", "1"),
    ("retention.ms", "-2"),
    ("retention.ms", "abc"),
    ("retention.bytes", "1.5"),
    ("max.message.bytes", "99999999999"),  # INT overflow
    ("segment.bytes", "10"),  # below Kafka 3.x's minimum of 14 (Klamm keeps 3.x's bound)
    ("cleanup.policy", "shred"),
    ("cleanup.policy", "compact,shred"),
    ("compression.type", "brotli"),
    ("message.timestamp.type", "WallClock"),
    ("min.cleanable.dirty.ratio", "1.5"),
    ("preallocate", "maybe"),
    ("min.insync.replicas", "0"),
]


@pytest.mark.parametrize("name,value", BAD_VALUES, ids=[f"{n}={v}" for n, v in BAD_VALUES])
def test_create_topic_with_invalid_config(broker, topic, name, value):
    adm = admin(broker)
    for validate_only in (True, False):
        fut = adm.create_topics([NewTopic(topic, 1, 1, config={name: value})],
                                validate_only=validate_only)[topic]
        assert error_of(fut).code() == KafkaError.INVALID_CONFIG, (name, value, validate_only)
    assert not topic_exists(adm, topic)


def test_create_topic_validate_only_with_configs_creates_nothing(broker, topic):
    adm = admin(broker)
    assert create(adm, topic, {"retention.ms": "1000", "cleanup.policy": "compact"},
                  validate_only=True) is None
    assert not topic_exists(adm, topic)
    r = topic_res(topic)
    assert error_of(adm.describe_configs([r])[r]).code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # Creating it for real afterwards gets exactly the configs given then.
    create(adm, topic, {"retention.bytes": "1000000"})
    assert overrides(describe(adm, topic)) == {"retention.bytes": "1000000"}


# --------------------------------------------------------------------------- incremental
def test_incremental_set_and_delete(broker, topic):
    adm = admin(broker)
    create(adm, topic, {"retention.bytes": "5000000"})
    S, D = AlterConfigOpType.SET, AlterConfigOpType.DELETE
    assert incremental(adm, topic, [("retention.ms", S, "86400000"),
                                    ("compression.type", S, "zstd")]).result(15) is None
    entries = describe(adm, topic)
    # Incremental: what the request does not name stays as it was.
    assert overrides(entries) == {"retention.bytes": "5000000", "retention.ms": "86400000",
                                  "compression.type": "zstd"}
    assert entries["retention.ms"].source == DYNAMIC_TOPIC
    assert not entries["retention.ms"].is_default

    incremental(adm, topic, [("retention.ms", S, "-1")]).result(15)  # -1: no limit
    assert describe(adm, topic)["retention.ms"].value == "-1"

    incremental(adm, topic, [("retention.ms", D, None),
                             ("retention.bytes", D, None)]).result(15)
    entries = describe(adm, topic)
    assert overrides(entries) == {"compression.type": "zstd"}
    assert entries["retention.ms"].value == "604800000"
    assert entries["retention.ms"].source == DEFAULT
    assert entries["retention.ms"].is_default
    assert entries["retention.bytes"].value == "-1"
    # Deleting a config the topic does not set is not an error.
    incremental(adm, topic, [("retention.ms", D, None)]).result(15)
    assert overrides(describe(adm, topic)) == {"compression.type": "zstd"}


def test_incremental_append_and_subtract_on_list_config(broker, topic):
    adm = admin(broker)
    create(adm, topic)
    A, SUB = AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT
    # APPEND starts from Kafka's default list ("delete").
    incremental(adm, topic, [("cleanup.policy", A, "compact")]).result(15)
    assert describe(adm, topic)["cleanup.policy"].value == "delete,compact"
    # Appending a value already there keeps the list as it is.
    incremental(adm, topic, [("cleanup.policy", A, "compact")]).result(15)
    assert describe(adm, topic)["cleanup.policy"].value == "delete,compact"
    incremental(adm, topic, [("cleanup.policy", SUB, "delete")]).result(15)
    entries = describe(adm, topic)
    assert entries["cleanup.policy"].value == "compact"
    assert entries["cleanup.policy"].source == DYNAMIC_TOPIC
    # APPEND of a value outside compact/delete is refused and changes nothing.
    err = error_of(incremental(adm, topic, [("cleanup.policy", A, "shred")]))
    assert err.code() == KafkaError.INVALID_CONFIG, err
    assert describe(adm, topic)["cleanup.policy"].value == "compact"


@pytest.mark.parametrize("op", [AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT],
                         ids=["APPEND", "SUBTRACT"])
def test_incremental_list_ops_on_non_list_config(broker, topic, op):
    adm = admin(broker)
    create(adm, topic, {"retention.ms": "1000"})
    for name, value in [("retention.ms", "1000"), ("max.message.bytes", "10"),
                        ("compression.type", "gzip")]:
        err = error_of(incremental(adm, topic, [(name, op, value)]))
        assert err.code() == KafkaError.INVALID_CONFIG, (name, err)
    assert overrides(describe(adm, topic)) == {"retention.ms": "1000"}


@pytest.mark.parametrize("name,value", BAD_VALUES, ids=[f"{n}={v}" for n, v in BAD_VALUES])
def test_incremental_set_invalid_value(broker, topic, name, value):
    adm = admin(broker)
    create(adm, topic, {"retention.ms": "1000"})
    S = AlterConfigOpType.SET
    for validate_only in (True, False):
        # A valid change next to the bad one is not applied either.
        err = error_of(incremental(adm, topic, [("delete.retention.ms", S, "123456"), (name, S, value)],
                                   validate_only=validate_only))
        assert err.code() == KafkaError.INVALID_CONFIG, (validate_only, err)
    assert overrides(describe(adm, topic)) == {"retention.ms": "1000"}


def test_incremental_unknown_topic(broker, topic):
    adm = admin(broker)
    for validate_only in (False, True):
        err = error_of(incremental(adm, topic, [("retention.ms", AlterConfigOpType.SET, "1000")],
                                   validate_only=validate_only))
        assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, err
    assert not topic_exists(adm, topic)


def test_incremental_validate_only_changes_nothing(broker, topic):
    adm = admin(broker)
    create(adm, topic, {"cleanup.policy": "compact"})
    S, D, A = AlterConfigOpType.SET, AlterConfigOpType.DELETE, AlterConfigOpType.APPEND
    before = values(describe(adm, topic))
    assert incremental(adm, topic, [("retention.ms", S, "1000"), ("cleanup.policy", D, None),
                                    ("min.insync.replicas", S, "1")],
                       validate_only=True).result(15) is None
    assert incremental(adm, topic, [("cleanup.policy", A, "delete")],
                       validate_only=True).result(15) is None
    assert values(describe(adm, topic)) == before
    assert overrides(describe(adm, topic)) == {"cleanup.policy": "compact"}


# --------------------------------------------------------------------------- legacy alter
def test_alter_configs_replaces_the_whole_set(broker, topic):
    adm = admin(broker)
    create(adm, topic, {"retention.ms": "1000", "cleanup.policy": "compact"})
    T = ConfigResource.Type.TOPIC
    assert legacy_alter(adm, T, topic, {"max.message.bytes": "4096",
                                        "segment.ms": "3600000"}).result(15) is None
    want = {"max.message.bytes": "4096", "segment.ms": "3600000"}
    entries = describe_until(adm, topic, lambda e: overrides(e) == want)
    assert overrides(entries) == want
    # What the request left out is back to Kafka's default.
    assert entries["retention.ms"].value == "604800000"
    assert entries["retention.ms"].source == DEFAULT
    assert entries["cleanup.policy"].value == "delete"
    # An empty set clears every override.
    assert legacy_alter(adm, T, topic, {}).result(15) is None
    assert settled(lambda: overrides(describe(adm, topic)), {}) == {}


def test_alter_configs_errors_and_validate_only(broker, topic):
    adm = admin(broker)
    create(adm, topic, {"retention.ms": "1000"})
    T = ConfigResource.Type.TOPIC
    for configs in ({"no.such.config": "1"}, {"retention.ms": "-2"}, {"retention.ms": "abc"},
                    {"segment.ms": "60000", "cleanup.policy": "shred"}):
        for validate_only in (True, False):
            err = error_of(legacy_alter(adm, T, topic, configs, validate_only=validate_only))
            assert err.code() == KafkaError.INVALID_CONFIG, (configs, err)
    # validate_only accepts a valid set and changes nothing.
    assert legacy_alter(adm, T, topic, {"retention.ms": "5000"},
                        validate_only=True).result(15) is None
    assert overrides(describe(adm, topic)) == {"retention.ms": "1000"}
    err = error_of(legacy_alter(adm, T, topic + "-missing", {"retention.ms": "5000"}))
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert not topic_exists(adm, topic + "-missing")


# --------------------------------------------------------------------------- broker resource
def test_broker_configs_cannot_be_altered(broker):
    adm = admin(broker)
    B = ConfigResource.Type.BROKER
    before = values(describe_broker(adm))
    for name, value in [("node.id", "7"), ("log.dirs", "/tmp/elsewhere")]:
        r = ConfigResource(B, "1", incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
        err = error_of(adm.incremental_alter_configs([r], request_timeout=10)[r])
        assert err.code() == KafkaError.INVALID_REQUEST, (name, err)
        err = error_of(legacy_alter(adm, B, "1", {name: value}))
        assert err.code() == KafkaError.INVALID_REQUEST, (name, err)
        err = error_of(legacy_alter(adm, B, "1", {name: value}, validate_only=True))
        assert err.code() == KafkaError.INVALID_REQUEST, (name, err)
    assert values(describe_broker(adm)) == before


def test_static_broker_message_max_bytes(broker_factory, topic):
    b = broker_factory("--message-max-bytes", "2000")
    adm = admin(b)
    mmb = describe_broker(adm)["message.max.bytes"]
    assert (mmb.value, mmb.source, mmb.is_default) == ("2000", STATIC_BROKER, False)
    create(adm, topic)
    e = describe(adm, topic)["max.message.bytes"]
    assert (e.value, e.source, e.is_default) == ("2000", STATIC_BROKER, False)
    assert "message.max.bytes" in e.synonyms

    err, _ = ck_produce_one(b.bootstrap, topic, b"x" * 3000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    # The topic's own max.message.bytes wins over the broker's, also when larger.
    incremental(adm, topic, [("max.message.bytes", AlterConfigOpType.SET, "100000")]).result(15)
    e = describe(adm, topic)["max.message.bytes"]
    assert (e.value, e.source) == ("100000", DYNAMIC_TOPIC)
    err, offset = ck_produce_one(b.bootstrap, topic, b"y" * 3000)
    assert err is None and offset == 0, err


# --------------------------------------------------------------------------- max.message.bytes
def test_topic_max_message_bytes_limits_confluent_producer(broker, topic):
    adm = admin(broker)
    create(adm, topic)
    big = b"B" * 4000
    incremental(adm, topic, [("max.message.bytes", AlterConfigOpType.SET, "1024")]).result(15)
    err, _ = ck_produce_one(broker.bootstrap, topic, big)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    err, offset = ck_produce_one(broker.bootstrap, topic, b"small")
    assert err is None and offset == 0, err
    assert watermarks(broker.bootstrap, topic) == (0, 1)  # the rejected batch is not stored
    # Back to the default limit: the same record passes.
    incremental(adm, topic, [("max.message.bytes", AlterConfigOpType.DELETE, None)]).result(15)
    err, offset = ck_produce_one(broker.bootstrap, topic, big)
    assert err is None and offset == 1, err
    got = CK.consume(broker.bootstrap, topic, 0, 0, 2)
    assert_same(got, [Rec(b"k", b"small", (), got[0].timestamp), Rec(b"k", big, (), got[1].timestamp)])


def test_topic_max_message_bytes_limits_kafka_python_producer(broker, topic):
    from kafka import KafkaProducer
    from kafka.errors import MessageSizeTooLargeError
    adm = admin(broker)
    create(adm, topic, {"max.message.bytes": "1024"})
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, retries=0,
                      enable_idempotence=False, acks="all", request_timeout_ms=10000,
                      delivery_timeout_ms=15000)
    try:
        with pytest.raises(MessageSizeTooLargeError):
            p.send(topic, key=b"k", value=b"B" * 4000).get(timeout=15)
        md = p.send(topic, key=b"k", value=b"small").get(timeout=15)
        assert (md.partition, md.offset) == (0, 0)
    finally:
        p.close(timeout=5)
    assert watermarks(broker.bootstrap, topic) == (0, 1)


# --------------------------------------------------------------------------- persistence
def test_configs_survive_restart_and_vanish_with_the_topic(broker, topic):
    adm = admin(broker)
    t_create, t_incr, t_legacy = topic + "-c", topic + "-i", topic + "-l"
    create(adm, t_create, {"cleanup.policy": "compact", "retention.ms": "1000"})
    create(adm, t_incr)
    incremental(adm, t_incr, [("max.message.bytes", AlterConfigOpType.SET, "1024"),
                              ("cleanup.policy", AlterConfigOpType.APPEND, "compact")]).result(15)
    create(adm, t_legacy, {"retention.ms": "1000"})
    legacy_alter(adm, ConfigResource.Type.TOPIC, t_legacy, {"segment.bytes": "2097152"}).result(15)
    want = {t_create: {"cleanup.policy": "compact", "retention.ms": "1000"},
            t_incr: {"max.message.bytes": "1024", "cleanup.policy": "delete,compact"},
            t_legacy: {"segment.bytes": "2097152"}}

    for sig in (signal.SIGTERM, signal.SIGKILL):
        broker.restart(sig)
        adm = admin(broker)
        for t, o in want.items():
            assert overrides(describe(adm, t)) == o, (sig, t)
        err, _ = ck_produce_one(broker.bootstrap, t_incr, b"B" * 4000)
        assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, (sig, err)

    # A deleted and re-created topic starts from the defaults.
    adm.delete_topics([t_create])[t_create].result(timeout=15)
    r = topic_res(t_create)

    def describe_error():
        try:
            adm.describe_configs([r])[r].result(timeout=15)
            return None
        except KafkaException as e:
            return e.args[0].code()
    assert settled(describe_error, KafkaError.UNKNOWN_TOPIC_OR_PART) == KafkaError.UNKNOWN_TOPIC_OR_PART
    create(adm, t_create)
    assert settled(lambda: overrides(describe(adm, t_create)), {}) == {}
    broker.restart()
    assert overrides(describe(admin(broker), t_create)) == {}


# --------------------------------------------------------------------------- kafka-python
def test_kafka_python_describe(broker, topic):
    from kafka.admin import ConfigResource as KRes
    kadm = kp_admin(broker)
    try:
        create(admin(broker), topic, {"retention.ms": "3600000"})
        # Default filter ("modified"): only what the topic sets.
        res = kadm.describe_configs([KRes("TOPIC", topic)])["topic"][topic]
        assert {n: c["value"] for n, c in res.items()} == {"retention.ms": "3600000"}
        assert res["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        # Requested keys only; an unknown key is left out, not an error.
        res = kp_describe(kadm, topic, ["retention.ms", "cleanup.policy", "no.such.config"],
                          synonyms=True)
        assert set(res) == {"retention.ms", "cleanup.policy"}
        assert res["cleanup.policy"]["value"] == "delete"
        assert res["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
        assert res["cleanup.policy"]["synonyms"] == [
            {"name": "log.cleanup.policy", "value": "delete", "source": "DEFAULT_CONFIG"}]
        assert res["retention.ms"]["synonyms"][0] == {
            "name": "retention.ms", "value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG"}
        # Without include_synonyms there are none.
        res = kp_describe(kadm, topic, ["retention.ms"])
        assert res["retention.ms"]["synonyms"] == []
        # DescribeConfigs v3+: Kafka's config types.
        res = kp_describe(kadm, topic)
        types = {n: res[n]["config_type"] for n in ("retention.ms", "cleanup.policy",
                                                    "max.message.bytes", "preallocate",
                                                    "min.cleanable.dirty.ratio",
                                                    "compression.type")}
        assert types == {"retention.ms": "LONG", "cleanup.policy": "LIST",
                         "max.message.bytes": "INT", "preallocate": "BOOLEAN",
                         "min.cleanable.dirty.ratio": "DOUBLE", "compression.type": "STRING"}
        assert all(not c["read_only"] for c in res.values())
        assert {n: res[n]["value"] for n in KAFKA_TOPIC_DEFAULTS if n != "retention.ms"} == \
            {n: v for n, v in KAFKA_TOPIC_DEFAULTS.items() if n != "retention.ms"}
        # Broker resource: read-only, sent to broker 1.
        res = kadm.describe_configs([KRes("BROKER", "1", {"node.id": None,
                                                          "message.max.bytes": None})],
                                    config_filter="all")["broker"]["1"]
        assert res["node.id"]["value"] == "1" and res["node.id"]["read_only"]
        assert res["message.max.bytes"]["value"] == "1048588"
        assert res["message.max.bytes"]["config_source"] == "DEFAULT_CONFIG"
    finally:
        kadm.close()


def test_kafka_python_alter(broker, topic):
    from kafka.admin import AlterConfigOp, ConfigResource as KRes
    kadm = kp_admin(broker)
    try:
        create(admin(broker), topic)
        # Incremental (kafka-python's default when the broker offers it).
        res = kadm.alter_configs([KRes("TOPIC", topic, {
            "retention.ms": "7200000",
            "cleanup.policy": (AlterConfigOp.APPEND, "compact")})])
        assert res == {"topic": {topic: "OK"}}
        got = kp_describe(kadm, topic, ["retention.ms", "cleanup.policy"])
        assert {n: (c["value"], c["config_source"]) for n, c in got.items()} == {
            "retention.ms": ("7200000", "DYNAMIC_TOPIC_CONFIG"),
            "cleanup.policy": ("delete,compact", "DYNAMIC_TOPIC_CONFIG")}
        res = kadm.alter_configs([KRes("TOPIC", topic, {"cleanup.policy": (AlterConfigOp.DELETE, None)})])
        assert res == {"topic": {topic: "OK"}}
        assert kp_describe(kadm, topic, ["cleanup.policy"])["cleanup.policy"]["value"] == "delete"

        # Errors come back per resource as strings naming Kafka's error, on both paths.
        for configs in ({"retention.ms": "-2"}, {"retention.ms": "abc"}, {"no.such.config": "1"}):
            for incr in (True, False):
                res = kadm.alter_configs([KRes("TOPIC", topic, configs)], raise_on_unknown=False,
                                         incremental=incr)
                assert "InvalidConfigurationError" in res["topic"][topic], (configs, incr, res)
        res = kadm.alter_configs([KRes("TOPIC", topic, {"retention.ms": (AlterConfigOp.APPEND, "5")})])
        assert "InvalidConfigurationError" in res["topic"][topic], res
        res = kadm.alter_configs([KRes("TOPIC", topic + "-missing", {"retention.ms": "1"})],
                                 raise_on_unknown=False)
        assert "UnknownTopicOrPartitionError" in res["topic"][topic + "-missing"], res
        res = kadm.alter_configs([KRes("BROKER", "1", {"node.id": "5"})], raise_on_unknown=False)
        assert "InvalidRequestError" in res["broker"]["1"], res
        got = kp_describe(kadm, topic, ["retention.ms"])
        assert got["retention.ms"]["value"] == "7200000"

        # Legacy AlterConfigs: the whole set is replaced (kafka-python re-sends the other
        # modified keys itself, so retention.ms survives).
        res = kadm.alter_configs([KRes("TOPIC", topic, {"segment.ms": "3600000"})],
                                 incremental=False)
        assert res == {"topic": {topic: "OK"}}
        got = kp_describe(kadm, topic)
        assert {n: c["value"] for n, c in got.items()
                if c["config_source"] == "DYNAMIC_TOPIC_CONFIG"} == {
            "retention.ms": "7200000", "segment.ms": "3600000"}
        # validate_only changes nothing.
        res = kadm.alter_configs([KRes("TOPIC", topic, {"segment.ms": "1"})], validate_only=True)
        assert res == {"topic": {topic: "OK"}}
        assert kp_describe(kadm, topic, ["segment.ms"])["segment.ms"]["value"] == "3600000"
    finally:
        kadm.close()


# --------------------------------------------------------------------------- aiokafka
def test_aiokafka_describe_and_alter(broker, topic):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource as ARes, ConfigResourceType as AT

    create(admin(broker), topic, {"retention.ms": "3600000"})
    missing = topic + "-missing"

    async def run():
        a = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
        await a.start()
        try:
            [resp] = await a.describe_configs(
                [ARes(AT.TOPIC, topic, {"retention.ms": None, "cleanup.policy": None}),
                 ARes(AT.TOPIC, missing)], include_synonyms=True)
            by_name = {r[3]: r for r in resp.resources}
            err, _, rtype, _, entries = by_name[topic]
            assert (err, rtype) == (0, AT.TOPIC)
            got = {e[0]: e for e in entries}
            assert set(got) == {"retention.ms", "cleanup.policy"}
            name, value, read_only, source, sensitive, synonyms = got["retention.ms"]
            assert (value, read_only, source, sensitive) == ("3600000", False, DYNAMIC_TOPIC, False)
            assert synonyms[0] == ("retention.ms", "3600000", DYNAMIC_TOPIC)
            assert got["cleanup.policy"][1:4] == ("delete", False, DEFAULT)
            assert list(got["cleanup.policy"][5]) == [("log.cleanup.policy", "delete", DEFAULT)]
            assert by_name[missing][0] == 3  # UNKNOWN_TOPIC_OR_PARTITION
            assert list(by_name[missing][4]) == []

            [resp] = await a.describe_configs([ARes(AT.BROKER, "1", {"node.id": None})])
            [(err, _, rtype, rname, entries)] = resp.resources
            assert (err, rtype, rname) == (0, AT.BROKER, "1")
            assert [(e[0], e[1], e[2]) for e in entries] == [("node.id", "1", True)]

            # Legacy AlterConfigs: bad values refused with INVALID_CONFIG (40) ...
            for cfg in ({"retention.ms": "abc"}, {"retention.ms": "-2"}, {"no.such.config": "x"}):
                resps = await a.alter_configs([ARes(AT.TOPIC, topic, cfg)])
                codes = [r[0] for resp in resps for r in resp.resources]
                assert codes == [40], (cfg, resps)
            # ... a valid set replaces the topic's whole set ...
            resps = await a.alter_configs([ARes(AT.TOPIC, topic, {"retention.bytes": "999999",
                                                                  "cleanup.policy": "compact"})])
            assert [r[0] for resp in resps for r in resp.resources] == [0]
            # ... unknown topics get UNKNOWN_TOPIC_OR_PARTITION (3), broker configs
            # INVALID_REQUEST (42).
            resps = await a.alter_configs([ARes(AT.TOPIC, missing, {"retention.ms": "1"})])
            assert [r[0] for resp in resps for r in resp.resources] == [3]
            resps = await a.alter_configs([ARes(AT.BROKER, "1", {"log.dirs": "/x"})])
            assert [(r[0], r[3]) for resp in resps for r in resp.resources] == [(42, "1")]

            [resp] = await a.describe_configs([ARes(AT.TOPIC, topic)])
            [(err, _, _, _, entries)] = resp.resources
            return {e[0]: e[1] for e in entries if e[3] == DYNAMIC_TOPIC}
        finally:
            await a.close()

    assert asyncio.run(run()) == {"retention.bytes": "999999", "cleanup.policy": "compact"}


# --------------------------------------------------------------------------- synonyms vs Kafka
def test_synonyms_of_configs_whose_broker_default_is_null(broker, topic):
    kadm = kp_admin(broker)
    try:
        create(admin(broker), topic, {"segment.ms": "3600000"})
        res = kp_describe(kadm, topic, synonyms=True)
        got = {n: res[n]["synonyms"] for n in ("retention.ms", "segment.ms", "segment.jitter.ms",
                                               "flush.ms", "leader.replication.throttled.replicas",
                                               "follower.replication.throttled.replicas")}
        assert got == {
            "retention.ms": [],
            "segment.ms": [{"name": "segment.ms", "value": "3600000",
                            "source": "DYNAMIC_TOPIC_CONFIG"}],
            "segment.jitter.ms": [],
            "flush.ms": [],
            "leader.replication.throttled.replicas": [],
            "follower.replication.throttled.replicas": [],
        }
    finally:
        kadm.close()


def test_synonyms_of_static_broker_config_include_the_default(broker_factory, topic):
    b = broker_factory("--message-max-bytes", "2000")
    kadm = kp_admin(b)
    try:
        create(admin(b), topic)
        res = kp_describe(kadm, topic, ["max.message.bytes"], synonyms=True)
        assert res["max.message.bytes"]["synonyms"] == [
            {"name": "message.max.bytes", "value": "2000", "source": "STATIC_BROKER_CONFIG"},
            {"name": "message.max.bytes", "value": "1048588", "source": "DEFAULT_CONFIG"}]
    finally:
        kadm.close()


# --------------------------------------------------------------------------- validation vs Kafka
KAFKA_REFUSES = [
    # GzipCompression.LevelValidator: 1..9 or -1.
    ({"compression.gzip.level": "10"}, "gzip level outside 1..9/-1"),
    ({"compression.gzip.level": "0"}, "gzip level outside 1..9/-1"),
    # Lz4Compression / ZstdCompression: between(1, 17), between(-131072, 22).
    ({"compression.lz4.level": "18"}, "lz4 level outside 1..17"),
    ({"compression.zstd.level": "23"}, "zstd level above 22"),
    # ThrottledReplicaListValidator: "*" or partition:broker pairs.
    ({"leader.replication.throttled.replicas": "garbage"}, "not '*' or p:b pairs"),
    ({"follower.replication.throttled.replicas": "0:1,x"}, "not '*' or p:b pairs"),
    # LogConfig.validateValues: min.compaction.lag.ms must not exceed max.compaction.lag.ms.
    ({"min.compaction.lag.ms": "1000", "max.compaction.lag.ms": "10"}, "min lag > max lag"),
    # validateRemoteStorageOnlyIfSystemEnabled: no tiered storage on this broker.
    ({"remote.storage.enable": "true"}, "tiered storage disabled in the broker"),
]


@pytest.mark.parametrize("configs,why", KAFKA_REFUSES,
                         ids=[",".join(f"{n}={v}" for n, v in c.items()) for c, _ in KAFKA_REFUSES])
def test_values_kafka_refuses(broker, topic, configs, why):
    adm = admin(broker)
    fut = adm.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic]
    assert error_of(fut).code() == KafkaError.INVALID_CONFIG, why
    create(adm, topic)
    err = error_of(incremental(adm, topic, [(n, AlterConfigOpType.SET, v)
                                            for n, v in configs.items()]))
    assert err.code() == KafkaError.INVALID_CONFIG, why
    assert overrides(describe(adm, topic)) == {}


def test_valid_throttled_replicas_lists(broker, topic):
    adm = admin(broker)
    create(adm, topic, {"leader.replication.throttled.replicas": "*",
                        "follower.replication.throttled.replicas": "0:1, 1:1"})
    assert overrides(describe(adm, topic)) == {"leader.replication.throttled.replicas": "*",
                                               "follower.replication.throttled.replicas": "0:1,1:1"}


def test_negative_retention_bytes_is_accepted(broker, topic):
    adm = admin(broker)
    assert create(adm, topic, {"retention.bytes": "-2"}) is None
    assert overrides(describe(adm, topic)) == {"retention.bytes": "-2"}


def test_documentation_is_null_unless_requested(broker, topic):
    kadm = kp_admin(broker)
    try:
        create(admin(broker), topic)
        res = kp_describe(kadm, topic, ["retention.ms", "cleanup.policy"])
        assert {n: c["documentation"] for n, c in res.items()} == {
            "retention.ms": None, "cleanup.policy": None}
    finally:
        kadm.close()
