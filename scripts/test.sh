#!/usr/bin/env bash
# Lint, type-check and run the test suite against PostgreSQL, RabbitMQ, clamd and a local S3 endpoint.
# Without DATABASE_URL the tests use the private cluster of scripts/postgres.sh, started here.
set -euo pipefail
cd "$(dirname "$0")/.."
# With S3AV_TEST_STOP_POSTGRES=1 (make test, CI) a cluster this run started is stopped when it ends, so it
# does not keep port 54329 from the next checkout's run; started by hand it stays up for the next run.
if [[ -z ${DATABASE_URL:-} ]]; then
  if [[ ${S3AV_TEST_STOP_POSTGRES:-} == 1 ]] && ! bash scripts/postgres.sh status; then
    trap 'bash scripts/postgres.sh stop' EXIT
  fi
  bash scripts/postgres.sh start >/dev/null
fi
source scripts/test-env.sh
export S3AV_CLAMD="${S3AV_CLAMD:-unix://${S3AV_CLAMAV_DIR:-${S3AV_VAR_DIR:-$PWD/var}/clamav}/clamd.sock}"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
# The import contracts of pyproject.toml ([tool.importlinter]): scanning's layers, no Django in engine/s3.
.venv/bin/lint-imports --no-cache
# No function over 60 lines outside data literals (docstrings and multi-line literals not counted).
.venv/bin/python scripts/function_length.py
.venv/bin/pytest "$@"
