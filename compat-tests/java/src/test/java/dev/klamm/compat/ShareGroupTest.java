package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * KIP-932 share groups ("queues"): {@link KafkaShareConsumer} (ShareGroupHeartbeat, ShareFetch,
 * ShareAcknowledge) and the share-group configs, set per group with incrementalAlterConfigs on
 * {@code ConfigResource.Type.GROUP}. kafka-clients 4.x only: 3.x has neither
 * {@code ConfigResource.Type.GROUP} nor {@code ConsumerRecord.deliveryCount()}, so the pom's
 * {@code kafka-clients-3} profile leaves this class out of the 3.x compilation.
 *
 * <p>Every test sets {@code share.auto.offset.reset=earliest} on its group before a consumer
 * joins (Kafka's default is latest) and produces before consuming. Negative checks ("never
 * delivered again") end on a positive signal: a record produced afterwards arrives alone, which
 * a share-partition could only hand out if nothing before it was still available.
 */
class ShareGroupTest {
    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension();

    static final Duration WAIT = Duration.ofSeconds(30);
    static final Duration POLL = Duration.ofMillis(200);

    @BeforeEach
    void shareConsumerClient() {
        // 4.0's share RPCs were early access (unstable versions); stable from 4.1, GA in 4.2
        Assumptions.assumeTrue(Kit.clientAtLeast(4, 1),
                "KafkaShareConsumer needs kafka-clients 4.1+; running " + Kit.clientVersion());
    }

    // ------------------------------------------------------------------ helpers

    private static KafkaShareConsumer<byte[], byte[]> shareConsumer(String group, Object... extra) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        Kit.put(p, extra);
        return new KafkaShareConsumer<>(p);
    }

    private static KafkaShareConsumer<byte[], byte[]> explicitConsumer(String group, Object... extra) {
        List<Object> cfg = new ArrayList<>(List.of(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit"));
        cfg.addAll(List.of(extra));
        return shareConsumer(group, cfg.toArray());
    }

    /** Group configs (name, value, ...) with incrementalAlterConfigs SET on the GROUP resource. */
    private static void setGroupConfigs(String group, String... kv) {
        List<AlterConfigOp> ops = new ArrayList<>();
        for (int i = 0; i < kv.length; i += 2) {
            ops.add(new AlterConfigOp(new ConfigEntry(kv[i], kv[i + 1]), AlterConfigOp.OpType.SET));
        }
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            get(admin.incrementalAlterConfigs(
                    Map.of(new ConfigResource(ConfigResource.Type.GROUP, group), ops)).all());
        }
    }

    /** A new topic and a share group reading it from the earliest offset. */
    private static void topicAndGroup(String topic, int partitions, String group, String... groupConfigs) {
        Kit.createTopic(broker.bootstrap(), topic, partitions);
        List<String> cfg = new ArrayList<>(List.of("share.auto.offset.reset", "earliest"));
        cfg.addAll(List.of(groupConfigs));
        setGroupConfigs(group, cfg.toArray(new String[0]));
    }

    /** Produces one record (value = its text) to partition 0 and returns its offset. */
    private static long produce(String topic, String value) {
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            return get(p.send(new ProducerRecord<>(topic, 0, b("k-" + value), b(value)))).offset();
        }
    }

    /** The delivery count the broker gave the record (1 on first delivery); -1 when absent. */
    private static int dc(ConsumerRecord<byte[], byte[]> r) {
        return r.deliveryCount().map(Short::intValue).orElse(-1);
    }

    private static String describe(ConsumerRecord<byte[], byte[]> r) {
        return "p" + r.partition() + "@" + r.offset() + "(dc " + dc(r) + ", " + Kit.s(r.value()) + ")";
    }

    /** commitSync: every acknowledgement it sent must have succeeded; returns what it answered. */
    private static Map<TopicIdPartition, Optional<KafkaException>> commitOk(KafkaShareConsumer<byte[], byte[]> c) {
        Map<TopicIdPartition, Optional<KafkaException>> result = c.commitSync();
        result.forEach((tp, e) -> assertTrue(e.isEmpty(), "acknowledgement of " + tp + " failed: " + e));
        return result;
    }

    /**
     * Polls until {@code done} holds (fails after {@code timeout}). Each record goes to
     * {@code onRecord} first (explicit acknowledgements); with {@code commit} each non-empty
     * poll is followed by commitSync (ShareAcknowledge), otherwise acknowledgements ride on the
     * next ShareFetch.
     */
    private static void pollUntil(
            KafkaShareConsumer<byte[], byte[]> c, String what, Duration timeout, boolean commit,
            Consumer<ConsumerRecord<byte[], byte[]>> onRecord, BooleanSupplier done) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + timeout + " waiting for " + what + "; received "
                        + got.stream().map(ShareGroupTest::describe).toList());
            }
            int n = 0;
            for (ConsumerRecord<byte[], byte[]> r : c.poll(POLL)) {
                got.add(r);
                onRecord.accept(r);
                n++;
            }
            if (commit && n > 0) {
                commitOk(c);
            }
        }
    }

    /**
     * Polls for at least {@code min} and until three polls in a row returned nothing (at most
     * {@code min} + 30 s); returns what arrived (each record also goes to {@code onRecord}).
     */
    private static List<ConsumerRecord<byte[], byte[]>> pollUntilQuiet(
            KafkaShareConsumer<byte[], byte[]> c, Duration min, Consumer<ConsumerRecord<byte[], byte[]>> onRecord) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long start = System.nanoTime();
        long minEnd = start + min.toNanos();
        long deadline = minEnd + WAIT.toNanos();
        int empty = 0;
        while ((System.nanoTime() < minEnd || empty < 3) && System.nanoTime() < deadline) {
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

    /** The group's members (DescribeShareGroups), or none while the group is not described. */
    private static Collection<ShareMemberDescription> members(Admin admin, String group) {
        try {
            ShareGroupDescription d = admin.describeShareGroups(List.of(group)).describedGroups().get(group)
                    .get(10, TimeUnit.SECONDS);
            return d.members();
        } catch (Exception e) {
            return List.of();
        }
    }

    private static void note(String test, String what) {
        System.out.println("ShareGroupTest." + test + " (" + (Broker.isKafka() ? "Kafka" : "Klamm") + "): " + what);
    }

    // ------------------------------------------------------------------ tests

    /**
     * Default (implicit) acknowledgement: every record of a poll is accepted by the next poll
     * (piggybacked on ShareFetch) or by commitSync (ShareAcknowledge). 20 records over 2
     * partitions arrive byte-exact, each once with delivery count 1; a second consumer of the
     * group then gets none of them, only the records produced after it joined.
     */
    @Test
    void implicitAcknowledgement() {
        String topic = Kit.name("share-implicit");
        String group = Kit.name("g-share-implicit");
        topicAndGroup(topic, 2, group);
        Random rnd = new Random(932);
        Map<String, ProducerRecord<byte[], byte[]>> sent = new HashMap<>();
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < 20; i++) {
                byte[] value = new byte[50 + rnd.nextInt(500)];
                rnd.nextBytes(value);                                   // every byte value
                RecordHeaders headers = new RecordHeaders();
                headers.add(new RecordHeader("idx", new byte[] {(byte) i, 0, (byte) 0xff}));
                headers.add(new RecordHeader("empty", new byte[0]));
                headers.add(new RecordHeader("nullv", null));
                ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(
                        topic, i % 2, b("key-" + i + "-\u00e9"), value, headers);
                sent.put("key-" + i + "-\u00e9", r);
                p.send(r);
            }
            p.flush();
        }

        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        try (KafkaShareConsumer<byte[], byte[]> c = shareConsumer(group)) {
            c.subscribe(List.of(topic));
            pollUntil(c, "20 records", WAIT, false, got::add, () -> got.size() >= 20);
            // the last poll's records are still unacknowledged: commitSync sends them
            assertFalse(commitOk(c).isEmpty(), "commitSync acknowledged the last poll's records");
        }
        assertEquals(20, got.size(), "records received: " + got.stream().map(ShareGroupTest::describe).toList());
        Set<String> seen = new HashSet<>();
        for (ConsumerRecord<byte[], byte[]> r : got) {
            String key = Kit.s(r.key());
            ProducerRecord<byte[], byte[]> s = sent.get(key);
            assertNotNull(s, "unexpected key " + key);
            assertTrue(seen.add(key), "delivered twice: " + key);
            assertEquals(s.partition().intValue(), r.partition(), "partition of " + key);
            assertArrayEquals(s.value(), r.value(), "value of " + key);
            assertEquals(Kit.headers(s.headers()), Kit.headers(r.headers()), "headers of " + key);
            assertEquals(1, dc(r), "delivery count of " + key);
        }

        // A second consumer: the accepted records are gone for the group. Only what is produced
        // now (one record per partition, offsets 10) arrives, and nothing after it.
        try (KafkaShareConsumer<byte[], byte[]> c = shareConsumer(group)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> early = pollUntilQuiet(c, Duration.ofSeconds(5), r -> { });
            assertEquals(List.of(), early.stream().map(ShareGroupTest::describe).toList(),
                    "accepted records were delivered again");
            try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
                for (int part = 0; part < 2; part++) {
                    assertEquals(10L, get(p.send(new ProducerRecord<>(topic, part, b("late"), b("late-" + part)))).offset());
                }
            }
            List<ConsumerRecord<byte[], byte[]>> late = new ArrayList<>();
            pollUntil(c, "the 2 new records", WAIT, false, late::add, () -> late.size() >= 2);
            late.addAll(pollUntilQuiet(c, Duration.ofSeconds(2), r -> { }));
            commitOk(c);
            assertEquals(List.of("p0@10(dc 1, late-0)", "p1@10(dc 1, late-1)"),
                    late.stream().map(ShareGroupTest::describe).sorted().toList());
        }
        note("implicitAcknowledgement", "20 records, delivery count 1 each; second consumer: only the 2 new ones");
    }

    /**
     * Explicit acknowledgement: ACCEPT, RELEASE and REJECT of three records (acknowledged as
     * they arrive, sent by commitSync). Only the released record comes back, with delivery count 2.
     */
    @Test
    void explicitAcknowledgementReleaseAndReject() {
        String topic = Kit.name("share-explicit");
        String group = Kit.name("g-share-explicit");
        topicAndGroup(topic, 1, group);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, b("k" + i), b("v" + i)));
            }
            p.flush();
        }
        AcknowledgeType[] first = {AcknowledgeType.ACCEPT, AcknowledgeType.RELEASE, AcknowledgeType.REJECT};
        Map<Long, List<Integer>> deliveries = new TreeMap<>();     // offset -> delivery counts, in order
        try (KafkaShareConsumer<byte[], byte[]> c = explicitConsumer(group)) {
            c.subscribe(List.of(topic));
            Consumer<ConsumerRecord<byte[], byte[]>> ack = r -> {
                deliveries.computeIfAbsent(r.offset(), o -> new ArrayList<>()).add(dc(r));
                // every record of a poll must be acknowledged before the next poll (explicit mode)
                c.acknowledge(r, dc(r) == 1 && r.offset() < 3 ? first[(int) r.offset()] : AcknowledgeType.ACCEPT);
            };
            pollUntil(c, "offsets 0-2, then offset 1 again", WAIT, true, ack,
                    () -> deliveries.keySet().containsAll(List.of(0L, 1L, 2L))
                            && deliveries.get(1L).size() >= 2);
            // Offsets 0 (accepted) and 2 (rejected) stay gone: a new record (offset 3) arrives alone.
            assertEquals(3L, produce(topic, "marker"));
            pollUntil(c, "the marker", WAIT, true, ack, () -> deliveries.containsKey(3L));
            pollUntilQuiet(c, Duration.ofSeconds(2), ack);
            commitOk(c);
        }
        assertEquals(Map.of(0L, List.of(1), 1L, List.of(1, 2), 2L, List.of(1), 3L, List.of(1)), deliveries,
                "offset -> delivery counts");
        note("explicitAcknowledgementReleaseAndReject", "deliveries (offset=[delivery counts]) " + deliveries);
    }

    /**
     * Three consumers of one share group on one partition, each polled by its own thread
     * (implicit acknowledgement), share 200 records: together they receive every offset, each
     * exactly once and with delivery count 1 (no consumer fails or stalls, so no acquisition
     * lock expires and nothing is redelivered), and more than one of them gets records.
     */
    @Test
    void severalConsumersOnePartition() throws Exception {
        String topic = Kit.name("share-several");
        String group = Kit.name("g-share-several");
        topicAndGroup(topic, 1, group);
        int total = 200;
        int consumers = 3;
        record Got(int consumer, long offset, int deliveryCount, String value) {
        }
        Map<Long, List<Got>> byOffset = new ConcurrentHashMap<>();
        AtomicBoolean stop = new AtomicBoolean();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        ExecutorService pool = Executors.newFixedThreadPool(consumers);
        List<Future<Integer>> results = new ArrayList<>();
        try {
            for (int i = 0; i < consumers; i++) {
                int id = i;
                results.add(pool.submit(() -> {
                    int n = 0;
                    try (KafkaShareConsumer<byte[], byte[]> c = shareConsumer(group, "client.id", group + "-" + id)) {
                        c.subscribe(List.of(topic));
                        while (!stop.get() && System.nanoTime() < deadline) {
                            for (ConsumerRecord<byte[], byte[]> r : c.poll(POLL)) {
                                byOffset.computeIfAbsent(r.offset(), o -> Collections.synchronizedList(new ArrayList<>()))
                                        .add(new Got(id, r.offset(), dc(r), Kit.s(r.value())));
                                n++;
                            }
                        }
                        commitOk(c);   // the last poll's records
                    }
                    return n;
                }));
            }
            // All three members hold the partition before anything is produced, so that every
            // consumer has a fair chance at each batch.
            TopicPartition tp = new TopicPartition(topic, 0);
            try (Admin admin = Kit.admin(broker.bootstrap())) {
                Kit.waitUntil("3 members, each assigned " + tp, WAIT, () -> {
                    Collection<ShareMemberDescription> ms = members(admin, group);
                    return ms.size() == consumers
                            && ms.stream().allMatch(m -> m.assignment().topicPartitions().contains(tp));
                }, () -> String.valueOf(members(admin, group)));
            }
            // 20 produce batches of 10 records (a flush after each), so there is something to share
            try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
                for (int i = 0; i < total; i++) {
                    p.send(new ProducerRecord<>(topic, 0, b("k" + i), b("v" + i)));
                    if (i % 10 == 9) {
                        p.flush();
                    }
                }
            }
            // (a consumer thread that failed ends the wait: its error is thrown below)
            Kit.waitUntil("every offset received", Duration.ofNanos(Math.max(0, deadline - System.nanoTime())),
                    () -> byOffset.size() >= total || results.stream().anyMatch(Future::isDone),
                    () -> "(" + byOffset.size() + " offsets)");
        } finally {
            stop.set(true);
            pool.shutdown();
        }
        int[] perConsumer = new int[consumers];
        for (int i = 0; i < consumers; i++) {
            perConsumer[i] = get(results.get(i));
        }
        assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));

        List<String> problems = new ArrayList<>();
        byOffset.keySet().stream().filter(o -> o < 0 || o >= total).sorted()
                .forEach(o -> problems.add("offset " + o + " was never produced"));
        for (long o = 0; o < total; o++) {
            List<Got> g = byOffset.get(o);
            if (g == null) {
                problems.add("offset " + o + " never received");
            } else if (g.size() != 1) {
                problems.add("offset " + o + " received " + g.size() + " times: " + g);
            } else if (g.get(0).deliveryCount() != 1 || !g.get(0).value().equals("v" + o)) {
                problems.add("offset " + o + ": " + g.get(0));
            }
        }
        assertEquals(List.of(), problems);
        long active = Arrays.stream(perConsumer).filter(n -> n > 0).count();
        note("severalConsumersOnePartition", "records per consumer " + Arrays.toString(perConsumer));
        assertTrue(active >= 2, "records per consumer " + Arrays.toString(perConsumer)
                + ": the partition was not shared");
    }

    /**
     * {@code share.delivery.count.limit} at its minimum, 2 (Kafka's group.share.min.delivery.count.limit):
     * a record released every time is delivered twice (delivery counts 1, 2) and then archived.
     */
    @Test
    void deliveryCountLimit() {
        int limit = 2;
        String topic = Kit.name("share-limit");
        String group = Kit.name("g-share-limit");
        topicAndGroup(topic, 1, group, "share.delivery.count.limit", String.valueOf(limit));
        assertEquals(0L, produce(topic, "poison"));
        Map<Long, List<Integer>> deliveries = new TreeMap<>();
        try (KafkaShareConsumer<byte[], byte[]> c = explicitConsumer(group)) {
            c.subscribe(List.of(topic));
            Consumer<ConsumerRecord<byte[], byte[]>> ack = r -> {
                deliveries.computeIfAbsent(r.offset(), o -> new ArrayList<>()).add(dc(r));
                c.acknowledge(r, r.offset() == 0 ? AcknowledgeType.RELEASE : AcknowledgeType.ACCEPT);
            };
            pollUntil(c, limit + " deliveries of offset 0", WAIT, true, ack,
                    () -> deliveries.getOrDefault(0L, List.of()).size() >= limit);
            // Released at its last delivery, offset 0 is archived: a new record (offset 1) arrives alone.
            assertEquals(1L, produce(topic, "next"));
            pollUntil(c, "offset 1", WAIT, true, ack, () -> deliveries.containsKey(1L));
            pollUntilQuiet(c, Duration.ofSeconds(2), ack);
            commitOk(c);
        }
        assertEquals(Map.of(0L, List.of(1, 2), 1L, List.of(1)), deliveries, "offset -> delivery counts");
        note("deliveryCountLimit", "deliveries (offset=[delivery counts]) " + deliveries);
    }

    /**
     * {@code share.record.lock.duration.ms} at its minimum, 15000 (Kafka's
     * group.share.min.record.lock.duration.ms): a record acquired by a consumer that neither
     * acknowledges it nor leaves goes to another consumer of the group once the acquisition lock
     * expires, with delivery count 2.
     */
    @Test
    void lockTimeoutRedelivery() {
        int lockMs = 15_000;
        String topic = Kit.name("share-lock");
        String group = Kit.name("g-share-lock");
        topicAndGroup(topic, 1, group, "share.record.lock.duration.ms", String.valueOf(lockMs));
        assertEquals(0L, produce(topic, "locked"));
        try (KafkaShareConsumer<byte[], byte[]> a = explicitConsumer(group, "client.id", group + "-a");
             KafkaShareConsumer<byte[], byte[]> bc = explicitConsumer(group, "client.id", group + "-b")) {
            a.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> gotA = new ArrayList<>();
            pollUntil(a, "a's record", WAIT, false, gotA::add, () -> !gotA.isEmpty());
            long acquired = System.nanoTime();
            assertEquals(List.of("p0@0(dc 1, locked)"), gotA.stream().map(ShareGroupTest::describe).toList());
            // the ShareFetch response carries the group's lock duration
            assertEquals(Optional.of(lockMs), a.acquisitionLockTimeoutMs(), "acquisitionLockTimeoutMs");
            // a is neither polled nor closed from here on: its heartbeats keep it in the group

            bc.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> gotB = new ArrayList<>();
            pollUntil(bc, "the record at b after a's lock expired", WAIT.plusMillis(lockMs), false, r -> {
                gotB.add(r);
                bc.acknowledge(r, AcknowledgeType.ACCEPT);
            }, () -> !gotB.isEmpty());
            long tookMs = (System.nanoTime() - acquired) / 1_000_000;
            commitOk(bc);
            assertEquals(List.of("p0@0(dc 2, locked)"), gotB.stream().map(ShareGroupTest::describe).toList());
            // the lock started before a's poll returned: allow a little for that; and no more
            // than a few fetch waits late (Kafka answers b's waiting ShareFetch as the lock expires)
            assertTrue(tookMs >= lockMs - 1_000 && tookMs < lockMs + 10_000,
                    "redelivered " + tookMs + " ms after a's poll (lock " + lockMs + " ms)");
            note("lockTimeoutRedelivery", "redelivered to b " + tookMs + " ms after a's poll returned, delivery count 2");
        }
    }
}
