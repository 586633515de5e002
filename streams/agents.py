"""The stream worker's agent: contract v1 events -> ClickHouse projections, task status, alerts.

Several processes (see ``streams.projector`` for why): this module is the Faust side -- it consumes
``taskledger.events.v1`` in batches (through ``streams.transport``'s consumer), keeps the durable tables
and acks offsets; the projector process evaluates (itself, or sharded over ``streams.evaluators``), writes
ClickHouse and publishes.

Design choice (documented for review): the projector folds each touched Task **from the event store,
read-only** (``streams.evaluate.Folds``: the application's own domain events, brought up to date with the
events after the cached version) rather than from the contract envelopes. Inverting
``domain.contract.envelope_from_stored`` for every event type (and confidential tasks, whose published
payloads are redacted, cannot be inverted at all) was out of scope; folding from the store is exactly the
domain code the rebuild and ``task show`` use, and a message on ``taskledger.events.v1`` is only published
after its event is stored, so the fold always includes it. Status and alert rows come from
``connectors.rebuild.task_rows_and_wakeup`` -- the same function the rebuild uses.

Per batch (``stream.noack_take(TASKLEDGER_WORKER_BATCH, within=WITHIN_S)``, default ``BATCH``):

1. the raw message values go to the projector (``batch``), which answers after it has written every row
   (events, status of every touched task and its parent, alerts not raised before), flushed ClickHouse,
   published the statuses and new alerts and flushed the producer;
2. ``apply_result`` then records each evaluated task's state in the ``task-state`` table (version, status,
   next wakeup, ids of the alerts raised; changelogged, so a restarted worker recovers it) and acks the
   batch's events; faust commits acked offsets (at-least-once: a batch is acked only after all of the
   above).

Batches are pipelined: while the projector works on one, the agent consumes the next (up to
``IN_FLIGHT`` requests), and a separate task completes them in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import faust

from connectors.settings import Settings
from domain.contract import EVENTS_TOPIC
from streams.projector import ProjectorClient, ProjectorError, shared_clock
from streams.topics import events_topic

log = logging.getLogger(__name__)

BATCH = 10_000  # the default of TASKLEDGER_WORKER_BATCH (Settings.worker_batch)
WITHIN_S = 0.5
IN_FLIGHT = 2
EXIT_PROJECTOR_FAILED = 70  # EX_SOFTWARE


@dataclass
class WorkerStats:
    batches: int = 0
    events: int = 0
    statuses: int = 0
    alerts: int = 0
    timer_ticks: int = 0
    errors: int = 0
    reseeks: int = 0


@dataclass
class Processor:
    """The Faust side's handle: the projector process and the bookkeeping of requests in flight."""

    settings: Settings
    clock_origin: float = field(default_factory=time.time)
    projector: ProjectorClient | None = None
    opened: asyncio.Future[Any] | None = None
    stats: WorkerStats = field(default_factory=WorkerStats)
    clock: Any = None
    seen: dict[Any, int] = field(default_factory=dict)  # events partition -> last offset consumed
    last_batch_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.clock = shared_clock(self.settings.clock, self.clock_origin)

    def start(self) -> None:
        if self.projector is None:
            self.projector = ProjectorClient(self.settings, self.clock_origin)
            self.projector.start()

    async def ensure_open(self, states: Any) -> None:
        """Open the projector once, with the raised alert ids recovered in the ``task-state`` table."""
        self.start()
        assert self.projector is not None
        try:
            if self.opened is None:
                known = {_text(task): list((state or {}).get("raised") or ()) for task, state in states.items()}
                self.opened = self.projector.submit("open", known)
                info = await self.opened
                log.info("worker: projector %s ready (%d tasks with raised alerts)", info["pid"], info["raised_tasks"])
            else:
                await self.opened
        except ProjectorError as error:
            self.fatal(error)

    def fatal(self, error: BaseException) -> None:
        """Exit at once, without committing: a clean faust stop would wait forever for the unacked batch
        ("wait for streams"). The batch is consumed again by the restarted worker (``taskledger up``
        restarts it); the projector dies with this process (``PR_SET_PDEATHSIG``)."""
        self.stats.errors += 1
        log.critical("worker: %s; exiting (nothing unfinished is acked: it is consumed again)", error)
        logging.shutdown()
        os._exit(EXIT_PROJECTOR_FAILED)

    def close(self) -> None:
        """Flush and stop the projector (called by ``streams.run`` once the worker stopped)."""
        if self.projector is not None:
            self.projector.close()


