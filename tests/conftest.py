from __future__ import annotations

import pytest

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
