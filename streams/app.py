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


def make_app(settings: Settings, **overrides: Any) -> faust.App:
    """A configured (not started) worker app; agents, tables and timers are attached by
    ``streams.agents.install``."""
    datadir = settings.home / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "broker": f"kafka://{settings.bootstrap}",
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
        "datadir": str(datadir),
        "table_cleanup_interval": 3600.0,
        "autodiscover": False,
    }
    config.update(TUNING)
    config.update(overrides)
    from streams.agents import install
    from streams.transport import WorkerApp

    app = WorkerApp(APP_ID, **config)

    install(app, settings)
    return app
