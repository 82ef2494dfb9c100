package dev.klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.WakeupException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Klamm cluster mode under faults, seen through kafka-clients: a real ZooKeeper and three
 * Klamm brokers ({@code --zookeeper-connect}), a topic of 3 partitions with replication
 * factor 3 and {@code min.insync.replicas=2}, an idempotent {@code acks=all} producer writing
 * numbered records at a steady rate and a classic-group consumer committing with
 * {@code commitSync} while, one at a time: the leader of partition 0 is killed with SIGKILL
 * and restarted, the controller is killed with SIGKILL and restarted, and all three brokers
 * are restarted one by one with SIGTERM (controlled shutdown); once the consumer has left, the
 * group's coordinator is killed with SIGKILL. Afterwards every acknowledged record must be in
 * the log exactly once at the offset its acknowledgement gave, in producer order per
 * partition, no send may have failed, and the group's committed offsets must be at least the
 * last ones whose commit was acknowledged (checked after every fault).
 *
 * <p>Every wait has a deadline and ends on a positive signal (acknowledgements counted after
 * the fault, a new leader, controller or coordinator named, full ISRs). Skipped when Debian's
 * ZooKeeper is not installed. Under {@code COMPAT_BROKER=kafka} the cluster is three Apache
 * Kafka 4.4 nodes in KRaft combined mode instead ({@link ClusterNode.Kafka}; Kafka 4 has no
 * ZooKeeper mode). The test directory (ZooKeeper's and every broker's log and data, and the
 * record lists: acks.tsv, final-log.tsv, consumed.tsv, commits.tsv, events.txt) is kept when
 * the test fails, or with {@code -Dcompat.keep=true}; {@code -Dcompat.verbose=true} prints the
 * timeline as it happens.
 */
@Tag("cluster")
@Timeout(value = 300, unit = TimeUnit.SECONDS) // a safety net: every wait below has its own deadline
class ClusterFailoverTest {
    static final int NODES = 3;
    static final int PARTITIONS = 3;
    /** Records per second, round robin over the partitions. */
    static final int RATE = 150;
    /** Time allowed for each recovery step (failover, restart, full ISRs, acks resuming). */
    static final Duration HEAL = Duration.ofSeconds(30);
    /** Acknowledgements per partition that prove production goes on after a fault. */
    static final int ACKS_AFTER_FAULT = 20;
    static final String TOPIC = "failover";
    static final String GROUP = "failover-group";
    static final String OFFSETS_TOPIC = "__consumer_offsets";
    static final DateTimeFormatter UTC = DateTimeFormatter.ofPattern("HH:mm:ss.SSS").withZone(ZoneOffset.UTC);

    static Path dir;
    static ZkServer zk;
    static final Map<Integer, ClusterNode> NODE = new TreeMap<>();
    static String bootstrap;
    static boolean passed;

    static final List<String> EVENTS = Collections.synchronizedList(new ArrayList<>());

    @BeforeAll
    static void startCluster() throws IOException {
        boolean kafka = Broker.isKafka();
        if (!kafka && !ZkServer.installed()) {
            return; // the test is skipped in beforeEach, so the report lists it as skipped
        }
        Path base = Paths.get(System.getProperty("compat.tmp", System.getProperty("java.io.tmpdir")));
        Files.createDirectories(base);
        dir = Files.createTempDirectory(base, "cluster-");
        event("test dir " + dir);
        if (kafka) {
            // The reference: three Kafka 4.4 nodes in KRaft combined mode, with settings
            // matching the Klamm flags below (a 2 s broker session, 2 s replica lag).
            int[] ports = new int[NODES];
            int[] controllerPorts = new int[NODES];
            for (int i = 0; i < NODES; i++) {
                ports[i] = Broker.freePort();
                controllerPorts[i] = Broker.freePort();
            }
            String clusterId = ClusterNode.Kafka.newClusterId();
            for (int n = 1; n <= NODES; n++) {
                NODE.put(n, new ClusterNode.Kafka(n, dir.resolve("node-" + n), ports, controllerPorts, clusterId, List.of(
                        "broker.heartbeat.interval.ms=500", "broker.session.timeout.ms=2000",
                        "replica.lag.time.max.ms=2000", "offsets.topic.replication.factor=3",
                        "offsets.topic.num.partitions=3", "transaction.state.log.replication.factor=3",
                        "transaction.state.log.min.isr=2")));
            }
        } else {
            zk = new ZkServer(dir.resolve("zookeeper")).start();
            event("ZooKeeper listening on " + zk.connect());
            for (int n = 1; n <= NODES; n++) {
                NODE.put(n, new ClusterNode.Klamm(n, dir.resolve("node-" + n), List.of(
                        "--node-id", String.valueOf(n),
                        "--zookeeper-connect", zk.connect() + "/javafail",
                        "--zookeeper-session-timeout-ms", "2000",
                        "--replica-lag-time-max-ms", "2000",
                        "--offsets-topic-num-partitions", "3")));
            }
        }
        // Kafka's nodes wait for a quorum of voters: launch all, then wait for each.
        for (ClusterNode node : NODE.values()) {
            node.launch();
        }
        for (ClusterNode node : NODE.values()) {
            node.awaitReady();
            event("node " + node.id() + " ready on " + node.bootstrap());
        }
        bootstrap = NODE.values().stream().map(ClusterNode::bootstrap).collect(Collectors.joining(","));
    }

