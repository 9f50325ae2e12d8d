#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests and the demo, so neither needs (nor changes) the machine's own
# installation: its own data directory, its own loopback port, trust authentication inside it only.
#
#   bash scripts/postgres.sh install   apt-get PostgreSQL's server binaries if missing (root only)
#   bash scripts/postgres.sh start     install if needed, initdb once, start; print DATABASE_URL's base
#   bash scripts/postgres.sh stop      stop it (fast shutdown)
#   bash scripts/postgres.sh status    exit 0 when it answers
#   bash scripts/postgres.sh destroy   stop it and delete its data directory
#
# Environment:
#   S3AV_PG_PORT   loopback port (default 54329)
#   S3AV_PG_DIR    data directory (default <var>/postgres, see below)
#
# PostgreSQL refuses to run as root. Run as root, the cluster belongs to the `postgres` system user that
# Debian's package creates; when that user cannot reach <var>/postgres (a project under /root, which is
# 0700), the data directory is /var/tmp/s3av-postgres-<hash of the project's var dir> instead. Run as
# anyone else, it belongs to that user. The cluster trusts every connection from 127.0.0.1 (any local
# user can connect as its superuser `postgres`) and runs with fsync off: it holds test and demo data only.
set -euo pipefail

PROJECT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR_DIR=${S3AV_VAR_DIR:-$PROJECT_DIR/var}
PORT=${S3AV_PG_PORT:-54329}
OWNER=

log() { echo "postgres.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

bin_dir() {
    # Debian keeps the server binaries off PATH, one directory per major version: take the newest.
    local initdb
    initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
    [[ -n $initdb ]] || initdb=$(command -v initdb 2>/dev/null) || return 1
    dirname "$initdb"
}

cmd_install() {
    bin_dir >/dev/null && return 0
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL's server is not installed; as root: apt-get install postgresql"
    log "installing PostgreSQL"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    bin_dir >/dev/null || die "still no initdb after apt-get install postgresql"
}

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        # From /: the owner may not be allowed into the current directory.
        (cd / && runuser -u "$OWNER" -- "$@")
    else
        "$@"
    fi
}

resolve() {
    mkdir -p "$VAR_DIR"
    VAR_DIR=$(cd "$VAR_DIR" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
        OWNER=postgres
        getent passwd "$OWNER" >/dev/null || die "no '$OWNER' system user to run PostgreSQL as (root may not)"
    else
        OWNER=$(id -un)
    fi
    if [[ -n ${S3AV_PG_DIR:-} ]]; then
        DATA=$(realpath -m "$S3AV_PG_DIR")
    elif as_owner test -x "$VAR_DIR"; then
        DATA=$VAR_DIR/postgres
    else
        DATA=/var/tmp/s3av-postgres-$(printf '%s' "$VAR_DIR" | sha256sum | cut -c1-12)
    fi
    LOGFILE=$DATA.log
}

lock() {
    # make test and make demo may start it at the same time.
    exec 8>"$VAR_DIR/.postgres.lock"
    flock -w 120 8 || die "timed out waiting for the lock $VAR_DIR/.postgres.lock"
}

answers() { as_owner "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U postgres; }

running() { [[ -f $DATA/PG_VERSION ]] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

init_cluster() {
    log "creating a private cluster in $DATA (owner $OWNER, port $PORT)"
    mkdir -p "$DATA"
    [[ $(id -u) -eq 0 ]] && chown "$OWNER": "$DATA"
    chmod 700 "$DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    # Our own cluster's configuration, nothing of the system's: loopback TCP only (no socket in a system
    # directory), trust from 127.0.0.1 only, and no durability (test and demo data).
    as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# scripts/postgres.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    as_owner tee "$DATA/pg_hba.conf" >/dev/null <<EOF
# scripts/postgres.sh: loopback only, any user, no password (a private test and demo cluster).
host all all 127.0.0.1/32 trust
EOF
}

cmd_start() {
    cmd_install
    BIN=$(bin_dir)
    resolve
    lock
    if running; then
        answers || die "the cluster in $DATA runs but does not answer on 127.0.0.1:$PORT; see $LOGFILE"
    else
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            die "127.0.0.1:$PORT is taken by another server; set S3AV_PG_PORT to a free port"
        fi
        [[ -f $DATA/PG_VERSION ]] || init_cluster
        touch "$LOGFILE"
        [[ $(id -u) -eq 0 ]] && chown "$OWNER": "$LOGFILE"
        log "starting the private cluster in $DATA on 127.0.0.1:$PORT"
        # 8>&-: the server must not inherit (and hold forever) the lock.
        as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 -o "-p $PORT" start >/dev/null 8>&- ||
            die "PostgreSQL did not start: $(tail -n 20 "$LOGFILE")"
    fi
    echo "postgres://postgres@127.0.0.1:$PORT"
}

cmd_stop() {
    BIN=$(bin_dir) || return 0
    resolve
    lock
    running || return 0
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    log "stopped the private cluster in $DATA"
}

cmd_status() {
    BIN=$(bin_dir) || return 1
    resolve
    running && answers
}

cmd_destroy() {
    cmd_stop
    resolve
    rm -rf "$DATA" "$LOGFILE"
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    destroy) cmd_destroy ;;
    *)
        echo "usage: $0 install|start|stop|status|destroy" >&2
        exit 2
        ;;
esac
