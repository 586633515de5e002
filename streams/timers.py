"""Time-driven alerts: every second the leader re-evaluates the tasks whose next wakeup has passed.

``task-state`` (task id -> its state; ``wake`` is the UTC ISO instant of the task's next alert, from
``domain.alerts.next_wakeup``) is maintained from every answer of the projector. A due task goes to the
projector as a ``tick``: the same unit of work as a batch of events, without event rows (status row, new
alerts, flush, publication). A tick is sent only when none is in flight, so a slow tick is never queued
twice.

Limitation: the memory table holds the partitions this worker owns; with one worker (the supported
deployment for the dev stack) that is every task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import faust

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_PER_TICK = 1000


def due_tasks(states: Any, now: datetime, limit: int = MAX_PER_TICK) -> list[str]:
    """Task ids (text) whose wakeup is at or before ``now``, at most ``limit``, earliest first."""
    moment = now.astimezone(UTC).isoformat()
    due = []
    for task, state in list(states.items()):
        wake = (state or {}).get("wake")
        if wake is not None and wake <= moment:  # both UTC ISO 8601 with +00:00: text order is time order
            due.append((wake, task.decode() if isinstance(task, bytes) else str(task)))
    return [task for _, task in sorted(due)[:limit]]


def install_timers(
    app: faust.App,
    processor: Any,
    states: Any,
    submit: Callable[..., Awaitable[None]],
    in_flight: Any,
) -> None:
    @app.timer(TICK_S, on_leader=True, name="taskledger-wakeups")
    async def wake_due_tasks() -> None:
        if processor.opened is None:
            if app.in_recovery or not app.tables.recovery.completed.is_set():
                return  # the wakeups are not known before the tables are recovered
            await processor.ensure_open(states)  # a restart with no new event still raises what falls due
        if any(kind == "tick" for *_, kind in in_flight):
            return  # the last tick is still being evaluated: never queue a second
        due = due_tasks(states, processor.clock())
        processor.stats.timer_ticks += 1
        if due:
            log.info("worker: %d task(s) reached their next wakeup", len(due))
            await submit("tick", due, [])


WATCHDOG_S = 5.0


def unconsumed(consumer: Any, seen: dict[Any, int], topic: str) -> dict[Any, tuple[int, int]]:
    """Assigned partitions of ``topic`` whose high watermark (from the consumer's last fetch) is past the
    next offset this worker should consume: {tp: (next offset, high watermark)}."""
    committed = getattr(consumer, "_committed_offset", {})
    behind = {}
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        try:
            high = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet: nothing known
            continue
        if high is None or high < 0:
            continue
        last = seen.get(tp)
        wanted = last + 1 if last is not None else (committed.get(tp) or 0)
        if high > wanted:
            behind[tp] = (wanted, high)
    return behind


def install_watchdog(app: faust.App, processor: Any, in_flight: Any, topic: str) -> None:
    """Re-seek to the committed offsets when records wait on a partition but none has arrived for
    ``WATCHDOG_S`` seconds and nothing is in flight.

    Measured on the dev broker: a record fetched while the table changelog is being recovered at start-up
    is dropped by faust (flow suspended) and, at times, never fetched again after the seek to committed
    offsets, so a restarted worker would sit idle with events waiting (tests/streams/test_acceptance.py).
    Seeking again re-delivers them (at-least-once: every sink is idempotent)."""

    @app.timer(WATCHDOG_S, name="taskledger-stall-watchdog")
    async def unstick() -> None:
        if processor.opened is None or in_flight or app.in_recovery:
            return
        if time.monotonic() - processor.last_batch_at < WATCHDOG_S:
            return
        behind = unconsumed(app.consumer, processor.seen, topic)
        if behind:
            shown = ", ".join(f"{tp.partition}: next {w}, end {h}" for tp, (w, h) in sorted(behind.items()))
            log.warning("worker: records wait but none arrived for %.0f s (%s); seeking to the committed offsets",
                        WATCHDOG_S, shown)  # fmt: skip
            processor.stats.reseeks += 1
            processor.last_batch_at = time.monotonic()
            await app.consumer.perform_seek()
