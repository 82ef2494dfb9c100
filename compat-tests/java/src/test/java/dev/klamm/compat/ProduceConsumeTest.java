package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Producer (Java defaults: idempotent, acks=all) and consumer round trips, byte for byte. */
class ProduceConsumeTest {
    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension();

    /** What was sent, to compare with what is read back. */
    record Sent(byte[] key, byte[] value, List<String> headers, long timestamp, long offset) {
    }

    private static KafkaConsumer<byte[], byte[]> assigned(TopicPartition tp, Object... extra) {
        KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null, extra);
        c.assign(List.of(tp));
        return c;
    }

    private static void assertSame(List<Sent> sent, List<ConsumerRecord<byte[], byte[]>> got) {
        assertEquals(sent.size(), got.size());
        for (int i = 0; i < sent.size(); i++) {
            Sent s = sent.get(i);
            ConsumerRecord<byte[], byte[]> r = got.get(i);
            assertEquals(s.offset(), r.offset(), "offset of record " + i);
            assertArrayEquals(s.key(), r.key(), "key of record " + i);
            assertArrayEquals(s.value(), r.value(), "value of record " + i);
            assertEquals(s.headers(), Kit.headers(r.headers()), "headers of record " + i);
            assertEquals(TimestampType.CREATE_TIME, r.timestampType());
            assertEquals(s.timestamp(), r.timestamp(), "CreateTime of record " + i);
        }
    }

    @ParameterizedTest(name = "compression.type={0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void everyCodecRoundTripsKeysNullsAndHeadersByteExact(String codec) {
        String topic = Kit.name("codec-" + codec);
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        Random rnd = new Random(42);
        long base = System.currentTimeMillis() - 60_000;
        List<Sent> sent = new ArrayList<>();
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            byte[] key = switch (i % 5) {
                case 0 -> null;                                  // null key
                case 1 -> new byte[0];                           // empty key
                default -> b("key-" + i + "-\u00e9\u4e2d");     // non-ASCII UTF-8
            };
            byte[] value;
            if (i % 7 == 3) {
                value = null;                                    // tombstone
            } else {
                value = new byte[rnd.nextInt(2000)];
                rnd.nextBytes(value);                            // every byte value
                if (i % 2 == 0) {
                    java.util.Arrays.fill(value, 0, value.length / 2, (byte) 'x'); // compressible half
                }
            }
            RecordHeaders headers = new RecordHeaders();
            if (i % 3 != 0) {
                headers.add(new RecordHeader("trace", b("t-" + i)));
                headers.add(new RecordHeader("dup", b("first")));
                headers.add(new RecordHeader("dup", b("second")));   // duplicate key, order kept
                headers.add(new RecordHeader("bin", new byte[] {0, (byte) 0xff, 1, (byte) 0x80}));
                headers.add(new RecordHeader("empty", new byte[0]));
                headers.add(new RecordHeader("nullv", null));
            }
            long ts = base + i;
            records.add(new ProducerRecord<>(topic, 0, ts, key, value, headers));
        }
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "compression.type", codec,
                "linger.ms", "20")) {
            for (ProducerRecord<byte[], byte[]> r : records) {
                futures.add(p.send(r));
            }
            p.flush();
            for (int i = 0; i < records.size(); i++) {
                RecordMetadata md = get(futures.get(i));
                assertEquals(i, md.offset(), "offset acknowledged for record " + i);
                assertEquals(records.get(i).timestamp(), md.timestamp());
                ProducerRecord<byte[], byte[]> r = records.get(i);
                sent.add(new Sent(r.key(), r.value(), Kit.headers(r.headers()), r.timestamp(), md.offset()));
            }
        }
        try (KafkaConsumer<byte[], byte[]> c = assigned(tp)) {
            c.seekToBeginning(List.of(tp));
            assertSame(sent, Kit.pollExactly(c, sent.size(), Duration.ofSeconds(20)));
            assertEquals(200L, c.position(tp));
        }
    }

    @Test
    void defaultProducerIsIdempotentWithAcksAll() {
        String topic = Kit.name("defaults");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < 25; i++) {
                get(p.send(new ProducerRecord<>(topic, b("k" + i), b("v" + i))));
            }
        }
        // The broker tracked the idempotent producer's sequence numbers: 25 records, sequence 0..24.
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            List<ProducerState> states = get(admin.describeProducers(List.of(tp)).partitionResult(tp)).activeProducers();
            assertEquals(1, states.size(), "one idempotent producer: " + states);
            ProducerState st = states.get(0);
            assertTrue(st.producerId() >= 0, "producer id " + st.producerId());
            assertEquals(0, st.producerEpoch());
            assertEquals(24, st.lastSequence());
            assertTrue(st.currentTransactionStartOffset().isEmpty());
        }
    }

    @Test
    void largeRecordOf900KbRoundTrips() {
        String topic = Kit.name("large");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        byte[] value = new byte[900 * 1024];
        new Random(7).nextBytes(value); // incompressible
        byte[] key = b("big");
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            assertEquals(0, get(p.send(new ProducerRecord<>(topic, key, value))).offset());
            assertEquals(1, get(p.send(new ProducerRecord<>(topic, b("small"), b("after")))).offset());
        }
        try (KafkaConsumer<byte[], byte[]> c = assigned(tp)) {
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 2, Duration.ofSeconds(20));
            assertArrayEquals(key, got.get(0).key());
            assertArrayEquals(value, got.get(0).value());
            assertEquals("after", Kit.s(got.get(1).value()));
        }
    }

    @Test
    void recordAboveMessageMaxBytesIsRecordTooLarge() {
        String topic = Kit.name("too-large");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        byte[] value = new byte[1_200_000]; // > message.max.bytes (1048588), < max.request.size below
        new Random(8).nextBytes(value);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "max.request.size", "4000000")) {
            // The broker answers MESSAGE_TOO_LARGE; the Java client surfaces RecordTooLargeException.
            Throwable t = Kit.failure(p.send(new ProducerRecord<>(topic, b("k"), value)));
            assertInstanceOf(RecordTooLargeException.class, t, String.valueOf(t));
            // The producer stays usable and the rejected record left no trace.
            assertEquals(0, get(p.send(new ProducerRecord<>(topic, b("k"), b("fits")))).offset());
        }
        // And the per-topic limit: max.message.bytes=10000.
        String small = Kit.name("too-large-topic");
        Kit.createTopic(broker.bootstrap(), small, 1, "max.message.bytes", "10000");
        byte[] v2 = new byte[20_000];
        new Random(9).nextBytes(v2);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            Throwable t = Kit.failure(p.send(new ProducerRecord<>(small, null, v2)));
            assertInstanceOf(RecordTooLargeException.class, t, String.valueOf(t));
            assertEquals(0, get(p.send(new ProducerRecord<>(small, null, new byte[5000]))).offset());
        }
        // Client-side: above max.request.size (default 1 MiB) the producer refuses without sending.
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            Throwable t = Kit.failure(p.send(new ProducerRecord<>(topic, null, value)));
            assertInstanceOf(RecordTooLargeException.class, t, String.valueOf(t));
        }
        try (KafkaConsumer<byte[], byte[]> c = assigned(new TopicPartition(topic, 0))) {
            c.seekToBeginning(c.assignment());
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 1, Duration.ofSeconds(10));
            assertEquals("fits", Kit.s(got.get(0).value()));
            assertEquals(1L, c.endOffsets(c.assignment()).get(new TopicPartition(topic, 0)));
        }
    }

    /** 10 records with CreateTime base + 1000 * i on one partition. */
    private static long produceTimed(String topic, long base) {
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < 10; i++) {
                RecordMetadata md = get(p.send(new ProducerRecord<>(topic, 0, base + 1000L * i, b("k" + i), b("v" + i))));
                assertEquals(i, md.offset());
                assertEquals(base + 1000L * i, md.timestamp());
            }
        }
        return base;
    }

    @Test
    void consumerGroupFromEarliest() {
        String topic = Kit.name("earliest");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        long base = produceTimed(topic, System.currentTimeMillis() - 3_600_000L);
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), Kit.name("g-earliest"),
                "auto.offset.reset", "earliest")) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 10, Duration.ofSeconds(20));
            for (int i = 0; i < 10; i++) {
                assertEquals(i, got.get(i).offset());
                assertEquals("k" + i, Kit.s(got.get(i).key()));
                assertEquals("v" + i, Kit.s(got.get(i).value()));
                assertEquals(base + 1000L * i, got.get(i).timestamp());
                assertEquals(TimestampType.CREATE_TIME, got.get(i).timestampType());
            }
        }
    }

    @Test
    void consumerFromLatestSeesOnlyNewRecords() {
        String topic = Kit.name("latest");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        produceTimed(topic, System.currentTimeMillis() - 3_600_000L);
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), Kit.name("g-latest"),
                "auto.offset.reset", "latest")) {
            List<TopicPartition> assigned = new ArrayList<>();
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    assigned.addAll(partitions);
                }
            });
            Kit.waitUntil("assignment", Duration.ofSeconds(20), () -> {
                c.poll(Duration.ofMillis(50));
                return !assigned.isEmpty();
            });
            assertEquals(10L, c.position(tp), "latest = the log end offset");
            try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
                get(p.send(new ProducerRecord<>(topic, b("new"), b("after-subscribe"))));
            }
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 1, Duration.ofSeconds(10));
            assertEquals(10, got.get(0).offset());
            assertEquals("after-subscribe", Kit.s(got.get(0).value()));
        }
    }

    @Test
    void seekToAGivenOffset() {
        String topic = Kit.name("seek");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        produceTimed(topic, System.currentTimeMillis() - 3_600_000L);
        try (KafkaConsumer<byte[], byte[]> c = assigned(tp)) {
            c.seek(tp, 7);
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 3, Duration.ofSeconds(10));
            assertEquals(List.of(7L, 8L, 9L), got.stream().map(ConsumerRecord::offset).toList());
            assertEquals("v7", Kit.s(got.get(0).value()));
            c.seek(tp, 2);
            got = Kit.pollExactly(c, 8, Duration.ofSeconds(10));
            assertEquals(2L, got.get(0).offset());
            assertEquals("k2", Kit.s(got.get(0).key()));
        }
    }

    private static String at(OffsetAndTimestamp ot) {
        return ot == null ? "null" : ot.offset() + "@" + ot.timestamp();
    }

    @Test
    void offsetsForTimesFindsTheFirstRecordAtOrAfterTheTimestamp() {
        String topic = Kit.name("times");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        long base = produceTimed(topic, System.currentTimeMillis() - 3_600_000L);
        try (KafkaConsumer<byte[], byte[]> c = assigned(tp)) {
            Map<TopicPartition, OffsetAndTimestamp> r = c.offsetsForTimes(Map.of(tp, base + 3500));
            assertEquals((4) + "@" + (base + 4000), at(r.get(tp)));
            r = c.offsetsForTimes(Map.of(tp, base + 3000));
            assertEquals((3) + "@" + (base + 3000), at(r.get(tp)));
            r = c.offsetsForTimes(Map.of(tp, base - 1));
            assertEquals((0) + "@" + base, at(r.get(tp)));
            r = c.offsetsForTimes(Map.of(tp, base + 9001));
            assertTrue(r.containsKey(tp));
            assertNull(r.get(tp), "no record at or after the timestamp");

            OffsetAndTimestamp at = c.offsetsForTimes(Map.of(tp, base + 6500)).get(tp);
            assertNotNull(at);
            c.seek(tp, at.offset());
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 3, Duration.ofSeconds(10));
            assertEquals(7L, got.get(0).offset());
            assertEquals(base + 7000, got.get(0).timestamp());
        }
    }

    @Test
    void beginningAndEndOffsets() {
        String topic = Kit.name("bounds");
        Kit.createTopic(broker.bootstrap(), topic, 3);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        TopicPartition p2 = new TopicPartition(topic, 2);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < 7; i++) {
                p.send(new ProducerRecord<>(topic, 0, null, b("a" + i)));
            }
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 1, null, b("b" + i)));
            }
            p.flush();
        }
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null)) {
            Set<TopicPartition> all = Set.of(p0, p1, p2);
            assertEquals(Map.of(p0, 0L, p1, 0L, p2, 0L), c.beginningOffsets(all));
            assertEquals(Map.of(p0, 7L, p1, 3L, p2, 0L), c.endOffsets(all));
            assertEquals(3, c.partitionsFor(topic).size());
        }
    }
}
