package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.failure;
import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ConsumerGroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** AdminClient against one broker. */
class AdminTest {
    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension("--group-min-session-timeout-ms", "1000");

    static Admin admin;

    @BeforeAll
    static void open() {
        admin = Kit.admin(broker.bootstrap());
    }

    @AfterAll
    static void close() {
        if (admin != null) {
            admin.close(Duration.ofSeconds(5));
        }
    }

    private static int nodeId() {
        Collection<Node> nodes = get(admin.describeCluster().nodes());
        assertEquals(1, nodes.size(), nodes.toString());
        return nodes.iterator().next().id();
    }

    private static void produce(String topic, int partition, int count) {
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (int i = 0; i < count; i++) {
                p.send(new ProducerRecord<>(topic, partition, b("k" + i), b("v" + i)));
            }
            p.flush();
        }
    }

    // ------------------------------------------------------------------ cluster

    @Test
    void describeCluster() {
        DescribeClusterResult r = admin.describeCluster();
        Collection<Node> nodes = get(r.nodes());
        assertEquals(1, nodes.size());
        Node node = nodes.iterator().next();
        assertEquals("127.0.0.1:" + node.port(), broker.bootstrap());
        assertEquals("127.0.0.1", node.host());
        Node controller = get(r.controller());
        assertEquals(node.id(), controller.id());
        String clusterId = get(r.clusterId());
        assertNotNull(clusterId);
        assertFalse(clusterId.isEmpty());
    }

    // ------------------------------------------------------------------ topics

    @Test
    void createListDescribeAndDeleteTopics() {
        String t1 = Kit.name("adm-a");
        String t2 = Kit.name("adm-b");
        get(admin.createTopics(List.of(new NewTopic(t1, 3, (short) 1),
                new NewTopic(t2, 1, (short) 1).configs(Map.of("cleanup.policy", "compact")))).all());
        Set<String> names = get(admin.listTopics().names());
        assertTrue(names.containsAll(Set.of(t1, t2)), names.toString());

        Throwable dup = failure(admin.createTopics(List.of(new NewTopic(t1, 1, (short) 1))).all());
        assertInstanceOf(TopicExistsException.class, dup, String.valueOf(dup));

        int node = nodeId();
        Map<String, TopicDescription> d = get(admin.describeTopics(List.of(t1, t2)).allTopicNames());
        TopicDescription a = d.get(t1);
        assertEquals(t1, a.name());
        assertFalse(a.isInternal());
        assertNotNull(a.topicId());
        assertEquals(List.of(0, 1, 2), a.partitions().stream().map(TopicPartitionInfo::partition).toList());
        for (TopicPartitionInfo p : a.partitions()) {
            assertEquals(node, p.leader().id());
            assertEquals(List.of(node), p.replicas().stream().map(Node::id).toList());
            assertEquals(List.of(node), p.isr().stream().map(Node::id).toList());
        }
        assertEquals(1, d.get(t2).partitions().size());

        // createPartitions: 3 -> 5; decreasing is refused
        get(admin.createPartitions(Map.of(t1, NewPartitions.increaseTo(5))).all());
        Kit.waitUntil("5 partitions", Duration.ofSeconds(10), () ->
                get(admin.describeTopics(List.of(t1)).allTopicNames()).get(t1).partitions().size() == 5);
        Throwable down = failure(admin.createPartitions(Map.of(t1, NewPartitions.increaseTo(2))).all());
        assertInstanceOf(InvalidPartitionsException.class, down, String.valueOf(down));
        produce(t1, 4, 2); // the new partition takes records
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null)) {
            assertEquals(2L, c.endOffsets(List.of(new TopicPartition(t1, 4))).get(new TopicPartition(t1, 4)));
        }

        get(admin.deleteTopics(List.of(t1, t2)).all());
        Kit.waitUntil("deleted topics gone from listTopics", Duration.ofSeconds(10), () -> {
            Set<String> now = get(admin.listTopics().names());
            return !now.contains(t1) && !now.contains(t2);
        });
        Throwable gone = failure(admin.describeTopics(List.of(t1)).allTopicNames());
        assertInstanceOf(UnknownTopicOrPartitionException.class, gone, String.valueOf(gone));
        Throwable again = failure(admin.deleteTopics(List.of(t1)).all());
        assertInstanceOf(UnknownTopicOrPartitionException.class, again, String.valueOf(again));
    }

    // ------------------------------------------------------------------ configs

    /** Wait (bounded) until {@code name} has {@code value}: a KRaft broker applies changes asynchronously. */
    private static Map<String, ConfigEntry> awaitConfig(ConfigResource r, String name, String value) {
        Kit.waitUntil(r + " " + name + "=" + value, Duration.ofSeconds(10),
                () -> value.equals(configs(r).get(name).value()), () -> "now " + configs(r).get(name));
        return configs(r);
    }

    private static Map<String, ConfigEntry> configs(ConfigResource r) {
        Config c = get(admin.describeConfigs(List.of(r),
                new org.apache.kafka.clients.admin.DescribeConfigsOptions().includeSynonyms(true)).all()).get(r);
        return c.entries().stream().collect(Collectors.toMap(ConfigEntry::name, e -> e));
    }

    @Test
    void topicConfigsDescribeAndIncrementalAlter() {
        String t = Kit.name("adm-cfg");
        Kit.createTopic(admin, t, 1, "retention.ms", "3600000");
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        Map<String, ConfigEntry> e = configs(r);
        assertEquals("3600000", e.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, e.get("retention.ms").source());
        assertEquals("delete", e.get("cleanup.policy").value());
        assertEquals("0", e.get("min.compaction.lag.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, e.get("min.compaction.lag.ms").source());
        assertTrue(e.containsKey("max.message.bytes") && e.containsKey("segment.bytes"), e.keySet().toString());

        get(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", "500000"), AlterConfigOp.OpType.SET)))).all());
        e = awaitConfig(r, "max.message.bytes", "500000");
        assertEquals("7200000", e.get("retention.ms").value());
        assertEquals("delete,compact", e.get("cleanup.policy").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, e.get("cleanup.policy").source());
        assertEquals("500000", e.get("max.message.bytes").value());

        get(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.SUBTRACT),
                new AlterConfigOp(new ConfigEntry("retention.ms", null), AlterConfigOp.OpType.DELETE)))).all());
        e = awaitConfig(r, "cleanup.policy", "compact");
        assertEquals("compact", e.get("cleanup.policy").value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG == e.get("retention.ms").source()
                || ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG == e.get("retention.ms").source(), true,
                "retention.ms back to the broker's: " + e.get("retention.ms"));

        Throwable bad = failure(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all());
        assertInstanceOf(InvalidConfigurationException.class, bad, String.valueOf(bad));
        Throwable unknown = failure(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET)))).all());
        assertInstanceOf(InvalidConfigurationException.class, unknown, String.valueOf(unknown));
        assertEquals("compact", configs(r).get("cleanup.policy").value(), "a refused change changes nothing");

        // validateOnly
        get(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "1234"), AlterConfigOp.OpType.SET))),
                new org.apache.kafka.clients.admin.AlterConfigsOptions().validateOnly(true)).all());
        assertFalse("1234".equals(configs(r).get("retention.ms").value()));
    }

    /**
     * Group configs (KIP-848, KIP-932): a share group's `share.auto.offset.reset` and
     * `share.delivery.count.limit` set on a group that does not exist yet, as a share
     * consumer's setup does. ConfigResource.Type.GROUP is looked up by name, since older
     * kafka-clients lines have no such type.
     */
    @Test
    void groupConfigsIncrementalAlterAndDescribe() {
        ConfigResource.Type groupType;
        try {
            groupType = ConfigResource.Type.valueOf("GROUP");
        } catch (IllegalArgumentException e) {
            Assumptions.abort("no GROUP config resource in kafka-clients " + Kit.clientVersion());
            return;
        }
        ConfigResource r = new ConfigResource(groupType, Kit.name("share-cfg"));
        Map<String, ConfigEntry> e = configs(r);
        assertEquals("latest", e.get("share.auto.offset.reset").value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, e.get("share.auto.offset.reset").source());
        assertEquals("5", e.get("share.delivery.count.limit").value());

        get(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("share.delivery.count.limit", "3"), AlterConfigOp.OpType.SET)))).all());
        e = awaitConfig(r, "share.delivery.count.limit", "3");
        assertEquals("earliest", e.get("share.auto.offset.reset").value());
        assertEquals("DYNAMIC_GROUP_CONFIG", e.get("share.auto.offset.reset").source().name());

        Throwable outOfRange = failure(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("share.record.lock.duration.ms", "1000"), AlterConfigOp.OpType.SET)))).all());
        assertInstanceOf(InvalidConfigurationException.class, outOfRange, String.valueOf(outOfRange));
        assertEquals("share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive.", outOfRange.getMessage());
        Throwable bad = failure(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "first"), AlterConfigOp.OpType.SET)))).all());
        assertInstanceOf(InvalidConfigurationException.class, bad, String.valueOf(bad));
        Throwable unknown = failure(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("share.no.such", "1"), AlterConfigOp.OpType.SET)))).all());
        assertEquals("Unknown group config name: share.no.such", unknown.getMessage());

        get(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("share.delivery.count.limit", null), AlterConfigOp.OpType.DELETE)))).all());
        e = awaitConfig(r, "share.delivery.count.limit", "5");
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, e.get("share.delivery.count.limit").source());
        assertEquals("earliest", e.get("share.auto.offset.reset").value(), "a refused change changes nothing");
    }

    /** The legacy AlterConfigs API: Admin.alterConfigs was removed from kafka-clients 4.0. */
    @Test
    void legacyAlterConfigsReplacesTheTopicConfig() throws Exception {
        Method m;
        try {
            m = Admin.class.getMethod("alterConfigs", Map.class);
        } catch (NoSuchMethodException e) {
            Assumptions.abort("Admin.alterConfigs is gone in kafka-clients " + Kit.clientVersion());
            return;
        }
        String t = Kit.name("adm-legacy");
        Kit.createTopic(admin, t, 1, "retention.ms", "3600000", "cleanup.policy", "compact");
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        Object result;
        try {
            result = m.invoke(admin, Map.of(r, new Config(List.of(new ConfigEntry("retention.ms", "86400000")))));
        } catch (InvocationTargetException e) {
            throw (Exception) e.getCause();
        }
        @SuppressWarnings("unchecked")
        org.apache.kafka.common.KafkaFuture<Void> all =
                (org.apache.kafka.common.KafkaFuture<Void>) result.getClass().getMethod("all").invoke(result);
        get(all);
        Map<String, ConfigEntry> e = awaitConfig(r, "retention.ms", "86400000");
        assertEquals("86400000", e.get("retention.ms").value());
        // AlterConfigs replaces the whole set: cleanup.policy is back to its default
        assertEquals("delete", e.get("cleanup.policy").value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, e.get("cleanup.policy").source());
    }

    @Test
    void brokerConfigsDescribeAndDynamicAlter() {
        String id = String.valueOf(nodeId());
        ConfigResource b = new ConfigResource(ConfigResource.Type.BROKER, id);
        Map<String, ConfigEntry> e = configs(b);
        assertTrue(e.containsKey("message.max.bytes"), e.keySet().toString());
        assertTrue(e.containsKey("log.retention.ms"), e.keySet().toString());

        String t = Kit.name("adm-bcfg");
        Kit.createTopic(admin, t, 1);
        ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, t);
        try {
            get(admin.incrementalAlterConfigs(Map.of(b, List.of(new AlterConfigOp(
                    new ConfigEntry("log.retention.ms", "987654321"), AlterConfigOp.OpType.SET)))).all());
            ConfigEntry ret = awaitConfig(b, "log.retention.ms", "987654321").get("log.retention.ms");
            assertEquals("987654321", ret.value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, ret.source());
            // a topic without its own retention.ms inherits the dynamic broker value
            ConfigEntry topicRet = configs(topic).get("retention.ms");
            assertEquals("987654321", topicRet.value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, topicRet.source());

            // the cluster-wide default ("" broker)
            ConfigResource cluster = new ConfigResource(ConfigResource.Type.BROKER, "");
            get(admin.incrementalAlterConfigs(Map.of(cluster, List.of(new AlterConfigOp(
                    new ConfigEntry("log.retention.ms", "123456789"), AlterConfigOp.OpType.SET)))).all());
            assertEquals("987654321", configs(b).get("log.retention.ms").value(), "the per-broker value wins");
            get(admin.incrementalAlterConfigs(Map.of(b, List.of(new AlterConfigOp(
                    new ConfigEntry("log.retention.ms", null), AlterConfigOp.OpType.DELETE)))).all());
            ConfigEntry def = awaitConfig(b, "log.retention.ms", "123456789").get("log.retention.ms");
            assertEquals("123456789", def.value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, def.source());
            assertEquals("123456789", configs(topic).get("retention.ms").value());
        } finally {
            get(admin.incrementalAlterConfigs(Map.of(
                    b, List.of(new AlterConfigOp(new ConfigEntry("log.retention.ms", null), AlterConfigOp.OpType.DELETE)),
                    new ConfigResource(ConfigResource.Type.BROKER, ""),
                    List.of(new AlterConfigOp(new ConfigEntry("log.retention.ms", null), AlterConfigOp.OpType.DELETE))))
                    .all());
        }
        Kit.waitUntil("dynamic log.retention.ms removed", Duration.ofSeconds(10), () -> {
            ConfigEntry x = configs(b).get("log.retention.ms");
            return x.source() != ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG
                    && x.source() != ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG;
        });
        ConfigEntry back = configs(b).get("log.retention.ms");
        assertFalse(back.source() == ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG
                || back.source() == ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, back.toString());
    }

    /**
     * DescribeConfigs (v4, include_synonyms=true) for a broker lists every level in precedence
     * order, as Kafka does (KIP-226): the per-broker value, the cluster default, and
     * log.retention.hours=168 as DEFAULT_CONFIG. (Klamm listed only the value in force.)
     */
    @Test
    void brokerConfigSynonymsListEveryLevel() {
        String id = String.valueOf(nodeId());
        ConfigResource b = new ConfigResource(ConfigResource.Type.BROKER, id);
        ConfigResource cluster = new ConfigResource(ConfigResource.Type.BROKER, "");
        try {
            get(admin.incrementalAlterConfigs(Map.of(
                    b, List.of(new AlterConfigOp(new ConfigEntry("log.retention.ms", "987654321"), AlterConfigOp.OpType.SET)),
                    cluster, List.of(new AlterConfigOp(new ConfigEntry("log.retention.ms", "123456789"), AlterConfigOp.OpType.SET))))
                    .all());
            awaitConfig(b, "log.retention.ms", "987654321");
            Kit.waitUntil("both dynamic levels among the synonyms", Duration.ofSeconds(10), () ->
                    synonyms(configs(b).get("log.retention.ms")).size() >= 3,
                    () -> String.valueOf(configs(b).get("log.retention.ms").synonyms()));
            List<String> syn = synonyms(configs(b).get("log.retention.ms"));
            assertEquals(List.of("log.retention.ms=987654321@DYNAMIC_BROKER_CONFIG",
                    "log.retention.ms=123456789@DYNAMIC_DEFAULT_BROKER_CONFIG"), syn.subList(0, 2), syn.toString());
            assertEquals("log.retention.hours=168@DEFAULT_CONFIG", syn.get(syn.size() - 1), syn.toString());
        } finally {
            get(admin.incrementalAlterConfigs(Map.of(
                    b, List.of(new AlterConfigOp(new ConfigEntry("log.retention.ms", null), AlterConfigOp.OpType.DELETE)),
                    cluster, List.of(new AlterConfigOp(new ConfigEntry("log.retention.ms", null), AlterConfigOp.OpType.DELETE))))
                    .all());
        }
    }

    private static List<String> synonyms(ConfigEntry e) {
        return e.synonyms().stream().map(y -> y.name() + "=" + y.value() + "@" + y.source()).toList();
    }

    // ------------------------------------------------------------------ consumer groups

    @Test
    void consumerGroupsListDescribeOffsetsAndDelete() {
        String t = Kit.name("adm-grp");
        String group = Kit.name("g-adm");
        Kit.createTopic(admin, t, 2);
        produce(t, 0, 5);
        produce(t, 1, 5);
        TopicPartition p0 = new TopicPartition(t, 0);
        TopicPartition p1 = new TopicPartition(t, 1);
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), group, "client.id", "adm-client",
                "group.protocol", "classic", "session.timeout.ms", "6000", "heartbeat.interval.ms", "500")) {
            c.subscribe(List.of(t));
            Kit.pollExactly(c, 10, Duration.ofSeconds(20));
            c.commitSync(Map.of(p0, new OffsetAndMetadata(3, "m0"), p1, new OffsetAndMetadata(5, "m1")));

            Collection<ConsumerGroupListing> listed = get(admin.listConsumerGroups().all());
            ConsumerGroupListing mine = listed.stream().filter(l -> l.groupId().equals(group)).findFirst().orElseThrow();
            assertFalse(mine.isSimpleConsumerGroup());
            assertEquals(ConsumerGroupState.STABLE, mine.state().orElseThrow());

            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
            assertEquals(ConsumerGroupState.STABLE, d.state());
            assertEquals("range", d.partitionAssignor());
            assertEquals(nodeId(), d.coordinator().id());
            assertEquals(1, d.members().size());
            MemberDescription m = d.members().iterator().next();
            assertEquals("adm-client", m.clientId());
            assertEquals(Set.of(p0, p1), m.assignment().topicPartitions());
            assertEquals(c.groupMetadata().memberId(), m.consumerId());

            assertEquals(Map.of(p0, "3:m0", p1, "5:m1"),
                    Kit.offsets(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())));

            Throwable notEmpty = failure(admin.deleteConsumerGroups(List.of(group)).all());
            assertInstanceOf(GroupNotEmptyException.class, notEmpty, String.valueOf(notEmpty));
            Throwable active = failure(admin.alterConsumerGroupOffsets(group,
                    Map.of(p0, new OffsetAndMetadata(1))).all());
            assertInstanceOf(UnknownMemberIdException.class, active, String.valueOf(active));
            Throwable subscribed = failure(admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all());
            assertInstanceOf(GroupSubscribedToTopicException.class, subscribed, String.valueOf(subscribed));
        }
        // empty now (the consumer left)
        Kit.waitUntil("group empty", Duration.ofSeconds(10), () -> get(admin.describeConsumerGroups(List.of(group))
                .describedGroups().get(group)).state() == ConsumerGroupState.EMPTY);
        get(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1, "altered"))).all());
        assertEquals(Map.of(p0, "1:altered", p1, "5:m1"),
                Kit.offsets(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())));
        get(admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all());
        assertEquals(Map.of(p0, "1:altered"),
                Kit.offsets(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())));
        // a consumer of the group starts where the admin put it
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), group)) {
            c.assign(List.of(p0));
            ConsumerRecord<byte[], byte[]> first = Kit.pollExactly(c, 4, Duration.ofSeconds(10)).get(0);
            assertEquals(1L, first.offset());
        }
        get(admin.deleteConsumerGroups(List.of(group)).all());
        Collection<ConsumerGroupListing> after = get(admin.listConsumerGroups().all());
        assertTrue(after.stream().noneMatch(l -> l.groupId().equals(group)), after.toString());
        assertEquals(Map.of(), get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()));
    }

    // ------------------------------------------------------------------ records and offsets

    @Test
    void deleteRecordsMovesTheLogStartOffset() {
        String t = Kit.name("adm-delrec");
        Kit.createTopic(admin, t, 1);
        TopicPartition tp = new TopicPartition(t, 0);
        produce(t, 0, 10);
        long low = get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp)).lowWatermark();
        assertEquals(4, low);
        assertEquals(4L, get(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp)).offset());
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(broker.bootstrap(), null)) {
            assertEquals(4L, c.beginningOffsets(List.of(tp)).get(tp));
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, 6, Duration.ofSeconds(10));
            assertEquals(4L, got.get(0).offset());
            assertEquals("v4", Kit.s(got.get(0).value()));
        }
        Throwable beyond = failure(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(11))).all());
        assertInstanceOf(OffsetOutOfRangeException.class, beyond, String.valueOf(beyond));
        // -1: up to the high watermark
        assertEquals(10, get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(-1)))
                .lowWatermarks().get(tp)).lowWatermark());
    }

    @Test
    void listOffsetsEarliestLatestTimestampAndMaxTimestamp() {
        String t = Kit.name("adm-lo");
        Kit.createTopic(admin, t, 1);
        TopicPartition tp = new TopicPartition(t, 0);
        long base = System.currentTimeMillis() - 600_000;
        long[] ts = {base, base + 5000, base + 2000, base + 9000, base + 3000};
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap())) {
            for (long time : ts) {
                p.send(new ProducerRecord<>(t, 0, time, b("k"), b("v")));
            }
            p.flush();
        }
        assertEquals(0L, get(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp)).offset());
        assertEquals(5L, get(admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp)).offset());
        ListOffsetsResultInfo at = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 4000))).partitionResult(tp));
        assertEquals(1L, at.offset());
        assertEquals(base + 5000, at.timestamp());
        ListOffsetsResultInfo max = get(admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp));
        assertEquals(3L, max.offset());
        assertEquals(base + 9000, max.timestamp());
        ListOffsetsResultInfo none = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 10_000))).partitionResult(tp));
        assertEquals(-1L, none.offset());
    }

    @Test
    void describeLogDirsShowsThePartitionWithItsSize() {
        String t = Kit.name("adm-logdirs");
        Kit.createTopic(admin, t, 2);
        produce(t, 0, 20);
        TopicPartition p0 = new TopicPartition(t, 0);
        TopicPartition p1 = new TopicPartition(t, 1);
        int node = nodeId();
        Map<String, LogDirDescription> dirs = get(admin.describeLogDirs(List.of(node)).allDescriptions()).get(node);
        List<LogDirDescription> holding = dirs.values().stream()
                .filter(x -> x.replicaInfos().containsKey(p0)).toList();
        assertEquals(1, holding.size(), "one log dir holds the partition: " + dirs.keySet());
        LogDirDescription dir = holding.get(0);
        assertEquals(null, dir.error());
        ReplicaInfo r0 = dir.replicaInfos().get(p0);
        ReplicaInfo r1 = dir.replicaInfos().get(p1);
        assertNotNull(r0, dir.replicaInfos().keySet().toString());
        assertNotNull(r1);
        assertTrue(r0.size() > 20 * 4, "size of 20 records: " + r0.size());
        assertEquals(0, r1.size());
        assertFalse(r0.isFuture());
        assertEquals(0, r0.offsetLag());
    }

    // ------------------------------------------------------------------ producers and transactions

    @Test
    void describeProducersListAndDescribeTransactions() {
        String t = Kit.name("adm-txn");
        Kit.createTopic(admin, t, 1);
        TopicPartition tp = new TopicPartition(t, 0);
        produce(t, 0, 2); // offsets 0-1, an idempotent producer
        String tid = Kit.name("tid-adm");
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(broker.bootstrap(), "transactional.id", tid,
                "transaction.timeout.ms", "25000")) {
            p.initTransactions();
            p.beginTransaction();
            get(p.send(new ProducerRecord<>(t, 0, b("k"), b("in-txn-0"))));  // offset 2
            get(p.send(new ProducerRecord<>(t, 0, b("k"), b("in-txn-1"))));  // offset 3

            List<ProducerState> producers = get(admin.describeProducers(List.of(tp)).partitionResult(tp)).activeProducers();
            assertEquals(2, producers.size(), producers.toString());
            ProducerState txn = producers.stream().filter(s -> s.currentTransactionStartOffset().isPresent())
                    .findFirst().orElseThrow(() -> new AssertionError("no open transaction in " + producers));
            assertEquals(2L, txn.currentTransactionStartOffset().getAsLong());
            assertEquals(1, txn.lastSequence());
            ProducerState idem = producers.stream().filter(s -> s.currentTransactionStartOffset().isEmpty())
                    .findFirst().orElseThrow();
            assertEquals(1, idem.lastSequence());

            Collection<TransactionListing> listed = get(admin.listTransactions().all());
            TransactionListing l = listed.stream().filter(x -> x.transactionalId().equals(tid)).findFirst()
                    .orElseThrow(() -> new AssertionError(tid + " not in " + listed));
            assertEquals(TransactionState.ONGOING, l.state());
            assertEquals(txn.producerId(), l.producerId());

            TransactionDescription d = get(admin.describeTransactions(List.of(tid)).description(tid));
            assertEquals(TransactionState.ONGOING, d.state());
            assertEquals(txn.producerId(), d.producerId());
            assertEquals(txn.producerEpoch(), d.producerEpoch());
            assertEquals(25000, d.transactionTimeoutMs());
            assertTrue(d.transactionStartTimeMs().isPresent());
            assertEquals(Set.of(tp), d.topicPartitions());
            assertEquals(nodeId(), d.coordinatorId());

            p.commitTransaction();
            Kit.waitUntil("COMPLETE_COMMIT", Duration.ofSeconds(10), () ->
                    get(admin.describeTransactions(List.of(tid)).description(tid)).state() == TransactionState.COMPLETE_COMMIT);
            TransactionDescription done = get(admin.describeTransactions(List.of(tid)).description(tid));
            assertEquals(Set.of(), done.topicPartitions());
            Collection<TransactionListing> ongoing = get(admin.listTransactions(
                    new ListTransactionsOptions().filterStates(List.of(TransactionState.ONGOING))).all());
            assertTrue(ongoing.stream().noneMatch(x -> x.transactionalId().equals(tid)), ongoing.toString());
            Collection<TransactionListing> byPid = get(admin.listTransactions(
                    new ListTransactionsOptions().filterProducerIds(Set.of(txn.producerId()))).all());
            assertEquals(List.of(tid), byPid.stream().map(TransactionListing::transactionalId).toList());
        }
        List<ProducerState> after = get(admin.describeProducers(List.of(tp)).partitionResult(tp)).activeProducers();
        assertTrue(after.stream().allMatch(s -> s.currentTransactionStartOffset().isEmpty()), after.toString());
    }
}
