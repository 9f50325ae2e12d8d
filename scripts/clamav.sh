#!/usr/bin/env bash
# Run the clamd that s3av scans with, from the project tree.
#
#   bash scripts/clamav.sh install   apt-get the ClamAV packages if missing; keep Debian's own daemons off
#   bash scripts/clamav.sh sigs      build and test-load the signature database, then swap it in
#   bash scripts/clamav.sh start     install + sigs if needed, render clamd.conf, start clamd, print S3AV_CLAMD=...
#   bash scripts/clamav.sh stop      stop the clamd started by `start` (from its pid file)
#   bash scripts/clamav.sh status    PING it; exit 0 when it answers
#
# Environment:
#   S3AV_CLAMAV_DIR        state directory (default <project>/var/clamav); must be short, the socket
#                          path inside it is limited to 107 bytes by AF_UNIX
#   S3AV_MAX_OBJECT_SIZE   largest object scanned, clamd SIZE syntax (default 1024M, at most 2047M)
#   S3AV_CLAMD_START_TIMEOUT  seconds to wait for PING after starting clamd (default 60)
#   S3AV_CLAMD_CONCURRENT_RELOAD  yes (default): clamd keeps scanning with the old engine while it loads
#                          the new one (twice the memory during a reload); no: every scan, even one in
#                          flight, stalls until the load is done
set -euo pipefail

PROJECT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATE=$PROJECT_DIR/deploy/clamd.conf.template
TESTFILES=/usr/share/clamav-testfiles
OFFICIAL_DB=/var/lib/clamav

CLAMAV_DIR=${S3AV_CLAMAV_DIR:-${S3AV_VAR_DIR:-$PROJECT_DIR/var}/clamav}
MAX_OBJECT_SIZE=${S3AV_MAX_OBJECT_SIZE:-1024M}
START_TIMEOUT=${S3AV_CLAMD_START_TIMEOUT:-60}
CONCURRENT_RELOAD=${S3AV_CLAMD_CONCURRENT_RELOAD:-yes}

