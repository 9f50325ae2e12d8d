#!/usr/bin/env bash
# Lint, type-check and run the test suite against PostgreSQL, RabbitMQ, clamd and a local S3 endpoint.
# Without DATABASE_URL the tests use the private cluster of scripts/postgres.sh, started here.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n ${DATABASE_URL:-} ]] || bash scripts/postgres.sh start >/dev/null
source scripts/test-env.sh
export S3AV_CLAMD="${S3AV_CLAMD:-unix://${S3AV_CLAMAV_DIR:-${S3AV_VAR_DIR:-$PWD/var}/clamav}/clamd.sock}"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
exec .venv/bin/pytest "$@"
