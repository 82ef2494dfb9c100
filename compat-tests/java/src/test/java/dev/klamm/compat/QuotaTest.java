package dev.klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Client quotas enforced on a real producer: a kafka-clients producer whose client id has a
 * producer_byte_rate is slowed to that rate (within 10 %), while a producer of another
 * client id, writing to the same topic at the same time, is never throttled.
 *
 * <p>How the rate is measured matters. Kafka's quota is a rate over 11 one-second samples,
 * never over less than 10 s, so a new client may send about 11 s of its quota at once and
 * is then throttled; the pattern repeats every 11 s, when the sample holding the burst
 * expires. Over any 11 s the client sends its quota; over shorter spans it does not. The test
 * counts what was acknowledged from 5.5 s to 16.5 s after the first acknowledgement, one
 * whole period away from the bursts at 0 and 11 s. The same test passes against Kafka 4.4
 * ({@code COMPAT_BROKER=kafka}).
 */
class QuotaTest {
    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension();

    static final double QUOTA = 256 * 1024;
    static final int VALUE_BYTES = 16 * 1024;

    @Test
    void aProducerOverItsQuotaIsSlowedToItWhileAnotherKeepsItsSpeed() throws Exception {
        String topic = Kit.name("quota");
        String slowId = "slow-" + topic;
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            Kit.createTopic(admin, topic, 1);
            ClientQuotaEntity slow = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, slowId));
            Kit.get(admin.alterClientQuotas(List.of(new ClientQuotaAlteration(slow,
                    List.of(new ClientQuotaAlteration.Op("producer_byte_rate", QUOTA))))).all());
            var filter = ClientQuotaFilter.containsOnly(List.of(
                    ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, slowId)));
            Kit.waitUntil("the quota is described", Kit.WAIT,
                    () -> Map.of(slow, Map.of("producer_byte_rate", QUOTA))
                            .equals(Kit.get(admin.describeClientQuotas(filter).entities())));
        }

        byte[] value = new byte[VALUE_BYTES];
        new java.util.Random(7).nextBytes(value);
        // A small buffer keeps the slow producer's backlog (and so its close) short.
        KafkaProducer<byte[], byte[]> slowProducer = Kit.producer(broker.bootstrap(),
                "client.id", slowId, "acks", "1", "linger.ms", "0", "batch.size", "65536",
                "buffer.memory", "262144", "max.block.ms", "30000");
        KafkaProducer<byte[], byte[]> fastProducer = Kit.producer(broker.bootstrap(),
                "client.id", "fast-" + topic, "acks", "1", "linger.ms", "5", "batch.size", "262144");
        ConcurrentLinkedQueue<Long> slowAcks = new ConcurrentLinkedQueue<>();
        AtomicLong errors = new AtomicLong();
        long measureFrom;
        long measureTo;
        long fastBytes = 0;
        long fastNanos;
        long sendErrors;
        try {
            // The slow producer writes as fast as it is let, in the background.
            Thread writer = new Thread(() -> {
                long stop = System.nanoTime() + 20_000_000_000L;
                while (System.nanoTime() < stop && !Thread.currentThread().isInterrupted()) {
                    try {
                        slowProducer.send(new ProducerRecord<>(topic, 0, null, value), (md, e) -> {
                            if (e != null) {
                                errors.incrementAndGet();
                            } else {
                                slowAcks.add(System.nanoTime());
                            }
                        });
                    } catch (Exception e) {
                        return;
                    }
                }
            });
            writer.setDaemon(true);
            writer.start();
            Kit.waitUntil("the slow producer's first acknowledgement", Kit.WAIT, () -> !slowAcks.isEmpty());
            long t0 = slowAcks.peek();
            measureFrom = t0 + 5_500_000_000L;
            measureTo = t0 + 16_500_000_000L;

            // Meanwhile, another client id writes 3 s (at most 48 MiB) to the same topic at full speed.
            while (System.nanoTime() < t0 + 6_000_000_000L) {
                Thread.sleep(20);
            }
            long fastStart = System.nanoTime();
            List<java.util.concurrent.Future<?>> sent = new java.util.ArrayList<>();
            while (System.nanoTime() < fastStart + 3_000_000_000L && fastBytes < 48L << 20) {
                sent.add(fastProducer.send(new ProducerRecord<>(topic, 0, null, value)));
                fastBytes += value.length;
            }
            for (var f : sent) {
                Kit.get(f);
            }
            fastNanos = System.nanoTime() - fastStart;

            while (System.nanoTime() < measureTo + 200_000_000L) {
                Thread.sleep(50);
            }
            writer.interrupt();
            writer.join(35_000);
            // Closing without waiting fails what is still queued: count errors before.
            sendErrors = errors.get();
        } finally {
            slowProducer.close(java.time.Duration.ZERO);
        }
        double fastRate = fastBytes / (fastNanos / 1e9);
        double fastThrottle = metric(fastProducer.metrics(), "produce-throttle-time-max");
        fastProducer.close();

        long inWindow = slowAcks.stream().filter(t -> t >= measureFrom && t < measureTo).count();
        double slowRate = inWindow * (double) VALUE_BYTES / 11.0;
        String report = String.format("slow %.0f B/s (quota %.0f), fast %.0f B/s, fast throttle max %.1f ms",
                slowRate, QUOTA, fastRate, fastThrottle);
        System.out.println("QuotaTest: " + report);
        assertEquals(0, sendErrors, "the slow producer's sends all succeeded: " + report);
        assertTrue(slowRate >= 0.9 * QUOTA && slowRate <= 1.1 * QUOTA, "the slow producer keeps its quota: " + report);
        assertEquals(0.0, fastThrottle, "the other client was never throttled: " + report);
        assertTrue(fastRate > 4 * QUOTA, "the other client keeps its speed: " + report);
    }

    static double metric(Map<MetricName, ? extends Metric> metrics, String name) {
        for (var e : metrics.entrySet()) {
            if (e.getKey().name().equals(name) && e.getKey().group().equals("producer-metrics")) {
                Object v = e.getValue().metricValue();
                return v instanceof Double d && !d.isNaN() ? d : 0.0;
            }
        }
        throw new AssertionError("no metric " + name);
    }
}
