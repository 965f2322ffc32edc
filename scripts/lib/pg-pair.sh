#!/usr/bin/env bash
# Throwaway PostgreSQL primaries and streaming standbys for failover tests (used by the
# integration tests through PGBRIDGE_TEST_PG_PAIR; scripts/test destroys what is left over).
#   pg-pair.sh primary DIR PORT            initdb and start a primary on 127.0.0.1:PORT
#   pg-pair.sh standby DIR PORT FROM_PORT  pg_basebackup -R from the primary on FROM_PORT, start it
#   pg-pair.sh start DIR PORT | stop DIR | kill DIR | promote DIR | destroy DIR
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/services.sh"
PG_BIN=${PGBRIDGE_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}

command=${1:?usage: see the header of this file}
dir=$(realpath -m -- "${2:?a directory}")
case $command in
    primary | start) pg_start "$dir" "${3:?a port}" ;;
    standby)
        port=${3:?a port}
        from=${4:?the primary port}
        mkdir -p -- "$dir"
        root=$(_pg_pick_root "$dir")
        mkdir -p -- "$root"
        if ((EUID == 0)); then chown postgres:postgres -- "$root"; fi
        rm -rf -- "$root/data"
        _pg_as_owner "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$from" -U postgres -D "$root/data" -R -X stream \
            -c fast >"$root/basebackup.log" 2>&1 || { cat -- "$root/basebackup.log" >&2; exit 1; }
        pg_start "$dir" "$port"
        ;;
    stop) pg_stop "$dir" ;;
    kill) pg_ctl_cmd "$dir" -m immediate -w -t 30 stop >/dev/null ;;
    promote) pg_ctl_cmd "$dir" -w -t 60 promote >/dev/null ;;
    destroy) pg_destroy "$dir" ;;
    *) echo "unknown command $command" >&2; exit 2 ;;
esac
