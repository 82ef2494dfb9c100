package dev.klamm.compat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * A group member in a child JVM, to be killed with SIGKILL by a test ({@link ChildMember}).
 * Arguments: BOOTSTRAP GROUP TOPIC [config=value ...]. Prints one line per event:
 * {@code ASSIGNED 0,1,2}, {@code REVOKED 0}, {@code LOST 1}, {@code OWNED 0,1} (after each
 * callback) and exits when its stdin closes (the test JVM died) or after 120 s.
 */
public final class GroupMember {
    private GroupMember() {
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String group = args[1];
        String topic = args[2];
        Properties p = Kit.consumerProps(bootstrap, group);
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            p.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Thread watchdog = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                while (in.readLine() != null) {
                    // the parent never writes; EOF means it is gone
                }
            } catch (Exception ignored) {
                // fall through
            }
            Runtime.getRuntime().halt(3);
        }, "stdin-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        TreeSet<Integer> owned = new TreeSet<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                void say(String kind, Collection<TopicPartition> ps) {
                    TreeSet<Integer> set = new TreeSet<>();
                    ps.forEach(tp -> set.add(tp.partition()));
                    if (kind.equals("ASSIGNED")) {
                        owned.addAll(set);
                    } else {
                        owned.removeAll(set);
                    }
                    System.out.println(kind + " " + join(set));
                    System.out.println("OWNED " + join(owned));
                    System.out.flush();
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    say("REVOKED", partitions);
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    say("ASSIGNED", partitions);
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    say("LOST", partitions);
                }
            });
            System.out.println("STARTED");
            System.out.flush();
            while (System.nanoTime() < deadline) {
                c.poll(Duration.ofMillis(100));
            }
        }
        Runtime.getRuntime().halt(0);
    }

    static String join(Collection<Integer> ps) {
        StringBuilder sb = new StringBuilder();
        for (Integer p : ps) {
            if (sb.length() > 0) {
                sb.append(',');
            }
            sb.append(p);
        }
        return sb.toString();
    }
}
