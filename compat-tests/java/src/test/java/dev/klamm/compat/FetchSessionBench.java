package dev.klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A benchmark, not a test (tag {@code bench}, left out of every run unless asked for): a Java
 * consumer of one topic of 1,000 partitions, with fetch sessions and without, against Klamm and
 * (with {@code -Dbench.kafka=true}) the reference Kafka 4.4. Without sessions means the broker
 * has no slots ({@code --max-incremental-fetch-session-cache-slots 0}, Kafka's
 * {@code max.incremental.fetch.session.cache.slots=0}): the Java client has no setting to turn
 * sessions off, and a broker without slots answers every full fetch with session id 0, so
 * every fetch names every partition and is answered for every partition.
 *
 * <pre>
 * JAVA_COMPAT_TAGS=bench KAFKA_VERSIONS=4.4.0 KLAMM_BIN=target/release/klamm \
 *   compat-tests/java/run.sh -Dtest=FetchSessionBench -Dbench.kafka=true
 * </pre>
 *
 * Per broker and mode: create the topic, write {@code bench.records} records (100-byte values)
 * spread over the partitions, let the consumer catch up (assign() all partitions, from the
 * beginning; not measured), measure {@code bench.idleSeconds} with nothing written (each fetch
 * waits {@code fetch.max.wait.ms}, 500 ms, and finds nothing: bytes and broker CPU per fetch),
 * then {@code bench.seconds} of steady consumption while a producer writes {@code bench.rate}
 * records a second round-robin over the partitions. Over that window: Fetch requests and their bytes (the client's own counts: its {@code fetch-total}
 * and the bytes it sent and received; Klamm's {@code /metrics} request and response bytes of
 * Fetch as a check), records fetched, and the broker process's CPU time from
 * {@code /proc/PID/stat} (utime + stime; the producer's requests are in it too, the same in
 * both modes).
 */
@Tag("bench")
class FetchSessionBench {
    static final int PARTITIONS = Integer.getInteger("bench.partitions", 1000);
    static final int RECORDS = Integer.getInteger("bench.records", 20_000);
    static final int SECONDS = Integer.getInteger("bench.seconds", 30);
    static final int RATE = Integer.getInteger("bench.rate", 200);
    static final int IDLE_SECONDS = Integer.getInteger("bench.idleSeconds", 10);
    static final boolean KAFKA = Boolean.getBoolean("bench.kafka");
    static final long CLK_TCK = 100; // Linux USER_HZ, /proc's unit

    /** The idle window: fetches that find nothing (each waits fetch.max.wait.ms). */
    record Idle(long fetches, long requestBytes, long responseBytes, long cpuMs) {
        String cells() {
            return String.format("%,d | %,d | %,d | %.2f", fetches, requestBytes / Math.max(1, fetches),
                    responseBytes / Math.max(1, fetches), cpuMs / (double) Math.max(1, fetches));
        }
    }

    record Result(String broker, String mode, double seconds, long fetches, long requestBytes,
                  long responseBytes, long brokerRequestBytes, long brokerFetches, long records,
                  long cpuMs, String contexts, Idle idle) {
        String row() {
            return String.format("| %s | %s | %,d | %.1f | %,d | %,d | %s | %,d | %,d | %.1f | %s |",
                    broker, mode, fetches, fetches / seconds, requestBytes / Math.max(1, fetches),
                    responseBytes / Math.max(1, fetches),
                    brokerFetches > 0 ? String.format("%,d", brokerRequestBytes / brokerFetches) : "-",
                    records, cpuMs, cpuMs * 1000.0 / Math.max(1, records), contexts);
        }
    }

