package klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueStore;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Kafka Streams 4.4 word count with exactly_once_v2 (classic group protocol): a groupBy
 * (repartition topic), a count store (changelog topic), a clean close and a restart on an
 * empty state dir (the store is restored from the changelog), exact final counts read with
 * a read_committed consumer.
 */
class StreamsWordCountTest {
    static final String[] VOCABULARY = {"kafka", "klamm", "stream", "table", "topic", "offset", "broker",
            "record", "commit", "abort", "epoch", "fence", "rust", "java", "log", "index", "state", "store",
            "window", "join"};
    static final int PARTITIONS = 3;

    Broker broker;
    Admin admin;
    String input, output, appId;
    final List<KafkaStreams> running = new ArrayList<>();
    long t0 = System.nanoTime();

    void step(String what) {
        System.out.printf("[streams] %6d ms  %s%n", (System.nanoTime() - t0) / 1_000_000, what);
    }

    @BeforeEach
    void start() throws Exception {
        // No log cleaning during a test: the crash test counts the aborted records the changelog
        // holds, and Klamm's cleaner (unlike Kafka's, which skips the active segment) would
        // compact them away.
        broker = Broker.start("streams", Map.of("log.cleaner.backoff.ms", "600000"));
        admin = broker.admin();
        String suffix = Long.toHexString(System.nanoTime());
        input = "wc-input-" + suffix;
        output = "wc-output-" + suffix;
        appId = "wc-app-" + suffix;
        Clients.createTopic(admin, input, PARTITIONS, Map.of());
        Clients.createTopic(admin, output, PARTITIONS, Map.of());
        t0 = System.nanoTime();
    }

    @AfterEach
    void stop() {
        for (KafkaStreams s : running) s.close(Duration.ofSeconds(20));
        if (admin != null) admin.close(Duration.ofSeconds(5));
        if (broker != null) broker.close();
    }

    KafkaStreams app(Path stateDir, AtomicLong restored, AtomicReference<Throwable> error) {
        return app(stateDir, restored, error, Map.of(), null);
    }

