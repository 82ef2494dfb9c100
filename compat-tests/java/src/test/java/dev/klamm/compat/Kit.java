package dev.klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Assumptions;

/** Client factories and bounded waits shared by the tests. */
public final class Kit {
    public static final Duration WAIT = Duration.ofSeconds(30);
    private static final AtomicInteger SEQ = new AtomicInteger();

    private Kit() {
    }

    // ------------------------------------------------------------------ client version

    /** The kafka-clients version on the classpath, e.g. "4.4.0". */
    public static String clientVersion() {
        // kafka/kafka-version.properties is in every kafka-clients jar (AppInfoParser moved in 4.x)
        try (java.io.InputStream in = KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("version").trim();
        } catch (java.io.IOException | RuntimeException e) {
            throw new IllegalStateException("cannot read the kafka-clients version", e);
        }
    }

    public static boolean clientAtLeast(int major, int minor) {
        String[] parts = clientVersion().split("[.-]");
        int maj = Integer.parseInt(parts[0]);
        int min = parts.length > 1 ? Integer.parseInt(parts[1]) : 0;
        return maj > major || (maj == major && min >= minor);
    }

    /** KIP-848 {@code group.protocol=consumer} is generally available from kafka-clients 4.0. */
    public static void assumeKip848Client() {
        Assumptions.assumeTrue(clientAtLeast(4, 0),
                "group.protocol=consumer (KIP-848) needs kafka-clients 4.x; running " + clientVersion());
    }

    public static void assumeKlamm(String why) {
        Assumptions.assumeFalse(Broker.isKafka(), "Klamm-only: " + why);
    }

    // ------------------------------------------------------------------ names

    public static String name(String prefix) {
        return prefix + "-" + SEQ.incrementAndGet() + "-" + Long.toString(System.nanoTime() % 1_000_000_000L, 36);
    }

    public static byte[] b(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    public static String s(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    // ------------------------------------------------------------------ clients

    /** Java producer defaults (idempotent, acks=all), byte[] serializers. */
    public static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        return p;
    }

    public static KafkaProducer<byte[], byte[]> producer(String bootstrap, Object... extra) {
        Properties p = producerProps(bootstrap);
        put(p, extra);
        return new KafkaProducer<>(p);
    }

    public static Properties consumerProps(String bootstrap, String group) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "100");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        return p;
    }

    public static KafkaConsumer<byte[], byte[]> consumer(String bootstrap, String group, Object... extra) {
        Properties p = consumerProps(bootstrap, group);
        put(p, extra);
        return new KafkaConsumer<>(p);
    }

    public static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        return Admin.create(p);
    }

    static void put(Properties p, Object... kv) {
        if (kv.length % 2 != 0) {
            throw new IllegalArgumentException("key/value pairs expected");
        }
        for (int i = 0; i < kv.length; i += 2) {
            p.put(String.valueOf(kv[i]), String.valueOf(kv[i + 1]));
        }
    }

    public static void createTopic(Admin admin, String topic, int partitions, String... configs) {
        Map<String, String> cfg = new HashMap<>();
        for (int i = 0; i < configs.length; i += 2) {
            cfg.put(configs[i], configs[i + 1]);
        }
        get(admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1).configs(cfg))).all());
        // A KRaft broker serves the new topic once it has replayed the metadata record: wait
        // (bounded) until it describes the topic with all its partitions (Klamm: at once).
        waitUntil("topic " + topic + " described", Duration.ofSeconds(15), () -> {
            try {
                return admin.describeTopics(List.of(topic)).allTopicNames().get(5, TimeUnit.SECONDS)
                        .get(topic).partitions().size() == partitions;
            } catch (Exception e) {
                return false;
            }
        });
    }

    public static void createTopic(String bootstrap, String topic, int partitions, String... configs) {
        try (Admin admin = admin(bootstrap)) {
            createTopic(admin, topic, partitions, configs);
        }
    }

    // ------------------------------------------------------------------ waiting

    public static <T> T get(KafkaFuture<T> f) {
        try {
            return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new AssertionError(e.getCause());
        } catch (TimeoutException e) {
            throw new AssertionError("no answer within " + WAIT, e);
        }
    }

    public static <T> T get(java.util.concurrent.Future<T> f) {
        try {
            return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new AssertionError(e.getCause());
        } catch (TimeoutException e) {
            throw new AssertionError("no answer within " + WAIT, e);
        }
    }

    /** The cause of a failed future (fails if it succeeded). */
    public static Throwable failure(KafkaFuture<?> f) {
        try {
            Object v = f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            throw new AssertionError("expected a failure, got " + v);
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (InterruptedException | TimeoutException e) {
            throw new AssertionError(e);
        }
    }

    public static Throwable failure(java.util.concurrent.Future<?> f) {
        try {
            Object v = f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            throw new AssertionError("expected a failure, got " + v);
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (InterruptedException | TimeoutException e) {
            throw new AssertionError(e);
        }
    }

    /** Poll {@code cond} every 50 ms until true, for at most {@code timeout}. */
    public static void waitUntil(String what, Duration timeout, BooleanSupplier cond) {
        waitUntil(what, timeout, cond, () -> "");
    }

    public static void waitUntil(String what, Duration timeout, BooleanSupplier cond, Supplier<String> state) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            if (cond.getAsBoolean()) {
                return;
            }
            if (System.nanoTime() > deadline) {
                fail("timed out after " + timeout + " waiting for " + what + " " + state.get());
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
    }

    /** Poll until {@code count} records arrived (fails on more, or on timeout). */
    public static List<ConsumerRecord<byte[], byte[]>> pollExactly(KafkaConsumer<byte[], byte[]> consumer,
                                                                   int count, Duration timeout) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (out.size() < count && System.nanoTime() < deadline) {
            consumer.poll(Duration.ofMillis(100)).forEach(out::add);
        }
        assertEquals(count, out.size(), "records received within " + timeout);
        return out;
    }

    /** "offset:metadata" per partition (leader epochs left out), null entries kept as "null". */
    public static Map<org.apache.kafka.common.TopicPartition, String> offsets(
            Map<org.apache.kafka.common.TopicPartition, org.apache.kafka.clients.consumer.OffsetAndMetadata> m) {
        Map<org.apache.kafka.common.TopicPartition, String> out = new HashMap<>();
        m.forEach((tp, om) -> out.put(tp, om == null ? "null" : om.offset() + ":" + om.metadata()));
        return out;
    }

    /** "k=v" strings of the headers, in order (duplicates kept). */
    public static List<String> headers(Iterable<Header> headers) {
        List<String> out = new ArrayList<>();
        for (Header h : headers) {
            out.add(h.key() + "=" + (h.value() == null ? "<null>" : Arrays.toString(h.value())));
        }
        return out;
    }
}
