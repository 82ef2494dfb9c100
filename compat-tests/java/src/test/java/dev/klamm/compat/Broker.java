package dev.klamm.compat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * One broker process for a test class (or a test): Klamm by default, or the reference
 * Apache Kafka broker when {@code COMPAT_BROKER=kafka} (through {@code compat-tests/kafka/kafka.sh}).
 *
 * <p>Settings are given as Klamm flags ({@code "--group-min-session-timeout-ms", "1000"});
 * {@link #KAFKA_PROPERTY} maps each one to the Kafka broker property with the same meaning.
 * Klamm runs on a free loopback port with a temp data dir, is awaited on its
 * {@code klamm ready on 127.0.0.1:PORT} log line and is stopped by PID (SIGTERM, then SIGKILL).
 */
public final class Broker {
    public static final String DEFAULT_BIN = "/root/.cache/klamm/target/release/klamm";
    static final Duration READY_TIMEOUT = Duration.ofSeconds(20);
    static final Duration KAFKA_READY_TIMEOUT = Duration.ofSeconds(180);
    static final Duration STOP_TIMEOUT = Duration.ofSeconds(10);

    /** Klamm flag -> the Kafka broker properties it stands for (same value). */
    static final Map<String, List<String>> KAFKA_PROPERTY = Map.ofEntries(
            Map.entry("--group-min-session-timeout-ms", List.of("group.min.session.timeout.ms")),
            Map.entry("--group-initial-rebalance-delay-ms", List.of("group.initial.rebalance.delay.ms")),
            // Kafka refuses a heartbeat interval / session timeout below its group.consumer.min.* bound
            Map.entry("--group-consumer-heartbeat-interval-ms",
                    List.of("group.consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms")),
            Map.entry("--group-consumer-session-timeout-ms",
                    List.of("group.consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms")),
            Map.entry("--transaction-abort-timed-out-transaction-cleanup-interval-ms",
                    List.of("transaction.abort.timed.out.transaction.cleanup.interval.ms")),
            Map.entry("--transaction-max-timeout-ms", List.of("transaction.max.timeout.ms")),
            Map.entry("--num-partitions", List.of("num.partitions")),
            Map.entry("--message-max-bytes", List.of("message.max.bytes")),
            Map.entry("--auto-create-topics-enable", List.of("auto.create.topics.enable")),
            Map.entry("--max-incremental-fetch-session-cache-slots", List.of("max.incremental.fetch.session.cache.slots")),
            // delegation tokens (KIP-48, DelegationTokenTest)
            Map.entry("--delegation-token-secret-key", List.of("delegation.token.secret.key")),
            Map.entry("--delegation-token-max-lifetime-ms", List.of("delegation.token.max.lifetime.ms")),
            Map.entry("--delegation-token-expiry-time-ms", List.of("delegation.token.expiry.time.ms")),
            Map.entry("--delegation-token-expiry-check-interval-ms",
                    List.of("delegation.token.expiry.check.interval.ms")),
            // SASL re-authentication (KIP-368, ReauthTest)
            Map.entry("--connections-max-reauth-ms", List.of("connections.max.reauth.ms")),
            // share groups (ShareDlqTest): Kafka refuses a heartbeat interval below group.share.min.heartbeat.interval.ms
            Map.entry("--group-share-heartbeat-interval-ms",
                    List.of("group.share.heartbeat.interval.ms", "group.share.min.heartbeat.interval.ms")),
            Map.entry("--group-share-min-record-lock-duration-ms", List.of("group.share.min.record.lock.duration.ms")),
            // the share-group dead-letter queue (KIP-1191, ShareDlqTest)
            Map.entry("--errors-deadletterqueue-auto-create-topics-enable",
                    List.of("errors.deadletterqueue.auto.create.topics.enable")));

    /**
     * Klamm flags with no Kafka counterpart, or not mapped to Kafka properties here: a class
     * using one is skipped under COMPAT_BROKER=kafka. {@code --bootstrap-users} has no Kafka
     * property (Kafka's users come from {@code kafka-storage format --add-scram} or
     * AlterUserScramCredentials). {@code --listeners} is mapped only when every listener is
     * PLAINTEXT or SASL_PLAINTEXT on 127.0.0.1 (see {@link #klammOnly}); SecurityTest's TLS
     * listeners are not.
     */
    static final java.util.Set<String> KLAMM_ONLY = java.util.Set.of("--http", "--listeners", "--bootstrap-users");

    /**
     * True if the flag with this value cannot be given to Kafka by this suite (the class is
     * then skipped under COMPAT_BROKER=kafka). {@code --listeners} is the exception among
     * {@link #KLAMM_ONLY}: PLAINTEXT and SASL_PLAINTEXT listeners on 127.0.0.1 (exactly one
     * PLAINTEXT, first, which kafka.sh reports as the bootstrap address) map to Kafka's listeners, a
     * CONTROLLER listener of the suite's choosing, and SCRAM-SHA-256/512 on SASL_PLAINTEXT (see
     * {@link #kafkaProperties()}).
     */
    static boolean klammOnly(String flag, String value) {
        if (flag.equals("--listeners")) {
            return !kafkaMappableListeners(value);
        }
        return KLAMM_ONLY.contains(flag);
    }

    private static boolean kafkaMappableListeners(String value) {
        int plaintext = 0;
        for (String l : value.split(",")) {
            Matcher m = Pattern.compile("(PLAINTEXT|SASL_PLAINTEXT)://127\\.0\\.0\\.1:\\d+").matcher(l.trim());
            if (!m.matches()) {
                return false;
            }
            if (m.group(1).equals("PLAINTEXT")) {
                plaintext++;
            }
        }
        // the PLAINTEXT one first: Klamm's bootstrap() is its first listener, Kafka's the PLAINTEXT one
        return plaintext == 1 && value.trim().startsWith("PLAINTEXT://");
    }

    /**
     * Klamm flags that take no value (clap switches). The tests still give them in pairs,
     * {@code "--authorizer", "true"}: the flag is passed alone when the value is true and left
     * out when it is false.
     */
    static final java.util.Set<String> SWITCHES = java.util.Set.of("--authorizer");

    /** Every broker process still running, killed by a shutdown hook if the JVM exits early. */
    private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (Process p : LIVE) {
                p.destroyForcibly();
            }
        }, "klamm-broker-reaper"));
    }

    /** Another process (ZooKeeper) for the shutdown hook to kill if the JVM exits early. */
    static void track(Process p) {
        LIVE.add(p);
    }

    static void untrack(Process p) {
        LIVE.remove(p);
    }

    private final List<String> args;
    private final boolean kafka;
    private final Path dir;
    private final Path dataDir;
    private final Path logFile;
    private int port;
    private int controllerPort; // Kafka's CONTROLLER listener when --listeners is mapped
    private Process process;
    private int starts;
    private boolean running;
    private Integer lastExit;

    public Broker(List<String> klammArgs) {
        this(klammArgs, null, isKafka());
    }

    /**
     * Always a Klamm process (whatever COMPAT_BROKER says), in {@code dir} (created if
     * missing): a member of a cluster whose test keeps every node's files in one directory.
     */
    static Broker klammIn(Path dir, List<String> klammArgs) {
        return new Broker(klammArgs, dir, false);
    }

    /**
     * A Klamm or (with {@code kafka}) a reference Kafka broker whatever COMPAT_BROKER says:
     * for benchmarks that run both side by side.
     */
    static Broker of(boolean kafka, List<String> klammArgs) {
        return new Broker(klammArgs, null, kafka);
    }

    /** The broker's process id (Klamm's process, or Kafka's JVM from kafka.sh's pid file). */
    long pid() {
        if (!running) {
            throw new IllegalStateException("broker is not running");
        }
        if (!kafka) {
            return process.pid();
        }
        try {
            return Long.parseLong(Files.readString(dir.resolve("pid")).trim());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private Broker(List<String> klammArgs, Path inDir, boolean kafka) {
        this.args = List.copyOf(klammArgs);
        if (args.size() % 2 != 0) {
            throw new IllegalArgumentException("flags must come in pairs: " + args);
        }
        this.kafka = kafka;
        try {
            if (inDir != null) {
                this.dir = Files.createDirectories(inDir);
            } else {
                Path base = Paths.get(System.getProperty("compat.tmp", System.getProperty("java.io.tmpdir")));
                Files.createDirectories(base);
                this.dir = Files.createTempDirectory(base, kafka ? "kafka-" : "klamm-");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        this.dataDir = dir.resolve("data");
        this.logFile = dir.resolve("broker.log");
    }

    /** True when the suite runs against the reference Apache Kafka broker. */
    public static boolean isKafka() {
        return "kafka".equalsIgnoreCase(System.getenv().getOrDefault("COMPAT_BROKER", "klamm"));
    }

    static Path repoRoot() {
        String prop = System.getProperty("klamm.repo");
        if (prop != null && !prop.isEmpty()) {
            return Paths.get(prop).toAbsolutePath().normalize();
        }
        // Maven runs the tests in compat-tests/java
        return Paths.get(System.getProperty("user.dir")).toAbsolutePath().resolve("../..").normalize();
    }

    static Path klammBin() {
        String env = System.getenv("KLAMM_BIN");
        return Paths.get(env == null || env.isEmpty() ? DEFAULT_BIN : env);
    }

    public String bootstrap() {
        if (!running) {
            throw new IllegalStateException("broker is not running");
        }
        return "127.0.0.1:" + port;
    }

    /** The port (kept across restarts; 0 before the first start). */
    public int port() {
        return port;
    }

    public Path logFile() {
        return logFile;
    }

    public synchronized Broker start() {
        if (running) {
            throw new IllegalStateException("broker already running");
        }
        starts++;
        if (kafka) {
            startKafka();
        } else {
            startKlamm();
        }
        running = true;
        return this;
    }

    private void startKlamm() {
        Path bin = klammBin();
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException("klamm binary not found at " + bin + " (set KLAMM_BIN)");
        }
        int listenersPort = firstListenerPort();
        if (listenersPort > 0) {
            port = listenersPort; // --listeners replaces --listen; the ready line names its first
        } else if (port == 0) {
            port = freePort(); // a restart keeps the port, so clients can reconnect
        }
        List<String> cmd = new ArrayList<>();
        cmd.add(bin.toString());
        if (listenersPort == 0) {
            cmd.add("--listen");
            cmd.add("127.0.0.1:" + port);
        }
        cmd.add("--data-dir");
        cmd.add(dataDir.toString());
        for (int i = 0; i < args.size(); i += 2) {
            if (SWITCHES.contains(args.get(i))) {
                // a switch takes no value: "--authorizer", "true" is given as --authorizer alone
                if (Boolean.parseBoolean(args.get(i + 1))) {
                    cmd.add(args.get(i));
                }
            } else {
                cmd.add(args.get(i));
                cmd.add(args.get(i + 1));
            }
        }
        try {
            Files.writeString(logFile, "\n===== start #" + starts + ": " + String.join(" ", cmd) + " =====\n",
                    StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.APPEND);
            long from = Files.size(logFile);
            ProcessBuilder pb = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            // KLAMM_* variables would override the defaults the tests rely on.
            pb.environment().keySet().removeIf(k -> k.startsWith("KLAMM_") && !k.equals("KLAMM_LOG_LEVEL"));
            pb.environment().put("NO_COLOR", "1");
            process = pb.start();
            LIVE.add(process);
            Pattern ready = Pattern.compile("klamm ready on 127\\.0\\.0\\.1:" + port + "\\b");
            long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
            while (System.nanoTime() < deadline) {
                if (ready.matcher(readFrom(from)).find()) {
                    return;
                }
                if (!process.isAlive()) {
                    throw new IllegalStateException("klamm exited with " + process.exitValue()
                            + " before it was ready:\n" + logTail(60));
                }
                Thread.sleep(10);
            }
            stopProcess(true);
            throw new IllegalStateException("klamm not ready within " + READY_TIMEOUT + ":\n" + logTail(60));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /**
     * The port of the first of {@code --listeners NAME://127.0.0.1:PORT,...} when the flags
     * give it (the listener {@code klamm ready on} names and {@link #bootstrap()} returns), else 0.
     */
    private int firstListenerPort() {
        for (int i = 0; i < args.size(); i += 2) {
            if (args.get(i).equals("--listeners")) {
                String first = args.get(i + 1).split(",")[0].trim();
                if (!first.contains("://127.0.0.1:")) {
                    throw new IllegalArgumentException("the first of --listeners must be on 127.0.0.1: " + first);
                }
                return Integer.parseInt(first.substring(first.lastIndexOf(':') + 1));
            }
        }
        return 0;
    }

    private Path kafkaScript() {
        String prop = System.getProperty("compat.kafkaScript");
        return prop != null && !prop.isEmpty() ? Paths.get(prop) : repoRoot().resolve("compat-tests/kafka/kafka.sh");
    }

    /** The Kafka broker properties for this broker's Klamm flags. */
    List<String> kafkaProperties() {
        Map<String, String> props = new LinkedHashMap<>();
        props.put("group.initial.rebalance.delay.ms", "0"); // Klamm's default
        for (int i = 0; i < args.size(); i += 2) {
            String flag = args.get(i);
            if (flag.equals("--listeners") && kafkaMappableListeners(args.get(i + 1))) {
                props.putAll(kafkaListenerProperties(args.get(i + 1)));
                continue;
            }
            List<String> names = KAFKA_PROPERTY.get(flag);
            if (names == null) {
                throw new IllegalArgumentException("no Kafka property known for Klamm flag " + flag);
            }
            for (String name : names) {
                props.put(name, args.get(i + 1));
            }
        }
        List<String> out = new ArrayList<>();
        props.forEach((k, v) -> out.add(k + "=" + v));
        return out;
    }

    /**
     * Kafka's properties for {@code --listeners} of PLAINTEXT and SASL_PLAINTEXT listeners:
     * the same listeners plus a CONTROLLER listener on a port picked once per broker (kept
     * across restarts), the quorum bootstrap there, the protocol map, and SCRAM-SHA-256 and
     * SCRAM-SHA-512 on SASL_PLAINTEXT (Kafka needs the server's ScramLoginModule JAAS entry per
     * mechanism; users are made with AlterUserScramCredentials). kafka.sh appends these to its
     * generated server.properties (later lines win) before it formats the storage.
     */
    private Map<String, String> kafkaListenerProperties(String listeners) {
        if (controllerPort == 0) {
            controllerPort = freePort();
        }
        Map<String, String> p = new LinkedHashMap<>();
        p.put("listeners", listeners + ",CONTROLLER://127.0.0.1:" + controllerPort);
        p.put("advertised.listeners", listeners);
        p.put("controller.quorum.bootstrap.servers", "127.0.0.1:" + controllerPort);
        p.put("listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT");
        if (listeners.contains("SASL_PLAINTEXT://")) {
            p.put("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512");
            for (String m : List.of("scram-sha-256", "scram-sha-512")) {
                p.put("listener.name.sasl_plaintext." + m + ".sasl.jaas.config",
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;");
            }
        }
        return p;
    }

    private void startKafka() {
        List<String> cmd = new ArrayList<>(List.of("bash", kafkaScript().toString(), "start", dir.toString()));
        cmd.addAll(kafkaProperties());
        String out = runScript(cmd, KAFKA_READY_TIMEOUT);
        Matcher m = Pattern.compile("(?m)^127\\.0\\.0\\.1:(\\d+)\\s*$").matcher(out);
        int found = -1;
        while (m.find()) {
            found = Integer.parseInt(m.group(1));
        }
        if (found < 0) {
            throw new IllegalStateException("kafka.sh start printed no 127.0.0.1:PORT line:\n" + out);
        }
        port = found;
    }

    private String runScript(List<String> cmd, Duration timeout) {
        try {
            Path out = dir.resolve("script-" + System.nanoTime() + ".out");
            Process p = new ProcessBuilder(cmd)
                    .redirectOutput(out.toFile())
                    .redirectError(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                p.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
                throw new IllegalStateException(cmd + " did not finish within " + timeout + "\n" + logTail(60));
            }
            String text = Files.readString(out);
            if (p.exitValue() != 0) {
                throw new IllegalStateException(cmd + " exited with " + p.exitValue() + ":\n" + text + "\n" + logTail(60));
            }
            return text;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** SIGTERM (then SIGKILL after {@link #STOP_TIMEOUT}). Returns true if the broker was still alive. */
    public synchronized boolean stop() {
        return stop(false);
    }

    /** SIGKILL: no clean shutdown. Returns true if the broker was still alive. */
    public synchronized boolean kill() {
        return stop(true);
    }

    private boolean stop(boolean hard) {
        if (!running) {
            return true;
        }
        running = false;
        if (kafka) {
            List<String> cmd = new ArrayList<>(List.of("bash", kafkaScript().toString(), "stop", dir.toString()));
            if (hard) {
                cmd.add("KILL");
            }
            runScript(cmd, Duration.ofSeconds(60));
            return true;
        }
        return stopProcess(hard);
    }

    private boolean stopProcess(boolean hard) {
        Process p = process;
        process = null;
        lastExit = null;
        if (p == null) {
            return false;
        }
        boolean alive = p.isAlive();
        lastExit = stopProcess(p, hard, STOP_TIMEOUT);
        return alive;
    }

    /**
     * Stops a process this suite started: SIGKILL ({@code hard}) or SIGTERM, then SIGKILL if
     * it has not exited within {@code timeout}. Returns its exit status, -1 when it had to be
     * killed, null when interrupted.
     */
    static Integer stopProcess(Process p, boolean hard, Duration timeout) {
        try {
            if (hard) {
                p.destroyForcibly();
            } else {
                p.destroy(); // SIGTERM
            }
            if (p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                return p.exitValue();
            }
            p.destroyForcibly(); // did not exit within the timeout
            p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
            return -1;
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            return null;
        } finally {
            LIVE.remove(p);
        }
    }

    /** Deletes a directory tree, leaving what cannot be deleted to the OS. */
    static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            List<Path> paths = new ArrayList<>(s.toList());
            Collections.reverse(paths);
            for (Path p : paths) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // leave it for the OS
        }
    }

    /** Stop (SIGTERM) and start again on the same port and data dir. */
    public Broker restart() {
        stop();
        return start();
    }

    /** SIGKILL and start again on the same port and data dir. */
    public Broker killAndRestart() {
        kill();
        return start();
    }

    /**
     * How the last Klamm process stopped by {@link #stop()} or {@link #kill()} exited: its exit
     * status (0 after a clean SIGTERM shutdown, 137 after SIGKILL), -1 if it had not exited
     * {@link #STOP_TIMEOUT} after the signal (it was then killed), null if nothing was stopped.
     */
    public synchronized Integer lastExit() {
        return lastExit;
    }

    /** True if a Klamm process died on its own (not stopped by us). */
    public synchronized boolean diedUnexpectedly() {
        return !kafka && running && process != null && !process.isAlive();
    }

    public long logSize() {
        try {
            return Files.exists(logFile) ? Files.size(logFile) : 0;
        } catch (IOException e) {
            return 0;
        }
    }

    String readFrom(long from) throws IOException {
        if (!Files.exists(logFile)) {
            return "";
        }
        byte[] all = Files.readAllBytes(logFile);
        int start = (int) Math.min(Math.max(from, 0), all.length);
        return new String(all, start, all.length - start, StandardCharsets.UTF_8).replaceAll("\u001b\\[[0-9;]*m", "");
    }

    /** The last {@code n} lines of the broker log (for Kafka: of every *.log file kafka.sh left in the dir). */
    public String logTail(int n) {
        StringBuilder sb = new StringBuilder();
        List<Path> logs = new ArrayList<>();
        logs.add(logFile);
        if (kafka) {
            try (Stream<Path> s = Files.walk(dir, 3)) {
                s.filter(p -> p.toString().endsWith(".log") && !p.equals(logFile)
                                && (p.getFileName().toString().startsWith("server")
                                || p.getFileName().toString().startsWith("kafka")))
                        .sorted(Comparator.naturalOrder()).forEach(logs::add);
            } catch (IOException ignored) {
                // best effort
            }
        }
        for (Path log : logs) {
            try {
                if (!Files.exists(log)) {
                    continue;
                }
                List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
                sb.append("----- ").append(log).append(" (last ").append(Math.min(n, lines.size()))
                        .append(" lines) -----\n");
                for (String line : lines.subList(Math.max(0, lines.size() - n), lines.size())) {
                    sb.append(line.replaceAll("\u001b\\[[0-9;]*m", "")).append('\n');
                }
            } catch (IOException | RuntimeException e) {
                sb.append("<cannot read ").append(log).append(": ").append(e).append(">\n");
            }
        }
        return sb.toString();
    }

    /** Remove the temp dir (after stop). */
    void cleanUp() {
        if (running) {
            return;
        }
        deleteTree(dir);
    }

    static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
