"""Evaluate tasks with the domain code: fold from the event store, ``connectors.rebuild.task_rows``
(status row + alert rows, exactly as a rebuild computes them), ``domain.alerts.next_wakeup``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from connectors.rebuild import task_rows_and_wakeup
from domain.alerts import DEFAULT_POLICY, AlertPolicy
from domain.task import Task


@dataclass
class Evaluation:
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> task_status row
    new_alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task id -> rows not raised yet
    wakeups: dict[str, str | None] = field(default_factory=dict)  # task id -> next wakeup (UTC ISO) or None


class Folds:
    """The worker's folded aggregates, brought up to date from the event store on each use.

    Facts are never rewritten, so a folded aggregate stays true: ``get`` reads only the events after the
    cached version (``events.get(id, gt=version)``: one indexed select, usually returning the batch's few
    new events) and applies them, instead of folding the whole history again. Least recently used
    aggregates are dropped past ``capacity`` (they are folded again, whole, when next needed)."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[UUID, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, ledger: Any, aggregate_id: UUID) -> Any:
        cached = self._cache.pop(aggregate_id, None)
        if cached is None:
            self.misses += 1
            aggregate = None
            for event in ledger.events.get(aggregate_id):
                aggregate = event.mutate(aggregate)
        else:
            self.hits += 1
            aggregate = cached  # popped: if applying fails it is not cached again, and is refolded whole
            for event in ledger.events.get(aggregate_id, gt=cached.version):
                aggregate = event.mutate(aggregate)  # in place: the cache is its only holder
        if aggregate is not None:
            self._cache[aggregate_id] = aggregate
            if len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return aggregate

    def __len__(self) -> int:
        return len(self._cache)


def _fold_with_relatives(
    ledger: Any, task_ids: set[UUID], folds: Folds | None = None
) -> tuple[dict[UUID, Any], set[UUID]]:
    """The tasks, their parents (a subtask changes its parent's rollup), their subtasks and directives,
    each read up to date from the store once per call."""
    folded: dict[UUID, Any] = {}

    def get(aggregate_id: UUID) -> Any:
        if aggregate_id not in folded:
            if folds is None:
                folded[aggregate_id] = ledger._fold(aggregate_id)  # noqa: SLF001 - the application's own fold
            else:
                folded[aggregate_id] = folds.get(ledger, aggregate_id)
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
    ledger: Any,
    task_ids: set[UUID],
    as_of: datetime,
    raised: Callable[[str], frozenset[str]],
    folds: Folds | None = None,
    policy: AlertPolicy = DEFAULT_POLICY,
) -> Evaluation:
    """Status and alerts of ``task_ids`` (and their parents) at ``as_of``; alerts whose id is in
    ``raised[task]`` are left out (raised once)."""
    result = Evaluation()
    if not task_ids:
        return result
    folded, wanted = _fold_with_relatives(ledger, task_ids, folds)
    calendars = ledger.calendars
    moment = as_of.astimezone(UTC)
    for task_id in sorted(wanted, key=str):
        task = folded.get(task_id)
        if not isinstance(task, Task):
            continue
        key = str(task_id)
        status, alerts, wake = task_rows_and_wakeup(task, folded, calendars, moment, policy)
        seen = raised(key)
        result.statuses[key] = status
        result.new_alerts[key] = [row for row in alerts if row["alert_id"] not in seen]
        result.wakeups[key] = None if wake is None else wake.astimezone(UTC).isoformat()
    return result
