"""Time-driven alerts: every second the leader re-evaluates the tasks whose next wakeup has passed.

``task-wakeups`` (task id -> UTC ISO instant of the next alert, from ``domain.alerts.next_wakeup``) is
maintained by the agent and by this timer; a due task goes through the same unit of work as a batch of
events (without event rows): status row, new alerts, flush, then publication.

Limitation: the memory table holds the partitions this worker owns; with one worker (the supported
deployment for the dev stack) that is every task.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import faust

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_PER_TICK = 1000


def due_tasks(wakeups: Any, now: datetime, limit: int = MAX_PER_TICK) -> set[UUID]:
    moment = now.astimezone(UTC).isoformat()
    due: set[UUID] = set()
    for task, wake in list(wakeups.items()):
        if wake is not None and wake <= moment:  # both UTC ISO 8601 with +00:00: text order is time order
            due.add(UUID(task.decode() if isinstance(task, bytes) else task))
            if len(due) >= limit:
                break
    return due


def install_timers(
    app: faust.App,
    processor: Any,
    wakeups: Any,
    apply: Callable[[list[dict[str, Any]], set[UUID]], Awaitable[None]],
) -> None:
    @app.timer(TICK_S, on_leader=True, name="taskledger-wakeups")
    async def wake_due_tasks() -> None:
        if processor.ledger is None:
            return  # nothing processed yet: no wakeups known
        due = due_tasks(wakeups, processor.ledger.clock())
        processor.stats.timer_ticks += 1
        if due:
            log.info("worker: %d task(s) reached their next wakeup", len(due))
            await apply([], due)
