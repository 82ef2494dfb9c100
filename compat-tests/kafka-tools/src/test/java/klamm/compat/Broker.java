package klamm.compat;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

/**
 * The broker under test: Klamm ({@code $KLAMM_BIN}, default the release build) on a free
 * loopback port with a fresh data dir, or, with {@code COMPAT_BROKER=kafka}, the reference
 * Apache Kafka 4.4 started by {@code compat-tests/kafka/kafka.sh}. Broker settings are given
 * with Kafka's property names; Klamm takes them as {@code --name value} (it accepts Kafka's
 * names as flag aliases), kafka.sh as {@code name=value}. Stopped by PID. For Kafka,
 * {@code listeners} of PLAINTEXT and SASL_PLAINTEXT listeners get a CONTROLLER listener added
 * (kafka.sh's own is in the listeners they replace); for Klamm, the server-side SCRAM JAAS
 * entries Kafka needs ({@code listener.name.*.scram-sha-*.sasl.jaas.config}) are left out.
 */
final class Broker implements AutoCloseable {
    static final String DEFAULT_KLAMM_BIN = "/root/.cache/klamm/target/release/klamm";
    private static final Pattern ANSI = Pattern.compile("\u001b\\[[0-9;]*m");

    final String name;
    final Path dir;
    private final Path log;
    private final boolean kafka;
    private Process process;
    private String bootstrap;

    private Broker(String name, boolean kafka) throws IOException {
        this.name = name;
        this.kafka = kafka;
        Path work = Paths.get(System.getProperty("work.dir", "target/work")).toAbsolutePath();
        Files.createDirectories(work);
        this.dir = Files.createTempDirectory(work, "broker-" + name + "-");
        this.log = dir.resolve("broker.log");
    }

    static boolean isKafka() {
        return "kafka".equalsIgnoreCase(System.getenv().getOrDefault("COMPAT_BROKER", "klamm"));
    }

    /** Starts a fresh broker. settings: Kafka property names and values. */
    static Broker start(String name, Map<String, String> settings) throws Exception {
        Map<String, String> all = new LinkedHashMap<>();
        all.put("group.min.session.timeout.ms", "1000");
        all.put("group.initial.rebalance.delay.ms", "0");
        all.put("transaction.abort.timed.out.transaction.cleanup.interval.ms", "100");
        all.putAll(settings);
        Broker b = new Broker(name, isKafka());
        if (b.kafka) b.startKafka(all); else b.startKlamm(all);
        Runtime.getRuntime().addShutdownHook(new Thread(b::close));
        return b;
    }

    String bootstrap() { return bootstrap; }

    boolean kafka() { return kafka; }