    @BeforeEach
    void needsZooKeeper() {
        Assumptions.assumeTrue(Broker.isKafka() || ZkServer.installed(),
                ZkServer.SCRIPT + " missing (apt-get install zookeeper): no cluster to test");
    }

    @AfterAll
    static void stopCluster() {
        for (ClusterNode node : NODE.values()) {
            node.kill();
        }
        if (zk != null) {
            zk.stop();
        }
        if (dir == null) {
            return;
        }
        if (passed && !Boolean.getBoolean("compat.keep")) {
            Broker.deleteTree(dir);
        } else {
            System.out.println("ClusterFailoverTest: ZooKeeper and broker logs, data and record lists kept in " + dir);
        }
    }

    /** Timings printed in the summary line. */
    static final Map<String, Long> FIGURES = Collections.synchronizedMap(new java.util.LinkedHashMap<>());

    static void event(String what) {
        String line = UTC.format(Instant.now()) + " " + what;
        EVENTS.add(line);
        if (Boolean.getBoolean("compat.verbose")) {
            System.out.println("[ClusterFailoverTest] " + line);
        }
    }

    /** Keeps the largest value seen under {@code name}. */
    static void figure(String name, long value) {
        FIGURES.merge(name, value, Math::max);
    }

    // ------------------------------------------------------------------ the workload

    record Ack(long n, int partition, long offset) {
    }

    record Seen(int partition, long offset, long n) {
    }

    static String value(long n) {
        return String.format("rec-%07d", n);
    }

