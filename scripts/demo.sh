#!/usr/bin/env bash
# The demo: a working tenant, a local S3 endpoint (moto's server), clamd, a worker, the ingest loop,
# the scheduler and the portal, all on this machine. Stop with Ctrl-C: what the demo started (the S3
# endpoint, clamd, the private PostgreSQL cluster) stops with it. With S3AV_DEMO_CHECK=1 it runs
# scripts/demo_check.py once everything is up, then stops, exiting with the check's status.
set -euo pipefail
cd "$(dirname "$0")/.."

export S3AV_DEBUG="${S3AV_DEBUG:-true}"
export S3AV_SECRET_KEY="${S3AV_SECRET_KEY:-demo-secret-key-demo-secret-key-0123456789}"
export S3AV_DEMO_PASSWORD="${S3AV_DEMO_PASSWORD:-s3av-demo-password}"
export S3AV_DEMO_S3_PORT="${S3AV_DEMO_S3_PORT:-5055}"
export S3AV_AWS_ENDPOINT_URL="${S3AV_AWS_ENDPOINT_URL:-http://127.0.0.1:${S3AV_DEMO_S3_PORT}}"
# moto's server accepts any AssumeRole, so it cannot prove a role requires the external id.
export S3AV_AWS_CONFUSED_DEPUTY_CHECK="${S3AV_AWS_CONFUSED_DEPUTY_CHECK:-false}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-demo}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-demo}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
OWN_CLAMD=${S3AV_CLAMD:+0}
export S3AV_CLAMD="${S3AV_CLAMD:-unix://${S3AV_CLAMAV_DIR:-${S3AV_VAR_DIR:-$PWD/var}/clamav}/clamd.sock}"
export S3AV_BIND="${S3AV_BIND:-127.0.0.1:8000}"
export S3AV_ALLOW_HTTP_WEBHOOKS="${S3AV_ALLOW_HTTP_WEBHOOKS:-true}"
export S3AV_PUBLIC_URL="${S3AV_PUBLIC_URL:-http://${S3AV_BIND}}"

# Loopback never goes through a proxy: a machine behind one sets http_proxy, which boto3, urllib and
# requests would also apply to the local S3 endpoint and the portal on 127.0.0.1.
_s3av_no_proxy=${no_proxy:-${NO_PROXY:-}}
export no_proxy="${_s3av_no_proxy:+${_s3av_no_proxy},}127.0.0.1,localhost,::1"
export NO_PROXY=$no_proxy
unset _s3av_no_proxy

STOP=()
cleanup() {
  local i
  for ((i = ${#STOP[@]} - 1; i >= 0; i--)); do eval "${STOP[i]}" || true; done
}
trap cleanup EXIT

# Our clamd (scripts/clamav.sh), unless S3AV_CLAMD names another one.
if [[ -z ${OWN_CLAMD} ]] && ! bash scripts/clamav.sh status >/dev/null 2>&1; then
  bash scripts/clamav.sh start >/dev/null
  STOP+=("bash scripts/clamav.sh stop")
fi

# The private PostgreSQL cluster of scripts/postgres.sh (never the machine's own PostgreSQL), in which the
# database s3av_demo is the demo's alone; SQLite when that cluster cannot run here (not root, and no
# PostgreSQL installed). The demo starts from an empty database each time, as its S3 endpoint (moto, in
# memory) starts empty too.
if [[ -z "${DATABASE_URL:-}" ]]; then
  PG_WAS_UP=0
  bash scripts/postgres.sh status && PG_WAS_UP=1
  if PG_URL=$(bash scripts/postgres.sh start); then
    ((PG_WAS_UP)) || STOP+=("bash scripts/postgres.sh stop")
    PGOPTIONS="-c client_min_messages=warning" psql "${PG_URL}/postgres" -qc "DROP DATABASE IF EXISTS s3av_demo WITH (FORCE)" -c "CREATE DATABASE s3av_demo"
    export DATABASE_URL="${PG_URL}/s3av_demo"
  else
    echo "no PostgreSQL for the demo: using SQLite (var/demo.sqlite3)"
    mkdir -p var
    rm -f var/demo.sqlite3
    export DATABASE_URL="sqlite:///$PWD/var/demo.sqlite3"
  fi
fi
export S3AV_BROKER_URL="${S3AV_BROKER_URL:-redis://127.0.0.1:6379/1}"

mkdir -p var
# The demo's settings for a second shell: `source var/demo.env` before a manage.py command against the
# running demo (create_tenant, scan, update_signatures, shell, ...).
(umask 077; export -p | grep -E '^declare -x (S3AV_|DATABASE_URL=|AWS_|no_proxy=|NO_PROXY=)' >var/demo.env)
echo "starting the local S3 endpoint on ${S3AV_AWS_ENDPOINT_URL}"
.venv/bin/python -m moto.server -H 127.0.0.1 -p "${S3AV_DEMO_S3_PORT}" >var/demo-s3.log 2>&1 &
STOP+=("kill $! 2>/dev/null")
.venv/bin/python - <<'PY' || { echo "the local S3 endpoint did not start; see var/demo-s3.log" >&2; exit 1; }
import os, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(os.environ["S3AV_AWS_ENDPOINT_URL"] + "/moto-api/", timeout=1)
        break
    except OSError:
        time.sleep(0.2)
else:
    raise SystemExit(1)
PY

.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py collectstatic --noinput -v0
SETUP=$(.venv/bin/python manage.py demo_setup --password "${S3AV_DEMO_PASSWORD}")
echo "${SETUP}"
API_KEY=$(sed -n 's/^api key: //p' <<<"${SETUP}")

cat <<EOT

  s3av demo is starting.
  Portal:       ${S3AV_PUBLIC_URL}/            sign in as admin@demo.local / ${S3AV_DEMO_PASSWORD}
  Django admin: ${S3AV_PUBLIC_URL}/admin/      sign in as staff@demo.local / ${S3AV_DEMO_PASSWORD}
  API docs:     ${S3AV_PUBLIC_URL}/api/v1/docs/
  Findings:     ${S3AV_PUBLIC_URL}/findings/ in the portal, or the API with the header
                  Authorization: Bearer ${API_KEY}   (e.g. curl -H ... ${S3AV_PUBLIC_URL}/api/v1/results/)
  Upload more:  S3AV_AWS_ENDPOINT_URL=${S3AV_AWS_ENDPOINT_URL} .venv/bin/python scripts/demo_upload.py FILE
  manage.py:    in another shell, source var/demo.env first, e.g.
                  source var/demo.env && .venv/bin/python manage.py create_tenant --name Acme --admin-email a@acme.example
  Stop with Ctrl-C.

EOT
if [[ ${S3AV_DEMO_CHECK:-} != 1 ]]; then
  .venv/bin/honcho start -f Procfile
  exit
fi
.venv/bin/honcho start -f Procfile >var/demo-processes.log 2>&1 &
HONCHO_PID=$!
STOP+=("kill -TERM ${HONCHO_PID} 2>/dev/null && wait ${HONCHO_PID}")
S3AV_DEMO_API_KEY=${API_KEY} .venv/bin/python scripts/demo_check.py || {
  echo "the demo's processes said:" >&2
  tail -n 40 var/demo-processes.log >&2
  exit 1
}
