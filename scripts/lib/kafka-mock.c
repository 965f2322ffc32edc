/* A Kafka-protocol peer for tests: librdkafka's own mock cluster (3 brokers) on loopback.
 *
 * Usage: kafka-mock [--control FIFO] [TOPIC...]
 * Prints the bootstrap servers on stdout, then runs until SIGTERM/SIGINT. With --control,
 * creates FIFO and applies one command per line written to it:
 *   errors APIKEY ERRCODE COUNT   the next COUNT requests of APIKEY (0 = Produce) fail with ERRCODE
 *   topic NAME PARTITIONS         creates a topic (replication factor 3)
 *   down BROKER / up BROKER       takes a broker (1..3) down or back up
 * Built by scripts/test with gcc against librdkafka-dev. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested = 0;
static rd_kafka_mock_cluster_t *cluster;
static const char *control_path;

static void on_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

static void apply(char *line) {
    char name[256];
    int a, b, c;
    if (sscanf(line, "errors %d %d %d", &a, &b, &c) == 3 && c > 0 && c < 100000) {
        rd_kafka_resp_err_t *errors = calloc((size_t)c, sizeof *errors);
        for (int i = 0; i < c; i++) errors[i] = (rd_kafka_resp_err_t)b;
        rd_kafka_mock_push_request_errors_array(cluster, (int16_t)a, (size_t)c, errors);
        free(errors);
    } else if (sscanf(line, "topic %255s %d", name, &a) == 2) {
        rd_kafka_mock_topic_create(cluster, name, a, 3);
    } else if (sscanf(line, "down %d", &a) == 1) {
        rd_kafka_mock_broker_set_down(cluster, a);
    } else if (sscanf(line, "up %d", &a) == 1) {
        rd_kafka_mock_broker_set_up(cluster, a);
    } else {
        fprintf(stderr, "kafka-mock: unknown command: %s", line);
        return;
    }
    fprintf(stderr, "kafka-mock: applied: %s", line);
}

static void *read_control(void *unused) {
    (void)unused;
    char line[512];
    while (!stop_requested) {
        FILE *fifo = fopen(control_path, "r"); /* blocks until a writer opens it */
        if (fifo == NULL) return NULL;
        while (fgets(line, sizeof line, fifo) != NULL) apply(line);
        fclose(fifo);
    }
    return NULL;
}

int main(int argc, char **argv) {
    char error[512];
    int first_topic = 1;
    if (argc > 2 && strcmp(argv[1], "--control") == 0) {
        control_path = argv[2];
        first_topic = 3;
        unlink(control_path);
        if (mkfifo(control_path, 0600) != 0) {
            perror("kafka-mock: mkfifo");
            return 1;
        }
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (rk == NULL) {
        fprintf(stderr, "kafka-mock: %s\n", error);
        return 1;
    }
    cluster = rd_kafka_mock_cluster_new(rk, 3);
    if (cluster == NULL) {
        fprintf(stderr, "kafka-mock: cannot create the mock cluster\n");
        return 1;
    }
    for (int i = first_topic; i < argc; i++) {
        rd_kafka_mock_topic_create(cluster, argv[i], 3, 3);
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (control_path != NULL) {
        pthread_t thread;
        pthread_create(&thread, NULL, read_control, NULL);
        pthread_detach(thread);
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
    fflush(stdout);
    while (!stop_requested) {
        pause();
    }
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(rk);
    if (control_path != NULL) unlink(control_path);
    return 0;
}
