package dev.klamm.compat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.Node;

/**
 * One broker of a three-node cluster for {@link ClusterFailoverTest}: a Klamm broker on
 * ZooKeeper ({@link Klamm}, a {@link Broker}), or under {@code COMPAT_BROKER=kafka} a real
 * Apache Kafka 4.4 node in KRaft combined mode (broker and controller, a static quorum of the
 * three; {@link Kafka}). Each keeps its port and data dir across restarts.
 */
interface ClusterNode {
    int id();

    /** Starts the process, without waiting for it to serve. */
    void launch();

    /** Waits (bounded) until it serves; fails if it exited. */
    void awaitReady();

    default void start() {
        launch();
        awaitReady();
    }

    /** SIGKILL, and wait for the process to exit. */
    void kill();

    /** SIGTERM (controlled shutdown), SIGKILL if still running after a bound. */
    void stop();

    /**
     * The exit status of the process last stopped: -1 if it did not exit within the bound
     * after SIGTERM (it was then killed).
     */
    Integer lastExit();

    /** Exit statuses a clean SIGTERM shutdown may end with. */
    List<Integer> cleanExits();

    String bootstrap();

    boolean diedUnexpectedly();

    String logTail(int lines);

    /** A Klamm broker of a cluster on ZooKeeper. */
    final class Klamm implements ClusterNode {
        private final int id;
        private final Broker broker;

        Klamm(int id, Path dir, List<String> flags) {
            this.id = id;
            this.broker = Broker.klammIn(dir, flags);
        }

        @Override
        public int id() {
            return id;
        }

        @Override
        public void launch() {
            broker.start(); // Klamm is ready at once: no quorum to wait for
        }

        @Override
        public void awaitReady() {
        }

        @Override
        public void kill() {
            broker.kill();
        }

        @Override
        public void stop() {
            broker.stop();
        }

        @Override
        public Integer lastExit() {
            return broker.lastExit();
        }

        @Override
        public List<Integer> cleanExits() {
            return List.of(0);
        }

        @Override
        public String bootstrap() {
            return "127.0.0.1:" + broker.port();
        }

        @Override
        public boolean diedUnexpectedly() {
            return broker.diedUnexpectedly();
        }

        @Override
        public String logTail(int lines) {
            return broker.logTail(lines);
        }
    }

    /**
     * Apache Kafka 4.4 (the jars {@code compat-tests/kafka/kafka.sh install} fetches), KRaft
     * combined mode, in a static quorum of three voters: the reference for the cluster test.
     */
    final class Kafka implements ClusterNode {
        static final Duration READY_TIMEOUT = Duration.ofSeconds(120);
        static final Duration STOP_TIMEOUT = Duration.ofSeconds(30);

        private final int id;
        private final Path dir;
        private final Path props;
        private final Path logFile;
        private final int port;
        private final Path libs;
        private Process process;
        private boolean running;
        private Integer lastExit;

