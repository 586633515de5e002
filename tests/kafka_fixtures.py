"""Pytest plugin: a real Kafka-API broker (tansu, memory storage) for integration tests.

Enable it in tests/conftest.py with ``pytest_plugins = ["tests.kafka_fixtures"]``.

* ``kafka_broker`` (session): one broker shared by the whole run. Tests use unique topic names on it
  (or the real names when they are the only writer) and must not stop or restart it.
* ``fresh_broker`` (function): a private, empty broker for tests that need no topics at all, or
  that kill / restart the broker; stopped at the end of the test.

Never skipped: a broker that cannot start makes the test ERROR with the reason and the broker log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.broker import DevBroker, start_dev_broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBroker]:
    log_path: Path = tmp_path_factory.mktemp("kafka") / "broker.log"
    broker = start_dev_broker(log_path=log_path)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[DevBroker]:
    """A private, empty broker, stopped after the test. A test that calls ``restart_empty`` on it
    stops the broker it gets back itself (``request.addfinalizer(new.stop)``)."""
    broker = start_dev_broker(log_path=tmp_path / "broker.log")
    try:
        yield broker
    finally:
        broker.stop()
