"""One valid, hand-encoded request for every API Klamm advertises: the fuzzer's seeds.

Each seed is the lowest (mostly non-flexible) version the broker advertises, plus a flexible
one where the API has no other. Field order follows Kafka's message schemas (the generated
code in vendor/kafka-protocol/src/messages/*_request.rs is the local reference). The battery
first sends every seed unmutated and requires an answer, so a wrong encoding here shows up as
a failed check rather than as a fuzzer that only ever exercises the decoder's error path.

Every name a seed touches (topics `fz`, `fz-c`, group `fzg`, transactional id `fzt`) belongs
to the fuzzer, so mutated admin requests cannot reach the well-behaved client's topic.
"""

import kwire
from kwire import W

TOPIC = "fz"          # created by the fuzz case before the seeds are sent
NEW_TOPIC = "fz-c"    # created by the CreateTopics seed, deleted by DeleteTopics
GROUP = "fzg"
TXN = "fzt"


def _t(flex, fn):
    w = W(flex)
    fn(w)
    return w


def build(batch):
    """{api_key: (version, flexible, W)}; `batch` is a valid record batch for Produce."""
    s = {}

    def add(key, version, flex, fn):
        s[key] = (version, flex, _t(flex, fn))

    # Produce v7: transactional_id, acks, timeout, [topic, [partition, records]]
    add(0, 7, False, lambda w: w.string(None).i16(1).i32(5000).array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).bytes_(batch))))
    # Fetch v4: replica, max_wait, min_bytes, max_bytes, isolation, [topic, [p, offset, max]]
    add(1, 4, False, lambda w: w.i32(-1).i32(10).i32(1).i32(65536).i8(0).array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).i64(0).i32(65536))))
    # ListOffsets v1: replica, [topic, [partition, timestamp]]
    add(2, 1, False, lambda w: w.i32(-1).array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).i64(-1))))
    # Metadata v4: [topic], allow_auto_topic_creation
    add(3, 4, False, lambda w: w.strings([TOPIC]).boolean(False))
    # OffsetCommit v2: group, generation, member, retention, [topic, [p, offset, metadata]]
    add(8, 2, False, lambda w: w.string(GROUP).i32(-1).string("").i64(-1).array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).i64(1).string("m"))))
    # OffsetFetch v1: group, [topic, [partition]]
    add(9, 1, False, lambda w: w.string(GROUP).array(
        [0], lambda w, _: w.string(TOPIC).i32s([0])))
    # FindCoordinator v0: key
    add(10, 0, False, lambda w: w.string(GROUP))
    # JoinGroup v0: group, session timeout, member, protocol type, [name, metadata]
    add(11, 0, False, lambda w: w.string(GROUP).i32(6000).string("").string("consumer").array(
        [0], lambda w, _: w.string("range").bytes_(b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")))
    # Heartbeat v0: group, generation, member
    add(12, 0, False, lambda w: w.string(GROUP).i32(1).string("m-1"))
    # LeaveGroup v0: group, member
    add(13, 0, False, lambda w: w.string(GROUP).string("m-1"))
    # SyncGroup v0: group, generation, member, [member, assignment]
    add(14, 0, False, lambda w: w.string(GROUP).i32(1).string("m-1").array(
        [0], lambda w, _: w.string("m-1").bytes_(b"")))
    # DescribeGroups v0: [group]
    add(15, 0, False, lambda w: w.strings([GROUP]))
    # ListGroups v0: no fields
    add(16, 0, False, lambda w: None)
    # ApiVersions v0: no fields
    add(18, 0, False, lambda w: None)
    # CreateTopics v2: [name, partitions, rf, [assignment], [config]], timeout, validate_only
    add(19, 2, False, lambda w: w.array(
        [0], lambda w, _: w.string(NEW_TOPIC).i32(2).i16(1).array([], None).array(
            [("retention.ms", "86400000")], lambda w, kv: w.string(kv[0]).string(kv[1]))
    ).i32(5000).boolean(False))
    # DeleteTopics v1: [name], timeout
    add(20, 1, False, lambda w: w.strings([NEW_TOPIC]).i32(5000))
    # DeleteRecords v0: [topic, [partition, offset]], timeout
    add(21, 0, False, lambda w: w.array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).i64(0))).i32(5000))
    # InitProducerId v0: transactional_id, transaction timeout
    add(22, 0, False, lambda w: w.string(None).i32(60000))
    # OffsetForLeaderEpoch v2: [topic, [partition, current_leader_epoch, leader_epoch]]
    add(23, 2, False, lambda w: w.array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).i32(-1).i32(0))))
    # AddPartitionsToTxn v0: txn id, producer id, epoch, [topic, [partition]]
    add(24, 0, False, lambda w: w.string(TXN).i64(1).i16(0).array(
        [0], lambda w, _: w.string(TOPIC).i32s([0])))
    # AddOffsetsToTxn v0: txn id, producer id, epoch, group
    add(25, 0, False, lambda w: w.string(TXN).i64(1).i16(0).string(GROUP))
    # EndTxn v0: txn id, producer id, epoch, committed
    add(26, 0, False, lambda w: w.string(TXN).i64(1).i16(0).boolean(True))
    # WriteTxnMarkers v1 (flexible, inter-broker; a single broker refuses it with
    # CLUSTER_AUTHORIZATION_FAILED): [producer id, epoch, result, [topic, [partition]],
    # coordinator epoch]
    add(27, 1, True, lambda w: w.array(
        [0], lambda w, _: w.i64(1).i16(0).boolean(False).array(
            [0], lambda w, _: w.string(TOPIC).i32s([0]).tags()).i32(0).tags()).tags())
    # TxnOffsetCommit v0: txn id, group, producer id, epoch, [topic, [p, offset, metadata]]
    add(28, 0, False, lambda w: w.string(TXN).string(GROUP).i64(1).i16(0).array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).i64(1).string(None))))
    # DescribeConfigs v1: [type, name, [key] or null], include_synonyms
    add(32, 1, False, lambda w: w.array(
        [0], lambda w, _: w.i8(2).string(TOPIC).strings(None)).boolean(True))
    # AlterConfigs v0: [type, name, [name, value]], validate_only
    add(33, 0, False, lambda w: w.array(
        [0], lambda w, _: w.i8(2).string(TOPIC).array(
            [0], lambda w, _: w.string("retention.ms").string("86400000"))).boolean(False))
    # DescribeLogDirs v1: [topic, [partition]] or null (= everything)
    add(35, 1, False, lambda w: w.array(
        [0], lambda w, _: w.string(TOPIC).i32s([0])))
    # CreatePartitions v0: [topic, count, assignments or null], timeout, validate_only
    add(37, 0, False, lambda w: w.array(
        [0], lambda w, _: w.string(TOPIC).i32(2).array(None, None)).i32(5000).boolean(True))
    # DeleteGroups v0: [group]
    add(42, 0, False, lambda w: w.strings([GROUP + "-gone"]))
    # ElectLeaders v0: [topic, [partition]] or null, timeout
    add(43, 0, False, lambda w: w.array(
        [0], lambda w, _: w.string(TOPIC).i32s([0])).i32(5000))
    # IncrementalAlterConfigs v0: [type, name, [name, op, value]], validate_only
    add(44, 0, False, lambda w: w.array(
        [0], lambda w, _: w.i8(2).string(TOPIC).array(
            [0], lambda w, _: w.string("retention.ms").i8(0).string("86400000"))).boolean(True))
    # AlterPartitionReassignments v0 (flexible): timeout, [topic, [partition, replicas]]
    add(45, 0, True, lambda w: w.i32(5000).array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).i32s([1]).tags()).tags()).tags())
    # ListPartitionReassignments v0 (flexible): timeout, [topic, [partition]] or null
    add(46, 0, True, lambda w: w.i32(5000).array(
        [0], lambda w, _: w.string(TOPIC).i32s([0]).tags()).tags())
    # OffsetDelete v0: group, [topic, [partition]]
    add(47, 0, False, lambda w: w.string(GROUP).array(
        [0], lambda w, _: w.string(TOPIC).array([0], lambda w, _: w.i32(0))))
    # DescribeCluster v0 (flexible): include_cluster_authorized_operations
    add(60, 0, True, lambda w: w.boolean(False).tags())
    # DescribeProducers v0 (flexible): [topic, [partition]]
    add(61, 0, True, lambda w: w.array(
        [0], lambda w, _: w.string(TOPIC).i32s([0]).tags()).tags())
    # DescribeTransactions v0 (flexible): [transactional id]
    add(65, 0, True, lambda w: w.strings([TXN]).tags())
    # ListTransactions v0 (flexible): [state filter], [producer id filter]
    add(66, 0, True, lambda w: w.strings([]).array([], None).tags())
    # ConsumerGroupHeartbeat v0 (flexible): group, member, epoch, instance, rack, rebalance
    # timeout, [subscribed topic], server assignor, [topic partitions]
    add(68, 0, True, lambda w: w.string(GROUP + "-848").string("fz-member-0000000000").i32(0)
        .string(None).string(None).i32(10000).strings([TOPIC]).string(None)
        .array([], None).tags())
    # ConsumerGroupDescribe v0 (flexible): [group], include_authorized_operations
    add(69, 0, True, lambda w: w.strings([GROUP + "-848"]).boolean(False).tags())
    # ShareGroupHeartbeat v1 (flexible): group, member (client-chosen), epoch, rack (null),
    # [subscribed topic]
    add(76, 1, True, lambda w: w.string(GROUP + "-share").string("fz-share-member-0000")
        .i32(0).string(None).strings([TOPIC]).tags())
    # ShareGroupDescribe v1 (flexible): [group], include_authorized_operations
    add(77, 1, True, lambda w: w.strings([GROUP + "-share"]).boolean(False).tags())
    # ShareFetch v1 (flexible): group, member, session epoch (0 opens a session), max wait,
    # min bytes, max bytes, max records, batch size, [topic id, [partition, [ack batch]]],
    # [forgotten]. The topic id is unknown here; the session and its error are what count.
    add(78, 1, True, lambda w: w.string(GROUP + "-share").string("fz-share-member-0000")
        .i32(0).i32(0).i32(1).i32(1 << 20).i32(500).i32(500)
        .array([0], lambda w, _: w.uuid(b"\x01" * 16).array(
            [0], lambda w, _: w.i32(0).array([], None).tags()).tags())
        .array([], None).tags())
    # ShareAcknowledge v1 (flexible): group, member, session epoch, [topic id, [partition,
    # [first, last, [types]]]] (no session: SHARE_SESSION_NOT_FOUND)
    add(79, 1, True, lambda w: w.string(GROUP + "-share").string("fz-share-member-0000")
        .i32(1).array([0], lambda w, _: w.uuid(b"\x01" * 16).array(
            [0], lambda w, _: w.i32(0).array(
                [0], lambda w, _: w.i64(0).i64(0).array([1], lambda w, t: w.i8(t)).tags()).tags()).tags()).tags())
    # DescribeShareGroupOffsets v1 (flexible): [group, [topic, [partition]] or null]
    add(90, 1, True, lambda w: w.array([0], lambda w, _: w.string(GROUP + "-share").array(
        [0], lambda w, _: w.string(TOPIC).i32s([0]).tags()).tags()).tags())
    # AlterShareGroupOffsets v0 (flexible): group, [topic, [partition, start offset]]
    add(91, 0, True, lambda w: w.string(GROUP + "-share").array(
        [0], lambda w, _: w.string(TOPIC).array(
            [0], lambda w, _: w.i32(0).i64(0).tags()).tags()).tags())
    # DeleteShareGroupOffsets v0 (flexible): group, [topic]
    add(92, 0, True, lambda w: w.string(GROUP + "-share").array(
        [0], lambda w, _: w.string(TOPIC).tags()).tags())
    # The share coordinator's APIs (flexible v0), on a topic id no topic has:
    # InitializeShareGroupState: group, [topic id, [partition, state epoch, start offset]]
    add(83, 0, True, lambda w: w.string(GROUP + "-share").array(
        [0], lambda w, _: w.uuid(b"\x02" * 16).array(
            [0], lambda w, _: w.i32(0).i32(1).i64(0).tags()).tags()).tags())
    # ReadShareGroupState: group, [topic id, [partition, leader epoch]]
    add(84, 0, True, lambda w: w.string(GROUP + "-share").array(
        [0], lambda w, _: w.uuid(b"\x02" * 16).array(
            [0], lambda w, _: w.i32(0).i32(0).tags()).tags()).tags())
    # WriteShareGroupState: group, [topic id, [partition, state epoch, leader epoch, start
    # offset, [first, last, state, delivery count]]]
    add(85, 0, True, lambda w: w.string(GROUP + "-share").array(
        [0], lambda w, _: w.uuid(b"\x02" * 16).array(
            [0], lambda w, _: w.i32(0).i32(1).i32(0).i64(0).array(
                [0], lambda w, _: w.i64(0).i64(3).i8(2).i16(1).tags()).tags()).tags()).tags())
    # DeleteShareGroupState: group, [topic id, [partition]]
    add(86, 0, True, lambda w: w.string(GROUP + "-share").array(
        [0], lambda w, _: w.uuid(b"\x02" * 16).array(
            [0], lambda w, _: w.i32(0).tags()).tags()).tags())
    # ReadShareGroupStateSummary: group, [topic id, [partition, leader epoch]]
    add(87, 0, True, lambda w: w.string(GROUP + "-share").array(
        [0], lambda w, _: w.uuid(b"\x02" * 16).array(
            [0], lambda w, _: w.i32(0).i32(0).tags()).tags()).tags())
    # StreamsGroupHeartbeat v0 (flexible): a join of the fuzzer's streams group with a
    # one-subtopology topology reading `fz`: group, member, epoch 0, endpoint epoch -1,
    # instance (null), rack (null), rebalance timeout, topology (present: epoch,
    # [subtopology: id, [source], [regex], [changelog], [sink], [repartition source],
    # [copartition]]), active/standby/warmup ([]), process id, endpoint (null), client tags
    # (null), task offsets, task end offsets (null), shutdown
    add(88, 0, True, lambda w: w.string(GROUP + "-streams").string("fz-streams-member-00")
        .i32(0).i32(-1).string(None).string(None).i32(30000)
        .i8(1).i32(0).array([0], lambda w, _: w.string("0").strings([TOPIC]).strings([])
            .array([], None).strings([]).array([], None).array([], None).tags()).tags()
        .array([], None).array([], None).array([], None).string("fz-process")
        .i8(-1).array(None, None).array(None, None).array(None, None).boolean(False).tags())
    # StreamsGroupDescribe v0 (flexible): [group], include_authorized_operations
    add(89, 0, True, lambda w: w.strings([GROUP + "-streams"]).boolean(False).tags())
    # StreamsGroupTopologyDescriptionUpdate v0 (flexible): group, member, topology epoch,
    # description ([subtopology], [global store]): UNSUPPORTED_VERSION, as Kafka without
    # a description plugin
    add(93, 0, True, lambda w: w.string(GROUP + "-streams").string("fz-streams-member-00")
        .i32(0).array([], None).array([], None).tags().tags())
    # DescribeTopicPartitions v0 (flexible): [topic], partition limit, cursor (null)
    add(75, 0, True, lambda w: w.array(
        [0], lambda w, _: w.string(TOPIC).tags()).i32(100).i8(-1).tags())
    # SaslHandshake v0: mechanism (ILLEGAL_SASL_STATE on a listener without SASL)
    add(17, 0, False, lambda w: w.string("PLAIN"))
    # SaslAuthenticate v0: auth bytes (likewise)
    add(36, 0, False, lambda w: w.bytes_(b"\x00user\x00password"))
    # The delegation token APIs: over the fuzzer's PLAINTEXT listener every one is refused
    # with DELEGATION_TOKEN_REQUEST_NOT_ALLOWED (no secret: the same), which still decodes
    # the whole request.
    # CreateDelegationToken v1: [renewer (type, name)], max lifetime
    add(38, 1, False, lambda w: w.array(
        [0], lambda w, _: w.string("User").string("fuzz-user")).i64(-1))
    # RenewDelegationToken v1: hmac, renew period
    add(39, 1, False, lambda w: w.bytes_(b"\x01" * 64).i64(-1))
    # ExpireDelegationToken v1: hmac, expiry period
    add(40, 1, False, lambda w: w.bytes_(b"\x01" * 64).i64(-1))
    # DescribeDelegationToken v1: [owner (type, name)] or null
    add(41, 1, False, lambda w: w.array(
        [0], lambda w, _: w.string("User").string("fuzz-user")))
    # DescribeUserScramCredentials v0 (flexible): [user] or null
    add(50, 0, True, lambda w: w.array(["fuzz-user"], lambda w, u: w.string(u).tags()).tags())
    # DescribeClientQuotas v1 (flexible): [component (type, match type, match)], strict
    add(48, 1, True, lambda w: w.array(
        [0], lambda w, _: w.string("user").i8(0).string("fuzz-user").tags()).boolean(False).tags())
    # AlterClientQuotas v1 (flexible): [entry ([entity (type, name)], [op (key, value,
    # remove)])], validate only (an IP's connection rate, checked only, and so high that a
    # mutation that applies it to every IP still slows no client)
    add(49, 1, True, lambda w: w.array(
        [0], lambda w, _: w.array(
            [0], lambda w, _: w.string("ip").string("127.0.0.9").tags()).array(
            [0], lambda w, _: w.string("connection_creation_rate").f64(1e9).boolean(False)
            .tags()).tags()).boolean(True).tags())
    # AlterUserScramCredentials v0 (flexible): [deletion], [upsertion (name, mechanism,
    # iterations, salt, salted password)]
    add(51, 0, True, lambda w: w.array([], None).array(
        [0], lambda w, _: w.string("fuzz-user").i8(1).i32(4096).bytes_(b"salt" * 4)
        .bytes_(b"\x01" * 32).tags()).tags())
    # CreateAcls v3 (flexible): [creation (resource type, name, pattern type, principal,
    # host, operation, permission)]
    add(30, 3, True, lambda w: w.array(
        [0], lambda w, _: w.i8(2).string(TOPIC).i8(3).string("User:fuzz").string("*")
        .i8(3).i8(3).tags()).tags())
    # DescribeAcls v3 (flexible): the filter's fields (ANY everywhere)
    add(29, 3, True, lambda w: w.i8(1).string(None).i8(1).string(None).string(None)
        .i8(1).i8(1).tags())
    # DeleteAcls v3 (flexible): [filter]
    add(31, 3, True, lambda w: w.array(
        [0], lambda w, _: w.i8(2).string(TOPIC).i8(3).string("User:fuzz").string(None)
        .i8(1).i8(1).tags()).tags())
    # DescribeQuorum v0 (flexible): [topic (name, [partition (index)])]
    add(55, 0, True, lambda w: w.array(
        [0], lambda w, _: w.string("__cluster_metadata").array(
            [0], lambda w, _: w.i32(0).tags()).tags()).tags())
    # UpdateFeatures v0 (flexible): timeout, [update (feature, max level, allow downgrade)]
    add(57, 0, True, lambda w: w.i32(5000).array(
        [0], lambda w, _: w.string("group.version").i16(1).boolean(False).tags()).tags())
    # GetTelemetrySubscriptions v0 (flexible): client instance id (zero: assign one)
    add(71, 0, True, lambda w: w.uuid().tags())
    # PushTelemetry v0 (flexible): instance id, subscription id, terminating, codec, metrics
    add(72, 0, True, lambda w: w.uuid(b"\x01" * 16).i32(0).boolean(True).i8(0)
        .bytes_(b"").tags())
    # ListConfigResources v1 (flexible): [resource type]
    add(74, 1, True, lambda w: w.array([2, 4], lambda w, t: w.i8(t)).tags())
    return s


def frame(api_key, seed, correlation_id):
    version, flex, w = seed
    return kwire.request(api_key, version, correlation_id, w.b, flex)
