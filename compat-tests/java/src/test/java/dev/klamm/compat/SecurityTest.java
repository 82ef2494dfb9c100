package dev.klamm.compat;

import static dev.klamm.compat.Kit.b;
import static dev.klamm.compat.Kit.get;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.apache.kafka.common.errors.UnsupportedSaslMechanismException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * TLS and SASL (Klamm's {@code --listeners}, {@code --ssl-*}, {@code --sasl-enabled-mechanisms},
 * {@code --bootstrap-users}) with kafka-clients' producer, consumer and admin client.
 *
 * <p>Two brokers, both with the four listeners (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) and
 * the user {@code alice}: {@link #broker} with the default mechanisms (PLAIN, SCRAM-SHA-256,
 * SCRAM-SHA-512) and no client certificates; {@link #strict} with {@code --ssl-client-auth
 * required} and {@code --sasl-enabled-mechanisms OAUTHBEARER,PLAIN}. The PKI (a CA, the
 * broker's certificate for IP 127.0.0.1 / localhost, a client certificate, and a second CA
 * that signs nothing the brokers trust) is made once with the openssl CLI. The Java clients
 * read PEM directly ({@code ssl.truststore.type=PEM}, {@code ssl.keystore.type=PEM}) and keep
 * the default host name verification (https), so the broker's SAN is checked as well.
 * Skipped under COMPAT_BROKER=kafka ({@code --listeners} is not mapped to Kafka here).
 */
class SecurityTest {
    static final String USER = "alice";
    static final String PASSWORD = "secret";

    static final Pki PKI = Pki.create();
    static final Ports MAIN = Ports.pick();
    static final Ports STRICT = Ports.pick();

    @RegisterExtension
    static final BrokerExtension broker = new BrokerExtension(
            "--listeners", MAIN.listeners(),
            "--ssl-certificate", PKI.file("broker.pem"),
            "--ssl-key", PKI.file("broker.key"),
            "--bootstrap-users", USER + ":" + PASSWORD + ",bob:b0b-Pa55");

    @RegisterExtension
    static final BrokerExtension strict = new BrokerExtension(
            "--listeners", STRICT.listeners(),
            "--ssl-certificate", PKI.file("broker.pem"),
            "--ssl-key", PKI.file("broker.key"),
            "--ssl-client-auth", "required",
            "--ssl-ca", PKI.file("ca.pem"),
            "--sasl-enabled-mechanisms", "OAUTHBEARER,PLAIN",
            "--bootstrap-users", USER + ":" + PASSWORD);

    @AfterAll
    static void removePki() {
        if (!Boolean.getBoolean("compat.keep")) {
            Broker.deleteTree(PKI.dir);
        }
    }

    // ------------------------------------------------------------------ PKI and listeners

    /** The four listeners' ports of one broker. */
    record Ports(int plaintext, int ssl, int saslPlaintext, int saslSsl) {
        static Ports pick() {
            return new Ports(Broker.freePort(), Broker.freePort(), Broker.freePort(), Broker.freePort());
        }

        String listeners() {
            return "PLAINTEXT://127.0.0.1:" + plaintext + ",SSL://127.0.0.1:" + ssl
                    + ",SASL_PLAINTEXT://127.0.0.1:" + saslPlaintext + ",SASL_SSL://127.0.0.1:" + saslSsl;
        }

        int of(String protocol) {
            return switch (protocol) {
                case "PLAINTEXT" -> plaintext;
                case "SSL" -> ssl;
                case "SASL_PLAINTEXT" -> saslPlaintext;
                case "SASL_SSL" -> saslSsl;
                default -> throw new IllegalArgumentException(protocol);
            };
        }
    }

    /** Certificates made with the openssl CLI (X.509 v3: rustls refuses v1). */
    static final class Pki {
        final Path dir;

        private Pki(Path dir) {
            this.dir = dir;
        }

        String file(String name) {
            return dir.resolve(name).toString();
        }

