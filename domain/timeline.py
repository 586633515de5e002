"""Timelines for auditors: what each fact changed, late records, and which facts count as of an
instant by business ('occurred') or recorded time. Pure."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

from domain import views
from domain.calendar import CalendarHistory
from domain.clocks import local_iso
from domain.directive import Directive
from domain.errors import ValidationError
from domain.task import Task

# Keys of a flat state that change without any fact changing them (or always change).
NOISY = frozenset({"as_of", "version", "clocks.all", "task_count"})

Event = Aggregate.Event
Projection = Callable[[Any, datetime], Mapping[str, Any]]


class Basis(StrEnum):
    """Which time decides whether a fact counts as of an instant."""

    OCCURRED = "occurred"
    RECORDED = "recorded"

    @classmethod
    def parse(cls, text: str) -> Basis:
        try:
            return cls(text)
        except ValueError:
            raise ValidationError("basis", f"'{text}' is not one of occurred, recorded") from None

    def note(self, at: str) -> str:
        if self is Basis.RECORDED:
            return f"what the system showed at {at}"
        return f"what had happened by {at} (including facts recorded later)"


@dataclass(frozen=True, slots=True)
class Change:
    """One field of the state before and after a fact."""

    field: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}

    def __str__(self) -> str:
        return f"{self.field}: {shown(self.old)} → {shown(self.new)}"


def shown(value: Any) -> str:
    """A value as an auditor reads it in a line of text."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


# -- state and diff ---------------------------------------------------------------------------
def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted keys, lists of mappings indexed ones (``checkpoints[0].met_at``);
    other lists and scalars are values."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                flat.update(flatten(item, f"{name}[{index}]."))
        else:
            flat[name] = value
    return flat


def state_of(view: Mapping[str, Any], noisy: frozenset[str] = NOISY) -> dict[str, Any]:
    """The flat, comparable state of a view: noisy keys (and what is nested under them) dropped."""
    return {k: v for k, v in flatten(view).items() if not _under(k, noisy)}


def _under(key: str, names: frozenset[str]) -> bool:
    return any(key == n or key.startswith((n + ".", n + "[")) for n in names)


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[Change]:
    """Fields whose value differs, in the order of ``after`` then fields that disappeared. From
    nothing (a creating fact) every field that has a value is a change."""
    if before is None:
        return [Change(k, None, v) for k, v in after.items() if v not in (None, [], {}, "")]
    changes = [Change(k, before.get(k), v) for k, v in after.items() if before.get(k) != v]
    changes.extend(Change(k, v, None) for k, v in before.items() if k not in after and v is not None)
    return changes


# -- late records -----------------------------------------------------------------------------
def record_gap(occurred_at: datetime | None, recorded_at: datetime) -> timedelta:
    """How long after it happened a fact was recorded (never negative)."""
    if occurred_at is None:
        return timedelta(0)
    return max(recorded_at - occurred_at, timedelta(0))


def is_late_record(occurred_at: datetime | None, recorded_at: datetime, tolerance: timedelta = timedelta(0)) -> bool:
    """Recorded after it happened (an import or a late entry): a fact entered live is recorded at the
    instant it occurs, so any gap beyond ``tolerance`` means it was entered afterwards."""
    return record_gap(occurred_at, recorded_at) > tolerance


def format_gap(gap: timedelta) -> str:
    """'3 d 23 h', '1 d 23 h 30 min', '45 s'."""
    seconds = int(gap.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    if secs and not parts:
        parts.append(f"{secs} s")
    return " ".join(parts) or "0 s"


# -- as of an instant -------------------------------------------------------------------------
def occurred_at(event: Event) -> datetime:
    return getattr(event, "occurred_at", None) or event.timestamp


def basis_instant(event: Event, basis: Basis) -> datetime:
    return event.timestamp if basis is Basis.RECORDED else occurred_at(event)


def split_at(events: Sequence[Event], at: datetime, basis: Basis) -> tuple[list[Event], list[Event]]:
    """(counted, excluded): the facts up to ``at`` by ``basis`` and the rest. Facts are recorded in
    the order they happened (the aggregates refuse an earlier business time), so both are a prefix
    of the version order, as a fold needs."""
    counted: list[Event] = []
    for index, event in enumerate(events):
        if basis_instant(event, basis) > at:
            return counted, list(events[index:])
        counted.append(event)
    return counted, []


def excluded_view(events: Iterable[Event], at: datetime, basis: Basis, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The facts left out as of ``at``. By recorded time, a fact that had already happened but was
    recorded later is marked ``occurred_by_instant``."""
    rows = []
    for e in events:
        rows.append(
            {
                "version": e.originator_version,
                "type": type(e).__qualname__.split(".")[-1],
                "occurred_at": local_iso(occurred_at(e), tz),
                "recorded_at": local_iso(e.timestamp, tz),
                "occurred_by_instant": occurred_at(e) <= at,
            }
        )
    return rows


def recorded_after(events: Iterable[Event], at: datetime) -> list[int]:
    """Versions of counted facts that the system did not yet show at ``at`` (occurred basis)."""
    return [e.originator_version for e in events if e.timestamp > at]


# -- projections of aggregates -----------------------------------------------------------------
def task_state(task: Task, directive: Directive | None, calendars: CalendarHistory, at: datetime) -> dict[str, Any]:
    """The flat state of a task as the views show it, status and clocks derived at ``at``."""
    view = views.task_view(task, directive, calendars, at)
    view["subtasks"] = len(task.subtasks)
    return state_of(view)


def directive_state(directive: Directive, calendars: CalendarHistory) -> dict[str, Any]:
    return state_of(views.directive_view(directive, calendars))


def grants_state(clearances: Any) -> dict[str, Any]:
    return {f"grants.{key}": grant["level"] for key, grant in sorted(clearances.grants.items())}


# -- the timeline ------------------------------------------------------------------------------
def timeline(events: Sequence[Event], project: Projection, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Every fact in version order with its envelope, hash chain, late-record flag and what it
    changed: the state before and after it, both projected at the fact's business time so that the
    change is the fact's own and not the passing of time."""
    rows: list[dict[str, Any]] = []
    aggregate: Any = None
    for event in events:
        when = occurred_at(event)
        before = dict(project(aggregate, when)) if aggregate is not None else None
        aggregate = event.mutate(aggregate)
        after = dict(project(aggregate, when))
        gap = record_gap(getattr(event, "occurred_at", None), event.timestamp)
        row = views.event_view(event, tz)
        row.update(
            late_record=is_late_record(getattr(event, "occurred_at", None), event.timestamp),
            record_gap=format_gap(gap) if gap else None,
            record_gap_seconds=int(gap.total_seconds()),
            prev_hash=getattr(event, "prev_hash", None),
            hash=getattr(event, "hash", None),
            changes=[c.to_dict() for c in diff(before, after)],
        )
        rows.append(row)
    return rows
