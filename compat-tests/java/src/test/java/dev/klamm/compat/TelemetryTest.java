package dev.klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Uuid;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * KIP-714 client telemetry: Klamm answers GetTelemetrySubscriptions as a broker with no
 * metrics subscription, so every client (with Kafka's default enable.metrics.push=true)
 * gets its own client instance id, and the clients keep working.
 */
class TelemetryTest {
    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension();

    @Test
    void everyClientGetsItsOwnInstanceIdAndKeepsWorking() {
        // Kafka lists the telemetry APIs only with a telemetry reporter configured.
        Assumptions.assumeFalse(Broker.isKafka(), "the reference broker has no telemetry reporter");
        Duration wait = Duration.ofSeconds(15);
        String topic = Kit.name("telemetry");
        Set<Uuid> ids = new HashSet<>();
        // Producers and consumers push by default; the admin client only when asked.
        Properties adminProps = new Properties();
        adminProps.put("bootstrap.servers", broker.bootstrap());
        adminProps.put("enable.metrics.push", "true");
        try (Admin admin = Admin.create(adminProps);
                KafkaProducer<byte[], byte[]> producer = Kit.producer(broker.bootstrap());
                KafkaConsumer<byte[], byte[]> consumer = Kit.consumer(broker.bootstrap(), Kit.name("telemetry-g"))) {
            producer.send(new ProducerRecord<>(topic, 0, Kit.b("k"), Kit.b("v"))).get();
            Uuid p = producer.clientInstanceId(wait);
            Uuid a = admin.clientInstanceId(wait);
            consumer.subscribe(List.of(topic));
            // The consumer talks to brokers only inside poll(): it reads the record first.
            int read = 0;
            for (int i = 0; i < 100 && read == 0; i++) {
                read = consumer.poll(Duration.ofMillis(200)).count();
            }
            assertEquals(1, read, "the consumer reads the record");
            Uuid c = consumer.clientInstanceId(wait);
            assertNotNull(p, "producer's instance id");
            assertNotNull(a, "admin's instance id");
            assertNotNull(c, "consumer's instance id");
            for (Uuid id : List.of(p, a, c)) {
                assertNotEquals(Uuid.ZERO_UUID, id);
                ids.add(id);
            }
            assertEquals(3, ids.size(), "one id per client instance: " + ids);
            // Asking again gives the same id: it is assigned once per instance.
            assertEquals(p, producer.clientInstanceId(wait));
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }
}
