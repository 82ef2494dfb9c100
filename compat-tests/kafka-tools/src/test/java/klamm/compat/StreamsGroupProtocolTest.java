package klamm.compat;

import static klamm.compat.CliToolsTest.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeStreamsGroupsOptions;
import org.apache.kafka.clients.admin.ListStreamsGroupOffsetsSpec;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.StreamsGroupDescription;
import org.apache.kafka.clients.admin.StreamsGroupMemberAssignment;
import org.apache.kafka.clients.admin.StreamsGroupMemberDescription;
import org.apache.kafka.clients.admin.StreamsGroupSubtopologyDescription;
import org.apache.kafka.clients.admin.StreamsGroupTopologyDescriptionStatus;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
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
 * Kafka Streams 4.4 with the streams rebalance protocol (KIP-1071, {@code group.protocol=streams}:
 * StreamsGroupHeartbeat 88, StreamsGroupDescribe 89), exactly_once_v2, the word count of
 * {@link StreamsApp}. One broker and one application for the class; the tests are the steps of
 * one scenario, in order:
 * <ol>
 * <li>one instance (in this JVM): the broker creates the internal topics (3 partitions, the
 * client's topic configs), exact read_committed counts, {@code Admin.describeStreamsGroups}
 * (Stable, sticky, 6 active tasks, the epochs agree), kafka-streams-groups --list, --describe
 * --state/--members;</li>
 * <li>scale out: a second instance in a child JVM ({@link StreamsApp}) joins while records are
 * produced; the 6 tasks split 3+3 by the sticky rules; counts exact;</li>
 * <li>kill -9 of the second instance: after the broker's streams session timeout (6 s) the
 * first owns all 6 tasks again; counts exact; --describe --offsets (lag 0), --delete refused
 * while the group has a member;</li>
 * <li>close: the group is Empty, --describe --state, --delete, --list.</li>
 * </ol>
 * Every test is skipped (JUnit assumption: "streams groups (KIP-1071) not served by this
 * broker") when the broker does not advertise ApiVersions key 88, as Klamm today.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class StreamsGroupProtocolTest {
    static final String STREAMS_GROUPS = "org.apache.kafka.tools.streams.StreamsGroupCommand";
    static final int PARTITIONS = StreamsWordCountTest.PARTITIONS;
    static final short STREAMS_GROUP_HEARTBEAT = 88, STREAMS_GROUP_DESCRIBE = 89;
    /** The broker's streams group settings (Kafka's names; Klamm accepts them as flag aliases). */
    static final Map<String, String> SETTINGS = Map.of(
            "group.streams.session.timeout.ms", "6000",
            "group.streams.min.session.timeout.ms", "6000",
            "group.streams.heartbeat.interval.ms", "500",
            "group.streams.min.heartbeat.interval.ms", "500",
            "group.streams.initial.rebalance.delay.ms", "0");
    static final Set<String> ALL_TASKS = Set.of("0_0", "0_1", "0_2", "1_0", "1_1", "1_2");

    Broker broker;
    Admin admin;
    String bs, input, output, appId, repartition, changelog;
    int nodeId;
    final long t0 = System.nanoTime();
    final Random random = new Random(1071);
    final Map<String, Long> expected = new ConcurrentHashMap<>();
    final AtomicInteger lines = new AtomicInteger();
    final AtomicReference<Throwable> error = new AtomicReference<>();
    KafkaStreams first;
    Child second;
    ExactCounts counts;
    final List<Integer> epochs = new ArrayList<>();
    int done; // the last step that passed: each step needs the one before it

    void step(String what) {
        System.out.printf("[streams-groups] %6d ms  %s%n", (System.nanoTime() - t0) / 1_000_000, what);
    }

    // ------------------------------------------------------------------ the gate

    /**
     * The API keys a broker advertises: a raw ApiVersions v0 request (header v1, client id),
     * the v0 response parsed (error code, then [api key, min, max]); a v0 response of an
     * unsupported version carries the list too.
     */
    static Set<Short> apiKeys(String bootstrap) throws IOException {
        String host = bootstrap.substring(0, bootstrap.lastIndexOf(':'));
        int port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(host, port), 10_000);
            s.setSoTimeout(10_000);
            byte[] client = "klamm-compat-gate".getBytes(StandardCharsets.UTF_8);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            out.writeInt(2 + 2 + 4 + 2 + client.length);
            out.writeShort(18); // ApiVersions
            out.writeShort(0);
            out.writeInt(7107); // correlation id
            out.writeShort(client.length);
            out.write(client);
            out.flush();
            DataInputStream in = new DataInputStream(s.getInputStream());
            byte[] body = new byte[in.readInt()];
            in.readFully(body);
            ByteBuffer b = ByteBuffer.wrap(body);
            if (b.getInt() != 7107) throw new IOException("ApiVersions: wrong correlation id");
            short err = b.getShort();
            int n = b.getInt();
            Set<Short> keys = new TreeSet<>();
            for (int i = 0; i < n; i++) {
                keys.add(b.getShort());
                b.getShort();
                b.getShort();
            }
            if (err != 0 && keys.isEmpty()) throw new IOException("ApiVersions v0: error " + err);
            return keys;
        }
    }

    /** Null when the broker serves streams groups; else why every test of the class is skipped. */
    String skipped;

    @BeforeAll
    void startBroker() throws Exception {
        if (!Broker.isKafka()) {
            // Klamm starts in milliseconds, and a Klamm without streams groups refuses the
            // group.streams.* flags: ask a plain one first, then start the real one below.
            try (Broker probe = Broker.start("streams-groups-probe", Map.of())) {
                skipped = gate(probe);
            }
            if (skipped != null) {
                System.out.println("[streams-groups] skipped: " + skipped);
                return;
            }
        }
        broker = Broker.start("streams-groups", SETTINGS);
        skipped = gate(broker);
        if (skipped != null) {
            System.out.println("[streams-groups] skipped: " + skipped);
            return;
        }
        bs = broker.bootstrap();
        admin = broker.admin();
        nodeId = admin.describeCluster().controller().get().id();
        String suffix = Long.toHexString(System.nanoTime());
        input = "sg-input-" + suffix;
        output = "sg-output-" + suffix;
        appId = "sg-app-" + suffix;
        repartition = appId + "-words-repartition";
        changelog = appId + "-counts-changelog";
        Clients.createTopic(admin, input, PARTITIONS, Map.of());
        Clients.createTopic(admin, output, PARTITIONS, Map.of());
        counts = new ExactCounts(bs, output, PARTITIONS, expected, lines, () -> {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
            if (second != null) second.check();
        }, this::step);
    }

    /** Null when the broker advertises StreamsGroupHeartbeat (88), else the reason to skip. */
    static String gate(Broker b) throws Exception {
        Set<Short> keys = apiKeys(b.bootstrap());
        if (!keys.contains(STREAMS_GROUP_HEARTBEAT)) {
            return "streams groups (KIP-1071) not served by this broker (" + b.label()
                    + " does not advertise ApiVersions key 88, StreamsGroupHeartbeat; it has " + keys.size() + " keys, up to "
                    + (keys.isEmpty() ? "-" : Collections.max(keys)) + ")";
        }
        assertTrue(keys.contains(STREAMS_GROUP_DESCRIBE), "88 without 89 (StreamsGroupDescribe): " + keys);
        return null;
    }

    /**
     * The gate, per test: surefire reports a class whose @BeforeAll is aborted as "0 tests",
     * so each test is skipped on its own, with the reason.
     */
    @BeforeEach
    void gate() {
        Assumptions.assumeTrue(skipped == null, skipped);
    }

    @AfterAll
    void stopAll() {
        if (second != null) second.close();
        if (first != null) first.close(Duration.ofSeconds(20));
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

    /** Produces lines of random words (fixed seed) and adds each word to expected. */
    void produceLines(KafkaProducer<String, String> producer, int n) {
        for (int i = 0; i < n; i++) {
            int words = 1 + random.nextInt(6);
            StringBuilder line = new StringBuilder();
            for (int w = 0; w < words; w++) {
                String word = StreamsWordCountTest.VOCABULARY[random.nextInt(StreamsWordCountTest.VOCABULARY.length)];
                expected.merge(word, 1L, Long::sum);
                line.append(w == 0 ? "" : (w % 2 == 0 ? ", " : " ")).append(w % 3 == 0 ? word.toUpperCase() : word);
            }
            producer.send(new ProducerRecord<>(input, "line-" + lines.getAndIncrement(), line.toString()));
        }
        producer.flush();
    }

    void produceLines(int n) {
        try (KafkaProducer<String, String> producer = Clients.producer(bs)) {
            produceLines(producer, n);
        }
    }

    /** Produces a few lines every 50 ms in the background until stopped (then flushed). */
    final class Background implements AutoCloseable {
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicReference<Throwable> failed = new AtomicReference<>();
        final Thread thread;
        final int before = lines.get();

        Background() {
            thread = new Thread(() -> {
                try (KafkaProducer<String, String> producer = Clients.producer(bs)) {
                    while (!stop.get()) {
                        produceLines(producer, 4);
                        Thread.sleep(50);
                    }
                } catch (Throwable e) {
                    failed.set(e);
                }
            }, "background-producer");
            thread.start();
        }

        /** Stops, waits for the last acks; returns the number of lines produced. */
        @Override
        public void close() throws InterruptedException {
            stop.set(true);
            thread.join(30_000);
            assertFalse(thread.isAlive(), "background producer did not stop");
            if (failed.get() != null) throw new AssertionError("background producer failed", failed.get());
        }

        int produced() {
            return lines.get() - before;
        }
    }

    /** A second instance of the application in a child JVM ({@link StreamsApp}), stopped by PID. */
    static final class Child implements AutoCloseable {
        final Process process;
        final Path out, err;
        volatile boolean killed;

        Child(List<String> args, Path dir) throws IOException {
            Files.createDirectories(dir);
            out = dir.resolve("stdout");
            err = dir.resolve("stderr");
            String testClasses;
            try {
                testClasses = Paths.get(StreamsApp.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
            } catch (java.net.URISyntaxException e) {
                throw new IOException(e);
            }
            String cp = Files.readString(Paths.get(System.getProperty("tools.classpath", "target/tools.classpath"))).strip()
                    + java.io.File.pathSeparator + testClasses;
            List<String> cmd = new ArrayList<>(List.of(
                    Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.logFile=System.err",
                    "-cp", cp, StreamsApp.class.getName()));
            cmd.addAll(args);
            process = new ProcessBuilder(cmd)
                    .redirectOutput(out.toFile())
                    .redirectError(err.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            Runtime.getRuntime().addShutdownHook(new Thread(process::destroyForcibly));
        }

        long pid() {
            return process.pid();
        }

        String stdout() {
            try {
                return Files.readString(out, StandardCharsets.UTF_8);
            } catch (IOException e) {
                return "";
            }
        }

        String describe() {
            String e;
            try {
                List<String> l = Files.readAllLines(err, StandardCharsets.UTF_8);
                e = String.join("\n", l.subList(Math.max(0, l.size() - 40), l.size()));
            } catch (IOException x) {
                e = "";
            }
            return "child pid " + pid() + (process.isAlive() ? " (alive)" : " (exit " + process.exitValue() + ")")
                    + "\n--- stdout ---\n" + stdout() + "--- stderr (tail) ---\n" + e;
        }

        /** Fails if the child died or reported an error. */
        void check() {
            if (killed) return;
            String o = stdout();
            if (o.contains("ERROR ") || o.contains("STATE ERROR") || !process.isAlive()) {
                throw new AssertionError("second instance failed: " + describe());
            }
        }

        void awaitState(String state, long timeoutMs) throws InterruptedException {
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (!stdout().lines().anyMatch(l -> l.equals("STATE " + state))) {
                check();
                if (System.currentTimeMillis() > deadline) {
                    throw new AssertionError("second instance not " + state + " within " + timeoutMs + " ms: " + describe());
                }
                Thread.sleep(100);
            }
        }

        /** kill -9 PID, then wait for the exit (137). */
        int kill9() throws Exception {
            killed = true;
            Tool.Result r = Tool.exec(List.of("kill", "-9", Long.toString(pid())), null, 10);
            assertEquals(0, r.exit, "kill -9: " + r);
            assertTrue(process.waitFor(10, TimeUnit.SECONDS), "child still alive after kill -9");
            return process.exitValue();
        }

        @Override
        public void close() {
            if (!process.isAlive()) return;
            process.destroy(); // SIGTERM: the child closes its KafkaStreams
            try {
                if (!process.waitFor(20, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    process.waitFor(10, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Prints each distinct description of the group (state, epochs, members' epochs and tasks)
     * seen by describing it every 50 ms: how the broker got there, for the log only (no
     * assertion depends on these timings).
     */
    final class Observer implements AutoCloseable {
        final AtomicBoolean stop = new AtomicBoolean();
        final Thread thread;

        Observer(String phase) {
            thread = new Thread(() -> {
                String last = null;
                while (!stop.get()) {
                    String now;
                    try {
                        now = summary(describe());
                    } catch (Exception e) {
                        Throwable c = e.getCause() != null ? e.getCause() : e;
                        now = c.getClass().getSimpleName() + ": " + c.getMessage();
                    }
                    if (!now.equals(last)) step("[" + phase + "] " + now);
                    last = now;
                    try {
                        Thread.sleep(50);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "group-observer");
            thread.setDaemon(true);
            thread.start();
        }

        @Override
        public void close() throws InterruptedException {
            stop.set(true);
            thread.join(20_000);
        }
    }

    StreamsGroupDescription describe() throws Exception {
        return admin.describeStreamsGroups(List.of(appId), new DescribeStreamsGroupsOptions())
                .describedGroups().get(appId).get(15, TimeUnit.SECONDS);
    }

    /** Describes the group until cond holds (bounded); returns that description. */
    StreamsGroupDescription awaitGroup(String what, long timeoutMs, Predicate<StreamsGroupDescription> cond)
            throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        StreamsGroupDescription last = null;
        Exception lastError = null;
        while (true) {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
            if (second != null && second.process.isAlive()) second.check();
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

    /** The active tasks of an assignment as "subtopology_partition". */
    static Set<String> tasks(StreamsGroupMemberAssignment a) {
        Set<String> out = new TreeSet<>();
        for (StreamsGroupMemberAssignment.TaskIds t : a.activeTasks()) {
            for (int p : t.partitions()) out.add(t.subtopologyId() + "_" + p);
        }
        return out;
    }

    /**
     * Stable, assignor "sticky", every member reconciled (member epoch == group epoch ==
     * target assignment epoch, current == target, no standby or warmup tasks), the members'
     * active tasks disjoint and covering all 6.
     */
    static boolean settled(StreamsGroupDescription d, int members) {
        if (d.groupState() != GroupState.STABLE || d.members().size() != members) return false;
        if (d.groupEpoch() != d.targetAssignmentEpoch()) return false;
        Set<String> union = new TreeSet<>();
        int total = 0;
        for (StreamsGroupMemberDescription m : d.members()) {
            if (m.memberEpoch() != d.groupEpoch()) return false;
            if (!tasks(m.assignment()).equals(tasks(m.targetAssignment()))) return false;
            total += tasks(m.assignment()).size();
            union.addAll(tasks(m.assignment()));
        }
        return total == ALL_TASKS.size() && union.equals(ALL_TASKS);
    }

    static StreamsGroupMemberDescription memberAt(StreamsGroupDescription d, int port) {
        return d.members().stream()
                .filter(m -> m.userEndpoint().map(e -> e.port() == port).orElse(false))
                .findFirst().orElseThrow(() -> new AssertionError("no member with endpoint port " + port + ": " + d));
    }

    static String summary(StreamsGroupDescription d) {
        // the partition counts of the internal topics in the described topology: 0 while it is not ready
        String internal = d.subtopologies().stream()
                .flatMap(st -> java.util.stream.Stream.concat(st.repartitionSourceTopics().values().stream(),
                        st.stateChangelogTopics().values().stream()))
                .map(t -> Integer.toString(t.partitions())).collect(Collectors.joining(","));
        return d.groupState() + " groupEpoch=" + d.groupEpoch() + " targetAssignmentEpoch=" + d.targetAssignmentEpoch()
                + " topologyEpoch=" + d.topologyEpoch() + " internalPartitions=[" + internal + "] assignor="
                + d.assignorName().orElse("-") + " members="
                + d.members().stream()
                        .sorted(java.util.Comparator.comparing(m -> m.userEndpoint().map(e -> e.port()).orElse(0)))
                        .map(m -> m.userEndpoint().map(e -> e.host() + ":" + e.port()).orElse("?")
                                + " epoch " + m.memberEpoch() + " " + tasks(m.assignment())
                                + (tasks(m.assignment()).equals(tasks(m.targetAssignment())) ? "" : " target " + tasks(m.targetAssignment())))
                        .collect(Collectors.toList());
    }

    /** Committed offsets of the group == end offsets of the input and repartition partitions. */
    boolean drained() {
        try {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                tps.add(new TopicPartition(input, p));
                tps.add(new TopicPartition(repartition, p));
            }
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listStreamsGroupOffsets(
                    Map.of(appId, new ListStreamsGroupOffsetsSpec().topicPartitions(tps))).partitionsToOffsetAndMetadata(appId).get();
            Map<TopicPartition, Long> end = Clients.offsets(admin, tps, OffsetSpec.latest());
            return tps.stream().allMatch(tp -> committed.get(tp) != null && committed.get(tp).offset() == end.get(tp));
        } catch (Exception e) {
            return false;
        }
    }

    /** One row of a kafka-streams-groups table, by the header's column names (see CliToolsTest.table). */
    static Map<String, String> onlyRow(Tool.Result r) {
        List<Map<String, String>> rows = CliToolsTest.table(r, "GROUP");
        assertEquals(1, rows.size(), "one row:" + r);
        return rows.get(0);
    }

    static final java.util.regex.Pattern MEMBER_ROW = java.util.regex.Pattern.compile(
            "^(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(.*?)\\s*$");
    static final List<String> MEMBER_COLUMNS = List.of("GROUP", "TARGET-ASSIGNMENT-EPOCH", "TOPOLOGY-EPOCH", "MEMBER",
            "MEMBER-PROTOCOL", "MEMBER-EPOCH", "PROCESS", "CLIENT-ID", "ASSIGNMENTS");

    /**
     * The rows of --describe --members --verbose by member id: eight single-word columns, then
     * ASSIGNMENTS ("ACTIVE: 0:[0,1]; 1:[0]; TARGET-ACTIVE: 0:[0,1]; 1:[0];").
     */
    static Map<String, Map<String, String>> memberRows(Tool.Result r) {
        List<String> lines = r.lines().stream().filter(l -> !l.isBlank()).collect(Collectors.toList());
        assertEquals(MEMBER_COLUMNS, Arrays.asList(lines.get(0).trim().split("\\s+")), "members header:" + r);
        Map<String, Map<String, String>> rows = new TreeMap<>();
        for (String l : lines.subList(1, lines.size())) {
            java.util.regex.Matcher m = MEMBER_ROW.matcher(l);
            assertTrue(m.matches(), "member row '" + l + "'" + r);
            Map<String, String> row = new LinkedHashMap<>();
            for (int i = 0; i < MEMBER_COLUMNS.size(); i++) row.put(MEMBER_COLUMNS.get(i), m.group(i + 1));
            rows.put(row.get("MEMBER"), row);
        }
        return rows;
    }

    /** Checks the --describe --members --verbose row of each member against the Admin's description. */
    void checkMembers(Tool.Result r, StreamsGroupDescription d, Map<Integer, String> assignmentsByPort) {
        Map<String, Map<String, String>> rows = memberRows(r);
        assertEquals(d.members().size(), rows.size(), "member rows:" + r);
        for (StreamsGroupMemberDescription m : d.members()) {
            Map<String, String> row = rows.get(m.memberId());
            assertTrue(row != null, "no row for member " + m.memberId() + r);
            String epoch = Integer.toString(d.groupEpoch());
            assertEquals(List.of(appId, epoch, "0", "streams", epoch, m.processId(), m.clientId()),
                    List.of(row.get("GROUP"), row.get("TARGET-ASSIGNMENT-EPOCH"), row.get("TOPOLOGY-EPOCH"),
                            row.get("MEMBER-PROTOCOL"), row.get("MEMBER-EPOCH"), row.get("PROCESS"), row.get("CLIENT-ID")),
                    "member row of " + m.memberId() + r);
            assertEquals(assignmentsByPort.get(m.userEndpoint().orElseThrow().port()), row.get("ASSIGNMENTS"),
                    "ASSIGNMENTS of " + m.memberId() + r);
        }
    }

    int port(int i) {
        return 7000 + i;
    }

    // ------------------------------------------------------------------ the scenario

    @Test
    @Order(1)
    void oneInstance() throws Exception {
        produceLines(300);
        first = new KafkaStreams(StreamsApp.topology(input, output),
                StreamsApp.props(bs, appId, Files.createDirectories(broker.dir.resolve("state-a")), "localhost:" + port(1)));
        first.setUncaughtExceptionHandler(e -> {
            error.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        long start = System.nanoTime();
        Observer observer = new Observer("join");
        first.start();
        Clients.waitFor("first instance RUNNING", 60_000, () -> {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
            return first.state() == KafkaStreams.State.RUNNING;
        });
        step("first instance RUNNING after " + (System.nanoTime() - start) / 1_000_000 + " ms");
        counts.awaitExact("one instance", 60_000);

        // the internal topics: created by the broker (the client does not create them under
        // the streams protocol), partitions derived from the input's 3, the client's configs
        Map<String, TopicDescription> described = admin.describeTopics(List.of(repartition, changelog)).allTopicNames().get();
        for (String t : List.of(repartition, changelog)) {
            assertEquals(PARTITIONS, described.get(t).partitions().size(), t + " partitions");
            described.get(t).partitions().forEach(p -> assertEquals(1, p.replicas().size(), t + " replicas"));
        }
        ConfigResource rr = new ConfigResource(ConfigResource.Type.TOPIC, repartition);
        ConfigResource cr = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
        Map<ConfigResource, Config> configs = admin.describeConfigs(List.of(rr, cr)).all().get();
        Map<String, String> want = new LinkedHashMap<>();
        want.put(changelog + " cleanup.policy", "compact");
        want.put(changelog + " message.timestamp.type", "CreateTime");
        want.put(repartition + " cleanup.policy", "delete");
        want.put(repartition + " message.timestamp.type", "CreateTime");
        want.put(repartition + " retention.ms", "-1");
        want.put(repartition + " segment.bytes", "52428800");
        Map<String, String> got = new LinkedHashMap<>();
        for (String k : want.keySet()) {
            String[] tn = k.split(" ");
            ConfigEntry e = configs.get(tn[0].equals(changelog) ? cr : rr).get(tn[1]);
            got.put(k, e == null ? null : e.value());
            if (e != null) {
                assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, e.source(), k + " is the topic's own config: " + e);
            }
        }
        assertEquals(want, got, "internal topic configs (the client's, set at creation)");
        step("internal topics: 3 partitions each, configs " + got);

        // the group as the Admin client describes it
        StreamsGroupDescription d = awaitGroup("one member with 6 tasks, Stable", 30_000, x -> settled(x, 1));
        observer.close();
        step("described: " + summary(d));
        assertEquals(appId, d.groupId());
        assertEquals(java.util.Optional.of("sticky"), d.assignorName(), "assignor");
        assertEquals(nodeId, d.coordinator().id(), "coordinator");
        StreamsGroupMemberDescription a = d.members().iterator().next();
        assertEquals(ALL_TASKS, tasks(a.assignment()), "active tasks");
        assertEquals(List.of(), a.assignment().standbyTasks(), "standby tasks");
        assertEquals(List.of(), a.assignment().warmupTasks(), "warmup tasks");
        assertEquals("localhost", a.userEndpoint().orElseThrow().host(), "endpoint host");
        assertEquals(port(1), a.userEndpoint().orElseThrow().port(), "endpoint port");
        assertEquals("/127.0.0.1", a.clientHost(), "client host");
        assertTrue(a.clientId().startsWith(appId) && a.clientId().endsWith("-StreamThread-1-consumer"), "client id " + a.clientId());
        assertFalse(a.processId().isEmpty(), "process id");
        assertFalse(a.isClassic(), "isClassic");
        assertEquals(d.topologyEpoch(), a.topologyEpoch(), "member topology epoch");
        // the topology as configured by the broker: subtopology 0 reads the input and writes the
        // repartition topic, 1 reads it and owns the changelog
        Map<String, StreamsGroupSubtopologyDescription> subs = d.subtopologies().stream()
                .collect(Collectors.toMap(StreamsGroupSubtopologyDescription::subtopologyId, s -> s));
        assertEquals(Set.of("0", "1"), subs.keySet(), "subtopologies");
        assertEquals(List.of(input), subs.get("0").sourceTopics());
        assertEquals(List.of(repartition), subs.get("0").repartitionSinkTopics());
        assertEquals(Set.of(repartition), subs.get("1").repartitionSourceTopics().keySet());
        assertEquals(Set.of(changelog), subs.get("1").stateChangelogTopics().keySet());
        assertEquals(PARTITIONS, subs.get("1").repartitionSourceTopics().get(repartition).partitions(), "configured repartition partitions");
        assertEquals(PARTITIONS, subs.get("1").stateChangelogTopics().get(changelog).partitions(), "configured changelog partitions");
        StreamsGroupDescription withTopology = admin.describeStreamsGroups(List.of(appId),
                new DescribeStreamsGroupsOptions().includeTopologyDescription(true)).describedGroups().get(appId).get();
        assertEquals(StreamsGroupTopologyDescriptionStatus.NOT_STORED, withTopology.topologyDescriptionStatus(),
                "no topology description plugin");
        epochs.add(d.groupEpoch());

        // the tool against the running group
        Tool.Result list = ok(tool("--list"));
        assertEquals(List.of(appId), list.lines(), "--list" + list);
        Tool.Result listState = ok(tool("--list", "--state"));
        assertEquals(Map.of("GROUP", appId, "STATE", "Stable"), onlyRow(listState), "--list --state" + listState);
        Tool.Result state = ok(tool("--describe", "--state", "--verbose", "--group", appId));
        Map<String, String> row = onlyRow(state);
        String epoch = Integer.toString(d.groupEpoch());
        assertEquals(List.of(appId, bs, "(" + nodeId + ")", "sticky", "Stable", epoch, epoch, "1"),
                new ArrayList<>(row.values()), "--describe --state --verbose " + row.keySet() + state);
        assertEquals(List.of("GROUP", "COORDINATOR", "(ID)", "ASSIGNOR", "STATE", "GROUP-EPOCH", "TARGET-ASSIGNMENT-EPOCH",
                "#MEMBERS"), new ArrayList<>(row.keySet()), "--describe --state --verbose columns" + state);
        Tool.Result members = ok(tool("--describe", "--members", "--verbose", "--group", appId));
        checkMembers(members, d, Map.of(port(1), "ACTIVE: 0:[0,1,2]; 1:[0,1,2]; TARGET-ACTIVE: 0:[0,1,2]; 1:[0,1,2];"));
        done = 1;
    }

    @Test
    @Order(2)
    void scaleOut() throws Exception {
        assertEquals(1, done, "the previous step failed");
        StreamsGroupDescription before = describe();
        String processA = before.members().iterator().next().processId();
        long start;
        StreamsGroupDescription d;
        try (Background producer = new Background(); Observer observer = new Observer("scale out")) {
            start = System.nanoTime();
            second = new Child(List.of(bs, appId, input, output, broker.dir.resolve("state-b").toString(),
                    "localhost:" + port(2)), broker.dir.resolve("instance-b"));
            second.awaitState("RUNNING", 60_000);
            step("second instance (pid " + second.pid() + ") RUNNING after " + (System.nanoTime() - start) / 1_000_000 + " ms");
            d = awaitGroup("two members, 3+3 tasks, Stable", 30_000, x -> settled(x, 2));
            step("split after " + (System.nanoTime() - start) / 1_000_000 + " ms, " + producer.produced()
                    + " lines produced meanwhile: " + summary(d));
            assertTrue(producer.produced() > 0, "lines produced during the rebalance");
        }
        StreamsGroupMemberDescription a = memberAt(d, port(1)), b = memberAt(d, port(2));
        assertEquals(processA, a.processId(), "the first instance kept its member");
        assertNotEquals(a.processId(), b.processId(), "two processes");
        // the sticky assignor: quota 3 each; the previous owner keeps the first 3 tasks in
        // (partition, subtopology) order: 0_0, 1_0, 0_1; the new member gets 1_1, 0_2, 1_2
        assertEquals(Set.of("0_0", "1_0", "0_1"), tasks(a.assignment()), "first instance's tasks: " + summary(d));
        assertEquals(Set.of("1_1", "0_2", "1_2"), tasks(b.assignment()), "second instance's tasks: " + summary(d));
        assertTrue(d.groupEpoch() > epochs.get(epochs.size() - 1), "group epoch grew: " + epochs + " -> " + d.groupEpoch());
        epochs.add(d.groupEpoch());
        counts.awaitExact("scale out", 60_000);
        // both instances process: more lines for every task
        produceLines(200);
        counts.awaitExact("two instances", 60_000);
        Tool.Result members = ok(tool("--describe", "--members", "--verbose", "--group", appId));
        checkMembers(members, describe(), Map.of(
                port(1), "ACTIVE: 0:[0,1]; 1:[0]; TARGET-ACTIVE: 0:[0,1]; 1:[0];",
                port(2), "ACTIVE: 0:[2]; 1:[1,2]; TARGET-ACTIVE: 0:[2]; 1:[1,2];"));
        done = 2;
    }

    @Test
    @Order(3)
    void killSecondInstance() throws Exception {
        assertEquals(2, done, "the previous step failed");
        long killed;
        StreamsGroupDescription d;
        try (Background producer = new Background(); Observer observer = new Observer("kill -9")) {
            Thread.sleep(300); // the second instance is in the middle of a transaction
            killed = System.nanoTime();
            int exit = second.kill9();
            step("second instance killed (kill -9 " + second.pid() + ", exit " + exit + ")");
            assertEquals(137, exit, "exit status of kill -9");
            d = awaitGroup("the first instance owns all 6 tasks again", 30_000, x -> settled(x, 1));
            long ms = (System.nanoTime() - killed) / 1_000_000;
            step("first instance owns all tasks " + ms + " ms after the kill, " + producer.produced()
                    + " lines produced meanwhile: " + summary(d));
            // the broker's session timeout is 6 s: not before it, and within a few heartbeats after
            assertTrue(ms >= 5_000, "the killed member was removed before the session timeout: " + ms + " ms");
            assertTrue(ms <= 20_000, "takeover took " + ms + " ms");
        }
        assertEquals(port(1), d.members().iterator().next().userEndpoint().orElseThrow().port(), "the first instance remains");
        assertTrue(d.groupEpoch() > epochs.get(epochs.size() - 1), "group epoch grew: " + epochs + " -> " + d.groupEpoch());
        epochs.add(d.groupEpoch());
        counts.awaitExact("after kill -9", 60_000);

        // drained: committed offsets at the end of the input and repartition partitions
        Clients.waitFor("committed offsets at the end offsets", 30_000, this::drained);
        step("drained");
        List<TopicPartition> tps = new ArrayList<>();
        for (String t : List.of(input, repartition)) {
            for (int p = 0; p < PARTITIONS; p++) tps.add(new TopicPartition(t, p));
        }
        Map<TopicPartition, Long> end = Clients.offsets(admin, tps, OffsetSpec.latest());
        Tool.Result offsets = ok(tool("--describe", "--offsets", "--group", appId));
        List<Map<String, String>> rows = CliToolsTest.table(offsets, "GROUP");
        assertEquals(List.of("GROUP", "TOPIC", "PARTITION", "OFFSET-LAG"), new ArrayList<>(rows.get(0).keySet()), offsets.toString());
        assertEquals(tps.size(), rows.size(), "a row per input and repartition partition" + offsets);
        for (TopicPartition tp : tps) {
            Map<String, String> r = CliToolsTest.rowFor(rows, tp.topic(), tp.partition());
            assertEquals(List.of(appId, "0"), List.of(r.get("GROUP"), r.get("OFFSET-LAG")), tp + " " + offsets);
        }
        Tool.Result verbose = ok(tool("--describe", "--offsets", "--verbose", "--group", appId));
        rows = CliToolsTest.table(verbose, "GROUP");
        assertEquals(List.of("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LEADER-EPOCH", "LOG-END-OFFSET", "OFFSET-LAG"),
                new ArrayList<>(rows.get(0).keySet()), verbose.toString());
        assertEquals(tps.size(), rows.size(), "a row per input and repartition partition" + verbose);
        for (TopicPartition tp : tps) {
            Map<String, String> r = CliToolsTest.rowFor(rows, tp.topic(), tp.partition());
            String e = Long.toString(end.get(tp));
            assertEquals(List.of(appId, e, "0", e, "0"), List.of(r.get("GROUP"), r.get("CURRENT-OFFSET"),
                    r.get("LEADER-EPOCH"), r.get("LOG-END-OFFSET"), r.get("OFFSET-LAG")), tp + " " + verbose);
        }

        // deleting a group with a member: the tool refuses by the state ListGroups reports (exit
        // 0!), the broker's DeleteGroups answers NON_EMPTY_GROUP
        Tool.Result refused = ok(tool("--delete", "--group", appId));
        assertEquals("\nError: Deletion of some streams groups failed:\n* Group '" + appId + "' could not be deleted due to: "
                + "org.apache.kafka.common.errors.GroupNotEmptyException: Streams group '" + appId + "' is not EMPTY.\n",
                refused.stdout, "--delete of a group with a member" + refused);
        try {
            admin.deleteStreamsGroups(List.of(appId)).all().get(15, TimeUnit.SECONDS);
            throw new AssertionError("deleteStreamsGroups of a group with a member succeeded");
        } catch (java.util.concurrent.ExecutionException e) {
            assertTrue(e.getCause() instanceof org.apache.kafka.common.errors.GroupNotEmptyException,
                    "DeleteGroups of a group with a member: " + e.getCause());
            step("deleteStreamsGroups while running: " + e.getCause());
        }
        assertEquals(GroupState.STABLE, describe().groupState(), "the group survived the refused deletes");
        done = 3;
    }

    @Test
    @Order(4)
    void closeAndDelete() throws Exception {
        assertEquals(3, done, "the previous step failed");
        Observer observer = new Observer("close");
        assertTrue(first.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(30))), "clean close");
        step("first instance closed");
        StreamsGroupDescription d = awaitGroup("Empty", 30_000, x -> x.groupState() == GroupState.EMPTY);
        observer.close();
        step("described: " + summary(d));
        assertTrue(d.members().isEmpty(), "no members: " + summary(d));
        // the leave bumped the group epoch; the last member's leave sets the target assignment epoch to it
        assertTrue(d.groupEpoch() > epochs.get(epochs.size() - 1), "group epoch grew: " + epochs + " -> " + d.groupEpoch());
        assertEquals(d.groupEpoch(), d.targetAssignmentEpoch(), "target assignment epoch of the empty group");
        epochs.add(d.groupEpoch());

        Tool.Result state = ok(tool("--describe", "--state", "--group", appId));
        assertTrue(state.stdout.startsWith("\nError: Streams group '" + appId + "' has no active members.\n"), state.toString());
        Map<String, String> row = onlyRow(state);
        assertEquals(List.of("GROUP", "COORDINATOR", "(ID)", "ASSIGNOR", "STATE", "#MEMBERS"), new ArrayList<>(row.keySet()),
                "--describe --state columns" + state);
        assertEquals(List.of(appId, bs, "(" + nodeId + ")", "sticky", "Empty", "0"), new ArrayList<>(row.values()),
                "--describe --state of the empty group" + state);

        Tool.Result deleted = ok(tool("--delete", "--group", appId));
        assertEquals("Deletion of requested streams groups ('" + appId + "') was successful.\n", deleted.stdout, deleted.toString());
        Tool.Result list = ok(tool("--list"));
        assertEquals(List.of(), list.lines(), "--list after the delete" + list);
        Tool.Result gone = tool("--describe", "--group", appId);
        assertEquals(1, gone.exit, gone.toString());
        assertEquals("\nError: Executing streams group command failed due to "
                + "org.apache.kafka.common.errors.GroupIdNotFoundException: Group " + appId + " not found.\n", gone.stdout, gone.toString());
        step("group epochs: " + epochs);
        done = 4;
    }
}