    static long number(byte[] value) {
        String s = Kit.s(value);
        if (s == null || !s.startsWith("rec-")) {
            return -1;
        }
        try {
            return Long.parseLong(s.substring(4));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** The idempotent producer: numbered records, partition n % 3, at {@link #RATE} per second. */
    static final class Writer implements Runnable {
        final KafkaProducer<byte[], byte[]> producer;
        final ConcurrentLinkedQueue<Ack> acks = new ConcurrentLinkedQueue<>();
        final ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
        final AtomicLongArray acked = new AtomicLongArray(PARTITIONS);
        final AtomicInteger sent = new AtomicInteger();
        volatile boolean stop;
        volatile Throwable died;

        Writer(String bootstrap) {
            producer = Kit.producer(bootstrap,
                    "enable.idempotence", "true", "acks", "all",
                    "delivery.timeout.ms", "60000", "request.timeout.ms", "15000", "linger.ms", "5",
                    "max.in.flight.requests.per.connection", "5", "client.id", "failover-producer");
        }

        @Override
        public void run() {
            long period = TimeUnit.SECONDS.toNanos(1) / RATE;
            long next = System.nanoTime();
            try {
                for (long n = 0; !stop; n++) {
                    final long num = n;
                    final int partition = (int) (n % PARTITIONS);
                    producer.send(new ProducerRecord<>(TOPIC, partition, Kit.b("k" + n), Kit.b(value(n))),
                            (md, e) -> {
                                if (e != null) {
                                    errors.add("record " + num + " (partition " + partition + "): " + e);
                                } else {
                                    acks.add(new Ack(num, md.partition(), md.offset()));
                                    acked.incrementAndGet(md.partition());
                                }
                            });
                    sent.incrementAndGet();
                    next += period;
                    long now = System.nanoTime();
                    if (next > now) {
                        LockSupport.parkNanos(next - now);
                    } else if (now - next > TimeUnit.SECONDS.toNanos(1)) {
                        next = now; // send() blocked: keep the rate, do not burst
                    }
                }
            } catch (Throwable t) {
                died = t;
            }
        }
    }

    /** The classic-group consumer: polls, and commits what it consumed with commitSync. */
    static final class Reader implements Runnable {
        final KafkaConsumer<byte[], byte[]> consumer;
        final ConcurrentLinkedQueue<Seen> seen = new ConcurrentLinkedQueue<>();
        /** The offsets of the last commitSync that returned normally, per partition. */
        final Map<Integer, Long> lastCommitted = new HashMap<>();
        final ConcurrentLinkedQueue<String> commits = new ConcurrentLinkedQueue<>();
        final ConcurrentLinkedQueue<String> commitFailures = new ConcurrentLinkedQueue<>();
        final ConcurrentLinkedQueue<String> pollErrors = new ConcurrentLinkedQueue<>();
        /** Each assignment: where the consumer resumed, against the last acknowledged commit. */
        final ConcurrentLinkedQueue<String> assignments = new ConcurrentLinkedQueue<>();
        /** Resumed below an acknowledged commit: the coordinator lost a commit. */
        final ConcurrentLinkedQueue<String> regressions = new ConcurrentLinkedQueue<>();
        volatile boolean stop;
        volatile Throwable died;

        Reader(String bootstrap) {
            consumer = Kit.consumer(bootstrap, GROUP, "group.protocol", "classic",
                    "session.timeout.ms", "10000", "heartbeat.interval.ms", "1000",
                    "client.id", "failover-consumer");
        }

        synchronized Map<Integer, Long> lastCommitted() {
            return new TreeMap<>(lastCommitted);
        }

        @Override
        public void run() {
            Map<TopicPartition, Long> next = new HashMap<>();
            long lastCommit = 0;
            try {
                consumer.subscribe(List.of(TOPIC), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    }

                    @Override
                    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                        resumed(partitions);
                    }
                });
                while (!stop) {
                    ConsumerRecords<byte[], byte[]> records;
                    try {
                        records = consumer.poll(Duration.ofMillis(200));
                    } catch (WakeupException e) {
                        break;
                    } catch (KafkaException e) {
                        pollErrors.add(UTC.format(Instant.now()) + " " + e);
                        continue;
                    }
                    for (ConsumerRecord<byte[], byte[]> r : records) {
                        seen.add(new Seen(r.partition(), r.offset(), number(r.value())));
                        next.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
                    }
                    if (next.isEmpty() || System.nanoTime() - lastCommit < TimeUnit.MILLISECONDS.toNanos(250)) {
                        continue;
                    }
                    lastCommit = System.nanoTime();
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    Set<TopicPartition> owned = consumer.assignment();
                    next.forEach((tp, off) -> {
                        if (owned.contains(tp)) {
                            offsets.put(tp, new OffsetAndMetadata(off));
                        }
                    });
                    if (offsets.isEmpty()) {
                        continue;
                    }
                    try {
                        consumer.commitSync(offsets, Duration.ofSeconds(10));
                        synchronized (this) {
                            offsets.forEach((tp, om) -> lastCommitted.put(tp.partition(), om.offset()));
                        }
                        commits.add(UTC.format(Instant.now()) + " " + render(offsets));
                    } catch (WakeupException e) {
                        break;
                    } catch (KafkaException e) {
                        // not acknowledged (coordinator moving, rebalance, timeout): not counted
                        commitFailures.add(UTC.format(Instant.now()) + " " + render(offsets) + " " + e);
                    }
                }
            } catch (Throwable t) {
                died = t;
            }
        }

        /** Where the consumer resumes (its committed offsets): never below an acknowledged commit. */
        void resumed(Collection<TopicPartition> partitions) {
            Map<Integer, Long> last = lastCommitted();
            Map<Integer, Long> at = new TreeMap<>();
            for (TopicPartition tp : partitions) {
                long pos;
                try {
                    pos = consumer.position(tp, Duration.ofSeconds(10));
                } catch (KafkaException e) {
                    assignments.add(UTC.format(Instant.now()) + " " + tp + ": position unknown: " + e);
                    continue;
                }
                at.put(tp.partition(), pos);
                Long acked = last.get(tp.partition());
                if (acked != null && pos < acked) {
                    regressions.add(UTC.format(Instant.now()) + " " + tp + " resumed at " + pos
                            + ", below the acknowledged commit " + acked);
                }
            }
            assignments.add(UTC.format(Instant.now()) + " assigned, resuming at " + at + " (last acknowledged commit "
                    + last + ")");
        }

        static String render(Map<TopicPartition, OffsetAndMetadata> offsets) {
            return new TreeMap<>(offsets.entrySet().stream().collect(
                    Collectors.toMap(e -> e.getKey().partition(), e -> e.getValue().offset()))).toString();
        }
    }

    // ------------------------------------------------------------------ cluster state

    static Map<TopicPartition, TopicPartitionInfo> describe(Admin admin, Collection<String> topics) throws Exception {
        Map<String, TopicDescription> d = admin.describeTopics(topics).allTopicNames().get(5, TimeUnit.SECONDS);
        Map<TopicPartition, TopicPartitionInfo> out = new TreeMap<>(
                java.util.Comparator.comparing(TopicPartition::topic).thenComparingInt(TopicPartition::partition));
        d.forEach((t, td) -> td.partitions().forEach(p -> out.put(new TopicPartition(t, p.partition()), p)));
        return out;
    }

