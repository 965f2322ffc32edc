/* The reading side of the latency benchmark (scripts/bench-sinks latency).
 *
 * Usage: latency-reader PORT KEY EXPECTED SECONDS
 * Reads the Redis stream KEY from its end with blocking XREADs until EXPECTED entries arrived
 * or SECONDS passed. The latency of an entry is the time its XREAD reply arrived minus the
 * `source.commit_time` inside its `event` field. Prints "ready" once listening, then one JSON
 * line: {"received": N, "p50_ms": .., "p99_ms": .., "max_ms": ..}.
 * Written in C so that the measuring process costs little CPU on a two-core machine.
 * Built by scripts/bench-sinks with gcc against libhiredis-dev. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses "2026-11-21T04:48:56.123456Z" (UTC, optional fraction) at `text`; -1 on failure. */
static double parse_commit_time(const char *text) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int consumed = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &consumed) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    double seconds = (double)timegm(&tm);
    const char *p = text + consumed;
    if (*p == '.') {
        double scale = 0.1;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10) seconds += (*p - '0') * scale;
    }
    return seconds;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: latency-reader PORT KEY EXPECTED SECONDS\n");
        return 2;
    }
    const int port = atoi(argv[1]);
    const char *key = argv[2];
    const long expected = atol(argv[3]);
    const double deadline = now_seconds() + atof(argv[4]);
    redisContext *redis = redisConnect("127.0.0.1", port);
    if (redis == NULL || redis->err) {
        fprintf(stderr, "latency-reader: cannot connect to Redis on port %d\n", port);
        return 1;
    }
    double *latencies = malloc(sizeof(double) * (size_t)(expected > 0 ? expected : 1));
    long received = 0;
    char last_id[64] = "$";
    static const char marker[] = "\"commit_time\":\"";
    printf("ready\n");
    fflush(stdout);
    while (received < expected && now_seconds() < deadline) {
        redisReply *reply = redisCommand(redis, "XREAD BLOCK 500 COUNT 10000 STREAMS %s %s", key, last_id);
        const double arrived = now_seconds();
        if (reply == NULL) {
            fprintf(stderr, "latency-reader: %s\n", redis->errstr);
            return 1;
        }
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
            redisReply *entries = reply->element[0]->element[1];
            for (size_t i = 0; i < entries->elements; i++) {
                redisReply *entry = entries->element[i];
                snprintf(last_id, sizeof last_id, "%s", entry->element[0]->str);
                redisReply *fields = entry->element[1];
                for (size_t f = 0; f + 1 < fields->elements; f += 2) {
                    if (strcmp(fields->element[f]->str, "event") != 0) continue;
                    const char *start = strstr(fields->element[f + 1]->str, marker);
                    double commit = start ? parse_commit_time(start + sizeof marker - 1) : -1;
                    if (commit < 0) {
                        fprintf(stderr, "latency-reader: an event without source.commit_time\n");
                        return 1;
                    }
                    if (received < expected) latencies[received++] = arrived - commit;
                }
            }
        }
        freeReplyObject(reply);
    }
    qsort(latencies, (size_t)received, sizeof(double), compare_doubles);
#define PCT(p) (received ? latencies[(long)((double)received * (p)) < received ? (long)((double)received * (p)) : received - 1] * 1000 : 0)
    printf("{\"received\": %ld, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}\n", received, PCT(0.50),
           PCT(0.99), received ? latencies[received - 1] * 1000 : 0);
    redisFree(redis);
    free(latencies);
    return 0;
}
