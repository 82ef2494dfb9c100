package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static dev.klamm.compat.Kit.s;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Klamm-only: the Java client's retries through faults injected with Klamm's admin HTTP port
 * ({@code --http}, {@code POST /faults}). Skipped under COMPAT_BROKER=kafka.
 */
class FaultInjectionTest {
    static final int HTTP_PORT = Broker.freePort();

    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension(
            "--http", "127.0.0.1:" + HTTP_PORT, "--group-min-session-timeout-ms", "1000");

    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private static String http(String method, String path, String body) {
        HttpRequest.Builder rb = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + HTTP_PORT + path))
                .timeout(Duration.ofSeconds(10));
        rb.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        try {
            HttpResponse<String> r = HTTP.send(rb.build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() / 100 != 2) {
                throw new AssertionError(method + " " + path + " -> " + r.statusCode() + " " + r.body());
            }
            return r.body().trim();
        } catch (IOException e) {
            throw new AssertionError(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    @AfterEach
    void clear() {
        if (!Broker.isKafka()) {
            http("DELETE", "/faults", null);
        }
    }

    private static List<ConsumerRecord<byte[], byte[]>> readAll(TopicPartition tp, int count) {
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, count, Duration.ofSeconds(20));
            assertEquals((long) count, c.endOffsets(List.of(tp)).get(tp), "nothing more in the log");
            return got;
        }
    }

    @Test
    void producerRetriesNotLeaderOrFollower() {
        String topic = Kit.name("fault-nl");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        http("POST", "/faults", "{\"api\":\"Produce\",\"topic\":\"" + topic
                + "\",\"action\":\"error\",\"error\":\"NOT_LEADER_OR_FOLLOWER\",\"count\":3}");
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "retry.backoff.ms", "20")) {
            assertEquals(0L, get(p.send(new ProducerRecord<>(topic, b("k"), b("through-3-errors")))).offset());
        }
        assertEquals("[]", http("GET", "/faults", null), "the 3 errors were all used up by retries");
        List<ConsumerRecord<byte[], byte[]>> got = readAll(new TopicPartition(topic, 0), 1);
        assertEquals("through-3-errors", s(got.get(0).value()));
    }

    @Test
    void idempotentProducerWritesOnceWhenAnswersAreLost() {
        String topic = Kit.name("fault-drop");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        http("POST", "/faults", "{\"api\":\"Produce\",\"topic\":\"" + topic + "\",\"action\":\"drop_response\",\"count\":2}");
        List<String> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "retry.backoff.ms", "20",
                "request.timeout.ms", "5000", "delivery.timeout.ms", "30000")) {
            for (int i = 0; i < 50; i++) {
                sent.add("r-" + i);
                p.send(new ProducerRecord<>(topic, b("k"), b("r-" + i)));
            }
            p.flush();
            assertEquals(50L, get(p.send(new ProducerRecord<>(topic, b("k"), b("last")))).offset());
        }
        sent.add("last");
        assertEquals("[]", http("GET", "/faults", null), "both answers were dropped");
        List<ConsumerRecord<byte[], byte[]>> got = readAll(new TopicPartition(topic, 0), 51);
        assertEquals(sent, got.stream().map(r -> s(r.value())).toList(), "every record once, in order");
    }

    @Test
    void consumerGroupJoinsThroughCoordinatorLoadInProgressAndAClosedJoin() {
        String topic = Kit.name("fault-group");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            get(p.send(new ProducerRecord<>(topic, b("k"), b("v"))));
        }
        http("POST", "/faults", "{\"api\":\"FindCoordinator\",\"action\":\"error\","
                + "\"error\":\"COORDINATOR_LOAD_IN_PROGRESS\",\"duration_ms\":1500}");
        http("POST", "/faults", "{\"api\":\"JoinGroup\",\"action\":\"close\",\"count\":1}");
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), Kit.name("g-fault"),
                "group.protocol", "classic", "session.timeout.ms", "6000", "heartbeat.interval.ms", "500")) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 1, Duration.ofSeconds(30));
            assertEquals("v", s(got.get(0).value()));
        }
        String left = http("GET", "/faults", null);
        assertEquals(false, left.contains("JoinGroup"), "the closed JoinGroup was retried: " + left);
    }
}
