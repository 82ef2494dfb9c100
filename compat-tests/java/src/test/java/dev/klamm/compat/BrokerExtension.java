package dev.klamm.compat;

import java.util.List;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A fresh broker per test class ({@code @RegisterExtension static}) or per test
 * ({@code @RegisterExtension} on an instance field):
 *
 * <pre>
 * &#64;RegisterExtension
 * static final BrokerExtension broker = new BrokerExtension("--group-min-session-timeout-ms", "1000");
 * </pre>
 *
 * The broker log written during a failed test is printed; a Klamm process that died on its
 * own fails the class.
 */
public final class BrokerExtension
        implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback, AfterEachCallback {
    private final List<String> args;
    private Broker broker;
    private boolean perClass;
    private long testLogStart;

    public BrokerExtension(String... klammArgs) {
        this.args = List.of(klammArgs);
    }

    public Broker broker() {
        if (broker == null) {
            throw new IllegalStateException("no broker started (is the extension registered?)");
        }
        return broker;
    }

    public String bootstrap() {
        return broker().bootstrap();
    }

    public Broker restart() {
        return broker().restart();
    }

    public Broker killAndRestart() {
        return broker().killAndRestart();
    }

    public boolean kill() {
        return broker().kill();
    }

    public boolean isKafka() {
        return Broker.isKafka();
    }

    /** The Klamm-only flag this broker needs, when running against Kafka (the tests are skipped). */
    private String klammOnlyUnderKafka() {
        if (Broker.isKafka()) {
            for (int i = 0; i < args.size(); i += 2) {
                if (Broker.klammOnly(args.get(i), args.get(i + 1))) {
                    return args.get(i);
                }
            }
        }
        return null;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        perClass = true;
        if (klammOnlyUnderKafka() != null) {
            return; // each test is skipped in beforeEach, so the report lists them as skipped
        }
        broker = new Broker(args).start();
    }

    @Override
    public void beforeEach(ExtensionContext context) {
        String klammOnly = klammOnlyUnderKafka();
        if (klammOnly != null) {
            org.junit.jupiter.api.Assumptions.abort("needs the flag " + klammOnly
                    + ", Klamm-only or not mapped to Kafka by this suite (COMPAT_BROKER=kafka)");
        }
        if (!perClass) {
            broker = new Broker(args).start();
        }
        testLogStart = broker.logSize();
    }

    @Override
    public void afterEach(ExtensionContext context) {
        context.getExecutionException()
                .filter(e -> !(e instanceof org.opentest4j.TestAbortedException)) // skipped by an assumption
                .ifPresent(e -> printLog(context));
        if (!perClass) {
            finish();
        }
    }

    @Override
    public void afterAll(ExtensionContext context) {
        finish();
    }

    private void finish() {
        Broker b = broker;
        if (b == null) {
            return;
        }
        boolean died = b.diedUnexpectedly();
        String tail = died ? b.logTail(80) : "";
        b.stop();
        if (died) {
            throw new AssertionError("the broker died during the tests:\n" + tail);
        }
        if (Boolean.getBoolean("compat.keep")) {
            System.out.println("broker log kept (-Dcompat.keep=true): " + b.logFile());
        } else {
            b.cleanUp();
        }
    }

    private void printLog(ExtensionContext context) {
        Broker b = broker;
        if (b == null) {
            return;
        }
        String log;
        try {
            log = b.readFrom(testLogStart);
            String[] lines = log.split("\n");
            if (lines.length > 120) {
                log = "... (" + (lines.length - 120) + " lines cut)\n"
                        + String.join("\n", List.of(lines).subList(lines.length - 120, lines.length));
            }
        } catch (Exception e) {
            log = b.logTail(120);
        }
        System.out.println("\n===== " + context.getRequiredTestClass().getSimpleName() + "." + context.getDisplayName() + " FAILED: broker log during the test ("
                + b.logFile() + ") =====\n" + log + "\n===== end of broker log =====");
        if (b.logSize() > 0 && Broker.isKafka()) {
            System.out.println(b.logTail(60));
        }
    }
}
