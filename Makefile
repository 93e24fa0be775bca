# Cordon: `make demo` runs the whole system on this machine, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast fuzz lint system-deps compat-env clean lock

# The lock of every dependency with the hashes of every platform's files (deploy/requirements.lock), from
# pyproject.toml, with pip-tools in a tool environment of its own; run it after changing a dependency.
LOCK_TOOLS := $(HOME)/.cache/cordon-piptools
lock:
	@test -x $(LOCK_TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install --quiet pip-tools; }
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(LOCK_TOOLS)/bin/pip-compile --quiet --generate-hashes \
	  --allow-unsafe --strip-extras --no-emit-index-url --output-file deploy/requirements.lock pyproject.toml

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
# PostgreSQL tests start their own cluster from /usr/lib/postgresql/15/bin), and for the deployment's tests:
# promtool (the prometheus package), haproxy (its configuration is checked, its unit verified) and
# systemd-analyze (systemd), ip (iproute2, the runbook test's private network), from Debian packages
# when missing.
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || missing="$$missing fonts-wqy-microhei"; \
	test -x /usr/lib/postgresql/15/bin/initdb || missing="$$missing postgresql"; \
	test -x /usr/bin/promtool || missing="$$missing prometheus"; \
	test -x /usr/sbin/haproxy || missing="$$missing haproxy"; \
	test -x /usr/bin/systemd-analyze || missing="$$missing systemd"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The previous release (the last line of RELEASES) in an environment of its own, for the compatibility
# test (tests/test_compat_system.py), and main before PostgreSQL migration 12 for the cluster's rolling upgrade
# (tests/test_upgrade_cluster.py); built once per commit under ~/.cache/cordon-compat.
compat-env: $(DEV_STAMP)
	-$(PY) -m tests.compat  # failing here, the compatibility test fails and says why; the rest still runs

test: lint system-deps compat-env
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
	rm -rf $(VENV) demo-data .pytest_cache  # ~/.cache/cordon-compat (the previous release) is left
