package dev.klamm.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Function;

import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * A group member in this JVM: a consumer polled by its own thread, which records every
 * rebalance callback. {@link #close()} closes the consumer (a dynamic member leaves the group).
 */
public final class Member implements AutoCloseable {
    /** One rebalance callback: "assigned", "revoked" or "lost", with its partitions. */
    public record Event(String kind, Set<Integer> partitions) {
    }

    public final String name;
    private final KafkaConsumer<byte[], byte[]> consumer;
    private final Thread thread;
    private final ConcurrentLinkedQueue<Runnable> tasks = new ConcurrentLinkedQueue<>();
    private final List<Event> events = new ArrayList<>();
    private final Set<Integer> owned = new TreeSet<>();
    private volatile boolean stop;
    private volatile ConsumerGroupMetadata metadata;
    private volatile Throwable error;
    private volatile long records;

    public Member(String name, String bootstrap, String group, String topic, Object... config) {
        this.name = name;
        this.consumer = Kit.consumer(bootstrap, group, config);
        this.thread = new Thread(() -> run(topic), "member-" + name);
        this.thread.setDaemon(true);
        this.thread.start();
    }

    private void run(String topic) {
        try {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    record("revoked", partitions);
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    record("assigned", partitions);
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    record("lost", partitions);
                }
            });
            while (!stop) {
                Runnable task;
                while ((task = tasks.poll()) != null) {
                    task.run();
                }
                records += consumer.poll(Duration.ofMillis(100)).count();
                metadata = consumer.groupMetadata();
            }
        } catch (Throwable t) {
            error = t;
        } finally {
            try {
                consumer.close(Duration.ofSeconds(10));
            } catch (Throwable t) {
                if (error == null) {
                    error = t;
                }
            }
        }
    }

    private void record(String kind, Collection<TopicPartition> partitions) {
        Set<Integer> ps = new TreeSet<>();
        partitions.forEach(tp -> ps.add(tp.partition()));
        synchronized (this) {
            events.add(new Event(kind, ps));
            if (kind.equals("assigned")) {
                owned.addAll(ps);
            } else {
                owned.removeAll(ps);
            }
        }
    }

    /** The partitions this member owns now (per its callbacks). */
    public synchronized Set<Integer> owned() {
        return new TreeSet<>(owned);
    }

    public synchronized List<Event> events() {
        return new ArrayList<>(events);
    }

    /** The partitions revoked (or lost) since event number {@code from}. */
    public synchronized Set<Integer> revokedSince(int from) {
        Set<Integer> out = new HashSet<>();
        for (Event e : events.subList(from, events.size())) {
            if (!e.kind().equals("assigned")) {
                out.addAll(e.partitions());
            }
        }
        return out;
    }

    public synchronized int eventCount() {
        return events.size();
    }

    public ConsumerGroupMetadata metadata() {
        return metadata;
    }

    public long recordsReceived() {
        return records;
    }

    public Throwable error() {
        return error;
    }

    /** Run {@code f} on the consumer's thread (KafkaConsumer is single-threaded). */
    public <T> T call(Function<KafkaConsumer<byte[], byte[]>, T> f) {
        CompletableFuture<T> result = new CompletableFuture<>();
        tasks.add(() -> {
            try {
                result.complete(f.apply(consumer));
            } catch (Throwable t) {
                result.completeExceptionally(t);
            }
        });
        return Kit.get(result);
    }

    @Override
    public void close() {
        stop = true;
        try {
            thread.join(20_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            throw new AssertionError("member " + name + " did not close within 20 s");
        }
    }

    @Override
    public String toString() {
        return name + owned();
    }
}