        static Pki create() {
            try {
                Path base = Paths.get(System.getProperty("compat.tmp", System.getProperty("java.io.tmpdir")));
                Files.createDirectories(base);
                Pki pki = new Pki(Files.createTempDirectory(base, "pki-"));
                Files.writeString(pki.dir.resolve("broker.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
                Files.writeString(pki.dir.resolve("client.ext"), "extendedKeyUsage=clientAuth\n");
                for (String ca : List.of("ca", "other-ca")) {
                    pki.openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-keyout", ca + ".key", "-out", ca + ".pem", "-subj", "/CN=klamm-test-" + ca);
                }
                pki.signed("broker", "/CN=localhost", "ca", "broker.ext");
                pki.signed("client", "/CN=app/O=acme", "ca", "client.ext");
                pki.signed("stranger", "/CN=stranger", "other-ca", "client.ext");
                for (String who : List.of("client", "stranger")) {
                    // Kafka's PEM key store: an unencrypted PKCS#8 key followed by the certificate
                    pki.openssl("pkcs8", "-topk8", "-nocrypt", "-in", who + ".key", "-out", who + ".p8");
                    Files.writeString(pki.dir.resolve(who + "-keystore.pem"),
                            Files.readString(pki.dir.resolve(who + ".p8")) + Files.readString(pki.dir.resolve(who + ".pem")));
                }
                return pki;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        private void signed(String name, String subject, String ca, String ext) {
            openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
                    "-out", name + ".csr", "-subj", subject);
            openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                    "-CAcreateserial", "-days", "2", "-out", name + ".pem", "-extfile", ext);
        }

        private void openssl(String... args) {
            List<String> cmd = new ArrayList<>(List.of("openssl"));
            cmd.addAll(List.of(args));
            try {
                Path out = dir.resolve("openssl.out");
                Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                        .redirectOutput(out.toFile())
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
                if (!p.waitFor(30, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    throw new IllegalStateException(cmd + " did not finish within 30 s");
                }
                if (p.exitValue() != 0) {
                    throw new IllegalStateException(cmd + " exited with " + p.exitValue() + ":\n" + Files.readString(out));
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
    }

    // ------------------------------------------------------------------ client settings

    /**
     * How a client reaches a broker: the listener's protocol, the SASL mechanism (null for
     * none), the credentials, and the PEM key store to present (null for none).
     */
    record Access(String protocol, String mechanism, String user, String password, String keystore) {
        static Access of(String protocol, String mechanism) {
            return new Access(protocol, mechanism, USER, PASSWORD, null);
        }

        Access as(String u, String p) {
            return new Access(protocol, mechanism, u, p, keystore);
        }

        Access withCertificate(String keystoreFile) {
            return new Access(protocol, mechanism, user, password, keystoreFile);
        }

        @Override
        public String toString() {
            return protocol + (mechanism == null ? "" : "/" + mechanism)
                    + (keystore == null ? "" : "+cert");
        }

        String bootstrap(Ports ports) {
            return "127.0.0.1:" + ports.of(protocol);
        }

        /** The client settings, as key/value pairs for {@link Kit#producer} and friends. */
        Object[] settings() {
            List<Object> kv = new ArrayList<>(List.of(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol));
            if (protocol.endsWith("SSL")) {
                kv.addAll(List.of(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM",
                        SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, PKI.file("ca.pem")));
            }
            if (keystore != null) {
                kv.addAll(List.of(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM",
                        SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, PKI.file(keystore)));
            }
            if (mechanism != null) {
                String jaas = switch (mechanism) {
                    case "PLAIN" -> "org.apache.kafka.common.security.plain.PlainLoginModule required username=\""
                            + user + "\" password=\"" + password + "\";";
                    case "SCRAM-SHA-256", "SCRAM-SHA-512" ->
                            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                                    + user + "\" password=\"" + password + "\";";
                    // Kafka's unsecured JWS tokens (the default login callback handler of OAUTHBEARER)
                    case "OAUTHBEARER" -> "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
                            + " required unsecuredLoginStringClaim_sub=\"" + user + "\";";
                    default -> throw new IllegalArgumentException(mechanism);
                };
                kv.addAll(List.of(SaslConfigs.SASL_MECHANISM, mechanism, SaslConfigs.SASL_JAAS_CONFIG, jaas));
            }
            return kv.toArray();
        }
    }

    static Admin admin(Ports ports, Access access) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, access.bootstrap(ports));
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        Kit.put(p, access.settings());
        return Admin.create(p);
    }

    static KafkaProducer<byte[], byte[]> producer(Ports ports, Access access) {
        return Kit.producer(access.bootstrap(ports), access.settings());
    }

    static KafkaConsumer<byte[], byte[]> consumer(Ports ports, Access access, String group) {
        return Kit.consumer(access.bootstrap(ports), group, access.settings());
    }

    // ------------------------------------------------------------------ records

    /** Three records: binary key, random value and headers (duplicate key, null value); null key and empty value; a tombstone. */
    static List<ProducerRecord<byte[], byte[]>> records(String topic, long seed) {
        Random rnd = new Random(seed);
        byte[] key = new byte[256];
        for (int i = 0; i < key.length; i++) {
            key[i] = (byte) i;
        }
        byte[] value = new byte[20_000];
        rnd.nextBytes(value);
        RecordHeaders headers = new RecordHeaders();
        headers.add(new RecordHeader("h", b("1")));
        headers.add(new RecordHeader("h", new byte[] {0, (byte) 0xff}));
        headers.add(new RecordHeader("null", null));
        headers.add(new RecordHeader("ünï", new byte[0]));
        long ts = System.currentTimeMillis() - 5_000;
        return List.of(
                new ProducerRecord<>(topic, 0, ts, key, value, headers),
                new ProducerRecord<>(topic, 0, ts + 1, (byte[]) null, new byte[0]),
                new ProducerRecord<>(topic, 0, ts + 2, b("gone"), (byte[]) null));
    }

    /** Produces the records, synchronously; returns their offsets. */
    static List<Long> produce(KafkaProducer<byte[], byte[]> producer, List<ProducerRecord<byte[], byte[]>> records) {
        List<java.util.concurrent.Future<org.apache.kafka.clients.producer.RecordMetadata>> fs = new ArrayList<>();
        for (ProducerRecord<byte[], byte[]> r : records) {
            fs.add(producer.send(r));
        }
        producer.flush();
        List<Long> offsets = new ArrayList<>();
        for (var f : fs) {
            offsets.add(get(f).offset());
        }
        return offsets;
    }

    static void assertSameRecords(List<ProducerRecord<byte[], byte[]>> sent, List<ConsumerRecord<byte[], byte[]>> got, String via) {
        assertEquals(sent.size(), got.size(), "records read over " + via);
        for (int i = 0; i < sent.size(); i++) {
            ProducerRecord<byte[], byte[]> s = sent.get(i);
            ConsumerRecord<byte[], byte[]> r = got.get(i);
            assertEquals(i, r.offset(), "offset of record " + i + " over " + via);
            assertArrayEquals(s.key(), r.key(), "key of record " + i + " over " + via);
            assertArrayEquals(s.value(), r.value(), "value of record " + i + " over " + via);
            assertEquals(Kit.headers(s.headers()), Kit.headers(r.headers()), "headers of record " + i + " over " + via);
            assertEquals(s.timestamp(), r.timestamp(), "timestamp of record " + i + " over " + via);
        }
    }

    /** The records of partition 0 from offset 0, read by an assigned consumer. */
    static List<ConsumerRecord<byte[], byte[]>> readBack(Ports ports, Access access, String topic, int count) {
        try (KafkaConsumer<byte[], byte[]> c = consumer(ports, access, null)) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            c.seekToBeginning(List.of(new TopicPartition(topic, 0)));
            return Kit.pollExactly(c, count, Duration.ofSeconds(20));
        }
    }

    /** The one node Metadata names for this listener: this broker, at the listener's own port. */
    static void assertAdvertisedAt(Admin admin, int port) {
        DescribeClusterResult cluster = admin.describeCluster();
        Collection<Node> nodes = get(cluster.nodes());
        assertEquals(1, nodes.size(), "nodes " + nodes);
        Node node = nodes.iterator().next();
        assertEquals("127.0.0.1", node.host(), "advertised host");
        assertEquals(port, node.port(), "the node is advertised at the port of the listener asked");
        assertNotNull(get(cluster.clusterId()));
    }

    // ------------------------------------------------------------------ tests

    /** Every listener with security, every mechanism; each paired with a listener of another protocol to read back. */
    static Stream<Arguments> listenersAndMechanisms() {
        List<Access> all = List.of(
                Access.of("SSL", null),
                Access.of("SASL_PLAINTEXT", "PLAIN"),
                Access.of("SASL_PLAINTEXT", "SCRAM-SHA-256"),
                Access.of("SASL_PLAINTEXT", "SCRAM-SHA-512"),
                Access.of("SASL_SSL", "PLAIN"),
                Access.of("SASL_SSL", "SCRAM-SHA-256"),
                Access.of("SASL_SSL", "SCRAM-SHA-512"));
        // i + 3 (mod 7) always has another protocol: SSL -> SASL_PLAINTEXT/SCRAM-SHA-512,
        // SASL_PLAINTEXT/* -> SASL_SSL/*, SASL_SSL/PLAIN -> SSL, ...
        List<Arguments> out = new ArrayList<>();
        for (int i = 0; i < all.size(); i++) {
            out.add(Arguments.of(all.get(i), all.get((i + 3) % all.size())));
        }
        return out.stream();
    }

    /**
     * Admin (describeCluster: the node at this listener's port; createTopics), the default
     * idempotent producer and a group consumer (FindCoordinator, JoinGroup, OffsetCommit) over
     * one listener and mechanism; the records are read back byte-exact over that listener, over
     * a listener of another protocol, and over PLAINTEXT.
     */
    @ParameterizedTest(name = "{0}, read back over {1}")
    @MethodSource("listenersAndMechanisms")
    void producerConsumerAndAdminOverEachListenerAndMechanism(Access via, Access other) {
        String topic = Kit.name("sec-" + via.toString().replace('/', '-').replace('+', '-'));
        String group = Kit.name("sec-group");
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, topic.hashCode());
        try (Admin admin = admin(MAIN, via)) {
            assertAdvertisedAt(admin, MAIN.of(via.protocol()));
            Kit.createTopic(admin, topic, 1);
            try (KafkaProducer<byte[], byte[]> p = producer(MAIN, via)) {
                assertEquals(List.of(0L, 1L, 2L), produce(p, sent));
            }
            try (KafkaConsumer<byte[], byte[]> c = consumer(MAIN, via, group)) {
                c.subscribe(List.of(topic));
                assertSameRecords(sent, Kit.pollExactly(c, sent.size(), Duration.ofSeconds(20)), via + " (group)");
                c.commitSync();
            }
            Map<TopicPartition, OffsetAndMetadata> committed =
                    get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            assertEquals(3L, committed.get(new TopicPartition(topic, 0)).offset(), "committed offset");
        }
        assertSameRecords(sent, readBack(MAIN, other, topic, sent.size()), other.toString());
        assertSameRecords(sent, readBack(MAIN, Access.of("PLAINTEXT", null), topic, sent.size()), "PLAINTEXT");
    }

    static Stream<Arguments> badCredentials() {
        return Stream.of(
                bad(Access.of("SASL_PLAINTEXT", "PLAIN").as(USER, "wrong"), "wrong password"),
                bad(Access.of("SASL_SSL", "PLAIN").as("mallory", PASSWORD), "unknown user"),
                bad(Access.of("SASL_SSL", "SCRAM-SHA-256").as(USER, "wrong"), "wrong password"),
                bad(Access.of("SASL_PLAINTEXT", "SCRAM-SHA-512").as("bob", PASSWORD), "another user's password"),
                bad(Access.of("SASL_PLAINTEXT", "SCRAM-SHA-256").as("mallory", PASSWORD), "unknown user"));
    }

    private static Arguments bad(Access access, String what) {
        return Arguments.of(Named.of(access + ", " + what + " (" + access.user() + ")", access));
    }

    /**
     * A wrong password or an unknown user: SASL_AUTHENTICATION_FAILED, which the admin client
     * and the producer surface as SaslAuthenticationException (not retried), with Kafka's
     * message. The same listener then serves the right credentials.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("badCredentials")
    void wrongPasswordOrUnknownUserIsASaslAuthenticationFailure(Access bad) {
        try (Admin admin = admin(MAIN, bad)) {
            Throwable t = Kit.failure(admin.describeCluster().clusterId());
            assertInstanceOf(SaslAuthenticationException.class, t, "admin as " + bad.user() + " over " + bad);
            // the broker's error message, as Kafka words it (PlainSaslServer, SaslServerAuthenticator)
            String expected = bad.mechanism().equals("PLAIN")
                    ? "Authentication failed: Invalid username or password"
                    : "Authentication failed during authentication due to invalid credentials with SASL mechanism "
                    + bad.mechanism();
            assertEquals(expected, t.getMessage());
        }
        try (KafkaProducer<byte[], byte[]> p = producer(MAIN, bad)) {
            assertThrows(SaslAuthenticationException.class, () -> p.partitionsFor("any-topic"),
                    "producer as " + bad.user() + " over " + bad);
        }
        try (Admin admin = admin(MAIN, bad.as(USER, PASSWORD))) {
            assertAdvertisedAt(admin, MAIN.of(bad.protocol()));
        }
    }

    /**
     * {@code --ssl-client-auth required}: a client certificate signed by {@code --ssl-ca}
     * opens the SSL listener (admin, producer, consumer; read back over PLAINTEXT byte-exact);
     * without a certificate, or with only one from a CA the broker does not trust, the TLS
     * handshake fails (alert certificate_required): SslAuthenticationException, from the admin
     * client and the producer. (Java's key manager offers no certificate whose issuer is not
     * among the CAs the broker's CertificateRequest names, so the second client sends none;
     * the Go suite forces an untrusted certificate on the broker.)
     */
    @Test
    void mutualTlsNeedsACaSignedClientCertificate() {
        Access withCert = Access.of("SSL", null).withCertificate("client-keystore.pem");
        String topic = Kit.name("sec-mtls");
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, 7);
        try (Admin admin = admin(STRICT, withCert)) {
            assertAdvertisedAt(admin, STRICT.ssl());
            Kit.createTopic(admin, topic, 1);
        }
        try (KafkaProducer<byte[], byte[]> p = producer(STRICT, withCert)) {
            assertEquals(List.of(0L, 1L, 2L), produce(p, sent));
        }
        assertSameRecords(sent, readBack(STRICT, withCert, topic, sent.size()), withCert.toString());
        assertSameRecords(sent, readBack(STRICT, Access.of("PLAINTEXT", null), topic, sent.size()), "PLAINTEXT");

        for (Access refused : List.of(Access.of("SSL", null),
                Access.of("SSL", null).withCertificate("stranger-keystore.pem"))) {
            try (Admin admin = admin(STRICT, refused)) {
                Throwable t = Kit.failure(admin.describeCluster().clusterId());
                assertInstanceOf(SslAuthenticationException.class, t, "admin over " + refused
                        + (refused.keystore() == null ? " without a certificate" : " with " + refused.keystore()));
            }
            try (KafkaProducer<byte[], byte[]> p = producer(STRICT, refused)) {
                assertThrows(SslAuthenticationException.class, () -> p.partitionsFor(topic),
                        "producer over " + refused + " " + refused.keystore());
            }
        }
    }

