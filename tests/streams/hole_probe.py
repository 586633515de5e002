"""Child process of ``tests/streams/test_dense_offsets.py``: a worker app (``streams.transport.WorkerApp``, the
worker's tuning) that consumes one partition of a topic, writes every offset it is given to a file and acks
it. Once it has been given ``skip_after``, it moves its aiokafka fetcher straight to ``skip_to`` -- under
faust's consumer, as faust's start-up race does (``streams.transport``'s docstring) -- and writes ``skipped``.

Usage: ``python -m tests.streams.hole_probe BOOTSTRAP TOPIC OUT DATADIR DENSE(0|1) SKIP_AFTER SKIP_TO``."""

from __future__ import annotations

import sys
from typing import Any


def main(bootstrap: str, topic: str, out_path: str, datadir: str, dense: bool, skip_after: int, skip_to: int) -> int:
    from faust.types import TP

    from streams.app import app_config
    from streams.run import run_app
    from streams.transport import WorkerApp

    app = WorkerApp(f"probe-{topic}", **app_config(bootstrap, datadir, topic_partitions=1, broker_commit_interval=0.5))
    app.dense_topics = frozenset({topic}) if dense else frozenset()
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    out = open(out_path, "a", buffering=1)  # noqa: SIM115 - written line by line for the whole run
    skipped = [False]

    @app.agent(source, name="probe")
    async def consume(stream: Any) -> None:
        async for events in stream.noack_take(100, within=0.1):
            for event in events:
                out.write(f"{event.message.offset}\n")
                await stream.ack(event)
            if not skipped[0] and any(event.message.offset == skip_after for event in events):
                skipped[0] = True
                app.consumer._thread.seek(TP(topic, 0), skip_to)  # the fetcher jumps; faust's state does not know
                out.write("skipped\n")

    return run_app(app)


if __name__ == "__main__":
    bootstrap, topic, out_path, datadir, dense, skip_after, skip_to = sys.argv[1:8]
    sys.exit(main(bootstrap, topic, out_path, datadir, dense == "1", int(skip_after), int(skip_to)))