    static long cpuTicks(long pid) {
        try {
            String stat = Files.readString(Paths.get("/proc/" + pid + "/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            // fields 14 and 15 (utime, stime) are the 12th and 13th after the ") "
            return Long.parseLong(f[11]) + Long.parseLong(f[12]);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    static Map<String, Double> klammMetrics(int httpPort) {
        HttpRequest r = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + "/metrics"))
                .timeout(Duration.ofSeconds(10)).build();
        try {
            String body = HttpClient.newHttpClient().send(r, HttpResponse.BodyHandlers.ofString()).body();
            Map<String, Double> out = new HashMap<>();
            for (String line : body.split("\n")) {
                int sp = line.lastIndexOf(' ');
                if (!line.startsWith("#") && sp > 0) {
                    try {
                        out.put(line.substring(0, sp), Double.parseDouble(line.substring(sp + 1)));
                    } catch (NumberFormatException ignored) {
                        // not a sample
                    }
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

    /** The sum of a client metric over its tags (e.g. every node's outgoing bytes). */
    static double clientMetric(KafkaConsumer<?, ?> c, String group, String name) {
        double sum = 0;
        for (Map.Entry<MetricName, ? extends Metric> e : c.metrics().entrySet()) {
            MetricName n = e.getKey();
            if (n.group().equals(group) && n.name().equals(name)) {
                Object v = e.getValue().metricValue();
                if (v instanceof Double d && !d.isNaN()) {
                    sum += d;
                }
            }
        }
        return sum;
    }

    Result run(boolean kafka, boolean sessions) throws Exception {
        int httpPort = Broker.freePort();
        List<String> flags = new ArrayList<>();
        if (!kafka) {
            flags.addAll(List.of("--http", "127.0.0.1:" + httpPort));
        }
        if (!sessions) {
            flags.addAll(List.of("--max-incremental-fetch-session-cache-slots", "0"));
        }
        Broker broker = Broker.of(kafka, flags).start();
        try {
            String bootstrap = broker.bootstrap();
            String topic = Kit.name("bench");
            try (Admin admin = Kit.admin(bootstrap)) {
                Kit.createTopic(admin, topic, PARTITIONS);
            }
            byte[] value = new byte[100];
            // Not idempotent: right after the topic is created Kafka answers
            // NOT_LEADER_OR_FOLLOWER for a while, and an idempotent producer of 1,000
            // partitions then retries OUT_OF_ORDER_SEQUENCE_NUMBER for minutes.
            Object[] plain = {"linger.ms", "20", "enable.idempotence", "false", "acks", "1"};
            try (KafkaProducer<byte[], byte[]> p = Kit.producer(bootstrap, plain)) {
                List<java.util.concurrent.Future<?>> acks = new ArrayList<>();
                for (int i = 0; i < RECORDS; i++) {
                    value[0] = (byte) i;
                    acks.add(p.send(new ProducerRecord<>(topic, i % PARTITIONS, null, value.clone())));
                }
                p.flush();
                acks.forEach(Kit::get);
            }
            List<TopicPartition> tps = IntStream.range(0, PARTITIONS)
                    .mapToObj(i -> new TopicPartition(topic, i)).collect(Collectors.toList());
            try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(bootstrap, null, "fetch.max.wait.ms", "500")) {
                c.assign(tps);
                c.seekToBeginning(tps);
                long caughtUp = 0;
                long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
                while (caughtUp < RECORDS && System.nanoTime() < deadline) {
                    caughtUp += c.poll(Duration.ofMillis(200)).count();
                }
                assertEquals(RECORDS, caughtUp, "the consumer caught up");
                // A few idle polls, so a session (if any) is established and steady.
                for (int i = 0; i < 3; i++) {
                    c.poll(Duration.ofMillis(200));
                }
                long pid = broker.pid();
                // Idle: nothing is written, every fetch waits fetch.max.wait.ms and finds nothing.
                double idleFetches0 = clientMetric(c, "consumer-fetch-manager-metrics", "fetch-total");
                double idleOut0 = clientMetric(c, "consumer-node-metrics", "outgoing-byte-total");
                double idleIn0 = clientMetric(c, "consumer-node-metrics", "incoming-byte-total");
                long idleCpu0 = cpuTicks(pid);
                long idleEnd = System.nanoTime() + Duration.ofSeconds(IDLE_SECONDS).toNanos();
                while (System.nanoTime() < idleEnd) {
                    assertEquals(0, c.poll(Duration.ofMillis(100)).count());
                }
                Idle idle = new Idle(
                        (long) (clientMetric(c, "consumer-fetch-manager-metrics", "fetch-total") - idleFetches0),
                        (long) (clientMetric(c, "consumer-node-metrics", "outgoing-byte-total") - idleOut0),
                        (long) (clientMetric(c, "consumer-node-metrics", "incoming-byte-total") - idleIn0),
                        (cpuTicks(pid) - idleCpu0) * 1000 / CLK_TCK);

                AtomicBoolean stop = new AtomicBoolean();
                AtomicLong produced = new AtomicLong();
                Thread producer = new Thread(() -> {
                    try (KafkaProducer<byte[], byte[]> p = Kit.producer(bootstrap, "linger.ms", "0",
                            "enable.idempotence", "false", "acks", "1")) {
                        long start = System.nanoTime();
                        long n = 0;
                        while (!stop.get()) {
                            long due = start + n * 1_000_000_000L / RATE;
                            long now = System.nanoTime();
                            if (due > now) {
                                java.util.concurrent.locks.LockSupport.parkNanos(due - now);
                                continue;
                            }
                            p.send(new ProducerRecord<>(topic, (int) (n % PARTITIONS), null, value.clone()));
                            n++;
                        }
                        p.flush();
                        produced.set(n);
                    }
                }, "bench-producer");

                Map<String, Double> before = kafka ? Map.of() : klammMetrics(httpPort);
                double fetches0 = clientMetric(c, "consumer-fetch-manager-metrics", "fetch-total");
                double out0 = clientMetric(c, "consumer-node-metrics", "outgoing-byte-total");
                double in0 = clientMetric(c, "consumer-node-metrics", "incoming-byte-total");
                long cpu0 = cpuTicks(pid);
                long t0 = System.nanoTime();
                producer.start();
                long fetched = 0;
                long end = t0 + Duration.ofSeconds(SECONDS).toNanos();
                while (System.nanoTime() < end) {
                    fetched += c.poll(Duration.ofMillis(100)).count();
                }
                double seconds = (System.nanoTime() - t0) / 1e9;
                long cpu1 = cpuTicks(pid);
                double fetches1 = clientMetric(c, "consumer-fetch-manager-metrics", "fetch-total");
                double out1 = clientMetric(c, "consumer-node-metrics", "outgoing-byte-total");
                double in1 = clientMetric(c, "consumer-node-metrics", "incoming-byte-total");
                Map<String, Double> after = kafka ? Map.of() : klammMetrics(httpPort);
                stop.set(true);
                producer.join();
                // Drain what is left, to check nothing was lost (not measured).
                long rest = 0;
                long drainBy = System.nanoTime() + Duration.ofSeconds(20).toNanos();
                while (fetched + rest < produced.get() && System.nanoTime() < drainBy) {
                    rest += c.poll(Duration.ofMillis(200)).count();
                }
                assertEquals(produced.get(), fetched + rest, "every record produced was fetched");

                String fetchReq = "klamm_request_bytes_total{api=\"Fetch\"}";
                long brokerBytes = (long) (after.getOrDefault(fetchReq, 0.0) - before.getOrDefault(fetchReq, 0.0));
                long brokerFetches = 0;
                StringBuilder contexts = new StringBuilder();
                for (String ctx : List.of("full", "incremental", "sessionless", "session_error")) {
                    String k = "klamm_fetch_requests_total{context=\"" + ctx + "\"}";
                    long n = (long) (after.getOrDefault(k, 0.0) - before.getOrDefault(k, 0.0));
                    brokerFetches += n;
                    if (n > 0) {
                        contexts.append(contexts.length() > 0 ? ", " : "").append(ctx).append(' ').append(n);
                    }
                }
                return new Result(kafka ? "Kafka 4.4.0" : "Klamm", sessions ? "sessions" : "no sessions (0 slots)",
                        seconds, (long) (fetches1 - fetches0), (long) (out1 - out0), (long) (in1 - in0),
                        brokerBytes, brokerFetches, fetched, (cpu1 - cpu0) * 1000 / CLK_TCK,
                        kafka ? "-" : contexts.toString(), idle);
            }
        } finally {
            broker.stop();
            broker.cleanUp();
        }
    }

    @Test
    void consumerOfAThousandPartitions() throws Exception {
        List<Result> results = new ArrayList<>();
        for (boolean kafka : KAFKA ? List.of(false, true) : List.of(false)) {
            for (boolean sessions : List.of(true, false)) {
                Result r = run(kafka, sessions);
                System.out.println("FetchSessionBench: " + r.row());
                results.add(r);
            }
        }
        System.out.printf("%nFetchSessionBench: %d partitions, %d records to catch up, then %d s at %d records/s "
                + "(kafka-clients %s)%n%n", PARTITIONS, RECORDS, SECONDS, RATE, Kit.clientVersion());
        System.out.println("| broker | mode | fetches | fetches/s | request bytes/fetch (client) "
                + "| response bytes/fetch (client) | Fetch request bytes/fetch (broker) | records fetched "
                + "| broker CPU ms | broker CPU µs/record | Klamm's fetch contexts |");
        System.out.println("|---|---|---|---|---|---|---|---|---|---|---|");
        results.forEach(r -> System.out.println(r.row()));
        System.out.printf("%nFetchSessionBench: idle, %d s with nothing written (each fetch waits fetch.max.wait.ms=500)%n%n",
                IDLE_SECONDS);
        System.out.println("| broker | mode | fetches | request bytes/fetch (client) | response bytes/fetch (client) "
                + "| broker CPU ms/fetch |");
        System.out.println("|---|---|---|---|---|---|");
        results.forEach(r -> System.out.println("| " + r.broker() + " | " + r.mode() + " | " + r.idle().cells() + " |"));
    }
}
