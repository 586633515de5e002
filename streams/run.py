"""``python -m streams.run``: run the stream worker in the foreground until SIGTERM / SIGINT.

``run_worker(settings) -> int`` is what ``taskledger worker`` calls."""

from __future__ import annotations

import logging
import sys

from connectors.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings | None = None, loglevel: str = "info") -> int:
    import faust

    from streams.app import make_app

    settings = settings or Settings()
    try:  # the output topics with their contract settings (status compacted); faust creates its own
        from connectors import kafka as k

        k.ensure_topics(settings.bootstrap, k.topic_specs(settings.events_partitions))
    except Exception as error:  # noqa: BLE001 - broker not up yet: faust waits for it and auto-creation applies
        log.warning("worker: could not create the contract topics: %s", error)
    app = make_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        processor = getattr(app, "taskledger_processor", None)
        if processor is not None:
            processor.close()
            log.info("worker: stopped (%s)", processor.stats)
    return code


def main() -> int:
    return run_worker()


if __name__ == "__main__":
    sys.exit(main())
