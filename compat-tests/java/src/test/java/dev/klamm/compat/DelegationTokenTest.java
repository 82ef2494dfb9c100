package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreateDelegationTokenOptions;
import org.apache.kafka.clients.admin.DescribeDelegationTokenOptions;
import org.apache.kafka.clients.admin.ExpireDelegationTokenOptions;
import org.apache.kafka.clients.admin.RenewDelegationTokenOptions;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.DelegationTokenDisabledException;
import org.apache.kafka.common.errors.DelegationTokenExpiredException;
import org.apache.kafka.common.errors.DelegationTokenNotFoundException;
import org.apache.kafka.common.errors.DelegationTokenOwnerMismatchException;
import org.apache.kafka.common.errors.InvalidPrincipalTypeException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.UnsupportedByAuthenticationException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.security.auth.KafkaPrincipal;
import org.apache.kafka.common.security.token.delegation.DelegationToken;
import org.apache.kafka.common.security.token.delegation.TokenInformation;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Delegation tokens (KIP-48): the four Admin APIs (CreateDelegationToken, RenewDelegationToken,
 * ExpireDelegationToken, DescribeDelegationToken) and SCRAM logins with a token
 * ({@code ScramLoginModule required username="<tokenId>" password="<base64 hmac>" tokenauth="true";}).
 *
 * <p>Three brokers, each with a PLAINTEXT and a SASL_PLAINTEXT listener ({@code --listeners}
 * on ports the test picks) and no authorizer:
 * <ul>
 *   <li>{@link #broker}: {@code --delegation-token-secret-key}, a max lifetime of 2 h and an
 *       expiry time of 1 h (not the defaults, so the timestamps show they are used);</li>
 *   <li>{@link #disabled}: no secret, so tokens are disabled;</li>
 *   <li>{@link #expiring}: an expiry time of 5 s and an expiry check interval of 1 s, for the
 *       sweep of expired tokens.</li>
 * </ul>
 * The users alice, bob and carol (password {@code <user>-pw}, SCRAM-SHA-256 and -512, 4096
 * iterations) are made by AlterUserScramCredentials over PLAINTEXT (not {@code
 * --bootstrap-users}), so the setup is the same on Klamm and Kafka.
 *
 * <p>Against the reference Kafka 4.4 ({@code COMPAT_BROKER=kafka}): {@link Broker} maps
 * {@code --listeners} of PLAINTEXT and SASL_PLAINTEXT listeners to Kafka's {@code listeners}
 * (plus a CONTROLLER listener), {@code listener.security.protocol.map}, SCRAM-SHA-256/512 on
 * SASL_PLAINTEXT with the server's ScramLoginModule JAAS entries, and the
 * {@code --delegation-token-*} flags to Kafka's {@code delegation.token.*} properties, so
 * {@code KAFKA_VERSIONS=4.4.0 COMPAT_BROKER=kafka compat-tests/java/run.sh -Dtest=DelegationTokenTest}
 * runs this class unchanged against Kafka.
 *
 * <p>Kafka applies token changes to a broker's cache after the controller commits them, so a
 * token may not authenticate (or still authenticate) for a moment after Create (or Expire)
 * returns; those waits are bounded ({@link #SETTLE}) and end on the positive signal.
 */
class DelegationTokenTest {
    static final String SECRET = "klamm-dt-s3cret";
    static final long MAX_LIFETIME_MS = 7_200_000;
    static final long EXPIRY_TIME_MS = 3_600_000;
    static final long SHORT_EXPIRY_MS = 5_000;
    static final long DEFAULT_MAX_LIFETIME_MS = 604_800_000;
    /** Bound for a token change to reach the broker's token cache (Kafka: metadata replay). */
    static final Duration SETTLE = Duration.ofSeconds(30);

    static final KafkaPrincipal ALICE = new KafkaPrincipal(KafkaPrincipal.USER_TYPE, "alice");
    static final KafkaPrincipal BOB = new KafkaPrincipal(KafkaPrincipal.USER_TYPE, "bob");
    static final KafkaPrincipal CAROL = new KafkaPrincipal(KafkaPrincipal.USER_TYPE, "carol");
    static final List<String> USERS = List.of("alice", "bob", "carol");

    /** A broker's two listeners. */
    record Ports(int plaintext, int sasl) {
        static Ports pick() {
            return new Ports(Broker.freePort(), Broker.freePort());
        }

        String listeners() {
            return "PLAINTEXT://127.0.0.1:" + plaintext + ",SASL_PLAINTEXT://127.0.0.1:" + sasl;
        }

        String plain() {
            return "127.0.0.1:" + plaintext;
        }

        String saslBootstrap() {
            return "127.0.0.1:" + sasl;
        }
    }

    static final Ports MAIN = Ports.pick();
    static final Ports DISABLED = Ports.pick();
    static final Ports EXPIRING = Ports.pick();

    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension(
            "--listeners", MAIN.listeners(),
            "--delegation-token-secret-key", SECRET,
            "--delegation-token-max-lifetime-ms", String.valueOf(MAX_LIFETIME_MS),
            "--delegation-token-expiry-time-ms", String.valueOf(EXPIRY_TIME_MS));

    @RegisterExtension
    static final BrokerExtension disabled = new BrokerExtension("--listeners", DISABLED.listeners());

    @RegisterExtension
    static final BrokerExtension expiring = new BrokerExtension(
            "--listeners", EXPIRING.listeners(),
            "--delegation-token-secret-key", SECRET,
            "--delegation-token-expiry-time-ms", String.valueOf(SHORT_EXPIRY_MS),
            "--delegation-token-expiry-check-interval-ms", "1000");

    @BeforeAll
    static void createUsers() {
        for (Ports ports : List.of(MAIN, DISABLED, EXPIRING)) {
            try (Admin admin = plainAdmin(ports)) {
                // one request per mechanism: Kafka refuses a user altered twice in one request
                for (ScramMechanism m : List.of(ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)) {
                    List<UserScramCredentialAlteration> upserts = new ArrayList<>();
                    for (String user : USERS) {
                        upserts.add(new UserScramCredentialUpsertion(user, new ScramCredentialInfo(m, 4096), user + "-pw"));
                    }
                    get(admin.alterUserScramCredentials(upserts).all());
                }
            }
            for (String user : USERS) {
                for (String m : List.of("SCRAM-SHA-256", "SCRAM-SHA-512")) {
                    Object[] auth = userAuth(m, user);
                    Kit.waitUntil(user + " logging in with " + m + " on " + ports.saslBootstrap(), SETTLE,
                            () -> loginFailure(ports, auth) == null);
                }
            }
        }
    }

    // ------------------------------------------------------------------ clients

    static Object[] scram(String mechanism, String username, String password, boolean token) {
        return new Object[] {
            CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT",
            SaslConfigs.SASL_MECHANISM, mechanism,
            SaslConfigs.SASL_JAAS_CONFIG, "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                    + username + "\" password=\"" + password + "\"" + (token ? " tokenauth=\"true\"" : "") + ";"};
    }

    static Object[] userAuth(String mechanism, String user) {
        return scram(mechanism, user, user + "-pw", false);
    }

    static Object[] tokenAuth(String mechanism, DelegationToken token) {
        return scram(mechanism, token.tokenInfo().tokenId(), token.hmacAsBase64String(), true);
    }

    static Admin admin(String bootstrap, Object... settings) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        Kit.put(p, settings);
        return Admin.create(p);
    }

    static Admin plainAdmin(Ports ports) {
        return admin(ports.plain());
    }

    /** A user's admin client on the SASL_PLAINTEXT listener (SCRAM-SHA-256 unless said). */
    static Admin userAdmin(Ports ports, String user) {
        return admin(ports.saslBootstrap(), userAuth("SCRAM-SHA-256", user));
    }

    static Admin userAdmin(Ports ports, String user, String mechanism) {
        return admin(ports.saslBootstrap(), userAuth(mechanism, user));
    }

    /**
     * One fresh connection's login (an admin client's describeCluster) with these settings on
     * the SASL_PLAINTEXT listener: null if it succeeded, the SaslAuthenticationException if the
     * login was refused; fails the test on any other error (a timeout is not taken as a refusal).
     */
    static SaslAuthenticationException loginFailure(Ports ports, Object... auth) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, ports.saslBootstrap());
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        Kit.put(p, auth);
        try (Admin a = Admin.create(p)) {
            a.describeCluster().clusterId().get(15, TimeUnit.SECONDS);
            return null;
        } catch (ExecutionException e) {
            if (e.getCause() instanceof SaslAuthenticationException s) {
                return s;
            }
            throw new AssertionError("login on " + ports.saslBootstrap() + ": unexpected failure", e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        } catch (TimeoutException e) {
            throw new AssertionError("login on " + ports.saslBootstrap() + ": no answer within 15 s", e);
        }
    }

    /** Waits (bounded) until a token login with this mechanism succeeds on a new connection. */
    static void awaitTokenLogin(Ports ports, DelegationToken token, String mechanism) {
        Kit.waitUntil("a " + mechanism + " login with token " + token.tokenInfo().tokenId(), SETTLE,
                () -> loginFailure(ports, tokenAuth(mechanism, token)) == null);
    }

    /** Waits (bounded) until a token login with this mechanism is refused; returns the refusal. */
    static SaslAuthenticationException awaitTokenRefused(Ports ports, DelegationToken token, String mechanism,
                                                         Duration bound) {
        SaslAuthenticationException[] refusal = new SaslAuthenticationException[1];
        Kit.waitUntil("a " + mechanism + " login with token " + token.tokenInfo().tokenId() + " to be refused", bound,
                () -> (refusal[0] = loginFailure(ports, tokenAuth(mechanism, token))) != null);
        return refusal[0];
    }

    // ------------------------------------------------------------------ token helpers

    static DelegationToken create(Admin admin, CreateDelegationTokenOptions options) {
        return get(admin.createDelegationToken(options).delegationToken());
    }

    /** describeDelegationToken: null owners = the default options (all tokens); by token id. */
    static Map<String, DelegationToken> describe(Admin admin, List<KafkaPrincipal> owners) {
        DescribeDelegationTokenOptions options = new DescribeDelegationTokenOptions();
        if (owners != null) {
            options.owners(owners);
        }
        Map<String, DelegationToken> out = new LinkedHashMap<>();
        for (DelegationToken t : get(admin.describeDelegationToken(options).delegationTokens())) {
            DelegationToken was = out.put(t.tokenInfo().tokenId(), t);
            assertTrue(was == null, "token " + t.tokenInfo().tokenId() + " described twice");
        }
        return out;
    }

    /** Waits (bounded) until describe() (all owners) as alice lists (or no longer lists) the token. */
    static void awaitDescribed(Ports ports, String tokenId, boolean listed) {
        try (Admin alice = userAdmin(ports, "alice")) {
            Kit.waitUntil("token " + tokenId + (listed ? " described" : " no longer described"), SETTLE,
                    () -> describe(alice, null).containsKey(tokenId) == listed);
        }
    }

    /** Kafka's DelegationTokenManager.createHmac: HmacSHA512 keyed by the secret's UTF-8 over the token id's UTF-8. */
    static byte[] expectedHmac(String tokenId) {
        try {
            Mac mac = Mac.getInstance("HmacSHA512");
            mac.init(new SecretKeySpec(SECRET.getBytes(StandardCharsets.UTF_8), "HmacSHA512"));
            return mac.doFinal(tokenId.getBytes(StandardCharsets.UTF_8));
        } catch (GeneralSecurityException e) {
            throw new AssertionError(e);
        }
    }

    static byte[] randomHmac() {
        byte[] h = new byte[64];
        new Random(42).nextBytes(h);
        return h;
    }

    static void assertBetween(long low, long high, long actual, String what) {
        assertTrue(actual >= low && actual <= high, what + ": " + actual + " not in [" + low + ", " + high + "]");
    }

    /** The described token is the created one: same id, hmac, owner, requester, timestamps; renewers as given. */
    static void assertSameToken(DelegationToken created, DelegationToken described, Set<KafkaPrincipal> renewers) {
        assertNotNull(described, "token " + created.tokenInfo().tokenId() + " not described");
        TokenInformation c = created.tokenInfo();
        TokenInformation d = described.tokenInfo();
        String id = c.tokenId();
        assertEquals(c.tokenId(), d.tokenId());
        assertArrayEquals(created.hmac(), described.hmac(), "described hmac of " + id);
        assertEquals(c.owner(), d.owner(), "described owner of " + id);
        assertEquals(c.tokenRequester(), d.tokenRequester(), "described requester of " + id);
        assertEquals(c.issueTimestamp(), d.issueTimestamp(), "described issue timestamp of " + id);
        assertEquals(c.expiryTimestamp(), d.expiryTimestamp(), "described expiry timestamp of " + id);
        assertEquals(c.maxTimestamp(), d.maxTimestamp(), "described max timestamp of " + id);
        assertEquals(renewers, new HashSet<>(d.renewers()), "described renewers of " + id);
    }

    /** The failure's cause, which must be of this type. */
    static <T extends Throwable> T fails(Class<T> type, org.apache.kafka.common.KafkaFuture<?> f, String what) {
        return assertInstanceOf(type, Kit.failure(f), what);
    }

    // ------------------------------------------------------------------ records

    static List<ProducerRecord<byte[], byte[]>> records(String topic, long seed) {
        Random rnd = new Random(seed);
        byte[] value = new byte[10_000];
        rnd.nextBytes(value);
        RecordHeaders headers = new RecordHeaders();
        headers.add(new RecordHeader("h", b("1")));
        headers.add(new RecordHeader("h", new byte[] {0, (byte) 0xff}));
        headers.add(new RecordHeader("null", null));
        long ts = System.currentTimeMillis() - 5_000;
        return List.of(
                new ProducerRecord<>(topic, 0, ts, new byte[] {0, 1, 2, (byte) 0xfe}, value, headers),
                new ProducerRecord<>(topic, 0, ts + 1, (byte[]) null, new byte[0]),
                new ProducerRecord<>(topic, 0, ts + 2, b("gone"), (byte[]) null));
    }

    static void assertSameRecords(List<ProducerRecord<byte[], byte[]>> sent, List<ConsumerRecord<byte[], byte[]>> got,
                                  String via) {
        assertEquals(sent.size(), got.size(), "records read " + via);
        for (int i = 0; i < sent.size(); i++) {
            ProducerRecord<byte[], byte[]> s = sent.get(i);
            ConsumerRecord<byte[], byte[]> r = got.get(i);
            assertEquals(i, r.offset(), "offset of record " + i + " " + via);
            assertEquals(s.timestamp(), r.timestamp(), "timestamp of record " + i + " " + via);
            assertArrayEquals(s.key(), r.key(), "key of record " + i + " " + via);
            assertArrayEquals(s.value(), r.value(), "value of record " + i + " " + via);
            assertEquals(Kit.headers(s.headers()), Kit.headers(r.headers()), "headers of record " + i + " " + via);
        }
    }

    // ------------------------------------------------------------------ tests

    /**
     * alice (SCRAM) creates a token with renewer bob: owner and requester User:alice, renewers
     * [User:bob], issue between the times before and after the call, expiry = issue + the
     * broker's expiry time, max = issue + its max lifetime, a 22-character URL-safe base64 id,
     * and the 64-byte HMAC-SHA512 of the id keyed by the secret. DescribeDelegationToken
     * returns the same token (the HMAC included). A smaller MaxLifetimeMs is honoured (and the
     * expiry is capped by it); a larger one is capped at the broker's max lifetime.
     */
    @Test
    @SuppressWarnings("deprecation") // maxlifeTimeMs: 3.x has no maxLifetimeMs
    void createdTokenCarriesEveryField() {
        try (Admin alice = userAdmin(MAIN, "alice")) {
            long before = System.currentTimeMillis();
            DelegationToken token = create(alice, new CreateDelegationTokenOptions().renewers(List.of(BOB)));
            long after = System.currentTimeMillis();
            TokenInformation info = token.tokenInfo();
            String id = info.tokenId();
            assertTrue(id.matches("[A-Za-z0-9_][A-Za-z0-9_-]{21}"), "token id (Kafka Uuid, URL-safe base64): " + id);
            assertEquals(ALICE, info.owner(), "owner");
            assertEquals(ALICE, info.tokenRequester(), "token requester");
            assertEquals(List.of(BOB), List.copyOf(info.renewers()), "renewers");
            assertBetween(before, after, info.issueTimestamp(), "issue timestamp");
            assertEquals(info.issueTimestamp() + EXPIRY_TIME_MS, info.expiryTimestamp(), "expiry = issue + expiry time");
            assertEquals(info.issueTimestamp() + MAX_LIFETIME_MS, info.maxTimestamp(), "max = issue + max lifetime");
            assertEquals(64, token.hmac().length, "hmac length");
            assertArrayEquals(expectedHmac(id), token.hmac(), "hmac = HmacSHA512(secret, tokenId)");

            awaitDescribed(MAIN, id, true);
            assertSameToken(token, describe(alice, null).get(id), Set.of(BOB));

            // MaxLifetimeMs below the broker's: max = issue + 60 s, and the expiry is capped by it
            DelegationToken shortLived = create(alice, new CreateDelegationTokenOptions().maxlifeTimeMs(60_000));
            TokenInformation s = shortLived.tokenInfo();
            assertEquals(ALICE, s.owner());
            assertEquals(List.of(), List.copyOf(s.renewers()));
            assertEquals(s.issueTimestamp() + 60_000, s.maxTimestamp(), "max with MaxLifetimeMs 60000");
            assertEquals(s.maxTimestamp(), s.expiryTimestamp(), "expiry capped by the max");
            assertArrayEquals(expectedHmac(s.tokenId()), shortLived.hmac());
            assertFalse(s.tokenId().equals(id), "a new token id");

            // MaxLifetimeMs above the broker's: the broker's max lifetime
            DelegationToken capped = create(alice, new CreateDelegationTokenOptions().maxlifeTimeMs(10 * MAX_LIFETIME_MS));
            TokenInformation c = capped.tokenInfo();
            assertEquals(c.issueTimestamp() + MAX_LIFETIME_MS, c.maxTimestamp(), "max with MaxLifetimeMs 10x the broker's");
            assertEquals(c.issueTimestamp() + EXPIRY_TIME_MS, c.expiryTimestamp());

            awaitDescribed(MAIN, c.tokenId(), true);
            Map<String, DelegationToken> all = describe(alice, null);
            assertSameToken(shortLived, all.get(s.tokenId()), Set.of());
            assertSameToken(capped, all.get(c.tokenId()), Set.of());
        }
    }

    /**
     * A producer and a group consumer that log in with the token (SCRAM with tokenauth=true)
     * round-trip three records byte-exact (key, value, headers, timestamps, offsets).
     */
    @ParameterizedTest
    @ValueSource(strings = {"SCRAM-SHA-256", "SCRAM-SHA-512"})
    void tokenAuthenticatedProducerAndConsumer(String mechanism) {
        DelegationToken token;
        try (Admin alice = userAdmin(MAIN, "alice", mechanism)) {
            token = create(alice, new CreateDelegationTokenOptions());
        }
        awaitTokenLogin(MAIN, token, mechanism);
        String topic = Kit.name("dt-" + mechanism.toLowerCase());
        try (Admin admin = plainAdmin(MAIN)) {
            Kit.createTopic(admin, topic, 1);
        }
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, mechanism.hashCode());
        try (KafkaProducer<byte[], byte[]> p = Kit.producer(MAIN.saslBootstrap(), tokenAuth(mechanism, token))) {
            List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
            for (ProducerRecord<byte[], byte[]> r : sent) {
                fs.add(p.send(r));
            }
            p.flush();
            for (int i = 0; i < fs.size(); i++) {
                assertEquals(i, get(fs.get(i)).offset(), "offset of record " + i + " produced with the token");
            }
        }
        try (KafkaConsumer<byte[], byte[]> c = Kit.consumer(MAIN.saslBootstrap(), Kit.name("dt-group"),
                tokenAuth(mechanism, token))) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(c, sent.size(), Kit.WAIT);
            assertSameRecords(sent, got, "by a " + mechanism + " token consumer");
            c.commitSync();
            assertEquals(sent.size(), c.committed(Set.of(new TopicPartition(topic, 0)))
                    .get(new TopicPartition(topic, 0)).offset(), "offset committed with the token");
        }
    }

    /**
     * A token session may not manage tokens: Create, Renew, Expire and Describe from an admin
     * client logged in with a token fail with UnsupportedByAuthenticationException, and so do
     * they over PLAINTEXT.
     */
    @Test
    void tokenSessionsAndPlaintextMayNotManageTokens() {
        DelegationToken token;
        try (Admin alice = userAdmin(MAIN, "alice")) {
            token = create(alice, new CreateDelegationTokenOptions().renewers(List.of(BOB)));
        }
        awaitTokenLogin(MAIN, token, "SCRAM-SHA-256");
        Map<String, Function<Ports, Admin>> clients = new LinkedHashMap<>();
        clients.put("a token session", ports -> admin(ports.saslBootstrap(), tokenAuth("SCRAM-SHA-256", token)));
        clients.put("PLAINTEXT", DelegationTokenTest::plainAdmin);
        clients.forEach((who, make) -> {
            try (Admin a = make.apply(MAIN)) {
                fails(UnsupportedByAuthenticationException.class,
                        a.createDelegationToken(new CreateDelegationTokenOptions()).delegationToken(), "create by " + who);
                fails(UnsupportedByAuthenticationException.class,
                        a.renewDelegationToken(token.hmac()).expiryTimestamp(), "renew by " + who);
                fails(UnsupportedByAuthenticationException.class,
                        a.expireDelegationToken(token.hmac(), new ExpireDelegationTokenOptions().expiryTimePeriodMs(1000))
                                .expiryTimestamp(), "expire by " + who);
                fails(UnsupportedByAuthenticationException.class,
                        a.describeDelegationToken().delegationTokens(), "describe by " + who);
            }
        });
        // nothing changed: the token still has its expiry and still logs in
        try (Admin alice = userAdmin(MAIN, "alice")) {
            assertSameToken(token, describe(alice, null).get(token.tokenInfo().tokenId()), Set.of(BOB));
        }
        assertEquals(null, loginFailure(MAIN, tokenAuth("SCRAM-SHA-256", token)), "token login after the refusals");
    }

    /**
     * Renew and expire: the renewer bob renews (a RenewPeriodMs of 10 min; the default -1 is
     * the broker's expiry time; a period above the expiry time is capped at it); carol, neither
     * owner nor renewer, gets DelegationTokenOwnerMismatchException on renew and expire; an
     * unknown HMAC is DelegationTokenNotFoundException. Expire with a period of 5 min sets the
     * expiry to now + 5 min; one past the max timestamp sets it to the max. Describe shows the
     * last expiry.
     */
    @Test
    void renewAndExpireFollowOwnershipAndPeriods() {
        DelegationToken token;
        try (Admin alice = userAdmin(MAIN, "alice")) {
            token = create(alice, new CreateDelegationTokenOptions().renewers(List.of(BOB)));
        }
        long max = token.tokenInfo().maxTimestamp();
        byte[] hmac = token.hmac();
        try (Admin bob = userAdmin(MAIN, "bob", "SCRAM-SHA-512");
             Admin carol = userAdmin(MAIN, "carol");
             Admin alice = userAdmin(MAIN, "alice")) {
            long before = System.currentTimeMillis();
            long expiry = get(bob.renewDelegationToken(hmac,
                    new RenewDelegationTokenOptions().renewTimePeriodMs(600_000)).expiryTimestamp());
            long after = System.currentTimeMillis();
            assertBetween(before + 600_000, after + 600_000, expiry, "expiry after bob's renew by 10 min");

            before = System.currentTimeMillis();
            expiry = get(bob.renewDelegationToken(hmac).expiryTimestamp());
            after = System.currentTimeMillis();
            assertBetween(before + EXPIRY_TIME_MS, after + EXPIRY_TIME_MS, expiry, "expiry after a renew with the default period");

            before = System.currentTimeMillis();
            expiry = get(alice.renewDelegationToken(hmac,
                    new RenewDelegationTokenOptions().renewTimePeriodMs(10 * EXPIRY_TIME_MS)).expiryTimestamp());
            after = System.currentTimeMillis();
            assertBetween(before + EXPIRY_TIME_MS, after + EXPIRY_TIME_MS, expiry,
                    "expiry after the owner's renew by 10x the expiry time (capped at the expiry time)");

            fails(DelegationTokenOwnerMismatchException.class, carol.renewDelegationToken(hmac).expiryTimestamp(),
                    "renew by carol (neither owner nor renewer)");
            fails(DelegationTokenOwnerMismatchException.class, carol.expireDelegationToken(hmac,
                    new ExpireDelegationTokenOptions().expiryTimePeriodMs(1000)).expiryTimestamp(), "expire by carol");
            fails(DelegationTokenOwnerMismatchException.class, carol.expireDelegationToken(hmac).expiryTimestamp(),
                    "expire(-1) by carol");
            fails(DelegationTokenNotFoundException.class, bob.renewDelegationToken(randomHmac()).expiryTimestamp(),
                    "renew of an unknown hmac");
            fails(DelegationTokenNotFoundException.class, alice.expireDelegationToken(randomHmac()).expiryTimestamp(),
                    "expire of an unknown hmac");

            before = System.currentTimeMillis();
            expiry = get(bob.expireDelegationToken(hmac,
                    new ExpireDelegationTokenOptions().expiryTimePeriodMs(300_000)).expiryTimestamp());
            after = System.currentTimeMillis();
            assertBetween(before + 300_000, after + 300_000, expiry, "expiry after bob's expire in 5 min");

            expiry = get(alice.expireDelegationToken(hmac,
                    new ExpireDelegationTokenOptions().expiryTimePeriodMs(10 * MAX_LIFETIME_MS)).expiryTimestamp());
            assertEquals(max, expiry, "expire with a period past the max timestamp: the max");

            long last = expiry;
            String id = token.tokenInfo().tokenId();
            Kit.waitUntil("the described expiry of " + id + " to be " + last, SETTLE,
                    () -> describe(alice, null).get(id).tokenInfo().expiryTimestamp() == last);
            TokenInformation d = describe(alice, null).get(id).tokenInfo();
            assertEquals(token.tokenInfo().issueTimestamp(), d.issueTimestamp());
            assertEquals(max, d.maxTimestamp());
        }
        awaitTokenLogin(MAIN, token, "SCRAM-SHA-512");
    }

    /**
     * DescribeDelegationToken: the default options (owners null) list every token (no
     * authorizer: any non-token user sees all); an empty owner list lists none; an owner filter
     * matches a token's owner, requester or renewers: User:alice matches alice's token (owner),
     * not carol's; User:carol only carol's; User:bob alice's (renewer), not carol's.
     */
    @Test
    void describeFiltersByOwnerRequesterAndRenewer() {
        DelegationToken alices;
        DelegationToken carols;
        try (Admin alice = userAdmin(MAIN, "alice"); Admin carol = userAdmin(MAIN, "carol")) {
            alices = create(alice, new CreateDelegationTokenOptions().renewers(List.of(BOB)));
            carols = create(carol, new CreateDelegationTokenOptions());
        }
        String a = alices.tokenInfo().tokenId();
        String c = carols.tokenInfo().tokenId();
        assertEquals(CAROL, carols.tokenInfo().owner());
        assertEquals(CAROL, carols.tokenInfo().tokenRequester());
        awaitDescribed(MAIN, a, true);
        awaitDescribed(MAIN, c, true);
        for (String user : List.of("alice", "bob", "carol")) {
            try (Admin admin = userAdmin(MAIN, user)) {
                Map<String, DelegationToken> all = describe(admin, null);
                assertSameToken(alices, all.get(a), Set.of(BOB));
                assertSameToken(carols, all.get(c), Set.of());

                assertEquals(Map.of(), describe(admin, List.of()), "describe with an empty owner list, as " + user);

                Map<String, DelegationToken> byAlice = describe(admin, List.of(ALICE));
                assertSameToken(alices, byAlice.get(a), Set.of(BOB));
                assertFalse(byAlice.containsKey(c), "owners [User:alice] as " + user + ": " + byAlice.keySet());
                byAlice.values().forEach(t -> assertTrue(t.tokenInfo().ownerOrRenewer(ALICE),
                        "owners [User:alice] lists " + t.tokenInfo()));

                Map<String, DelegationToken> byCarol = describe(admin, List.of(CAROL));
                assertSameToken(carols, byCarol.get(c), Set.of());
                assertFalse(byCarol.containsKey(a), "owners [User:carol] as " + user + ": " + byCarol.keySet());

                Map<String, DelegationToken> byBob = describe(admin, List.of(BOB));
                assertSameToken(alices, byBob.get(a), Set.of(BOB));
                assertFalse(byBob.containsKey(c), "owners [User:bob] as " + user + ": " + byBob.keySet());

                Map<String, DelegationToken> both = describe(admin, List.of(BOB, CAROL));
                assertTrue(both.containsKey(a) && both.containsKey(c), "owners [User:bob, User:carol]: " + both.keySet());
            }
        }
    }

    /**
     * CreateDelegationToken v3 with an owner: alice creates a token for User:bob (allowed with
     * no authorizer): owner bob, requester alice, in the response and in Describe. The owner
     * filter User:alice lists it (requester). bob (the owner) renews it; alice, its requester
     * but neither owner nor renewer, gets DelegationTokenOwnerMismatchException. The token logs in.
     */
    @Test
    void ownerGivenByTheRequester() {
        DelegationToken token;
        try (Admin alice = userAdmin(MAIN, "alice")) {
            token = create(alice, new CreateDelegationTokenOptions().owner(BOB));
        }
        TokenInformation info = token.tokenInfo();
        String id = info.tokenId();
        assertEquals(BOB, info.owner(), "owner");
        assertEquals(ALICE, info.tokenRequester(), "token requester");
        assertEquals(info.issueTimestamp() + EXPIRY_TIME_MS, info.expiryTimestamp());
        assertEquals(info.issueTimestamp() + MAX_LIFETIME_MS, info.maxTimestamp());
        assertArrayEquals(expectedHmac(id), token.hmac());
        awaitDescribed(MAIN, id, true);
        try (Admin alice = userAdmin(MAIN, "alice"); Admin bob = userAdmin(MAIN, "bob")) {
            assertSameToken(token, describe(alice, null).get(id), Set.of());
            assertSameToken(token, describe(alice, List.of(ALICE)).get(id), Set.of());
            assertSameToken(token, describe(alice, List.of(BOB)).get(id), Set.of());
            assertFalse(describe(alice, List.of(CAROL)).containsKey(id), "owners [User:carol]");

            long before = System.currentTimeMillis();
            long expiry = get(bob.renewDelegationToken(token.hmac(),
                    new RenewDelegationTokenOptions().renewTimePeriodMs(120_000)).expiryTimestamp());
            long after = System.currentTimeMillis();
            assertBetween(before + 120_000, after + 120_000, expiry, "expiry after the owner's renew");
            fails(DelegationTokenOwnerMismatchException.class, alice.renewDelegationToken(token.hmac()).expiryTimestamp(),
                    "renew by the requester alice (not owner or renewer)");
        }
        awaitTokenLogin(MAIN, token, "SCRAM-SHA-256");
    }

    /** A renewer of another principal type than User (beside a User one): InvalidPrincipalTypeException. */
    @Test
    void groupRenewerIsInvalidPrincipalType() {
        try (Admin alice = userAdmin(MAIN, "alice")) {
            fails(InvalidPrincipalTypeException.class, alice.createDelegationToken(new CreateDelegationTokenOptions()
                    .renewers(List.of(BOB, new KafkaPrincipal("Group", "x")))).delegationToken(), "renewer Group:x");
        }
    }

    /**
     * Expire with -1 removes the token at once (expiry = now); then a token login is refused
     * (SaslAuthenticationException with Kafka's generic SCRAM message), Describe no longer lists
     * it and renew is DelegationTokenNotFoundException. A login with the right token id but a
     * wrong HMAC, and one with the token id but without tokenauth, are refused too.
     */
    @Test
    void expiredTokenNoLongerAuthenticates() {
        DelegationToken token;
        try (Admin alice = userAdmin(MAIN, "alice")) {
            token = create(alice, new CreateDelegationTokenOptions());
        }
        String id = token.tokenInfo().tokenId();
        awaitTokenLogin(MAIN, token, "SCRAM-SHA-256");

        SaslAuthenticationException wrongHmac = loginFailure(MAIN,
                scram("SCRAM-SHA-256", id, java.util.Base64.getEncoder().encodeToString(randomHmac()), true));
        assertNotNull(wrongHmac, "a token login with a wrong hmac was accepted");
        assertTrue(wrongHmac.getMessage().contains("invalid credentials with SASL mechanism SCRAM-SHA-256"),
                wrongHmac.getMessage());
        SaslAuthenticationException noTokenauth = loginFailure(MAIN,
                scram("SCRAM-SHA-512", id, token.hmacAsBase64String(), false));
        assertNotNull(noTokenauth, "a login as user <tokenId> (no tokenauth) was accepted");
        assertTrue(noTokenauth.getMessage().contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
                noTokenauth.getMessage());

        try (Admin alice = userAdmin(MAIN, "alice")) {
            long before = System.currentTimeMillis();
            long expiry = get(alice.expireDelegationToken(token.hmac()).expiryTimestamp());
            long after = System.currentTimeMillis();
            assertBetween(before, after, expiry, "expiry returned by expire(-1)");
            fails(DelegationTokenNotFoundException.class, alice.renewDelegationToken(token.hmac()).expiryTimestamp(),
                    "renew after expire(-1)");
        }
        SaslAuthenticationException refused = awaitTokenRefused(MAIN, token, "SCRAM-SHA-256", SETTLE);
        assertTrue(refused.getMessage().contains("invalid credentials with SASL mechanism SCRAM-SHA-256"),
                "message: " + refused.getMessage());
        awaitDescribed(MAIN, id, false);
        assertNotNull(loginFailure(MAIN, tokenAuth("SCRAM-SHA-512", token)), "SCRAM-SHA-512 login after expire");
    }

    /**
     * A token past its max timestamp that the sweep has not removed yet (the main broker sweeps
     * every hour, Kafka's default): renew and expire with a period are
     * DelegationTokenExpiredException, Describe still lists it, expire(-1) removes it (expiry =
     * now) and renew is then DelegationTokenNotFoundException.
     */
    @Test
    @SuppressWarnings("deprecation") // maxlifeTimeMs: 3.x has no maxLifetimeMs
    void expiredButNotSweptToken() {
        try (Admin alice = userAdmin(MAIN, "alice")) {
            DelegationToken token = create(alice, new CreateDelegationTokenOptions().maxlifeTimeMs(1000));
            String id = token.tokenInfo().tokenId();
            long max = token.tokenInfo().maxTimestamp();
            assertEquals(token.tokenInfo().issueTimestamp() + 1000, max);
            assertEquals(max, token.tokenInfo().expiryTimestamp());
            awaitDescribed(MAIN, id, true);
            // time passes (a positive condition: the clock is past the token's max timestamp)
            Kit.waitUntil("the clock past " + max, Duration.ofSeconds(5), () -> System.currentTimeMillis() > max + 100);

            fails(DelegationTokenExpiredException.class, alice.renewDelegationToken(token.hmac()).expiryTimestamp(),
                    "renew of an expired token");
            fails(DelegationTokenExpiredException.class, alice.expireDelegationToken(token.hmac(),
                    new ExpireDelegationTokenOptions().expiryTimePeriodMs(60_000)).expiryTimestamp(),
                    "expire (60 s) of an expired token");
            assertSameToken(token, describe(alice, null).get(id), Set.of());

            long before = System.currentTimeMillis();
            long expiry = get(alice.expireDelegationToken(token.hmac()).expiryTimestamp());
            long after = System.currentTimeMillis();
            assertBetween(before, after, expiry, "expire(-1) of an expired token");
            fails(DelegationTokenNotFoundException.class, alice.renewDelegationToken(token.hmac()).expiryTimestamp(),
                    "renew after expire(-1)");
            Kit.waitUntil("token " + id + " no longer described", SETTLE, () -> !describe(alice, null).containsKey(id));
        }
    }

    /**
     * A broker with no secret: over SASL, Create, Renew, Expire and Describe are
     * DelegationTokenDisabledException; over PLAINTEXT the channel check comes first
     * (UnsupportedByAuthenticationException).
     */
    @Test
    void noSecretMeansTokensDisabled() {
        try (Admin alice = userAdmin(DISABLED, "alice")) {
            fails(DelegationTokenDisabledException.class,
                    alice.createDelegationToken(new CreateDelegationTokenOptions().renewers(List.of(BOB))).delegationToken(),
                    "create");
            fails(DelegationTokenDisabledException.class, alice.renewDelegationToken(randomHmac()).expiryTimestamp(), "renew");
            fails(DelegationTokenDisabledException.class, alice.expireDelegationToken(randomHmac()).expiryTimestamp(), "expire");
            fails(DelegationTokenDisabledException.class, alice.describeDelegationToken().delegationTokens(), "describe");
        }
        try (Admin plain = plainAdmin(DISABLED)) {
            fails(UnsupportedByAuthenticationException.class,
                    plain.createDelegationToken(new CreateDelegationTokenOptions()).delegationToken(), "create over PLAINTEXT");
            fails(UnsupportedByAuthenticationException.class,
                    plain.describeDelegationToken().delegationTokens(), "describe over PLAINTEXT");
        }
    }

    /**
     * The sweep: on a broker with an expiry time of 5 s and a check interval of 1 s, a token
     * (expiry = issue + 5 s, max = issue + the default 7 days) logs in, and within 30 s of its
     * expiry a login with it is refused, Describe no longer lists it and renew is
     * DelegationTokenNotFoundException.
     */
    @Test
    void expiredTokensAreSwept() {
        DelegationToken token;
        try (Admin alice = userAdmin(EXPIRING, "alice")) {
            token = create(alice, new CreateDelegationTokenOptions());
        }
        TokenInformation info = token.tokenInfo();
        assertEquals(info.issueTimestamp() + SHORT_EXPIRY_MS, info.expiryTimestamp(), "expiry = issue + 5 s");
        assertEquals(info.issueTimestamp() + DEFAULT_MAX_LIFETIME_MS, info.maxTimestamp(), "max = issue + 7 days (default)");
        // it logs in before it expires
        long expiry = info.expiryTimestamp();
        boolean loggedIn = false;
        while (!loggedIn && System.currentTimeMillis() < expiry - 500) {
            loggedIn = loginFailure(EXPIRING, tokenAuth("SCRAM-SHA-512", token)) == null;
        }
        assertTrue(loggedIn, "the token did not log in during its 5 s");

        SaslAuthenticationException refused = awaitTokenRefused(EXPIRING, token, "SCRAM-SHA-256",
                Duration.ofMillis(Math.max(0, expiry - System.currentTimeMillis())).plus(SETTLE));
        assertTrue(refused.getMessage().contains("invalid credentials with SASL mechanism SCRAM-SHA-256"),
                "message: " + refused.getMessage());
        awaitDescribed(EXPIRING, info.tokenId(), false);
        try (Admin alice = userAdmin(EXPIRING, "alice")) {
            fails(DelegationTokenNotFoundException.class, alice.renewDelegationToken(token.hmac()).expiryTimestamp(),
                    "renew of a swept token");
        }
    }
}
