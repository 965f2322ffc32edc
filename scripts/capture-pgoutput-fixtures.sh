#!/usr/bin/env bash
# Regenerates the pgoutput fixtures in Tests/PostgresSourceTests/Fixtures/*.hex
# from a throw-away PostgreSQL 15 cluster, using the SQL decoding interface
# (pg_logical_slot_peek_binary_changes). Each row of that function's output is
# exactly one pgoutput message (the payload of an XLogData 'w' message).
#
# The cluster is started with scripts/lib/services.sh's pg_start (as the `postgres` user when
# run as root) and removed on exit.
# Usage: scripts/capture-pgoutput-fixtures.sh [output-dir]
# Only the listed scenarios' files in output-dir are overwritten.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"
PG_BIN=${PGBIN:-$PG_BIN}
PORT=${PORT:-$(free_port)}
OUT=${1:-$ROOT/Tests/PostgresSourceTests/Fixtures}
D=$(mktemp -d /tmp/fixpg.XXXXXX)
export PGCLIENTENCODING=UTF8

# shellcheck disable=SC2317  # invoked by the exit trap (services_traps)
remove_cluster() { pg_destroy "$D/pg"; rm -rf -- "$D"; }
services_traps scripts/capture-pgoutput-fixtures.sh remove_cluster

# Small decoding memory, so that the streaming scenarios stream.
PG_EXTRA_CONF="max_replication_slots = 20
logical_decoding_work_mem = 64kB" pg_start "$D/pg" "$PORT"
SERVER_VERSION=$("$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -XAtqc "SHOW server_version")

PSQL() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -X -v ON_ERROR_STOP=1 -Atq "$@"; }

OPTS_V2="'proto_version','2','publication_names','pub','messages','true','streaming','on'"
OPTS_V3_2PC="'proto_version','3','publication_names','pub','messages','true','streaming','on','two_phase','on'"
OPTS_V1="'proto_version','1','publication_names','pub'"
# Session settings of the decoding session (they affect the text output of
# timestamptz/float/interval values inside tuples).
PEEK_SETTINGS="SET TimeZone='UTC'; SET DateStyle='ISO, MDY'; SET IntervalStyle='postgres'; SET extra_float_digits=1;"

# Summarise message types (first byte of each line) with run-length compression.
summarise() {
  awk '!/^#/ && NF { h = "0123456789abcdef"; t = sprintf("%c", (index(h, substr($0,1,1)) - 1) * 16 + index(h, substr($0,2,1)) - 1);
         if (t == prev) { n++ } else { if (prev != "") { out = out sep prev (n>1 ? "x" n : ""); sep=" " } prev=t; n=1 } }
       END { if (prev != "") out = out sep prev (n>1 ? "x" n : ""); print out }' "$1"
}

comment() { sed -e 's/^/#   /'; }

# capture <name> <slot-kind: normal|twophase> <options> <setup-sql> <workload-sql> [description]
capture() {
  local name=$1 kind=$2 opts=$3 setup=$4 workload=$5 desc=${6:-}
  local db="fx_${name}" slot="fx_${name}" file="$OUT/${name}.hex" tmp
  tmp=$(mktemp)
  PSQL -d postgres -c "CREATE DATABASE $db" >/dev/null
  printf '%s\n' "$setup" | PSQL -d "$db" -f - >/dev/null
  if [ "$kind" = twophase ]; then
    PSQL -d "$db" -c "SELECT pg_create_logical_replication_slot('$slot','pgoutput',false,true)" >/dev/null
  else
    PSQL -d "$db" -c "SELECT pg_create_logical_replication_slot('$slot','pgoutput')" >/dev/null
  fi
  printf '%s\n' "$workload" | PSQL -d "$db" -f - >/dev/null
  # The SQL decoding functions only read WAL up to the flush pointer; aborts are
  # not flushed synchronously, so wait for the WAL writer to catch up.
  local insert_lsn i
  insert_lsn=$(PSQL -d "$db" -c "SELECT pg_current_wal_insert_lsn()")
  for i in $(seq 1 100); do
    [ "$(PSQL -d "$db" -c "SELECT pg_current_wal_flush_lsn() >= '$insert_lsn'")" = t ] && break
    sleep 0.1
  done
  local peek="SELECT encode(data,'hex') FROM pg_logical_slot_peek_binary_changes('$slot', NULL, NULL, $opts)"
  PSQL -d "$db" -c "$PEEK_SETTINGS" -c "$peek" >"$tmp"
  PSQL -d "$db" -c "SELECT pg_drop_replication_slot('$slot')" >/dev/null
  {
    echo "# pgoutput fixture: $name"
    [ -n "$desc" ] && printf '%s\n' "$desc" | sed -e 's/^/# /'
    echo "# Captured from PostgreSQL $SERVER_VERSION via pg_logical_slot_peek_binary_changes()."
    echo "# One pgoutput message per line (lowercase hex, type byte first), i.e. the payload"
    echo "# of an XLogData ('w') CopyData message after its 25-byte header is stripped."
    echo "# Server: wal_level=logical, logical_decoding_work_mem=64kB, encoding UTF8."
    echo "# Slot: pg_create_logical_replication_slot('$slot','pgoutput'$([ "$kind" = twophase ] && echo ", false, true"))"
    echo "# Decoding options: $opts"
    echo "# Decoding session settings: $PEEK_SETTINGS"
    echo "# Setup SQL (run before the slot was created; not decoded):"
    printf '%s\n' "$setup" | comment
    echo "# Workload SQL (run after slot creation, via psql; statements outside BEGIN autocommit):"
    printf '%s\n' "$workload" | comment
    echo "# Message types: $(summarise "$tmp")"
    cat "$tmp"
  } >"$file"
  rm -f "$tmp"
  printf '%-28s %6d msgs  %s\n' "$name.hex" "$(grep -vc '^#' "$file")" "$(summarise "$file" | cut -c1-150)"
}

