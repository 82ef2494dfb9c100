package dev.klamm.compat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Debian's ZooKeeper ({@code apt-get install zookeeper}), standalone, on a free loopback port
 * with a config, data dir and log of its own in {@code dir}: what a Klamm cluster
 * ({@code --zookeeper-connect}) keeps its metadata in. {@code zkServer.sh start-foreground}
 * execs java, so the process started here is ZooKeeper's JVM and is stopped by its handle.
 */
public final class ZkServer {
    public static final Path SCRIPT = Paths.get("/usr/share/zookeeper/bin/zkServer.sh");
    static final Duration READY_TIMEOUT = Duration.ofSeconds(30);

    private final Path dir;
    private final Path logFile;
    private final int port;
    private Process process;

    public ZkServer(Path dir) {
        this.dir = dir;
        this.logFile = dir.resolve("zookeeper.log");
        this.port = Broker.freePort();
    }

    public static boolean installed() {
        return Files.isExecutable(SCRIPT);
    }

    /** HOST:PORT for {@code --zookeeper-connect} (append a chroot). */
    public String connect() {
        return "127.0.0.1:" + port;
    }

    public Path logFile() {
        return logFile;
    }

    /** Starts it and waits (bounded) until its client port accepts TCP. */
    public ZkServer start() {
        try {
            Files.createDirectories(dir.resolve("zk-data"));
            Path cfg = dir.resolve("zoo.cfg");
            Files.writeString(cfg, "tickTime=500\nminSessionTimeout=1000\ndataDir=" + dir.resolve("zk-data")
                    + "\nclientPort=" + port + "\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n");
            ProcessBuilder pb = new ProcessBuilder(List.of(SCRIPT.toString(), "start-foreground", cfg.toString()))
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            pb.environment().put("ZOOCFGDIR", dir.toString());
            pb.environment().put("ZOO_LOG_DIR", dir.toString());
            process = pb.start();
            Broker.track(process);
            long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
            while (System.nanoTime() < deadline) {
                if (!process.isAlive()) {
                    throw new IllegalStateException("ZooKeeper exited with " + process.exitValue()
                            + " before it listened:\n" + logTail(40));
                }
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
                    return this;
                } catch (IOException notYet) {
                    Thread.sleep(100);
                }
            }
            stop();
            throw new IllegalStateException("ZooKeeper not listening on " + connect() + " within "
                    + READY_TIMEOUT + ":\n" + logTail(40));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    public boolean alive() {
        return process != null && process.isAlive();
    }

    /** SIGTERM, then SIGKILL after 15 s. */
    public void stop() {
        Process p = process;
        process = null;
        if (p == null) {
            return;
        }
        try {
            p.destroy();
            if (!p.waitFor(15, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(15, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        } finally {
            Broker.untrack(p);
        }
    }

    public String logTail(int n) {
        try {
            if (!Files.exists(logFile)) {
                return "<no " + logFile + ">";
            }
            List<String> lines = Files.readAllLines(logFile, StandardCharsets.UTF_8);
            return "----- " + logFile + " (last " + Math.min(n, lines.size()) + " lines) -----\n"
                    + String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
        } catch (IOException | RuntimeException e) {
            return "<cannot read " + logFile + ": " + e + ">";
        }
    }
}
