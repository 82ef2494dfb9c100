package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static org.apache.kafka.common.acl.AclOperation.ALTER;
import static org.apache.kafka.common.acl.AclOperation.ALTER_CONFIGS;
import static org.apache.kafka.common.acl.AclOperation.CLUSTER_ACTION;
import static org.apache.kafka.common.acl.AclOperation.CREATE;
import static org.apache.kafka.common.acl.AclOperation.DELETE;
import static org.apache.kafka.common.acl.AclOperation.DESCRIBE;
import static org.apache.kafka.common.acl.AclOperation.DESCRIBE_CONFIGS;
import static org.apache.kafka.common.acl.AclOperation.IDEMPOTENT_WRITE;
import static org.apache.kafka.common.acl.AclOperation.READ;
import static org.apache.kafka.common.acl.AclOperation.WRITE;
import static org.apache.kafka.common.resource.PatternType.LITERAL;
import static org.apache.kafka.common.resource.PatternType.PREFIXED;
import static org.apache.kafka.common.resource.ResourceType.CLUSTER;
import static org.apache.kafka.common.resource.ResourceType.GROUP;
import static org.apache.kafka.common.resource.ResourceType.TOPIC;
import static org.apache.kafka.common.resource.ResourceType.TRANSACTIONAL_ID;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.Future;
import java.util.stream.Collectors;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.CreateAclsResult;
import org.apache.kafka.clients.admin.DeleteAclsResult;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.SecurityDisabledException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.errors.TransactionalIdAuthorizationException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * ACLs ({@code --authorizer}, Kafka's StandardAuthorizer rules) with kafka-clients: the admin
 * client's createAcls / describeAcls / deleteAcls with each pattern type, and the producer,
 * consumer and admin client as different SASL users, allowed (records round-trip byte-exact)
 * and refused (the client's own authorization exception, awaited with a bound, never
 * concluded from a sleep).
 *
 * <p>{@link #broker}: PLAINTEXT and SASL_PLAINTEXT listeners, {@code --authorizer},
 * {@code --super-users User:admin}, users admin, alice, bob, carol, dave and erin (each
 * password is {@code <user>-pw}); the clients use the SASL listener, each user with its own
 * mechanism so the three are covered. Every test names its own topics, groups and
 * transactional ids; a user's ACLs are chosen so that no test changes what another test
 * sees: bob never gets WRITE or IDEMPOTENT_WRITE (he is the idempotent producer refused
 * with CLUSTER_AUTHORIZATION_FAILED), carol's cluster ACLs are granted in the one test that
 * looks at them. {@link #open}: no {@code --authorizer}, the ACL APIs answer
 * SECURITY_DISABLED. Skipped under COMPAT_BROKER=kafka ({@code --listeners}).
 */
class AclTest {
    static final int PLAINTEXT_PORT = Broker.freePort();
    static final int SASL_PORT = Broker.freePort();
    /**
     * For a manual comparison with another broker (the reference Kafka with a SASL_PLAINTEXT
     * listener, the StandardAuthorizer and these PLAIN users): {@code -Dacl.saslBootstrap=HOST:PORT}
     * points the clients at it instead of {@link #broker} (which still starts, so
     * {@link #aclsSurviveARestart} restarts Klamm, not that broker), {@code -Dacl.mechanism=PLAIN}
     * makes every user log in with that mechanism.
     */
    static final String SASL_BOOTSTRAP = System.getProperty("acl.saslBootstrap", "127.0.0.1:" + SASL_PORT);
    static final String MECHANISM = System.getProperty("acl.mechanism", "");

    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension(
            "--listeners", "PLAINTEXT://127.0.0.1:" + PLAINTEXT_PORT + ",SASL_PLAINTEXT://127.0.0.1:" + SASL_PORT,
            "--authorizer", "true",
            "--super-users", "User:admin",
            "--bootstrap-users",
            "admin:admin-pw,alice:alice-pw,bob:bob-pw,carol:carol-pw,dave:dave-pw,erin:erin-pw");

    @RegisterExtension
    static final BrokerExtension open = new BrokerExtension();

    static final Set<AclOperation> TOPIC_OPS =
            Set.of(READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS);
    static final Set<AclOperation> CLUSTER_OPS =
            Set.of(CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE);

    // ------------------------------------------------------------------ clients

    /** The SASL mechanism each user logs in with (all three over the run). */
    static String mechanism(String user) {
        if (!MECHANISM.isEmpty()) {
            return MECHANISM;
        }
        return switch (user) {
            case "alice", "dave" -> "SCRAM-SHA-256";
            case "bob", "erin" -> "SCRAM-SHA-512";
            default -> "PLAIN";
        };
    }

    static Object[] sasl(String user, Object... extra) {
        String mech = mechanism(user);
        String module = mech.equals("PLAIN") ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        List<Object> kv = new ArrayList<>(List.of(
                CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT",
                SaslConfigs.SASL_MECHANISM, mech,
                SaslConfigs.SASL_JAAS_CONFIG, module + " required username=\"" + user + "\" password=\"" + user + "-pw\";"));
        kv.addAll(List.of(extra));
        return kv.toArray();
    }

    static Admin admin(String user) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, SASL_BOOTSTRAP);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        Kit.put(p, sasl(user));
        return Admin.create(p);
    }

    static KafkaProducer<byte[], byte[]> producer(String user, Object... extra) {
        return Kit.producer(SASL_BOOTSTRAP, sasl(user, extra));
    }

    static KafkaConsumer<byte[], byte[]> consumer(String user, String group, Object... extra) {
        return Kit.consumer(SASL_BOOTSTRAP, group, sasl(user, extra));
    }

    // ------------------------------------------------------------------ ACLs

    static AclBinding acl(ResourceType type, String name, PatternType pattern, String principal,
                          AclOperation op, AclPermissionType permission) {
        return new AclBinding(new ResourcePattern(type, name, pattern),
                new AccessControlEntry(principal, "*", op, permission));
    }

    static AclBinding allow(ResourceType type, String name, PatternType pattern, String user, AclOperation op) {
        return acl(type, name, pattern, "User:" + user, op, AclPermissionType.ALLOW);
    }

    static AclBinding deny(ResourceType type, String name, PatternType pattern, String user, AclOperation op) {
        return acl(type, name, pattern, "User:" + user, op, AclPermissionType.DENY);
    }

    static Set<AclBinding> describe(Admin admin, AclBindingFilter filter) {
        return new HashSet<>(get(admin.describeAcls(filter).values()));
    }

    /** Creates the ACLs (as the super user) and waits (bounded) until describeAcls returns them. */
    static void grant(AclBinding... acls) {
        try (Admin root = admin("admin")) {
            get(root.createAcls(List.of(acls)).all());
            for (AclBinding acl : acls) {
                Kit.waitUntil("ACL " + acl + " described", Duration.ofSeconds(15),
                        () -> describe(root, acl.toFilter()).contains(acl));
            }
        }
    }

    static AclBindingFilter filter(ResourceType type, String name, PatternType pattern) {
        return new AclBindingFilter(new ResourcePatternFilter(type, name, pattern), AccessControlEntryFilter.ANY);
    }

    static AclBindingFilter filter(ResourceType type, String name, PatternType pattern, String principal) {
        return new AclBindingFilter(new ResourcePatternFilter(type, name, pattern),
                new AccessControlEntryFilter(principal, null, AclOperation.ANY, AclPermissionType.ANY));
    }

    static Set<AclBinding> only(Collection<AclBinding> acls, Set<String> principals) {
        return acls.stream().filter(a -> principals.contains(a.entry().principal())).collect(Collectors.toSet());
    }

    // ------------------------------------------------------------------ records and errors

    /** Three records: binary key, random value and headers; null key and empty value; a tombstone. */
    static List<ProducerRecord<byte[], byte[]>> records(String topic, long seed) {
        Random rnd = new Random(seed);
        byte[] key = new byte[256];
        for (int i = 0; i < key.length; i++) {
            key[i] = (byte) i;
        }
        byte[] value = new byte[10_000];
        rnd.nextBytes(value);
        RecordHeaders headers = new RecordHeaders();
        headers.add(new RecordHeader("h", b("1")));
        headers.add(new RecordHeader("h", new byte[] {0, (byte) 0xff}));
        headers.add(new RecordHeader("null", null));
        long ts = System.currentTimeMillis() - 5_000;
        return List.of(
                new ProducerRecord<>(topic, 0, ts, key, value, headers),
                new ProducerRecord<>(topic, 0, ts + 1, (byte[]) null, new byte[0]),
                new ProducerRecord<>(topic, 0, ts + 2, b("gone"), (byte[]) null));
    }

    static List<Long> produce(KafkaProducer<byte[], byte[]> producer, List<ProducerRecord<byte[], byte[]>> records) {
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        for (ProducerRecord<byte[], byte[]> r : records) {
            fs.add(producer.send(r));
        }
        producer.flush();
        List<Long> offsets = new ArrayList<>();
        for (Future<RecordMetadata> f : fs) {
            offsets.add(get(f).offset());
        }
        return offsets;
    }

    static void assertSameRecords(List<ProducerRecord<byte[], byte[]>> sent, List<ConsumerRecord<byte[], byte[]>> got,
                                  String via) {
        assertEquals(sent.size(), got.size(), "records read " + via);
        for (int i = 0; i < sent.size(); i++) {
            ProducerRecord<byte[], byte[]> s = sent.get(i);
            ConsumerRecord<byte[], byte[]> r = got.get(i);
            assertEquals(i, r.offset() - got.get(0).offset(), "offset of record " + i + " " + via);
            assertArrayEquals(s.key(), r.key(), "key of record " + i + " " + via);
            assertArrayEquals(s.value(), r.value(), "value of record " + i + " " + via);
            assertEquals(Kit.headers(s.headers()), Kit.headers(r.headers()), "headers of record " + i + " " + via);
            assertEquals(s.timestamp().longValue(), r.timestamp(), "timestamp of record " + i + " " + via);
        }
    }

    /** The records of partition 0 from the beginning, read by {@code user} without a group. */
    static List<ConsumerRecord<byte[], byte[]>> readBack(String user, String topic, int count, Object... extra) {
        try (KafkaConsumer<byte[], byte[]> c = consumer(user, null, extra)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            return Kit.pollExactly(c, count, Duration.ofSeconds(20));
        }
    }

    /** The exception a send ends in: thrown by send() or the future's cause. */
    static Throwable sendFailure(KafkaProducer<byte[], byte[]> p, ProducerRecord<byte[], byte[]> r) {
        Future<RecordMetadata> f;
        try {
            f = p.send(r);
        } catch (RuntimeException e) {
            return e;
        }
        return Kit.failure(f);
    }

    /** Polls until the consumer throws (bounded), returns that exception as {@code type}. */
    static <E extends Throwable> E pollUntilThrows(KafkaConsumer<byte[], byte[]> c, Class<E> type, String what) {
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (System.nanoTime() < deadline) {
            List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
            try {
                c.poll(Duration.ofMillis(100)).forEach(got::add);
            } catch (RuntimeException e) {
                return assertInstanceOf(type, e, what + ": " + e);
            }
            assertTrue(got.isEmpty(), what + ": records came back: " + got.size());
        }
        return fail(what + ": no exception from poll within 20 s");
    }

    // ------------------------------------------------------------------ the ACL APIs

    /**
     * createAcls / describeAcls / deleteAcls with LITERAL and PREFIXED bindings on topics,
     * groups, the cluster and transactional ids; describe filters by LITERAL, PREFIXED, ANY
     * (both, same name) and MATCH (literal name, the wildcard and every prefix of the name)
     * and by principal; deleteAcls returns what each filter removed. A CLUSTER binding not
     * named kafka-cluster and an empty resource name are INVALID_REQUEST, each on its own
     * binding (the others of the request are created). Principals are made up for this test
     * (User:&lt;token&gt;...), so no other test is affected and no other test's ACLs match.
     */
    @Test
    void createDescribeAndDeleteAclsByPatternType() {
        String tok = Kit.name("aclapi");
        String p1 = "User:" + tok + "-p1";
        String p2 = "User:" + tok + "-p2";
        Set<String> mine = Set.of(p1, p2);
        String lit = tok + "-orders";
        AclBinding litRead = acl(TOPIC, lit, LITERAL, p1, READ, AclPermissionType.ALLOW);
        AclBinding litPrefixed = acl(TOPIC, lit, PREFIXED, p1, DELETE, AclPermissionType.ALLOW);
        AclBinding preWrite = acl(TOPIC, tok + "-", PREFIXED, p1, WRITE, AclPermissionType.ALLOW);
        AclBinding preDeny = acl(TOPIC, tok + "-", PREFIXED, p2, READ, AclPermissionType.DENY);
        AclBinding star = acl(TOPIC, "*", LITERAL, p1, DESCRIBE, AclPermissionType.ALLOW);
        AclBinding group = acl(GROUP, tok + "-group", LITERAL, p2, READ, AclPermissionType.ALLOW);
        AclBinding groupPre = acl(GROUP, tok, PREFIXED, p1, DESCRIBE, AclPermissionType.ALLOW);
        AclBinding cluster = acl(CLUSTER, "kafka-cluster", LITERAL, p2, IDEMPOTENT_WRITE, AclPermissionType.ALLOW);
        AclBinding txn = acl(TRANSACTIONAL_ID, tok + "-tx", PREFIXED, p1, WRITE, AclPermissionType.ALLOW);
        AclBinding hosted = new AclBinding(new ResourcePattern(TOPIC, lit, LITERAL),
                new AccessControlEntry(p2, "10.0.0.7", WRITE, AclPermissionType.DENY));
        List<AclBinding> all = List.of(litRead, litPrefixed, preWrite, preDeny, star, group, groupPre, cluster, txn, hosted);

        AclBinding badCluster = acl(CLUSTER, "other-cluster", LITERAL, p1, ALTER, AclPermissionType.ALLOW);
        AclBinding emptyName = acl(TOPIC, "", LITERAL, p1, READ, AclPermissionType.ALLOW);
        try (Admin root = admin("admin")) {
            List<AclBinding> request = new ArrayList<>(all);
            request.add(badCluster);
            request.add(emptyName);
            CreateAclsResult created = root.createAcls(request);
            for (AclBinding a : all) {
                get(created.values().get(a));
            }
            assertInstanceOf(InvalidRequestException.class, Kit.failure(created.values().get(badCluster)),
                    "CLUSTER resource named other-cluster");
            assertInstanceOf(InvalidRequestException.class, Kit.failure(created.values().get(emptyName)),
                    "empty resource name");

            assertEquals(Set.copyOf(all), only(describe(root, AclBindingFilter.ANY), mine), "describeAcls(ANY)");
            assertEquals(Set.of(litRead, hosted), describe(root, filter(TOPIC, lit, LITERAL)), "LITERAL " + lit);
            assertEquals(Set.of(litPrefixed), describe(root, filter(TOPIC, lit, PREFIXED)), "PREFIXED " + lit);
            assertEquals(Set.of(litRead, litPrefixed, hosted), describe(root, filter(TOPIC, lit, PatternType.ANY)),
                    "ANY " + lit);
            assertEquals(Set.of(preWrite, preDeny), describe(root, filter(TOPIC, tok + "-", PREFIXED)),
                    "PREFIXED " + tok + "-");
            assertEquals(Set.of(litRead, litPrefixed, hosted, preWrite, preDeny, star),
                    only(describe(root, filter(TOPIC, lit, PatternType.MATCH)), mine), "MATCH " + lit);
            assertEquals(Set.of(preWrite, preDeny, star),
                    only(describe(root, filter(TOPIC, tok + "-other", PatternType.MATCH)), mine), "MATCH " + tok + "-other");
            assertEquals(Set.of(group, groupPre), only(describe(root, filter(GROUP, null, PatternType.ANY)), mine),
                    "every GROUP binding");
            assertEquals(Set.of(group, groupPre),
                    describe(root, filter(GROUP, tok + "-group", PatternType.MATCH, null)).stream()
                            .filter(a -> mine.contains(a.entry().principal())).collect(Collectors.toSet()),
                    "MATCH group " + tok + "-group");
            assertEquals(Set.of(cluster), describe(root, filter(CLUSTER, "kafka-cluster", LITERAL, p2)), "CLUSTER of " + p2);
            assertEquals(Set.of(txn), only(describe(root, filter(TRANSACTIONAL_ID, tok + "-tx-1", PatternType.MATCH)), mine),
                    "MATCH transactional id");
            assertEquals(Set.of(preDeny, group, cluster, hosted),
                    describe(root, filter(ResourceType.ANY, null, PatternType.ANY, p2)), "every binding of " + p2);
            assertEquals(Set.of(hosted), describe(root, new AclBindingFilter(ResourcePatternFilter.ANY,
                    new AccessControlEntryFilter(null, "10.0.0.7", AclOperation.ANY, AclPermissionType.ANY))),
                    "host 10.0.0.7");
            assertEquals(Set.of(preDeny, hosted), only(describe(root, new AclBindingFilter(ResourcePatternFilter.ANY,
                    new AccessControlEntryFilter(null, null, AclOperation.ANY, AclPermissionType.DENY))), mine), "DENY");

            // deleteAcls: each filter's result lists what it removed
            AclBindingFilter litOnly = filter(TOPIC, lit, LITERAL, p1);
            AclBindingFilter matchP1 = filter(TOPIC, tok + "-zzz", PatternType.MATCH, p1);
            DeleteAclsResult deleted = root.deleteAcls(List.of(litOnly, matchP1));
            assertEquals(Set.of(litRead), removed(deleted, litOnly), "deleted by LITERAL " + lit + " of " + p1);
            assertEquals(Set.of(preWrite, star), removed(deleted, matchP1), "deleted by MATCH " + tok + "-zzz of " + p1);
            assertEquals(Set.of(litPrefixed, preDeny, group, groupPre, cluster, txn, hosted),
                    only(describe(root, AclBindingFilter.ANY), mine), "left after the first deleteAcls");

            AclBindingFilter allP2 = filter(ResourceType.ANY, null, PatternType.ANY, p2);
            AclBindingFilter allP1 = filter(ResourceType.ANY, null, PatternType.ANY, p1);
            deleted = root.deleteAcls(List.of(allP2, allP1));
            assertEquals(Set.of(preDeny, group, cluster, hosted), removed(deleted, allP2), "deleted: every binding of " + p2);
            assertEquals(Set.of(litPrefixed, groupPre, txn), removed(deleted, allP1), "deleted: every binding of " + p1);
            assertEquals(Set.of(), only(describe(root, AclBindingFilter.ANY), mine), "left after deleting all");
            // a filter matching nothing removes nothing (no error)
            assertEquals(Set.of(), Set.copyOf(get(root.deleteAcls(List.of(allP1)).all())), "deleted again");
        }
    }

    static Set<AclBinding> removed(DeleteAclsResult result, AclBindingFilter filter) {
        Set<AclBinding> out = new HashSet<>();
        for (DeleteAclsResult.FilterResult r : get(result.values().get(filter)).values()) {
            assertNull(r.exception(), "per-binding error of " + filter);
            out.add(r.binding());
        }
        return out;
    }

    /**
     * The ACL APIs are cluster operations: a user without ALTER on the cluster gets
     * CLUSTER_AUTHORIZATION_FAILED from createAcls and deleteAcls
     * (ClusterAuthorizationException), and from describeAcls without DESCRIBE on the cluster;
     * with DESCRIBE (dave) describeAcls works and createAcls is still refused.
     */
    @Test
    void aclApisNeedClusterAlterOrDescribe() {
        String tok = Kit.name("aclauth");
        AclBinding wanted = allow(TOPIC, tok, LITERAL, "alice", READ);
        try (Admin alice = admin("alice")) {
            assertInstanceOf(ClusterAuthorizationException.class, Kit.failure(alice.createAcls(List.of(wanted)).all()),
                    "createAcls by alice");
            assertInstanceOf(ClusterAuthorizationException.class, Kit.failure(alice.describeAcls(AclBindingFilter.ANY).values()),
                    "describeAcls by alice");
            assertInstanceOf(ClusterAuthorizationException.class,
                    Kit.failure(alice.deleteAcls(List.of(wanted.toFilter())).all()), "deleteAcls by alice");
        }
        grant(allow(CLUSTER, "kafka-cluster", LITERAL, "dave", DESCRIBE));
        try (Admin dave = admin("dave")) {
            Set<AclBinding> seen = describe(dave, filter(CLUSTER, "kafka-cluster", LITERAL, "User:dave"));
            assertEquals(Set.of(allow(CLUSTER, "kafka-cluster", LITERAL, "dave", DESCRIBE)), seen, "describeAcls by dave");
            assertInstanceOf(ClusterAuthorizationException.class, Kit.failure(dave.createAcls(List.of(wanted)).all()),
                    "createAcls by dave (DESCRIBE only)");
        }
        try (Admin root = admin("admin")) {
            assertEquals(Set.of(), describe(root, wanted.toFilter()), "nothing was created");
        }
    }

    /** Without --authorizer, the three ACL APIs answer SECURITY_DISABLED (SecurityDisabledException). */
    @Test
    void aclApisWithoutAuthorizerAreSecurityDisabled() {
        AclBinding any = allow(TOPIC, "t", LITERAL, "alice", READ);
        try (Admin admin = Kit.admin(open.bootstrap())) {
            assertInstanceOf(SecurityDisabledException.class, Kit.failure(admin.createAcls(List.of(any)).all()), "createAcls");
            assertInstanceOf(SecurityDisabledException.class, Kit.failure(admin.describeAcls(AclBindingFilter.ANY).values()),
                    "describeAcls");
            assertInstanceOf(SecurityDisabledException.class, Kit.failure(admin.deleteAcls(List.of(any.toFilter())).all()),
                    "deleteAcls");
        }
    }

    // ------------------------------------------------------------------ produce and consume

    /**
     * alice (WRITE on the topic, no IDEMPOTENT_WRITE: WRITE on a topic is enough for the
     * default idempotent producer) produces; bob (READ on the topic, READ on the groups'
     * prefix) reads the records byte-exact in a classic group and, with 4.x clients, in a
     * consumer-protocol (KIP-848) group, commits, and fetches the committed offsets
     * (OffsetFetch: DESCRIBE, implied by READ).
     */
    @Test
    void allowedUsersRoundTripRecordsByteExact() {
        String topic = Kit.name("acl-rt");
        String groups = Kit.name("acl-rt-g");
        try (Admin root = admin("admin")) {
            Kit.createTopic(root, topic, 1);
        }
        grant(allow(TOPIC, topic, LITERAL, "alice", WRITE),
                allow(TOPIC, topic, LITERAL, "bob", READ),
                allow(GROUP, groups, PREFIXED, "bob", READ));
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, 42);
        try (KafkaProducer<byte[], byte[]> p = producer("alice")) {
            assertEquals(List.of(0L, 1L, 2L), produce(p, sent));
        }
        List<String> protocols = Kit.clientAtLeast(4, 0) ? List.of("classic", "consumer") : List.of("classic");
        for (String protocol : protocols) {
            String group = groups + "-" + protocol;
            try (KafkaConsumer<byte[], byte[]> c = consumer("bob", group, "group.protocol", protocol)) {
                c.subscribe(List.of(topic));
                assertSameRecords(sent, Kit.pollExactly(c, sent.size(), Duration.ofSeconds(20)),
                        "by bob in " + protocol + " group");
                c.commitSync();
            }
            try (Admin bob = admin("bob")) {
                Map<TopicPartition, OffsetAndMetadata> committed =
                        get(bob.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
                assertEquals(3L, committed.get(new TopicPartition(topic, 0)).offset(), "committed offset of " + group);
            }
        }
        assertSameRecords(sent, readBack("bob", topic, 3), "by bob, assigned");
    }

    /**
     * Refused topics: bob without any ACL on a topic gets TOPIC_AUTHORIZATION_FAILED from
     * Metadata; with DESCRIBE only, from Produce and Fetch. The producer's send and the
     * consumer's poll fail with TopicAuthorizationException naming the topic. DENY wins over
     * a PREFIXED ALLOW. Auto-creation through Metadata needs CREATE.
     */
    @Test
    void refusedTopicsGiveTopicAuthorizationException() {
        String hidden = Kit.name("acl-hidden");
        String described = Kit.name("acl-desc");
        String prefix = Kit.name("acl-deny");
        String denied = prefix + "-no";
        String allowed = prefix + "-yes";
        List<ProducerRecord<byte[], byte[]>> allowedRecords = records(allowed, 1);
        try (Admin root = admin("admin")) {
            for (String t : List.of(hidden, described, denied, allowed)) {
                Kit.createTopic(root, t, 1);
            }
            try (KafkaProducer<byte[], byte[]> p = producer("admin")) {
                for (String t : List.of(hidden, described, denied)) {
                    produce(p, records(t, 1));
                }
                produce(p, allowedRecords);
            }
        }
        grant(allow(TOPIC, described, LITERAL, "bob", DESCRIBE),
                allow(TOPIC, prefix, PREFIXED, "alice", READ),
                deny(TOPIC, denied, LITERAL, "alice", READ));

        // bob's producer is not idempotent: no InitProducerId, so the topic's error comes first
        try (KafkaProducer<byte[], byte[]> p = producer("bob", "enable.idempotence", "false", "acks", "1")) {
            for (String t : List.of(hidden, described)) {
                Throwable e = sendFailure(p, records(t, 2).get(0));
                TopicAuthorizationException tae = assertInstanceOf(TopicAuthorizationException.class, e, "bob producing to " + t);
                assertEquals(Set.of(t), tae.unauthorizedTopics(), "unauthorizedTopics of " + e);
            }
        }
        for (String t : List.of(hidden, described)) {
            try (KafkaConsumer<byte[], byte[]> c = consumer("bob", null)) {
                c.assign(List.of(new TopicPartition(t, 0)));
                c.seekToBeginning(List.of(new TopicPartition(t, 0)));
                TopicAuthorizationException tae = pollUntilThrows(c, TopicAuthorizationException.class, "bob reading " + t);
                assertEquals(Set.of(t), tae.unauthorizedTopics(), "unauthorizedTopics of " + tae);
            }
        }
        // DENY READ on the literal name wins over ALLOW READ on the prefix
        try (KafkaConsumer<byte[], byte[]> c = consumer("alice", null)) {
            c.assign(List.of(new TopicPartition(denied, 0)));
            c.seekToBeginning(List.of(new TopicPartition(denied, 0)));
            TopicAuthorizationException tae = pollUntilThrows(c, TopicAuthorizationException.class, "alice reading " + denied);
            assertEquals(Set.of(denied), tae.unauthorizedTopics());
        }
        assertSameRecords(allowedRecords, readBack("alice", allowed, 3), "by alice (prefixed ALLOW)");

        // auto-creation (allowAutoTopicCreation in Metadata) needs CREATE on the topic or the cluster
        String autoPrefix = Kit.name("acl-auto");
        grant(allow(TOPIC, autoPrefix, PREFIXED, "erin", WRITE));
        try (KafkaProducer<byte[], byte[]> p = producer("erin")) {
            String first = autoPrefix + "-1";
            Throwable e = sendFailure(p, new ProducerRecord<>(first, b("k"), b("v")));
            TopicAuthorizationException tae = assertInstanceOf(TopicAuthorizationException.class, e, "erin auto-creating " + first);
            assertEquals(Set.of(first), tae.unauthorizedTopics());
        }
        grant(allow(TOPIC, autoPrefix, PREFIXED, "erin", CREATE));
        String second = autoPrefix + "-2";
        try (KafkaProducer<byte[], byte[]> p = producer("erin")) {
            List<ProducerRecord<byte[], byte[]>> sent = List.of(new ProducerRecord<>(second, 0, 1_000L, b("k"), b("v")));
            assertEquals(List.of(0L), produce(p, sent));
        }
    }

    /**
     * Groups: without any ACL on the group, FindCoordinator is refused; with DESCRIBE only,
     * JoinGroup (classic) or ConsumerGroupHeartbeat (KIP-848, 4.x clients) is: both
     * GroupAuthorizationException naming the group. OffsetCommit needs READ on the topic as
     * well: with DESCRIBE only, commitSync fails with TopicAuthorizationException.
     */
    @Test
    void refusedGroupsGiveGroupAuthorizationException() {
        String topic = Kit.name("acl-grp");
        String described = Kit.name("acl-grp-desc");
        String none = Kit.name("acl-grp-none");
        String readable = Kit.name("acl-grp-read");
        String describedTopic = Kit.name("acl-grp-dtopic");
        try (Admin root = admin("admin")) {
            Kit.createTopic(root, topic, 1);
            Kit.createTopic(root, describedTopic, 1);
        }
        grant(allow(TOPIC, topic, LITERAL, "alice", READ),
                allow(GROUP, described, LITERAL, "alice", DESCRIBE),
                allow(GROUP, readable, LITERAL, "alice", READ),
                allow(TOPIC, describedTopic, LITERAL, "alice", DESCRIBE));
        List<String> protocols = Kit.clientAtLeast(4, 0) ? List.of("classic", "consumer") : List.of("classic");
        for (String protocol : protocols) {
            for (String group : List.of(none, described)) {
                try (KafkaConsumer<byte[], byte[]> c = consumer("alice", group, "group.protocol", protocol)) {
                    c.subscribe(List.of(topic));
                    GroupAuthorizationException e = pollUntilThrows(c, GroupAuthorizationException.class,
                            "alice in " + protocol + " group " + group);
                    assertEquals("Not authorized to access group: " + group, e.getMessage(), protocol);
                    if (protocol.equals("classic") || group.equals(none)) {
                        assertEquals(group, e.groupId(), protocol + ": groupId of " + e);
                    }
                    // (kafka-clients 4.4 rebuilds ConsumerGroupHeartbeat's error from its message alone:
                    // that exception has no groupId, whatever the broker)
                }
            }
        }
        try (KafkaConsumer<byte[], byte[]> c = consumer("alice", readable)) {
            TopicPartition tp = new TopicPartition(describedTopic, 0);
            c.assign(List.of(tp));
            TopicAuthorizationException e = assertThrows(TopicAuthorizationException.class,
                    () -> c.commitSync(Map.of(tp, new OffsetAndMetadata(0)), Duration.ofSeconds(20)),
                    "commit by alice without READ on " + describedTopic);
            assertEquals(Set.of(describedTopic), e.unauthorizedTopics());
        }
    }

    // ------------------------------------------------------------------ transactions and the cluster

    /**
     * Transactions: alice (WRITE on transactional ids with her prefix, WRITE on the topic,
     * READ on the group) commits a transaction with records and the group's offsets; a
     * read_committed reader gets the records byte-exact and the group has the offset. A
     * transactional id without ACL fails initTransactions (TransactionalIdAuthorizationException);
     * offsets for a group she cannot read fail sendOffsetsToTransaction (GroupAuthorizationException).
     */
    @Test
    void transactionalIdsAndTransactionalOffsets() {
        String topic = Kit.name("acl-txn");
        String txnPrefix = Kit.name("acl-tx");
        String group = Kit.name("acl-txn-g");
        String otherGroup = Kit.name("acl-txn-other");
        try (Admin root = admin("admin")) {
            Kit.createTopic(root, topic, 1);
        }
        grant(allow(TRANSACTIONAL_ID, txnPrefix, PREFIXED, "alice", WRITE),
                allow(TOPIC, topic, LITERAL, "alice", WRITE),
                allow(TOPIC, topic, LITERAL, "alice", READ), // TxnOffsetCommit: READ on the topic
                allow(GROUP, group, LITERAL, "alice", READ));

        List<ProducerRecord<byte[], byte[]>> sent = records(topic, 7);
        try (KafkaProducer<byte[], byte[]> p = producer("alice", "transactional.id", txnPrefix + "-1")) {
            p.initTransactions();
            p.beginTransaction();
            for (ProducerRecord<byte[], byte[]> r : sent) {
                p.send(r);
            }
            p.sendOffsetsToTransaction(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(3)),
                    new ConsumerGroupMetadata(group));
            p.commitTransaction();
        }
        assertSameRecords(sent, readBack("admin", topic, 3, "isolation.level", "read_committed"), "read_committed");
        try (Admin root = admin("admin")) {
            assertEquals(3L, get(root.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())
                    .get(new TopicPartition(topic, 0)).offset(), "transactional offset of " + group);
        }

        try (KafkaProducer<byte[], byte[]> p = producer("alice", "transactional.id", Kit.name("acl-notmine"))) {
            assertThrows(TransactionalIdAuthorizationException.class, p::initTransactions,
                    "initTransactions with a transactional id alice may not write");
        }
        try (KafkaProducer<byte[], byte[]> p = producer("alice", "transactional.id", txnPrefix + "-2")) {
            p.initTransactions();
            p.beginTransaction();
            get(p.send(new ProducerRecord<>(topic, 0, b("k"), b("aborted"))));
            GroupAuthorizationException e = assertThrows(GroupAuthorizationException.class,
                    () -> p.sendOffsetsToTransaction(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(1)),
                            new ConsumerGroupMetadata(otherGroup)),
                    "offsets for " + otherGroup);
            assertEquals(otherGroup, e.groupId());
            p.abortTransaction();
        }
        // the aborted record is not read committed
        assertSameRecords(sent, readBack("admin", topic, 3, "isolation.level", "read_committed"),
                "read_committed after the abort");
    }

    /**
     * The idempotent producer's InitProducerId needs IDEMPOTENT_WRITE on the cluster or WRITE
     * on some topic: bob (DESCRIBE on the topic, no WRITE anywhere) fails with
     * ClusterAuthorizationException; erin with IDEMPOTENT_WRITE gets a producer id, and her
     * Produce (DESCRIBE, no WRITE) is refused on the topic instead.
     */
    @Test
    void idempotentProducerWithoutWriteAnywhereIsClusterAuthorizationFailure() {
        String topic = Kit.name("acl-idem");
        try (Admin root = admin("admin")) {
            Kit.createTopic(root, topic, 1);
        }
        grant(allow(TOPIC, topic, LITERAL, "bob", DESCRIBE),
                allow(TOPIC, topic, LITERAL, "erin", DESCRIBE),
                allow(CLUSTER, "kafka-cluster", LITERAL, "erin", IDEMPOTENT_WRITE));
        try (KafkaProducer<byte[], byte[]> p = producer("bob")) {
            Throwable e = sendFailure(p, new ProducerRecord<>(topic, 0, b("k"), b("v")));
            // When the refused InitProducerId lands before send(), send() itself throws
            // "at least one previous ... request has failed" with the refusal as its cause.
            if (!(e instanceof ClusterAuthorizationException) && e != null
                    && e.getCause() instanceof ClusterAuthorizationException) {
                e = e.getCause();
            }
            assertInstanceOf(ClusterAuthorizationException.class, e, "bob's idempotent producer");
        }
        try (KafkaProducer<byte[], byte[]> p = producer("erin")) {
            Throwable e = sendFailure(p, new ProducerRecord<>(topic, 0, b("k"), b("v")));
            TopicAuthorizationException tae = assertInstanceOf(TopicAuthorizationException.class, e,
                    "erin's idempotent producer (IDEMPOTENT_WRITE, no WRITE on the topic)");
            assertEquals(Set.of(topic), tae.unauthorizedTopics());
        }
    }

    // ------------------------------------------------------------------ what a limited user sees

    /**
     * carol's view: listTopics omits the topic she cannot describe, describeTopics of it is
     * TopicAuthorizationException, describeTopics(includeAuthorizedOperations) of hers gives
     * {READ, DESCRIBE} (admin, a super user: every topic operation; not asked: null).
     * listConsumerGroups shows only the group she may describe until she has DESCRIBE on the
     * cluster. describeCluster(includeAuthorizedOperations): nothing without DESCRIBE on the
     * cluster, then {DESCRIBE}, then with ALTER (which implies DESCRIBE) {ALTER, DESCRIBE};
     * admin gets every cluster operation.
     */
    @Test
    @SuppressWarnings("deprecation")
    void limitedUserSeesOnlyWhatItMayDescribe() {
        String visible = Kit.name("acl-vis");
        String hidden = Kit.name("acl-hid");
        String visibleGroup = Kit.name("acl-vis-g");
        String hiddenGroup = Kit.name("acl-hid-g");
        try (Admin root = admin("admin")) {
            Kit.createTopic(root, visible, 1);
            Kit.createTopic(root, hidden, 1);
            for (String g : List.of(visibleGroup, hiddenGroup)) {
                get(root.alterConsumerGroupOffsets(g, Map.of(new TopicPartition(visible, 0), new OffsetAndMetadata(0))).all());
            }
            TopicDescription all = get(root.describeTopics(List.of(visible),
                    new DescribeTopicsOptions().includeAuthorizedOperations(true)).allTopicNames()).get(visible);
            assertEquals(TOPIC_OPS, all.authorizedOperations(), "admin's operations on " + visible);
            assertEquals(CLUSTER_OPS, get(root.describeCluster(new DescribeClusterOptions()
                    .includeAuthorizedOperations(true)).authorizedOperations()), "admin's cluster operations");
        }
        grant(allow(TOPIC, visible, LITERAL, "carol", READ),
                allow(GROUP, visibleGroup, LITERAL, "carol", DESCRIBE));
        try (Admin carol = admin("carol")) {
            Set<String> names = get(carol.listTopics().names());
            assertTrue(names.contains(visible), "listTopics by carol: " + names);
            assertFalse(names.contains(hidden), "listTopics by carol: " + names);

            Throwable e = Kit.failure(carol.describeTopics(List.of(hidden)).topicNameValues().get(hidden));
            assertInstanceOf(TopicAuthorizationException.class, e, "describeTopics(" + hidden + ") by carol");

            TopicDescription mine = get(carol.describeTopics(List.of(visible),
                    new DescribeTopicsOptions().includeAuthorizedOperations(true)).allTopicNames()).get(visible);
            assertEquals(Set.of(READ, DESCRIBE), mine.authorizedOperations(), "carol's operations on " + visible);
            assertEquals(1, mine.partitions().size());
            assertNull(get(carol.describeTopics(List.of(visible)).allTopicNames()).get(visible).authorizedOperations(),
                    "authorized operations not asked for");

            Set<String> groups = get(carol.listConsumerGroups().all()).stream()
                    .map(ConsumerGroupListing::groupId).collect(Collectors.toSet());
            assertTrue(groups.contains(visibleGroup), "listConsumerGroups by carol: " + groups);
            assertFalse(groups.contains(hiddenGroup), "listConsumerGroups by carol: " + groups);

            assertEquals(Set.of(), get(carol.describeCluster(new DescribeClusterOptions()
                    .includeAuthorizedOperations(true)).authorizedOperations()), "carol's cluster operations, no ACL");
            assertNull(get(carol.describeCluster().authorizedOperations()), "cluster operations not asked for");

            grant(allow(CLUSTER, "kafka-cluster", LITERAL, "carol", DESCRIBE));
            Set<String> all = get(carol.listConsumerGroups().all()).stream()
                    .map(ConsumerGroupListing::groupId).collect(Collectors.toSet());
            assertTrue(all.containsAll(List.of(visibleGroup, hiddenGroup)),
                    "listConsumerGroups by carol with DESCRIBE on the cluster: " + all);
            assertEquals(Set.of(DESCRIBE), get(carol.describeCluster(new DescribeClusterOptions()
                    .includeAuthorizedOperations(true)).authorizedOperations()), "carol's cluster operations, DESCRIBE");

            grant(allow(CLUSTER, "kafka-cluster", LITERAL, "carol", ALTER));
            assertEquals(Set.of(ALTER, DESCRIBE), get(carol.describeCluster(new DescribeClusterOptions()
                    .includeAuthorizedOperations(true)).authorizedOperations()), "carol's cluster operations, +ALTER");
        }
    }

    // ------------------------------------------------------------------ restart

    /**
     * ACLs are kept across a restart: what describeAcls returned before (after one of them was
     * deleted) it returns after, and they are enforced: alice reads, bob is refused.
     */
    @Test
    void aclsSurviveARestart() {
        String topic = Kit.name("acl-restart");
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, 99);
        try (Admin root = admin("admin")) {
            Kit.createTopic(root, topic, 1);
        }
        try (KafkaProducer<byte[], byte[]> p = producer("admin")) {
            produce(p, sent);
        }
        AclBinding read = allow(TOPIC, topic, LITERAL, "alice", READ);
        AclBinding prefixed = allow(TOPIC, topic, PREFIXED, "alice", DESCRIBE_CONFIGS);
        AclBinding gone = allow(TOPIC, topic, LITERAL, "bob", READ);
        grant(read, prefixed, gone);
        AclBindingFilter onTopic = filter(TOPIC, topic, PatternType.ANY);
        try (Admin root = admin("admin")) {
            assertEquals(List.of(gone), List.copyOf(get(root.deleteAcls(List.of(gone.toFilter())).all())));
            assertEquals(Set.of(read, prefixed), describe(root, onTopic));
        }

        broker.restart();

        try (Admin root = admin("admin")) {
            assertEquals(Set.of(read, prefixed), describe(root, onTopic), "after the restart");
        }
        assertSameRecords(sent, readBack("alice", topic, 3), "by alice after the restart");
        try (KafkaConsumer<byte[], byte[]> c = consumer("bob", null)) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            c.seekToBeginning(List.of(new TopicPartition(topic, 0)));
            TopicAuthorizationException e = pollUntilThrows(c, TopicAuthorizationException.class,
                    "bob after the restart (his ACL was deleted)");
            assertEquals(Set.of(topic), e.unauthorizedTopics());
        }
    }
}
