package klamm.compat;

import static klamm.compat.CliToolsTest.CONFIGS;
import static klamm.compat.CliToolsTest.CONSOLE_CONSUMER;
import static klamm.compat.CliToolsTest.FEATURES;
import static klamm.compat.CliToolsTest.TOPICS;
import static klamm.compat.CliToolsTest.configLine;
import static klamm.compat.CliToolsTest.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The share-group dead-letter queue (KIP-1191, share.version 2) through Kafka 4.4's CLI tools:
 * kafka-features (share.version), kafka-configs on the group (errors.deadletterqueue.topic.name,
 * .copy.record.enable, the refusal of a '__' name), on the DLQ topic
 * (errors.deadletterqueue.group.enable) and on the broker (errors.deadletterqueue.auto.create.topics.enable,
 * .topic.name.prefix), and kafka-console-consumer printing the DLQ record a share consumer's REJECT
 * produced. One broker of its own; the steps run in order (the last one needs the DLQ topic of
 * the second and the group configs of the third).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ShareDlqToolsTest {
    static final String GROUP = "dlq-tools-g";
    static final String SOURCE = "dlq-tools-t";
    static final String DLQ = "dlq.x";
    static final String METRIC_NAME_WARNING = "WARNING: Due to limitations in metric names, topics with a period ('.') "
            + "or underscore ('_') could collide. To avoid issues it is best to use either, but not both.";
    static final Duration WAIT = Duration.ofSeconds(30);

    Broker broker;
    Admin admin;
    String bs;
    int nodeId;
    boolean dlqTopicCreated;

    @BeforeAll
    void startBroker() throws Exception {
        // Kafka hands a joining share member its assignment one heartbeat later: 1 s, not 5 s
        // (Kafka refuses an interval below group.share.min.heartbeat.interval.ms, which Klamm has not).
        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("group.share.heartbeat.interval.ms", "1000");
        if (Broker.isKafka()) settings.put("group.share.min.heartbeat.interval.ms", "1000");
        broker = Broker.start("share-dlq-tools", settings);
        bs = broker.bootstrap();
        admin = broker.admin();
        nodeId = admin.describeCluster().controller().get().id();
    }

    @AfterAll
    void stopBroker() {
        if (admin != null) admin.close(Duration.ofSeconds(5));
        if (broker != null) broker.close();
    }

    Tool.Result tool(String main, String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("--bootstrap-server", bs));
        all.addAll(Arrays.asList(args));
        return Tool.java(main, null, all.toArray(new String[0]));
    }

    Tool.Result groupConfigs(String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("--entity-type", "groups", "--entity-name", GROUP));
        all.addAll(Arrays.asList(args));
        return tool(CONFIGS, all.toArray(new String[0]));
    }

    /** The tool's lines with the bootstrap address replaced by "B" and the stack frames left out. */
    List<String> normalised(String text) {
        return text.lines().filter(l -> !l.startsWith("\tat ")).map(l -> l.replace(bs, "B")).collect(Collectors.toList());
    }

    /**
     * kafka-features describe: share.version supported 0-2, finalized at 2. Only that line (the
     * others differ: Kafka lists its KRaft-only features); its Epoch, the metadata offset of
     * the finalized features on Kafka (54 here), 1 on Klamm, is replaced by N.
     */
    @Test
    @Order(1)
    void shareVersion2() throws Exception {
        Tool.Result describe = ok(tool(FEATURES, "describe"));
        List<String> lines = describe.lines().stream().filter(l -> l.startsWith("Feature: share.version "))
                .map(l -> l.replaceAll("Epoch: \\d+$", "Epoch: N")).collect(Collectors.toList());
        // FeatureCommand's format: "Feature: %-40s  SupportedMinVersion: %-15s  SupportedMaxVersion: %-15s
        // FinalizedVersionLevel: %-15s  Epoch: %s"
        assertEquals(List.of(String.format("Feature: %-40s  SupportedMinVersion: %-15s  SupportedMaxVersion: %-15s  "
                + "FinalizedVersionLevel: %-15s  Epoch: N", "share.version", "0", "2", "2")), lines, describe.toString());
    }

    /** kafka-topics --create of the DLQ topic with errors.deadletterqueue.group.enable=true. */
    void createDlqTopic() throws Exception {
        if (dlqTopicCreated) return;
        Tool.Result create = ok(tool(TOPICS, "--create", "--topic", DLQ, "--partitions", "1", "--replication-factor", "1",
                "--config", "errors.deadletterqueue.group.enable=true"));
        assertEquals(METRIC_NAME_WARNING + "\nCreated topic " + DLQ + ".", create.stdout.strip(), create.toString());
        dlqTopicCreated = true;
    }

    /**
     * The DLQ topic: kafka-configs --describe shows errors.deadletterqueue.group.enable=true as
     * its one dynamic config, and --describe --all lists it with the same line.
     */
    @Test
    @Order(2)
    void dlqTopicConfig() throws Exception {
        createDlqTopic();
        String line = "  errors.deadletterqueue.group.enable=true sensitive=false "
                + "synonyms={DYNAMIC_TOPIC_CONFIG:errors.deadletterqueue.group.enable=true}";
        Tool.Result describe = ok(tool(CONFIGS, "--entity-type", "topics", "--entity-name", DLQ, "--describe"));
        assertEquals("Dynamic configs for topic " + DLQ + " are:\n" + line, describe.stdout.strip(), describe.toString());
        Tool.Result all = ok(tool(CONFIGS, "--entity-type", "topics", "--entity-name", DLQ, "--describe", "--all"));
        assertEquals(line, configLine(all, "errors.deadletterqueue.group.enable"), all.toString());
    }

    static final String GROUP_DESCRIBE = "Dynamic configs for group " + GROUP + " are:\n"
            + "  errors.deadletterqueue.copy.record.enable=true sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:"
            + "errors.deadletterqueue.copy.record.enable=true, DEFAULT_CONFIG:errors.deadletterqueue.copy.record.enable=false}\n"
            + "  errors.deadletterqueue.topic.name=" + DLQ + " sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:"
            + "errors.deadletterqueue.topic.name=" + DLQ + ", DEFAULT_CONFIG:errors.deadletterqueue.topic.name=}";

    /**
     * The group's DLQ configs: --alter --add-config of the topic name and copy.record.enable,
     * then --describe (the whole output); a name starting with "__" is refused with Kafka's
     * InvalidConfigurationException message and the configs stay.
     */
    @Test
    @Order(3)
    void groupDlqConfigs() throws Exception {
        Tool.Result alter = ok(groupConfigs("--alter", "--add-config",
                "errors.deadletterqueue.topic.name=" + DLQ + ",errors.deadletterqueue.copy.record.enable=true"));
        assertEquals("Completed updating config for group " + GROUP + ".", alter.stdout.strip(), alter.toString());
        Tool.Result describe = ok(groupConfigs("--describe"));
        assertEquals(GROUP_DESCRIBE, describe.stdout.strip(), describe.toString());

        Tool.Result bad = groupConfigs("--alter", "--add-config", "errors.deadletterqueue.topic.name=__bad");
        String message = "org.apache.kafka.common.errors.InvalidConfigurationException: "
                + "errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'";
        assertEquals(1, bad.exit, bad.toString());
        assertEquals("", bad.stdout, bad.toString());
        assertEquals(List.of(
                "Error while executing config command with args '--bootstrap-server B --entity-type groups --entity-name "
                        + GROUP + " --alter --add-config errors.deadletterqueue.topic.name=__bad'",
                "java.util.concurrent.ExecutionException: " + message,
                "Caused by: " + message), normalised(bad.stderr), bad.toString());

        Tool.Result after = ok(groupConfigs("--describe"));
        assertEquals(GROUP_DESCRIBE, after.stdout.strip(), after.toString());
    }

    /**
     * The broker's DLQ configs in kafka-configs --describe --all (their default sources); only
     * these two lines, Klamm's broker config listing being a subset of Kafka's.
     */
    @Test
    @Order(4)
    void brokerDlqConfigs() throws Exception {
        Tool.Result all = ok(tool(CONFIGS, "--entity-type", "brokers", "--entity-name", String.valueOf(nodeId),
                "--describe", "--all"));
        assertEquals(List.of(
                "  errors.deadletterqueue.auto.create.topics.enable=false sensitive=false "
                        + "synonyms={DEFAULT_CONFIG:errors.deadletterqueue.auto.create.topics.enable=false}",
                "  errors.deadletterqueue.topic.name.prefix=dlq. sensitive=false "
                        + "synonyms={DEFAULT_CONFIG:errors.deadletterqueue.topic.name.prefix=dlq.}"),
                Arrays.asList(configLine(all, "errors.deadletterqueue.auto.create.topics.enable"),
                        configLine(all, "errors.deadletterqueue.topic.name.prefix")), all.toString());
    }

    /**
     * End to end: one record (key k, value v) to a 1-partition topic; the group (earliest,
     * DLQ topic, copy on) set with kafka-configs; a share consumer (explicit acknowledgement)
     * REJECTs it; kafka-console-consumer then prints the DLQ record with the original key and
     * value and exactly Kafka's six __dlq.errors.* headers, and the DLQ topic holds one record.
     * (--formatter-property is 4.4's name of --property, which is deprecated and prints a warning.)
     */
    @Test
    @Order(5)
    void rejectedRecordInDlq() throws Exception {
        createDlqTopic();
        Clients.createTopic(admin, SOURCE, 1, Map.of());
        try (KafkaProducer<String, String> producer = Clients.producer(bs)) {
            assertEquals(0L, producer.send(new ProducerRecord<>(SOURCE, 0, "k", "v")).get().offset());
        }
        Tool.Result alter = ok(groupConfigs("--alter", "--add-config", "share.auto.offset.reset=earliest,"
                + "errors.deadletterqueue.topic.name=" + DLQ + ",errors.deadletterqueue.copy.record.enable=true"));
        assertEquals("Completed updating config for group " + GROUP + ".", alter.stdout.strip(), alter.toString());

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bs);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, GROUP);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "dlq-tools-member");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit");
        try (KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            c.subscribe(List.of(SOURCE));
            List<String> got = new ArrayList<>();
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (got.isEmpty()) {
                if (System.nanoTime() > deadline) fail("timed out after " + WAIT + " waiting for the record");
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    got.add("p" + r.partition() + "@" + r.offset() + " " + r.key() + "/" + r.value()
                            + " dc " + r.deliveryCount().map(String::valueOf).orElse("-"));
                    c.acknowledge(r, AcknowledgeType.REJECT);
                }
            }
            assertEquals(List.of("p0@0 k/v dc 1"), got, "the share consumer's delivery");
            c.commitSync().forEach((tp, e) -> assertEquals(Optional.empty(), e, "acknowledgement of " + tp));
        }

        Tool.Result dlq = ok(tool(CONSOLE_CONSUMER, "--topic", DLQ, "--from-beginning", "--max-messages", "1",
                "--formatter-property", "print.key=true", "--formatter-property", "print.headers=true", "--timeout-ms", "30000"));
        assertEquals("__dlq.errors.topic:" + SOURCE + ",__dlq.errors.partition:0,__dlq.errors.offset:0,"
                + "__dlq.errors.group:" + GROUP + ",__dlq.errors.delivery.count:1,"
                + "__dlq.errors.message:Offset rejected by client.\tk\tv", dlq.stdout.strip(), dlq.toString());
        assertTrue(dlq.stderr.contains("Processed a total of 1 messages"), dlq.toString());
        // exactly one DLQ record
        TopicPartition tp = new TopicPartition(DLQ, 0);
        assertEquals(Map.of(tp, 1L), Clients.offsets(admin, List.of(tp), OffsetSpec.latest()), "DLQ end offset");
    }
}