    static String render(Map<TopicPartition, TopicPartitionInfo> state) {
        StringBuilder sb = new StringBuilder();
        state.forEach((tp, p) -> sb.append(tp).append(" leader=").append(p.leader() == null ? "none" : p.leader().id())
                .append(" isr=").append(p.isr().stream().map(Node::id).sorted().toList()).append("; "));
        return sb.toString();
    }

    /** Topics whose ISRs must be whole before the next fault (the group's offsets topic once it exists). */
    static List<String> watched(boolean withOffsets) {
        return withOffsets ? List.of(TOPIC, OFFSETS_TOPIC) : List.of(TOPIC);
    }

    static void awaitFullIsrs(Admin admin, String why, boolean withOffsets) {
        String[] last = {"(no answer yet)"};
        long start = System.nanoTime();
        Kit.waitUntil("every ISR = all " + NODES + " brokers (" + why + ")", HEAL, () -> {
            try {
                Map<TopicPartition, TopicPartitionInfo> st = describe(admin, watched(withOffsets));
                last[0] = render(st);
                return st.size() == PARTITIONS * watched(withOffsets).size() && st.values().stream()
                        .allMatch(p -> p.leader() != null && !p.leader().isEmpty() && p.isr().size() == NODES);
            } catch (Exception e) {
                last[0] = e.toString();
                return false;
            }
        }, () -> "; last seen: " + last[0]);
        figure("isr_full_max_ms", ms(start));
        event("ISRs full (" + why + ") after " + ms(start) + " ms: " + last[0]);
    }

    static int leaderOf(Admin admin, TopicPartition tp) throws Exception {
        TopicPartitionInfo p = describe(admin, List.of(tp.topic())).get(tp);
        assertTrue(p != null && p.leader() != null && !p.leader().isEmpty(), "no leader for " + tp + ": " + p);
        return p.leader().id();
    }

    /** The group's committed offsets on {@link #TOPIC}, per partition. */
    static Map<Integer, Long> committed(Admin admin) {
        Map<TopicPartition, OffsetAndMetadata> m =
                Kit.get(admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata());
        Map<Integer, Long> out = new TreeMap<>();
        m.forEach((tp, om) -> {
            if (tp.topic().equals(TOPIC) && om != null) {
                out.put(tp.partition(), om.offset());
            }
        });
        return out;
    }

    /** listConsumerGroupOffsets gives at least {@code acked} (acknowledged commits) on every partition. */
    static void assertCommittedAtLeast(Admin admin, Map<Integer, Long> acked, String when) {
        Map<Integer, Long> got = committed(admin);
        for (Map.Entry<Integer, Long> e : acked.entrySet()) {
            Long g = got.get(e.getKey());
            assertTrue(g != null && g >= e.getValue(), "partition " + e.getKey() + " " + when
                    + ": the group's committed offset is " + g + ", below the acknowledged commit " + e.getValue()
                    + " (committed " + got + ", acknowledged before the fault " + acked + ")");
        }
        event("committed offsets " + when + ": " + got + " >= acknowledged before " + acked);
    }

