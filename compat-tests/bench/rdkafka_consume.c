/* Consume throughput with librdkafka itself, without kcat's per-message formatting.
 *
 * Why: kcat formats and writes every message, and librdkafka pauses fetching for up to a
 * second whenever its application falls 100,000 messages (queued.min.messages) behind, so
 * kcat's numbers measure kcat. This reads COUNT messages of one partition from the beginning
 * with librdkafka's default settings (the simple consumer, as kcat -C uses) and, like Kafka's
 * own kafka-consumer-perf-test, only counts messages and payload bytes, so that the
 * application keeps up with the fetcher and the number is the fetch path's.
 *
 *   rdkafka_consume BOOTSTRAP TOPIC PARTITION COUNT
 * prints: messages=N bytes=B seconds=S; exits 1 on an error or a 60 s timeout.
 */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC PARTITION COUNT\n", argv[0]);
        return 2;
    }
    const char *topic = argv[2];
    int32_t partition = atoi(argv[3]);
    long long want = atoll(argv[4]);
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* RDK_DEBUG=fetch (any librdkafka debug context) shows where the time goes. */
    if (getenv("RDK_DEBUG"))
        rd_kafka_conf_set(conf, "debug", getenv("RDK_DEBUG"), err, sizeof err);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    /* Connect and learn the leader before the clock starts, as kcat does: the measurement
     * is of fetching, not of client start-up. */
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (merr) {
        fprintf(stderr, "metadata: %s\n", rd_kafka_err2str(merr));
        return 1;
    }
    rd_kafka_metadata_destroy(md);
    double t0 = now_s();
    if (rd_kafka_consume_start(rkt, partition, RD_KAFKA_OFFSET_BEGINNING) == -1) {
        fprintf(stderr, "consume_start: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
        return 1;
    }
    rd_kafka_message_t *batch[10000];
    long long got = 0, bytes = 0;
    int status = 0;
    while (got < want) {
        if (now_s() - t0 > 60) {
            fprintf(stderr, "timed out after %lld of %lld messages\n", got, want);
            status = 1;
            break;
        }
        ssize_t n = rd_kafka_consume_batch(rkt, partition, 1000, batch, 10000);
        if (n < 0) {
            fprintf(stderr, "consume_batch: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
            status = 1;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                got++;
                bytes += (long long)m->len;
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "message error: %s\n", rd_kafka_message_errstr(m));
                status = 1;
            }
            rd_kafka_message_destroy(m);
        }
    }
    double elapsed = now_s() - t0;
    printf("messages=%lld bytes=%lld seconds=%.4f\n", got, bytes, elapsed);
    rd_kafka_consume_stop(rkt, partition);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return status;
}
