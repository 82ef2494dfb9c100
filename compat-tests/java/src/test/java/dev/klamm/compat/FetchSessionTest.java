package dev.klamm.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Klamm-only ({@code --http}, skipped under COMPAT_BROKER=kafka): the Java consumer uses fetch
 * sessions (KIP-227) by default. It consumes many partitions over many polls, pauses,
 * resumes and seeks inside its session, and reads every record byte for byte; the broker's
 * {@code /metrics} prove that a session carried the fetches (incremental fetches counted, a
 * session holding every partition, no session error).
 */
class FetchSessionTest {
    static final int HTTP_PORT = Broker.freePort();

    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension("--http", "127.0.0.1:" + HTTP_PORT);

    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    /** The broker's metrics: {@code name{labels}} -> value. */
    static Map<String, Double> metrics() {
        HttpRequest r = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + HTTP_PORT + "/metrics"))
                .timeout(Duration.ofSeconds(10)).build();
        try {
            String body = HTTP.send(r, HttpResponse.BodyHandlers.ofString()).body();
            Map<String, Double> out = new HashMap<>();
            for (String line : body.split("\n")) {
                int sp = line.lastIndexOf(' ');
                if (line.startsWith("#") || sp < 0) {
                    continue;
                }
                try {
                    out.put(line.substring(0, sp), Double.parseDouble(line.substring(sp + 1)));
                } catch (NumberFormatException e) {
                    // not a sample line
                }
            }
            return out;
        } catch (IOException e) {
            throw new AssertionError(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    static double fetches(Map<String, Double> m, String context) {
        return m.getOrDefault("klamm_fetch_requests_total{context=\"" + context + "\"}", 0.0);
    }

    /** What was produced, by partition and offset. */
    static final class Log {
        final Map<TopicPartition, Map<Long, byte[][]>> records = new HashMap<>();

        void add(RecordMetadata md, byte[] key, byte[] value) {
            records.computeIfAbsent(new TopicPartition(md.topic(), md.partition()), k -> new HashMap<>())
                    .put(md.offset(), new byte[][] {key, value});
        }

        /** Every record consumed is the one produced at its offset, key and value byte for byte. */
        void check(List<ConsumerRecord<byte[], byte[]>> got) {
            for (ConsumerRecord<byte[], byte[]> r : got) {
                byte[][] want = records.getOrDefault(new TopicPartition(r.topic(), r.partition()), Map.of())
                        .get(r.offset());
                assertTrue(want != null, "nothing was produced at " + r.partition() + "@" + r.offset());
                assertArrayEquals(want[0], r.key(), "key at " + r.partition() + "@" + r.offset());
                assertArrayEquals(want[1], r.value(), "value at " + r.partition() + "@" + r.offset());
            }
        }
    }

    /** Produces {@code n} records with random binary values to each partition given. */
    static int produce(String topic, Iterable<Integer> partitions, int n, Random rnd, Log log) {
        int sent = 0;
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "linger.ms", "5")) {
            List<java.util.concurrent.Future<RecordMetadata>> acks = new ArrayList<>();
            List<byte[][]> kvs = new ArrayList<>();
            for (int partition : partitions) {
                for (int i = 0; i < n; i++) {
                    byte[] key = Kit.b("k-" + partition + "-" + rnd.nextInt(1_000_000));
                    byte[] value = new byte[rnd.nextInt(300)];
                    rnd.nextBytes(value);
                    acks.add(p.send(new ProducerRecord<>(topic, partition, key, value)));
                    kvs.add(new byte[][] {key, value});
                    sent++;
                }
            }
            for (int i = 0; i < acks.size(); i++) {
                log.add(Kit.get(acks.get(i)), kvs.get(i)[0], kvs.get(i)[1]);
            }
        }
        return sent;
    }

    /** Offsets consumed per partition must be consecutive from {@code from}. */
    static void assertInOrder(List<ConsumerRecord<byte[], byte[]>> got, Map<Integer, Long> from) {
        Map<Integer, List<Long>> by = new HashMap<>();
        got.forEach(r -> by.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r.offset()));
        by.forEach((p, offsets) -> {
            long first = from.getOrDefault(p, 0L);
            List<Long> want = IntStream.range(0, offsets.size()).mapToObj(i -> first + i)
                    .collect(Collectors.toList());
            assertEquals(want, offsets, "offsets of partition " + p);
        });
    }

    @Test
    void aConsumerOfFiftyPartitionsFetchesIncrementally() {
        String topic = Kit.name("sessions");
        int partitions = 50;
        Kit.createTopic(broker.bootstrap(), topic, partitions);
        Random rnd = new Random(227);
        Log log = new Log();
        List<Integer> all = IntStream.range(0, partitions).boxed().collect(Collectors.toList());
        int first = produce(topic, all, 10, rnd, log);
        Map<String, Double> before = metrics();
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null,
                // small responses, so the first 500 records take many fetches
                "max.partition.fetch.bytes", "1024", "fetch.max.bytes", "4096")) {
            List<TopicPartition> tps = all.stream().map(p -> new TopicPartition(topic, p))
                    .collect(Collectors.toList());
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, first, Kit.WAIT);
            log.check(got);
            assertInOrder(got, Map.of());
            Map<Integer, Long> next = new HashMap<>();
            all.forEach(p -> next.put(p, 10L));
            // Rounds that write to a few partitions each: the session answers only those.
            for (int round = 2; round <= 6; round++) {
                final int r = round;
                List<Integer> some = all.stream().filter(p -> p % r == 1).collect(Collectors.toList());
                int n = produce(topic, some, 3, rnd, log);
                got = Kit.pollExactly(c, n, Kit.WAIT);
                log.check(got);
                assertInOrder(got, next);
                got.forEach(rec -> next.merge(rec.partition(), 1L, Long::sum));
            }
            Map<String, Double> after = metrics();
            double incremental = fetches(after, "incremental") - fetches(before, "incremental");
            double full = fetches(after, "full") - fetches(before, "full");
            assertTrue(full >= 1, "a full fetch opened the session: " + full);
            assertTrue(incremental >= 10, "the polls were incremental fetches: " + incremental);
            assertTrue(incremental > full, "mostly incremental: " + incremental + " vs " + full);
            assertEquals(0.0, fetches(after, "session_error") - fetches(before, "session_error"),
                    "no session error");
            assertTrue(after.getOrDefault("klamm_fetch_sessions", 0.0) >= 1, "a session is held");
            assertTrue(after.getOrDefault("klamm_fetch_session_partitions_cached", 0.0) >= partitions,
                    "the session holds every partition");
            // A fetch of the whole session would name 50 partitions; the incremental ones
            // named a few: the average Fetch request is far smaller than a full one.
            System.out.printf("FetchSessionTest: %.0f full and %.0f incremental fetches%n", full, incremental);
        }
    }

    @Test
    void pauseResumeAndSeekInsideASession() {
        String topic = Kit.name("pause");
        Kit.createTopic(broker.bootstrap(), topic, 6);
        Random rnd = new Random(4);
        Log log = new Log();
        List<Integer> all = List.of(0, 1, 2, 3, 4, 5);
        produce(topic, all, 5, rnd, log);
        Map<String, Double> before = metrics();
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null)) {
            List<TopicPartition> tps = all.stream().map(p -> new TopicPartition(topic, p))
                    .collect(Collectors.toList());
            c.assign(tps);
            c.seekToBeginning(tps);
            log.check(Kit.pollExactly(c, 30, Kit.WAIT));
            // Paused partitions leave the session (the client forgets them); new records on
            // every partition reach only the others.
            List<TopicPartition> paused = tps.subList(0, 3);
            c.pause(paused);
            produce(topic, all, 2, rnd, log);
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 6, Kit.WAIT);
            log.check(got);
            Set<Integer> from = got.stream().map(ConsumerRecord::partition).collect(Collectors.toSet());
            assertEquals(Set.of(3, 4, 5), from);
            for (int i = 0; i < 5; i++) {
                assertEquals(0, c.poll(Duration.ofMillis(100)).count(), "paused partitions stay quiet");
            }
            // Resumed: they rejoin the session and deliver what they missed.
            c.resume(paused);
            got = Kit.pollExactly(c, 6, Kit.WAIT);
            log.check(got);
            assertInOrder(got, Map.of(0, 5L, 1, 5L, 2, 5L));
            // A seek back inside the session re-reads from there.
            c.seek(tps.get(4), 1);
            got = Kit.pollExactly(c, 6, Kit.WAIT);
            log.check(got);
            assertInOrder(got, Map.of(4, 1L));
        }
        Map<String, Double> after = metrics();
        assertTrue(fetches(after, "incremental") - fetches(before, "incremental") >= 5,
                "incremental fetches were made");
        assertEquals(0.0, fetches(after, "session_error") - fetches(before, "session_error"),
                "no session error");
    }
}
