# shellcheck shell=bash
# Helpers for the local services used by scripts/test and scripts/demo:
# Debian packages, throwaway PostgreSQL clusters, Redis, free ports and
# process groups. Source it; do not run it.
#
# Everything started here is recorded in SERVICES_STARTED. The caller runs
#   services_traps NAME [HOOK]
# once (see below), so that nothing is left running, whatever happens.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

SERVICES_STARTED=()     # entries: "pg:DIR", "redis:DIR", "group:PGID"
SERVICES_PID_FILE=${SERVICES_PID_FILE:-}   # if set, spawned groups are also recorded here
SPAWNED_PID=            # set by spawn_group
STOPPED_STATUS=0        # set by stop_group: exit status of the group leader
_APT_UPDATED=0

svc_log() { printf '==> %s\n' "$*" >&2; }
svc_warn() { printf 'warning: %s\n' "$*" >&2; }
svc_err() { printf 'error: %s\n' "$*" >&2; }

_services_track() {
    local entry=$1 e
    for e in "${SERVICES_STARTED[@]}"; do [[ $e == "$entry" ]] && return 0; done
    SERVICES_STARTED+=("$entry")
}

_services_untrack() {
    local entry=$1 e keep=()
    for e in "${SERVICES_STARTED[@]}"; do [[ $e == "$entry" ]] || keep+=("$e"); done
    SERVICES_STARTED=("${keep[@]}")
}

# Stops everything started through this library, newest first. Idempotent.
services_cleanup() {
    local i entry
    trap '' INT TERM    # a second Ctrl-C must not interrupt the cleanup
    for ((i = ${#SERVICES_STARTED[@]} - 1; i >= 0; i--)); do
        entry=${SERVICES_STARTED[i]}
        case $entry in
            group:*) stop_group "${entry#group:}" 30 || true ;;
            pg:*) pg_stop "${entry#pg:}" || true ;;
            redis:*) redis_stop "${entry#redis:}" || true ;;
            rabbitmq:*) rabbitmq_stop "${entry#rabbitmq:}" || true ;;
            mount:*) small_fs_stop "${entry#mount:}" || true ;;
        esac
    done
    SERVICES_STARTED=()
}

