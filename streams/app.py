"""The Faust application of the stream worker (``taskledger worker``).

Tuned for the dev broker (tansu, memory storage): at-least-once (aiokafka's idempotent producer fails on
tansu, so no exactly-once/transactions), short session timeout (group joins take about half of it), web
server off. State (raised alert ids, next wakeups) lives in memory tables backed by changelog topics, so a
restarted worker recovers them from the broker."""

from __future__ import annotations

from typing import Any

import faust

from connectors.settings import Settings

APP_ID = "taskledger-worker"

# Measured (python -m bench.bench_streams; bench/README.md): with the hand-off of streams.transport, the first
# three lift a consume-only Faust agent from ~12,000 to ~16,000 events/s on the dev machine.
# ``cython_optimizations`` is faust's documented opt-in for its repaired Cython fast path (take the values
# already queued instead of awaiting the channel for each). ``producer_linger`` lets aiokafka batch the
# ``task-state`` changelog records (one produce request per record before): the Faust process's CPU for
# 60,000 events 6.3 -> 5.1 s.
TUNING: dict[str, Any] = {
    "cython_optimizations": True,
    "stream_buffer_maxsize": 65_536,
    "broker_max_poll_records": 10_000,
    "producer_linger": 0.01,
}


def app_config(bootstrap: str, datadir: str, tuning: bool = True, **overrides: Any) -> dict[str, Any]:
    """The Faust settings of the worker (and of the apps that measure or probe its consumer): the dev
    broker's (module docstring), ``TUNING`` (unless ``tuning`` is false: stock faust), then ``overrides``."""
    config: dict[str, Any] = {
        "broker": f"kafka://{bootstrap}",
        "store": "memory://",
        "processing_guarantee": "at_least_once",
        "topic_partitions": 6,
        "topic_replication_factor": 1,
        "web_enabled": False,
        "broker_session_timeout": 2.0,
        "broker_heartbeat_interval": 0.5,
        "broker_commit_every": 1000,
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "datadir": datadir,
        "table_cleanup_interval": 3600.0,
        "autodiscover": False,
    }
    if tuning:
        config.update(TUNING)
    config.update(overrides)
    return config


def make_app(settings: Settings, **overrides: Any) -> faust.App:
    """A configured (not started) worker app; agents, tables and timers are attached by
    ``streams.agents.install``."""
    from domain.contract import EVENTS_TOPIC
    from streams.agents import install
    from streams.transport import WorkerApp

    datadir = settings.home / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = WorkerApp(APP_ID, **app_config(settings.bootstrap, str(datadir), **overrides))
    # the events topic has no holes in its offsets (delete policy, retention forever, no transactions):
    # a hole means records were skipped, and they are read again (streams.transport.DenseOffsets)
    app.dense_topics = frozenset({EVENTS_TOPIC})

    install(app, settings)
    return app
