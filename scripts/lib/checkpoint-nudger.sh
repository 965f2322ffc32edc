#!/usr/bin/env bash
# checkpoint-nudger.sh PG_BIN PORT...: runs CHECKPOINT on each test cluster every 2 s.
#
# Creating a logical replication slot waits for "running transactions" WAL records, which
# PostgreSQL 15 writes only every 15 s (and at each checkpoint). With many tests writing at
# once, a slot then takes 30 s or more to reach its consistent point; a checkpoint every 2 s
# keeps that to a few seconds. (PostgreSQL 16 has pg_log_standby_snapshot() for this.)
# Errors are ignored: a cluster may be restarting during the disruptive tests.
pg_bin=$1
shift
while :; do
    for port in "$@"; do
        "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c CHECKPOINT >/dev/null 2>&1 || true
    done
    sleep 2
done
