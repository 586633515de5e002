"""The stream worker's agent: contract v1 events -> ClickHouse projections, task status, alerts.

Design choice (documented for review): the stream folds each touched Task **from the event store,
read-only** (``TaskLedger._fold``, the application's own fold of stored domain events) rather than from
the contract envelopes. Inverting ``domain.contract.envelope_from_stored`` for every event type (and
confidential tasks, whose published payloads are redacted, cannot be inverted at all) was out of scope;
folding from the store is exactly the domain code the rebuild and ``task_view`` use, and a message on
``taskledger.events.v1`` is only published after its event is stored, so the fold always includes it.
Status and alert rows come from ``connectors.rebuild.task_rows`` -- the same function the rebuild uses.

Per batch (``stream.take(1000, within=0.5)``):

1. every envelope -> ``projections.rows.event_row`` -> ``task_events``;
2. every touched Task (and its parent, whose rollup depends on it) is folded and evaluated at the
   ledger's clock: ``task_status`` row, alert rows; alerts whose ``alert_id`` is not in the ``raised``
   table (task id -> raised alert ids, changelogged) are new -> ``task_alerts``;
3. the three writers are flushed;
4. only then the tables are updated and status / new alerts are published; the batch's offsets are
   acked by faust when the loop asks for the next batch (after all of the above): at-least-once.

All blocking work (SQLite fold, domain evaluation, chdb inserts) runs in one worker thread so the event
loop keeps heart-beating (session timeout 2 s); one asyncio lock serialises batches and timer ticks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import faust
import orjson

from connectors.settings import Settings
from projections.rows import event_row
from projections.schema import ALERT_COLUMNS, EVENT_COLUMNS, STATUS_COLUMNS
from projections.writer import BatchWriter
from streams.evaluate import Evaluation, evaluate_tasks
from streams.topics import alerts_topic, events_topic, status_topic

log = logging.getLogger(__name__)

BATCH = 1000
WITHIN_S = 0.5


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(type(value).__name__)


def dumps(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


@dataclass
class WorkerStats:
    batches: int = 0
    events: int = 0
    statuses: int = 0
    alerts: int = 0
    timer_ticks: int = 0
    errors: int = 0


@dataclass
class Processor:
    """The worker's resources: the ledger (read-only use), the ClickHouse client and its writers."""

    settings: Settings
    ledger: Any = None
    client: Any = None
    writers: dict[str, BatchWriter] = field(default_factory=dict)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "taskledger-worker"))
    lock: asyncio.Lock | None = None
    stats: WorkerStats = field(default_factory=WorkerStats)

    def open(self) -> None:
        """Runs in the worker thread: chdb is bound to the process, SQLite connections to threads."""
        from connectors.clickhouse import connect, migrate
        from connectors.eventstore import open_ledger

        self.ledger = open_ledger(self.settings)
        self.client = connect(settings=self.settings)
        migrate(self.client)
        inf = float("inf")
        self.writers = {
            "task_events": BatchWriter(self.client, "task_events", EVENT_COLUMNS, 10_000, inf),
            "task_status": BatchWriter(self.client, "task_status", STATUS_COLUMNS, 10_000, inf),
            "task_alerts": BatchWriter(self.client, "task_alerts", ALERT_COLUMNS, 10_000, inf),
        }

    def close(self) -> None:
        """Flush and close (called by ``streams.run`` once the worker stopped)."""
        self.executor.shutdown(wait=True)
        for writer in self.writers.values():
            try:
                writer.close()
            except Exception as error:  # noqa: BLE001 - report, keep closing
                log.warning("worker: final flush of %s failed: %s", writer.table, error)
        if self.client is not None:
            self.client.close()
        if self.ledger is not None:
            self.ledger.close()

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- the blocking part of one batch / tick ----------------------------------------------------------------
    def process(
        self, envelopes: list[dict[str, Any]], task_ids: set[UUID], raised: Callable[[str], frozenset[str]]
    ) -> Evaluation:
        """Write event rows, evaluate the tasks, write status and NEW alert rows, flush everything."""
        if envelopes:
            self.writers["task_events"].add(event_row(e) for e in envelopes)
        result = evaluate_tasks(self.ledger, task_ids, self.ledger.clock(), raised)
        self.writers["task_status"].add(result.statuses.values())
        self.writers["task_alerts"].add(a for rows in result.new_alerts.values() for a in rows)
        for writer in self.writers.values():  # BEFORE the offsets are acked / committed
            writer.flush()
        return result


