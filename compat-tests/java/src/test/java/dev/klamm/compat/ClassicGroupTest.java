package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ConsumerGroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Classic consumer groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) with Java's assignors. */
class ClassicGroupTest {
    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension("--group-min-session-timeout-ms", "1000");

    static final Duration SETTLE = Duration.ofSeconds(20);
    static final int[] ALL6 = {6};
    static final int[] HALVES = {3, 3};
    static final int[] THIRDS = {2, 2, 2};

    private static Object[] conf(String assignor, int sessionMs, Object... more) {
        Object[] base = {"partition.assignment.strategy", assignor, "session.timeout.ms", sessionMs,
                "heartbeat.interval.ms", 300, "group.protocol", "classic"};
        Object[] out = new Object[base.length + more.length];
        System.arraycopy(base, 0, out, 0, base.length);
        System.arraycopy(more, 0, out, base.length, more.length);
        return out;
    }

    private static final String RANGE = "org.apache.kafka.clients.consumer.RangeAssignor";
    private static final String COOP = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor";

    private static ConsumerGroupDescription describe(String group) {
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            return get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
        }
    }

    @Test
    void rangeAssignorEagerJoinAndLeave() {
        String topic = Kit.name("range");
        String group = Kit.name("g-range");
        Kit.createTopic(broker.bootstrap(), topic, 6);
        // session.timeout.ms 30 s: a member that closes must be gone through LeaveGroup, long before that.
        Object[] cfg = conf(RANGE, 30_000);
        try (Member a = new Member("a", broker.bootstrap(), group, topic, cfg)) {
            GroupAwait.await("a alone", SETTLE, 6, ALL6, a::owned);
            int aEvents = a.eventCount();
            try (Member bm = new Member("b", broker.bootstrap(), group, topic, cfg)) {
                GroupAwait.await("a and b", SETTLE, 6, HALVES, a::owned, bm::owned);
                // eager: a gave up everything it had before the new assignment
                assertEquals(Set.of(0, 1, 2, 3, 4, 5), a.revokedSince(aEvents), a.events().toString());
                assertTrue(GroupAwait.contiguous(a.owned()) && GroupAwait.contiguous(bm.owned()),
                        "range assigns contiguous ranges: " + a + " " + bm);
                long before = System.nanoTime();
                try (Member c = new Member("c", broker.bootstrap(), group, topic, cfg)) {
                    GroupAwait.await("a, b and c", SETTLE, 6, THIRDS, a::owned, bm::owned, c::owned);
                    for (Member m : List.of(a, bm, c)) {
                        assertTrue(GroupAwait.contiguous(m.owned()), m.toString());
                    }
                    ConsumerGroupDescription d = describe(group);
                    assertEquals(3, d.members().size());
                    assertEquals("range", d.partitionAssignor());
                    assertEquals(ConsumerGroupState.STABLE, d.state());
                    assertEquals(GroupType.CLASSIC, d.type());
                    before = System.nanoTime();
                }
                // c left (LeaveGroup on close): a and b take its partitions well before c's session expires
                GroupAwait.await("a and b after c left", Duration.ofSeconds(15), 6, HALVES, a::owned, bm::owned);
                long took = (System.nanoTime() - before) / 1_000_000;
                assertTrue(took < 15_000, "rebalance after LeaveGroup took " + took + " ms");
                assertEquals(2, describe(group).members().size());
            }
            GroupAwait.await("a alone again", SETTLE, 6, ALL6, a::owned);
            assertNull(a.error());
        }
    }

    @Test
    void cooperativeStickyRevokesOnlyMovedPartitions() {
        String topic = Kit.name("coop");
        String group = Kit.name("g-coop");
        Kit.createTopic(broker.bootstrap(), topic, 6);
        Object[] cfg = conf(COOP, 30_000);
        try (Member a = new Member("a", broker.bootstrap(), group, topic, cfg)) {
            GroupAwait.await("a alone", SETTLE, 6, ALL6, a::owned);
            int aEvents = a.eventCount();
            try (Member bm = new Member("b", broker.bootstrap(), group, topic, cfg)) {
                GroupAwait.await("a and b", SETTLE, 6, HALVES, a::owned, bm::owned);
                // cooperative: a revoked exactly what b got, and kept the rest throughout
                assertEquals(bm.owned(), a.revokedSince(aEvents), a.events().toString());
                Set<Integer> aBefore = a.owned();
                Set<Integer> bBefore = bm.owned();
                int aMark = a.eventCount();
                int bMark = bm.eventCount();
                try (Member c = new Member("c", broker.bootstrap(), group, topic, cfg)) {
                    GroupAwait.await("a, b and c", SETTLE, 6, THIRDS, a::owned, bm::owned, c::owned);
                    assertTrue(aBefore.containsAll(a.owned()), "sticky: " + aBefore + " -> " + a.owned());
                    assertTrue(bBefore.containsAll(bm.owned()), "sticky: " + bBefore + " -> " + bm.owned());
                    assertEquals(1, a.revokedSince(aMark).size(), a.events().toString());
                    assertEquals(1, bm.revokedSince(bMark).size(), bm.events().toString());
                    assertEquals("cooperative-sticky", describe(group).partitionAssignor());
                    aMark = a.eventCount();
                    bMark = bm.eventCount();
                    aBefore = a.owned();
                    bBefore = bm.owned();
                }
                GroupAwait.await("a and b after c left", SETTLE, 6, HALVES, a::owned, bm::owned);
                // nobody had to give anything up for c's partitions to move
                assertEquals(Set.of(), a.revokedSince(aMark), a.events().toString());
                assertEquals(Set.of(), bm.revokedSince(bMark), bm.events().toString());
                assertTrue(a.owned().containsAll(aBefore) && bm.owned().containsAll(bBefore));
            }
            assertNull(a.error());
        }
    }

    @Test
    void killedMemberInAChildJvmIsRemovedAfterItsSessionTimeout() {
        String topic = Kit.name("kill");
        String group = Kit.name("g-kill");
        Kit.createTopic(broker.bootstrap(), topic, 6);
        int sessionMs = 3000;
        Object[] cfg = conf(RANGE, sessionMs);
        try (Member a = new Member("a", broker.bootstrap(), group, topic, cfg);
             ChildMember child = new ChildMember(broker.bootstrap(), group, topic,
                     "partition.assignment.strategy=" + RANGE, "session.timeout.ms=" + sessionMs,
                     "heartbeat.interval.ms=300", "group.protocol=classic")) {
            try {
                GroupAwait.await("a and the child", Duration.ofSeconds(30), 6, HALVES, a::owned, child::owned);
                assertEquals(2, describe(group).members().size());
                long killedAt = System.nanoTime();
                child.kill();
                GroupAwait.await("a alone after the kill", Duration.ofSeconds(20), 6, ALL6, a::owned);
                long took = (System.nanoTime() - killedAt) / 1_000_000;
                // removed by the session timeout (at most one heartbeat interval early), not by the disconnect
                assertTrue(took >= sessionMs - 700, "the killed member was removed after " + took + " ms");
                ConsumerGroupDescription d = describe(group);
                assertEquals(1, d.members().size());
                assertEquals(ConsumerGroupState.STABLE, d.state());
                assertNull(a.error());
            } catch (AssertionError e) {
                System.out.println("child member output:\n" + child.output());
                throw e;
            }
        }
    }

    @Test
    void staticMemberRejoinsWithoutRebalance() {
        String topic = Kit.name("static");
        String group = Kit.name("g-static");
        Kit.createTopic(broker.bootstrap(), topic, 6);
        Object[] cfgA = conf(RANGE, 15_000, "group.instance.id", "instance-a");
        Object[] cfgB = conf(RANGE, 15_000, "group.instance.id", "instance-b");
        try (Member a = new Member("a", broker.bootstrap(), group, topic, cfgA)) {
            Set<Integer> bOwned;
            int bGeneration;
            String bMemberId;
            try (Member bm = new Member("b", broker.bootstrap(), group, topic, cfgB)) {
                GroupAwait.await("a and b", SETTLE, 6, HALVES, a::owned, bm::owned);
                Kit.waitUntil("b's generation", SETTLE,
                        () -> bm.metadata() != null && a.metadata() != null
                                && bm.metadata().generationId() == a.metadata().generationId());
                bOwned = bm.owned();
                bGeneration = bm.metadata().generationId();
                bMemberId = bm.metadata().memberId();
                ConsumerGroupDescription d = describe(group);
                Map<String, String> instances = new HashMap<>();
                for (MemberDescription m : d.members()) {
                    instances.put(m.groupInstanceId().orElse("?"), m.consumerId());
                }
                assertEquals(Set.of("instance-a", "instance-b"), instances.keySet());
            }
            // b closed: a static member sends no LeaveGroup, the broker keeps its partitions for it
            int aGeneration = a.metadata().generationId();
            int aEvents = a.eventCount();
            try (Member b2 = new Member("b2", broker.bootstrap(), group, topic, cfgB)) {
                Kit.waitUntil("b2 gets b's partitions", SETTLE, () -> b2.owned().equals(bOwned),
                        () -> "b2 owns " + b2.owned() + ", b owned " + bOwned);
                Kit.waitUntil("b2's group metadata", SETTLE, () -> b2.metadata() != null
                        && b2.metadata().generationId() > 0);
                assertEquals(bGeneration, b2.metadata().generationId(), "no new generation");
                assertTrue(!b2.metadata().memberId().equals(bMemberId), "a new member id for the new incarnation");
                assertEquals(aGeneration, a.metadata().generationId());
                assertEquals(aEvents, a.eventCount(), "a saw no rebalance: " + a.events());
                assertEquals(2, describe(group).members().size());
            }
        }
    }

    @Test
    void commitSyncAndAsyncWithMetadata() {
        String topic = Kit.name("commits");
        String group = Kit.name("g-commits");
        Kit.createTopic(broker.bootstrap(), topic, 2);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, b("k"), b("p0-" + i)));
                p.send(new ProducerRecord<>(topic, 1, b("k"), b("p1-" + i)));
            }
            p.flush();
        }
        Map<TopicPartition, OffsetAndMetadata> expected = Map.of(
                p0, new OffsetAndMetadata(5, "meta-0"), p1, new OffsetAndMetadata(7, "meta-\u00e9"));
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), group, conf(RANGE, 6000))) {
            c.subscribe(List.of(topic));
            Kit.pollExactly(c, 20, SETTLE);
            c.commitSync(); // the positions
            assertEquals(Map.of(p0, "10:", p1, "10:"), Kit.offsets(c.committed(Set.of(p0, p1))));
            c.commitSync(Map.of(p0, expected.get(p0)));
            AtomicReference<Object> done = new AtomicReference<>();
            c.commitAsync(Map.of(p1, expected.get(p1)), (offsets, e) -> done.set(e == null ? offsets : e));
            Kit.waitUntil("commitAsync callback", Duration.ofSeconds(10), () -> {
                c.poll(Duration.ofMillis(20));
                return done.get() != null;
            });
            assertEquals(Map.of(p1, expected.get(p1)), done.get());
            assertEquals(Kit.offsets(expected), Kit.offsets(c.committed(Set.of(p0, p1))));
        }
        // a new member of the group resumes at the committed offsets
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), group, conf(RANGE, 6000))) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 8, SETTLE);
            assertEquals(5, got.stream().filter(r -> r.partition() == 0).mapToLong(ConsumerRecord::offset).min().orElse(-1));
            assertEquals(7, got.stream().filter(r -> r.partition() == 1).mapToLong(ConsumerRecord::offset).min().orElse(-1));
            assertEquals("p1-7", Kit.s(got.stream().filter(r -> r.offset() == 7 && r.partition() == 1)
                    .findFirst().orElseThrow().value()));
        }
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            assertEquals(Kit.offsets(expected),
                    Kit.offsets(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())));
        }
    }
}
