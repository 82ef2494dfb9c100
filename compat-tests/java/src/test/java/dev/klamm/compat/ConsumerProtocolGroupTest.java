package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ConsumerGroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** KIP-848 consumer groups ({@code group.protocol=consumer}): kafka-clients 4.x only. */
class ConsumerProtocolGroupTest {
    static final int HEARTBEAT_MS = 500;
    static final int SESSION_MS = 4000;

    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension(
            "--group-consumer-heartbeat-interval-ms", String.valueOf(HEARTBEAT_MS),
            "--group-consumer-session-timeout-ms", String.valueOf(SESSION_MS));

    static final Duration SETTLE = Duration.ofSeconds(20);
    static final Object[] CFG = {"group.protocol", "consumer"};

    @BeforeEach
    void kip848Client() {
        Kit.assumeKip848Client();
    }

    private static ConsumerGroupDescription describe(String group) {
        try (Admin admin = Kit.admin(broker.bootstrap())) {
            return get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
        }
    }

    @Test
    void membersJoinAndLeaveWithServerSideAssignment() {
        String topic = Kit.name("cp");
        String group = Kit.name("g-cp");
        Kit.createTopic(broker.bootstrap(), topic, 6);
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < 6; i++) {
                p.send(new ProducerRecord<>(topic, i, b("k"), b("v" + i)));
            }
            p.flush();
        }
        try (Member a = new Member("a", broker.bootstrap(), group, topic, CFG)) {
            GroupAwait.await("a alone", SETTLE, 6, new int[] {6}, a::owned);
            Kit.waitUntil("a's 6 records", SETTLE, () -> a.recordsReceived() == 6);
            try (Member bm = new Member("b", broker.bootstrap(), group, topic, CFG)) {
                GroupAwait.await("a and b", SETTLE, 6, new int[] {3, 3}, a::owned, bm::owned);
                Set<Integer> aBefore = a.owned();
                Set<Integer> bBefore = bm.owned();
                long before;
                try (Member c = new Member("c", broker.bootstrap(), group, topic, CFG)) {
                    GroupAwait.await("a, b and c", SETTLE, 6, new int[] {2, 2, 2}, a::owned, bm::owned, c::owned);
                    assertTrue(aBefore.containsAll(a.owned()), "uniform is sticky: " + aBefore + " -> " + a.owned());
                    assertTrue(bBefore.containsAll(bm.owned()), "uniform is sticky: " + bBefore + " -> " + bm.owned());
                    ConsumerGroupDescription d = describe(group);
                    assertEquals(GroupType.CONSUMER, d.type());
                    assertEquals(3, d.members().size());
                    assertEquals("uniform", d.partitionAssignor());
                    assertEquals(ConsumerGroupState.STABLE, d.state());
                    // OffsetCommit with the member epoch
                    TopicPartition mine = new TopicPartition(topic, c.owned().iterator().next());
                    c.call(k -> {
                        k.commitSync(Map.of(mine, new OffsetAndMetadata(1, "by-c")));
                        return null;
                    });
                    assertEquals(Map.of(mine, "1:by-c"), Kit.offsets(c.call(k -> k.committed(Set.of(mine)))));
                    before = System.nanoTime();
                }
                // c left with member epoch -1: its partitions move long before its session would expire
                GroupAwait.await("a and b after c left", SETTLE, 6, new int[] {3, 3}, a::owned, bm::owned);
                long took = (System.nanoTime() - before) / 1_000_000;
                assertTrue(took < SESSION_MS, "reassignment after leaving took " + took + " ms");
                assertEquals(2, describe(group).members().size());
            }
            GroupAwait.await("a alone again", SETTLE, 6, new int[] {6}, a::owned);
            assertNull(a.error());
        }
    }

    @Test
    void killedMemberInAChildJvmIsRemovedAfterTheSessionTimeout() {
        String topic = Kit.name("cp-kill");
        String group = Kit.name("g-cp-kill");
        Kit.createTopic(broker.bootstrap(), topic, 4);
        try (Member a = new Member("a", broker.bootstrap(), group, topic, CFG);
             ChildMember child = new ChildMember(broker.bootstrap(), group, topic, "group.protocol=consumer")) {
            try {
                GroupAwait.await("a and the child", Duration.ofSeconds(30), 4, new int[] {2, 2}, a::owned, child::owned);
                long killedAt = System.nanoTime();
                child.kill();
                GroupAwait.await("a alone after the kill", Duration.ofSeconds(20), 4, new int[] {4}, a::owned);
                long took = (System.nanoTime() - killedAt) / 1_000_000;
                assertTrue(took >= SESSION_MS - HEARTBEAT_MS - 200,
                        "the killed member was removed after " + took + " ms (session timeout " + SESSION_MS + ")");
                assertEquals(1, describe(group).members().size());
                assertNull(a.error());
            } catch (AssertionError e) {
                System.out.println("child member output:\n" + child.output());
                throw e;
            }
        }
    }

    @Test
    void staticMemberGetsItsPartitionsBack() {
        String topic = Kit.name("cp-static");
        String group = Kit.name("g-cp-static");
        Kit.createTopic(broker.bootstrap(), topic, 4);
        Object[] cfgA = {"group.protocol", "consumer", "group.instance.id", "sa"};
        Object[] cfgB = {"group.protocol", "consumer", "group.instance.id", "sb"};
        try (Member a = new Member("a", broker.bootstrap(), group, topic, cfgA)) {
            Set<Integer> bOwned;
            try (Member bm = new Member("b", broker.bootstrap(), group, topic, cfgB)) {
                GroupAwait.await("a and b", SETTLE, 4, new int[] {2, 2}, a::owned, bm::owned);
                bOwned = bm.owned();
            }
            // b left with epoch -2 (static): its partitions stay reserved for its next incarnation
            int aEvents = a.eventCount();
            try (Member b2 = new Member("b2", broker.bootstrap(), group, topic, cfgB)) {
                Kit.waitUntil("b2 gets b's partitions", SETTLE, () -> b2.owned().equals(bOwned),
                        () -> "b2 owns " + b2.owned() + ", a " + a.owned() + ", b owned " + bOwned);
                assertEquals(aEvents, a.eventCount(), "a was not disturbed: " + a.events());
                assertEquals(2, describe(group).members().size());
            }
        }
    }
}
