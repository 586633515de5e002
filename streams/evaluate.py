"""Evaluate tasks with the domain code: fold from the event store, ``connectors.rebuild.task_rows``
(status row + alert rows, exactly as a rebuild computes them), ``domain.alerts.next_wakeup``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from connectors.rebuild import task_rows
from domain.alerts import next_wakeup
from domain.clocks import task_clocks
from domain.task import Task


@dataclass
class Evaluation:
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> task_status row
    new_alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task id -> rows not raised yet
    wakeups: dict[str, str | None] = field(default_factory=dict)  # task id -> next wakeup (UTC ISO) or None


def _fold_with_relatives(ledger: Any, task_ids: set[UUID]) -> tuple[dict[UUID, Any], set[UUID]]:
    """The tasks, their parents (a subtask changes its parent's rollup), their subtasks and directives."""
    folded: dict[UUID, Any] = {}

    def get(aggregate_id: UUID) -> Any:
        if aggregate_id not in folded:
            folded[aggregate_id] = ledger._fold(aggregate_id)  # noqa: SLF001 - the application's own fold
        return folded[aggregate_id]

    wanted = set(task_ids)
    for task_id in task_ids:
        task = get(task_id)
        if isinstance(task, Task) and task.parent_id is not None:
            wanted.add(task.parent_id)
    for task_id in wanted:
        task = get(task_id)
        if isinstance(task, Task):
            get(task.directive_id)
            for sub in task.subtasks:
                get(sub)
    return {k: v for k, v in folded.items() if v is not None}, wanted


def evaluate_tasks(
    ledger: Any, task_ids: set[UUID], as_of: datetime, raised: Callable[[str], frozenset[str]]
) -> Evaluation:
    """Status and alerts of ``task_ids`` (and their parents) at ``as_of``; alerts whose id is in
    ``raised[task]`` are left out (raised once)."""
    result = Evaluation()
    if not task_ids:
        return result
    folded, wanted = _fold_with_relatives(ledger, task_ids)
    calendars = ledger.calendars
    moment = as_of.astimezone(UTC)
    for task_id in sorted(wanted, key=str):
        task = folded.get(task_id)
        if not isinstance(task, Task):
            continue
        key = str(task_id)
        status, alerts = task_rows(task, folded, calendars, moment)
        seen = raised(key)
        result.statuses[key] = status
        result.new_alerts[key] = [row for row in alerts if row["alert_id"] not in seen]
        closed = task.completed_at or task.cancelled_at
        wake = next_wakeup(task.id, task_clocks(task, calendars, moment), calendars, moment, closed_at=closed)
        result.wakeups[key] = None if wake is None else wake.astimezone(UTC).isoformat()
    return result