###############################################################################
capture basic_crud normal "$OPTS_V2" "$(cat <<'SQL'
CREATE TABLE public.items(id int PRIMARY KEY, name text, qty int);  -- REPLICA IDENTITY DEFAULT
CREATE TABLE public.items_aux(id serial PRIMARY KEY, note text);
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
BEGIN;
INSERT INTO items VALUES (1, 'apple', 5), (2, 'banana', 7);
COMMIT;
UPDATE items SET qty = 6 WHERE id = 1;
UPDATE items SET id = 10 WHERE id = 1;
DELETE FROM items WHERE id = 2;
INSERT INTO items_aux(note) VALUES ('aux');
TRUNCATE items_aux;
TRUNCATE items, items_aux RESTART IDENTITY CASCADE;
SQL
)"

capture replica_identity_full normal "$OPTS_V2" "$(cat <<'SQL'
CREATE TABLE public.rif(id int PRIMARY KEY, name text, qty int);
ALTER TABLE public.rif REPLICA IDENTITY FULL;
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
INSERT INTO rif VALUES (1, 'one', 1), (2, 'two', 2), (3, NULL, 3);
UPDATE rif SET qty = 100 WHERE id = 1;
UPDATE rif SET name = 'three' WHERE id = 3;
DELETE FROM rif WHERE id = 2;
SQL
)"

capture replica_identity_index normal "$OPTS_V2" "$(cat <<'SQL'
CREATE TABLE public.rii(id int PRIMARY KEY, code text NOT NULL, qty int);
CREATE UNIQUE INDEX rii_code_key ON public.rii(code);
ALTER TABLE public.rii REPLICA IDENTITY USING INDEX rii_code_key;
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
INSERT INTO rii VALUES (1, 'A1', 1), (2, 'B2', 2);
UPDATE rii SET qty = 5 WHERE id = 1;
UPDATE rii SET code = 'A1-new' WHERE id = 1;
DELETE FROM rii WHERE id = 2;
SQL
)"

TYPES_SETUP=$(cat <<'SQL'
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN public.posint AS int CHECK (VALUE > 0);
CREATE TABLE public.typetest(
  id int PRIMARY KEY,
  c_bool bool, c_int2 int2, c_int4 int4, c_int8 int8,
  c_float4 float4, c_float8 float8, c_numeric numeric,
  c_text text, c_varchar varchar(10), c_char char(5),
  c_uuid uuid, c_json json, c_jsonb jsonb, c_bytea bytea,
  c_date date, c_time time, c_timestamp timestamp, c_timestamptz timestamptz,
  c_interval interval, c_int4arr int4[], c_textarr text[],
  c_mood public.mood, c_posint public.posint);
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)
TYPES_WORKLOAD=$(cat <<'SQL'
SET TimeZone = 'UTC';
INSERT INTO typetest VALUES (1, true, -32768, 2147483647, -9223372036854775808,
  1.5, 1.5, 12345.6789000,
  E'tab:\t nl:\n quote:'' dquote:" backslash:\\ ctrl:\x01 caf\u00e9 \U0001F600',
  'hello', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"a": 1, "b": [true, null]}', '{"b": [1, 2], "a": "x"}', '\xdeadbeef',
  '2024-02-29', '13:45:30.123456', '2024-02-29 13:45:30.123456', '2024-02-29 13:45:30.123456+02',
  '1 year 2 mons 3 days 04:05:06.789', '{1,2,3}', ARRAY['a', NULL, 'with,comma', 'with"quote'],
  'happy', 42);
INSERT INTO typetest VALUES (2, false, 0, 0, 0,
  'NaN', 'Infinity', 'NaN', '', '', '', '00000000-0000-0000-0000-000000000000',
  '[]', '{}', '\x', '-infinity', '00:00:00', 'infinity', '1970-01-01 00:00:00+00',
  '-1 days -00:00:01', '{}', '{}', 'sad', 1);
