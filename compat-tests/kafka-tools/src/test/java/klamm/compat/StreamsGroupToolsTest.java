package klamm.compat;

import static klamm.compat.CliToolsTest.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeStreamsGroupsOptions;
import org.apache.kafka.clients.admin.ListStreamsGroupOffsetsSpec;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.StreamsGroupDescription;
import org.apache.kafka.clients.admin.StreamsGroupMemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * kafka-streams-groups (Kafka 4.4, {@code org.apache.kafka.tools.streams.StreamsGroupCommand})
 * changing the offsets of a streams group (KIP-1071, {@code group.protocol=streams}): the word
 * count of {@link StreamsApp} reading two input topics A and B (3 partitions each, one
 * subtopology), exactly_once_v2. One broker and one group for the class; the tests are the
 * steps of one scenario, in order:
 * <ol>
 * <li>the app runs until its counts are exact and its committed offsets reach the end offsets;</li>
 * <li>while it runs: {@code --reset-offsets} (--dry-run and --execute) is refused by the tool
 * (the group is not inactive), {@code --delete-offsets --input-topic A} (and of the
 * repartition topic) is refused by the broker (OffsetDelete: GROUP_SUBSCRIBED_TO_TOPIC), an admin OffsetCommit (AlterStreamsGroupOffsets)
 * is refused (UNKNOWN_MEMBER_ID); the offsets are unchanged;</li>
 * <li>closed with LEAVE_GROUP: Empty;</li>
 * <li>{@code --reset-offsets --to-earliest --all-input-topics}: --dry-run plans 0 for the 6
 * input partitions and changes nothing, --execute commits 0 (the repartition topic's offsets
 * stay);</li>
 * <li>{@code --to-offset}, {@code --shift-by} (also clamped to the log start and end),
 * {@code --to-latest} on one topic or one partition, then --to-earliest again;</li>
 * <li>the app restarted on the same state: it reprocesses both inputs from 0, every count ends
 * at exactly twice its first value (read_committed, no count above that, none that does not
 * grow); closed again;</li>
 * <li>{@code --delete-offsets --input-topic A}, then {@code --all-input-topics} (B) on the Empty
 * group: the offsets are gone, the repartition topic's stay;</li>
 * <li>{@code --delete --group G --delete-all-internal-topics}: the group and its repartition
 * and changelog topics are deleted, the input and output topics stay; --list is empty,
 * --describe says the group does not exist.</li>
 * </ol>
 * Each tool's stdout is checked line by line (the reset plans, whose row order is a HashMap's,
 * as a set of exact lines). Skipped, like {@link StreamsGroupProtocolTest}, on a broker that
 * does not advertise ApiVersions key 88.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class StreamsGroupToolsTest {
    static final String STREAMS_GROUPS = StreamsGroupProtocolTest.STREAMS_GROUPS;
    static final int PARTITIONS = StreamsWordCountTest.PARTITIONS;
    static final int LINES_A = 240, LINES_B = 120;

    Broker broker;
    Admin admin;
    String bs, inputA, inputB, output, appId, repartition, changelog;
    final long t0 = System.nanoTime();
    final Random random = new Random(1071_3);
    /** The expected final count of every word in the current phase. */
    final Map<String, Long> expected = new TreeMap<>();
    final AtomicInteger lines = new AtomicInteger();
    final AtomicReference<Throwable> error = new AtomicReference<>();
    KafkaStreams app;
    ExactCounts counts;
    /** End offsets of the input and repartition partitions once the first run drained them. */
    Map<TopicPartition, Long> end;
    int done; // the last step that passed: each step needs the one before it
    String skipped;

    void step(String what) {
        System.out.printf("[streams-tools] %6d ms  %s%n", (System.nanoTime() - t0) / 1_000_000, what);
    }

    @BeforeAll
    void startBroker() throws Exception {
        if (!Broker.isKafka()) {
            // a Klamm without streams groups refuses the group.streams.* flags: ask a plain one first
            try (Broker probe = Broker.start("streams-tools-probe", Map.of())) {
                skipped = StreamsGroupProtocolTest.gate(probe);
            }
            if (skipped != null) {
                System.out.println("[streams-tools] skipped: " + skipped);
                return;
            }
        }
        broker = Broker.start("streams-tools", StreamsGroupProtocolTest.SETTINGS);
        skipped = StreamsGroupProtocolTest.gate(broker);
        if (skipped != null) {
            System.out.println("[streams-tools] skipped: " + skipped);
            return;
        }
        bs = broker.bootstrap();
        admin = broker.admin();
        String suffix = Long.toHexString(System.nanoTime());
        inputA = "sgt-in-a-" + suffix;
        inputB = "sgt-in-b-" + suffix;
        output = "sgt-out-" + suffix;
        appId = "sgt-app-" + suffix;
        repartition = appId + "-words-repartition";
        changelog = appId + "-counts-changelog";
        for (String t : List.of(inputA, inputB, output)) Clients.createTopic(admin, t, PARTITIONS, Map.of());
        counts = new ExactCounts(bs, output, PARTITIONS, expected, lines, () -> {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
        }, this::step);
    }

    @BeforeEach
    void gate() {
        Assumptions.assumeTrue(skipped == null, skipped);
    }

    @AfterAll
    void stopAll() {
        if (app != null) app.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(20)));
        if (counts != null) counts.close();
        if (admin != null) admin.close(Duration.ofSeconds(5));
        if (broker != null) broker.close();
    }

    // ------------------------------------------------------------------ helpers

    Tool.Result tool(String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("--bootstrap-server", bs));
        all.addAll(Arrays.asList(args));
        Tool.Result r = Tool.java(STREAMS_GROUPS, null, all.toArray(new String[0]));
        System.out.println(r);
        return r;
    }

    /** Produces n lines of random words (fixed seed) to topic; each word counts once in expected. */
    void produceLines(String topic, int n) {
        ExactCounts.produceLines(bs, topic, n, random, expected, lines);
    }

    void startApp(String what) throws Exception {
        app = new KafkaStreams(StreamsApp.topology(List.of(inputA, inputB), output),
                StreamsApp.props(bs, appId, Files.createDirectories(broker.dir.resolve("state")), "localhost:7201"));
        app.setUncaughtExceptionHandler(e -> {
            error.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        long start = System.nanoTime();
        app.start();
        Clients.waitFor(what + " RUNNING", 60_000, () -> {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
            return app.state() == KafkaStreams.State.RUNNING;
        });
        step(what + " RUNNING after " + (System.nanoTime() - start) / 1_000_000 + " ms");
    }

    /** Closes the app with LEAVE_GROUP and waits for the group to be Empty. */
    void closeApp(String what) throws Exception {
        assertTrue(app.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(30))), "clean close");
        app = null;
        StreamsGroupDescription d = awaitGroup("Empty after " + what, 30_000, x -> x.groupState() == GroupState.EMPTY);
        assertTrue(d.members().isEmpty(), "members of the empty group: " + d);
        step(what + ": closed, group Empty, group epoch " + d.groupEpoch());
    }

    StreamsGroupDescription describe() throws Exception {
        return admin.describeStreamsGroups(List.of(appId), new DescribeStreamsGroupsOptions())
                .describedGroups().get(appId).get(15, TimeUnit.SECONDS);
    }

    StreamsGroupDescription awaitGroup(String what, long timeoutMs, Predicate<StreamsGroupDescription> cond)
            throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        StreamsGroupDescription last = null;
        Exception lastError = null;
        while (true) {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
            try {
                last = describe();
                lastError = null;
                if (cond.test(last)) return last;
            } catch (Exception e) {
                lastError = e;
            }
            if (System.currentTimeMillis() > deadline) {
                throw new AssertionError("timed out after " + timeoutMs + " ms waiting for " + what
                        + "; last description: " + last, lastError);
            }
            Thread.sleep(100);
        }
    }

    List<TopicPartition> partitions(String... topics) {
        List<TopicPartition> tps = new ArrayList<>();
        for (String t : topics) {
            for (int p = 0; p < PARTITIONS; p++) tps.add(new TopicPartition(t, p));
        }
        return tps;
    }

    /** The group's committed offsets (OffsetFetch of all its partitions), by partition. */
    Map<TopicPartition, Long> committed() throws Exception {
        Map<TopicPartition, OffsetAndMetadata> all = admin.listStreamsGroupOffsets(Map.of(appId, new ListStreamsGroupOffsetsSpec()))
                .partitionsToOffsetAndMetadata(appId).get(15, TimeUnit.SECONDS);
        Map<TopicPartition, Long> out = new TreeMap<>(java.util.Comparator.comparing(TopicPartition::toString));
        all.forEach((tp, om) -> {
            if (om != null) out.put(tp, om.offset());
        });
        return out;
    }

    /** A map sorted like committed()'s, for assertEquals messages that can be compared by eye. */
    static Map<TopicPartition, Long> sorted(Map<TopicPartition, Long> m) {
        Map<TopicPartition, Long> out = new TreeMap<>(java.util.Comparator.comparing(TopicPartition::toString));
        out.putAll(m);
        return out;
    }

    /** end, with the given partitions at the given offsets. */
    Map<TopicPartition, Long> endWith(Map<TopicPartition, Long> changes) {
        Map<TopicPartition, Long> m = sorted(end);
        m.putAll(changes);
        return m;
    }

    static Map<TopicPartition, Long> at(List<TopicPartition> tps, java.util.function.ToLongFunction<TopicPartition> offset) {
        Map<TopicPartition, Long> m = new LinkedHashMap<>();
        for (TopicPartition tp : tps) m.put(tp, offset.applyAsLong(tp));
        return m;
    }

    static final String PLAN_FORMAT = "%-30s %-30s %-10s %-15s";

    /**
     * The stdout of --reset-offsets (printOffsetsToReset): a blank line, the header, one row per
     * partition (in a HashMap's order, so compared as a set of exact lines), then a newline.
     * prefix: what the tool printed before (an error), or "".
     */
    void assertPlan(Tool.Result r, String prefix, Map<TopicPartition, Long> plan) {
        assertEquals(0, r.exit, "exit status" + r);
        assertTrue(r.stdout.startsWith(prefix), "stdout starts with " + prefix + r);
        List<String> lines = Arrays.asList(r.stdout.substring(prefix.length()).split("\n", -1));
        assertTrue(lines.size() >= 3, "plan output" + r);
        assertEquals("", lines.get(0), "a blank line before the header" + r);
        assertEquals(String.format(PLAN_FORMAT, "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"), lines.get(1), "plan header" + r);
        assertEquals("", lines.get(lines.size() - 1), "ends with a newline" + r);
        List<String> rows = new ArrayList<>(lines.subList(2, lines.size() - 1));
        List<String> want = plan.entrySet().stream()
                .map(e -> String.format(PLAN_FORMAT, appId, e.getKey().topic(), e.getKey().partition(), e.getValue()))
                .sorted().collect(Collectors.toList());
        rows.sort(null);
        assertEquals(want, rows, "plan rows" + r);
    }

    /** --reset-offsets --group G ARGS (with --dry-run or --execute in args). */
    Tool.Result reset(String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("--reset-offsets", "--group", appId));
        all.addAll(Arrays.asList(args));
        return tool(all.toArray(new String[0]));
    }

    /**
     * The stdout of --delete-offsets: the top-level line, then a TOPIC/PARTITION/STATUS table
     * sorted by topic and partition.
     */
    static String deleteOffsetsOutput(String first, Map<TopicPartition, String> status) {
        int topicLen = Math.max(15, status.keySet().stream().mapToInt(tp -> tp.topic().length()).max().orElse(0));
        String fmt = "%n%" + -topicLen + "s %-10s %-15s";
        StringBuilder sb = new StringBuilder(first);
        sb.append(String.format(fmt, "TOPIC", "PARTITION", "STATUS"));
        status.entrySet().stream().sorted(java.util.Comparator.comparing(e -> e.getKey().topic() + e.getKey().partition()))
                .forEach(e -> sb.append(String.format(fmt, e.getKey().topic(), e.getKey().partition(), e.getValue())));
        return sb.append("\n").toString();
    }

    Set<String> topicNames() throws Exception {
        return admin.listTopics().names().get(15, TimeUnit.SECONDS);
    }

    // ------------------------------------------------------------------ the scenario

    @Test
    @Order(1)
    void runApp() throws Exception {
        produceLines(inputA, LINES_A);
        produceLines(inputB, LINES_B);
        startApp("app");
        counts.awaitExact("first run", 60_000);
        List<TopicPartition> tps = partitions(inputA, inputB, repartition);
        Map<TopicPartition, Long> latest = Clients.offsets(admin, tps, OffsetSpec.latest());
        // the offsets the steps below move: every input partition has some records
        for (TopicPartition tp : partitions(inputA, inputB)) {
            assertTrue(latest.get(tp) >= 10, "records in " + tp + ": " + latest);
        }
        Clients.waitFor("committed offsets at the end offsets", 30_000, () -> {
            try {
                return committed().equals(sorted(latest));
            } catch (Exception e) {
                return false;
            }
        });
        end = sorted(latest);
        step("drained: committed = end offsets " + end);
        StreamsGroupDescription d = awaitGroup("Stable with one member", 30_000, x -> x.groupState() == GroupState.STABLE
                && x.members().size() == 1 && x.members().iterator().next().memberEpoch() == x.groupEpoch());
        StreamsGroupMemberDescription m = d.members().iterator().next();
        assertEquals(6, StreamsGroupProtocolTest.tasks(m.assignment()).size(), "one member with the 6 tasks: " + d);
        // the topology as the broker keeps it: both inputs are source topics of subtopology 0
        assertEquals(Set.of(inputA, inputB), d.subtopologies().stream().filter(s -> s.subtopologyId().equals("0"))
                .findFirst().orElseThrow().sourceTopics().stream().collect(Collectors.toSet()), "subtopology 0 sources: " + d);
        done = 1;
    }

    @Test
    @Order(2)
    void refusedWhileRunning() throws Exception {
        assertEquals(1, done, "the previous step failed");
        assertEquals(GroupState.STABLE, describe().groupState());
        // the tool's own check of the described state: an error line, then an empty plan (exit 0)
        String refusal = "\nError: Assignments can only be reset if the group '" + appId
                + "' is inactive, but the current state is Stable.\n";
        assertPlan(reset("--all-input-topics", "--to-earliest", "--dry-run"), refusal, Map.of());
        assertPlan(reset("--all-input-topics", "--to-earliest", "--execute"), refusal, Map.of());
        assertPlan(reset("--input-topic", inputA, "--to-offset", "1", "--execute"), refusal, Map.of());
        assertEquals(end, committed(), "offsets after the refused resets");

        // OffsetDelete of a topic the running group reads (an input topic, and the repartition
        // topic, which Kafka counts as subscribed too): GROUP_SUBSCRIBED_TO_TOPIC for each partition
        for (String topic : List.of(inputA, repartition)) {
            Tool.Result del = tool("--delete-offsets", "--group", appId, "--input-topic", topic);
            Map<TopicPartition, String> status = new LinkedHashMap<>();
            for (TopicPartition tp : partitions(topic)) {
                status.put(tp, "Error: org.apache.kafka.common.errors.GroupSubscribedToTopicException: "
                        + "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it.");
            }
            assertEquals(0, del.exit, del.toString());
            assertEquals(deleteOffsetsOutput("\nError: Encountered some partition-level error, see the follow-up details.\n", status),
                    del.stdout, "--delete-offsets --input-topic " + topic + " while the group runs" + del);
            assertEquals(end, committed(), "offsets after the refused --delete-offsets of " + topic);
        }

        // the broker's own check: an admin commit (member id "", epoch -1) to a group with members
        try {
            admin.alterStreamsGroupOffsets(appId, Map.of(new TopicPartition(inputA, 0), new OffsetAndMetadata(0)))
                    .all().get(15, TimeUnit.SECONDS);
            throw new AssertionError("alterStreamsGroupOffsets of a running group succeeded");
        } catch (ExecutionException e) {
            assertEquals(org.apache.kafka.common.errors.UnknownMemberIdException.class, e.getCause().getClass(),
                    "AlterStreamsGroupOffsets of a running group: " + e.getCause());
            step("alterStreamsGroupOffsets while running: " + e.getCause());
        }
        assertEquals(end, committed(), "offsets after the refused admin commit");
        assertEquals(GroupState.STABLE, describe().groupState(), "the group is unchanged");
        done = 2;
    }

    @Test
    @Order(3)
    void closeLeavesEmptyGroup() throws Exception {
        assertEquals(2, done, "the previous step failed");
        closeApp("first run");
        assertEquals(end, committed(), "offsets kept by the empty group");
        done = 3;
    }

    @Test
    @Order(4)
    void resetToEarliest() throws Exception {
        assertEquals(3, done, "the previous step failed");
        List<TopicPartition> inputs = partitions(inputA, inputB);
        Map<TopicPartition, Long> zero = at(inputs, tp -> 0L);
        assertPlan(reset("--all-input-topics", "--to-earliest", "--dry-run"), "", zero);
        assertEquals(end, committed(), "a dry run changes nothing");
        assertPlan(reset("--all-input-topics", "--to-earliest", "--execute"), "", zero);
        assertEquals(endWith(zero), committed(), "inputs at 0, the repartition topic's offsets kept");
        assertEquals(Set.of(inputA, inputB, output, repartition, changelog),
                topicNames().stream().filter(t -> t.contains(appId) || t.equals(inputA) || t.equals(inputB) || t.equals(output))
                        .collect(Collectors.toSet()), "--execute without --delete-*-internal-topic(s) deletes no topic");
        done = 4;
    }

    @Test
    @Order(5)
    void resetVariants() throws Exception {
        assertEquals(4, done, "the previous step failed");
        List<TopicPartition> a = partitions(inputA), b = partitions(inputB);
        Map<TopicPartition, Long> now = endWith(at(partitions(inputA, inputB), tp -> 0L));

        // --to-offset on one topic
        Map<TopicPartition, Long> five = at(a, tp -> 5L);
        assertPlan(reset("--input-topic", inputA, "--to-offset", "5", "--execute"), "", five);
        now.putAll(five);
        assertEquals(now, committed(), "--to-offset 5 --input-topic A");

        // --to-offset past the end of one partition (topic:partition): the end offset, with a warning
        TopicPartition a1 = new TopicPartition(inputA, 1);
        Tool.Result high = reset("--input-topic", inputA + ":1", "--to-offset", "1000000", "--dry-run");
        assertPlan(high, "", Map.of(a1, end.get(a1)));
        assertTrue(high.stderr.contains("New offset (1000000) is higher than latest offset for topic partition " + a1
                + ". Value will be set to " + end.get(a1) + "."), "the tool's warning" + high);
        assertEquals(now, committed(), "a dry run changes nothing");

        // --shift-by from the committed offsets
        Map<TopicPartition, Long> eight = at(a, tp -> 8L);
        assertPlan(reset("--input-topic", inputA, "--shift-by", "3", "--execute"), "", eight);
        now.putAll(eight);
        assertEquals(now, committed(), "--shift-by 3 --input-topic A");

        // --shift-by below the log start: the log start (0), with a warning
        TopicPartition a0 = new TopicPartition(inputA, 0);
        Tool.Result low = reset("--input-topic", inputA + ":0", "--shift-by", "-100", "--execute");
        assertPlan(low, "", Map.of(a0, 0L));
        assertTrue(low.stderr.contains("New offset (-92) is lower than earliest offset for topic partition " + a0
                + ". Value will be set to 0."), "the tool's warning" + low);
        now.put(a0, 0L);
        assertEquals(now, committed(), "--shift-by -100 --input-topic A:0");

        // --to-latest on the other topic
        Map<TopicPartition, Long> latest = at(b, end::get);
        assertPlan(reset("--input-topic", inputB, "--to-latest", "--execute"), "", latest);
        now.putAll(latest);
        assertEquals(now, committed(), "--to-latest --input-topic B");

        // back to the beginning of both inputs for the restart
        Map<TopicPartition, Long> zero = at(partitions(inputA, inputB), tp -> 0L);
        assertPlan(reset("--all-input-topics", "--to-earliest", "--execute"), "", zero);
        assertEquals(endWith(zero), committed(), "--to-earliest --all-input-topics");
        done = 5;
    }

    @Test
    @Order(6)
    void restartReprocessesFromZero() throws Exception {
        assertEquals(5, done, "the previous step failed");
        // every input record is processed once more on top of the restored store: twice each count
        expected.replaceAll((w, c) -> 2 * c);
        startApp("restarted app");
        counts.awaitExact("after --to-earliest", 90_000);
        // the second run appended one more copy of every word to the repartition topic
        List<TopicPartition> tps = partitions(inputA, inputB, repartition);
        Map<TopicPartition, Long> latest = sorted(Clients.offsets(admin, tps, OffsetSpec.latest()));
        for (TopicPartition tp : partitions(inputA, inputB)) assertEquals(end.get(tp), latest.get(tp), "input " + tp);
        long before = partitions(repartition).stream().mapToLong(end::get).sum();
        long after = partitions(repartition).stream().mapToLong(latest::get).sum();
        assertTrue(after > before, "repartition records " + before + " -> " + after);
        Clients.waitFor("committed offsets at the end offsets", 30_000, () -> {
            try {
                return committed().equals(latest);
            } catch (Exception e) {
                return false;
            }
        });
        end = latest;
        closeApp("second run");
        assertEquals(end, committed(), "offsets kept by the empty group");
        done = 6;
    }

    @Test
    @Order(7)
    void deleteOffsets() throws Exception {
        assertEquals(6, done, "the previous step failed");
        Tool.Result delA = tool("--delete-offsets", "--group", appId, "--input-topic", inputA);
        assertEquals(0, delA.exit, delA.toString());
        assertEquals(deleteOffsetsOutput("Request succeeded for deleting offsets from group " + appId + ".\n",
                at(partitions(inputA), tp -> 0L).keySet().stream().collect(Collectors.toMap(tp -> tp, tp -> "Successful"))),
                delA.stdout, "--delete-offsets --input-topic A" + delA);
        Map<TopicPartition, Long> left = sorted(end);
        partitions(inputA).forEach(left::remove);
        assertEquals(left, committed(), "A's offsets deleted, B's and the repartition topic's kept");

        // --all-input-topics: the input topics with committed offsets (B only now)
        Tool.Result delAll = tool("--delete-offsets", "--group", appId, "--all-input-topics");
        assertEquals(0, delAll.exit, delAll.toString());
        assertEquals(deleteOffsetsOutput("Request succeeded for deleting offsets from group " + appId + ".\n",
                partitions(inputB).stream().collect(Collectors.toMap(tp -> tp, tp -> "Successful"))),
                delAll.stdout, "--delete-offsets --all-input-topics" + delAll);
        partitions(inputB).forEach(left::remove);
        assertEquals(left, committed(), "only the repartition topic's offsets left");

        Tool.Result list = ok(tool("--list", "--state"));
        assertEquals(Map.of("GROUP", appId, "STATE", "Empty"), StreamsGroupProtocolTest.onlyRow(list),
                "the group is still there" + list);
        done = 7;
    }

    @Test
    @Order(8)
    void deleteGroupAndInternalTopics() throws Exception {
        assertEquals(7, done, "the previous step failed");
        assertTrue(topicNames().containsAll(Set.of(repartition, changelog)), "internal topics before the delete");
        Tool.Result del = ok(tool("--delete", "--group", appId, "--delete-all-internal-topics"));
        assertEquals("Deletion of requested streams groups ('" + appId + "') was successful.\n"
                + "Deletion of associated internal topics of the streams groups ('" + appId + "') was successful.\n",
                del.stdout, "--delete --delete-all-internal-topics" + del);
        // DeleteTopics answered: the topics are gone from the metadata within a few seconds
        Clients.waitFor("internal topics deleted", 30_000, () -> {
            try {
                Set<String> names = topicNames();
                return !names.contains(repartition) && !names.contains(changelog);
            } catch (Exception e) {
                return false;
            }
        });
        assertTrue(topicNames().containsAll(Set.of(inputA, inputB, output)), "the input and output topics stay");

        Tool.Result list = ok(tool("--list"));
        assertEquals(List.of(), list.lines(), "--list after the delete" + list);
        Tool.Result gone = tool("--describe", "--group", appId);
        assertEquals(1, gone.exit, gone.toString());
        assertEquals("\nError: Executing streams group command failed due to "
                + "org.apache.kafka.common.errors.GroupIdNotFoundException: Group " + appId + " not found.\n", gone.stdout, gone.toString());
        // the offsets went with the group (OffsetFetch of an unknown group: no offsets, no error)
        assertEquals(Map.of(), committed(), "offsets of the deleted group");
        done = 8;
    }
}
