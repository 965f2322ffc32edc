/* A Kafka-protocol peer for tests: librdkafka's own mock cluster (3 brokers) on loopback.
 * Usage: kafka-mock [TOPIC...]  Prints the bootstrap servers on stdout, then runs until
 * SIGTERM/SIGINT. Built by scripts/test with gcc against librdkafka-dev. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

int main(int argc, char **argv) {
    char error[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (rk == NULL) {
        fprintf(stderr, "kafka-mock: %s\n", error);
        return 1;
    }
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(rk, 3);
    if (cluster == NULL) {
        fprintf(stderr, "kafka-mock: cannot create the mock cluster\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        rd_kafka_mock_topic_create(cluster, argv[i], 3, 3);
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
    fflush(stdout);
    while (!stop_requested) {
        pause();
    }
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(rk);
    return 0;
}