# services_traps NAME [HOOK]: the exit handling every script shares. On exit (normal, an
# error under `set -e`, Ctrl-C = 130, SIGTERM = 143) it stops every service started through
# this library, calls HOOK with the exit status (the script's own cleanup and last words),
# says "NAME: FAILED (exit status N)" unless HOOK printed its own verdict (it returns 1 to
# say so), and exits with the status. A script may set its own INT/TERM
# traps afterwards (they must end in `exit`).
services_traps() {
    _SERVICES_SCRIPT=$1
    _SERVICES_HOOK=${2:-}
    trap _services_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# shellcheck disable=SC2317  # invoked by the trap
_services_on_exit() {
    local rc=$? reported=0
    if ((${#SERVICES_STARTED[@]} > 0)); then svc_log "stopping the services"; fi
    services_cleanup
    if [[ -n $_SERVICES_HOOK ]]; then "$_SERVICES_HOOK" "$rc" || reported=1; fi
    if ((rc != 0 && !reported)); then
        printf '%s: FAILED (exit status %d)\n' "$_SERVICES_SCRIPT" "$rc" >&2
    fi
    exit "$rc"
}

# ---------------------------------------------------------------- packages

# ensure_packages PKG...: installs the Debian packages that are not installed yet.
ensure_packages() {
    local pkg status missing=() sudo=()
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0

    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            svc_err "missing Debian packages: ${missing[*]}; run as root or install them: apt-get install ${missing[*]}"
            return 1
        fi
    fi
    svc_log "installing Debian packages: ${missing[*]}"
    if ((_APT_UPDATED == 0)); then
        "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 -q update
        _APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------- ports

# free_port: prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return
    fi
    # Fallback without python: a random port below the ephemeral range that
    # nothing answers on.
    local port i
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    svc_err "no free port found"
    return 1
}

# ---------------------------------------------------------------- processes

# _proc_state_pgrp PID: prints "STATE PGID" of a process; fails if there is none.
_proc_state_pgrp() {
    local line rest state pgrp
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    rest=${line##*) }       # the command name may contain spaces and parentheses
    read -r state _ pgrp _ <<<"$rest"
    printf '%s %s\n' "$state" "$pgrp"
}

# _pid_alive PID: true if PID exists and is not a zombie.
_pid_alive() {
    local s
    s=$(_proc_state_pgrp "$1") || return 1
    [[ ${s%% *} != Z ]]
}

# _group_alive PGID: true if the leader or any (non-zombie) member is alive.
_group_alive() {
    local pgid=$1 f line rest state pgrp
    _pid_alive "$pgid" && return 0
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        rest=${line##*) }
        read -r state _ pgrp _ <<<"$rest"
        [[ $pgrp == "$pgid" && $state != Z ]] && return 0
    done
    return 1
}

# spawn_group CMD...: starts CMD in the background in a new session (its own
# process group, detached from the terminal's Ctrl-C; the caller's trap
# forwards signals). Sets SPAWNED_PID (= the process group id).
spawn_group() {
    setsid "$@" </dev/null &
    SPAWNED_PID=$!
    _services_track "group:$SPAWNED_PID"
    if [[ -n $SERVICES_PID_FILE ]]; then
        printf '%s %s\n' "$SPAWNED_PID" "$(basename -- "$1")" >>"$SERVICES_PID_FILE"
    fi
}

# stop_group PGID [TIMEOUT]: SIGTERM to the whole group, wait up to TIMEOUT
# seconds (default 15), then SIGKILL. Sets STOPPED_STATUS to the leader's status.
# shellcheck disable=SC2034  # STOPPED_STATUS is read by callers
stop_group() {
    local pgid=$1 timeout=${2:-15} deadline
    STOPPED_STATUS=0
    if _group_alive "$pgid"; then
        kill -TERM -- "-$pgid" 2>/dev/null || kill -TERM "$pgid" 2>/dev/null || true
        deadline=$((SECONDS + timeout))
        while _group_alive "$pgid" && ((SECONDS < deadline)); do sleep 0.1; done
        if _group_alive "$pgid"; then
            svc_warn "process group $pgid did not stop within ${timeout}s; killing it"
            kill -KILL -- "-$pgid" 2>/dev/null || kill -KILL "$pgid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    wait "$pgid" 2>/dev/null || STOPPED_STATUS=$?
    _services_untrack "group:$pgid"
    if [[ -n $SERVICES_PID_FILE && -f $SERVICES_PID_FILE ]]; then
        grep -v "^$pgid " -- "$SERVICES_PID_FILE" >"$SERVICES_PID_FILE.new" || true
        mv -f -- "$SERVICES_PID_FILE.new" "$SERVICES_PID_FILE"
    fi
}

# run_in_group CMD...: runs CMD in its own process group and waits for it;
# kills whatever it left behind; returns CMD's exit status.
run_in_group() {
    local pid rc=0
    spawn_group "$@"
    pid=$SPAWNED_PID
    wait "$pid" || rc=$?
    if _group_alive "$pid"; then
        svc_warn "'$1' left processes behind; stopping them"
    fi
    stop_group "$pid" 10
    return "$rc"
}

# stop_recorded_groups FILE: stops process groups recorded by spawn_group in a
# previous run (one that was killed before it could clean up).
stop_recorded_groups() {
    local file=$1 pgid name comm state
    [[ -f $file ]] || return 0
    while read -r pgid name; do
        [[ $pgid =~ ^[0-9]+$ ]] || continue
        if state=$(_proc_state_pgrp "$pgid"); then
            # The pid may have been reused: only stop it if it still leads its
            # own process group and runs the same kind of program.
            [[ ${state#* } == "$pgid" ]] || continue
            { read -r comm <"/proc/$pgid/comm"; } 2>/dev/null || continue
            [[ $comm == "${name:0:15}" || $comm == bash || $comm == swift* ]] || continue
        fi
        if _group_alive "$pgid"; then
            svc_log "stopping process group $pgid ($name) left from a previous run"
            SERVICES_PID_FILE='' stop_group "$pgid" 15
        fi
    done <"$file"
    rm -f -- "$file"
}

# ---------------------------------------------------------------- PostgreSQL

# Runs a command as the owner of the clusters (postgres when we are root),
# from / so that an unreadable working directory does not matter.
_pg_as_owner() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# pg_root DIR: where the cluster of DIR really lives (DIR itself, or the
# /tmp/pgbridge-* directory recorded in DIR/pg_root by pg_start).
pg_root() {
    local dir
    dir=$(realpath -m -- "$1")
    if [[ -s $dir/pg_root ]]; then
        cat -- "$dir/pg_root"
    else
        printf '%s\n' "$dir"
    fi
}

# Chooses the cluster root for DIR and records it in DIR/pg_root. The postgres
# user must be able to reach DIR, and the socket path must fit in 107 bytes;
# otherwise the cluster goes to /tmp/pgbridge-<name>-<hash>.
_pg_pick_root() {
    local dir=$1 root
    if [[ -s $dir/pg_root ]]; then
        cat -- "$dir/pg_root"
        return
    fi
    root=$dir
    if { ((EUID == 0)) && ! runuser -u postgres -- test -x "$(dirname -- "$dir")"; } ||
        ((${#dir} > 80)); then
        root=/tmp/pgbridge-$(basename -- "$dir")-$(printf '%s' "$dir" | md5sum | cut -c1-10)
        svc_log "the postgres user cannot use $dir (permissions or path length); cluster lives in $root"
    fi
    printf '%s\n' "$root" >"$dir/pg_root"
    printf '%s\n' "$root"
}

# pg_ctl_cmd DIR ARGS...: pg_ctl -D <data dir of DIR> ARGS..., as the cluster owner.
pg_ctl_cmd() {
    local root
    root=$(pg_root "$1")
    shift
    _pg_as_owner "$PG_BIN/pg_ctl" -D "$root/data" "$@"
}

# pg_log DIR / pg_socket_dir DIR: the server log and the unix socket directory.
pg_log() { printf '%s/server.log\n' "$(pg_root "$1")"; }
pg_socket_dir() { pg_root "$1"; }

# pg_start DIR PORT: creates (if needed) and starts a throwaway cluster in
# DIR/data listening on 127.0.0.1:PORT. Restarts a server left running there.
pg_start() {
    local dir port root data
    dir=$(realpath -m -- "$1")
    port=$2
    mkdir -p -- "$dir"
    root=$(_pg_pick_root "$dir")
    data=$root/data

    pg_stop "$dir"      # a server from a previous run on this data dir
    mkdir -p -- "$root"
    if [[ $root != "$dir" ]]; then
        # Convenience links so that DIR looks the same either way.
        ln -sfn -- "$data" "$dir/data"
        ln -sfn -- "$root/server.log" "$dir/server.log"
    fi
    if ((EUID == 0)); then chown postgres:postgres -- "$root"; fi

    if [[ ! -f $data/PG_VERSION ]]; then
        rm -rf -- "$data"
        if ! _pg_as_owner "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$root/initdb.log" 2>&1; then
            cat -- "$root/initdb.log" >&2
            svc_err "initdb failed for $data"
            return 1
        fi
        printf "\ninclude_if_exists = 'pgbridge.conf'\n" >>"$data/postgresql.conf"
    fi

    # Rewritten on every start: the port changes from run to run.
    cat >"$data/pgbridge.conf" <<EOF
# Written by scripts/lib/services.sh (pg_start); overwritten on every start.
# PG_EXTRA_CONF (settings, one per line) comes last and overrides what is above.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$root'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
# The suite runs many pgbridge processes and pools at once (the default of 100 was reached).
max_connections = 300
wal_sender_timeout = 60s
fsync = on
max_prepared_transactions = 10
logical_decoding_work_mem = 64MB
${PG_EXTRA_CONF:-}
EOF
    if ((EUID == 0)); then chown postgres:postgres -- "$data/pgbridge.conf"; fi

    _services_track "pg:$dir"
    if ! pg_ctl_cmd "$dir" -l "$root/server.log" -w -t 60 start >/dev/null; then
        tail -n 30 -- "$root/server.log" >&2 || true
        svc_err "PostgreSQL in $data did not start (log: $root/server.log)"
        return 1
    fi
}

# pg_stop DIR: fast shutdown; nothing to do if it is not running.
pg_stop() {
    local root
    root=$(pg_root "$1")
    [[ -f $root/data/PG_VERSION ]] || return 0
    # status: 0 = running, 3 = not running (also for a stale postmaster.pid)
    pg_ctl_cmd "$1" status >/dev/null 2>&1 || return 0
    pg_ctl_cmd "$1" -m fast -w -t 60 stop >/dev/null ||
        pg_ctl_cmd "$1" -m immediate -w -t 30 stop >/dev/null
}

# pg_destroy DIR: stops the cluster and removes DIR (and its /tmp root, if any).
pg_destroy() {
    local dir root
    dir=$(realpath -m -- "$1")
    root=$(pg_root "$dir")
    pg_stop "$dir" || true
    _services_untrack "pg:$dir"
    if [[ $root != "$dir" && $root == /tmp/pgbridge-* ]]; then rm -rf -- "$root"; fi
    rm -rf -- "$dir"
}

# ---------------------------------------------------------------- Redis

# redis_start DIR PORT [ARGS...]: an ephemeral Redis (no persistence unless ARGS ask) on 127.0.0.1:PORT.
redis_start() {
    local dir port deadline
    dir=$(realpath -m -- "$1")
    port=$2
    mkdir -p -- "$dir"
    redis_stop "$dir"
    _services_track "redis:$dir"
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --dir "$dir" "${@:3}" >/dev/null
    deadline=$((SECONDS + 10))
    while ((SECONDS <= deadline)); do
        if [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; then
            printf '%s\n' "$port" >"$dir/redis.port"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 -- "$dir/redis.log" >&2 || true
    svc_err "Redis on port $port did not answer PING within 10 s"
    redis_stop "$dir"
    return 1
}

# redis_stop DIR: stops the Redis started by redis_start DIR, if running.
redis_stop() {
    local dir pid comm deadline
    dir=$(realpath -m -- "$1")
    [[ -f $dir/redis.pid ]] || return 0
    read -r pid <"$dir/redis.pid" || true
    if [[ $pid =~ ^[0-9]+$ ]] && _pid_alive "$pid"; then
        { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || comm=
        if [[ $comm == redis-server* ]]; then
            kill -TERM "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            while _pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
            if _pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
        fi
    fi
    rm -f -- "$dir/redis.pid"
}

# ---------------------------------------------------------------- RabbitMQ

# Environment isolating one RabbitMQ node in DIR (its own HOME, cookie, epmd port, data).
_rabbitmq_env() {
    local dir=$1
    local ports
    read -r ports <"$dir/rabbitmq.ports"
    set -- $ports
    printf '%s\n' "HOME=$dir" "RABBITMQ_NODENAME=pgbridge-test@localhost" "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
        "RABBITMQ_NODE_PORT=$1" "RABBITMQ_DIST_PORT=$2" "ERL_EPMD_ADDRESS=127.0.0.1" "ERL_EPMD_PORT=$3" \
        "RABBITMQ_CONFIG_FILE=$dir/rabbitmq" "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
        "RABBITMQ_MNESIA_BASE=$dir/mnesia" "RABBITMQ_LOG_BASE=$dir/log" "RABBITMQ_PID_FILE=$dir/rabbitmq.pid"
}

# rabbitmq_start DIR PORT: a throwaway RabbitMQ node on 127.0.0.1:PORT (guest/guest).
rabbitmq_start() {
    local dir port
    dir=$(realpath -m -- "$1")
    port=$2
    rabbitmq_stop "$dir"
    mkdir -p -- "$dir/mnesia" "$dir/log"
    printf '%s %s %s\n' "$port" "$(free_port)" "$(free_port)" >"$dir/rabbitmq.ports"
    printf '[].\n' >"$dir/enabled_plugins"
    printf 'loopback_users = none\n' >"$dir/rabbitmq.conf"
    _services_track "rabbitmq:$dir"
    mapfile -t env_vars < <(_rabbitmq_env "$dir")
    # Our own epmd (RabbitMQ reuses it), started so that it can be killed reliably at the end.
    local epmd_port
    epmd_port=$(awk '{print $3}' "$dir/rabbitmq.ports")
    epmd -port "$epmd_port" -address 127.0.0.1 -daemon -relaxed_command_check
    setsid env "${env_vars[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/server.out" 2>&1 </dev/null &
    if ! env "${env_vars[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 120 "$dir/rabbitmq.pid" >/dev/null 2>&1; then
        tail -n 30 -- "$dir/server.out" >&2 || true
        svc_err "RabbitMQ on port $port did not start within 120 s"
        rabbitmq_stop "$dir"
        return 1
    fi
}

# rabbitmq_stop DIR: stops the node started by rabbitmq_start DIR and its epmd.
rabbitmq_stop() {
    local dir pid
    dir=$(realpath -m -- "$1")
    [[ -f $dir/rabbitmq.ports ]] || return 0
    mapfile -t env_vars < <(_rabbitmq_env "$dir")
    pid=
    if [[ -f $dir/rabbitmq.pid ]]; then read -r pid <"$dir/rabbitmq.pid" || true; fi
    env "${env_vars[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl shutdown >/dev/null 2>&1 || true
    if [[ $pid =~ ^[0-9]+$ ]] && _pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    epmd -port "$(awk '{print $3}' "$dir/rabbitmq.ports")" -kill >/dev/null 2>&1 || true
    rm -f -- "$dir/rabbitmq.pid" "$dir/rabbitmq.ports"
    _services_untrack "rabbitmq:$dir"
}

# ---------------------------------------------------------------- Kafka (mock cluster)

# kafka_mock_start DIR TOPIC...: builds and starts librdkafka's mock cluster; sets KAFKA_BROKERS.
kafka_mock_start() {
    local dir=$1 deadline
    shift
    mkdir -p -- "$dir"
    gcc -O1 -o "$dir/kafka-mock" "$ROOT/scripts/lib/kafka-mock.c" -lrdkafka -lpthread
    spawn_group "$dir/kafka-mock" --control "$dir/control" "$@" >"$dir/brokers" 2>"$dir/kafka-mock.log"
    deadline=$((SECONDS + 20))
    KAFKA_BROKERS=
    while ((SECONDS <= deadline)); do
        if [[ -s $dir/brokers ]]; then
            read -r KAFKA_BROKERS <"$dir/brokers"
            [[ -n $KAFKA_BROKERS ]] && return 0
        fi
        sleep 0.1
    done
    cat -- "$dir/kafka-mock.log" >&2 || true
    svc_err "the Kafka mock cluster did not start within 20 s"
    return 1
}

# ---------------------------------------------------------------- a small filesystem

# small_fs_start DIR SIZE: mounts a tmpfs of SIZE (e.g. 8m) at DIR, for disk-full tests.
small_fs_start() {
    local dir=$1 size=$2 sudo=()
    ((EUID == 0)) || sudo=(sudo)
    mkdir -p -- "$dir"
    "${sudo[@]}" mount -t tmpfs -o "size=$size,mode=1777" pgbridge-test-small "$dir"
    _services_track "mount:$dir"
}

# small_fs_stop DIR: unmounts it (when mounted).
small_fs_stop() {
    local dir=$1 sudo=()
    ((EUID == 0)) || sudo=(sudo)
    if mountpoint -q -- "$dir"; then "${sudo[@]}" umount -- "$dir"; fi
}