log() { echo "clamav.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

resolve_paths() {
    mkdir -p "$CLAMAV_DIR"
    CLAMAV_DIR=$(cd "$CLAMAV_DIR" && pwd)
    DB_DIR=$CLAMAV_DIR/db
    CONF=$CLAMAV_DIR/clamd.conf
    SOCK=$CLAMAV_DIR/clamd.sock
    PIDFILE=$CLAMAV_DIR/clamd.pid
    # sun_path is 108 bytes including the terminating NUL.
    if ((${#SOCK} > 107)); then
        die "socket path $SOCK is ${#SOCK} bytes, AF_UNIX allows 107: set S3AV_CLAMAV_DIR to a shorter directory"
    fi
}

LOCKED=0
lock_state_dir() {
    # Test sessions of several developers (or pytest-xdist workers) may run `start` at once: without the
    # lock two clamd would race for the socket and two `sigs` for the database directory.
    ((LOCKED)) && return 0
    exec 9>"$CLAMAV_DIR/.lock"
    flock -w 300 9 || die "timed out waiting for the lock on $CLAMAV_DIR"
    LOCKED=1
}

size_in_bytes() {
    local value=$1 number unit
    # The same forms s3av's settings accept: 512K, 100M, 1G (binary units; an optional iB or B after).
    [[ $value =~ ^([0-9]+)([KkMmGg]?)([iI]?[bB]?)$ ]] || die "S3AV_MAX_OBJECT_SIZE=$value: expected a number with an optional K, M or G suffix"
    number=$((10#${BASH_REMATCH[1]}))
    unit=${BASH_REMATCH[2]}
    case $unit in
        K | k) echo $((number * 1024)) ;;
        M | m) echo $((number * 1024 * 1024)) ;;
        G | g) echo $((number * 1024 * 1024 * 1024)) ;;
        *) echo "$number" ;;
    esac
}

check_concurrent_reload() {
    [[ $CONCURRENT_RELOAD == yes || $CONCURRENT_RELOAD == no ]] || die "S3AV_CLAMD_CONCURRENT_RELOAD=$CONCURRENT_RELOAD: expected yes or no"
}

check_max_size() {
    local bytes
    bytes=$(size_in_bytes "$MAX_OBJECT_SIZE")
    # ClamAV scans nothing of 2 GB or more, whatever its limits say.
    ((bytes > 0 && bytes < 2147483648)) || die "S3AV_MAX_OBJECT_SIZE=$MAX_OBJECT_SIZE: must be more than 0 and less than 2048M"
}

missing_packages() {
    # One package per missing piece, so an existing install is never touched. zip only builds test
    # archives (encrypted zips) and is not needed to run clamd.
    command -v clamd >/dev/null 2>&1 || [[ -x /usr/sbin/clamd ]] || echo clamav-daemon
    { command -v sigtool && command -v clamscan; } >/dev/null 2>&1 || echo clamav
    command -v clamdscan >/dev/null 2>&1 || echo clamdscan
    [[ -e $TESTFILES/clam.exe ]] || echo clamav-testfiles
    command -v zip >/dev/null 2>&1 || echo zip
}

clamd_bin() {
    command -v clamd 2>/dev/null || echo /usr/sbin/clamd
}

quiet_system_daemons() {
    # Debian's packages start their own clamd and freshclam; without signatures (no internet) they only
    # fail and retry, and they must never answer on our behalf. Errors are expected on machines without
    # systemd or without the services, so they are ignored.
    local unit
    for unit in clamav-daemon clamav-freshclam; do
        if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files "$unit.service" >/dev/null 2>&1; then
            systemctl disable --now "$unit.service" "$unit.socket" >/dev/null 2>&1 || true
        fi
        if [[ -x /etc/init.d/$unit ]]; then
            /etc/init.d/"$unit" stop >/dev/null 2>&1 || true
        fi
    done
}

cmd_install() {
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    missing=${missing% }
    [[ -z $missing ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        [[ $missing == zip ]] && {
            log "zip is missing: tests that build encrypted archives will be skipped"
            return 0
        }
        die "missing packages: $missing; installing them needs root: apt-get install $missing"
    fi
    log "installing $missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    quiet_system_daemons
    missing=$(missing_packages | tr '\n' ' ')
    [[ -z ${missing// /} ]] || die "still missing after apt-get install: $missing"
}

write_eicar() {
    # The standard 68-byte EICAR test string, written at build time so the repository never holds it.
    printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$1"
}

cmd_sigs() {
    cmd_install
    resolve_paths
    lock_state_dir
    local work new eicar known
    work=$(mktemp -d "$CLAMAV_DIR/sigs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    new=$work/db
    mkdir -p "$new"
    eicar=$work/eicar.com
    write_eicar "$eicar"

    # SHA-256 hash signatures (HashString:FileSize:MalwareName). ClamAV hashes every file it extracts,
    # so the clam.exe signature also finds clam.exe inside the zip, 7z, tar.gz, cab, ... samples.
    {
        sigtool --sha256 "$eicar" | sed 's/:[^:]*$/:S3av.Test.EICAR/'
        sigtool --sha256 "$TESTFILES/clam.exe" | sed 's/:[^:]*$/:S3av.Test.ClamTestFile/'
    } >"$new/s3av-test.hsb"

    # Official databases, when freshclam (or an operator) put some on this machine. Copied, not
    # linked, so what clamd loads is exactly what was test-loaded here.
    local f
    for f in "$OFFICIAL_DB"/*.cvd "$OFFICIAL_DB"/*.cld "$OFFICIAL_DB"/*.cud; do
        [[ -e $f ]] && cp -p "$f" "$new/"
    done

    # What the set is: the file `manage.py update_signatures` writes too (scanning/engine/signatures.py,
    # MANIFEST_FILE); the signature version is named by it, alike on every host with the same files.
    (cd "$new" && export LC_ALL=C && sha256sum -- *) >"$work/s3av-set.sha256"
    mv "$work/s3av-set.sha256" "$new/"

    # A malformed database can make clamd exit at RELOAD: prove the new one loads and detects before
    # it replaces the old one.
    known=$work/known
    cp "$TESTFILES/clam.exe" "$known"
    local rc=0
    clamscan --no-summary --infected -d "$new" "$known" "$eicar" >"$work/clamscan.out" 2>&1 || rc=$?
    # clamscan exits 1 when it found something; both files must have been found.
    if ((rc != 1)) || [[ $(grep -c ' FOUND$' "$work/clamscan.out") -ne 2 ]]; then
        die "test load of $new failed (clamscan exit $rc): $(cat "$work/clamscan.out")"
    fi

    # $DB_DIR (clamd's DatabaseDirectory) is a symlink to one generation under db.d/, replaced with a
    # single rename so clamd and the workers see the old set or the new one, never none; the same layout
    # `manage.py update_signatures` keeps (scanning/engine/signatures.py). This rebuilds the base set: files
    # an update added come back at the next update run.
    local generation previous=""
    generation=sigs-$(date -u +%Y%m%dT%H%M%SZ)-$$
    mkdir -p "$CLAMAV_DIR/db.d"
    mv "$new" "$CLAMAV_DIR/db.d/$generation"
    if [[ -L $DB_DIR ]]; then
        previous=$(basename "$(readlink "$DB_DIR")")
    elif [[ -d $DB_DIR ]]; then
        mv "$DB_DIR" "$work/old"
    fi
    ln -sfn "db.d/$generation" "$CLAMAV_DIR/.db.link"
    mv -Tf "$CLAMAV_DIR/.db.link" "$DB_DIR"
    local old
    for old in "$CLAMAV_DIR"/db.d/*; do
        [[ $(basename "$old") == "$generation" || $(basename "$old") == "$previous" ]] || rm -rf "$old"
    done
    rm -rf "$work"
    log "signature database ready in $DB_DIR ($(cat "$DB_DIR"/*.hsb | wc -l) hash signatures)"
    if [[ -f $CONF ]] && ping_clamd; then
        clamdscan --config-file="$CONF" --reload >/dev/null 2>&1 || log "RELOAD of the running clamd failed"
        log "asked the running clamd to reload"
    fi
}

ping_clamd() {
    [[ -S $SOCK ]] || return 1
    clamdscan --config-file="$CONF" --ping 1 >/dev/null 2>&1
}

render_conf() {
    local target=$1
    sed -e "s|@VARDIR@|$CLAMAV_DIR|g" -e "s|@DBDIR@|$DB_DIR|g" -e "s|@MAXSIZE@|$(size_in_bytes "$MAX_OBJECT_SIZE")|g" \
        -e "s|@CONCURRENT_RELOAD@|$CONCURRENT_RELOAD|g" "$TEMPLATE" >"$target"
}

cmd_start() {
    check_max_size
    check_concurrent_reload
    cmd_install
    resolve_paths
    lock_state_dir
    if [[ -f $CONF ]] && ping_clamd; then
        local rendered
        rendered=$(mktemp)
        render_conf "$rendered"
        if ! cmp -s "$rendered" "$CONF"; then
            log "clamd is already running with a different configuration; run 'stop' then 'start' to apply it"
        fi
        rm -f "$rendered"
        echo "S3AV_CLAMD=unix://$SOCK"
        return 0
    fi
    if ! compgen -G "$DB_DIR/*.hsb" >/dev/null; then
        cmd_sigs
    fi
    mkdir -p "$CLAMAV_DIR/tmp"
    render_conf "$CONF"
    log "starting clamd -c $CONF"
    # 9>&-: the daemon must not inherit (and hold forever) the lock on the state directory.
    "$(clamd_bin)" -c "$CONF" 9>&- >>"$CLAMAV_DIR/clamd.stdout" 2>&1 || die "clamd failed to start: $(tail -n 20 "$CLAMAV_DIR/clamd.stdout" "$CLAMAV_DIR/clamd.log" 2>/dev/null)"
    local waited=0
    until ping_clamd; do
        if ((waited >= START_TIMEOUT * 4)); then
            die "clamd did not answer PING on $SOCK within ${START_TIMEOUT}s: $(tail -n 20 "$CLAMAV_DIR/clamd.log" 2>/dev/null)"
        fi
        sleep 0.25
        waited=$((waited + 1))
    done
    log "clamd answers on $SOCK after about $((waited / 4))s"
    echo "S3AV_CLAMD=unix://$SOCK"
}

cmd_stop() {
    resolve_paths
    lock_state_dir
    local pid
    if [[ ! -f $PIDFILE ]]; then
        log "no pid file at $PIDFILE: nothing to stop"
        return 0
    fi
    pid=$(cat "$PIDFILE")
    if [[ ! $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
        log "clamd (pid ${pid:-?}) is not running"
        rm -f "$PIDFILE"
        return 0
    fi
    # Only the process whose command line names our configuration: a stale pid file may point at a
    # recycled pid.
    if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF"; then
        die "pid $pid from $PIDFILE is not our clamd; not stopping it"
    fi
    kill -TERM "$pid"
    local i
    for ((i = 0; i < 120; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        die "clamd (pid $pid) did not stop within 30s"
    fi
    rm -f "$PIDFILE"
    log "clamd (pid $pid) stopped"
}

cmd_status() {
    resolve_paths
    if [[ -f $CONF ]] && ping_clamd; then
        echo "clamd answers on unix://$SOCK"
        return 0
    fi
    echo "clamd does not answer on unix://$SOCK"
    return 1
}

case ${1:-} in
    install) cmd_install ;;
    sigs) cmd_sigs ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 install|start|stop|status|sigs" >&2
        exit 2
        ;;
esac
