# s3av: `make demo` installs and runs the product; `make test` installs what the tests need and runs them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install services clamd test lint demo clean-var

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	# Debian ships venv apart (python3-venv); install it when missing and running as root.
	$(PYTHON) -m venv $(VENV) || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# PostgreSQL (a private cluster under var/ on port 54329), Redis and RabbitMQ: installed from the
# machine's packages when missing (as root) and started.
services:
	bash scripts/services.sh

# ClamAV from the machine's packages, our test signature database, and clamd.
clamd:
	bash scripts/clamav.sh start

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	source scripts/test-env.sh && $(VENV)/bin/mypy .

# The private PostgreSQL cluster only when DATABASE_URL is unset, and stopped again at the end if this
# started it: left running, it holds port 54329 and another checkout's `make test` on the machine fails.
test: install clamd
	bash scripts/services.sh rabbitmq
	S3AV_TEST_STOP_POSTGRES=1 bash scripts/test.sh

# clamd and the private PostgreSQL cluster are started (and stopped at the end) by the demo itself.
demo: install
	bash scripts/services.sh redis
	bash scripts/demo.sh

clean-var:
	bash scripts/clamav.sh stop || true
	bash scripts/postgres.sh destroy || true
	rm -rf var
