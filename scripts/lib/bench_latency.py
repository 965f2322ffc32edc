"""End-to-end latency: commit time of a row -> the moment its event is readable in Redis.

Inserts rows at a fixed rate (one transaction per millisecond tick), reads the Redis stream
that pgbridge writes with a blocking XREAD, and reports percentiles of
(time the entry was read) - (source.commit_time of its event). Used by scripts/bench-sinks.
"""
import argparse
import json
import multiprocessing
import time
from datetime import datetime

import psycopg2
import redis


def consume(port, key, stop, ready, results):
    """Reads the stream from its end; the latency of an entry is the time its XREAD reply
    arrived minus the commit time of its event (parsed without decoding the JSON)."""
    client = redis.Redis(host="127.0.0.1", port=port)
    last_id = "$"
    latencies = []
    commit_times = {}
    marker = b'"commit_time":"'
    ready.set()
    while not stop.is_set():
        reply = client.xread({key: last_id}, block=500, count=10000)
        received = time.time()
        for _, entries in reply:
            for entry_id, fields in entries:
                last_id = entry_id
                event = fields[b"event"]
                start = event.index(marker) + len(marker)
                text = event[start : event.index(b'"', start)]
                commit = commit_times.get(text)
                if commit is None:
                    commit = datetime.fromisoformat(text.decode().replace("Z", "+00:00")).timestamp()
                    commit_times[text] = commit
                latencies.append(received - commit)
    results.put(latencies)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--rate", type=int, required=True, help="rows per second")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()

    # The consumer runs in its own process: sharing the loader's interpreter lock would add
    # its own delays to what it measures.
    stop = multiprocessing.Event()
    ready = multiprocessing.Event()
    results = multiprocessing.Queue()
    consumer = multiprocessing.Process(target=consume, args=(args.redis_port, args.key, stop, ready, results))
    consumer.start()
    ready.wait(10)
    time.sleep(0.5)

    connection = psycopg2.connect(args.pg)
    connection.autocommit = False
    cursor = connection.cursor()
    # synchronous_commit stays on: walsenders only send WAL that is flushed, so with it off the
    # WAL writer's delay (200 ms) would dominate the measurement.
    ticks_per_second = 1000
    rows_per_tick = max(1, args.rate // ticks_per_second)
    interval = 1.0 / min(ticks_per_second, args.rate)
    total_ticks = int(args.seconds / interval)
    start = time.time()
    inserted = 0
    late_ticks = 0
    for tick in range(total_ticks):
        target = start + tick * interval
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.01:
            late_ticks += 1
        cursor.execute(
            "INSERT INTO latency (device, temp) SELECT 'd-' || g, g FROM generate_series(1, %s) g", (rows_per_tick,)
        )
        connection.commit()
        inserted += rows_per_tick
    elapsed = time.time() - start
    time.sleep(2)
    stop.set()
    latencies = results.get(timeout=60)
    consumer.join()
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else float("nan")

    print(
        json.dumps(
            {
                "rate": args.rate,
                "achieved_rate": round(inserted / elapsed),
                "inserted": inserted,
                "received": len(latencies),
                "late_ticks": late_ticks,
                "p50_ms": round(pct(0.50), 3),
                "p99_ms": round(pct(0.99), 3),
                "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
            }
        )
    )


if __name__ == "__main__":
    main()