    /**
     * OAUTHBEARER with Kafka's unsecured JWS tokens (the default login callback handler,
     * {@code unsecuredLoginStringClaim_sub}) when the broker lists it in
     * {@code --sasl-enabled-mechanisms OAUTHBEARER,PLAIN}: admin, producer and consumer; PLAIN
     * works beside it; SCRAM-SHA-256, not enabled, is UNSUPPORTED_SASL_MECHANISM
     * (UnsupportedSaslMechanismException).
     */
    @Test
    void oauthbearerUnsecuredTokensWhenEnabled() {
        Access oauth = Access.of("SASL_PLAINTEXT", "OAUTHBEARER");
        String topic = Kit.name("sec-oauth");
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, 11);
        try (Admin admin = admin(STRICT, oauth)) {
            assertAdvertisedAt(admin, STRICT.saslPlaintext());
            Kit.createTopic(admin, topic, 1);
        }
        try (KafkaProducer<byte[], byte[]> p = producer(STRICT, oauth)) {
            assertEquals(List.of(0L, 1L, 2L), produce(p, sent));
        }
        try (KafkaConsumer<byte[], byte[]> c = consumer(STRICT, oauth, Kit.name("sec-oauth-group"))) {
            c.subscribe(List.of(topic));
            assertSameRecords(sent, Kit.pollExactly(c, sent.size(), Duration.ofSeconds(20)), oauth + " (group)");
            c.commitSync();
        }
        assertSameRecords(sent, readBack(STRICT, Access.of("SASL_PLAINTEXT", "PLAIN"), topic, sent.size()),
                "SASL_PLAINTEXT/PLAIN");

