package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static dev.klamm.compat.Kit.s;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** A broker per test, restarted with SIGTERM or killed with SIGKILL in the middle. */
class RestartTest {
    @RegisterExtension
    final BrokerExtension broker = new BrokerExtension("--group-min-session-timeout-ms", "1000");

    private void bounce(boolean kill) {
        if (kill) {
            broker.killAndRestart();
        } else {
            broker.restart();
        }
    }

    @ParameterizedTest(name = "sigkill={0}")
    @ValueSource(booleans = {false, true})
    void recordsCommittedOffsetsAndProducerStateSurviveARestart(boolean kill) {
        String topic = Kit.name("restart");
        String group = Kit.name("g-restart");
        Kit.createTopic(broker.bootstrap(), topic, 2);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, b("k" + i), b("p0-" + i)));
                p.send(new ProducerRecord<>(topic, 1, b("k" + i), b("p1-" + i)));
            }
            p.flush();
        }
        Map<TopicPartition, OffsetAndMetadata> commit = Map.of(
                p0, new OffsetAndMetadata(5, "m0"), p1, new OffsetAndMetadata(7, "m1"));
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), group,
                "group.protocol", "classic", "session.timeout.ms", "6000", "heartbeat.interval.ms", "500")) {
            c.subscribe(List.of(topic));
            Kit.pollExactly(c, 20, Duration.ofSeconds(20));
            c.commitSync(commit);
        }
        int lastSequence;
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            List<ProducerState> st = get(admin.describeProducers(List.of(p0)).partitionResult(p0)).activeProducers();
            assertEquals(1, st.size());
            lastSequence = st.get(0).lastSequence();
        }

        bounce(kill);

        try (Admin admin = Kit.admin(broker.bootstrap())) {
            assertEquals(Map.of(p0, "5:m0", p1, "7:m1"),
                    Kit.offsets(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())));
            List<ProducerState> st = get(admin.describeProducers(List.of(p0)).partitionResult(p0)).activeProducers();
            assertEquals(1, st.size(), "producer state survives: " + st);
            assertEquals(lastSequence, st.get(0).lastSequence());
        }
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), group,
                "group.protocol", "classic", "session.timeout.ms", "6000", "heartbeat.interval.ms", "500")) {
            assertEquals(Map.of(p0, 10L, p1, 10L), c.endOffsets(Set.of(p0, p1)));
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 8, Duration.ofSeconds(20));
            for (ConsumerRecord<byte[], byte[]> r : got) {
                assertEquals("p" + r.partition() + "-" + r.offset(), s(r.value()));
                assertEquals("k" + r.offset(), s(r.key()));
            }
            assertEquals(5L, got.stream().filter(r -> r.partition() == 0).mapToLong(ConsumerRecord::offset).min().orElse(-1));
            assertEquals(7L, got.stream().filter(r -> r.partition() == 1).mapToLong(ConsumerRecord::offset).min().orElse(-1));
        }
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            assertEquals(10L, get(p.send(new ProducerRecord<>(topic, 0, b("k"), b("after")))).offset());
        }
    }

    @ParameterizedTest(name = "sigkill={0}")
    @ValueSource(booleans = {false, true})
    void openTransactionCommitsAfterARestart(boolean kill) {
        String topic = Kit.name("restart-txn");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "transactional.id", Kit.name("tid-restart"),
                "transaction.timeout.ms", "60000")) {
            p.initTransactions();
            p.beginTransaction();
            get(p.send(new ProducerRecord<>(topic, b("k"), b("before-restart"))));
            String before = broker.bootstrap();
            bounce(kill);
            Assumptions.assumeTrue(before.equals(broker.bootstrap()),
                    "the restarted broker listens on another port: the producer cannot reconnect");
            get(p.send(new ProducerRecord<>(topic, b("k"), b("after-restart"))));
            p.commitTransaction();
        }
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null, "isolation.level", "read_committed")) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 2, Duration.ofSeconds(20));
            assertEquals(List.of("before-restart", "after-restart"), got.stream().map(r -> s(r.value())).toList());
            assertEquals(List.of(0L, 1L), got.stream().map(ConsumerRecord::offset).toList());
            assertEquals(3L, c.endOffsets(List.of(tp)).get(tp));
        }
    }
}
