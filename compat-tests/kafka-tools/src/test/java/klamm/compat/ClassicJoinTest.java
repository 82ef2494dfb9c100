package klamm.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.junit.jupiter.api.Test;

/**
 * Found with the Streams thread-replacement test (a replaced stream thread was expired right
 * after its first rebalance and had to join again): a classic-group member whose JoinGroup
 * waits longer than its own session timeout (the group waits for an old member that is gone
 * without leaving) must not be expired when the join completes. Kafka re-arms every
 * member's session timer when the join phase completes, so the member keeps its id. The
 * leader's assignor takes 300 ms here (Streams' takes as long), so its SyncGroup comes after
 * the coordinator's next session check.
 */
class ClassicJoinTest {
    /** The range assignor, taking 300 ms as Streams' assignor does (it calls the admin API). */
    public static class SlowRangeAssignor extends org.apache.kafka.clients.consumer.RangeAssignor {
        @Override
        public String name() {
            return "slow-range";
        }

        @Override
        public GroupAssignment assign(org.apache.kafka.common.Cluster metadata, GroupSubscription subscriptions) {
            try {
                Thread.sleep(300);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return super.assign(metadata, subscriptions);
        }
    }

    @Test
    void memberWaitingInJoinLongerThanItsSessionKeepsItsId() throws Exception {
        String t = "long-join", g = "long-join-group";
        try (Broker broker = Broker.start("join", Map.of()); Admin admin = broker.admin()) {
            Clients.createTopic(admin, t, 2, Map.of());
            Map<String, String> common = Map.of("heartbeat.interval.ms", "300",
                    "partition.assignment.strategy", SlowRangeAssignor.class.getName());
            // A: a 6 s session; it goes away without leaving the group (as a crashed process or
            // a Streams thread does)
            Map<String, String> aProps = new HashMap<>(common);
            aProps.put("session.timeout.ms", "6000");
            String aId;
            KafkaConsumer<String, String> a = Clients.consumer(broker.bootstrap(), g, aProps);
            try {
                a.subscribe(List.of(t));
                long deadline = System.currentTimeMillis() + 30_000;
                while (a.assignment().size() < 2 && System.currentTimeMillis() < deadline) a.poll(Duration.ofMillis(100));
                assertEquals(2, a.assignment().size(), "A owns both partitions");
                aId = a.groupMetadata().memberId();
            } finally {
                a.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.REMAIN_IN_GROUP)
                        .withTimeout(Duration.ofSeconds(5)));
            }
            // B: a 2 s session; its JoinGroup waits until A's session expires (~6 s), then B is
            // the leader and the only member.
            Map<String, String> bProps = new HashMap<>(common);
            bProps.put("session.timeout.ms", "2000");
            try (KafkaConsumer<String, String> b = Clients.consumer(broker.bootstrap(), g, bProps)) {
                b.subscribe(List.of(t));
                AtomicReference<String> bIdInJoin = new AtomicReference<>();
                long deadline = System.currentTimeMillis() + 40_000;
                while (b.assignment().size() < 2 && System.currentTimeMillis() < deadline) {
                    b.poll(Duration.ofMillis(100));
                    if (bIdInJoin.get() == null) {
                        List<String> ids = admin.describeConsumerGroups(List.of(g)).all().get().get(g).members().stream()
                                .map(MemberDescription::consumerId).filter(id -> !id.equals(aId))
                                .collect(Collectors.toList());
                        if (ids.size() == 1) bIdInJoin.set(ids.get(0));
                    }
                }
                assertEquals(2, b.assignment().size(), "B owns both partitions after A expired");
                assertNotNull(bIdInJoin.get(), "B was seen as a member while waiting in JoinGroup");
                assertEquals(bIdInJoin.get(), b.groupMetadata().memberId(),
                        "B was expired right after its JoinGroup completed and had to rejoin with a new member id");
            }
        }
    }
}
