"""``python -m streams.run [--exit-with-parent]``: run the stream worker in the foreground until SIGTERM / SIGINT.

``run_worker(settings) -> int`` is what ``taskledger worker`` calls.

When the analytical store is an in-process chdb directory, the worker's projector process owns it (one
process per directory) and serves the read-only ClickHouse-HTTP endpoint of ``connectors.olap_server`` for
everyone else (``taskledger sql``, curl): once it has opened the store it listens on
127.0.0.1:``TASKLEDGER_OLAP_PORT`` (0 = ephemeral) and writes ``$TASKLEDGER_HOME/olap-endpoint.json``; on
shutdown it removes the file and stops serving before it flushes and closes (``streams.projector``)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from connectors.settings import Settings

log = logging.getLogger(__name__)


def run_app(app: Any, loglevel: str = "info") -> int:
    """Run a Faust app in the foreground (``faust.Worker``) until it stops; its exit code."""
    import faust

    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return 0


def run_worker(settings: Settings | None = None, loglevel: str = "info") -> int:
    from streams.app import make_app

    settings = settings or Settings()
    try:  # the output topics with their contract settings (status compacted); faust creates its own
        from connectors import kafka as k

        k.ensure_topics(settings.bootstrap, k.topic_specs(settings.events_partitions))
    except Exception as error:  # noqa: BLE001 - broker not up yet: faust waits for it and auto-creation applies
        log.warning("worker: could not create the contract topics: %s", error)
    app = make_app(settings)
    try:
        return run_app(app, loglevel)
    finally:
        processor = getattr(app, "taskledger_processor", None)
        if processor is not None:
            processor.close()
            log.info("worker: stopped (%s)", processor.stats)


def exit_with_parent() -> None:
    """SIGTERM this process once its parent is gone (``taskledger up`` killed without a chance to stop us):
    an orphaned worker would keep the chdb directory locked."""
    import os
    import signal
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        log.warning("worker: the supervising process %d is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="taskledger-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.run [--exit-with-parent]`` (``taskledger up`` passes the flag)."""
    args = sys.argv[1:] if argv is None else argv
    if "--exit-with-parent" in args:
        exit_with_parent()
    sys.argv = sys.argv[:1]  # faust's worker must not see our flags
    return run_worker()


if __name__ == "__main__":
    sys.exit(main())
