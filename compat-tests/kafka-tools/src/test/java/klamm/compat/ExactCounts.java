package klamm.compat;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * A word count's output read with one read_committed consumer for a whole test class: every
 * record must be a count above the word's previous one and at most its expected final count,
 * so double counting fails at once, in any phase. The streams tests share it so that they judge
 * exactly-once the same way.
 */
final class ExactCounts implements AutoCloseable {
    final KafkaConsumer<String, Long> consumer;
    final Map<String, Long> latest = new TreeMap<>();
    final Map<String, Long> expected;
    final AtomicInteger lines;
    /** Run at every poll round: throws when the application failed. */
    final Runnable check;
    final Consumer<String> step;
    long records;

    ExactCounts(String bootstrap, String output, int partitions, Map<String, Long> expected, AtomicInteger lines,
            Runnable check, Consumer<String> step) {
        this.expected = expected;
        this.lines = lines;
        this.check = check;
        this.step = step;
        consumer = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest"),
                new StringDeserializer(), new LongDeserializer());
        List<TopicPartition> tps = IntStream.range(0, partitions).mapToObj(i -> new TopicPartition(output, i))
                .collect(Collectors.toList());
        consumer.assign(tps);
        consumer.seekToBeginning(tps);
    }

    /** Polls until the latest count of every word equals expected (no producer may run). */
    void awaitExact(String phase, long timeoutMs) {
        Map<String, Long> want = new TreeMap<>(expected);
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (!latest.equals(want)) {
            check.run();
            if (System.currentTimeMillis() > deadline) {
                throw new AssertionError(phase + ": counts not reached within " + timeoutMs + " ms\nexpected "
                        + want + "\nlatest   " + latest);
            }
            for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
                records++;
                long max = want.getOrDefault(r.key(), 0L);
                assertTrue(r.value() <= max, phase + ": double counting: " + r.key() + "=" + r.value()
                        + " > expected final " + max + " at " + r.topic() + "-" + r.partition() + "@" + r.offset());
                Long prev = latest.put(r.key(), r.value());
                assertTrue(prev == null || r.value() > prev, phase + ": count of " + r.key() + " went " + prev
                        + " -> " + r.value() + " at " + r.topic() + "-" + r.partition() + "@" + r.offset());
            }
        }
        step.accept(phase + ": counts exact (" + lines.get() + " lines, "
                + want.values().stream().mapToLong(Long::longValue).sum() + " words, " + records
                + " count records read)");
    }

    /** Produces n lines of random words (the caller's seeded random) to topic; each word counts once in expected. */
    static void produceLines(String bootstrap, String topic, int n, Random random, Map<String, Long> expected,
            AtomicInteger lines) {
        try (KafkaProducer<String, String> producer = Clients.producer(bootstrap)) {
            for (int i = 0; i < n; i++) {
                int words = 1 + random.nextInt(6);
                StringBuilder line = new StringBuilder();
                for (int w = 0; w < words; w++) {
                    String word = StreamsWordCountTest.VOCABULARY[random.nextInt(StreamsWordCountTest.VOCABULARY.length)];
                    expected.merge(word, 1L, Long::sum);
                    line.append(w == 0 ? "" : " ").append(word);
                }
                producer.send(new ProducerRecord<>(topic, "line-" + lines.getAndIncrement(), line.toString()));
            }
            producer.flush();
        }
    }

    @Override
    public void close() {
        consumer.close(Duration.ofSeconds(5));
    }
}