        Access scram = Access.of("SASL_PLAINTEXT", "SCRAM-SHA-256");
        try (Admin admin = admin(STRICT, scram)) {
            Throwable t = Kit.failure(admin.describeCluster().clusterId());
            assertInstanceOf(UnsupportedSaslMechanismException.class, t, "SCRAM-SHA-256 not enabled");
            assertTrue(t.getMessage() != null && t.getMessage().contains("SCRAM-SHA-256"), t.getMessage());
        }
    }

    /**
     * Kafka applies the broker-wide {@code ssl.client.auth} to SSL listeners only: a SASL_SSL
     * listener asks for no client certificate unless {@code listener.name.<l>.ssl.client.auth}
     * says so (KIP-684). So a SASL_SSL client without a key store authenticates with SASL on a
     * broker whose {@code ssl.client.auth} is required.
     * (Klamm once required a certificate there too; this test found it.)
     */
    @Test
    void saslSslNeedsNoClientCertificateUnderBrokerWideClientAuth() {
        Access plain = Access.of("SASL_SSL", "PLAIN");
        String topic = Kit.name("sec-kip684");
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, 13);
        try (Admin admin = admin(STRICT, plain)) {
            assertAdvertisedAt(admin, STRICT.saslSsl());
            Kit.createTopic(admin, topic, 1);
        }
        try (KafkaProducer<byte[], byte[]> p = producer(STRICT, plain)) {
            assertEquals(List.of(0L, 1L, 2L), produce(p, sent));
        }
        assertSameRecords(sent, readBack(STRICT, plain, topic, sent.size()), plain.toString());
    }
}
