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
	# SAML: xmlsec and lxml must load the same libxml2 (pinned wheels); fail here, not at sign-in.
	$(PY) -c 'import lxml.etree, xmlsec; assert lxml.etree.LIBXML_VERSION == xmlsec.get_libxml_version(), "lxml and xmlsec use different libxml2"'
	# The tests' SAML IdP (pysaml2) signs with Debian's xmlsec1 command.
	command -v xmlsec1 >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xmlsec1; } || \
		echo "xmlsec1 is missing (the SAML tests need it); as root: apt-get install xmlsec1" >&2
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
	$(VENV)/bin/lint-imports --no-cache

# The private PostgreSQL cluster only when DATABASE_URL is unset, and stopped again at the end if this
# started it: left running, it holds port 54329 and another checkout's `make test` on the machine fails.
test: install clamd
	bash scripts/services.sh rabbitmq
	# The SSO browser test drives Debian's chromium through Playwright (never a browser download).
	# Playwright's own node driver needs libatomic1, which a minimal Debian lacks.
	dpkg -s chromium libatomic1 >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium libatomic1; } || \
		echo "chromium is missing: the SSO browser test is skipped; as root: apt-get install chromium libatomic1" >&2
	S3AV_TEST_STOP_POSTGRES=1 bash scripts/test.sh

# clamd and the private PostgreSQL cluster are started (and stopped at the end) by the demo itself.
demo: install
	bash scripts/services.sh redis
	bash scripts/demo.sh

clean-var:
	bash scripts/clamav.sh stop || true
	bash scripts/postgres.sh destroy || true
	rm -rf var