INSERT INTO typetest VALUES (3, NULL, 1, -1, 1,
  '-Infinity', 'NaN', -0.000001, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, '{{1,2},{3,4}}', '{"",NULL}', NULL, NULL);
INSERT INTO typetest (id) VALUES (4);
SQL
)
capture types normal "$OPTS_V2" "$TYPES_SETUP" "$TYPES_WORKLOAD"
capture types_binary normal "$OPTS_V2,'binary','true'" "$TYPES_SETUP" "$TYPES_WORKLOAD" \
  "Same workload as types.hex, but with the 'binary' option: tuple columns use kind 'b' (typsend format)."

capture toast_unchanged normal "$OPTS_V2" "$(cat <<'SQL'
CREATE TABLE public.toasty(id int PRIMARY KEY, payload text, note text);
ALTER TABLE public.toasty ALTER COLUMN payload SET STORAGE EXTERNAL;
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
INSERT INTO toasty VALUES (1, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i), 'first');
UPDATE toasty SET note = 'second' WHERE id = 1;
SQL
)"

capture alter_table normal "$OPTS_V2" "$(cat <<'SQL'
CREATE TABLE public.evolving(id int PRIMARY KEY, name text);
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
INSERT INTO evolving VALUES (1, 'before');
ALTER TABLE evolving ADD COLUMN extra text;
INSERT INTO evolving VALUES (2, 'after', 'extra!');
SQL
)"

capture logical_message normal "$OPTS_V2" "$(cat <<'SQL'
CREATE TABLE public.msgs(id int PRIMARY KEY, body text);
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
BEGIN;
INSERT INTO msgs VALUES (1, 'x');
SELECT pg_logical_emit_message(true, 'pgbridge', 'hello');
COMMIT;
SELECT pg_logical_emit_message(false, 'pgbridge-nt', 'bye');
SELECT pg_logical_emit_message(false, 'pgbridge-bin', '\x00ff01'::bytea);
SQL
)"

capture streaming normal "$OPTS_V2" "$(cat <<'SQL'
CREATE TABLE public.big(id int PRIMARY KEY, payload text);
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
-- T1: large transaction, streamed in several chunks, then committed
BEGIN;
INSERT INTO big SELECT i, 'row-' || lpad(i::text, 6, '0') || '-abcdefghijklmn' FROM generate_series(1, 1000) i;
COMMIT;
-- T2: subtransaction streamed, then rolled back to savepoint, then top-level commits
BEGIN;
INSERT INTO big VALUES (2001, 'top-before-savepoint');
SAVEPOINT sp1;
INSERT INTO big SELECT i, 'sub-' || lpad(i::text, 6, '0') || '-abcdefghijklmn' FROM generate_series(3001, 3450) i;
ROLLBACK TO SAVEPOINT sp1;
INSERT INTO big VALUES (2002, 'top-after-rollback-to-savepoint');
COMMIT;
-- T3: large transaction, streamed, then fully rolled back
BEGIN;
INSERT INTO big SELECT i, 'abt-' || lpad(i::text, 6, '0') || '-abcdefghijklmn' FROM generate_series(5001, 5450) i;
ROLLBACK;
SQL
)"

capture two_phase twophase "$OPTS_V3_2PC" "$(cat <<'SQL'
CREATE TABLE public.tp(id int PRIMARY KEY, v text);
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
BEGIN;
INSERT INTO tp VALUES (1, 'p1');
PREPARE TRANSACTION 'p1';
COMMIT PREPARED 'p1';
BEGIN;
INSERT INTO tp VALUES (2, 'p2');
PREPARE TRANSACTION 'p2';
ROLLBACK PREPARED 'p2';
INSERT INTO tp VALUES (3, 'plain');
SQL
)"

capture origin normal "$OPTS_V2" "$(cat <<'SQL'
CREATE TABLE public.orig(id int PRIMARY KEY, v text);
CREATE PUBLICATION pub FOR ALL TABLES;
SELECT pg_replication_origin_create('upstream1');
SQL
)" "$(cat <<'SQL'
SELECT pg_replication_origin_session_setup('upstream1');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/AABBCC', '2024-01-02 03:04:05.678901+00');
INSERT INTO orig VALUES (1, 'from upstream1');
COMMIT;
SELECT pg_replication_origin_session_reset();
INSERT INTO orig VALUES (2, 'local');
SQL
)"

capture proto_v1 normal "$OPTS_V1" "$(cat <<'SQL'
CREATE TABLE public.v1t(id int PRIMARY KEY, v text);
CREATE PUBLICATION pub FOR ALL TABLES;
SQL
)" "$(cat <<'SQL'
INSERT INTO v1t VALUES (1, 'one');
UPDATE v1t SET v = 'uno' WHERE id = 1;
DELETE FROM v1t WHERE id = 1;
SQL
)"

echo "server log: $(grep -c ERROR "$(pg_log "$D/pg")" || true) ERROR lines"
