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

# PostgreSQL, Redis and RabbitMQ: start whichever is installed and not running.
services:
	bash scripts/services.sh

# ClamAV from the machine's packages, our test signature database, and clamd.
clamd:
	bash scripts/clamav.sh start

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	source scripts/test-env.sh && $(VENV)/bin/mypy .

test: install services clamd
	bash scripts/test.sh

demo: install clamd
	bash scripts/services.sh redis
	bash scripts/demo.sh

clean-var:
	bash scripts/clamav.sh stop || true
	rm -rf var
