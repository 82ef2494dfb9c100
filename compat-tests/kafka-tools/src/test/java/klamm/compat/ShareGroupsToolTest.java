package klamm.compat;

import static klamm.compat.CliToolsTest.ok;
import static klamm.compat.CliToolsTest.rowFor;
import static klamm.compat.CliToolsTest.table;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * kafka-share-groups (org.apache.kafka.tools.consumer.group.ShareGroupCommand, Kafka 4.4)
 * against a KIP-932 share group that a {@link KafkaShareConsumer} consumed: --list,
 * --describe (offsets, --members, --state), the refusals while a member is active,
 * --reset-offsets --to-earliest --execute (a new consumer then gets every record again),
 * --delete-offsets and --delete. One broker of its own (each tool run is a child JVM).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ShareGroupsToolTest {
    static final String SHARE_GROUPS = "org.apache.kafka.tools.consumer.group.ShareGroupCommand";
    static final Duration WAIT = Duration.ofSeconds(60);

    Broker broker;
    Admin admin;
    String bs;
    int nodeId;

    @BeforeAll
    void startBroker() throws Exception {
        broker = Broker.start("share-tools", Map.of());
        bs = broker.bootstrap();
        admin = broker.admin();
        nodeId = admin.describeCluster().controller().get().id();
    }

    @AfterAll
    void stopBroker() {
        if (admin != null) admin.close(Duration.ofSeconds(5));
        if (broker != null) broker.close();
    }

    Tool.Result tool(String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("--bootstrap-server", bs));
        all.addAll(Arrays.asList(args));
        return Tool.java(SHARE_GROUPS, null, all.toArray(new String[0]));
    }

    KafkaShareConsumer<byte[], byte[]> shareConsumer(String group, String clientId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bs);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        return new KafkaShareConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    /** "p<partition>@<offset>" of a record. */
    static String at(int partition, long offset) {
        return "p" + partition + "@" + offset;
    }

    /**
     * Polls (implicit acknowledgement: each poll accepts the previous poll's records) until
     * {@code n} records arrived, then commitSync accepts the last poll's records; every
     * acknowledgement must succeed. Returns the records by "p@offset"; a record delivered
     * twice fails.
     */
    static Map<String, ConsumerRecord<byte[], byte[]>> consume(KafkaShareConsumer<byte[], byte[]> c, int n) {
        Map<String, ConsumerRecord<byte[], byte[]>> got = new HashMap<>();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (got.size() < n) {
            if (System.nanoTime() > deadline) fail("timed out waiting for " + n + " records; got " + got.keySet());
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                String k = at(r.partition(), r.offset());
                assertTrue(got.put(k, r) == null, "delivered twice: " + k);
            }
        }
        c.commitSync().forEach((tp, e) -> assertTrue(e.isEmpty(), "acknowledgement of " + tp + " failed: " + e));
        return got;
    }

    /** The records consumed are exactly the ones produced (partition, offset, key, value, headers), each delivered once. */
    static void assertSame(Map<String, ProducerRecord<byte[], byte[]>> sent, Map<String, ConsumerRecord<byte[], byte[]>> got) {
        assertEquals(sent.keySet(), got.keySet(), "offsets received");
        sent.forEach((k, s) -> {
            ConsumerRecord<byte[], byte[]> r = got.get(k);
            assertArrayEquals(s.key(), r.key(), "key of " + k);
            assertArrayEquals(s.value(), r.value(), "value of " + k);
            assertEquals(headers(s.headers()), headers(r.headers()), "headers of " + k);
            assertEquals(java.util.Optional.of((short) 1), r.deliveryCount(), "delivery count of " + k);
        });
    }

    static List<String> headers(org.apache.kafka.common.header.Headers hs) {
        List<String> out = new ArrayList<>();
        hs.forEach(h -> out.add(h.key() + "=" + (h.value() == null ? "null" : Arrays.toString(h.value()))));
        return out;
    }

    /** The START-OFFSET and LAG of each partition in a --describe table, as "p=start/lag". */
    static List<String> startOffsets(Tool.Result r, String group, String topic, int partitions) {
        List<Map<String, String>> rows = table(r, "GROUP");
        assertEquals(partitions, rows.size(), "one row per partition:" + r);
        List<String> out = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
            Map<String, String> row = rowFor(rows, topic, p);
            assertEquals(group, row.get("GROUP"), r.toString());
            out.add(p + "=" + row.get("START-OFFSET") + "/" + row.get("LAG"));
        }
        return out;
    }

    /**
     * Every record of both partitions (offsets 0-4) accepted: LAG 0. START-OFFSET is the
     * start offset the share coordinator last persisted (DescribeShareGroupOffsets reads it):
     * Kafka 4.4 writes an acknowledgement's state with the start offset from before it and
     * moves the start offset past the accepted records only in memory, so the persisted one
     * is where the last write began (0 when one write accepted all five, as in every Kafka
     * run here); Klamm reports the current one, 5. Anything from 0 to 5 is accepted.
     */
    static void assertAllAccepted(List<String> startAndLag, Tool.Result r) {
        for (int p = 0; p < 2; p++) {
            String[] sl = startAndLag.get(p).substring(2).split("/");
            assertEquals("0", sl[1], "LAG of partition " + p + ": " + r);
            long start = Long.parseLong(sl[0]);
            assertTrue(start >= 0 && start <= 5, "START-OFFSET of partition " + p + ": " + r);
        }
        System.out.println("[share] start/lag " + startAndLag);
    }

    /** The TOPIC/STATUS table of --delete-offsets for one topic (its first column as wide as the topic, at least 15). */
    static String topicStatus(String topic, String status) {
        String fmt = "%-" + Math.max(15, topic.length()) + "s %s";
        return String.format(fmt, "TOPIC", "STATUS") + "\n" + String.format(fmt, topic, status);
    }

    /**
     * A 2-partition topic, the share group's share.auto.offset.reset=earliest (Kafka's default
     * is latest) and 10 records, 5 per partition (random bytes, a header), by "p@offset".
     */
    Map<String, ProducerRecord<byte[], byte[]>> topicGroupAndRecords(String t, String g) throws Exception {
        Clients.createTopic(admin, t, 2, Map.of());
        admin.incrementalAlterConfigs(Map.of(new ConfigResource(ConfigResource.Type.GROUP, g), List.of(
                new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET))))
                .all().get();
        Map<String, ProducerRecord<byte[], byte[]>> sent = new HashMap<>();
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bs);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        Random rnd = new Random(932);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (int i = 0; i < 10; i++) {
                byte[] value = new byte[20 + rnd.nextInt(300)];
                rnd.nextBytes(value);
                RecordHeaders hs = new RecordHeaders();
                hs.add("i", new byte[] {(byte) i, (byte) 0xff});
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(t, i % 2,
                        ("key-" + i).getBytes(StandardCharsets.UTF_8), value, hs);
                RecordMetadata md = producer.send(rec).get();
                sent.put(at(md.partition(), md.offset()), rec);
            }
        }
        assertEquals(List.of("p0@0", "p0@1", "p0@2", "p0@3", "p0@4", "p1@0", "p1@1", "p1@2", "p1@3", "p1@4"),
                sent.keySet().stream().sorted().collect(Collectors.toList()));
        return sent;
    }

    /**
     * kafka-share-groups against a share group a share consumer read: --list; with the
     * consumer in the group --describe --members/--state/offsets and the refusals
     * (--reset-offsets, --delete-offsets, --delete, and AlterShareGroupOffsets through the
     * admin client); with the group empty --describe, --reset-offsets --to-earliest --execute
     * (a new consumer then reads all 10 records again), --delete-offsets, --delete.
     */
    @Test
    void kafkaShareGroups() throws Exception {
        String t = "cli-share-t", g = "cli-share-g";
        Map<String, ProducerRecord<byte[], byte[]>> sent = topicGroupAndRecords(t, g);

        // 1. A share consumer reads (and accepts) all 10 and stays in the group.
        try (KafkaShareConsumer<byte[], byte[]> c = shareConsumer(g, "cli-share-member")) {
            c.subscribe(List.of(t));
            assertSame(sent, consume(c, 10));

            Tool.Result list = ok(tool("--list"));
            assertTrue(list.lines().contains(g), list.toString());

            Tool.Result members = ok(tool("--describe", "--group", g, "--members"));
            List<Map<String, String>> mrows = table(members, "GROUP");
            assertEquals(1, mrows.size(), members.toString());
            Map<String, String> m = mrows.get(0);
            assertEquals(g, m.get("GROUP"), members.toString());
            assertEquals("cli-share-member", m.get("CLIENT-ID"), members.toString());
            assertEquals("/127.0.0.1", m.get("HOST"), members.toString());
            assertEquals("2", m.get("#PARTITIONS"), members.toString());
            assertEquals(t + ":0,1", m.get("ASSIGNMENT"), members.toString());
            assertTrue(m.get("CONSUMER-ID").length() >= 16, "CONSUMER-ID: " + members);

            Tool.Result state = ok(tool("--describe", "--group", g, "--state"));
            List<Map<String, String>> srows = table(state, "GROUP");
            assertEquals(1, srows.size(), state.toString());
            // "COORDINATOR (ID)" is two cells, as is its value "host:port  (id)"
            assertEquals(List.of(g, bs, "(" + nodeId + ")", "Stable", "1"),
                    CliToolsTest.cols(srows.get(0), "GROUP", "COORDINATOR", "(ID)", "STATE", "#MEMBERS"), state.toString());

            // every record accepted: no lag
            Tool.Result offsets = ok(tool("--describe", "--group", g));
            assertAllAccepted(startOffsets(offsets, g, t, 2), offsets);

            // refusals while the group has a member
            Tool.Result reset = tool("--reset-offsets", "--group", g, "--topic", t, "--to-earliest", "--execute");
            assertNotEquals(0, reset.exit, reset.toString());
            assertEquals("Share group '" + g + "' is not empty.", reset.stderr.strip(), reset.toString());
            assertEquals("", reset.stdout.strip(), reset.toString());

            // DeleteShareGroupOffsets answers NON_EMPTY_GROUP; the tool prints the error's
            // message on its own line and as the topic's status, and exits 0 (the message
            // itself: shareGroupOffsetsRefusalMessages)
            Tool.Result deleteOffsets = ok(tool("--delete-offsets", "--group", g, "--topic", t));
            String message = deleteOffsets.stdout.strip().lines().findFirst().orElse("");
            assertTrue(message.startsWith("Error: "), deleteOffsets.toString());
            assertEquals(message + "\n\n" + topicStatus(t, message), deleteOffsets.stdout.strip(), deleteOffsets.toString());

            // The tool refuses --reset-offsets itself (ShareGroupDescribe's state); the broker's
            // own refusal of AlterShareGroupOffsets, through the admin client:
            java.util.concurrent.ExecutionException alter = org.junit.jupiter.api.Assertions.assertThrows(
                    java.util.concurrent.ExecutionException.class,
                    () -> admin.alterShareGroupOffsets(g, Map.of(new TopicPartition(t, 0), 0L)).all().get());
            assertTrue(alter.getCause() instanceof GroupNotEmptyException, alter.toString());

            // the tool checks the state ListGroups gives and does not send DeleteGroups
            Tool.Result delete = ok(tool("--delete", "--group", g));
            assertEquals("Error: Deletion of some share groups failed:\n* Group '" + g + "' could not be deleted due to: "
                    + "org.apache.kafka.common.errors.GroupNotEmptyException: Share group '" + g + "' is not EMPTY.",
                    delete.stdout.strip(), delete.toString());
        }

        // 2. The consumer left: the group is empty, its offsets stay.
        Tool.Result empty = ok(tool("--describe", "--group", g, "--state"));
        assertTrue(empty.stderr.contains("Share group '" + g + "' has no active members."), empty.toString());
        assertEquals(List.of("Empty", "0"), CliToolsTest.cols(table(empty, "GROUP").get(0), "STATE", "#MEMBERS"), empty.toString());
        Tool.Result noMembers = ok(tool("--describe", "--group", g, "--members"));
        assertEquals("", noMembers.stdout.strip(), noMembers.toString());
        assertEquals("Share group '" + g + "' has no active members.", noMembers.stderr.strip(), noMembers.toString());
        Tool.Result kept = ok(tool("--describe", "--group", g, "--verbose"));
        assertAllAccepted(startOffsets(kept, g, t, 2), kept);
        for (Map<String, String> row : table(kept, "GROUP")) {
            assertEquals("0", row.get("LEADER-EPOCH"), kept.toString());
        }

        Tool.Result reset = ok(tool("--reset-offsets", "--group", g, "--topic", t, "--to-earliest", "--execute"));
        List<Map<String, String>> resetRows = table(reset, "GROUP");
        assertEquals(2, resetRows.size(), reset.toString());
        for (int p = 0; p < 2; p++) {
            assertEquals(List.of(g, "0"), CliToolsTest.cols(rowFor(resetRows, t, p), "GROUP", "NEW-OFFSET"), reset.toString());
        }
        Tool.Result afterReset = ok(tool("--describe", "--group", g));
        assertEquals(List.of("0=0/5", "1=0/5"), startOffsets(afterReset, g, t, 2), afterReset.toString());

        // 3. A new consumer of the group gets all 10 records again, byte-exact, delivery count 1.
        try (KafkaShareConsumer<byte[], byte[]> c = shareConsumer(g, "cli-share-member-2")) {
            c.subscribe(List.of(t));
            assertSame(sent, consume(c, 10));
        }
        Tool.Result again = ok(tool("--describe", "--group", g));
        assertAllAccepted(startOffsets(again, g, t, 2), again);

        // 4. --delete-offsets of the topic: the group has no offsets left.
        Tool.Result deleteOffsets = ok(tool("--delete-offsets", "--group", g, "--topic", t));
        List<Map<String, String>> drows = table(deleteOffsets, "TOPIC");
        assertEquals(List.of(Map.of("TOPIC", t, "STATUS", "Successful")), drows, deleteOffsets.toString());
        Tool.Result noOffsets = ok(tool("--describe", "--group", g));
        assertEquals("Share group '" + g + "' has no offset information.", noOffsets.stdout.strip(), noOffsets.toString());

        // 5. --delete: the group is gone.
        Tool.Result delete = ok(tool("--delete", "--group", g));
        assertEquals("Deletion of requested share groups ('" + g + "') was successful.", delete.stdout.strip(), delete.toString());
        Tool.Result list = ok(tool("--list"));
        assertFalse(list.lines().contains(g), list.toString());
        // ShareGroupDescribe answers GROUP_ID_NOT_FOUND with the broker's message
        Tool.Result gone = tool("--describe", "--group", g);
        assertEquals("Error: Executing share group command failed due to "
                + "org.apache.kafka.common.errors.GroupIdNotFoundException: Group " + g + " not found.",
                gone.stdout.strip(), gone.toString());
    }

    /**
     * The message of the NON_EMPTY_GROUP refusals of DeleteShareGroupOffsets (printed by
     * kafka-share-groups --delete-offsets) and AlterShareGroupOffsets (the admin client's
     * exception) is Kafka's "The group is not empty." (Klamm sent the error's name,
     * "NonEmptyGroup", until 2026-12-07.)
     */
    @Test
    void shareGroupOffsetsRefusalMessages() throws Exception {
        String t = "cli-share-refusal-t", g = "cli-share-refusal-g";
        Map<String, ProducerRecord<byte[], byte[]>> sent = topicGroupAndRecords(t, g);
        try (KafkaShareConsumer<byte[], byte[]> c = shareConsumer(g, "cli-share-refusal-member")) {
            c.subscribe(List.of(t));
            assertSame(sent, consume(c, 10));
            Tool.Result deleteOffsets = ok(tool("--delete-offsets", "--group", g, "--topic", t));
            java.util.concurrent.ExecutionException alter = org.junit.jupiter.api.Assertions.assertThrows(
                    java.util.concurrent.ExecutionException.class,
                    () -> admin.alterShareGroupOffsets(g, Map.of(new TopicPartition(t, 0), 0L)).all().get());
            org.junit.jupiter.api.Assertions.assertAll(
                    () -> assertEquals("Error: The group is not empty.\n\n" + topicStatus(t, "Error: The group is not empty."),
                            deleteOffsets.stdout.strip(), deleteOffsets.toString()),
                    () -> assertEquals("The group is not empty. Failed altering group offsets for the following partitions: ["
                            + t + "-0]", alter.getCause().getMessage(), alter.toString()));
        }
    }
}
