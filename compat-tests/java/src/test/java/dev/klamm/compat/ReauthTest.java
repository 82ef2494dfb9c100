package dev.klamm.compat;

import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import javax.crypto.Mac;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.crypto.spec.SecretKeySpec;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.config.SaslConfigs;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * SASL re-authentication (KIP-368) with {@code connections.max.reauth.ms} = 3 s (Klamm's
 * {@code --connections-max-reauth-ms 3000}).
 *
 * <p>One broker with a PLAINTEXT and a SASL_PLAINTEXT listener; the user alice (SCRAM-SHA-256
 * and -512, 4096 iterations) is made by AlterUserScramCredentials over PLAINTEXT, as in
 * {@link DelegationTokenTest}, so the setup is the same on Klamm and on Kafka
 * ({@code COMPAT_BROKER=kafka}: {@link Broker} maps the listeners and the flag to
 * {@code connections.max.reauth.ms}).
 *
 * <ul>
 *   <li>{@link #clientsReauthenticateAndKeepWorking}: a SCRAM-SHA-256 producer and a
 *       SCRAM-SHA-512 group consumer work for 10 s or more; the Java client re-authenticates
 *       each connection at 85-95 % of the session lifetime the broker returned in
 *       SaslAuthenticate, so both clients' own metrics must show at least two successful
 *       re-authentications, none failed, no connection closed, and every record must arrive
 *       byte-exact, in order.</li>
 *   <li>{@link #idleProducerReauthenticatesAfterItsSessionEnded}: the Java client re-authenticates
 *       only before it sends, so after an idle spell longer than the session its SaslHandshake
 *       comes after the session ended; Kafka re-authenticates such a connection (no retry, no
 *       reconnection).</li>
 *   <li>{@link #lateReauthenticationIsAccepted}: the same on a raw socket.</li>
 *   <li>{@link #expiredSessionIsDisconnected}: a raw socket logs in (SaslHandshake v1, two
 *       SaslAuthenticate v1 rounds of SCRAM-SHA-256 computed here), is told a session lifetime of
 *       at most 3 s, is served a Metadata request at once, and is disconnected (no response)
 *       when it sends one after the session ended without re-authenticating.</li>
 * </ul>
 */
class ReauthTest {
    static final long REAUTH_MS = 3_000;
    static final String USER = "alice";
    static final String PASSWORD = "alice-reauth-pw";
    /** The clients run at least this long: three session lifetimes. */
    static final Duration MIN_RUN = Duration.ofSeconds(10);
    /** ...and at most this long while waiting for the second re-authentication of each client. */
    static final Duration MAX_RUN = Duration.ofSeconds(30);
    static final long SEND_EVERY_MS = 200;

    static final int PLAIN_PORT = Broker.freePort();
    static final int SASL_PORT = Broker.freePort();

    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension(
            "--listeners", "PLAINTEXT://127.0.0.1:" + PLAIN_PORT + ",SASL_PLAINTEXT://127.0.0.1:" + SASL_PORT,
            "--connections-max-reauth-ms", String.valueOf(REAUTH_MS));

    static String plain() {
        return "127.0.0.1:" + PLAIN_PORT;
    }

    static String sasl() {
        return "127.0.0.1:" + SASL_PORT;
    }

    static Object[] scram(String mechanism) {
        return new Object[] {
            CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT",
            SaslConfigs.SASL_MECHANISM, mechanism,
            SaslConfigs.SASL_JAAS_CONFIG, "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                    + USER + "\" password=\"" + PASSWORD + "\";"};
    }

    @BeforeAll
    static void createUser() {
        try (Admin admin = Kit.admin(plain())) {
            // one request per mechanism: Kafka refuses a user altered twice in one request
            for (ScramMechanism m : List.of(ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)) {
                get(admin.alterUserScramCredentials(List.of(
                        new UserScramCredentialUpsertion(USER, new ScramCredentialInfo(m, 4096), PASSWORD))).all());
            }
        }
        // Kafka applies the credentials once the controller committed them: wait (bounded) for both logins
        for (String m : List.of("SCRAM-SHA-256", "SCRAM-SHA-512")) {
            Kit.waitUntil(USER + " logging in with " + m, Duration.ofSeconds(30), () -> logsIn(m));
        }
    }

    /** One admin client's describeCluster on the SASL listener: true if it logged in. */
    static boolean logsIn(String mechanism) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, sasl());
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        Kit.put(p, scram(mechanism));
        try (Admin a = Admin.create(p)) {
            a.describeCluster().clusterId().get(15, TimeUnit.SECONDS);
            return true;
        } catch (ExecutionException | TimeoutException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    // ------------------------------------------------------------------ metrics

    /** The value of the client-level metric {@code name} in {@code group} (exactly one such metric). */
    static double metric(Map<MetricName, ? extends Metric> metrics, String group, String name) {
        List<Double> found = new ArrayList<>();
        metrics.forEach((n, m) -> {
            if (n.group().equals(group) && n.name().equals(name)) {
                found.add(((Number) m.metricValue()).doubleValue());
            }
        });
        assertEquals(1, found.size(), "metrics " + group + "/" + name);
        return found.get(0);
    }

    /** The authentication metrics of one client, for assertion messages. */
    static Map<String, Double> authMetrics(Map<MetricName, ? extends Metric> metrics, String group) {
        Map<String, Double> out = new TreeMap<>();
        for (String name : List.of("successful-authentication-total", "failed-authentication-total",
                "successful-reauthentication-total", "failed-reauthentication-total",
                "successful-authentication-no-reauth-total", "reauthentication-latency-max",
                "connection-creation-total", "connection-close-total")) {
            out.put(name, metric(metrics, group, name));
        }
        return out;
    }

    // ------------------------------------------------------------------ tests

    /**
     * A SCRAM-SHA-256 producer sends one record every 200 ms (distinct keys, binary values)
     * while a SCRAM-SHA-512 group consumer polls, for at least 10 s (and until each client has
     * re-authenticated twice, 30 s at most). Then: every send succeeded (offsets 0..n-1 in order,
     * no record error, no retry), the consumer read all n byte-exact with the same offsets, and each
     * client's {@code successful-reauthentication-total} is at least 2 with
     * {@code failed-reauthentication-total}, {@code failed-authentication-total} and
     * {@code connection-close-total} 0 (Kafka 4.4: no connection closed; the consumer's
     * coordinator connection, used every 3 s by heartbeats, often re-authenticates just after its
     * session ended, see {@link #lateReauthenticationIsAccepted}).
     */
    @Test
    void clientsReauthenticateAndKeepWorking() throws Exception {
        String topic = Kit.name("reauth");
        Kit.createTopic(plain(), topic, 1);
        Random rnd = new Random(368);
        List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = Kit.producer(sasl(), scram("SCRAM-SHA-256"));
             KafkaConsumer<byte[], byte[]> consumer = Kit.consumer(sasl(), Kit.name("reauth-group"),
                     scram("SCRAM-SHA-512"))) {
            consumer.subscribe(List.of(topic));
            // joined (bounded) before the clock starts, so the loop below is all steady traffic
            Kit.waitUntil("the consumer assigned " + topic, Kit.WAIT, () -> {
                consumer.poll(Duration.ofMillis(100)).forEach(got::add);
                return !consumer.assignment().isEmpty();
            });

            long start = System.nanoTime();
            long nextSend = start;
            while (true) {
                long now = System.nanoTime();
                long elapsedMs = TimeUnit.NANOSECONDS.toMillis(now - start);
                if (elapsedMs >= MAX_RUN.toMillis()) {
                    break;
                }
                if (elapsedMs >= MIN_RUN.toMillis()
                        && metric(producer.metrics(), "producer-metrics", "successful-reauthentication-total") >= 2
                        && metric(consumer.metrics(), "consumer-metrics", "successful-reauthentication-total") >= 2) {
                    break;
                }
                if (now >= nextSend) {
                    int i = sent.size();
                    byte[] value = new byte[16 + rnd.nextInt(64)];
                    rnd.nextBytes(value);
                    ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, 0,
                            ("key-" + i).getBytes(StandardCharsets.UTF_8), value);
                    sent.add(r);
                    acks.add(producer.send(r));
                    nextSend += TimeUnit.MILLISECONDS.toNanos(SEND_EVERY_MS);
                }
                long waitMs = Math.max(1, Math.min(100, TimeUnit.NANOSECONDS.toMillis(nextSend - System.nanoTime())));
                consumer.poll(Duration.ofMillis(waitMs)).forEach(got::add);
            }
            long ranMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);

            // every send acknowledged, in order, with no error
            for (int i = 0; i < acks.size(); i++) {
                RecordMetadata md;
                try {
                    md = acks.get(i).get(30, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    throw new AssertionError("send of record " + i + " failed; producer "
                            + authMetrics(producer.metrics(), "producer-metrics"), e.getCause());
                }
                assertEquals(i, md.offset(), "offset of record " + i);
            }
            // the rest of the records (bounded)
            long deadline = System.nanoTime() + Kit.WAIT.toNanos();
            while (got.size() < sent.size() && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(100)).forEach(got::add);
            }

            Map<String, Double> p = authMetrics(producer.metrics(), "producer-metrics");
            Map<String, Double> c = authMetrics(consumer.metrics(), "consumer-metrics");
            String state = "after " + ranMs + " ms and " + sent.size() + " records; producer " + p + "; consumer " + c;
            System.out.println("ReauthTest: " + state);

            assertTrue(sent.size() >= MIN_RUN.toMillis() / SEND_EVERY_MS - 1, "records sent: " + state);
            assertEquals(0.0, metric(producer.metrics(), "producer-metrics", "record-error-total"),
                    "producer record-error-total: " + state);
            // a produce connection dropped with a request in flight would show as a retry
            assertEquals(0.0, metric(producer.metrics(), "producer-metrics", "record-retry-total"),
                    "producer record-retry-total: " + state);
            assertEquals(sent.size(), got.size(), "records consumed: " + state);
            for (int i = 0; i < sent.size(); i++) {
                ConsumerRecord<byte[], byte[]> r = got.get(i);
                assertEquals(i, r.offset(), "offset of consumed record " + i);
                assertArrayEquals(sent.get(i).key(), r.key(), "key of record " + i);
                assertArrayEquals(sent.get(i).value(), r.value(), "value of record " + i);
            }

            assertTrue(p.get("successful-reauthentication-total") >= 2,
                    "producer successful-reauthentication-total >= 2: " + state);
            assertTrue(c.get("successful-reauthentication-total") >= 2,
                    "consumer successful-reauthentication-total >= 2: " + state);
            assertEquals(0.0, p.get("failed-reauthentication-total"), "producer failed-reauthentication-total: " + state);
            assertEquals(0.0, c.get("failed-reauthentication-total"), "consumer failed-reauthentication-total: " + state);
            assertEquals(0.0, p.get("failed-authentication-total"), "producer failed-authentication-total: " + state);
            assertEquals(0.0, c.get("failed-authentication-total"), "consumer failed-authentication-total: " + state);
            // Kafka closes a connection only for a request other than SaslHandshake on an ended
            // session, and the Java client re-authenticates before anything else it sends then
            assertEquals(0.0, p.get("connection-close-total"), "producer connection-close-total: " + state);
            assertEquals(0.0, c.get("connection-close-total"), "consumer connection-close-total: " + state);
        }
    }

    /**
     * A raw connection that logs in with SCRAM-SHA-256 (SaslHandshake v1, SaslAuthenticate v1)
     * is told a session lifetime in (0, 3000] ms and the server's final SCRAM message proves the
     * server knows the password; a Metadata v1 request right after is answered. When it sends
     * another Metadata request 1 s after the session ended, without re-authenticating, the
     * broker closes the connection instead of answering (Kafka closes an expired connection at
     * its next request; a broker that closed it as the session ended passes too).
     */
    @Test
    void expiredSessionIsDisconnected() throws Exception {
        try (Wire wire = new Wire(SASL_PORT)) {
            Login login = login(wire, "login");
            System.out.println("ReauthTest: raw SCRAM-SHA-256 login, session lifetime " + login.lifetimeMs + " ms");

            // within the session: answered
            wire.call(3, 1, metadataAllTopics());

            // past the session (plus 1 s): no answer, the connection is closed
            login.sleepPastEnd(1_000);
            String outcome;
            try {
                int corr = wire.send(3, 1, metadataAllTopics());
                ByteBuffer answer = wire.receive(corr);
                outcome = "answered (" + answer.remaining() + " bytes)";
            } catch (EOFException e) {
                outcome = null; // closed
            } catch (SocketTimeoutException e) {
                outcome = "neither answered nor closed within " + Wire.READ_TIMEOUT_MS + " ms";
            } catch (IOException e) {
                outcome = null; // reset / broken pipe: closed
            }
            if (outcome != null) {
                fail("a Metadata request " + (login.lifetimeMs + 1_000)
                        + " ms after authentication (session lifetime " + login.lifetimeMs
                        + " ms, no re-authentication) was " + outcome + "; expected the connection closed");
            }
        }
    }

    /**
     * A re-authentication that starts after the session ended is still one: Kafka's SocketServer
     * hands a SaslHandshake on an authenticated connection to {@code maybeBeginServerReauthentication}
     * before it checks the session's expiry (only other requests on an expired session close the
     * connection). A raw connection logs in, waits 1 s past its session, re-authenticates
     * (SaslHandshake v1 and SCRAM-SHA-256 again: no error, a new session lifetime in (0, 3000])
     * and its next Metadata request is answered.
     */
    @Test
    void lateReauthenticationIsAccepted() throws Exception {
        try (Wire wire = new Wire(SASL_PORT)) {
            Login login = login(wire, "login");
            wire.call(3, 1, metadataAllTopics());
            login.sleepPastEnd(1_000);
            Login again;
            try {
                again = login(wire, "re-authentication 1 s after the session ended");
            } catch (EOFException e) {
                throw new AssertionError("the connection was closed at a re-authentication's SaslHandshake sent "
                        + (login.lifetimeMs + 1_000) + " ms after the login (session lifetime "
                        + login.lifetimeMs + " ms); Kafka re-authenticates it", e);
            }
            wire.call(3, 1, metadataAllTopics());
            // and the new session is one too: within it a request is answered (checked above),
            // past it the connection is closed
            again.sleepPastEnd(500);
            try {
                wire.call(3, 1, metadataAllTopics());
                fail("a Metadata request past the re-authenticated session was answered");
            } catch (IOException e) {
                // closed (EOF or reset), as expected; a read timeout is an IOException too: tell it apart
                if (e instanceof SocketTimeoutException) {
                    fail("neither answered nor closed within " + Wire.READ_TIMEOUT_MS + " ms");
                }
            }
        }
    }

    /**
     * The Java client re-authenticates a connection only when it has something to send on it,
     * so a client idle for longer than its session starts the re-authentication after the
     * session ended; the broker must accept it (as Kafka does, see
     * {@link #lateReauthenticationIsAccepted}). A SCRAM-SHA-512 producer sends a record, stays
     * idle 4.5 s (1.5 session lifetimes), sends another, idles again and sends a third: all three
     * acknowledged at offsets 0, 1, 2 with no retry and no error; at least 2 successful
     * re-authentications, none failed; and no connection was closed or made after the first
     * send (Kafka 4.4: none).
     */
    @Test
    void idleProducerReauthenticatesAfterItsSessionEnded() throws Exception {
        String topic = Kit.name("reauth-idle");
        Kit.createTopic(plain(), topic, 1);
        try (KafkaProducer<byte[], byte[]> producer = Kit.producer(sasl(), scram("SCRAM-SHA-512"))) {
            List<Long> offsets = new ArrayList<>();
            offsets.add(get(producer.send(new ProducerRecord<>(topic, 0, Kit.b("k0"), Kit.b("v0")))).offset());
            Map<String, Double> before = authMetrics(producer.metrics(), "producer-metrics");
            for (int i = 1; i <= 2; i++) {
                Thread.sleep(REAUTH_MS + REAUTH_MS / 2);
                offsets.add(get(producer.send(new ProducerRecord<>(topic, 0, Kit.b("k" + i), Kit.b("v" + i)))).offset());
            }
            Map<String, Double> after = authMetrics(producer.metrics(), "producer-metrics");
            String state = "producer after the first send " + before + "; at the end " + after;
            System.out.println("ReauthTest idle: " + state);
            assertEquals(List.of(0L, 1L, 2L), offsets, "offsets: " + state);
            assertEquals(0.0, metric(producer.metrics(), "producer-metrics", "record-error-total"), state);
            assertEquals(0.0, metric(producer.metrics(), "producer-metrics", "record-retry-total"),
                    "record-retry-total: " + state);
            assertTrue(after.get("successful-reauthentication-total") >= 2,
                    "successful-reauthentication-total >= 2: " + state);
            assertEquals(0.0, after.get("failed-reauthentication-total"), "failed-reauthentication-total: " + state);
            assertEquals(0.0, after.get("failed-authentication-total"), "failed-authentication-total: " + state);
            assertEquals(before.get("connection-close-total"), after.get("connection-close-total"),
                    "connection-close-total: " + state);
            assertEquals(before.get("connection-creation-total"), after.get("connection-creation-total"),
                    "connection-creation-total: " + state);
        }
        try (KafkaConsumer<byte[], byte[]> consumer = Kit.consumer(plain(), null)) {
            consumer.assign(List.of(new org.apache.kafka.common.TopicPartition(topic, 0)));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.pollExactly(consumer, 3, Kit.WAIT);
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(Kit.b("k" + i), got.get(i).key());
                assertArrayEquals(Kit.b("v" + i), got.get(i).value());
            }
        }
    }

    /** A completed raw SCRAM-SHA-256 login: the session lifetime the broker gave and when it ended. */
    record Login(long lifetimeMs, long authenticatedNanos) {
        /** Sleeps until {@code extraMs} after the session's end (measured from the final answer). */
        void sleepPastEnd(long extraMs) throws InterruptedException {
            long ms = lifetimeMs + extraMs - TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - authenticatedNanos);
            if (ms > 0) {
                Thread.sleep(ms);
            }
        }
    }

    /**
     * SaslHandshake v1 and two SaslAuthenticate v1 rounds of SCRAM-SHA-256 (the server's final
     * message checked): no errors, a session lifetime in (0, 3000] ms.
     */
    static Login login(Wire wire, String what) throws IOException, GeneralSecurityException {
        ByteBuffer hs = wire.call(17, 1, str16("SCRAM-SHA-256"));
        assertEquals(0, hs.getShort(), what + ": SaslHandshake error code");
        List<String> mechanisms = new ArrayList<>();
        for (int n = hs.getInt(); n > 0; n--) {
            mechanisms.add(readStr16(hs));
        }
        assertTrue(mechanisms.contains("SCRAM-SHA-256"), what + ": enabled mechanisms " + mechanisms);

        Scram scram = new Scram(USER, PASSWORD);
        SaslAuth first = SaslAuth.parse(wire.call(36, 1, bytes32(scram.clientFirst())));
        assertEquals(0, first.error, what + ": SaslAuthenticate #1: " + first.message);
        SaslAuth last = SaslAuth.parse(wire.call(36, 1, bytes32(scram.clientFinal(first.authBytes))));
        long authenticated = System.nanoTime();
        assertEquals(0, last.error, what + ": SaslAuthenticate #2: " + last.message);
        scram.verifyServerFinal(last.authBytes);
        assertTrue(last.sessionLifetimeMs > 0 && last.sessionLifetimeMs <= REAUTH_MS,
                what + ": session lifetime " + last.sessionLifetimeMs + " ms not in (0, " + REAUTH_MS + "]");
        return new Login(last.sessionLifetimeMs, authenticated);
    }

    // ------------------------------------------------------------------ raw wire

    /** A blocking connection speaking request header v1 / response header v0. */
    static final class Wire implements AutoCloseable {
        static final int READ_TIMEOUT_MS = 10_000;
        final Socket socket = new Socket();
        final DataInputStream in;
        final DataOutputStream out;
        int correlation;

        Wire(int port) throws IOException {
            socket.connect(new InetSocketAddress("127.0.0.1", port), 5_000);
            socket.setSoTimeout(READ_TIMEOUT_MS);
            socket.setTcpNoDelay(true);
            in = new DataInputStream(socket.getInputStream());
            out = new DataOutputStream(socket.getOutputStream());
        }

        int send(int apiKey, int version, byte[] body) throws IOException {
            int corr = ++correlation;
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            DataOutputStream d = new DataOutputStream(buf);
            d.writeShort(apiKey);
            d.writeShort(version);
            d.writeInt(corr);
            d.write(str16("reauth-raw"));
            d.write(body);
            out.writeInt(buf.size());
            buf.writeTo(out);
            out.flush();
            return corr;
        }

        /** The response body (after the correlation id, which must be {@code corr}). */
        ByteBuffer receive(int corr) throws IOException {
            int size = in.readInt();
            byte[] b = new byte[size];
            in.readFully(b);
            ByteBuffer buf = ByteBuffer.wrap(b);
            assertEquals(corr, buf.getInt(), "correlation id");
            return buf;
        }

        ByteBuffer call(int apiKey, int version, byte[] body) throws IOException {
            return receive(send(apiKey, version, body));
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }

    /** A SaslAuthenticate v1 response. */
    record SaslAuth(short error, String message, byte[] authBytes, long sessionLifetimeMs) {
        static SaslAuth parse(ByteBuffer b) {
            short error = b.getShort();
            short len = b.getShort();
            String message = null;
            if (len >= 0) {
                byte[] m = new byte[len];
                b.get(m);
                message = new String(m, StandardCharsets.UTF_8);
            }
            byte[] auth = new byte[b.getInt()];
            b.get(auth);
            return new SaslAuth(error, message, auth, b.getLong());
        }
    }

    static byte[] str16(String s) {
        byte[] v = s.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(2 + v.length).putShort((short) v.length).put(v).array();
    }

    static String readStr16(ByteBuffer b) {
        byte[] v = new byte[b.getShort()];
        b.get(v);
        return new String(v, StandardCharsets.UTF_8);
    }

    static byte[] bytes32(byte[] v) {
        return ByteBuffer.allocate(4 + v.length).putInt(v.length).put(v).array();
    }

    /** Metadata v1 body: topics null (all topics). */
    static byte[] metadataAllTopics() {
        return ByteBuffer.allocate(4).putInt(-1).array();
    }

    /** The client side of SCRAM-SHA-256 (RFC 5802/7677), no channel binding. */
    static final class Scram {
        final String user;
        final String password;
        final String clientFirstBare;
        final String clientNonce;
        byte[] serverSignature;

        Scram(String user, String password) {
            this.user = user;
            this.password = password;
            byte[] n = new byte[24];
            new SecureRandom().nextBytes(n);
            this.clientNonce = Base64.getEncoder().encodeToString(n);
            this.clientFirstBare = "n=" + user + ",r=" + clientNonce;
        }

        byte[] clientFirst() {
            return ("n,," + clientFirstBare).getBytes(StandardCharsets.UTF_8);
        }

        byte[] clientFinal(byte[] serverFirstBytes) throws GeneralSecurityException {
            String serverFirst = new String(serverFirstBytes, StandardCharsets.UTF_8);
            Map<String, String> attrs = new HashMap<>();
            for (String part : serverFirst.split(",")) {
                int eq = part.indexOf('=');
                if (eq > 0) {
                    attrs.putIfAbsent(part.substring(0, eq), part.substring(eq + 1));
                }
            }
            String nonce = attrs.get("r");
            assertTrue(nonce != null && nonce.startsWith(clientNonce) && nonce.length() > clientNonce.length(),
                    "server nonce in " + serverFirst);
            byte[] salt = Base64.getDecoder().decode(attrs.get("s"));
            int iterations = Integer.parseInt(attrs.get("i"));
            SecretKeyFactory f = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256");
            byte[] salted = f.generateSecret(new PBEKeySpec(password.toCharArray(), salt, iterations, 256)).getEncoded();
            byte[] clientKey = hmac(salted, "Client Key");
            byte[] storedKey = MessageDigest.getInstance("SHA-256").digest(clientKey);
            String withoutProof = "c=biws,r=" + nonce;
            String authMessage = clientFirstBare + "," + serverFirst + "," + withoutProof;
            byte[] signature = hmac(storedKey, authMessage);
            byte[] proof = new byte[clientKey.length];
            for (int i = 0; i < proof.length; i++) {
                proof[i] = (byte) (clientKey[i] ^ signature[i]);
            }
            serverSignature = hmac(hmac(salted, "Server Key"), authMessage);
            return (withoutProof + ",p=" + Base64.getEncoder().encodeToString(proof)).getBytes(StandardCharsets.UTF_8);
        }

        void verifyServerFinal(byte[] serverFinal) {
            assertEquals("v=" + Base64.getEncoder().encodeToString(serverSignature),
                    new String(serverFinal, StandardCharsets.UTF_8), "server-final-message");
        }

        static byte[] hmac(byte[] key, String data) throws GeneralSecurityException {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
        }
    }
}
