package dev.klamm.compat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/** A {@link GroupMember} in a child JVM: its owned partitions as it reports them, and SIGKILL. */
public final class ChildMember implements AutoCloseable {
    private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> LIVE.forEach(Process::destroyForcibly)));
    }

    private final Process process;
    private final Path log;
    private final List<String> lines = new ArrayList<>();
    private volatile Set<Integer> owned = Set.of();

    public ChildMember(String bootstrap, String group, String topic, String... config) {
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp, GroupMember.class.getName(),
                bootstrap, group, topic));
        cmd.addAll(List.of(config));
        try {
            log = Files.createTempFile("child-member-", ".log");
            process = new ProcessBuilder(cmd).redirectError(log.toFile()).start();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        LIVE.add(process);
        Thread reader = new Thread(this::read, "child-member-reader");
        reader.setDaemon(true);
        reader.start();
    }

    private void read() {
        try (BufferedReader in = new BufferedReader(
                new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                synchronized (this) {
                    lines.add(line);
                }
                if (line.startsWith("OWNED")) {
                    Set<Integer> set = new TreeSet<>();
                    String rest = line.substring(5).trim();
                    if (!rest.isEmpty()) {
                        for (String s : rest.split(",")) {
                            set.add(Integer.parseInt(s));
                        }
                    }
                    owned = set;
                }
            }
        } catch (IOException ignored) {
            // the process died
        }
    }

    public Set<Integer> owned() {
        return owned;
    }

    public boolean started() {
        synchronized (this) {
            return lines.contains("STARTED");
        }
    }

    public boolean alive() {
        return process.isAlive();
    }

    /** SIGKILL, and wait for the process to be gone. */
    public void kill() {
        process.destroyForcibly();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                throw new AssertionError("child member still alive 10 s after SIGKILL");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        LIVE.remove(process);
    }

    public synchronized String output() {
        String err;
        try {
            err = Files.readString(log);
        } catch (IOException e) {
            err = "<" + e + ">";
        }
        return "stdout:\n" + String.join("\n", lines) + "\nstderr:\n" + err;
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            kill();
        }
        LIVE.remove(process);
        try {
            Files.deleteIfExists(log);
        } catch (IOException ignored) {
            // temp file
        }
    }

    @Override
    public String toString() {
        return "child" + owned;
    }
}
