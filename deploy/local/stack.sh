#!/usr/bin/env bash
# deploy/local/stack.sh - make sure the local stack Mercato needs is up:
#
#   * PostgreSQL >= 15 on 127.0.0.1:${MERCATO_PG_PORT:-5432}, trust auth for
#     user postgres over local TCP (127.0.0.1 and ::1);
#   * nats-server with JetStream on 127.0.0.1:${MERCATO_NATS_PORT:-4222};
#   * the tools the tests and .ci/run's checks need: curl, python3 and its venv module
#     (.ci/schemathesis.sh), promtool from Debian's prometheus (.ci/prometheus.sh) and
#     nginx (the gateway test), wrk (mercato-bench commands), chromium and chromium-driver
#     (the storefront's browser tests); the packages' services are
#     not started.
#
# Debian 12 (bookworm), run as root; only Debian's package mirrors are needed.
# Idempotent: a service that already answers is left alone. The script never
# destroys data: no initdb over existing directories, no DROP, no rm of data
# or store directories, and it never restarts or kills a running server
# (pg_hba.conf changes are applied with a reload).
#
# stdout: exactly one line per service, e.g. "postgresql: already running",
# "nats-server: started", "postgresql: installed and started".
# Progress notes and errors go to stderr; exit status is non-zero on failure.
set -euo pipefail

PG_PORT="${MERCATO_PG_PORT:-5432}"
NATS_PORT="${MERCATO_NATS_PORT:-4222}"

PG_MIN_MAJOR=15
WAIT_SECS=60

NATS_BIN=/usr/sbin/nats-server
NATS_STORE_DIR=/var/lib/nats-server
NATS_LOG=/var/log/nats-server.log

LOCK_FILE=/run/lock/mercato-stack.lock

export DEBIAN_FRONTEND=noninteractive

log() { printf 'stack.sh: %s\n' "$*" >&2; }
die() {
    printf 'stack.sh: ERROR: %s\n' "$*" >&2
    exit 1
}

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        apt-get update >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    # C.UTF-8 always exists on bookworm; the postgresql postinst creates its
    # first cluster with the locale of this environment.
    LC_ALL=C.UTF-8 apt-get install -y --no-install-recommends "$@" >&2 ||
        die "apt-get install $* failed"
}

# Does anything accept TCP connections on 127.0.0.1:$1 ?
port_open() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

PG_VER=""
PG_NAME=""

pg_answers() {
    command -v pg_isready >/dev/null 2>&1 || return 1
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2
}

# psql as postgres over TCP; -w: never prompt for a password.
pg_sql() {
    PGCONNECT_TIMEOUT=5 psql -X -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc "$1"
}

pg_works() {
    pg_answers || return 1
    [[ "$(pg_sql 'select 1' 2>/dev/null)" == 1 ]]
}

pg_check_version() {
    local v
    v="$(pg_sql 'show server_version_num' 2>/dev/null)" ||
        die "could not read server_version_num from PostgreSQL on 127.0.0.1:$PG_PORT"
    if ! [[ $v =~ ^[0-9]+$ ]] || ((v < PG_MIN_MAJOR * 10000)); then
        die "PostgreSQL on 127.0.0.1:$PG_PORT is version $v; Mercato needs >= $PG_MIN_MAJOR (not upgrading it automatically)"
    fi
}

