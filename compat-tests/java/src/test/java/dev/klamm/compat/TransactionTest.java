package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static dev.klamm.compat.Kit.s;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidTxnStateException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Transactions: consume-transform-produce, aborts, fencing, transactional offset commits. */
class TransactionTest {
    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension(
            "--group-min-session-timeout-ms", "1000",
            "--group-consumer-heartbeat-interval-ms", "500",
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms", "100");

    static final Duration WAIT = Duration.ofSeconds(20);

    private static KafkaProducer<byte[], byte[]> txProducer(String tid) {
        KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "transactional.id", tid,
                "transaction.timeout.ms", "20000");
        p.initTransactions();
        return p;
    }

    private static List<ConsumerRecord<byte[], byte[]>> readAll(TopicPartition tp, String isolation, int count) {
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null, "isolation.level", isolation)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, count, WAIT);
            // nothing more up to the end (positive check: the position reached the end offset)
            long end = c.endOffsets(List.of(tp)).get(tp);
            Kit.waitUntil("position at the end offset " + end, WAIT, () -> {
                got.addAll(toList(c.poll(Duration.ofMillis(50))));
                return c.position(tp) >= end;
            });
            assertEquals(count, got.size(), "records read with " + isolation);
            return got;
        }
    }

    private static List<ConsumerRecord<byte[], byte[]>> toList(ConsumerRecords<byte[], byte[]> rs) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        rs.forEach(out::add);
        return out;
    }

    @Test
    void abortedRecordsAreInvisibleToReadCommittedOnly() {
        String topic = Kit.name("tx-abort");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> p = txProducer(Kit.name("tid-abort"))) {
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, b("k"), b("committed-" + i)));
            }
            p.commitTransaction();          // offsets 0-2, commit marker at 3
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, b("k"), b("aborted-" + i)));
            }
            p.flush();
            p.abortTransaction();           // offsets 4-6, abort marker at 7
            p.beginTransaction();
            for (int i = 0; i < 2; i++) {
                p.send(new ProducerRecord<>(topic, b("k"), b("again-" + i)));
            }
            p.commitTransaction();          // offsets 8-9, commit marker at 10
        }
        List<ConsumerRecord<byte[], byte[]>> committed = readAll(tp, "read_committed", 5);
        assertEquals(List.of(0L, 1L, 2L, 8L, 9L), committed.stream().map(ConsumerRecord::offset).toList());
        assertEquals(List.of("committed-0", "committed-1", "committed-2", "again-0", "again-1"),
                committed.stream().map(r -> s(r.value())).toList());
        List<ConsumerRecord<byte[], byte[]>> all = readAll(tp, "read_uncommitted", 8);
        assertEquals(List.of(0L, 1L, 2L, 4L, 5L, 6L, 8L, 9L), all.stream().map(ConsumerRecord::offset).toList());
        assertEquals("aborted-1", s(all.get(4).value()));
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null, "isolation.level", "read_committed")) {
            assertEquals(11L, c.endOffsets(List.of(tp)).get(tp), "markers take one offset each");
        }
    }

    @Test
    void openTransactionHoldsBackReadCommittedAtTheLastStableOffset() {
        String topic = Kit.name("tx-lso");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> plain = Kit.producer(broker.bootstrap());
             KafkaProducer<byte[], byte[]> p = txProducer(Kit.name("tid-lso"))) {
            get(plain.send(new ProducerRecord<>(topic, b("k"), b("plain-0"))));   // offset 0
            p.beginTransaction();
            get(p.send(new ProducerRecord<>(topic, b("k"), b("open-1"))));         // offset 1
            get(plain.send(new ProducerRecord<>(topic, b("k"), b("plain-2"))));   // offset 2
            try (KafkaConsumer<byte[], byte[]> rc = Kit.consumer(broker.bootstrap(), null, "isolation.level", "read_committed");
                 KafkaConsumer<byte[], byte[]> ru = Kit.consumer(broker.bootstrap(), null, "isolation.level", "read_uncommitted")) {
                assertEquals(1L, rc.endOffsets(List.of(tp)).get(tp), "read_committed ends at the LSO");
                assertEquals(3L, ru.endOffsets(List.of(tp)).get(tp), "read_uncommitted ends at the high watermark");
                rc.assign(List.of(tp));
                rc.seekToBeginning(List.of(tp));
                List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(rc, 1, WAIT);
                assertEquals("plain-0", s(got.get(0).value()));
                p.commitTransaction();                                              // marker at 3
                got = Kit.pollExactly(rc, 2, WAIT);
                assertEquals(List.of(1L, 2L), got.stream().map(ConsumerRecord::offset).toList());
                assertEquals(4L, rc.endOffsets(List.of(tp)).get(tp));
            }
        }
    }

    @Test
    void secondInstanceWithTheSameTransactionalIdFencesTheFirst() {
        String topic = Kit.name("tx-fence");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String tid = Kit.name("tid-fence");
        KafkaProducer<byte[], byte[]> first = txProducer(tid);
        try {
            first.beginTransaction();
            get(first.send(new ProducerRecord<>(topic, b("k"), b("from-first"))));
            try (KafkaProducer<byte[], byte[]> second = txProducer(tid)) { // aborts first's transaction
                assertThrows(ProducerFencedException.class, first::commitTransaction);
                second.beginTransaction();
                get(second.send(new ProducerRecord<>(topic, b("k"), b("from-second"))));
                second.commitTransaction();
            }
        } finally {
            first.close(Duration.ZERO);
        }
        List<ConsumerRecord<byte[], byte[]>> got = readAll(tp, "read_committed", 1);
        assertEquals("from-second", s(got.get(0).value()));
        // offsets: 0 first's record, 1 its abort marker, 2 second's record, 3 commit marker
        assertEquals(2L, got.get(0).offset());
    }

    /** The finalized transaction.version feature level (0 when the broker does not advertise it). */
    private static short transactionVersion() {
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            var f = get(admin.describeFeatures().featureMetadata()).finalizedFeatures().get("transaction.version");
            return f == null ? 0 : f.maxVersionLevel();
        }
    }

    /** The producer epoch DescribeProducers reports on the partition (of its last batch or marker). */
    private static int epochOn(TopicPartition tp, long producerId) {
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            return get(admin.describeProducers(List.of(tp)).partitionResult(tp)).activeProducers().stream()
                    .filter(p -> p.producerId() == producerId)
                    .findFirst().orElseThrow().producerEpoch();
        }
    }

    private static long producerIdOn(TopicPartition tp) {
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            var active = get(admin.describeProducers(List.of(tp)).partitionResult(tp)).activeProducers();
            assertEquals(1, active.size(), "one producer on " + tp);
            return active.get(0).producerId();
        }
    }

    /**
     * KIP-890 part 2: Klamm finalizes transaction.version 2, so a 4.x producer adds partitions
     * implicitly (Produce v12, no AddPartitionsToTxn) and every commit or abort bumps its epoch
     * (EndTxn v5): the markers, and the next transaction's batches, carry the new epoch, which
     * DescribeProducers shows on the partition. A 3.x producer (KAFKA_VERSIONS=3.9.1) stays on
     * transaction version 1 against the same broker: one epoch for all its transactions.
     */
    @Test
    void everyEndBumpsTheEpochWithTransactionVersion2Clients() {
        String topic = Kit.name("tx-tv2");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        assertEquals(2, transactionVersion(), "the broker finalizes transaction.version 2");
        boolean tv2 = Kit.clientAtLeast(4, 0);
        List<Integer> epochs = new ArrayList<>();
        long pid;
        try (KafkaProducer<byte[], byte[]> p = txProducer(Kit.name("tid-tv2"))) {
            p.beginTransaction();
            get(p.send(new ProducerRecord<>(topic, b("k"), b("one"))));
            pid = producerIdOn(tp);
            epochs.add(epochOn(tp, pid));
            p.commitTransaction();
            epochs.add(epochOn(tp, pid));
            p.beginTransaction();
            get(p.send(new ProducerRecord<>(topic, b("k"), b("two"))));
            epochs.add(epochOn(tp, pid));
            p.abortTransaction();
            epochs.add(epochOn(tp, pid));
            p.beginTransaction();
            get(p.send(new ProducerRecord<>(topic, b("k"), b("three"))));
            p.commitTransaction();
            epochs.add(epochOn(tp, pid));
        }
        int e = epochs.get(0);
        List<Integer> want = tv2 ? List.of(e, e + 1, e + 1, e + 2, e + 3) : List.of(e, e, e, e, e);
        assertEquals(want, epochs, "epochs on the partition, transaction.version 2 in use: " + tv2);
        List<ConsumerRecord<byte[], byte[]>> got = readAll(tp, "read_committed", 2);
        assertEquals(List.of("one", "three"), got.stream().map(r -> s(r.value())).toList());
    }

    /**
     * A transaction open past transaction.timeout.ms is aborted by the broker with an epoch bump.
     * The producer's commit then fails: with transaction.version 0/1 (3.x clients) EndTxn answers
     * PRODUCER_FENCED (ProducerFencedException); with KIP-890 transaction.version 2 (4.x clients,
     * which Klamm and Kafka 4.x offer it to) EndTxn with the previous epoch for a transaction
     * that was aborted answers INVALID_TXN_STATE (InvalidTxnStateException).
     */
    @Test
    void timedOutTransactionIsAbortedByTheBroker() {
        String topic = Kit.name("tx-timeout");
        Kit.createTopic(broker.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        boolean tv2 = transactionVersion() >= 2 && Kit.clientAtLeast(4, 0);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "transactional.id", Kit.name("tid-timeout"),
                "transaction.timeout.ms", "1000")) {
            p.initTransactions();
            p.beginTransaction();
            get(p.send(new ProducerRecord<>(topic, b("k"), b("will-time-out"))));
            // the broker aborts it after transaction.timeout.ms: an abort marker makes the LSO reach the end
            try (KafkaConsumer<byte[], byte[]> rc = Kit.consumer(broker.bootstrap(), null, "isolation.level", "read_committed")) {
                Kit.waitUntil("the broker aborted the transaction", WAIT, () -> rc.endOffsets(List.of(tp)).get(tp) == 2L);
            }
            Throwable t = assertThrows(Exception.class, p::commitTransaction);
            Class<? extends Throwable> want = tv2 ? InvalidTxnStateException.class : ProducerFencedException.class;
            assertEquals(want, t.getClass(),
                    "transaction.version 2 in use: " + tv2 + ": " + t);
        }
        assertEquals(0, readAllNone(tp));
    }

    private static int readAllNone(TopicPartition tp) {
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null, "isolation.level", "read_committed")) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            int n = 0;
            long end = c.endOffsets(List.of(tp)).get(tp);
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (c.position(tp) < end && System.nanoTime() < deadline) {
                n += c.poll(Duration.ofMillis(50)).count();
            }
            assertEquals(end, c.position(tp));
            return n;
        }
    }

    /**
     * Consume from {@code in}, produce upper-cased values to {@code out}, offsets in the same
     * transaction, in two sessions (the second a new consumer and producer instance with the same
     * group and transactional id, as after a restart of the application). The first transaction
     * of session 1 is aborted and must leave no offsets and no visible output.
     */
    private static void consumeTransformProduce(String protocol) {
        String in = Kit.name("ctp-in");
        String out = Kit.name("ctp-out");
        String group = Kit.name("g-ctp");
        String tid = Kit.name("tid-ctp");
        Kit.createTopic(broker.bootstrap(), in, 2);
        Kit.createTopic(broker.bootstrap(), out, 1);
        TopicPartition in0 = new TopicPartition(in, 0);
        TopicPartition in1 = new TopicPartition(in, 1);
        TopicPartition out0 = new TopicPartition(out, 0);
        produceInput(in, 0);
        Object[] cfg = protocol.equals("consumer")
                ? new Object[] {"group.protocol", "consumer", "isolation.level", "read_committed"}
                : new Object[] {"group.protocol", "classic", "isolation.level", "read_committed",
                        "session.timeout.ms", "6000", "heartbeat.interval.ms", "500"};
        ctpSession(group, tid, in, out, cfg, true, 10);
        assertCommitted(group, Map.of(in0, "5:ctp", in1, "5:ctp"));
        produceInput(in, 10);
        ctpSession(group, tid, in, out, cfg, false, 10);
        assertCommitted(group, Map.of(in0, "10:ctp", in1, "10:ctp"));

        List<ConsumerRecord<byte[], byte[]>> got = readAll(out0, "read_committed", 20);
        List<String> values = new ArrayList<>(got.stream().map(r -> s(r.value())).toList());
        values.sort(null);
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            want.add("VALUE-" + i);
        }
        want.sort(null);
        assertEquals(want, values, "every input exactly once");
        // read_uncommitted also sees what the aborted transaction wrote
        int all = readAllCount(out0);
        assertTrue(all > 20, "read_uncommitted sees the aborted output too: " + all);
    }

    private static void produceInput(String in, int from) {
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = from; i < from + 10; i++) {
                p.send(new ProducerRecord<>(in, i % 2, b("k" + i), b("value-" + i)));
            }
            p.flush();
        }
    }

    private static void assertCommitted(String group, Map<TopicPartition, String> want) {
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            assertEquals(want, Kit.offsets(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())));
        }
    }

    private static void ctpSession(String group, String tid, String in, String out, Object[] cfg,
                                   boolean abortFirst, int expected) {
        int processed = 0;
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), group, cfg);
             KafkaProducer<byte[], byte[]> p = txProducer(tid)) {
            c.subscribe(List.of(in));
            boolean abort = abortFirst;
            long deadline = System.nanoTime() + Duration.ofSeconds(40).toNanos();
            while (processed < expected && System.nanoTime() < deadline) {
                ConsumerRecords<byte[], byte[]> batch = c.poll(Duration.ofMillis(100));
                if (batch.isEmpty()) {
                    continue;
                }
                p.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    p.send(new ProducerRecord<>(out, 0, r.key(), b(s(r.value()).toUpperCase())));
                    next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1, "ctp"));
                }
                p.sendOffsetsToTransaction(next, c.groupMetadata());
                if (abort) {
                    abort = false;
                    p.flush(); // abortTransaction drops records not sent yet: make them reach the log
                    p.abortTransaction();
                    // nothing of it was committed: rewind to the committed offsets (none yet)
                    Map<TopicPartition, OffsetAndMetadata> committed = c.committed(c.assignment());
                    for (TopicPartition tp : c.assignment()) {
                        OffsetAndMetadata om = committed.get(tp);
                        assertTrue(om == null, "aborted transaction committed offsets: " + committed);
                        c.seek(tp, 0);
                    }
                    continue;
                }
                p.commitTransaction();
                processed += batch.count();
            }
            assertEquals(expected, processed);
        }
    }

    private static int readAllCount(TopicPartition tp) {
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null, "isolation.level", "read_uncommitted")) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = c.endOffsets(List.of(tp)).get(tp);
            int n = 0;
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (c.position(tp) < end && System.nanoTime() < deadline) {
                n += c.poll(Duration.ofMillis(50)).count();
            }
            assertEquals(end, c.position(tp));
            return n;
        }
    }

    /**
     * sendOffsetsToTransaction with the group metadata of an older generation / member epoch
     * (a zombie instance) is refused, and the Java client treats the refusal as abortable:
     * CommitFailedException, then the transaction can be aborted and a new one, with the
     * current metadata, commits. An unknown member id is refused the same way.
     */
    private static void zombieGroupMetadata(String protocol) {
        String in = Kit.name("zombie-in");
        String out = Kit.name("zombie-out");
        String group = Kit.name("g-zombie");
        Kit.createTopic(broker.bootstrap(), in, 4);
        Kit.createTopic(broker.bootstrap(), out, 1);
        Object[] cfg = protocol.equals("consumer")
                ? new Object[] {"group.protocol", "consumer"}
                : new Object[] {"group.protocol", "classic", "session.timeout.ms", "6000", "heartbeat.interval.ms", "300"};
        TopicPartition current;
        try (Member a = new Member("a", broker.bootstrap(), group, in, cfg)) {
            GroupAwait.await("a alone", WAIT, 4, new int[] {4}, a::owned);
            Kit.waitUntil("a's metadata", WAIT, () -> a.metadata() != null && a.metadata().generationId() > 0);
            org.apache.kafka.clients.consumer.ConsumerGroupMetadata old = a.metadata();
            try (Member bm = new Member("b", broker.bootstrap(), group, in, cfg)) {
                GroupAwait.await("a and b", WAIT, 4, new int[] {2, 2}, a::owned, bm::owned);
                Kit.waitUntil("a's new generation / epoch", WAIT,
                        () -> a.metadata().generationId() > old.generationId(), () -> a.metadata().toString());
                // a partition that moved from a to b since the old generation / epoch
                TopicPartition moved = new TopicPartition(in, bm.owned().iterator().next());
                try (KafkaProducer<byte[], byte[]> p = txProducer(Kit.name("tid-zombie"))) {
                    p.beginTransaction();
                    p.send(new ProducerRecord<>(out, b("k"), b("zombie")));
                    Throwable t = assertThrows(Exception.class, () -> p.sendOffsetsToTransaction(
                            Map.of(moved, new OffsetAndMetadata(1)), old));
                    assertEquals(org.apache.kafka.clients.consumer.CommitFailedException.class, t.getClass(),
                            "stale " + old + " (now " + a.metadata() + "): " + t);
                    p.abortTransaction();

                    p.beginTransaction();
                    Throwable u = assertThrows(Exception.class, () -> p.sendOffsetsToTransaction(
                            Map.of(moved, new OffsetAndMetadata(1)), new org.apache.kafka.clients.consumer.ConsumerGroupMetadata(
                                    group, a.metadata().generationId(), "no-such-member", java.util.Optional.empty())));
                    assertEquals(org.apache.kafka.clients.consumer.CommitFailedException.class, u.getClass(), String.valueOf(u));
                    p.abortTransaction();

                    current = new TopicPartition(in, a.owned().iterator().next());
                    p.beginTransaction();
                    p.send(new ProducerRecord<>(out, b("k"), b("current")));
                    p.sendOffsetsToTransaction(Map.of(current, new OffsetAndMetadata(1, "current")), a.metadata());
                    p.commitTransaction();
                }
            }
        }
        assertCommitted(group, Map.of(current, "1:current"));
        List<ConsumerRecord<byte[], byte[]>> got = readAll(new TopicPartition(out, 0), "read_committed", 1);
        assertEquals("current", s(got.get(0).value()));
    }

    @Test
    void zombieGenerationIsRefusedWithAClassicGroup() {
        zombieGroupMetadata("classic");
    }

    @Test
    void zombieMemberEpochIsRefusedWithAConsumerProtocolGroup() {
        Kit.assumeKip848Client();
        zombieGroupMetadata("consumer");
    }

    /**
     * TxnOffsetCommit (v4) from a KIP-848 member with an older member epoch, for a partition the
     * member has owned without interruption since that epoch, is accepted by Kafka 4.4 and
     * committed with the transaction. (Klamm answered STALE_MEMBER_EPOCH; found by running this
     * suite against Kafka 4.4.)
     */
    @Test
    void olderMemberEpochCommitsAPartitionTheMemberStillOwns() {
        Kit.assumeKip848Client();
        String in = Kit.name("epoch-in");
        String out = Kit.name("epoch-out");
        String group = Kit.name("g-epoch");
        Kit.createTopic(broker.bootstrap(), in, 4);
        Kit.createTopic(broker.bootstrap(), out, 1);
        Object[] cfg = {"group.protocol", "consumer"};
        TopicPartition kept;
        try (Member a = new Member("a", broker.bootstrap(), group, in, cfg)) {
            GroupAwait.await("a alone", WAIT, 4, new int[] {4}, a::owned);
            Kit.waitUntil("a's metadata", WAIT, () -> a.metadata() != null && a.metadata().generationId() > 0);
            org.apache.kafka.clients.consumer.ConsumerGroupMetadata old = a.metadata();
            try (Member bm = new Member("b", broker.bootstrap(), group, in, cfg)) {
                GroupAwait.await("a and b", WAIT, 4, new int[] {2, 2}, a::owned, bm::owned);
                Kit.waitUntil("a's new epoch", WAIT, () -> a.metadata().generationId() > old.generationId());
                kept = new TopicPartition(in, a.owned().iterator().next());
                try (KafkaProducer<byte[], byte[]> p = txProducer(Kit.name("tid-epoch"))) {
                    p.beginTransaction();
                    p.send(new ProducerRecord<>(out, b("k"), b("old-epoch")));
                    p.sendOffsetsToTransaction(Map.of(kept, new OffsetAndMetadata(1, "old-epoch")), old);
                    p.commitTransaction();
                }
            }
        }
        assertCommitted(group, Map.of(kept, "1:old-epoch"));
    }

    @Test
    void consumeTransformProduceWithAClassicGroup() {
        consumeTransformProduce("classic");
    }

    /**
     * TxnOffsetCommit carrying a KIP-848 member's id and epoch is validated against the
     * consumer group and committed, as Kafka does.
     */
    @Test
    void consumeTransformProduceWithAConsumerProtocolGroup() {
        Kit.assumeKip848Client();
        consumeTransformProduce("consumer");
    }
}