    static int coordinator(Admin admin) throws Exception {
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(GROUP)).describedGroups().get(GROUP)
                .get(5, TimeUnit.SECONDS);
        return d.coordinator().id();
    }

    static Node controller(Admin admin) throws Exception {
        return admin.describeCluster().controller().get(5, TimeUnit.SECONDS);
    }

    /** Waits until every partition in {@code partitions} got {@code n} more acknowledgements. */
    static void awaitAcks(Writer w, String why, int n, int... partitions) {
        long[] base = new long[PARTITIONS];
        for (int p = 0; p < PARTITIONS; p++) {
            base[p] = w.acked.get(p);
        }
        long start = System.nanoTime();
        Kit.waitUntil(n + " more acknowledgements on partitions " + java.util.Arrays.toString(partitions)
                        + " (" + why + ")", HEAL,
                () -> {
                    for (int p : partitions) {
                        if (w.acked.get(p) < base[p] + n) {
                            return false;
                        }
                    }
                    return true;
                },
                () -> "; acks per partition then " + java.util.Arrays.toString(base) + ", now " + w.acked
                        + "; send errors: " + w.errors.size() + " " + w.errors.stream().limit(3).toList());
        event("acks resumed (" + why + ") after " + ms(start) + " ms");
    }

    static final int[] ALL = {0, 1, 2};

    static long ms(long startNanos) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
    }

    static void kill(int node) {
        ClusterNode b = NODE.get(node);
        event("SIGKILL node " + node);
        b.kill();
        event("node " + node + " exited (status " + b.lastExit() + ")");
    }

    /** SIGTERM: a controlled shutdown must end with a clean exit status within the stop timeout. */
    static void terminate(int node) {
        ClusterNode b = NODE.get(node);
        event("SIGTERM node " + node);
        long start = System.nanoTime();
        b.stop();
        event("node " + node + " exited (status " + b.lastExit() + ") after " + ms(start) + " ms");
        assertTrue(b.cleanExits().contains(b.lastExit()), "node " + node + " after SIGTERM: exit status "
                + b.lastExit() + ", expected one of " + b.cleanExits() + " (-1: still running after the stop "
                + "timeout, then killed)\n" + b.logTail(40));
    }

    static void restart(int node) {
        ClusterNode b = NODE.get(node);
        long start = System.nanoTime();
        b.start();
        event("node " + node + " restarted, ready after " + ms(start) + " ms");
    }

    // ------------------------------------------------------------------ the test

    @Test
    void acknowledgedRecordsAndCommittedOffsetsSurviveLeaderAndControllerKillsAndARollingRestart() throws Throwable {
        long testStart = System.nanoTime();
        Writer writer = null;
        Reader reader = null;
        Thread wt = null;
        Thread rt = null;
        try (Admin admin = Kit.admin(bootstrap)) {
            Kit.get(admin.createTopics(List.of(new NewTopic(TOPIC, PARTITIONS, (short) NODES)
                    .configs(Map.of("min.insync.replicas", "2")))).all());
            event("topic " + TOPIC + " created");
            awaitFullIsrs(admin, "new topic", false);

            writer = new Writer(bootstrap);
            reader = new Reader(bootstrap);
            wt = new Thread(writer, "failover-producer-loop");
            rt = new Thread(reader, "failover-consumer-loop");
            wt.start();
            rt.start();
            awaitAcks(writer, "production started", 30, ALL);
            Reader r0 = reader;
            Kit.waitUntil("a first acknowledged commitSync of the group", HEAL, () -> !r0.lastCommitted().isEmpty(),
                    () -> "; commit failures: " + r0.commitFailures.stream().limit(5).toList()
                            + "; poll errors: " + r0.pollErrors.stream().limit(5).toList());
            awaitFullIsrs(admin, "with " + OFFSETS_TOPIC, true);

            // 1. SIGKILL the leader of partition 0, then restart it.
            TopicPartition p0 = new TopicPartition(TOPIC, 0);
            int leader = leaderOf(admin, p0);
            event("group coordinator is node " + coordinator(admin));
            Map<Integer, Long> ackedCommits = reader.lastCommitted();
            kill(leader);
            long killed = System.nanoTime();
            awaitAcks(writer, "partition 0 after SIGKILL of its leader, node " + leader, ACKS_AFTER_FAULT, 0);
            figure("leader_kill_to_acks_ms", ms(killed));
            int newLeader = leaderOf(admin, p0);
            assertNotEquals(leader, newLeader, "partition 0 acknowledged writes, yet its leader is still the dead node");
            event("partition 0 now led by node " + newLeader);
            restart(leader);
            awaitFullIsrs(admin, "node " + leader + " back", true);
            awaitAcks(writer, "node " + leader + " back", ACKS_AFTER_FAULT, ALL);
            assertCommittedAtLeast(admin, ackedCommits, "after SIGKILL of node " + leader);

            // 2. SIGKILL the controller, then restart it.
            int ctl = controller(admin).id();
            event("controller is node " + ctl + ", group coordinator node " + coordinator(admin));
            ackedCommits = reader.lastCommitted();
            kill(ctl);
            String[] seenCtl = {"?"};
            long ctlStart = System.nanoTime();
            Kit.waitUntil("a new controller after SIGKILL of node " + ctl, HEAL, () -> {
                try {
                    Node c = controller(admin);
                    seenCtl[0] = String.valueOf(c);
                    return c != null && !c.isEmpty() && c.id() != ctl && NODE.get(c.id()) != null;
                } catch (Exception e) {
                    seenCtl[0] = e.toString();
                    return false;
                }
            }, () -> "; last answer: " + seenCtl[0]);
            event("new controller " + seenCtl[0] + " after " + ms(ctlStart) + " ms");
            figure("controller_kill_to_new_controller_ms", ms(ctlStart));
            awaitAcks(writer, "after SIGKILL of the controller, node " + ctl, ACKS_AFTER_FAULT, ALL);
            restart(ctl);
            awaitFullIsrs(admin, "node " + ctl + " back", true);
            awaitAcks(writer, "node " + ctl + " back", ACKS_AFTER_FAULT, ALL);
            assertCommittedAtLeast(admin, ackedCommits, "after SIGKILL of node " + ctl);

            // 3. Rolling restart with SIGTERM (controlled shutdown).
            for (int n = 1; n <= NODES; n++) {
                event("group coordinator is node " + coordinator(admin));
                ackedCommits = reader.lastCommitted();
                long termStart = System.nanoTime();
                terminate(n);
                figure("sigterm_exit_max_ms", ms(termStart));
                awaitAcks(writer, "node " + n + " stopped by SIGTERM", ACKS_AFTER_FAULT, ALL);
                restart(n);
                awaitFullIsrs(admin, "node " + n + " back after SIGTERM", true);
                awaitAcks(writer, "node " + n + " back after SIGTERM", ACKS_AFTER_FAULT, ALL);
                assertCommittedAtLeast(admin, ackedCommits, "after SIGTERM of node " + n);
            }

            // Stop the producer: every record it sent must have been acknowledged.
            writer.stop = true;
            wt.join(10_000);
            assertTrue(!wt.isAlive(), "the producer loop did not stop");
            long flushStart = System.nanoTime();
            writer.producer.flush(); // bounded by delivery.timeout.ms
            writer.producer.close(Duration.ofSeconds(10));
            event("producer flushed and closed (" + ms(flushStart) + " ms): sent " + writer.sent.get()
                    + ", acknowledged " + writer.acks.size() + ", failed " + writer.errors.size());
            if (writer.died != null) {
                throw new AssertionError("the producer loop failed", writer.died);
            }
            assertEquals(List.of(), List.copyOf(writer.errors),
                    "no send may fail: an idempotent acks=all producer rides through leader and controller "
                            + "SIGKILLs and a SIGTERM rolling restart with retriable errors only");
            assertEquals(writer.sent.get(), writer.acks.size(), "every record sent was acknowledged");

            // The group catches up with the end of the log, then leaves.
            Map<TopicPartition, Long> end;
            try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(bootstrap, null)) {
                end = c.endOffsets(partitions(), Duration.ofSeconds(20));
            }
            Map<Integer, Long> endByPartition = new TreeMap<>();
            end.forEach((tp, off) -> endByPartition.put(tp.partition(), off));
            Reader r = reader;
            Kit.waitUntil("the group's consumer to commit the end offsets " + endByPartition, HEAL,
                    () -> r.lastCommitted().equals(endByPartition),
                    () -> "; last acknowledged commit " + r.lastCommitted() + "; commit failures: "
                            + r.commitFailures.size() + " " + r.commitFailures.stream().limit(5).toList());
            reader.stop = true;
            rt.join(15_000);
            assertTrue(!rt.isAlive(), "the consumer loop did not stop");
            reader.consumer.close(Duration.ofSeconds(10));
            event("consumer closed: " + reader.commits.size() + " acknowledged commits, "
                    + reader.commitFailures.size() + " failed, " + reader.assignments.size() + " assignments, "
                    + reader.seen.size() + " records consumed");
            if (reader.died != null) {
                throw new AssertionError("the consumer loop failed", reader.died);
            }
            assertEquals(List.of(), List.copyOf(reader.pollErrors), "poll() threw during the faults");
            Map<Integer, Long> lastCommitted = reader.lastCommitted();
            assertEquals(List.of(), List.copyOf(reader.regressions),
                    "the group's consumer resumed below an acknowledged commit (assignments: " + reader.assignments + ")");

            // Committed offsets survive the loss of the group's coordinator: SIGKILL it.
            assertCommittedAtLeast(admin, lastCommitted, "once the consumer left");
            int coord = coordinator(admin);
            event("group coordinator is node " + coord);
            kill(coord);
            String[] seenCoord = {"?"};
            long coordStart = System.nanoTime();
            Kit.waitUntil("another group coordinator after SIGKILL of node " + coord, HEAL, () -> {
                try {
                    int c = coordinator(admin);
                    seenCoord[0] = String.valueOf(c);
                    return c != coord && NODE.containsKey(c);
                } catch (Exception e) {
                    seenCoord[0] = e.toString();
                    return false;
                }
            }, () -> "; last answer: " + seenCoord[0]);
            event("group coordinator now node " + seenCoord[0] + " after " + ms(coordStart) + " ms");
            figure("coordinator_kill_to_new_coordinator_ms", ms(coordStart));
            assertCommittedAtLeast(admin, lastCommitted, "after SIGKILL of the group coordinator, node " + coord);
            restart(coord);
            awaitFullIsrs(admin, "node " + coord + " back", true);

            // Read everything back and check it against the acknowledgements.
            Map<Integer, TreeMap<Long, Long>> log = readAll(end);
            writeEvidence(writer, reader, log);
            List<String> problems = check(List.copyOf(writer.acks), log, List.copyOf(reader.seen));
            if (!problems.isEmpty()) {
                fail(problems.size() + " problem(s) in the log read back (record lists in " + dir + "):\n  "
                        + String.join("\n  ", problems.subList(0, Math.min(40, problems.size())))
                        + (problems.size() > 40 ? "\n  ... (" + (problems.size() - 40) + " more)" : ""));
            }
            for (Map.Entry<Integer, ClusterNode> e : NODE.entrySet()) {
                assertTrue(!e.getValue().diedUnexpectedly(), "node " + e.getKey() + " died on its own:\n"
                        + e.getValue().logTail(60));
            }
            event("passed: " + writer.acks.size() + " records acknowledged, all present once at their offsets, in "
                    + ms(testStart) + " ms");
            System.out.println("ClusterFailoverTest (" + (Broker.isKafka() ? "Kafka" : "Klamm") + ", kafka-clients "
                    + Kit.clientVersion() + "): " + writer.acks.size() + " records acknowledged and read back, "
                    + reader.commits.size() + " commits acknowledged (" + reader.commitFailures.size() + " failed), "
                    + reader.assignments.size() + " assignments, " + ms(testStart) + " ms; " + FIGURES);
            passed = true;
        } catch (Throwable t) {
            event("FAILED: " + t);
            if (writer != null) {
                writer.stop = true;
            }
            if (reader != null) {
                reader.stop = true;
                reader.consumer.wakeup();
            }
            if (wt != null) {
                wt.join(10_000);
            }
            if (rt != null) {
                rt.join(10_000);
            }
            if (writer != null && reader != null) {
                try {
                    writeEvidence(writer, reader, Map.of());
                } catch (RuntimeException ignored) {
                    // best effort
                }
            }
            printLogs();
            throw t;
        } finally {
            if (writer != null) {
                writer.producer.close(Duration.ofSeconds(5));
            }
            if (reader != null && rt != null && !rt.isAlive()) {
                reader.consumer.close(Duration.ofSeconds(5));
            }
            writeLines("events.txt", List.copyOf(EVENTS));
        }
    }

    static Set<TopicPartition> partitions() {
        Set<TopicPartition> out = new java.util.LinkedHashSet<>();
        for (int p = 0; p < PARTITIONS; p++) {
            out.add(new TopicPartition(TOPIC, p));
        }
        return out;
    }

    /** Every record of every partition up to {@code end}: partition -> offset -> record number. */
    static Map<Integer, TreeMap<Long, Long>> readAll(Map<TopicPartition, Long> end) {
        Map<Integer, TreeMap<Long, Long>> log = new TreeMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            log.put(p, new TreeMap<>());
        }
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(bootstrap, null, "isolation.level", "read_uncommitted")) {
            c.assign(partitions());
            c.seekToBeginning(partitions());
            long deadline = System.nanoTime() + HEAL.toNanos();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : partitions()) {
                    if (c.position(tp) < end.get(tp)) {
                        done = false;
                    }
                }
                if (done) {
                    break;
                }
                if (System.nanoTime() > deadline) {
                    Map<Integer, Long> pos = new TreeMap<>();
                    partitions().forEach(tp -> pos.put(tp.partition(), c.position(tp)));
                    fail("could not read up to the end offsets " + end + " within " + HEAL + ": positions " + pos);
                }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    if (r.offset() < end.get(new TopicPartition(r.topic(), r.partition()))) {
                        log.get(r.partition()).put(r.offset(), number(r.value()));
                    }
                }
            }
        }
        return log;
    }

    /** Everything wrong with the log read back, given what was acknowledged and consumed. */
    static List<String> check(List<Ack> acks, Map<Integer, TreeMap<Long, Long>> log, List<Seen> seen) {
        List<String> problems = new ArrayList<>();
        // where each record number is in the log
        Map<Long, List<String>> where = new HashMap<>();
        log.forEach((p, recs) -> recs.forEach((off, n) -> where.computeIfAbsent(n, k -> new ArrayList<>()).add(p + "@" + off)));
        for (Map.Entry<Long, List<String>> e : where.entrySet()) {
            if (e.getValue().size() > 1) {
                problems.add("duplicate: record " + e.getKey() + " is in the log " + e.getValue().size() + " times, at "
                        + e.getValue());
            }
        }
        Map<Long, Ack> ackOf = new HashMap<>();
        for (Ack a : acks) {
            Ack before = ackOf.put(a.n(), a);
            if (before != null) {
                problems.add("record " + a.n() + " acknowledged twice: " + before + " and " + a);
            }
            Long there = log.getOrDefault(a.partition(), new TreeMap<>()).get(a.offset());
            if (there == null) {
                problems.add("lost: record " + a.n() + " acknowledged at partition " + a.partition() + " offset "
                        + a.offset() + ", no record there in the log" + (where.containsKey(a.n())
                        ? " (the record is at " + where.get(a.n()) + ")" : " (nor anywhere else)"));
            } else if (there != a.n()) {
                problems.add("misplaced: record " + a.n() + " acknowledged at partition " + a.partition() + " offset "
                        + a.offset() + ", but the log has record " + there + " there"
                        + (where.containsKey(a.n()) ? " (it is at " + where.get(a.n()) + ")" : " (and it is nowhere)"));
            }
            if (a.partition() != a.n() % PARTITIONS) {
                problems.add("record " + a.n() + " was sent to partition " + (a.n() % PARTITIONS)
                        + " but acknowledged on partition " + a.partition());
            }
        }
        log.forEach((p, recs) -> {
            long prevN = -1;
            long prevOff = -1;
            for (Map.Entry<Long, Long> e : recs.entrySet()) {
                long n = e.getValue();
                if (!ackOf.containsKey(n)) {
                    problems.add("unacknowledged record in the log: partition " + p + " offset " + e.getKey()
                            + " holds record " + n);
                }
                if (n <= prevN) {
                    problems.add("order: partition " + p + " has record " + n + " at offset " + e.getKey()
                            + " after record " + prevN + " at offset " + prevOff);
                }
                prevN = n;
                prevOff = e.getKey();
            }
        });
        // the group's consumer read nothing that is not in the final log (no read past a high
        // watermark that a failover truncated)
        for (Seen s : seen) {
            Long there = log.getOrDefault(s.partition(), new TreeMap<>()).get(s.offset());
            if (there == null || there != s.n()) {
                problems.add("the group's consumer read record " + s.n() + " at partition " + s.partition()
                        + " offset " + s.offset() + ", the final log has " + (there == null ? "nothing" : "record " + there)
                        + " there");
            }
        }
        return problems;
    }

    static void writeEvidence(Writer w, Reader r, Map<Integer, TreeMap<Long, Long>> log) {
        List<String> acks = new ArrayList<>(List.of("# n\tpartition\toffset"));
        w.acks.stream().sorted(java.util.Comparator.comparingLong(Ack::n))
                .forEach(a -> acks.add(a.n() + "\t" + a.partition() + "\t" + a.offset()));
        writeLines("acks.tsv", acks);
        List<String> errors = new ArrayList<>(w.errors);
        errors.add(0, "# sent " + w.sent.get() + ", acknowledged " + w.acks.size());
        writeLines("producer-errors.txt", errors);
        if (!log.isEmpty()) {
            List<String> lines = new ArrayList<>(List.of("# partition\toffset\tn"));
            log.forEach((p, recs) -> recs.forEach((off, n) -> lines.add(p + "\t" + off + "\t" + n)));
            writeLines("final-log.tsv", lines);
        }
        List<String> seen = new ArrayList<>(List.of("# partition\toffset\tn (in the order consumed)"));
        r.seen.forEach(s -> seen.add(s.partition() + "\t" + s.offset() + "\t" + s.n()));
        writeLines("consumed.tsv", seen);
        List<String> commits = new ArrayList<>(List.of("# acknowledged commitSync calls (UTC), partition=offset"));
        commits.addAll(r.commits);
        commits.add("# failed commitSync calls");
        commits.addAll(r.commitFailures);
        commits.add("# poll errors");
        commits.addAll(r.pollErrors);
        commits.add("# assignments (where the consumer resumed)");
        commits.addAll(r.assignments);
        commits.add("# resumed below an acknowledged commit");
        commits.addAll(r.regressions);
        writeLines("commits.tsv", commits);
    }

    static void writeLines(String name, List<String> lines) {
        if (dir == null) {
            return;
        }
        try {
            Files.write(dir.resolve(name), lines, StandardCharsets.UTF_8);
        } catch (IOException ignored) {
            // evidence is best effort
        }
    }

    static void printLogs() {
        StringBuilder sb = new StringBuilder("\n===== ClusterFailoverTest FAILED: timeline (UTC) =====\n");
        synchronized (EVENTS) {
            EVENTS.forEach(e -> sb.append(e).append('\n'));
        }
        for (Map.Entry<Integer, ClusterNode> e : NODE.entrySet()) {
            sb.append("===== node ").append(e.getKey()).append(" =====\n").append(e.getValue().logTail(40));
        }
        if (zk != null) {
            sb.append("===== ZooKeeper =====\n").append(zk.logTail(15)).append('\n');
        }
        sb.append("===== everything is kept in ").append(dir).append(" =====");
        System.out.println(sb);
    }
}
