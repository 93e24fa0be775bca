# Cordon: `make demo` runs the whole system on this machine, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast fuzz lint system-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	@touch $@

$(DEV_STAMP): pyproject.toml $(STAMP)
	$(PIP) install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/cordon demo

# Mosquitto (system tests), Chromium and a CJK font (browser tests), PostgreSQL 15 (the record's
# PostgreSQL tests start their own cluster from /usr/lib/postgresql/15/bin) from Debian packages when missing.
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || missing="$$missing fonts-wqy-microhei"; \
	test -x /usr/lib/postgresql/15/bin/initdb || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: lint system-deps
	$(VENV)/bin/pytest -q

# Property-based tests of every decoder with 10,000 examples each (make test runs 1,000).
fuzz: $(DEV_STAMP)
	CORDON_FUZZ_EXAMPLES=10000 $(VENV)/bin/pytest -q tests/test_fuzz.py

test-fast: $(DEV_STAMP)
	$(VENV)/bin/pytest -q -m "not system and not fault and not browser"

# One formatter (ruff format, pinned in pyproject.toml so every machine formats alike) and one linter.
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff format --check --quiet protocols runtime edge central cordon tests
	$(VENV)/bin/ruff check --quiet protocols runtime edge central cordon tests

clean:
	rm -rf $(VENV) demo-data .pytest_cache