    /**
     * The word count. With crashes != null, the first count update of the word "boom" throws
     * (after the store and changelog were updated, inside the open transaction) and the
     * uncaught exception handler replaces the stream thread; other errors shut the client down.
     */
    KafkaStreams app(Path stateDir, AtomicLong restored, AtomicReference<Throwable> error,
                     Map<String, String> extra, AtomicLong crashes) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> List.of(line.toLowerCase().split("\\W+")))
                .filter((k, w) -> !w.isEmpty())
                .groupBy((k, w) -> w, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()))
                .toStream()
                .peek((word, count) -> {
                    if (crashes != null && "boom".equals(word) && crashes.get() == 0) {
                        crashes.incrementAndGet();
                        try {
                            Thread.sleep(500); // lets the producer send what this transaction holds so far
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                        throw new IllegalStateException("injected crash at boom=" + count);
                    }
                })
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, "500");
        p.put("processing.exception.handler.global.enabled", "true");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), "10000");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), "1000");
        p.putAll(extra);
        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {}

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {
                restored.addAndGet(n);
            }

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {}
        });
        streams.setUncaughtExceptionHandler(e -> {
            boolean injected = false;
            for (Throwable c = e; c != null; c = c.getCause()) injected |= String.valueOf(c.getMessage()).contains("injected crash");
            if (crashes != null && injected) {
                return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
            }
            error.compareAndSet(null, e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        running.add(streams);
        streams.start();
        return streams;
    }

    /** Produces lines of random words (fixed seed) and adds each word to expected. */
    void produceLines(Random random, int lines, int offset, Map<String, Long> expected) throws Exception {
        try (KafkaProducer<String, String> producer = Clients.producer(broker.bootstrap())) {
            for (int i = 0; i < lines; i++) {
                int n = 1 + random.nextInt(6);
                StringBuilder line = new StringBuilder();
                for (int w = 0; w < n; w++) {
                    String word = VOCABULARY[random.nextInt(VOCABULARY.length)];
                    expected.merge(word, 1L, Long::sum);
                    line.append(w == 0 ? "" : (w % 2 == 0 ? ", " : " ")).append(w % 3 == 0 ? word.toUpperCase() : word);
                }
                producer.send(new ProducerRecord<>(input, "line-" + (offset + i), line.toString()));
            }
            producer.flush();
        }
    }

    /**
     * Reads the output topic read_committed from the beginning until the latest count of every
     * word equals expected; fails at once if any count ever exceeds the expected final one.
     */
    void awaitCounts(Map<String, Long> expected, AtomicReference<Throwable> error) throws Exception {
        Map<String, Long> latest = new TreeMap<>();
        Map<String, Long> previous = new HashMap<>();
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap(),
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest"),
                new StringDeserializer(), new LongDeserializer())) {
            List<TopicPartition> tps = IntStream.range(0, PARTITIONS).mapToObj(i -> new TopicPartition(output, i))
                    .collect(Collectors.toList());
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + 90_000;
            while (!latest.equals(expected)) {
                if (error.get() != null) throw new AssertionError("streams failed", error.get());
                if (System.currentTimeMillis() > deadline) {
                    throw new AssertionError("counts not reached within 90 s\nexpected " + new TreeMap<>(expected)
                            + "\nlatest   " + latest);
                }
                for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                    long want = expected.getOrDefault(r.key(), 0L);
                    assertTrue(r.value() <= want, "double counting: " + r.key() + "=" + r.value()
                            + " > expected final " + want + " at " + r.topic() + "-" + r.partition() + "@" + r.offset());
                    Long prev = previous.put(r.key(), r.value());
                    assertTrue(prev == null || r.value() > prev, "count of " + r.key() + " went " + prev + " -> " + r.value());
                    latest.put(r.key(), r.value());
                }
            }
        }
    }

    void awaitRunning(KafkaStreams streams, AtomicReference<Throwable> error) throws Exception {
        Clients.waitFor("streams RUNNING", 90_000, () -> {
            if (error.get() != null) throw new AssertionError("streams failed", error.get());
            return streams.state() == KafkaStreams.State.RUNNING;
        });
    }

    @Test
    void wordCountExactlyOnceWithRestart() throws Exception {
        Path work = broker.dir;
        Random random = new Random(42);
        Map<String, Long> expected = new HashMap<>();
        AtomicReference<Throwable> error = new AtomicReference<>();
        AtomicLong restored1 = new AtomicLong(), restored2 = new AtomicLong();

        // phase 1: 400 lines, then the app processes them
        produceLines(random, 400, 0, expected);
        KafkaStreams first = app(Files.createDirectories(work.resolve("state-1")), restored1, error);
        awaitRunning(first, error);
        step("first instance RUNNING");
        awaitCounts(expected, error);
        step("phase 1 counts exact");

        // the internal topics Streams created, with its configs
        String repartition = appId + "-words-repartition", changelog = appId + "-counts-changelog";
        Set<String> topics = admin.listTopics().names().get();
        assertTrue(topics.contains(repartition) && topics.contains(changelog), "internal topics: " + topics);
        Map<String, TopicDescription> described = admin.describeTopics(List.of(repartition, changelog)).allTopicNames().get();
        assertEquals(PARTITIONS, described.get(repartition).partitions().size(), "repartition partitions");
        assertEquals(PARTITIONS, described.get(changelog).partitions().size(), "changelog partitions");
        ConfigResource rr = new ConfigResource(ConfigResource.Type.TOPIC, repartition);
        ConfigResource cr = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
        Map<ConfigResource, Config> configs = admin.describeConfigs(List.of(rr, cr)).all().get();
        assertEquals("compact", configs.get(cr).get("cleanup.policy").value(), "changelog cleanup.policy");
        assertEquals("delete", configs.get(rr).get("cleanup.policy").value(), "repartition cleanup.policy");
        assertEquals("-1", configs.get(rr).get("retention.ms").value(), "repartition retention.ms");
        assertEquals("52428800", configs.get(rr).get("segment.bytes").value(), "repartition segment.bytes");
        // Streams purges consumed repartition records (DeleteRecords after a commit)
        List<TopicPartition> rtps = IntStream.range(0, PARTITIONS).mapToObj(i -> new TopicPartition(repartition, i))
                .collect(Collectors.toList());
        Clients.waitFor("repartition topic purged", 30_000, () -> {
            try {
                return Clients.offsets(admin, rtps, OffsetSpec.earliest()).values().stream().anyMatch(o -> o > 0);
            } catch (Exception e) {
                return false;
            }
        });
        // the changelog holds the counts (read_committed: Streams writes it transactionally)
        List<TopicPartition> ctps = IntStream.range(0, PARTITIONS).mapToObj(i -> new TopicPartition(changelog, i))
                .collect(Collectors.toList());
        step("internal topics checked, repartition topic purged");
        long changelogRecords = Clients.offsets(admin, ctps, OffsetSpec.latest()).values().stream().mapToLong(Long::longValue).sum();
        assertTrue(changelogRecords >= expected.size(), "changelog end offsets " + changelogRecords);

        // phase 2: close, more input while the app is down, restart on an EMPTY state dir
        // leave the group on close (Streams' default keeps the member until its session times out)
        assertTrue(first.close(org.apache.kafka.streams.CloseOptions.groupMembershipOperation(
                org.apache.kafka.streams.CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(30))), "clean close");
        step("first instance closed");
        assertEquals(KafkaStreams.State.NOT_RUNNING, first.state());
        produceLines(random, 250, 400, expected);
        KafkaStreams second = app(Files.createDirectories(work.resolve("state-2")), restored2, error);
        awaitRunning(second, error);
        step("second instance RUNNING (restored " + restored2.get() + " records so far)");
        produceLines(random, 250, 650, expected);
        awaitCounts(expected, error);
        step("final counts exact");
        assertTrue(restored2.get() > 0, "the second instance restored its store from the changelog");

        // the store itself, queried interactively, agrees
        var store = second.store(org.apache.kafka.streams.StoreQueryParameters.fromNameAndType("counts",
                org.apache.kafka.streams.state.QueryableStoreTypes.<String, Long>keyValueStore()));
        Map<String, Long> inStore = new HashMap<>();
        try (var it = store.all()) {
            it.forEachRemaining(kv -> inStore.put(kv.key, kv.value));
        }
        assertEquals(new TreeMap<>(expected), new TreeMap<>(inStore), "state store contents");
        assertEquals(900, countInputRecords(), "input records");
    }

    /**
     * A stream thread dies in the middle of a transaction (records already sent to the
     * changelog, repartition and output topics): the transaction is aborted, the replacement
     * thread restores the store from the changelog (read_committed) and reprocesses from the
     * committed offsets. read_committed output must show exact counts, never more; the
     * aborted records are in the log (read_uncommitted sees more records than read_committed).
     */
    @Test
    void wordCountExactlyOnceAfterStreamThreadCrash() throws Exception {
        Random random = new Random(7);
        Map<String, Long> expected = new HashMap<>();
        AtomicReference<Throwable> error = new AtomicReference<>();
        AtomicLong restored = new AtomicLong(), crashes = new AtomicLong();
        // no cache and no linger: every count update is sent at once, so the crash aborts a
        // transaction holding records; a short transaction timeout bounds how long an open
        // transaction of the dead thread could hold back the last stable offset
        KafkaStreams streams = app(Files.createDirectories(broker.dir.resolve("state-crash")), restored, error,
                Map.of(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0",
                        StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "1000",
                        StreamsConfig.producerPrefix("linger.ms"), "0",
                        StreamsConfig.producerPrefix("transaction.timeout.ms"), "5000",
                        // the dead thread's consumer does not leave the group (Streams never does on
                        // close): a short session lets the replacement's rebalance finish sooner
                        StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), "3000",
                        StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), "500"), crashes);
        awaitRunning(streams, error);
        step("RUNNING");
        produceLines(random, 200, 0, expected);
        awaitCounts(expected, error);
        step("counts of the first 200 lines exact (committed state to restore)");
        try (KafkaProducer<String, String> producer = Clients.producer(broker.bootstrap())) {
            producer.send(new ProducerRecord<>(input, "line-boom", "kafka boom klamm")).get();
        }
        expected.merge("kafka", 1L, Long::sum);
        expected.merge("boom", 1L, Long::sum);
        expected.merge("klamm", 1L, Long::sum);
        produceLines(random, 200, 201, expected);
        awaitCounts(expected, error);
        step("counts exact after the injected crash (restored " + restored.get() + " records)");
        assertEquals(1, crashes.get(), "the injected crash happened once");
        assertEquals(KafkaStreams.State.RUNNING, streams.state());
        assertTrue(restored.get() > 0, "the replacement thread restored the store from the changelog");

        List<TopicPartition> tps = IntStream.range(0, PARTITIONS).mapToObj(i -> new TopicPartition(output, i))
                .collect(Collectors.toList());
        List<ConsumerRecord<String, String>> committed = Clients.readAll(broker.bootstrap(), tps, "read_committed");
        List<ConsumerRecord<String, String>> uncommitted = Clients.readAll(broker.bootstrap(), tps, "read_uncommitted");
        // without the cache every update is one output record: read_committed sees each count exactly once
        long updates = expected.values().stream().mapToLong(Long::longValue).sum();
        assertEquals(updates, committed.size(), "committed output records (one per count update)");
        // the aborted transaction's records are in the changelog's log (at least boom=1, sent 500 ms
        // before the crash) but not visible to read_committed
        String changelog = appId + "-counts-changelog";
        List<TopicPartition> ctps = IntStream.range(0, PARTITIONS).mapToObj(i -> new TopicPartition(changelog, i))
                .collect(Collectors.toList());
        List<ConsumerRecord<String, String>> cCommitted = Clients.readAll(broker.bootstrap(), ctps, "read_committed");
        List<ConsumerRecord<String, String>> cUncommitted = Clients.readAll(broker.bootstrap(), ctps, "read_uncommitted");
        // (not compared with the number of updates: the changelog is compacted, and Klamm's cleaner
        // also cleans the newest records, which Kafka's never does in the active segment)
        assertTrue(cUncommitted.size() > cCommitted.size(), "aborted records in the changelog: uncommitted "
                + cUncommitted.size() + ", committed " + cCommitted.size());
        step("output: " + committed.size() + " committed of " + uncommitted.size() + " records; changelog: "
                + cCommitted.size() + " committed of " + cUncommitted.size());
    }

    long countInputRecords() throws Exception {
        List<TopicPartition> tps = IntStream.range(0, PARTITIONS).mapToObj(i -> new TopicPartition(input, i))
                .collect(Collectors.toList());
        return Clients.offsets(admin, tps, OffsetSpec.latest()).values().stream().mapToLong(Long::longValue).sum();
    }
}
