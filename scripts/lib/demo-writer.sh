#!/usr/bin/env bash
# Background writer for scripts/demo: changes the demo database every second
# so that inserts, updates and deletes show up in pgbridge's output.
#   demo-writer.sh PORT
# Runs until it is killed (scripts/demo stops it).
set -euo pipefail

PORT=$1
PSQL=${PG_BIN:-/usr/lib/postgresql/15/bin}/psql

tick=0
while true; do
    tick=$((tick + 1))
    # One transaction per tick: a new order, the oldest open order moves one
    # status further, and three sensor readings.
    sql="
INSERT INTO public.orders (customer, amount)
    VALUES ('customer-$((RANDOM % 20))', round((random() * 500)::numeric, 2));
UPDATE public.orders
    SET status = CASE status WHEN 'new' THEN 'paid' ELSE 'shipped' END
    WHERE id = (SELECT id FROM public.orders WHERE status <> 'shipped' AND id < (SELECT max(id) FROM public.orders)
                ORDER BY id LIMIT 1);
INSERT INTO public.conditions (time, device, temperature, humidity)
    SELECT now(), 'device-' || d, round((18 + random() * 10)::numeric, 1), round((40 + random() * 30)::numeric, 1)
    FROM generate_series(1, 3) AS d;"
    # Every ~5 s: delete the oldest order (preferably a shipped one).
    if ((tick % 5 == 0)); then
        sql+="
DELETE FROM public.orders
    WHERE id = (SELECT id FROM public.orders ORDER BY status = 'shipped' DESC, id LIMIT 1);"
    fi
    if ! "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d demo \
        -c "$sql" >/dev/null; then
        echo "demo-writer: psql failed (tick $tick)" >&2
    fi
    sleep 1
done