    String label() { return (kafka ? "kafka" : "klamm") + "@" + bootstrap; }

    Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        return Admin.create(p);
    }

    String logTail() {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "(no broker log: " + e + ")";
        }
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress("127.0.0.1", 0));
            return s.getLocalPort();
        }
    }

    private void startKlamm(Map<String, String> settings) throws Exception {
        String bin = System.getenv().getOrDefault("KLAMM_BIN", DEFAULT_KLAMM_BIN);
        if (bin.isEmpty()) bin = DEFAULT_KLAMM_BIN;
        if (!Files.isExecutable(Paths.get(bin))) {
            throw new IllegalStateException("klamm binary not found at " + bin + " (set KLAMM_BIN)");
        }
        List<String> cmd = new ArrayList<>(List.of(bin, "--data-dir", dir.resolve("data").toString()));
        String listeners = settings.get("listeners");
        if (listeners != null) {
            // Kafka's listeners, NAME://127.0.0.1:PORT,...: the first is the one "klamm ready on" names
            String first = listeners.split(",")[0].trim();
            bootstrap = first.substring(first.indexOf("://") + 3);
        } else {
            bootstrap = "127.0.0.1:" + freePort();
            cmd.addAll(List.of("--listen", bootstrap));
        }
        settings.forEach((k, v) -> {
            if (k.equals("authorizer.class.name")) {
                // Klamm's --authorizer is Kafka's StandardAuthorizer (a switch, no value)
                if (!v.isEmpty()) cmd.add("--authorizer");
            } else if (k.matches("listener\\.name\\.[a-z_]+\\.plain\\.sasl\\.jaas\\.config")) {
                // PlainLoginModule's user_NAME="PASSWORD" options are Klamm's --bootstrap-users
                Matcher m = Pattern.compile("user_([^=\\s]+)=\"([^\"]*)\"").matcher(v);
                List<String> users = new ArrayList<>();
                while (m.find()) users.add(m.group(1) + ":" + m.group(2));
                cmd.add("--bootstrap-users");
                cmd.add(String.join(",", users));
            } else if (k.matches("listener\\.name\\.[a-z_]+\\.scram-sha-(256|512)\\.sasl\\.jaas\\.config")) {
                // Kafka's server-side ScramLoginModule entry (no options): Klamm's SCRAM needs none
            } else {
                cmd.add("--" + k);
                cmd.add(v);
            }
        });
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        // KLAMM_* variables would override the flags the tests rely on.
        pb.environment().keySet().removeIf(k -> k.startsWith("KLAMM_") && !k.equals("KLAMM_LOG_LEVEL"));
        pb.environment().put("NO_COLOR", "1");
        process = pb.start();
        String ready = "klamm ready on " + bootstrap;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            String text = Files.exists(log)
                    ? ANSI.matcher(Files.readString(log, StandardCharsets.UTF_8)).replaceAll("") : "";
            if (text.contains(ready)) {
                System.out.println("[broker] " + label() + " pid " + process.pid() + " dir " + dir);
                return;
            }
            if (!process.isAlive()) {
                throw new IllegalStateException("klamm exited with " + process.exitValue()
                        + " before ready:\n" + logTail());
            }
            Thread.sleep(20);
        }
        close();
        throw new IllegalStateException("klamm not ready within 20 s:\n" + logTail());
    }

    static Path kafkaScript() {
        Path base = Paths.get(System.getProperty("compat.dir", ".")).toAbsolutePath();
        return base.resolve("../kafka/kafka.sh").normalize();
    }

    private void startKafka(Map<String, String> settings) throws Exception {
        Path script = kafkaScript();
        if (!Files.exists(script)) throw new IllegalStateException(script + " not found");
        List<String> cmd = new ArrayList<>(List.of("bash", script.toString(), "start", dir.resolve("kafka").toString()));
        Map<String, String> all = new LinkedHashMap<>(settings);
        String listeners = settings.get("listeners");
        if (listeners != null && !listeners.contains("CONTROLLER://")
                && listeners.matches("((PLAINTEXT|SASL_PLAINTEXT)://127\\.0\\.0\\.1:\\d+,?)+")) {
            // kafka.sh's CONTROLLER listener is in the listeners these replace: add one, with its
            // quorum bootstrap, and the protocol map (kafka.sh reports the PLAINTEXT port)
            int controller = freePort();
            all.put("listeners", listeners + ",CONTROLLER://127.0.0.1:" + controller);
            all.put("advertised.listeners", listeners);
            all.put("controller.quorum.bootstrap.servers", "127.0.0.1:" + controller);
            all.put("listener.security.protocol.map",
                    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT");
        }
        all.forEach((k, v) -> cmd.add(k + "=" + v));
        Tool.Result r = Tool.exec(cmd, null, 240);
        String out = r.stdout.strip();
        String last = out.isEmpty() ? "" : out.substring(out.lastIndexOf('\n') + 1).strip();
        if (r.exit != 0 || !last.matches("127\\.0\\.0\\.1:\\d+")) {
            throw new IllegalStateException("kafka.sh start failed: " + r);
        }
        bootstrap = last;
        System.out.println("[broker] " + label() + " dir " + dir);
    }

    @Override
    public synchronized void close() {
        if (kafka) {
            if (bootstrap == null) return;
            try {
                Tool.exec(List.of("bash", kafkaScript().toString(), "stop", dir.resolve("kafka").toString()), null, 120);
            } catch (Exception e) {
                System.err.println("[broker] kafka.sh stop failed: " + e);
            }
            bootstrap = null;
            return;
        }
        if (process == null) return;
        Process p = process;
        process = null;
        if (p.isAlive()) {
            p.destroy(); // SIGTERM to this PID
            try {
                if (!p.waitFor(15, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    p.waitFor(10, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }
}
