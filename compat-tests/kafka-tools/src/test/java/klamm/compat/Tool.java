package klamm.compat;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

/** Runs one of Kafka's command-line tools (a main class) in a child JVM, as the kafka-*.sh scripts do. */
final class Tool {
    private static final AtomicInteger SEQ = new AtomicInteger();
    static final AtomicInteger INVOCATIONS = new AtomicInteger();

    static final class Result {
        final String command;
        final int exit;
        final String stdout;
        final String stderr;
        final long millis;

        Result(String command, int exit, String stdout, String stderr, long millis) {
            this.command = command;
            this.exit = exit;
            this.stdout = stdout;
            this.stderr = stderr;
            this.millis = millis;
        }

        List<String> lines() {
            return stdout.lines().collect(Collectors.toList());
        }

        @Override
        public String toString() {
            return "\n$ " + command + "\nexit " + exit + " after " + millis + " ms\n--- stdout ---\n" + stdout
                    + "--- stderr ---\n" + tail(stderr, 60) + "---";
        }

        private static String tail(String s, int n) {
            List<String> l = s.lines().collect(Collectors.toList());
            return String.join("\n", l.subList(Math.max(0, l.size() - n), l.size())) + (l.isEmpty() ? "" : "\n");
        }
    }

    private static String classpath() {
        try {
            Path f = Paths.get(System.getProperty("tools.classpath", "target/tools.classpath"));
            return Files.readString(f).strip();
        } catch (IOException e) {
            throw new IllegalStateException("tools classpath file missing (mvn generate-test-resources writes it)", e);
        }
    }

    /** Runs MAIN with args in a child JVM; stdin (may be null) is fed to it. */
    static Result java(String main, String stdin, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(List.of("-Xmx256m", "-Xss1m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-XX:-UsePerfData", "-Xshare:auto", "-Djava.awt.headless=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-Dorg.slf4j.simpleLogger.logFile=System.err",
                "-cp", classpath(), main));
        cmd.addAll(Arrays.asList(args));
        INVOCATIONS.incrementAndGet();
        Result r = exec(cmd, stdin, 90);
        String shortCmd = main.substring(main.lastIndexOf('.') + 1) + " " + String.join(" ", args);
        System.out.println("[tool] " + shortCmd + " -> exit " + r.exit + " (" + r.millis + " ms)");
        Result result = new Result(shortCmd, r.exit, r.stdout, r.stderr, r.millis);
        // every invocation with its whole output, for comparing brokers
        Path transcript = Paths.get(System.getProperty("work.dir", "target/work")).toAbsolutePath().resolve("transcript.log");
        synchronized (Tool.class) {
            Files.writeString(transcript, result.toString() + "\n", StandardCharsets.UTF_8,
                    java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        }
        return result;
    }

    /** Runs a command with stdout/stderr to files (no pipe deadlock), bounded by timeoutSeconds. */
    static Result exec(List<String> cmd, String stdin, int timeoutSeconds) throws Exception {
        Path work = Paths.get(System.getProperty("work.dir", "target/work")).toAbsolutePath().resolve("tools");
        Files.createDirectories(work);
        int n = SEQ.incrementAndGet();
        Path out = work.resolve(n + ".out"), err = work.resolve(n + ".err"), in = work.resolve(n + ".in");
        Files.writeString(in, stdin == null ? "" : stdin, StandardCharsets.UTF_8);
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .redirectOutput(out.toFile())
                .redirectError(err.toFile())
                .redirectInput(stdin == null ? ProcessBuilder.Redirect.from(new File("/dev/null"))
                        : ProcessBuilder.Redirect.from(in.toFile()));
        long t0 = System.nanoTime();
        Process p = pb.start();
        boolean done = p.waitFor(timeoutSeconds, TimeUnit.SECONDS);
        if (!done) {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        String so = Files.readString(out, StandardCharsets.UTF_8);
        String se = Files.readString(err, StandardCharsets.UTF_8);
        String c = String.join(" ", cmd);
        if (!done) {
            throw new AssertionError("timed out after " + timeoutSeconds + " s: " + new Result(c, -1, so, se, ms));
        }
        return new Result(c, p.exitValue(), so, se, ms);
    }
}