# Installed server major versions >= PG_MIN_MAJOR, newest first.
pg_installed_versions() {
    local bin v
    for bin in /usr/lib/postgresql/*/bin/postgres; do
        [[ -x $bin ]] || continue
        v="${bin#/usr/lib/postgresql/}"
        v="${v%%/*}"
        if [[ $v =~ ^[0-9]+$ ]] && ((v >= PG_MIN_MAJOR)); then
            printf '%s\n' "$v"
        fi
    done | sort -rn
}

pg_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 && [[ -n "$(pg_installed_versions)" ]]
}

# "ver name port status owner datadir logfile" of cluster $1/$2, or nothing.
pg_cluster_line() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$1" -v n="$2" '$1 == v && $2 == n { print; exit }'
}

pg_cluster_status() { pg_cluster_line "$PG_VER" "$PG_NAME" | awk '{ print $4 }'; }
pg_cluster_log() { pg_cluster_line "$PG_VER" "$PG_NAME" | awk '{ print $7 }'; }

# Pick the cluster to use (sets PG_VER/PG_NAME); create <newest>/main if no
# cluster exists for it. Never creates over existing files.
pg_select_cluster() {
    local line vers port datadir

    # 1. an existing cluster configured for our port
    line="$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print; exit }')"
    if [[ -n $line ]]; then
        read -r PG_VER PG_NAME _ <<<"$line"
        if ! [[ $PG_VER =~ ^[0-9]+$ ]] || ((PG_VER < PG_MIN_MAJOR)); then
            die "cluster $PG_VER/$PG_NAME uses port $PG_PORT but is PostgreSQL $PG_VER; Mercato needs >= $PG_MIN_MAJOR (upgrade it yourself, e.g. pg_upgradecluster)"
        fi
        return 0
    fi

    # 2. the newest installed version's "main" cluster
    vers="$(pg_installed_versions)"
    PG_VER="${vers%%$'\n'*}"
    PG_NAME=main
    [[ -n $PG_VER ]] || die "no PostgreSQL >= $PG_MIN_MAJOR server binaries in /usr/lib/postgresql"

    line="$(pg_cluster_line "$PG_VER" "$PG_NAME")"
    if [[ -n $line ]]; then
        port="$(awk '{ print $3 }' <<<"$line")"
        die "cluster $PG_VER/$PG_NAME is configured for port $port, not $PG_PORT; set MERCATO_PG_PORT=$port or change 'port' in /etc/postgresql/$PG_VER/$PG_NAME/postgresql.conf"
    fi

    # 3. no cluster at all: create one, but only on a clean slate
    datadir="/var/lib/postgresql/$PG_VER/$PG_NAME"
    if [[ -e /etc/postgresql/$PG_VER/$PG_NAME ]]; then
        die "/etc/postgresql/$PG_VER/$PG_NAME exists but pg_lsclusters does not list it; inspect it by hand (not touching it)"
    fi
    if [[ -d $datadir && -n "$(ls -A "$datadir")" ]]; then
        die "$datadir is not empty but has no cluster configuration; inspect it by hand (not touching it)"
    fi
    log "creating cluster $PG_VER/$PG_NAME on port $PG_PORT"
    pg_createcluster --port "$PG_PORT" --locale C.UTF-8 "$PG_VER" "$PG_NAME" >&2 ||
        die "pg_createcluster $PG_VER $PG_NAME failed"
}

# Make sure listen_addresses covers localhost. Only called while the cluster
# is stopped (changing it needs a restart, which we never do).
pg_ensure_listen() {
    local cur new
    # not set in postgresql.conf -> built-in default 'localhost'
    cur="$(pg_conftool -s "$PG_VER" "$PG_NAME" show listen_addresses 2>/dev/null)" || return 0
    case ",${cur// /}," in
    *,localhost,* | *,127.0.0.1,* | *,\*,* | *,0.0.0.0,*) return 0 ;;
    esac
    new="localhost${cur:+,$cur}"
    log "listen_addresses='$cur' does not include localhost; setting it to '$new'"
    pg_conftool "$PG_VER" "$PG_NAME" set listen_addresses "$new" >&2 ||
        die "could not set listen_addresses for cluster $PG_VER/$PG_NAME"
}

# Make sure pg_hba.conf has TCP trust for 127.0.0.1 and ::1, before any other
# host line. $1 = "reload" when the cluster is running.
pg_ensure_hba() {
    local hba backup new
    hba="$(pg_conftool -s "$PG_VER" "$PG_NAME" show hba_file 2>/dev/null)" ||
        hba="/etc/postgresql/$PG_VER/$PG_NAME/pg_hba.conf"
    [[ -f $hba ]] || die "pg_hba.conf not found at $hba"

    if grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust([[:space:]]|$)' "$hba"; then
        return 0
    fi

    backup="$hba.mercato-backup.$(date +%Y%m%d%H%M%S)"
    cp -p "$hba" "$backup"
    new="$(awk '
        BEGIN {
            block = "# Added by Mercato deploy/local/stack.sh: local TCP trust for development\n" \
                    "host    all             all             127.0.0.1/32            trust\n" \
                    "host    all             all             ::1/128                 trust"
        }
        !done && /^[[:space:]]*host/ { print block; done = 1 }
        { print }
        END { if (!done) print block }
    ' "$hba")"
    # rewrite in place: keeps owner and mode of the file
    printf '%s\n' "$new" >"$hba"
    log "added TCP trust lines for 127.0.0.1/32 and ::1/128 to $hba (backup: $backup)"

    if [[ ${1:-} == reload ]]; then
        pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$PG_NAME" reload >&2 ||
            die "reload of cluster $PG_VER/$PG_NAME failed"
    fi
}

pg_start() {
    local rc=0
    if [[ ! -d /var/run/postgresql ]]; then
        install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    fi
    log "starting cluster $PG_VER/$PG_NAME"
    pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$PG_NAME" start >&2 || rc=$?
    # 2 = already running
    if ((rc != 0 && rc != 2)); then
        die "pg_ctlcluster --skip-systemctl-redirect $PG_VER $PG_NAME start failed (exit $rc); see $(pg_cluster_log)"
    fi
}

pg_wait() {
    local deadline=$((SECONDS + WAIT_SECS)) out
    until pg_answers; do
        if ((SECONDS >= deadline)); then
            die "PostgreSQL (cluster $PG_VER/$PG_NAME) did not answer on 127.0.0.1:$PG_PORT within ${WAIT_SECS}s; check its port and listen_addresses and the log $(pg_cluster_log)"
        fi
        sleep 1
    done
    if ! out="$(pg_sql 'select 1' 2>&1)" || [[ $out != 1 ]]; then
        die "PostgreSQL answers on 127.0.0.1:$PG_PORT but 'psql -U postgres' failed: $out"
    fi
}

ensure_postgres() {
    local action=started was_answering=0 status

    if pg_works; then
        pg_check_version
        echo "postgresql: already running"
        return 0
    fi
    pg_answers && was_answering=1

    if ! pg_installed; then
        if ((was_answering)); then
            die "something answers on 127.0.0.1:$PG_PORT but 'psql -U postgres' fails and no local PostgreSQL >= $PG_MIN_MAJOR is installed; not touching it"
        fi
        apt_install postgresql
        pg_installed || die "postgresql installed, but no PostgreSQL >= $PG_MIN_MAJOR server found"
        action="installed and started"
    fi

    pg_select_cluster
    status="$(pg_cluster_status)"
    if [[ $status == online* ]]; then
        # running (answering but refusing us, or still starting up): never
        # restart it, only fix pg_hba.conf with a reload
        pg_ensure_hba reload
        if [[ $action == started ]]; then
            action="already running"
        fi
    else
        pg_ensure_listen
        pg_ensure_hba
        pg_start
    fi

    pg_wait
    pg_check_version
    echo "postgresql: $action"
}

# --------------------------------------------------------------------------
# NATS
# --------------------------------------------------------------------------

NATS_INFO=""

# 0: nats-server with JetStream answers; 1: port closed; 2: something else.
nats_state() {
    NATS_INFO=""
    port_open "$NATS_PORT" || return 1
    # the server sends its INFO line right after accept
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    NATS_INFO="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -n 1 <&3' _ "$NATS_PORT" 2>/dev/null | tr -d '\r')" || true
    if [[ $NATS_INFO == "INFO "* && $NATS_INFO =~ \"jetstream\":[[:space:]]*true ]]; then
        return 0
    fi
    return 2
}

nats_start() {
    mkdir -p "$NATS_STORE_DIR" "$(dirname "$NATS_LOG")"
    log "starting $NATS_BIN on 127.0.0.1:$NATS_PORT (JetStream store $NATS_STORE_DIR)"
    start-stop-daemon --start --oknodo --background --exec "$NATS_BIN" -- \
        -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$NATS_STORE_DIR" -l "$NATS_LOG" >&2 ||
        die "start-stop-daemon could not start $NATS_BIN"
}

nats_wait() {
    local deadline=$((SECONDS + WAIT_SECS)) rc procs
    while :; do
        rc=0
        nats_state || rc=$?
        ((rc == 0)) && return 0
        if ((SECONDS >= deadline)); then
            procs="$(pgrep -a -x nats-server || true)"
            die "nats-server with JetStream did not answer on 127.0.0.1:$NATS_PORT within ${WAIT_SECS}s.
  running nats-server processes (start-stop-daemon does nothing while one runs): ${procs:-none}
  first line on the port: ${NATS_INFO:-none}
  log: $NATS_LOG"
        fi
        sleep 1
    done
}

ensure_nats() {
    local rc=0 action=started

    nats_state || rc=$?
    case $rc in
    0)
        echo "nats-server: already running"
        return 0
        ;;
    2)
        die "something listens on 127.0.0.1:$NATS_PORT but it is not a nats-server with JetStream (first line: '${NATS_INFO:0:300}'); not touching it - stop it or enable JetStream yourself"
        ;;
    esac

    if [[ ! -x $NATS_BIN ]]; then
        apt_install nats-server
        [[ -x $NATS_BIN ]] || die "nats-server installed, but $NATS_BIN is missing"
        # On systemd hosts the package enables and starts nats-server.service
        # (/etc/nats-server.conf: no JetStream) on the same port. That unit was
        # installed just now, so stop and disable it in favour of ours.
        if [[ -d /run/systemd/system ]] && systemctl is-enabled --quiet nats-server.service 2>/dev/null; then
            log "disabling the packaged nats-server.service (it runs without JetStream)"
            systemctl disable --now nats-server.service >&2 || die "could not stop nats-server.service"
        fi
        action="installed and started"
    fi

    nats_start
    nats_wait
    echo "nats-server: $action"
}

ensure_test_tools() {
    local missing=()
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    # Debian's python3 makes a virtualenv only with python3-venv (ensurepip).
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    # The gateway test runs the shipped nginx configuration (deploy/gateway/).
    [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
    # mercato-bench's commands scenario drives HTTP with wrk.
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    # The storefront's browser tests drive Debian's headless Chromium through chromedriver.
    [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    [[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
    if ((${#missing[@]})); then
        # Only the binaries are wanted (promtool, nginx): keep the services from starting
        # (policy-rc.d, which invoke-rc.d and deb-systemd-invoke obey) unless the host has
        # its own policy.
        local policy=/usr/sbin/policy-rc.d own_policy=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        apt_install "${missing[@]}"
        if ((own_policy)); then
            rm -f "$policy"
            trap - EXIT
        fi
        echo "test tools: installed ${missing[*]}"
    else
        echo "test tools: already installed"
    fi
}

# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

[[ $EUID -eq 0 ]] || die "must run as root"
[[ $PG_PORT =~ ^[0-9]+$ ]] || die "MERCATO_PG_PORT must be a port number, got '$PG_PORT'"
[[ $NATS_PORT =~ ^[0-9]+$ ]] || die "MERCATO_NATS_PORT must be a port number, got '$NATS_PORT'"

# One run at a time (pg_hba.conf edits, apt): re-run this script under
# flock. -o closes the lock fd in the child, so the servers started below do
# not inherit it (otherwise a running postgres would hold the lock forever).
if [[ ${MERCATO_STACK_LOCKED:-} != 1 ]]; then
    mkdir -p "$(dirname "$LOCK_FILE")"
    rc=0
    MERCATO_STACK_LOCKED=1 flock -o -w 120 -E 75 "$LOCK_FILE" bash "$0" "$@" || rc=$?
    ((rc != 75)) || die "another stack.sh run has held $LOCK_FILE for 120s"
    exit "$rc"
fi

ensure_postgres
ensure_nats
ensure_test_tools
