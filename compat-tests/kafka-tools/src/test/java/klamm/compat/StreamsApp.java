package klamm.compat;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The word count of {@link StreamsWordCountTest} for {@code group.protocol=streams}
 * (KIP-1071): the topology and the configs {@link StreamsGroupProtocolTest} uses in the test
 * JVM, and a main that runs one more instance of the same application in a child JVM.
 *
 * <pre>java -cp TOOLS_CLASSPATH:TEST_CLASSES klamm.compat.StreamsApp BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR APP_SERVER</pre>
 *
 * The child prints {@code STATE <new state>} on each state change (so the parent can wait
 * for {@code STATE RUNNING}), {@code ERROR <exception>} on an uncaught exception (the client
 * then shuts down), and exits when the client is NOT_RUNNING or in ERROR; SIGTERM closes it
 * (leaving the group), SIGKILL is the crash case.
 */
public final class StreamsApp {
    private StreamsApp() {}

    /**
     * flatMapValues (words) -> groupBy (repartition topic APP-words-repartition) -> count
     * (store "counts", changelog APP-counts-changelog) -> the output topic: two subtopologies,
     * "0" (reads the input, writes the repartition topic) and "1" (reads the repartition
     * topic, the stateful one).
     */
    static Topology topology(String input, String output) {
        return topology(List.of(input), output);
    }

    /**
     * The same word count reading several input topics (one source node, subtopology "0";
     * the topics need the same partition count). StreamsBuilder.stream(topic) is
     * stream(singleton(topic)), so one input gives the same topology as above.
     */
    static Topology topology(List<String> inputs, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(inputs, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> List.of(line.toLowerCase().split("\\W+")))
                .filter((k, w) -> !w.isEmpty())
                .groupBy((k, w) -> w, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    /** The configs of every instance: the streams protocol, exactly_once_v2, IQ endpoint. */
    static Properties props(String bootstrap, String appId, Path stateDir, String applicationServer) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.APPLICATION_SERVER_CONFIG, applicationServer);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        p.put("processing.exception.handler.global.enabled", "true"); // silences a 4.4 warning
        // a killed instance's open transaction blocks the last stable offset of the partitions
        // it wrote until the broker aborts it: keep that short
        p.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), "5000");
        return p;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: StreamsApp BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR APP_SERVER");
            System.exit(2);
        }
        Properties p = props(args[0], args[1], Paths.get(args[4]), args[5]);
        KafkaStreams streams = new KafkaStreams(topology(args[2], args[3]), p);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now);
            System.out.flush();
            if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) done.countDown();
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("ERROR " + e);
            System.out.flush();
            e.printStackTrace();
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            done.countDown();
        }));
        streams.start();
        done.await();
        streams.close(Duration.ofSeconds(10));
        System.out.println("EXIT");
        System.out.flush();
    }
}