        /**
         * {@code ports[i]} / {@code controllerPorts[i]} belong to node {@code i + 1};
         * {@code extra} are broker properties (name=value).
         */
        Kafka(int id, Path dir, int[] ports, int[] controllerPorts, String clusterId, List<String> extra) {
            this.id = id;
            this.dir = dir;
            this.props = dir.resolve("server.properties");
            this.logFile = dir.resolve("broker.log");
            this.port = ports[id - 1];
            this.libs = install();
            List<String> voters = new ArrayList<>();
            for (int i = 0; i < controllerPorts.length; i++) {
                voters.add((i + 1) + "@127.0.0.1:" + controllerPorts[i]);
            }
            List<String> lines = new ArrayList<>(List.of(
                    "process.roles=broker,controller",
                    "node.id=" + id,
                    "controller.quorum.voters=" + String.join(",", voters),
                    "listeners=PLAINTEXT://127.0.0.1:" + port + ",CONTROLLER://127.0.0.1:" + controllerPorts[id - 1],
                    "advertised.listeners=PLAINTEXT://127.0.0.1:" + port,
                    "inter.broker.listener.name=PLAINTEXT",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "log.dirs=" + dir.resolve("data"),
                    "num.network.threads=2",
                    "num.io.threads=4",
                    "num.recovery.threads.per.data.dir=1",
                    "group.initial.rebalance.delay.ms=0"));
            lines.addAll(extra);
            try {
                Files.createDirectories(dir);
                Files.write(props, lines, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            Process fmt = java(List.of("kafka.tools.StorageTool", "format", "-t", clusterId, "-c", props.toString()),
                    "-Xmx256m");
            try {
                if (!fmt.waitFor(READY_TIMEOUT.toSeconds(), TimeUnit.SECONDS) || fmt.exitValue() != 0) {
                    fmt.destroyForcibly();
                    throw new IllegalStateException("kafka storage format failed:\n" + logTail(40));
                }
                Broker.untrack(fmt);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }

        /** A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with "-". */
        static String newClusterId() {
            while (true) {
                UUID u = UUID.randomUUID();
                java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16);
                b.putLong(u.getMostSignificantBits()).putLong(u.getLeastSignificantBits());
                String s = Base64.getUrlEncoder().withoutPadding().encodeToString(b.array());
                if (!s.startsWith("-")) {
                    return s;
                }
            }
        }

        /** {@code kafka.sh install}: the libs dir (fetched once with Maven into ~/.cache/klamm). */
        static synchronized Path install() {
            Path script = Broker.repoRoot().resolve("compat-tests/kafka/kafka.sh");
            try {
                Process p = new ProcessBuilder("bash", script.toString(), "install")
                        .redirectError(ProcessBuilder.Redirect.INHERIT)
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                        .start();
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
                if (!p.waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
                    throw new IllegalStateException("kafka.sh install failed: " + out);
                }
                String[] lines = out.split("\n");
                return Paths.get(lines[lines.length - 1].trim());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }

        private Process java(List<String> mainAndArgs, String... jvm) {
            List<String> cmd = new ArrayList<>();
            cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
            cmd.addAll(List.of(jvm));
            cmd.add("-Dlog4j2.configurationFile=" + libs.getParent().resolve("log4j2.properties"));
            cmd.add("-Dkafka.logs.dir=" + dir.resolve("logs"));
            cmd.add("-cp");
            cmd.add(libs + "/*");
            cmd.addAll(mainAndArgs);
            try {
                Files.writeString(logFile, "\n===== " + String.join(" ", mainAndArgs) + " =====\n",
                        StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE,
                        java.nio.file.StandardOpenOption.APPEND);
                Process p = new ProcessBuilder(cmd)
                        .redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                        .start();
                Broker.track(p);
                return p;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        @Override
        public int id() {
            return id;
        }

        @Override
        public synchronized void launch() {
            if (running) {
                throw new IllegalStateException("node " + id + " already running");
            }
            process = java(List.of("kafka.Kafka", props.toString()), "-Xmx512m", "-Xms256m", "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=96m", "-XX:+ExitOnOutOfMemoryError",
                    "-Djava.awt.headless=true");
            running = true;
        }

        /** Serving: a describeCluster asked of this node alone lists it (registered and unfenced). */
        @Override
        public void awaitReady() {
            Properties p = new Properties();
            p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
            p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
            p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
            long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
            try (Admin admin = Admin.create(p)) {
                while (System.nanoTime() < deadline) {
                    Process proc = process;
                    if (proc == null || !proc.isAlive()) {
                        throw new IllegalStateException("kafka node " + id + " exited before it was ready:\n" + logTail(60));
                    }
                    try {
                        for (Node n : admin.describeCluster().nodes().get(5, TimeUnit.SECONDS)) {
                            if (n.id() == id) {
                                return;
                            }
                        }
                    } catch (Exception notYet) {
                        // not serving yet
                    }
                    Thread.sleep(250);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            throw new IllegalStateException("kafka node " + id + " not ready within " + READY_TIMEOUT + ":\n" + logTail(60));
        }

        @Override
        public void kill() {
            halt(true);
        }

        @Override
        public void stop() {
            halt(false);
        }

        private synchronized void halt(boolean hard) {
            Process p = process;
            process = null;
            running = false;
            lastExit = null;
            if (p == null) {
                return;
            }
            lastExit = Broker.stopProcess(p, hard, STOP_TIMEOUT);
        }

        @Override
        public synchronized Integer lastExit() {
            return lastExit;
        }

        /** A JVM ended by SIGTERM (shutdown hooks run) exits with 143. */
        @Override
        public List<Integer> cleanExits() {
            return List.of(0, 143);
        }

        @Override
        public String bootstrap() {
            return "127.0.0.1:" + port;
        }

        @Override
        public synchronized boolean diedUnexpectedly() {
            return running && process != null && !process.isAlive();
        }

        @Override
        public String logTail(int n) {
            try {
                if (!Files.exists(logFile)) {
                    return "<no " + logFile + ">\n";
                }
                List<String> lines = Files.readAllLines(logFile, StandardCharsets.UTF_8);
                return "----- " + logFile + " (last " + Math.min(n, lines.size()) + " lines) -----\n"
                        + String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size())) + "\n";
            } catch (IOException | RuntimeException e) {
                return "<cannot read " + logFile + ": " + e + ">\n";
            }
        }
    }
}