def _text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


def install(app: faust.App, settings: Settings) -> Processor:
    """Attach the tables, the agent, the completer and the timers to ``app``."""
    processor = Processor(settings)
    app.taskledger_processor = processor  # type: ignore[attr-defined]
    # keyed by task id (the source topic's key) with the producer's partitioner: a task's state lives in
    # the changelog partition of the task's events
    # keys: the task id as UTF-8 bytes ("raw", like the relay's message key); values: JSON (no value_type:
    # a typed value needs a faust Record to be recovered from the changelog)
    common: dict[str, Any] = {"default": None, "partitions": 6, "key_type": bytes, "use_partitioner": True}
    # task id -> {"version", "status", "wake": next wakeup (UTC ISO 8601) or None, "raised": [alert ids]}
    states = app.Table("task-state", **common)
    source = events_topic(app)
    # requests in flight, in order: (future of the projector's answer, events to ack, their stream, kind)
    in_flight: deque[tuple[asyncio.Future[Any], list[Any], Any, str]] = deque()
    arrived = asyncio.Event()

    def apply_result(result: dict[str, Any]) -> None:
        for task, state in result["tasks"].items():
            key = task.encode()
            if states.get(key) != state:
                states[key] = state
        stats = processor.stats
        stats.statuses += result["statuses"]
        stats.alerts += result["alerts"]

    async def submit(kind: str, payload: Any, events: list[Any], stream: Any = None) -> None:
        await processor.ensure_open(states)
        assert processor.projector is not None
        while len(in_flight) >= IN_FLIGHT:  # back-pressure: at most IN_FLIGHT requests queued
            await asyncio.wait([in_flight[0][0]])
            await asyncio.sleep(0)  # let the completer take it off the queue
        in_flight.append((processor.projector.submit(kind, payload), events, stream, kind))
        arrived.set()

    @app.task
    async def start_projector() -> None:
        """Spawn the projector while the consumer joins its group (its imports take seconds)."""
        processor.start()

    @app.task
    async def complete_in_order() -> None:
        """Apply each answer to the tables and ack its events, in the order the requests were sent."""
        while not app.should_stop:
            if not in_flight:
                arrived.clear()
                await arrived.wait()
                continue
            future, events, stream, kind = in_flight[0]
            try:
                result = await future
            except ProjectorError as error:
                processor.fatal(error)
            in_flight.popleft()
            apply_result(result)
            for event in events:
                await stream.ack(event)
            stats = processor.stats
            if kind == "batch":
                stats.batches += 1
                stats.events += result["events"]
                log.info(
                    "worker: batch of %d events (total %d events, %d statuses, %d alerts; %d tasks cached)",
                    result["events"],
                    stats.events,
                    stats.statuses,
                    stats.alerts,
                    result["cached"],
                )
            elif result["alerts"]:
                log.info("worker: %d alert(s) raised by the clock (total %d alerts)", result["alerts"], stats.alerts)

    @app.agent(source, name="taskledger-projector")
    async def project(stream: Any) -> None:
        async for events in stream.noack_take(settings.worker_batch, within=WITHIN_S):
            processor.last_batch_at = time.monotonic()
            for event in events:
                message = event.message
                processor.seen[message.tp] = message.offset
            await submit("batch", [event.value for event in events], list(events), stream)

    from streams.timers import install_timers, install_watchdog

    install_timers(app, processor, states, submit, in_flight)
    install_watchdog(app, processor, in_flight, EVENTS_TOPIC)

    return processor
