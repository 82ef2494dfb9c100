package klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Kafka 4.4's command-line tools (the main classes behind bin/kafka-*.sh, from
 * org.apache.kafka:kafka-tools) run as child JVMs against one broker; each test checks
 * what the tool printed and, with the Java admin/consumer, what it did.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliToolsTest {
    static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    static final String CONFIGS = "org.apache.kafka.tools.ConfigCommand";
    static final String GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    static final String DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand";
    static final String GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell";
    static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
    static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    static final String PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance";
    static final String CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance";
    static final String TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand";

    Broker broker;
    Admin admin;
    String bs;
    int nodeId;

    @BeforeAll
    void startBroker() throws Exception {
        broker = Broker.start("tools", Map.of());
        bs = broker.bootstrap();
        admin = broker.admin();
        nodeId = admin.describeCluster().controller().get().id();
        int anyNode = admin.describeCluster().nodes().get().iterator().next().id();
        assertEquals(nodeId, anyNode, "single node: controller is the broker");
    }

    @AfterAll
    void stopBroker() {
        if (admin != null) admin.close(Duration.ofSeconds(5));
        if (broker != null) broker.close();
        System.out.println("[tool] " + Tool.INVOCATIONS.get() + " tool invocations");
    }

    Tool.Result tool(String main, String... args) throws Exception {
        return toolWithInput(main, null, args);
    }

    Tool.Result toolWithInput(String main, String stdin, String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("--bootstrap-server", bs));
        all.addAll(Arrays.asList(args));
        return Tool.java(main, stdin, all.toArray(new String[0]));
    }

    static Tool.Result ok(Tool.Result r) {
        assertEquals(0, r.exit, "tool failed: " + r);
        return r;
    }

    // ---------------------------------------------------------------- kafka-topics

    static final Pattern TOPIC_LINE = Pattern.compile(
            "^Topic: (\\S+)\\tTopicId: (\\S+)\\tPartitionCount: (\\d+)\\tReplicationFactor: (\\d+)\\tConfigs: ?(.*)$");
    static final Pattern PARTITION_LINE = Pattern.compile(
            "^\\tTopic: (\\S+)\\tPartition: (\\d+)\\tLeader: (-?\\d+|none)\\tReplicas: ([\\d,]*)\\tIsr: ([\\d,]*)(\\t.*)?$");

    /** Parses kafka-topics --describe of one topic: checks every line, returns the PartitionCount. */
    int checkDescribe(Tool.Result r, String topic, Map<String, String> configs) {
        List<String> lines = r.lines().stream().filter(l -> !l.isBlank()).collect(Collectors.toList());
        assertFalse(lines.isEmpty(), "no describe output: " + r);
        Matcher m = TOPIC_LINE.matcher(lines.get(0));
        assertTrue(m.matches(), "topic line: " + lines.get(0) + r);
        assertEquals(topic, m.group(1));
        assertTrue(m.group(2).matches("[A-Za-z0-9_-]{22}"), "TopicId: " + m.group(2));
        int count = Integer.parseInt(m.group(3));
        assertEquals("1", m.group(4), "ReplicationFactor");
        Map<String, String> shown = new HashMap<>();
        for (String kv : m.group(5).split(",")) {
            if (kv.contains("=")) shown.put(kv.substring(0, kv.indexOf('=')), kv.substring(kv.indexOf('=') + 1));
        }
        configs.forEach((k, v) -> assertEquals(v, shown.get(k), "Configs: " + k + " in " + lines.get(0)));
        assertEquals(count + 1, lines.size(), "one line per partition: " + r);
        String id = String.valueOf(nodeId);
        for (int p = 0; p < count; p++) {
            Matcher pm = PARTITION_LINE.matcher(lines.get(p + 1));
            assertTrue(pm.matches(), "partition line: " + lines.get(p + 1) + r);
            assertEquals(topic, pm.group(1));
            assertEquals(p, Integer.parseInt(pm.group(2)));
            assertEquals(id, pm.group(3), "Leader");
            assertEquals(id, pm.group(4), "Replicas");
            assertEquals(id, pm.group(5), "Isr");
        }
        return count;
    }

    @Test
    @Order(1)
    void kafkaTopics() throws Exception {
        String t = "cli-topics";
        Tool.Result create = ok(tool(TOPICS, "--create", "--topic", t, "--partitions", "3", "--replication-factor", "1",
                "--config", "retention.ms=3600000", "--config", "max.message.bytes=500000"));
        assertTrue(create.stdout.contains("Created topic " + t + "."), create.toString());

        Tool.Result again = tool(TOPICS, "--create", "--topic", t, "--partitions", "3", "--replication-factor", "1");
        assertNotEquals(0, again.exit, again.toString());
        assertTrue((again.stdout + again.stderr).contains("TopicExistsException")
                && (again.stdout + again.stderr).contains("'" + t + "' already exists"), again.toString());

        Tool.Result list = ok(tool(TOPICS, "--list"));
        assertTrue(list.lines().contains(t), list.toString());

        Tool.Result describe = ok(tool(TOPICS, "--describe", "--topic", t));
        assertEquals(3, checkDescribe(describe, t, Map.of("retention.ms", "3600000", "max.message.bytes", "500000")));
        // the same as the Java admin reports
        assertEquals("3600000", Clients.topicConfig(admin, t, "retention.ms").value());

        ok(tool(TOPICS, "--alter", "--topic", t, "--partitions", "5"));
        Clients.waitFor("5 partitions", 30_000, () -> {
            try {
                return admin.describeTopics(List.of(t)).allTopicNames().get().get(t).partitions().size() == 5;
            } catch (Exception e) {
                return false;
            }
        });
        Tool.Result described = ok(tool(TOPICS, "--describe", "--topic", t));
        assertEquals(5, checkDescribe(described, t, Map.of("retention.ms", "3600000")));

        Tool.Result shrink = tool(TOPICS, "--alter", "--topic", t, "--partitions", "2");
        assertNotEquals(0, shrink.exit, shrink.toString());
        assertTrue((shrink.stdout + shrink.stderr).contains("InvalidPartitionsException"), shrink.toString());

        ok(tool(TOPICS, "--delete", "--topic", t));
        Clients.waitFor("topic deleted", 30_000, () -> {
            try {
                return !admin.listTopics().names().get().contains(t);
            } catch (Exception e) {
                return false;
            }
        });
        Tool.Result after = ok(tool(TOPICS, "--list"));
        assertFalse(after.lines().contains(t), after.toString());
    }

    // ---------------------------------------------------------------- kafka-configs

    /** The "  name=value sensitive=false synonyms={...}" line of a ConfigCommand --describe. */
    static String configLine(Tool.Result r, String name) {
        return r.lines().stream().filter(l -> l.startsWith("  " + name + "=")).findFirst().orElse(null);
    }

    @Test
    @Order(2)
    void kafkaConfigsTopic() throws Exception {
        String t = "cli-configs";
        Clients.createTopic(admin, t, 1, Map.of());
        Tool.Result alter = ok(tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--alter",
                "--add-config", "retention.ms=7200000,cleanup.policy=compact,min.cleanable.dirty.ratio=0.3"));
        assertTrue(alter.stdout.contains("Completed updating config for topic " + t + "."), alter.toString());

        Tool.Result describe = ok(tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--describe"));
        assertTrue(describe.stdout.contains("Dynamic configs for topic " + t + " are:"), describe.toString());
        String line = configLine(describe, "retention.ms");
        assertTrue(line != null && line.startsWith("  retention.ms=7200000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=7200000"),
                "retention.ms line: " + describe);
        String policy = configLine(describe, "cleanup.policy");
        assertTrue(policy != null && policy.startsWith("  cleanup.policy=compact sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact"),
                "cleanup.policy line: " + describe);
        assertTrue(configLine(describe, "min.cleanable.dirty.ratio") != null, describe.toString());
        long dynamic = describe.lines().stream().filter(l -> l.startsWith("  ")).count();
        assertEquals(3, dynamic, "only the three dynamic configs are listed: " + describe);

        Tool.Result delete = ok(tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--alter",
                "--delete-config", "retention.ms,min.cleanable.dirty.ratio"));
        assertTrue(delete.stdout.contains("Completed updating config for topic " + t + "."), delete.toString());
        ConfigEntry retention = Clients.topicConfig(admin, t, "retention.ms");
        assertEquals("604800000", retention.value(), "retention.ms back to Kafka's default");
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, retention.source());
        assertEquals("compact", Clients.topicConfig(admin, t, "cleanup.policy").value());

        Tool.Result bad = tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--alter",
                "--add-config", "cleanup.policy=bogus");
        assertNotEquals(0, bad.exit, bad.toString());
        assertTrue((bad.stdout + bad.stderr).contains("InvalidConfigurationException"), bad.toString());
    }

    /**
     * kafka-configs --entity-type users: SCRAM credentials (KIP-554). The tool salts the
     * password and sends AlterUserScramCredentials; the admin client reads them back.
     */
    @Test
    @Order(2)
    void kafkaConfigsUsers() throws Exception {
        // Two mechanisms in one command are one request with two changes for the user: Kafka
        // 4.4 refuses that too (checked against the reference broker, 2026-12-06).
        Tool.Result both = tool(CONFIGS, "--entity-type", "users", "--entity-name", "tool-user", "--alter",
                "--add-config", "SCRAM-SHA-256=[iterations=8192,password=tool-pw],SCRAM-SHA-512=[password=tool-pw]");
        assertNotEquals(0, both.exit, both.toString());
        assertTrue(both.stderr.contains("DuplicateResourceException: A user credential cannot be altered twice in the same request"),
                both.toString());
        for (String config : List.of("SCRAM-SHA-256=[iterations=8192,password=tool-pw]", "SCRAM-SHA-512=[password=tool-pw]")) {
            Tool.Result alter = ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", "tool-user", "--alter",
                    "--add-config", config));
            assertTrue(alter.stdout.contains("Completed updating config for user tool-user."), alter.toString());
        }
        var described = admin.describeUserScramCredentials(List.of("tool-user")).description("tool-user").get();
        Map<String, Integer> iterations = described.credentialInfos().stream().collect(Collectors.toMap(
                c -> c.mechanism().mechanismName(), c -> c.iterations()));
        assertEquals(Map.of("SCRAM-SHA-256", 8192, "SCRAM-SHA-512", 4096), iterations);

        Tool.Result delete = ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", "tool-user", "--alter",
                "--delete-config", "SCRAM-SHA-512"));
        assertTrue(delete.stdout.contains("Completed updating config for user tool-user."), delete.toString());
        described = admin.describeUserScramCredentials(List.of("tool-user")).description("tool-user").get();
        assertEquals(1, described.credentialInfos().size(), described.toString());
    }

    /**
     * kafka-configs --entity-type users|clients|ips: client quotas (KIP-546), set, described,
     * deleted, for a user, a (user, client id) pair, the default client id and an IP; the
     * admin client reads the same values back; Kafka's refusals of a bad value.
     */
    @Test
    @Order(2)
    void kafkaConfigsQuotas() throws Exception {
        String user = "quota-user-" + System.nanoTime();
        Tool.Result alter = ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", user, "--alter",
                "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152"));
        assertTrue(alter.stdout.contains("Completed updating config for user " + user), alter.toString());
        ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", user, "--entity-type", "clients",
                "--entity-name", "app", "--alter", "--add-config", "producer_byte_rate=4096"));
        ok(tool(CONFIGS, "--entity-type", "clients", "--entity-default", "--alter",
                "--add-config", "request_percentage=150.5"));
        ok(tool(CONFIGS, "--entity-type", "ips", "--entity-name", "127.0.0.2", "--alter",
                "--add-config", "connection_creation_rate=5"));

        Tool.Result u = ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", user, "--describe"));
        assertTrue(u.stdout.contains("producer_byte_rate=1048576") && u.stdout.contains("consumer_byte_rate=2097152"),
                u.toString());
        Tool.Result uc = ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", user, "--entity-type", "clients",
                "--entity-name", "app", "--describe"));
        assertTrue(uc.stdout.contains("producer_byte_rate=4096"), uc.toString());
        Tool.Result c = ok(tool(CONFIGS, "--entity-type", "clients", "--entity-default", "--describe"));
        assertTrue(c.stdout.contains("request_percentage=150.5"), c.toString());
        Tool.Result ip = ok(tool(CONFIGS, "--entity-type", "ips", "--entity-name", "127.0.0.2", "--describe"));
        assertTrue(ip.stdout.contains("connection_creation_rate=5"), ip.toString());
        Tool.Result allUsers = ok(tool(CONFIGS, "--entity-type", "users", "--describe"));
        assertTrue(allUsers.stdout.contains(user), allUsers.toString());

        var filter = org.apache.kafka.common.quota.ClientQuotaFilter.containsOnly(List.of(
                org.apache.kafka.common.quota.ClientQuotaFilterComponent.ofEntity("user", user)));
        var described = admin.describeClientQuotas(filter).entities().get();
        assertEquals(Map.of(new org.apache.kafka.common.quota.ClientQuotaEntity(Map.of("user", user)),
                Map.of("producer_byte_rate", 1048576.0, "consumer_byte_rate", 2097152.0)), described);

        Tool.Result fractional = tool(CONFIGS, "--entity-type", "users", "--entity-name", user, "--alter",
                "--add-config", "producer_byte_rate=1.5");
        assertNotEquals(0, fractional.exit, fractional.toString());
        Tool.Result wrongKey = tool(CONFIGS, "--entity-type", "ips", "--entity-name", "127.0.0.2", "--alter",
                "--add-config", "producer_byte_rate=10");
        assertNotEquals(0, wrongKey.exit, wrongKey.toString());

        ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", user, "--alter",
                "--delete-config", "producer_byte_rate"));
        described = admin.describeClientQuotas(filter).entities().get();
        assertEquals(Map.of(new org.apache.kafka.common.quota.ClientQuotaEntity(Map.of("user", user)),
                Map.of("consumer_byte_rate", 2097152.0)), described);
        for (String[] entity : List.of(new String[] {"clients", "--entity-default", "request_percentage"},
                new String[] {"ips", "127.0.0.2", "connection_creation_rate"})) {
            List<String> args = new java.util.ArrayList<>(List.of("--entity-type", entity[0]));
            if (entity[1].startsWith("--")) args.add(entity[1]); else args.addAll(List.of("--entity-name", entity[1]));
            args.addAll(List.of("--alter", "--delete-config", entity[2]));
            ok(tool(CONFIGS, args.toArray(new String[0])));
        }
        ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", user, "--alter", "--delete-config", "consumer_byte_rate"));
        ok(tool(CONFIGS, "--entity-type", "users", "--entity-name", user, "--entity-type", "clients",
                "--entity-name", "app", "--alter", "--delete-config", "producer_byte_rate"));
        assertEquals(Map.of(), admin.describeClientQuotas(org.apache.kafka.common.quota.ClientQuotaFilter.all())
                .entities().get());
    }

    /** `kafka-configs --entity-type groups`: a share group's configs set before it exists. */
    @Test
    @Order(2)
    void kafkaConfigsGroups() throws Exception {
        String group = "cli-share-group-" + System.nanoTime();
        Tool.Result alter = ok(tool(CONFIGS, "--entity-type", "groups", "--entity-name", group, "--alter",
                "--add-config", "share.auto.offset.reset=earliest,share.delivery.count.limit=3"));
        assertTrue(alter.stdout.contains("Completed updating config for group " + group + "."), alter.toString());
        Tool.Result describe = ok(tool(CONFIGS, "--entity-type", "groups", "--entity-name", group, "--describe"));
        assertTrue(describe.stdout.contains("Dynamic configs for group " + group + " are:"), describe.toString());
        assertTrue(describe.stdout.contains("share.auto.offset.reset=earliest sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:share.auto.offset.reset=earliest, DEFAULT_CONFIG:share.auto.offset.reset=latest}"),
                describe.toString());
        assertTrue(describe.stdout.contains("share.delivery.count.limit=3 sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:share.delivery.count.limit=3, DEFAULT_CONFIG:group.share.delivery.count.limit=5}"),
                describe.toString());
        Tool.Result all = ok(tool(CONFIGS, "--entity-type", "groups", "--entity-name", group, "--describe", "--all"));
        assertTrue(all.stdout.contains("share.record.lock.duration.ms=30000 sensitive=false synonyms={DEFAULT_CONFIG:group.share.record.lock.duration.ms=30000}"),
                all.toString());
        assertTrue(all.stdout.contains("consumer.session.timeout.ms="), all.toString());
        Tool.Result everyGroup = ok(tool(CONFIGS, "--entity-type", "groups", "--describe"));
        assertTrue(everyGroup.stdout.contains("Dynamic configs for group " + group + " are:"), everyGroup.toString());

        Tool.Result bad = tool(CONFIGS, "--entity-type", "groups", "--entity-name", group, "--alter",
                "--add-config", "share.delivery.count.limit=11");
        assertNotEquals(0, bad.exit, bad.toString());
        assertTrue(bad.toString().contains("share.delivery.count.limit must be in the range 2 to 10 inclusive."), bad.toString());

        ok(tool(CONFIGS, "--entity-type", "groups", "--entity-name", group, "--alter",
                "--delete-config", "share.auto.offset.reset,share.delivery.count.limit"));
        Tool.Result gone = ok(tool(CONFIGS, "--entity-type", "groups", "--entity-name", group, "--describe"));
        assertTrue(gone.stdout.contains("The group '" + group + "' doesn't exist and doesn't have dynamic config."),
                gone.toString());
    }

    @Test
    @Order(3)
    void kafkaConfigsBroker() throws Exception {
        String id = String.valueOf(nodeId);
        String t = "cli-broker-configs";
        Clients.createTopic(admin, t, 1, Map.of());

        Tool.Result alter = ok(tool(CONFIGS, "--entity-type", "brokers", "--entity-name", id, "--alter",
                "--add-config", "log.retention.ms=86400000"));
        assertTrue(alter.stdout.contains("Completed updating config for broker " + id + "."), alter.toString());

        Tool.Result describe = ok(tool(CONFIGS, "--entity-type", "brokers", "--entity-name", id, "--describe"));
        assertTrue(describe.stdout.contains("Dynamic configs for broker " + id + " are:"), describe.toString());
        String line = configLine(describe, "log.retention.ms");
        assertTrue(line != null && line.startsWith("  log.retention.ms=86400000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=86400000"),
                "log.retention.ms line: " + describe);
        // a topic without its own retention.ms follows the dynamic broker config
        ConfigEntry inherited = Clients.topicConfig(admin, t, "retention.ms");
        assertEquals("86400000", inherited.value(), inherited.toString());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, inherited.source());

        Tool.Result delete = ok(tool(CONFIGS, "--entity-type", "brokers", "--entity-name", id, "--alter",
                "--delete-config", "log.retention.ms"));
        assertTrue(delete.stdout.contains("Completed updating config for broker " + id + "."), delete.toString());
        ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, id);
        ConfigEntry back = admin.describeConfigs(List.of(res)).all().get().get(res).get("log.retention.ms");
        assertTrue(back == null || back.source() != ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, String.valueOf(back));
        assertEquals("604800000", Clients.topicConfig(admin, t, "retention.ms").value());

        // the cluster-wide default (--entity-default)
        Tool.Result def = ok(tool(CONFIGS, "--entity-type", "brokers", "--entity-default", "--alter",
                "--add-config", "log.retention.ms=43200000"));
        assertTrue(def.stdout.contains("Completed updating default config for brokers in the cluster."), def.toString());
        ConfigEntry fromDefault = Clients.topicConfig(admin, t, "retention.ms");
        assertEquals("43200000", fromDefault.value(), fromDefault.toString());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, fromDefault.source());
        admin.incrementalAlterConfigs(Map.of(new ConfigResource(ConfigResource.Type.BROKER, ""),
                List.of(new org.apache.kafka.clients.admin.AlterConfigOp(new ConfigEntry("log.retention.ms", ""),
                        org.apache.kafka.clients.admin.AlterConfigOp.OpType.DELETE)))).all().get();
    }

    // ---------------------------------------------------------------- kafka-consumer-groups

    /** Rows of a ConsumerGroupCommand table, as maps from the header's column names. */
    static List<Map<String, String>> table(Tool.Result r, String firstColumn) {
        List<String> lines = r.lines();
        List<Map<String, String>> rows = new ArrayList<>();
        List<String> header = null;
        for (String l : lines) {
            if (l.isBlank()) continue;
            String[] cells = l.trim().split("\\s+");
            if (cells[0].equals(firstColumn)) {
                header = Arrays.asList(cells);
                continue;
            }
            if (header == null) continue;
            assertEquals(header.size(), cells.length, "cells of row '" + l + "'" + r);
            Map<String, String> row = new LinkedHashMap<>();
            for (int i = 0; i < cells.length; i++) row.put(header.get(i), cells[i]);
            rows.add(row);
        }
        assertTrue(header != null, "no table header " + firstColumn + r);
        return rows;
    }

    static Map<String, String> rowFor(List<Map<String, String>> rows, String topic, int partition) {
        return rows.stream().filter(r -> topic.equals(r.get("TOPIC")) && String.valueOf(partition).equals(r.get("PARTITION")))
                .findFirst().orElseThrow(() -> new AssertionError("no row " + topic + "-" + partition + " in " + rows));
    }

    @Test
    @Order(4)
    void kafkaConsumerGroups() throws Exception {
        String t = "cli-groups", g = "cli-group";
        Clients.createTopic(admin, t, 2, Map.of());
        Clients.produce(bs, t, 0, 10);
        Clients.produce(bs, t, 1, 6);
        TopicPartition p0 = new TopicPartition(t, 0), p1 = new TopicPartition(t, 1);

        // A live member that committed 7 of 10 on p0 and 6 of 6 on p1.
        try (Member member = new Member(bs, g, t, 2, Map.of(p0, 7L, p1, 6L), Map.of("client.id", "cli-member"))) {
            Tool.Result list = ok(tool(GROUPS, "--list"));
            assertTrue(list.lines().contains(g), list.toString());

            Tool.Result active = ok(tool(GROUPS, "--describe", "--group", g));
            List<Map<String, String>> rows = table(active, "GROUP");
            assertEquals(2, rows.size(), active.toString());
            Map<String, String> r0 = rowFor(rows, t, 0), r1 = rowFor(rows, t, 1);
            assertEquals(List.of(g, "7", "10", "3"), List.of(r0.get("GROUP"), r0.get("CURRENT-OFFSET"), r0.get("LOG-END-OFFSET"), r0.get("LAG")));
            assertEquals(List.of(g, "6", "6", "0"), List.of(r1.get("GROUP"), r1.get("CURRENT-OFFSET"), r1.get("LOG-END-OFFSET"), r1.get("LAG")));
            for (Map<String, String> r : rows) {
                assertTrue(r.get("CONSUMER-ID").startsWith("cli-member-"), "CONSUMER-ID " + r);
                assertEquals("cli-member", r.get("CLIENT-ID"));
                assertEquals("/127.0.0.1", r.get("HOST"));
            }
        }

        Tool.Result empty = ok(tool(GROUPS, "--describe", "--group", g));
        // Kafka prints this line on stderr
        assertTrue((empty.stdout + empty.stderr).contains("Consumer group '" + g + "' has no active members."), empty.toString());
        List<Map<String, String>> rows = table(empty, "GROUP");
        Map<String, String> r0 = rowFor(rows, t, 0), r1 = rowFor(rows, t, 1);
        assertEquals(List.of("7", "10", "3", "-"), List.of(r0.get("CURRENT-OFFSET"), r0.get("LOG-END-OFFSET"), r0.get("LAG"), r0.get("CONSUMER-ID")));
        assertEquals(List.of("6", "6", "0", "-"), List.of(r1.get("CURRENT-OFFSET"), r1.get("LOG-END-OFFSET"), r1.get("LAG"), r1.get("CONSUMER-ID")));

        Tool.Result reset = ok(tool(GROUPS, "--reset-offsets", "--group", g, "--topic", t, "--to-earliest", "--execute"));
        List<Map<String, String>> resetRows = table(reset, "GROUP");
        assertEquals("0", rowFor(resetRows, t, 0).get("NEW-OFFSET"), reset.toString());
        assertEquals("0", rowFor(resetRows, t, 1).get("NEW-OFFSET"), reset.toString());
        Map<TopicPartition, OffsetAndMetadata> now = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get();
        assertEquals(0L, now.get(p0).offset());
        assertEquals(0L, now.get(p1).offset());

        Tool.Result delete = ok(tool(GROUPS, "--delete", "--group", g));
        assertTrue(delete.stdout.contains("Deletion of requested consumer groups ('" + g + "') was successful."), delete.toString());
        Set<String> groups = admin.listGroups().all().get().stream().map(x -> x.groupId()).collect(Collectors.toSet());
        assertFalse(groups.contains(g), "group still listed: " + groups);
        assertTrue(admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get().isEmpty(), "offsets gone");
    }

    /** A group member in a thread of its own: joins, commits the given offsets, then stays (paused) until closed. */
    static final class Member implements AutoCloseable {
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        final CountDownLatch committed = new CountDownLatch(1);
        final Thread thread;

        Member(String bs, String group, String topic, int partitions, Map<TopicPartition, Long> commit,
               Map<String, String> props) throws Exception {
            thread = new Thread(() -> {
                Map<String, String> all = new HashMap<>(props);
                if (!"consumer".equals(all.get("group.protocol"))) {
                    all.put("session.timeout.ms", "10000");   // classic protocol only
                    all.put("heartbeat.interval.ms", "500");
                }
                try (KafkaConsumer<String, String> c = Clients.consumer(bs, group, all)) {
                    c.subscribe(List.of(topic));
                    long deadline = System.currentTimeMillis() + 60_000;
                    while (c.assignment().size() < partitions && System.currentTimeMillis() < deadline) c.poll(Duration.ofMillis(100));
                    if (c.assignment().size() < partitions) throw new AssertionError("no assignment: " + c.assignment());
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    commit.forEach((tp, o) -> offsets.put(tp, new OffsetAndMetadata(o)));
                    c.commitSync(offsets);
                    committed.countDown();
                    while (!stop.get() && System.currentTimeMillis() < deadline + 60_000) {
                        c.pause(c.assignment());
                        c.poll(Duration.ofMillis(100));
                    }
                } catch (Throwable e) {
                    failure.set(e);
                    committed.countDown();
                }
            }, "member-" + group);
            thread.start();
            assertTrue(committed.await(70, TimeUnit.SECONDS), "member did not commit");
            if (failure.get() != null) fail("member failed", failure.get());
        }

        @Override
        public void close() throws Exception {
            stop.set(true);
            thread.join(30_000);
            if (failure.get() != null) fail("member failed", failure.get());
        }
    }

    @Test
    @Order(5)
    void kafkaConsumerGroupsConsumerProtocol() throws Exception {
        // a KIP-848 group (group.protocol=consumer): ConsumerGroupDescribe instead of DescribeGroups
        String t = "cli-groups-848", g = "cli-group-848";
        Clients.createTopic(admin, t, 3, Map.of());
        for (int p = 0; p < 3; p++) Clients.produce(bs, t, p, 5);
        TopicPartition p0 = new TopicPartition(t, 0), p1 = new TopicPartition(t, 1), p2 = new TopicPartition(t, 2);
        try (Member member = new Member(bs, g, t, 3, Map.of(p0, 5L, p1, 2L, p2, 0L),
                Map.of("client.id", "cli-848-member", "group.protocol", "consumer"))) {
            Tool.Result state = ok(tool(GROUPS, "--describe", "--group", g, "--state"));
            List<Map<String, String>> srows = table(state, "GROUP");
            assertEquals(1, srows.size(), state.toString());
            assertEquals("Stable", srows.get(0).get("STATE"), state.toString());
            assertEquals("1", srows.get(0).get("#MEMBERS"), state.toString());
            assertEquals("uniform", srows.get(0).get("ASSIGNMENT-STRATEGY"), state.toString());

            Tool.Result offsets = ok(tool(GROUPS, "--describe", "--group", g));
            List<Map<String, String>> rows = table(offsets, "GROUP");
            assertEquals(3, rows.size(), offsets.toString());
            assertEquals(List.of("5", "5", "0"), cols(rowFor(rows, t, 0), "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"));
            assertEquals(List.of("2", "5", "3"), cols(rowFor(rows, t, 1), "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"));
            assertEquals(List.of("0", "5", "5"), cols(rowFor(rows, t, 2), "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"));
            for (Map<String, String> r : rows) {
                assertEquals("cli-848-member", r.get("CLIENT-ID"), offsets.toString());
                assertNotEquals("-", r.get("CONSUMER-ID"), offsets.toString());
            }

            Tool.Result members = ok(tool(GROUPS, "--describe", "--group", g, "--members"));
            List<Map<String, String>> mrows = table(members, "GROUP");
            assertEquals(1, mrows.size(), members.toString());
            assertEquals("3", mrows.get(0).get("#PARTITIONS"), members.toString());
            assertEquals(rows.get(0).get("CONSUMER-ID"), mrows.get(0).get("CONSUMER-ID"), members.toString());
        }
    }

    static List<String> cols(Map<String, String> row, String... names) {
        return Arrays.stream(names).map(row::get).collect(Collectors.toList());
    }

    // ---------------------------------------------------------------- kafka-delete-records, kafka-get-offsets

    @Test
    @Order(6)
    void kafkaDeleteRecords() throws Exception {
        String t = "cli-delete-records";
        Clients.createTopic(admin, t, 2, Map.of());
        Clients.produce(bs, t, 0, 10);
        Clients.produce(bs, t, 1, 10);
        Path json = Files.createTempFile(broker.dir, "offsets", ".json");
        Files.writeString(json, "{\"version\":1,\"partitions\":["
                + "{\"topic\":\"" + t + "\",\"partition\":0,\"offset\":4},"
                + "{\"topic\":\"" + t + "\",\"partition\":1,\"offset\":-1}]}");
        Tool.Result r = ok(tool(DELETE_RECORDS, "--offset-json-file", json.toString()));
        assertTrue(r.stdout.contains("Records delete operation completed:"), r.toString());
        assertTrue(r.lines().contains("partition: " + t + "-0\tlow_watermark: 4"), r.toString());
        assertTrue(r.lines().contains("partition: " + t + "-1\tlow_watermark: 10"), r.toString());

        TopicPartition p0 = new TopicPartition(t, 0), p1 = new TopicPartition(t, 1);
        Map<TopicPartition, Long> earliest = Clients.offsets(admin, List.of(p0, p1), OffsetSpec.earliest());
        assertEquals(Map.of(p0, 4L, p1, 10L), earliest);
        List<ConsumerRecord<String, String>> left = Clients.readAll(bs, List.of(p0, p1), "read_uncommitted");
        assertEquals(List.of(4L, 5L, 6L, 7L, 8L, 9L), left.stream().map(ConsumerRecord::offset).collect(Collectors.toList()));
        assertEquals("value-4", left.get(0).value());

        Tool.Result offsets = ok(tool(GET_OFFSETS, "--topic", t, "--time", "-2"));
        assertEquals(List.of(t + ":0:4", t + ":1:10"), offsets.lines().stream().sorted().collect(Collectors.toList()), offsets.toString());
    }

    // ---------------------------------------------------------------- console producer / consumer

    @Test
    @Order(7)
    void consoleProducerAndConsumer() throws Exception {
        String t = "cli-console";
        Clients.createTopic(admin, t, 1, Map.of());
        String input = "k1:v1\nk2:hello world\nk3:with:colons\nk1:again\n";
        Tool.Result produced = ok(toolWithInput(CONSOLE_PRODUCER, input, "--topic", t,
                "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
                "--command-property", "acks=all"));
        assertTrue(produced.stdout.isBlank(), produced.toString());

        List<ConsumerRecord<String, String>> records = Clients.readAll(bs, List.of(new TopicPartition(t, 0)), "read_uncommitted");
        assertEquals(List.of("k1=v1", "k2=hello world", "k3=with:colons", "k1=again"),
                records.stream().map(r -> r.key() + "=" + r.value()).collect(Collectors.toList()));

        Tool.Result consumed = ok(tool(CONSOLE_CONSUMER, "--topic", t, "--from-beginning", "--max-messages", "4",
                "--timeout-ms", "30000", "--formatter-property", "print.key=true",
                "--formatter-property", "key.separator=|", "--formatter-property", "print.partition=true",
                "--formatter-property", "print.offset=true"));
        assertEquals(List.of(
                "Partition:0|Offset:0|k1|v1",
                "Partition:0|Offset:1|k2|hello world",
                "Partition:0|Offset:2|k3|with:colons",
                "Partition:0|Offset:3|k1|again"), consumed.lines(), consumed.toString());
        assertTrue(consumed.stderr.contains("Processed a total of 4 messages"), consumed.toString());
    }

    // ---------------------------------------------------------------- perf tests

    static final Pattern PRODUCER_PERF_LINE = Pattern.compile(
            "^(\\d+) records sent, ([\\d.]+) records/sec \\(([\\d.]+) MB/sec\\), ([\\d.]+) ms avg latency, "
                    + "([\\d.]+) ms max latency, (\\d+) ms 50th, (\\d+) ms 95th, (\\d+) ms 99th, (\\d+) ms 99.9th\\.$");

    @Test
    @Order(8)
    void producerAndConsumerPerformance() throws Exception {
        String t = "cli-perf";
        Clients.createTopic(admin, t, 3, Map.of());
        Tool.Result prod = ok(tool(PRODUCER_PERF, "--topic", t, "--num-records", "20000", "--throughput", "-1",
                "--record-size", "100", "--command-property", "acks=all", "linger.ms=5"));
        List<String> finals = prod.lines().stream().filter(l -> PRODUCER_PERF_LINE.matcher(l).matches()).collect(Collectors.toList());
        assertFalse(finals.isEmpty(), "no summary line: " + prod);
        Matcher m = PRODUCER_PERF_LINE.matcher(finals.get(finals.size() - 1));
        assertTrue(m.matches());
        assertEquals("20000", m.group(1), prod.toString());
        assertTrue(Double.parseDouble(m.group(2)) > 0, "records/sec");
        double mbPerSec = Double.parseDouble(m.group(3));
        assertTrue(mbPerSec > 0, "MB/sec");
        assertTrue(Double.parseDouble(m.group(4)) <= Double.parseDouble(m.group(5)), "avg <= max latency");
        List<TopicPartition> tps = IntStream.range(0, 3).mapToObj(p -> new TopicPartition(t, p)).collect(Collectors.toList());
        long total = Clients.offsets(admin, tps, OffsetSpec.latest()).values().stream().mapToLong(Long::longValue).sum();
        assertEquals(20000L, total, "records in the topic");

        Tool.Result cons = ok(tool(CONSUMER_PERF, "--topic", t, "--num-records", "20000", "--timeout", "30000",
                "--group", "cli-perf-group"));
        List<String> lines = cons.lines().stream().filter(l -> !l.isBlank()).collect(Collectors.toList());
        int header = -1;
        for (int i = 0; i < lines.size(); i++) if (lines.get(i).startsWith("start.time, end.time")) header = i;
        assertTrue(header >= 0 && header + 1 < lines.size(), "no header/data line: " + cons);
        List<String> names = Arrays.stream(lines.get(header).split(",")).map(String::trim).collect(Collectors.toList());
        List<String> values = Arrays.stream(lines.get(header + 1).split(",")).map(String::trim).collect(Collectors.toList());
        assertEquals(names.size(), values.size(), cons.toString());
        Map<String, String> stats = new LinkedHashMap<>();
        for (int i = 0; i < names.size(); i++) stats.put(names.get(i), values.get(i));
        assertEquals("20000", stats.get("data.consumed.in.nMsg"), cons.toString());
        assertEquals(20000 * 100 / (1024.0 * 1024.0), Double.parseDouble(stats.get("data.consumed.in.MB")), 0.0001, cons.toString());
        assertTrue(Double.parseDouble(stats.get("nMsg.sec")) > 0, cons.toString());
        assertFalse(cons.stdout.contains("WARNING: Exiting before consuming the expected number of records"), cons.toString());
    }

    // ---------------------------------------------------------------- kafka-transactions

    @Test
    @Order(9)
    void kafkaTransactions() throws Exception {
        String t = "cli-txn", id = "cli-txn-id";
        Clients.createTopic(admin, t, 1, Map.of());
        java.util.Properties p = new java.util.Properties();
        p.put("bootstrap.servers", bs);
        p.put("transactional.id", id);
        try (var producer = new org.apache.kafka.clients.producer.KafkaProducer<String, String>(p,
                new org.apache.kafka.common.serialization.StringSerializer(),
                new org.apache.kafka.common.serialization.StringSerializer())) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < 3; i++) producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(t, 0, "k" + i, "v" + i));
            producer.commitTransaction();   // offsets 0-2, marker at 3
            producer.beginTransaction();
            for (int i = 3; i < 5; i++) producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(t, 0, "k" + i, "v" + i));
            producer.flush();               // open transaction from offset 4

            Tool.Result list = ok(tool(TRANSACTIONS, "list"));
            Map<String, String> row = table(list, "TransactionalId").stream().filter(r -> id.equals(r.get("TransactionalId")))
                    .findFirst().orElseThrow(() -> new AssertionError("not listed: " + list));
            assertEquals("Ongoing", row.get("TransactionState"), list.toString());
            assertEquals(String.valueOf(nodeId), row.get("Coordinator"), list.toString());
            String producerId = row.get("ProducerId");

            Tool.Result describe = ok(tool(TRANSACTIONS, "describe", "--transactional-id", id));
            List<Map<String, String>> d = table(describe, "CoordinatorId");
            assertEquals(1, d.size(), describe.toString());
            assertEquals(id, d.get(0).get("TransactionalId"), describe.toString());
            assertEquals(producerId, d.get(0).get("ProducerId"), describe.toString());
            assertEquals("Ongoing", d.get(0).get("TransactionState"), describe.toString());
            assertEquals(t + "-0", d.get(0).get("TopicPartitions"), describe.toString());

            Tool.Result producers = ok(tool(TRANSACTIONS, "describe-producers", "--topic", t, "--partition", "0"));
            List<Map<String, String>> pr = table(producers, "ProducerId");
            assertEquals(1, pr.size(), producers.toString());
            assertEquals(producerId, pr.get(0).get("ProducerId"), producers.toString());
            assertEquals("4", pr.get(0).get("CurrentTransactionStartOffset"), producers.toString());
            // (LastSequence and ProducerEpoch differ by transaction.version: Kafka 4.4 bumps the epoch
            // per transaction with version 2, Klamm runs version 1; not compared)
            producer.commitTransaction();
        }
    }

    // ---------------------------------------------------------------- differences from Kafka 4.4 this suite found, fixed in the broker

    /** The tools print the broker's error message: Kafka's text, not a paraphrase or a doubled prefix. */
    @Test
    @Order(10)
    void errorMessagesAsKafka() throws Exception {
        String t = "cli-bug-messages";
        Clients.createTopic(admin, t, 3, Map.of());
        Tool.Result shrink = tool(TOPICS, "--alter", "--topic", t, "--partitions", "2");
        Tool.Result bad = tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--alter",
                "--add-config", "cleanup.policy=bogus");
        org.junit.jupiter.api.Assertions.assertAll(
                () -> assertNotEquals(0, shrink.exit, shrink.toString()),
                // Kafka 4.4 (KRaft controller): ReplicationControlManager's message
                () -> assertTrue(shrink.stdout.contains("Error while executing topic command : The topic " + t
                        + " currently has 3 partition(s); 2 would not be an increase."), shrink.toString()),
                () -> assertNotEquals(0, bad.exit, bad.toString()),
                () -> assertTrue(bad.stderr.contains("InvalidConfigurationException: Invalid value bogus for configuration "
                        + "cleanup.policy: String must be one of: compact, delete"), bad.toString()));
    }

    // ---------------------------------------------------------------- kafka-metadata-quorum, kafka-features

    static final String METADATA_QUORUM = "org.apache.kafka.tools.MetadataQuorumCommand";
    static final String FEATURES = "org.apache.kafka.tools.FeatureCommand";

    /** kafka-metadata-quorum: the controller is the leader and a voter, listed with its endpoint. */
    @Test
    @Order(14)
    void kafkaMetadataQuorum() throws Exception {
        Tool.Result status = ok(tool(METADATA_QUORUM, "describe", "--status"));
        Map<String, String> fields = new HashMap<>();
        for (String line : status.lines()) {
            int colon = line.indexOf(':');
            if (colon > 0) fields.put(line.substring(0, colon).trim(), line.substring(colon + 1).trim());
        }
        String clusterId = admin.describeCluster().clusterId().get();
        org.junit.jupiter.api.Assertions.assertAll(
                () -> assertEquals(clusterId, fields.get("ClusterId"), status.toString()),
                () -> assertEquals(String.valueOf(nodeId), fields.get("LeaderId"), status.toString()),
                () -> assertTrue(Integer.parseInt(fields.get("LeaderEpoch")) >= 1, status.toString()),
                () -> assertEquals("0", fields.get("MaxFollowerLag"), status.toString()),
                () -> assertTrue(fields.get("CurrentVoters").contains("\"id\": " + nodeId), status.toString()),
                // Kafka lists its CONTROLLER listener; Klamm's controller is a broker, reached
                // on the listener the client came in on.
                () -> assertTrue(Broker.isKafka() || fields.get("CurrentVoters").contains(":" + bs.substring(bs.lastIndexOf(':') + 1)),
                        "the voter's endpoint: " + status));
        Tool.Result replication = ok(tool(METADATA_QUORUM, "describe", "--replication"));
        List<String> rows = replication.lines().stream().filter(l -> !l.isBlank()).collect(Collectors.toList());
        assertTrue(rows.get(0).startsWith("NodeId"), replication.toString());
        assertTrue(rows.stream().anyMatch(r -> r.startsWith(nodeId + " ") && r.contains("Leader")), replication.toString());
    }

    /** kafka-features: describe lists group.version; setting it to its level succeeds; Klamm's
     *  levels are fixed by the binary, so a change is refused with the reason. */
    @Test
    @Order(15)
    void kafkaFeatures() throws Exception {
        Tool.Result describe = ok(tool(FEATURES, "describe"));
        assertTrue(describe.lines().stream().anyMatch(l -> l.startsWith("Feature: group.version")
                && l.contains("FinalizedVersionLevel: 1")), describe.toString());
        Tool.Result same = ok(tool(FEATURES, "upgrade", "--feature", "group.version=1"));
        assertTrue(same.stdout.contains("group.version was upgraded to 1."), same.toString());
        org.junit.jupiter.api.Assumptions.assumeFalse(Broker.isKafka(), "Kafka can change its feature levels");
        Tool.Result down = tool(FEATURES, "downgrade", "--feature", "group.version=0");
        assertNotEquals(0, down.exit, down.toString());
        assertTrue(down.stdout.contains("Could not downgrade group.version to 0. Invalid update version 0 for feature group.version."),
                down.toString());
        Tool.Result unknown = tool(FEATURES, "upgrade", "--feature", "no.such.version=1");
        assertNotEquals(0, unknown.exit, unknown.toString());
        assertTrue(unknown.stdout.contains("Could not upgrade no.such.version to 1."), unknown.toString());
        // Nothing changed.
        Tool.Result after = ok(tool(FEATURES, "describe"));
        assertTrue(after.lines().stream().anyMatch(l -> l.startsWith("Feature: group.version")
                && l.contains("FinalizedVersionLevel: 1")), after.toString());
    }

    /** DescribeConfigs of a broker with synonyms lists the default synonym too, as Kafka does. */
    @Test
    @Order(11)
    void brokerConfigSynonymsAsKafka() throws Exception {
        String id = String.valueOf(nodeId);
        ConfigResource broker1 = new ConfigResource(ConfigResource.Type.BROKER, id);
        admin.incrementalAlterConfigs(Map.of(broker1, List.of(new org.apache.kafka.clients.admin.AlterConfigOp(
                new ConfigEntry("log.retention.ms", "86400000"),
                org.apache.kafka.clients.admin.AlterConfigOp.OpType.SET)))).all().get();
        try {
            Tool.Result describe = ok(tool(CONFIGS, "--entity-type", "brokers", "--entity-name", id, "--describe"));
            assertEquals("  log.retention.ms=86400000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=86400000, "
                    + "DEFAULT_CONFIG:log.retention.hours=168}", configLine(describe, "log.retention.ms"), describe.toString());
        } finally {
            admin.incrementalAlterConfigs(Map.of(broker1, List.of(new org.apache.kafka.clients.admin.AlterConfigOp(
                    new ConfigEntry("log.retention.ms", ""),
                    org.apache.kafka.clients.admin.AlterConfigOp.OpType.DELETE)))).all().get();
        }
    }

    /** After a transaction was committed (marker written by coordinator epoch 0), DescribeProducers reports that epoch. */
    @Test
    @Order(12)
    void describeProducersCoordinatorEpoch() throws Exception {
        String t = "cli-bug-txn";
        Clients.createTopic(admin, t, 1, Map.of());
        java.util.Properties p = new java.util.Properties();
        p.put("bootstrap.servers", bs);
        p.put("transactional.id", "cli-bug-txn-id");
        try (var producer = new org.apache.kafka.clients.producer.KafkaProducer<String, String>(p,
                new org.apache.kafka.common.serialization.StringSerializer(),
                new org.apache.kafka.common.serialization.StringSerializer())) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(t, 0, "k", "v"));
            producer.commitTransaction();
        }
        Tool.Result producers = ok(tool(TRANSACTIONS, "describe-producers", "--topic", t, "--partition", "0"));
        List<Map<String, String>> pr = table(producers, "ProducerId");
        assertEquals(1, pr.size(), producers.toString());
        assertEquals("0", pr.get(0).get("LatestCoordinatorEpoch"), producers.toString());
        assertEquals("None", pr.get(0).get("CurrentTransactionStartOffset"), producers.toString());
    }

    // ---------------------------------------------------------------- kafka-acls

    static final String ACLS = "org.apache.kafka.tools.AclCommand";

    /** "(principal=P, host=*, operation=OP, permissionType=T)", as kafka-acls prints each ACL. */
    static String aclLine(String principal, String op, String permission) {
        return "(principal=" + principal + ", host=*, operation=" + op + ", permissionType=" + permission + ")";
    }

    /** The ACL lines kafka-acls printed under "... ACLs for resource `PATTERN`:" (until the next blank line). */
    static Set<String> aclsUnder(Tool.Result r, String header, String pattern) {
        List<String> lines = r.lines();
        String head = header + " `" + pattern + "`:";
        Set<String> out = new java.util.HashSet<>();
        boolean found = false;
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).strip().equals(head)) {
                found = true;
                for (int j = i + 1; j < lines.size() && !lines.get(j).isBlank(); j++) {
                    out.add(lines.get(j).strip());
                }
            }
        }
        assertTrue(found, "no line \"" + head + "\" in" + r);
        return out;
    }

    /**
     * kafka-acls (AclCommand) with --bootstrap-server and --command-config (SASL_PLAINTEXT,
     * PLAIN, as the super user admin) against a broker of its own with the authorizer on:
     * --add a LITERAL topic ACL with two operations, a PREFIXED one (--resource-pattern-type
     * prefixed), a group ACL and a DENY (4.4's --add prints what it adds, not the ACLs then in
     * place, as 3.x did); --list (everything, and one resource) prints them;
     * the Java admin client describes the same bindings; --remove --force removes them. The
     * same tool as alice (not a super user) is refused (ClusterAuthorizationException).
     */
    @Test
    @Order(13)
    void kafkaAcls() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeFalse(Broker.isKafka(),
                "needs a SASL listener beside kafka.sh's PLAINTEXT one (not set up for the reference broker here)");
        int plainPort = Broker.freePort();
        int saslPort = Broker.freePort();
        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("listeners", "PLAINTEXT://127.0.0.1:" + plainPort + ",SASL_PLAINTEXT://127.0.0.1:" + saslPort);
        settings.put("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer");
        settings.put("super.users", "User:admin");
        settings.put("sasl.enabled.mechanisms", "PLAIN");
        settings.put("listener.name.sasl_plaintext.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required"
                        + " user_admin=\"admin-pw\" user_alice=\"alice-pw\";");
        Path work = Path.of(System.getProperty("work.dir", "target/work")).toAbsolutePath();
        Files.createDirectories(work);
        Path adminConfig = work.resolve("acl-admin.properties");
        Path aliceConfig = work.resolve("acl-alice.properties");
        for (String[] who : List.of(new String[] {"admin", adminConfig.toString()}, new String[] {"alice", aliceConfig.toString()})) {
            Files.writeString(Path.of(who[1]), "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                    + "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\""
                    + who[0] + "\" password=\"" + who[0] + "-pw\";\n");
        }
        String sasl = "127.0.0.1:" + saslPort;
        String topic = "cli-acl-t";
        String prefix = "cli-acl-";
        String group = "cli-acl-group";
        String literal = "ResourcePattern(resourceType=TOPIC, name=" + topic + ", patternType=LITERAL)";
        String prefixed = "ResourcePattern(resourceType=TOPIC, name=" + prefix + ", patternType=PREFIXED)";
        String groupPattern = "ResourcePattern(resourceType=GROUP, name=" + group + ", patternType=LITERAL)";
        try (Broker secured = Broker.start("acls", settings)) {
            String[] asAdmin = {"--bootstrap-server", sasl, "--command-config", adminConfig.toString()};

            Tool.Result add = ok(Tool.java(ACLS, null, cat(asAdmin, "--add", "--allow-principal", "User:alice",
                    "--operation", "Read", "--operation", "Write", "--topic", topic)));
            Set<String> aliceRw = Set.of(aclLine("User:alice", "READ", "ALLOW"), aclLine("User:alice", "WRITE", "ALLOW"));
            assertEquals(aliceRw, aclsUnder(add, "Adding ACLs for resource", literal), add.toString());

            Tool.Result addPrefixed = ok(Tool.java(ACLS, null, cat(asAdmin, "--add", "--allow-principal", "User:bob",
                    "--operation", "Describe", "--topic", prefix, "--resource-pattern-type", "prefixed")));
            assertEquals(Set.of(aclLine("User:bob", "DESCRIBE", "ALLOW")),
                    aclsUnder(addPrefixed, "Adding ACLs for resource", prefixed), addPrefixed.toString());
            ok(Tool.java(ACLS, null, cat(asAdmin, "--add", "--deny-principal", "User:bob", "--operation", "Write",
                    "--topic", prefix, "--resource-pattern-type", "prefixed")));
            ok(Tool.java(ACLS, null, cat(asAdmin, "--add", "--allow-principal", "User:alice", "--operation", "Read",
                    "--group", group)));

            Tool.Result list = ok(Tool.java(ACLS, null, cat(asAdmin, "--list")));
            assertEquals(aliceRw, aclsUnder(list, "Current ACLs for resource", literal), list.toString());
            assertEquals(Set.of(aclLine("User:bob", "DESCRIBE", "ALLOW"), aclLine("User:bob", "WRITE", "DENY")),
                    aclsUnder(list, "Current ACLs for resource", prefixed), list.toString());
            assertEquals(Set.of(aclLine("User:alice", "READ", "ALLOW")),
                    aclsUnder(list, "Current ACLs for resource", groupPattern), list.toString());

            Tool.Result one = ok(Tool.java(ACLS, null, cat(asAdmin, "--list", "--topic", topic)));
            assertEquals(aliceRw, aclsUnder(one, "Current ACLs for resource", literal), one.toString());
            assertFalse(one.stdout.contains(prefixed), "--list --topic " + topic + " is LITERAL only:" + one);

            // the same bindings through the Java admin client
            java.util.Properties ap = new java.util.Properties();
            ap.put("bootstrap.servers", sasl);
            for (String line : Files.readAllLines(adminConfig)) {
                ap.put(line.substring(0, line.indexOf('=')), line.substring(line.indexOf('=') + 1));
            }
            try (Admin root = Admin.create(ap)) {
                var all = root.describeAcls(org.apache.kafka.common.acl.AclBindingFilter.ANY).values().get();
                Set<String> described = all.stream().map(Object::toString).collect(Collectors.toSet());
                assertEquals(5, all.size(), "describeAcls: " + described);

                // not a super user: refused
                Tool.Result refused = Tool.java(ACLS, null, "--bootstrap-server", sasl, "--command-config",
                        aliceConfig.toString(), "--add", "--allow-principal", "User:alice", "--operation", "All",
                        "--cluster");
                assertNotEquals(0, refused.exit, refused.toString());
                assertTrue((refused.stdout + refused.stderr).contains("ClusterAuthorizationException"), refused.toString());

                Tool.Result remove = ok(Tool.java(ACLS, null, cat(asAdmin, "--remove", "--force", "--allow-principal",
                        "User:alice", "--operation", "Read", "--operation", "Write", "--topic", topic)));
                assertEquals("", remove.stdout.strip(), "--remove --force prints nothing: " + remove);
                ok(Tool.java(ACLS, null, cat(asAdmin, "--remove", "--force", "--topic", prefix,
                        "--resource-pattern-type", "prefixed")));

                Tool.Result after = ok(Tool.java(ACLS, null, cat(asAdmin, "--list")));
                assertFalse(after.stdout.contains(literal), after.toString());
                assertFalse(after.stdout.contains(prefixed), after.toString());
                assertEquals(Set.of(aclLine("User:alice", "READ", "ALLOW")),
                        aclsUnder(after, "Current ACLs for resource", groupPattern), after.toString());
                var left = root.describeAcls(org.apache.kafka.common.acl.AclBindingFilter.ANY).values().get();
                assertEquals(1, left.size(), "describeAcls after --remove: " + left);
            }
        }
    }

    // ---------------------------------------------------------------- kafka-delegation-tokens

    static final String TOKENS = "org.apache.kafka.tools.DelegationTokenCommand";
    /** One token row of kafka-delegation-tokens: TOKENID HMAC OWNER REQUESTER RENEWERS ISSUEDATE EXPIRYDATE MAXDATE. */
    static final Pattern TOKEN_ROW = Pattern.compile(
            "^([A-Za-z0-9_-]{22})\\s+([A-Za-z0-9+/=]{88})\\s+(\\S+)\\s+(\\S+)\\s+(\\[[^\\]]*\\])\\s+"
                    + "(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d)\\s+(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d)\\s+"
                    + "(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d)\\s*$");

    /** The token rows kafka-delegation-tokens printed, by token id: [hmac, owner, requester, renewers, issue, expiry, max]. */
    static Map<String, List<String>> tokenRows(Tool.Result r) {
        Map<String, List<String>> rows = new LinkedHashMap<>();
        for (String line : r.lines()) {
            Matcher m = TOKEN_ROW.matcher(line);
            if (m.matches()) {
                rows.put(m.group(1), List.of(m.group(2), m.group(3), m.group(4), m.group(5), m.group(6), m.group(7), m.group(8)));
            }
        }
        return rows;
    }

    static String scramConfig(String mechanism, String user, String password, boolean token) {
        return "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=" + mechanism + "\n"
                + "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                + user + "\" password=\"" + password + "\"" + (token ? " tokenauth=\"true\"" : "") + ";\n";
    }

    static java.util.Properties props(Path config, String bootstrap) throws Exception {
        java.util.Properties p = new java.util.Properties();
        try (var in = Files.newBufferedReader(config)) {
            p.load(in);
        }
        p.put("bootstrap.servers", bootstrap);
        p.put("default.api.timeout.ms", "15000");
        p.put("request.timeout.ms", "10000");
        return p;
    }

    /**
     * kafka-delegation-tokens (DelegationTokenCommand) with --command-config (SASL_PLAINTEXT,
     * SCRAM) against a broker of its own with a delegation token secret (users alice and bob
     * made with AlterUserScramCredentials over PLAINTEXT): alice --create with --renewer-principal
     * User:bob prints the token id and its row (22-character id, 88-character base64 HMAC,
     * owner and requester User:alice, renewers [User:bob]), which the admin client describes
     * the same; --create --owner-principal User:bob (owner bob, requester alice); --describe
     * without --owner-principal prints no token (the tool sends an empty owner list);
     * --describe --owner-principal User:alice lists both (owner, requester); bob --renew; the
     * token's own --command-config (tokenauth=true) lists topics with kafka-topics, and its
     * --describe is refused (UnsupportedByAuthenticationException); alice --expire
     * --expiry-time-period -1, after which the token no longer logs in and is not described.
     */
    @Test
    @Order(14)
    void kafkaDelegationTokens() throws Exception {
        int plainPort = Broker.freePort();
        int saslPort = Broker.freePort();
        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("listeners", "PLAINTEXT://127.0.0.1:" + plainPort + ",SASL_PLAINTEXT://127.0.0.1:" + saslPort);
        settings.put("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512");
        for (String m : List.of("scram-sha-256", "scram-sha-512")) {
            settings.put("listener.name.sasl_plaintext." + m + ".sasl.jaas.config",
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;");
        }
        settings.put("delegation.token.secret.key", "cli-dt-s3cret");
        Path work = Path.of(System.getProperty("work.dir", "target/work")).toAbsolutePath();
        Files.createDirectories(work);
        Path aliceConfig = work.resolve("dt-alice.properties");
        Path bobConfig = work.resolve("dt-bob.properties");
        Files.writeString(aliceConfig, scramConfig("SCRAM-SHA-256", "alice", "alice-pw", false));
        Files.writeString(bobConfig, scramConfig("SCRAM-SHA-512", "bob", "bob-pw", false));
        String sasl = "127.0.0.1:" + saslPort;
        String topic = "cli-dt-t";
        try (Broker secured = Broker.start("tokens", settings); Admin plain = secured.admin()) {
            for (String mech : List.of("SCRAM_SHA_256", "SCRAM_SHA_512")) {
                var m = org.apache.kafka.clients.admin.ScramMechanism.valueOf(mech);
                plain.alterUserScramCredentials(List.of(
                        new org.apache.kafka.clients.admin.UserScramCredentialUpsertion("alice",
                                new org.apache.kafka.clients.admin.ScramCredentialInfo(m, 4096), "alice-pw"),
                        new org.apache.kafka.clients.admin.UserScramCredentialUpsertion("bob",
                                new org.apache.kafka.clients.admin.ScramCredentialInfo(m, 4096), "bob-pw"))).all().get();
            }
            plain.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(topic, 1, (short) 1))).all().get();
            try (Admin alice = Admin.create(props(aliceConfig, sasl))) {
                waitFor("alice's SCRAM login", () -> {
                    try {
                        alice.describeCluster().clusterId().get(10, TimeUnit.SECONDS);
                        return true;
                    } catch (Exception e) {
                        return false;
                    }
                });
                String[] asAlice = {"--bootstrap-server", sasl, "--command-config", aliceConfig.toString()};
                String[] asBob = {"--bootstrap-server", sasl, "--command-config", bobConfig.toString()};

                Tool.Result create = ok(Tool.java(TOKENS, null, cat(asAlice, "--create", "--max-life-time-period", "-1",
                        "--renewer-principal", "User:bob")));
                Matcher created = Pattern.compile("(?m)^Created delegation token with tokenId : (\\S+)$").matcher(create.stdout);
                assertTrue(created.find(), create.toString());
                String id = created.group(1);
                Map<String, List<String>> rows = tokenRows(create);
                assertEquals(Set.of(id), rows.keySet(), "token rows of --create" + create);
                List<String> row = rows.get(id);
                String hmac = row.get(0);
                assertEquals(List.of("User:alice", "User:alice", "[User:bob]"), row.subList(1, 4), create.toString());

                // the admin client describes the same token
                waitFor("token " + id + " described", () -> describedIds(alice, null).contains(id));
                var described = alice.describeDelegationToken().delegationTokens().get().stream()
                        .filter(t -> t.tokenInfo().tokenId().equals(id)).findFirst().orElseThrow();
                assertEquals(hmac, described.hmacAsBase64String(), "HMAC printed by --create");
                java.text.SimpleDateFormat minutes = new java.text.SimpleDateFormat("yyyy-MM-dd'T'HH:mm");
                assertEquals(List.of(minutes.format(described.tokenInfo().issueTimestamp()),
                        minutes.format(described.tokenInfo().expiryTimestamp()),
                        minutes.format(described.tokenInfo().maxTimestamp())), row.subList(4, 7), create.toString());

                Tool.Result forBob = ok(Tool.java(TOKENS, null, cat(asAlice, "--create", "--max-life-time-period", "-1",
                        "--owner-principal", "User:bob")));
                Map<String, List<String>> bobRows = tokenRows(forBob);
                assertEquals(1, bobRows.size(), forBob.toString());
                String bobsId = bobRows.keySet().iterator().next();
                assertEquals(List.of("User:bob", "User:alice", "[]"), bobRows.get(bobsId).subList(1, 4), forBob.toString());
                waitFor("token " + bobsId + " described", () -> describedIds(alice, null).contains(bobsId));

                Tool.Result describeNone = ok(Tool.java(TOKENS, null, cat(asAlice, "--describe")));
                assertTrue(describeNone.stdout.contains("Total number of tokens : 0"), describeNone.toString());
                assertEquals(Map.of(), tokenRows(describeNone), describeNone.toString());

                Tool.Result describeAlice = ok(Tool.java(TOKENS, null, cat(asAlice, "--describe", "--owner-principal", "User:alice")));
                assertTrue(describeAlice.stdout.contains("Total number of tokens : 2"), describeAlice.toString());
                Map<String, List<String>> aliceRows = tokenRows(describeAlice);
                assertEquals(Set.of(id, bobsId), aliceRows.keySet(), describeAlice.toString());
                assertEquals(row.subList(0, 4), aliceRows.get(id).subList(0, 4), describeAlice.toString());

                Tool.Result renew = ok(Tool.java(TOKENS, null, cat(asBob, "--renew", "--hmac", hmac,
                        "--renew-time-period", "600000")));
                long firstExpiry = described.tokenInfo().expiryTimestamp();
                long[] renewedAt = new long[1];
                waitFor("the renewed expiry of " + id + " described", () -> {
                    try {
                        renewedAt[0] = alice.describeDelegationToken().delegationTokens().get().stream()
                                .filter(t -> t.tokenInfo().tokenId().equals(id)).findFirst().orElseThrow()
                                .tokenInfo().expiryTimestamp();
                    } catch (Exception e) {
                        throw new AssertionError(e);
                    }
                    return renewedAt[0] != firstExpiry;
                });
                long renewed = renewedAt[0];
                assertTrue(renew.stdout.contains("Completed renew operation. New expiry date : " + minutes.format(renewed)),
                        "renewed expiry " + renewed + renew);

                // the token logs in (kafka-topics with the token's config) and may not manage tokens
                Path tokenConfig = work.resolve("dt-token.properties");
                Files.writeString(tokenConfig, scramConfig("SCRAM-SHA-256", id, hmac, true));
                Tool.Result list = ok(Tool.java(TOPICS, null, "--bootstrap-server", sasl, "--command-config",
                        tokenConfig.toString(), "--list"));
                assertTrue(list.lines().contains(topic), list.toString());
                Tool.Result refused = Tool.java(TOKENS, null, "--bootstrap-server", sasl, "--command-config",
                        tokenConfig.toString(), "--describe", "--owner-principal", "User:alice");
                assertEquals(1, refused.exit, refused.toString());
                assertEquals("org.apache.kafka.common.errors.UnsupportedByAuthenticationException: Delegation Token"
                        + " requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation token authenticated"
                        + " channels.", refused.stderr.lines().findFirst().orElse(""), refused.toString());

                Tool.Result expire = ok(Tool.java(TOKENS, null, cat(asAlice, "--expire", "--hmac", hmac,
                        "--expiry-time-period", "-1")));
                assertTrue(expire.stdout.contains("Completed expire operation. New expiry date : "), expire.toString());
                waitFor("token " + id + " no longer described", () -> !describedIds(alice, null).contains(id));
                Tool.Result after = ok(Tool.java(TOKENS, null, cat(asAlice, "--describe", "--owner-principal", "User:alice")));
                assertEquals(Set.of(bobsId), tokenRows(after).keySet(), after.toString());
                Tool.Result gone = Tool.java(TOPICS, null, "--bootstrap-server", sasl, "--command-config",
                        tokenConfig.toString(), "--list");
                assertNotEquals(0, gone.exit, gone.toString());
                assertEquals("Error while executing topic command : Authentication failed during authentication due to"
                        + " invalid credentials with SASL mechanism SCRAM-SHA-256", gone.stdout.strip(), gone.toString());
            }
        }
    }

    static Set<String> describedIds(Admin admin, List<org.apache.kafka.common.security.auth.KafkaPrincipal> owners) {
        try {
            var options = new org.apache.kafka.clients.admin.DescribeDelegationTokenOptions();
            if (owners != null) options.owners(owners);
            return admin.describeDelegationToken(options).delegationTokens().get(15, TimeUnit.SECONDS).stream()
                    .map(t -> t.tokenInfo().tokenId()).collect(Collectors.toSet());
        } catch (Exception e) {
            throw new AssertionError("describeDelegationToken", e);
        }
    }

    static void waitFor(String what, java.util.function.BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) fail("timed out after 30 s waiting for " + what);
            Thread.sleep(100);
        }
    }

    static String[] cat(String[] a, String... b) {
        String[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
