package klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
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
import org.apache.kafka.common.errors.UnreleasedInstanceIdException;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Static membership of Kafka Streams 4.4 under the streams rebalance protocol (KIP-1071,
 * {@code group.protocol=streams} with {@code group.instance.id}), the word count of
 * {@link StreamsApp}, exactly_once_v2. Two instances in this JVM, A ({@code static-a}) and B
 * ({@code static-b}), one stream thread each (Kafka Streams gives the thread's consumer the
 * instance id {@code static-a-1}). The tests are the steps of one scenario, in order:
 * <ol>
 * <li>A, then B: Stable, the sticky split 3+3, exact counts; the members show their instance
 * ids;</li>
 * <li>A closed with the default {@code close()}: the consumer sends member epoch -2 (a static
 * member's temporary leave); A's member stays, same member id, at epoch -2, with its tasks
 * and target; the group is Reconciling at the same group and target assignment epochs; B
 * keeps its 3 tasks and processes new records while A's input partitions wait;</li>
 * <li>A' (same instance id, same state dir, so the same process id): a new member id takes
 * A's place with A's tasks, the group epoch unchanged; counts exact (nothing lost or counted
 * twice across the restart);</li>
 * <li>a third instance with A's instance id while A' runs: its heartbeat is refused with
 * UNRELEASED_INSTANCE_ID and Kafka's message ("Static member M with instance id static-a-1
 * cannot join the group because the instance id is owned by A' member."; the client's stream
 * thread dies with {@link UnreleasedInstanceIdException}); the group is unchanged;</li>
 * <li>A' closed with {@code LEAVE_GROUP} (epoch -1): its member is gone, the group epoch
 * grows, B owns all 6 tasks; counts exact;</li>
 * <li>B closed with the default {@code close()} (-2): its member stays until the broker's
 * streams session timeout, then the group is Empty at a new group epoch.</li>
 * </ol>
 * Every test is skipped (JUnit assumption, as in {@link StreamsGroupProtocolTest}) when the
 * broker does not advertise ApiVersions key 88.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class StreamsStaticMemberTest {
    static final int PARTITIONS = StreamsWordCountTest.PARTITIONS;
    static final int SESSION_TIMEOUT_MS = 12_000;
    /** The broker's streams group settings (Kafka's names; Klamm accepts them as flag aliases). */
    static final Map<String, String> SETTINGS = Map.of(
            "group.streams.session.timeout.ms", Integer.toString(SESSION_TIMEOUT_MS),
            "group.streams.min.session.timeout.ms", "6000",
            "group.streams.heartbeat.interval.ms", "500",
            "group.streams.min.heartbeat.interval.ms", "500",
            "group.streams.initial.rebalance.delay.ms", "0");
    static final String A = "static-a", B = "static-b";
    /** Kafka Streams appends "-" and the stream thread's index to group.instance.id. */
    static final String A_ID = A + "-1", B_ID = B + "-1";
    static final int PORT_A = 7101, PORT_B = 7102, PORT_DUP = 7103;

    Broker broker;
    Admin admin;
    String bs, input, output, appId, repartition;
    final long t0 = System.nanoTime();
    final Random random = new Random(1071_2);
    final Map<String, Long> expected = new ConcurrentHashMap<>();
    final AtomicInteger lines = new AtomicInteger();
    final AtomicReference<Throwable> error = new AtomicReference<>();
    KafkaStreams a, b;
    ExactCounts counts;
    int done; // the last step that passed: each step needs the one before it
    String skipped;

    // what step 1 saw, checked against later
    int epoch;
    String memberA, memberA2, memberB, processA;
    Set<String> tasksA, tasksB;
    /** The distinct descriptions seen while A was down (close of A to A' reconciled). */
    List<StreamsGroupDescription> downtime;

    void step(String what) {
        System.out.printf("[streams-static] %6d ms  %s%n", (System.nanoTime() - t0) / 1_000_000, what);
    }

    @BeforeAll
    void startBroker() throws Exception {
        if (!Broker.isKafka()) {
            // a Klamm without streams groups refuses the group.streams.* flags: ask a plain one first
            try (Broker probe = Broker.start("streams-static-probe", Map.of())) {
                skipped = StreamsGroupProtocolTest.gate(probe);
            }
            if (skipped != null) {
                System.out.println("[streams-static] skipped: " + skipped);
                return;
            }
        }
        broker = Broker.start("streams-static", SETTINGS);
        skipped = StreamsGroupProtocolTest.gate(broker);
        if (skipped != null) {
            System.out.println("[streams-static] skipped: " + skipped);
            return;
        }
        bs = broker.bootstrap();
        admin = broker.admin();
        String suffix = Long.toHexString(System.nanoTime());
        input = "ss-input-" + suffix;
        output = "ss-output-" + suffix;
        appId = "ss-app-" + suffix;
        repartition = appId + "-words-repartition";
        Clients.createTopic(admin, input, PARTITIONS, Map.of());
        Clients.createTopic(admin, output, PARTITIONS, Map.of());
        counts = new ExactCounts(bs, output, PARTITIONS, expected, lines, () -> {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
        }, this::step);
    }

    @BeforeEach
    void gate() {
        Assumptions.assumeTrue(skipped == null, skipped);
    }

    /** A failed step leaves no observer running. */
    @AfterEach
    void stopObservers() throws InterruptedException {
        for (Observer o : new ArrayList<>(observers)) o.close();
        observers.clear();
    }

    @AfterAll
    void stopAll() {
        for (KafkaStreams s : new KafkaStreams[] {a, b}) {
            if (s != null) s.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                    .withTimeout(Duration.ofSeconds(20)));
        }
        if (counts != null) counts.close();
        if (admin != null) admin.close(Duration.ofSeconds(5));
        if (broker != null) broker.close();
    }

    // ------------------------------------------------------------------ helpers

    /** An instance of the application in this JVM with group.instance.id set; not started. */
    KafkaStreams instance(String instanceId, String stateDir, int port, AtomicReference<Throwable> failed)
            throws Exception {
        Properties p = StreamsApp.props(bs, appId, Files.createDirectories(broker.dir.resolve(stateDir)), "localhost:" + port);
        p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
        KafkaStreams s = new KafkaStreams(StreamsApp.topology(input, output), p);
        s.setUncaughtExceptionHandler(e -> {
            failed.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        return s;
    }

    void startAndAwaitRunning(KafkaStreams s, String what) throws Exception {
        long start = System.nanoTime();
        s.start();
        Clients.waitFor(what + " RUNNING", 60_000, () -> {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
            return s.state() == KafkaStreams.State.RUNNING;
        });
        step(what + " RUNNING after " + (System.nanoTime() - start) / 1_000_000 + " ms");
    }

    void produceLines(int n) {
        ExactCounts.produceLines(bs, input, n, random, expected, lines);
    }

    StreamsGroupDescription describe() throws Exception {
        return admin.describeStreamsGroups(List.of(appId), new DescribeStreamsGroupsOptions())
                .describedGroups().get(appId).get(15, TimeUnit.SECONDS);
    }

    /** Describes the group every 100 ms until cond holds (bounded); returns that description. */
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
                        + "; last description: " + (last == null ? null : summary(last)), lastError);
            }
            Thread.sleep(100);
        }
    }

    /**
     * Describes the group every 50 ms in the background and keeps each distinct description
     * (printed as it is seen): the path the broker took, and what the downtime checks run over.
     */
    final List<Observer> observers = Collections.synchronizedList(new ArrayList<>());

    final class Observer implements AutoCloseable {
        final AtomicBoolean stop = new AtomicBoolean();
        final List<StreamsGroupDescription> seen = Collections.synchronizedList(new ArrayList<>());
        final Thread thread;

        Observer(String phase) {
            observers.add(this);
            thread = new Thread(() -> {
                String last = null;
                while (!stop.get()) {
                    String now;
                    StreamsGroupDescription d = null;
                    try {
                        d = describe();
                        now = summary(d);
                    } catch (Exception e) {
                        Throwable c = e.getCause() != null ? e.getCause() : e;
                        now = c.getClass().getSimpleName() + ": " + c.getMessage();
                    }
                    if (!now.equals(last)) {
                        step("[" + phase + "] " + now);
                        if (d != null) seen.add(d);
                    }
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

        /** Stops; returns the distinct descriptions seen. */
        List<StreamsGroupDescription> stop() throws InterruptedException {
            close();
            return new ArrayList<>(seen);
        }

        @Override
        public void close() throws InterruptedException {
            stop.set(true);
            thread.join(20_000);
        }
    }

    static Optional<StreamsGroupMemberDescription> member(StreamsGroupDescription d, String instanceId) {
        return d.members().stream().filter(m -> m.instanceId().equals(Optional.of(instanceId))).findFirst();
    }

    static StreamsGroupMemberDescription memberOf(StreamsGroupDescription d, String instanceId) {
        return member(d, instanceId).orElseThrow(() -> new AssertionError("no member with instance id " + instanceId
                + ": " + summary(d)));
    }

    static Set<String> tasks(StreamsGroupMemberDescription m) {
        return StreamsGroupProtocolTest.tasks(m.assignment());
    }

    static String summary(StreamsGroupDescription d) {
        return d.groupState() + " groupEpoch=" + d.groupEpoch() + " targetAssignmentEpoch=" + d.targetAssignmentEpoch()
                + " members=" + d.members().stream()
                        .sorted(Comparator.comparing(m -> m.instanceId().orElse("")))
                        .map(m -> m.instanceId().orElse("-") + " (" + m.memberId().substring(0, Math.min(8, m.memberId().length()))
                                + ", process " + m.processId().substring(0, Math.min(8, m.processId().length()))
                                + ") epoch " + m.memberEpoch() + " " + tasks(m)
                                + (tasks(m).equals(StreamsGroupProtocolTest.tasks(m.targetAssignment())) ? ""
                                        : " target " + StreamsGroupProtocolTest.tasks(m.targetAssignment())))
                        .collect(Collectors.toList());
    }

    /** The input or repartition partitions of a set of tasks ("0_p": input p, "1_p": repartition p). */
    List<TopicPartition> partitionsOf(Set<String> tasks) {
        return tasks.stream().map(t -> new TopicPartition(t.startsWith("0_") ? input : repartition,
                Integer.parseInt(t.substring(2)))).collect(Collectors.toList());
    }

    /** The group's committed offset and the end offset of each partition. */
    Map<TopicPartition, long[]> lag(List<TopicPartition> tps) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> committed = admin.listStreamsGroupOffsets(
                Map.of(appId, new ListStreamsGroupOffsetsSpec().topicPartitions(tps))).partitionsToOffsetAndMetadata(appId).get();
        Map<TopicPartition, Long> end = Clients.offsets(admin, tps, OffsetSpec.latest());
        Map<TopicPartition, long[]> out = new TreeMap<>(Comparator.comparing(TopicPartition::toString));
        for (TopicPartition tp : tps) {
            OffsetAndMetadata c = committed.get(tp);
            out.put(tp, new long[] {c == null ? -1 : c.offset(), end.get(tp)});
        }
        return out;
    }

    static String lagString(Map<TopicPartition, long[]> lag) {
        return lag.entrySet().stream().map(e -> e.getKey() + " " + e.getValue()[0] + "/" + e.getValue()[1])
                .collect(Collectors.joining(", "));
    }

    // ------------------------------------------------------------------ the scenario

    @Test
    @Order(1)
    void twoStaticInstances() throws Exception {
        produceLines(300);
        a = instance(A, "state-a", PORT_A, error);
        startAndAwaitRunning(a, "A");
        awaitGroup("A alone with all 6 tasks", 30_000, x -> StreamsGroupProtocolTest.settled(x, 1));
        b = instance(B, "state-b", PORT_B, error);
        startAndAwaitRunning(b, "B");
        StreamsGroupDescription d = awaitGroup("A and B, 3+3 tasks, Stable", 30_000, x -> StreamsGroupProtocolTest.settled(x, 2));
        step("described: " + summary(d));
        counts.awaitExact("A and B", 60_000);

        StreamsGroupMemberDescription ma = memberOf(d, A_ID), mb = memberOf(d, B_ID);
        assertEquals(PORT_A, ma.userEndpoint().orElseThrow().port(), "A's endpoint");
        assertEquals(PORT_B, mb.userEndpoint().orElseThrow().port(), "B's endpoint");
        assertTrue(ma.clientId().startsWith(appId) && ma.clientId().endsWith("-StreamThread-1-consumer"), "client id " + ma.clientId());
        assertNotEquals(ma.processId(), mb.processId(), "two processes");
        // the sticky assignor: A keeps the first 3 tasks in (partition, subtopology) order
        assertEquals(Set.of("0_0", "1_0", "0_1"), tasks(ma), "A's tasks: " + summary(d));
        assertEquals(Set.of("1_1", "0_2", "1_2"), tasks(mb), "B's tasks: " + summary(d));
        epoch = d.groupEpoch();
        memberA = ma.memberId();
        memberB = mb.memberId();
        processA = ma.processId();
        tasksA = tasks(ma);
        tasksB = tasks(mb);
        done = 1;
    }

    @Test
    @Order(2)
    void closeKeepsStaticMember() throws Exception {
        assertEquals(1, done, "the previous step failed");
        Observer observer = new Observer("A down");
        long start = System.nanoTime();
        assertTrue(a.close(Duration.ofSeconds(30)), "clean close of A");
        a = null;
        step("A closed (default close) in " + (System.nanoTime() - start) / 1_000_000 + " ms");
        StreamsGroupDescription d = awaitGroup("A's member at epoch -2", 15_000, x -> {
            if (member(x, A_ID).isEmpty()) throw new AssertionError("A's member left the group: " + summary(x));
            return memberOf(x, A_ID).memberEpoch() == -2;
        });
        step("described: " + summary(d));
        StreamsGroupMemberDescription ma = memberOf(d, A_ID), mb = memberOf(d, B_ID);
        assertEquals(2, d.members().size(), "A's member stays: " + summary(d));
        assertEquals(memberA, ma.memberId(), "A's member id");
        assertEquals(tasksA, tasks(ma), "A's tasks stay reserved: " + summary(d));
        assertEquals(tasksB, tasks(mb), "B's tasks: " + summary(d));
        assertEquals(epoch, d.groupEpoch(), "group epoch after A's temporary leave: " + summary(d));
        assertEquals(epoch, d.targetAssignmentEpoch(), "target assignment epoch: " + summary(d));
        assertEquals(epoch, mb.memberEpoch(), "B's member epoch: " + summary(d));
        assertEquals(tasksA, StreamsGroupProtocolTest.tasks(ma.targetAssignment()), "A's target: " + summary(d));
        // a member whose epoch (-2) is not the target assignment epoch: Reconciling (Kafka 4.4)
        assertEquals(GroupState.RECONCILING, d.groupState(), "state with A away: " + summary(d));

        // B goes on alone: 150 lines; B's partitions are processed, A's wait for A
        produceLines(150);
        List<TopicPartition> ofA = partitionsOf(Set.of("0_0", "0_1")), ofB = partitionsOf(tasksB);
        Clients.waitFor("B committed its partitions to their end offsets", 30_000, () -> {
            try {
                return lag(ofB).values().stream().allMatch(o -> o[0] == o[1]);
            } catch (Exception e) {
                return false;
            }
        });
        Map<TopicPartition, long[]> lagA = lag(ofA);
        step("B drained its partitions (" + lagString(lag(ofB)) + "); A's input: " + lagString(lagA));
        assertTrue(lagA.values().stream().allMatch(o -> o[0] < o[1]),
                "A's input partitions are not processed while A is away: " + lagString(lagA));
        d = describe();
        assertEquals(2, d.members().size(), summary(d));
        assertEquals(-2, memberOf(d, A_ID).memberEpoch(), summary(d));
        assertEquals(epoch, d.groupEpoch(), summary(d));
        downtime = new ArrayList<>(observer.stop());
        done = 2;
    }

    @Test
    @Order(3)
    void restartTakesTasksBack() throws Exception {
        assertEquals(2, done, "the previous step failed");
        Observer observer = new Observer("A' joins");
        a = instance(A, "state-a", PORT_A, error);
        startAndAwaitRunning(a, "A'");
        StreamsGroupDescription d = awaitGroup("A' reconciled", 30_000,
                x -> member(x, A_ID).map(m -> !m.memberId().equals(memberA)).orElse(false)
                        && StreamsGroupProtocolTest.settled(x, 2));
        downtime.addAll(observer.stop());
        step("described: " + summary(d));
        StreamsGroupMemberDescription ma = memberOf(d, A_ID), mb = memberOf(d, B_ID);
        assertNotEquals(memberA, ma.memberId(), "A' is a new member id");
        assertEquals(processA, ma.processId(), "A' has A's process id (persisted in its state dir)");
        assertEquals(tasksA, tasks(ma), "A' got A's tasks back: " + summary(d));
        assertEquals(tasksB, tasks(mb), "B's tasks: " + summary(d));
        assertEquals(epoch, d.groupEpoch(), "group epoch after A' replaced A: " + summary(d));
        assertEquals(epoch, ma.memberEpoch(), "A's member epoch: " + summary(d));
        assertEquals(GroupState.STABLE, d.groupState(), summary(d));
        // while A was away (A's close until A' reconciled): never a new group epoch, B never
        // had more than its tasks, A's member was kept (at -2) until A' replaced it
        for (StreamsGroupDescription x : downtime) {
            assertEquals(epoch, x.groupEpoch(), "group epoch while A was away: " + summary(x));
            assertEquals(2, x.members().size(), "members while A was away: " + summary(x));
            assertEquals(tasksB, tasks(memberOf(x, B_ID)), "B's tasks while A was away: " + summary(x));
            StreamsGroupMemberDescription m = memberOf(x, A_ID);
            assertEquals(tasksA, StreamsGroupProtocolTest.tasks(m.targetAssignment()), "A's target while away: " + summary(x));
            assertTrue(m.memberEpoch() == -2 || m.memberEpoch() == epoch, "A's member epoch while away: " + summary(x));
            if (m.memberEpoch() == -2) {
                assertEquals(memberA, m.memberId(), "the member at -2 is A's: " + summary(x));
                assertEquals(GroupState.RECONCILING, x.groupState(), "state with A at -2: " + summary(x));
            }
        }
        counts.awaitExact("A' after the restart", 60_000);
        produceLines(100);
        counts.awaitExact("A' and B", 60_000);
        memberA2 = ma.memberId();
        done = 3;
    }

    @Test
    @Order(4)
    void instanceIdInUseIsRefused() throws Exception {
        assertEquals(3, done, "the previous step failed");
        StreamsGroupDescription before = describe();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        KafkaStreams dup = instance(A, "state-dup", PORT_DUP, failed);
        long start = System.nanoTime();
        try {
            dup.start();
            long deadline = System.currentTimeMillis() + 30_000;
            while (failed.get() == null) {
                if (System.currentTimeMillis() > deadline) {
                    throw new AssertionError("the instance with A's instance id (A' running) did not fail within 30 s: "
                            + dup.state() + ", the group: " + summary(describe()));
                }
                Thread.sleep(100);
            }
            step("the instance with A's instance id failed after " + (System.nanoTime() - start) / 1_000_000 + " ms: " + failed.get());
        } finally {
            assertTrue(dup.close(Duration.ofSeconds(20)), "close of the refused instance");
        }
        List<String> chain = new ArrayList<>();
        Throwable unreleased = null;
        for (Throwable t = failed.get(); t != null; t = t.getCause()) {
            chain.add(t.getClass().getName() + ": " + t.getMessage());
            if (t instanceof UnreleasedInstanceIdException) unreleased = t;
        }
        step("cause chain: " + chain);
        assertTrue(unreleased != null, "UnreleasedInstanceIdException in " + chain);
        // the broker's message (Kafka's GroupMetadataManager wording)
        String message = unreleased.getMessage();
        assertTrue(message != null && message.matches("Static member \\S+ with instance id " + A_ID
                + " cannot join the group because the instance id is owned by " + memberA2 + " member\\."),
                "UNRELEASED_INSTANCE_ID message: " + message);
        // the group did not change: same members, epochs and tasks
        StreamsGroupDescription after = describe();
        assertEquals(summary(before), summary(after), "the refused instance changed the group");
        assertEquals(2, after.members().size(), summary(after));
        assertEquals(GroupState.STABLE, after.groupState(), summary(after));
        done = 4;
    }

    @Test
    @Order(5)
    void leaveGroupRemovesMember() throws Exception {
        assertEquals(4, done, "the previous step failed");
        Observer observer = new Observer("A' leaves");
        assertTrue(a.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(30))), "clean close of A' (LEAVE_GROUP)");
        a = null;
        step("A' closed with LEAVE_GROUP");
        StreamsGroupDescription d = awaitGroup("B alone with all 6 tasks", 30_000, x -> StreamsGroupProtocolTest.settled(x, 1));
        observer.close();
        step("described: " + summary(d));
        assertTrue(member(d, A_ID).isEmpty(), "A's member is gone: " + summary(d));
        assertTrue(d.groupEpoch() > epoch, "group epoch grew: " + epoch + " -> " + d.groupEpoch());
        epoch = d.groupEpoch();
        produceLines(100);
        counts.awaitExact("B alone", 60_000);
        done = 5;
    }

    @Test
    @Order(6)
    void temporaryLeaveEndsWithTheSession() throws Exception {
        assertEquals(5, done, "the previous step failed");
        Observer observer = new Observer("B down");
        long closing = System.nanoTime();
        assertTrue(b.close(Duration.ofSeconds(30)), "clean close of B");
        b = null;
        step("B closed (default close) in " + (System.nanoTime() - closing) / 1_000_000 + " ms");
        StreamsGroupDescription d = awaitGroup("B's member at epoch -2", 15_000, x -> {
            if (member(x, B_ID).isEmpty()) throw new AssertionError("B's member left the group: " + summary(x));
            return memberOf(x, B_ID).memberEpoch() == -2;
        });
        step("described: " + summary(d));
        assertEquals(epoch, d.groupEpoch(), "group epoch after B's temporary leave: " + summary(d));
        assertEquals(ofAllTasks(), tasks(memberOf(d, B_ID)), "B's tasks stay reserved: " + summary(d));
        assertEquals(memberB, memberOf(d, B_ID).memberId(), "B's member id");
        assertEquals(GroupState.RECONCILING, d.groupState(), "state with B away: " + summary(d));
        d = awaitGroup("B's member removed by the session timeout", SESSION_TIMEOUT_MS + 15_000, x -> x.members().isEmpty());
        long ms = (System.nanoTime() - closing) / 1_000_000;
        observer.close();
        step("B's member removed " + ms + " ms after its close began: " + summary(d));
        // the session (12 s) runs from B's last heartbeat, at most a heartbeat interval (0.5 s)
        // before the close began: not removed sooner (the -2 member is kept, not expired at once)
        assertTrue(ms >= SESSION_TIMEOUT_MS - 1_500, "B's member removed before its session timeout: " + ms + " ms");
        assertEquals(GroupState.EMPTY, d.groupState(), summary(d));
        assertTrue(d.groupEpoch() > epoch, "group epoch grew: " + epoch + " -> " + d.groupEpoch());
        done = 6;
    }

    static Set<String> ofAllTasks() {
        return new TreeSet<>(StreamsGroupProtocolTest.ALL_TASKS);
    }
}
