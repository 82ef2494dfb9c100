package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.SupportedVersionRange;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * KIP-1191 share-group dead-letter queue (share.version 2, Kafka 4.4): a record a share
 * consumer REJECTs, or that runs out its delivery count (RELEASE or an expired acquisition
 * lock at {@code share.delivery.count.limit}), is written by the broker to the group's
 * {@code errors.deadletterqueue.topic.name} (a topic with {@code errors.deadletterqueue.group.enable=true}
 * and the broker's {@code dlq.} prefix), then archived. The DLQ record carries six
 * {@code __dlq.errors.*} headers (not the original headers), the broker's time as its
 * CreateTime, and the original key and value only with {@code errors.deadletterqueue.copy.record.enable=true};
 * it goes to DLQ partition {@code source partition % DLQ partitions}. kafka-clients 4.1+ only
 * (the pom's {@code kafka-clients-3} profile leaves the class out of the 3.x compilation, as
 * for {@link ShareGroupTest}).
 *
 * <p>The broker is started with {@code --errors-deadletterqueue-auto-create-topics-enable true}
 * (a missing {@code dlq.} topic is created by the broker), {@code --group-share-min-record-lock-duration-ms 1000}
 * (so a group may set a 1 s lock), {@code --group-share-heartbeat-interval-ms 1000} (Kafka hands a
 * joining share member its assignment one heartbeat after it joined: 1 s instead of 5 s) and
 * {@code --num-partitions 2} (the partitions of an auto-created DLQ topic).
 *
 * <p>"No DLQ record" is never concluded from a sleep: the rejected record is first shown archived
 * (a record produced afterwards is the next and only one the consumer gets), a valid DLQ write
 * of another group triggered afterwards is awaited, and then the DLQ topic's end offsets are 0.
 * The share-partition start offset is not asserted after a DLQ write (Kafka persists the
 * ARCHIVED state with the old start offset, by design).
 */
class ShareDlqTest {
    static final String AUTO_CREATE = "--errors-deadletterqueue-auto-create-topics-enable";
    static final int BROKER_PARTITIONS = 2;

    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension(
            AUTO_CREATE, "true",
            "--group-share-min-record-lock-duration-ms", "1000",
            "--group-share-heartbeat-interval-ms", "1000",
            "--num-partitions", String.valueOf(BROKER_PARTITIONS));

    static final Duration WAIT = Duration.ofSeconds(30);
    static final Duration POLL = Duration.ofMillis(200);

    static final String REJECTED = "Offset rejected by client.";
    static final String EXCEEDED = "Offset delivery count exceeded the threshold.";
    static final String GROUP_ENABLE = "errors.deadletterqueue.group.enable";

    @BeforeEach
    void shareConsumerClient() {
        // 4.0's share RPCs were early access (unstable versions); stable from 4.1, GA in 4.2
        Assumptions.assumeTrue(Kit.clientAtLeast(4, 1),
                "KafkaShareConsumer needs kafka-clients 4.1+; running " + Kit.clientVersion());
    }

    // ------------------------------------------------------------------ helpers

    private static KafkaShareConsumer<byte[], byte[]> explicitConsumer(String bootstrap, String group, Object... extra) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit");
        Kit.put(p, extra);
        return new KafkaShareConsumer<>(p);
    }

    /** Group configs (name, value, ...) with incrementalAlterConfigs SET on the GROUP resource. */
    private static void setGroupConfigs(String bootstrap, String group, String... kv) {
        List<AlterConfigOp> ops = new ArrayList<>();
        for (int i = 0; i < kv.length; i += 2) {
            ops.add(new AlterConfigOp(new ConfigEntry(kv[i], kv[i + 1]), AlterConfigOp.OpType.SET));
        }
        try (Admin admin = Kit.admin(bootstrap)) {
            get(admin.incrementalAlterConfigs(
                    Map.of(new ConfigResource(ConfigResource.Type.GROUP, group), ops)).all());
        }
    }

    /**
     * A share group reading from the earliest offset, delivery count limit 2, with this DLQ
     * topic (and any further group configs).
     */
    private static void dlqGroup(String bootstrap, String group, String dlqTopic, String... more) {
        List<String> cfg = new ArrayList<>(List.of(
                "share.auto.offset.reset", "earliest",
                "share.delivery.count.limit", "2",
                "errors.deadletterqueue.topic.name", dlqTopic));
        cfg.addAll(List.of(more));
        setGroupConfigs(bootstrap, group, cfg.toArray(new String[0]));
    }

    /** A DLQ topic created by the test, with {@code errors.deadletterqueue.group.enable=true}. */
    private static void enabledDlqTopic(String bootstrap, String topic, int partitions) {
        Kit.createTopic(bootstrap, topic, partitions, GROUP_ENABLE, "true");
    }

    /** Produces one record (headers as name, value, ...) and returns its metadata. */
    private static RecordMetadata produce(String bootstrap, String topic, int partition, String key, String value,
                                          String... headers) {
        RecordHeaders h = new RecordHeaders();
        for (int i = 0; i < headers.length; i += 2) {
            h.add(new RecordHeader(headers[i], b(headers[i + 1])));
        }
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(bootstrap)) {
            return get(p.send(new ProducerRecord<>(topic, partition, b(key), b(value), h)));
        }
    }

    private static int dc(ConsumerRecord<byte[], byte[]> r) {
        return r.deliveryCount().map(Short::intValue).orElse(-1);
    }

    private static String describe(ConsumerRecord<byte[], byte[]> r) {
        return "p" + r.partition() + "@" + r.offset() + "(dc " + dc(r) + ", " + Kit.s(r.value()) + ")";
    }

    /** commitSync: every acknowledgement it sent must have succeeded. */
    private static void commitOk(KafkaShareConsumer<byte[], byte[]> c) {
        Map<TopicIdPartition, Optional<KafkaException>> result = c.commitSync();
        result.forEach((tp, e) -> assertTrue(e.isEmpty(), "acknowledgement of " + tp + " failed: " + e));
    }

    /**
     * Polls until {@code done} holds (fails after {@code timeout}); each record goes to
     * {@code onRecord} (which acknowledges it, or deliberately does not).
     */
    private static void pollUntil(KafkaShareConsumer<byte[], byte[]> c, String what, Duration timeout,
                                  Consumer<ConsumerRecord<byte[], byte[]>> onRecord, BooleanSupplier done) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + timeout + " waiting for " + what + "; received "
                        + got.stream().map(ShareDlqTest::describe).toList());
            }
            for (ConsumerRecord<byte[], byte[]> r : c.poll(POLL)) {
                got.add(r);
                onRecord.accept(r);
            }
        }
    }

    /** Polls until three polls in a row return nothing (at most 10 s); returns what arrived. */
    private static List<ConsumerRecord<byte[], byte[]>> pollUntilQuiet(KafkaShareConsumer<byte[], byte[]> c,
                                                                       Consumer<ConsumerRecord<byte[], byte[]>> onRecord) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        int empty = 0;
        while (empty < 3 && System.nanoTime() < deadline) {
            int n = 0;
            for (ConsumerRecord<byte[], byte[]> r : c.poll(POLL)) {
                got.add(r);
                onRecord.accept(r);
                n++;
            }
            empty = n == 0 ? empty + 1 : 0;
        }
        return got;
    }

    /**
     * A consumer of {@code group} gets every record of {@code topic} (they must be exactly
     * {@code expected}, as "pP@O(dc D, value)" in arrival order) and acknowledges each with
     * {@code ack(record)}, commitSync after each poll. Returns the wall-clock time taken just
     * before the commitSync that sent the last acknowledgement.
     */
    private static long consumeAndAck(String bootstrap, String group, String topic, List<String> expected,
                                      java.util.function.Function<ConsumerRecord<byte[], byte[]>, AcknowledgeType> ack) {
        List<String> got = new ArrayList<>();
        long beforeLastCommit = 0;
        try (KafkaShareConsumer<byte[], byte[]> c = explicitConsumer(bootstrap, group)) {
            c.subscribe(List.of(topic));
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (got.size() < expected.size()) {
                if (System.nanoTime() > deadline) {
                    fail("timed out after " + WAIT + " waiting for " + expected + "; received " + got);
                }
                int n = 0;
                for (ConsumerRecord<byte[], byte[]> r : c.poll(POLL)) {
                    got.add(describe(r));
                    c.acknowledge(r, ack.apply(r));
                    n++;
                }
                if (n > 0) {
                    beforeLastCommit = System.currentTimeMillis();
                    commitOk(c);
                }
            }
        }
        assertEquals(expected, got, "records the share consumer received, in order");
        return beforeLastCommit;
    }

    /**
     * Waits (bounded) until {@code topic} exists and the DLQ records in it number {@code count},
     * reads them with a plain consumer (assign + seekToBeginning), checks that the topic then holds
     * exactly that many (end offsets), and returns them ordered by partition and offset.
     */
    private static List<ConsumerRecord<byte[], byte[]>> dlqRecords(String bootstrap, String topic, int count) {
        List<TopicPartition> tps = new ArrayList<>();
        try (Admin admin = Kit.admin(bootstrap)) {
            Kit.waitUntil("DLQ topic " + topic + " to exist", WAIT, () -> {
                try {
                    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                            .get(5, TimeUnit.SECONDS).get(topic);
                    tps.clear();
                    d.partitions().forEach(p -> tps.add(new TopicPartition(topic, p.partition())));
                    return !tps.isEmpty();
                } catch (Exception e) {
                    return false;
                }
            });
        }
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(bootstrap, null)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (out.size() < count && System.nanoTime() < deadline) {
                c.poll(POLL).forEach(out::add);
            }
            assertEquals(count, out.size(), "DLQ records in " + topic + " within " + WAIT + ": " + show(out));
            long total = c.endOffsets(tps).values().stream().mapToLong(Long::longValue).sum();
            assertEquals(count, total, "records in DLQ topic " + topic + " (end offsets): " + show(out));
        }
        out.sort(Comparator.<ConsumerRecord<byte[], byte[]>>comparingInt(ConsumerRecord::partition)
                .thenComparingLong(ConsumerRecord::offset));
        return out;
    }

    /** The log end offset of every partition of an existing topic (ListOffsets latest). */
    private static Map<Integer, Long> endOffsets(String bootstrap, String topic) {
        try (Admin admin = Kit.admin(bootstrap)) {
            TopicDescription d = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
            Map<TopicPartition, OffsetSpec> req = new HashMap<>();
            d.partitions().forEach(p -> req.put(new TopicPartition(topic, p.partition()), OffsetSpec.latest()));
            Map<Integer, Long> out = new TreeMap<>();
            get(admin.listOffsets(req).all()).forEach((tp, info) -> out.put(tp.partition(), info.offset()));
            return out;
        }
    }

    private static List<String> show(List<ConsumerRecord<byte[], byte[]>> records) {
        return records.stream().map(r -> r.topic() + "-" + r.partition() + "@" + r.offset() + " key=" + Kit.s(r.key())
                + " value=" + Kit.s(r.value()) + " headers=" + headerStrings(r)).toList();
    }

    /** The headers as "name=UTF-8 value", in order. */
    private static List<String> headerStrings(ConsumerRecord<byte[], byte[]> r) {
        List<String> out = new ArrayList<>();
        for (Header h : r.headers()) {
            out.add(h.key() + "=" + (h.value() == null ? "<null>" : Kit.s(h.value())));
        }
        return out;
    }

    /**
     * One DLQ record: exactly the six {@code __dlq.errors.*} headers in Kafka's order (the
     * original headers are not copied), key and value as given (null when not copied),
     * CreateTime at least {@code notBefore} (the broker's clock at the write, not the source
     * record's timestamp) and not in the future.
     */
    private static void assertDlqRecord(ConsumerRecord<byte[], byte[]> r, String sourceTopic, int sourcePartition,
                                        long sourceOffset, String group, int deliveryCount, String message,
                                        String key, String value, long notBefore) {
        String what = "DLQ record " + show(List.of(r));
        assertEquals(List.of(
                "__dlq.errors.topic=" + sourceTopic,
                "__dlq.errors.partition=" + sourcePartition,
                "__dlq.errors.offset=" + sourceOffset,
                "__dlq.errors.group=" + group,
                "__dlq.errors.delivery.count=" + deliveryCount,
                "__dlq.errors.message=" + message), headerStrings(r), what + ": headers");
        assertEquals(key, Kit.s(r.key()), what + ": key");
        assertEquals(value, Kit.s(r.value()), what + ": value");
        assertEquals(TimestampType.CREATE_TIME, r.timestampType(), what + ": timestamp type");
        assertTrue(r.timestamp() >= notBefore, what + ": timestamp " + r.timestamp()
                + " is before the acknowledgement was sent (" + notBefore + ")");
        assertTrue(r.timestamp() <= System.currentTimeMillis(), what + ": timestamp " + r.timestamp() + " in the future");
    }

    /**
     * The first record of {@code topic} partition 0 is REJECTed by a consumer of {@code group}
     * (the acknowledgement succeeds); then a second record is produced and is the next and only
     * record the consumer gets (delivery count 1): the rejected one was archived, not made
     * available again.
     */
    private static void rejectThenOnlyTheNextRecord(String bootstrap, String topic, String group) {
        assertEquals(0L, produce(bootstrap, topic, 0, "k0", "reject-me", "h", "v").offset());
        try (KafkaShareConsumer<byte[], byte[]> c = explicitConsumer(bootstrap, group)) {
            c.subscribe(List.of(topic));
            List<String> got = new ArrayList<>();
            pollUntil(c, "offset 0", WAIT, r -> {
                got.add(describe(r));
                c.acknowledge(r, AcknowledgeType.REJECT);
            }, () -> !got.isEmpty());
            commitOk(c);
            assertEquals(List.of("p0@0(dc 1, reject-me)"), got, group + ": first delivery");

            assertEquals(1L, produce(bootstrap, topic, 0, "k1", "next").offset());
            List<String> later = new ArrayList<>();
            Consumer<ConsumerRecord<byte[], byte[]>> accept = r -> {
                later.add(describe(r));
                c.acknowledge(r, AcknowledgeType.ACCEPT);
            };
            pollUntil(c, "offset 1", WAIT, accept, () -> !later.isEmpty());
            pollUntilQuiet(c, accept);
            commitOk(c);
            assertEquals(List.of("p0@1(dc 1, next)"), later,
                    group + ": after the REJECT only the new record arrives (the rejected one is archived)");
        }
    }

    private static Map<String, ConfigEntry> topicConfigs(String bootstrap, String topic) {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Kit.admin(bootstrap)) {
            Config c = get(admin.describeConfigs(List.of(r)).all()).get(r);
            Map<String, ConfigEntry> out = new TreeMap<>();
            c.entries().forEach(e -> out.put(e.name(), e));
            return out;
        }
    }

    private static void note(String test, String what) {
        System.out.println("ShareDlqTest." + test + " (" + (Broker.isKafka() ? "Kafka" : "Klamm") + "): " + what);
    }

    // ------------------------------------------------------------------ tests

    /**
     * (1) REJECT with {@code copy.record.enable=true}: one DLQ record with the original key and
     * value, none of the original headers, the six {@code __dlq.errors.*} headers (delivery count
     * 1, "Offset rejected by client.") and the broker's time of the write as CreateTime.
     */
    @Test
    void rejectWithCopyWritesTheRecordWithDlqHeaders() {
        String bs = broker.bootstrap();
        String topic = Kit.name("dlq-src-reject");
        String group = Kit.name("g-dlq-reject");
        String dlq = "dlq." + Kit.name("reject");
        Kit.createTopic(bs, topic, 1);
        enabledDlqTopic(bs, dlq, 1);
        dlqGroup(bs, group, dlq, "errors.deadletterqueue.copy.record.enable", "true");
        RecordMetadata md = produce(bs, topic, 0, "k0", "reject-me", "h1", "v1", "h2", "v2");

        long beforeAck = consumeAndAck(bs, group, topic, List.of("p0@0(dc 1, reject-me)"), r -> AcknowledgeType.REJECT);
        assertTrue(md.timestamp() < beforeAck);
        List<ConsumerRecord<byte[], byte[]>> dlqRecords = dlqRecords(bs, dlq, 1);
        ConsumerRecord<byte[], byte[]> r = dlqRecords.get(0);
        assertEquals(0, r.partition());
        assertEquals(0L, r.offset());
        assertDlqRecord(r, topic, 0, 0, group, 1, REJECTED, "k0", "reject-me", beforeAck);
        note("rejectWithCopyWritesTheRecordWithDlqHeaders", "DLQ record written "
                + (r.timestamp() - beforeAck) + " ms after the commitSync started: " + show(dlqRecords));
    }

    /**
     * (2) RELEASE at every delivery with {@code share.delivery.count.limit=2}: the second
     * release reaches the limit and the record goes to the DLQ with delivery count 2 and
     * "Offset delivery count exceeded the threshold.".
     */
    @Test
    void releaseAtTheDeliveryLimitWritesTheRecord() {
        String bs = broker.bootstrap();
        String topic = Kit.name("dlq-src-release");
        String group = Kit.name("g-dlq-release");
        String dlq = "dlq." + Kit.name("release");
        Kit.createTopic(bs, topic, 1);
        enabledDlqTopic(bs, dlq, 1);
        dlqGroup(bs, group, dlq, "errors.deadletterqueue.copy.record.enable", "true");
        produce(bs, topic, 0, "k1", "release-me", "h", "v");

        long beforeAck = consumeAndAck(bs, group, topic,
                List.of("p0@0(dc 1, release-me)", "p0@0(dc 2, release-me)"), r -> AcknowledgeType.RELEASE);
        List<ConsumerRecord<byte[], byte[]>> dlqRecords = dlqRecords(bs, dlq, 1);
        assertDlqRecord(dlqRecords.get(0), topic, 0, 0, group, 2, EXCEEDED, "k1", "release-me", beforeAck);
        note("releaseAtTheDeliveryLimitWritesTheRecord", show(dlqRecords).toString());
    }

    /**
     * (3) The DLQ partition is the source partition modulo the DLQ topic's partitions: one
     * record rejected on each of 3 source partitions, onto a 2-partition DLQ topic, gives DLQ
     * partition 0 the records of source partitions 0 and 2 and DLQ partition 1 that of source
     * partition 1.
     */
    @Test
    void dlqPartitionIsSourcePartitionModuloDlqPartitions() {
        String bs = broker.bootstrap();
        String topic = Kit.name("dlq-src-parts");
        String group = Kit.name("g-dlq-parts");
        String dlq = "dlq." + Kit.name("parts");
        Kit.createTopic(bs, topic, 3);
        enabledDlqTopic(bs, dlq, 2);
        dlqGroup(bs, group, dlq, "errors.deadletterqueue.copy.record.enable", "true");
        for (int p = 0; p < 3; p++) {
            produce(bs, topic, p, p == 2 ? null : "k" + p, "reject-p" + p);
        }
        List<String> got = new ArrayList<>();
        long beforeAck;
        try (KafkaShareConsumer<byte[], byte[]> c = explicitConsumer(bs, group)) {
            c.subscribe(List.of(topic));
            beforeAck = System.currentTimeMillis();
            pollUntil(c, "one record per partition", WAIT, r -> {
                got.add(describe(r));
                c.acknowledge(r, AcknowledgeType.REJECT);
            }, () -> got.size() >= 3);
            commitOk(c);
        }
        assertEquals(List.of("p0@0(dc 1, reject-p0)", "p1@0(dc 1, reject-p1)", "p2@0(dc 1, reject-p2)"),
                got.stream().sorted().toList());
        List<ConsumerRecord<byte[], byte[]>> dlqRecords = dlqRecords(bs, dlq, 3);
        Map<Integer, List<Integer>> sourcesByDlqPartition = new TreeMap<>();
        Map<Integer, ConsumerRecord<byte[], byte[]>> bySource = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r : dlqRecords) {
            int src = Integer.parseInt(Kit.s(r.headers().lastHeader("__dlq.errors.partition").value()));
            sourcesByDlqPartition.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(src);
            bySource.put(src, r);
        }
        sourcesByDlqPartition.values().forEach(l -> l.sort(null));
        assertEquals(Map.of(0, List.of(0, 2), 1, List.of(1)), sourcesByDlqPartition,
                "DLQ partition -> source partitions: " + show(dlqRecords));
        for (int p = 0; p < 3; p++) {
            assertDlqRecord(bySource.get(p), topic, p, 0, group, 1, REJECTED, p == 2 ? null : "k" + p,
                    "reject-p" + p, beforeAck);
        }
        note("dlqPartitionIsSourcePartitionModuloDlqPartitions", show(dlqRecords).toString());
    }

    /**
     * (4) {@code errors.deadletterqueue.copy.record.enable} left at its default (false): the DLQ
     * record has a null key and a null value, and the same six headers.
     */
    @Test
    void withoutCopyTheDlqRecordHasNoKeyOrValue() {
        String bs = broker.bootstrap();
        String topic = Kit.name("dlq-src-nocopy");
        String group = Kit.name("g-dlq-nocopy");
        String dlq = "dlq." + Kit.name("nocopy");
        Kit.createTopic(bs, topic, 1);
        enabledDlqTopic(bs, dlq, 1);
        dlqGroup(bs, group, dlq);
        produce(bs, topic, 0, "k0", "reject-me", "h1", "v1");

        long beforeAck = consumeAndAck(bs, group, topic, List.of("p0@0(dc 1, reject-me)"), r -> AcknowledgeType.REJECT);
        List<ConsumerRecord<byte[], byte[]>> dlqRecords = dlqRecords(bs, dlq, 1);
        assertDlqRecord(dlqRecords.get(0), topic, 0, 0, group, 1, REJECTED, null, null, beforeAck);
        note("withoutCopyTheDlqRecordHasNoKeyOrValue", show(dlqRecords).toString());
    }

    /**
     * (5) With {@code errors.deadletterqueue.auto.create.topics.enable=true} a missing
     * {@code dlq.} topic is created by the broker: the broker's default partition count
     * ({@code num.partitions}, 2 here), replication factor 1, and exactly two topic configs set,
     * {@code errors.deadletterqueue.group.enable=true} and {@code message.timestamp.type=CreateTime}
     * (DYNAMIC_TOPIC_CONFIG); the DLQ record is in it.
     */
    @Test
    void missingDlqTopicIsAutoCreated() {
        String bs = broker.bootstrap();
        String topic = Kit.name("dlq-src-auto");
        String group = Kit.name("g-dlq-auto");
        String dlq = "dlq." + Kit.name("auto");
        Kit.createTopic(bs, topic, 1);
        dlqGroup(bs, group, dlq);
        produce(bs, topic, 0, "k0", "reject-me");

        long beforeAck = consumeAndAck(bs, group, topic, List.of("p0@0(dc 1, reject-me)"), r -> AcknowledgeType.REJECT);
        List<ConsumerRecord<byte[], byte[]>> dlqRecords = dlqRecords(bs, dlq, 1);
        ConsumerRecord<byte[], byte[]> r = dlqRecords.get(0);
        assertEquals(0, r.partition(), "DLQ partition of source partition 0");
        assertDlqRecord(r, topic, 0, 0, group, 1, REJECTED, null, null, beforeAck);

        try (Admin admin = Kit.admin(bs)) {
            TopicDescription d = get(admin.describeTopics(List.of(dlq)).allTopicNames()).get(dlq);
            assertEquals(BROKER_PARTITIONS, d.partitions().size(), "partitions of the auto-created DLQ topic");
            d.partitions().forEach(p -> assertEquals(1, p.replicas().size(), "replicas of " + dlq + "-" + p.partition()));
        }
        Map<String, ConfigEntry> cfg = topicConfigs(bs, dlq);
        Map<String, String> dynamic = new TreeMap<>();
        cfg.forEach((name, e) -> {
            if (e.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG) {
                dynamic.put(name, e.value());
            }
        });
        assertEquals(Map.of(GROUP_ENABLE, "true", "message.timestamp.type", "CreateTime"), dynamic,
                "the auto-created DLQ topic's DYNAMIC_TOPIC_CONFIG entries");
        note("missingDlqTopicIsAutoCreated", d(dlq, cfg) + " " + show(dlqRecords));
    }

    private static String d(String topic, Map<String, ConfigEntry> cfg) {
        return topic + " " + GROUP_ENABLE + "=" + cfg.get(GROUP_ENABLE).value() + " (" + cfg.get(GROUP_ENABLE).source()
                + "), message.timestamp.type=" + cfg.get("message.timestamp.type").value()
                + " (" + cfg.get("message.timestamp.type").source() + ")";
    }

    /**
     * (6) Acquisition locks expiring at the delivery limit: with a 1 s lock, consumer a gets the
     * record (delivery count 1) and never acknowledges it, then consumer b gets it after a's lock
     * expired (delivery count 2) and never acknowledges it either. When b's lock expires the
     * broker writes it to the DLQ by itself (delivery count 2, the "exceeded" message), while no
     * consumer polls.
     */
    @Test
    void lockTimeoutAtTheDeliveryLimitWritesTheRecord() {
        int lockMs = 1000;
        String bs = broker.bootstrap();
        String topic = Kit.name("dlq-src-lock");
        String group = Kit.name("g-dlq-lock");
        String dlq = "dlq." + Kit.name("lock");
        Kit.createTopic(bs, topic, 1);
        enabledDlqTopic(bs, dlq, 1);
        dlqGroup(bs, group, dlq, "errors.deadletterqueue.copy.record.enable", "true",
                "share.record.lock.duration.ms", String.valueOf(lockMs));
        produce(bs, topic, 0, "k-lock", "timeout-me", "h", "v");

        long start = System.currentTimeMillis();
        long bGot;
        List<ConsumerRecord<byte[], byte[]>> dlqRecords;
        try (KafkaShareConsumer<byte[], byte[]> a = explicitConsumer(bs, group, "client.id", group + "-a");
             KafkaShareConsumer<byte[], byte[]> bc = explicitConsumer(bs, group, "client.id", group + "-b")) {
            a.subscribe(List.of(topic));
            List<String> gotA = new ArrayList<>();
            pollUntil(a, "a's record", WAIT, r -> gotA.add(describe(r)), () -> !gotA.isEmpty());
            assertEquals(List.of("p0@0(dc 1, timeout-me)"), gotA);
            assertEquals(Optional.of(lockMs), a.acquisitionLockTimeoutMs(), "acquisitionLockTimeoutMs");
            // a is neither polled nor closed from here on (explicit mode: it acknowledges nothing)

            bc.subscribe(List.of(topic));
            List<String> gotB = new ArrayList<>();
            pollUntil(bc, "the record at b after a's lock expired", WAIT, r -> gotB.add(describe(r)),
                    () -> !gotB.isEmpty());
            bGot = System.currentTimeMillis();
            assertEquals(List.of("p0@0(dc 2, timeout-me)"), gotB);
            // b is not polled again either: only the broker's lock timer can move the record on

            dlqRecords = dlqRecords(bs, dlq, 1);
        }
        ConsumerRecord<byte[], byte[]> r = dlqRecords.get(0);
        // two lock periods passed after the test started before the second lock expired
        assertDlqRecord(r, topic, 0, 0, group, 2, EXCEEDED, "k-lock", "timeout-me", start + 2L * lockMs);
        long afterB = r.timestamp() - bGot;
        assertTrue(afterB < lockMs + 5_000, "DLQ record written " + afterB + " ms after b's poll returned (lock "
                + lockMs + " ms): the expired lock at the delivery limit is not handled by a timer");
        note("lockTimeoutAtTheDeliveryLimitWritesTheRecord", "DLQ record written " + afterB
                + " ms after b's poll returned the record (dc 2), " + (r.timestamp() - start)
                + " ms after the test started; " + show(dlqRecords));
    }

    /**
     * (7a, 7b) A DLQ topic that cannot be used: its name lacks the {@code dlq.} prefix (the topic
     * exists, DLQ-enabled), or it exists without {@code errors.deadletterqueue.group.enable}.
     * The REJECT succeeds, the record is archived (a later record is the next and only one the
     * consumer gets) and nothing is written: once a valid DLQ write of another group, triggered
     * afterwards, has landed, both topics still have end offset 0.
     */
    @Test
    void unusableDlqTopicGetsNothingAndTheRecordIsArchived() {
        String bs = broker.bootstrap();
        String noPrefix = "noprefix-" + Kit.name("dlq");
        String disabled = "dlq." + Kit.name("disabled");
        String control = "dlq." + Kit.name("control");
        enabledDlqTopic(bs, noPrefix, 1);
        Kit.createTopic(bs, disabled, 1);
        enabledDlqTopic(bs, control, 1);
        assertEquals("false", topicConfigs(bs, disabled).get(GROUP_ENABLE).value());

        String topicP = Kit.name("dlq-src-noprefix");
        String groupP = Kit.name("g-dlq-noprefix");
        Kit.createTopic(bs, topicP, 1);
        dlqGroup(bs, groupP, noPrefix);
        rejectThenOnlyTheNextRecord(bs, topicP, groupP);

        String topicD = Kit.name("dlq-src-disabled");
        String groupD = Kit.name("g-dlq-disabled");
        Kit.createTopic(bs, topicD, 1);
        dlqGroup(bs, groupD, disabled);
        rejectThenOnlyTheNextRecord(bs, topicD, groupD);

        // the barrier: a valid DLQ write triggered after both rejects
        String topicC = Kit.name("dlq-src-control");
        String groupC = Kit.name("g-dlq-control");
        Kit.createTopic(bs, topicC, 1);
        dlqGroup(bs, groupC, control);
        produce(bs, topicC, 0, "k0", "reject-me");
        long beforeAck = consumeAndAck(bs, groupC, topicC, List.of("p0@0(dc 1, reject-me)"), r -> AcknowledgeType.REJECT);
        assertDlqRecord(dlqRecords(bs, control, 1).get(0), topicC, 0, 0, groupC, 1, REJECTED, null, null, beforeAck);

        assertEquals(Map.of(0, 0L), endOffsets(bs, noPrefix), "records in " + noPrefix + " (no dlq. prefix)");
        assertEquals(Map.of(0, 0L), endOffsets(bs, disabled), "records in " + disabled + " (" + GROUP_ENABLE + " false)");
        note("unusableDlqTopicGetsNothingAndTheRecordIsArchived", noPrefix + " and " + disabled
                + " empty after the control DLQ write landed");
    }

    /**
     * (7c) A missing {@code dlq.} topic on a broker with
     * {@code errors.deadletterqueue.auto.create.topics.enable=false} (a second broker, started
     * for this test): the REJECT succeeds, the record is archived (a later record is the next and
     * only one the consumer gets) and the topic is not created.
     */
    @Test
    void missingDlqTopicWithoutAutoCreateIsNotCreated() {
        Broker other = new Broker(List.of(AUTO_CREATE, "false",
                "--group-share-heartbeat-interval-ms", "1000")).start();
        boolean ok = false;
        try {
            String bs = other.bootstrap();
            String topic = Kit.name("dlq-src-missing");
            String group = Kit.name("g-dlq-missing");
            String dlq = "dlq." + Kit.name("missing");
            Kit.createTopic(bs, topic, 1);
            dlqGroup(bs, group, dlq);
            rejectThenOnlyTheNextRecord(bs, topic, group);
            try (Admin admin = Kit.admin(bs)) {
                assertFalse(get(admin.listTopics().names()).contains(dlq), dlq + " was created");
                Throwable t = Kit.failure(admin.describeTopics(List.of(dlq)).allTopicNames());
                assertInstanceOf(UnknownTopicOrPartitionException.class, t, String.valueOf(t));
            }
            note("missingDlqTopicWithoutAutoCreateIsNotCreated", dlq + " not created, the rejected record archived");
            ok = true;
        } finally {
            if (!ok) {
                System.out.println("===== ShareDlqTest.missingDlqTopicWithoutAutoCreateIsNotCreated FAILED: second broker's log =====\n"
                        + other.logTail(120) + "\n===== end of broker log =====");
            }
            other.stop();
            if (ok && !Boolean.getBoolean("compat.keep")) {
                other.cleanUp();
            }
        }
    }

    /**
     * (8) A group's {@code errors.deadletterqueue.topic.name} may not start with {@code __}:
     * InvalidConfigurationException with Kafka's message, and the group keeps no DLQ topic.
     */
    @Test
    void dlqTopicNameMustNotStartWithTwoUnderscores() {
        String bs = broker.bootstrap();
        String group = Kit.name("g-dlq-bad");
        ConfigResource r = new ConfigResource(ConfigResource.Type.GROUP, group);
        try (Admin admin = Kit.admin(bs)) {
            Throwable t = Kit.failure(admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                    new ConfigEntry("errors.deadletterqueue.topic.name", "__bad"), AlterConfigOp.OpType.SET)))).all());
            assertInstanceOf(InvalidConfigurationException.class, t, String.valueOf(t));
            assertEquals("errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'", t.getMessage());
            ConfigEntry e = get(admin.describeConfigs(List.of(r)).all()).get(r).get("errors.deadletterqueue.topic.name");
            assertNotNull(e, "errors.deadletterqueue.topic.name is described");
            assertEquals("", e.value(), "a refused change changes nothing");
            assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, e.source());
        }
    }

    /** (9) {@code share.version}: supported up to 2 and finalized at 2 (DescribeFeatures / ApiVersions). */
    @Test
    void shareVersionTwoIsFinalized() {
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            FeatureMetadata fm = get(admin.describeFeatures().featureMetadata());
            FinalizedVersionRange finalized = fm.finalizedFeatures().get("share.version");
            SupportedVersionRange supported = fm.supportedFeatures().get("share.version");
            assertNotNull(finalized, "share.version finalized: " + fm);
            assertNotNull(supported, "share.version supported: " + fm);
            assertEquals(2, finalized.maxVersionLevel(), "finalized share.version: " + finalized);
            assertEquals(2, supported.maxVersion(), "supported share.version: " + supported);
            note("shareVersionTwoIsFinalized", "finalized " + finalized + ", supported " + supported);
        }
    }
}
