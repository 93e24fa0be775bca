from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from cordon.testing import PostgresCluster, ReleaseError, previous_release_python
from tests.support import Mosquitto, free_port


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def dead_broker_url():
    """A broker URL nothing listens on: apps under test run with their uplink down."""
    return f"mqtt://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL cluster of our own for the whole run (see cordon.testing.PostgresCluster)."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.destroy()


_databases = itertools.count(1)


@pytest.fixture
def pg_dsn(pg_cluster):
    """A fresh, empty database in the session's cluster for one test; dropped afterwards."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    dsn = pg_cluster.create_database(name)
    yield dsn
    pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def sync_browser():
    """One headless Chromium for a module of sync Playwright tests (the ring map's, the statistics')."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def previous_python() -> str:
    """The previous release's Python (built on first use; ``make test`` builds it before pytest starts):
    its edges and hub run against this checkout's (tests/test_compat_system.py, tests/test_several_hubs.py)."""
    try:
        return str(previous_release_python(Path(__file__).resolve().parents[1]))
    except ReleaseError as exc:
        pytest.fail(str(exc), pytrace=False)