def touched_tasks(envelopes: list[dict[str, Any]]) -> set[UUID]:
    return {UUID(e["aggregate_id"]) for e in envelopes if e.get("aggregate_type") == "Task"}


def install(app: faust.App, settings: Settings) -> Processor:
    """Attach the tables, the agent and the timers to ``app``."""
    processor = Processor(settings)
    app.taskledger_processor = processor  # type: ignore[attr-defined]
    # keyed by task id (the source topic's key) with the producer's partitioner: a task's state lives in
    # the changelog partition of the task's events
    # keys: the task id as UTF-8 bytes ("raw", like the relay's message key); values: JSON (no value_type:
    # a typed value needs a faust Record to be recovered from the changelog)
    common: dict[str, Any] = {"default": None, "partitions": 6, "key_type": bytes, "use_partitioner": True}
    raised = app.Table("raised-alerts", **common)  # task id -> sorted list of raised alert ids
    wakeups = app.Table("task-wakeups", **common)  # task id -> next wakeup, UTC ISO 8601 (or None)
    app.taskledger_tables = (raised, wakeups)  # type: ignore[attr-defined]
    source = events_topic(app)
    status_out = status_topic(app)
    alerts_out = alerts_topic(app)

    async def apply(envelopes: list[dict[str, Any]], task_ids: set[UUID]) -> None:
        """One unit of work: the blocking part in the worker thread, then tables and publications."""
        if processor.lock is None:
            processor.lock = asyncio.Lock()
        async with processor.lock:
            if processor.client is None:  # opened lazily, in the worker thread, by the first unit of work
                await processor.run(processor.open)
                log.info("worker: ledger and analytical store open")

            def seen(task: str) -> frozenset[str]:  # read in the worker thread; tables change only under the lock
                return frozenset(raised.get(task.encode()) or ())

            result: Evaluation = await processor.run(processor.process, envelopes, task_ids, seen)
            for task, rows in result.new_alerts.items():
                if rows:
                    raised[task.encode()] = sorted(seen(task) | {r["alert_id"] for r in rows})
            for task, wake in result.wakeups.items():
                if wakeups.get(task.encode()) != wake:
                    wakeups[task.encode()] = wake
            for task, row in result.statuses.items():
                await status_out.send(key=task.encode(), value=dumps(row))
            for task, rows in result.new_alerts.items():
                for row in rows:
                    await alerts_out.send(key=task.encode(), value=dumps(row))
            processor.stats.statuses += len(result.statuses)
            processor.stats.alerts += sum(len(r) for r in result.new_alerts.values())

    app.taskledger_apply = apply  # type: ignore[attr-defined]

    @app.agent(source, name="taskledger-projector")
    async def project(stream: Any) -> None:
        async for batch in stream.take(BATCH, within=WITHIN_S):
            envelopes = [orjson.loads(value) for value in batch]
            await apply(envelopes, touched_tasks(envelopes))
            processor.stats.batches += 1
            processor.stats.events += len(envelopes)
            log.info(
                "worker: batch of %d events (total %d events, %d statuses, %d alerts)",
                len(envelopes),
                processor.stats.events,
                processor.stats.statuses,
                processor.stats.alerts,
            )

    from streams.timers import install_timers

    install_timers(app, processor, wakeups, apply)

    return processor
