"""Alerts of SPEC section 5 (Art. 18.1.d) as pure functions of a task's clocks, the calendars and an instant.

The rules the future stream worker applies, so that none lives only in the stream:

- ``warning`` when ``policy.warning_share`` (default 50 %) of a clock's *working* time has elapsed,
  ``due_soon`` at ``policy.due_soon_share`` (default 90 %); both only if the clock was not met by then.
- ``due_now`` at the due instant itself, and ``overdue`` once it has passed (any instant after it), both
  only if the clock was not met by its due instant. A clock that is not an obligation (``obligation=False``:
  the objection window, which the assignee may let pass) raises neither: it expires silently.
- ``met`` (met at or before the due instant) or ``met_late`` (after it), once the fact has happened.
- A closed task (completed or cancelled at ``closed_at``) raises no time-driven alert whose instant is at or
  after ``closed_at`` (closing at the very instant beats the timer, as ``Clock.state`` calls a clock closed at
  its due instant "void"); met / met_late are facts and are raised whenever they happen.

Every alert carries ``at``, the instant it became true (not the instant someone noticed), so the result is a
pure function of (clocks, calendars, policy, closed_at, as_of) and is monotone in ``as_of``: with no new facts,
``alerts_for(t2)`` contains ``alerts_for(t1)`` for t1 <= t2, which is what lets a worker recompute after a
restart or a rebalance and keep exactly-once delivery by the key (task, clock, kind, due instant) alone.
A fact recorded late (met before an instant already alerted) can make an alert no longer derivable; alerts
already raised are never withdrawn: they were true when raised.

Time is measured on each clock's own calendar version (``calendars.get(clock.calendar_version)``), never on
the calendar in force now, so a later calendar change moves no threshold already computed."""

from __future__ import annotations

import math
from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING
from uuid import UUID

from domain.errors import ValidationError

if TYPE_CHECKING:
    from domain.calendar import Calendar, CalendarHistory
    from domain.clocks import Clock

TICK = timedelta(microseconds=1)
"""datetime's resolution: ``t + TICK`` is the first instant strictly after ``t`` (when ``overdue`` starts)."""


class AlertKind(StrEnum):
    WARNING = "warning"
    DUE_SOON = "due_soon"
    DUE_NOW = "due_now"
    OVERDUE = "overdue"
    MET = "met"
    MET_LATE = "met_late"


_RANK = {kind: rank for rank, kind in enumerate(AlertKind)}  # order of kinds raised at the same instant


def _share(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError(field, "must be a number between 0 and 1 (a share of the working time)")
    return float(value)


@dataclass(frozen=True)
class AlertPolicy:
    """Shares of a clock's working time at which ``warning`` and ``due_soon`` are raised."""

    warning_share: float = 0.5
    due_soon_share: float = 0.9

    def __post_init__(self) -> None:
        warning = _share(self.warning_share, "warning_share")
        due_soon = _share(self.due_soon_share, "due_soon_share")
        if not 0 < warning < 1:
            raise ValidationError("warning_share", f"must be above 0 and below 1, got {warning!r}")
        if not 0 < due_soon < 1:
            raise ValidationError("due_soon_share", f"must be above 0 and below 1, got {due_soon!r}")
        if not warning < due_soon:
            raise ValidationError(
                "due_soon_share", f"must be greater than warning_share ({warning!r}), got {due_soon!r}"
            )
        object.__setattr__(self, "warning_share", warning)
        object.__setattr__(self, "due_soon_share", due_soon)


DEFAULT_POLICY = AlertPolicy()


def _aware(t: object, field: str) -> datetime:
    if type(t) is datetime and t.tzinfo is UTC:
        return t  # already an aware UTC instant (the common case): nothing to check or convert
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ValidationError(field, "must be a date-time with a time zone offset")
    return t.astimezone(UTC)


@dataclass(frozen=True)
class Alert:
    """One alert of one clock instance. ``at`` is the instant it became true (instants kept in UTC)."""

    task_id: UUID
    clock: str
    kind: AlertKind
    due_at: datetime
    at: datetime

    def __post_init__(self) -> None:
        task_id = self.task_id if isinstance(self.task_id, UUID) else UUID(str(self.task_id))
        object.__setattr__(self, "task_id", task_id)
        object.__setattr__(self, "kind", AlertKind(self.kind))
        object.__setattr__(self, "due_at", _aware(self.due_at, "due_at"))
        object.__setattr__(self, "at", _aware(self.at, "at"))

    @classmethod
    def _known(cls, task_id: UUID, clock: str, kind: AlertKind, due_at: datetime, at: datetime) -> Alert:
        """An alert of values this module has already checked (a UUID, an AlertKind, UTC instants): the
        evaluation's hot path, without validating them a second time."""
        alert = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(alert, "task_id", task_id)
        setattr_(alert, "clock", clock)
        setattr_(alert, "kind", kind)
        setattr_(alert, "due_at", due_at)
        setattr_(alert, "at", at)
        return alert

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The idempotency key (task, clock, kind, due instant in UTC ISO 8601). Joined with ':' it is the
        name ``projections.rows.alert_id`` hashes, so the key and the stored row agree."""
        return (str(self.task_id), self.clock, self.kind.value, self.due_at.isoformat())


# -- working-time shares ------------------------------------------------------------------------------------------
def elapsed_share(clock: Clock, calendar: Calendar, as_of: datetime) -> float:
    """Working time elapsed from ``started_at`` (a start outside working hours counts from the next working
    moment) to min(as_of, due_at), over the working time from ``started_at`` to ``due_at``: 0.0 .. 1.0.
    A clock whose span holds no working time is 0.0 before its due instant and 1.0 from it on.
    Time only: whether the clock was met does not enter."""
    now = _aware(as_of, "as_of")
    total = calendar.working_time_between(clock.started_at, clock.due_at)
    if not total:
        return 1.0 if now >= clock.due_at else 0.0
    return calendar.working_time_between(clock.started_at, min(now, clock.due_at)) / total


def threshold_instant(clock: Clock, calendar: Calendar, share: float) -> datetime:
    """The earliest instant at which ``share`` of the clock's working time has elapsed (UTC):
    ``calendar.add_working_time(started_at, share * working span)``, never after ``due_at``.
    A clock whose span holds no working time reaches every share at its due instant.
    (Alerts compare this instant with ``as_of``, never the float of ``elapsed_share``, which microsecond
    rounding could leave a hair below ``share`` at this very instant.)"""
    fraction = _share(share, "share")
    if not 0 <= fraction <= 1:
        raise ValidationError("share", f"must be between 0 and 1, got {fraction!r}")
    due = _aware(clock.due_at, "due_at")
    return _threshold(clock.started_at, due, calendar.working_time_between(clock.started_at, due), calendar, fraction)


def _threshold(started_at: datetime, due: datetime, total: timedelta, calendar: Calendar, fraction: float) -> datetime:
    """``threshold_instant`` given the clock's working span ``total`` (computed once per clock)."""
    if not total:
        return due
    return min(calendar.add_working_time(started_at, total * fraction), due)


# -- alerts -------------------------------------------------------------------------------------------------------
def _clock_alerts(
    task_id: UUID, clock: Clock, calendar: Calendar, policy: AlertPolicy, closed_at: datetime | None
) -> list[tuple[datetime, Alert]]:
    """Every alert of ``clock`` that is or will become true given the facts known, with the instant from which
    it holds (``at`` itself, except ``overdue``: one tick after the due instant)."""
    due = _aware(clock.due_at, "due_at")
    met = None if clock.met_at is None else _aware(clock.met_at, "met_at")
    found: list[tuple[datetime, Alert]] = []

    def timed(kind: AlertKind, at: datetime, holds_from: datetime) -> None:
        if met is not None and met <= at:
            return  # met by then: nothing to warn about
        if closed_at is not None and closed_at <= at:
            return  # the task was closed by then: nothing new
        found.append((holds_from, Alert._known(task_id, clock.name, kind, due, _aware(at, "at"))))

    total = calendar.working_time_between(clock.started_at, due)  # the clock's working span, once
    for kind, share in ((AlertKind.WARNING, policy.warning_share), (AlertKind.DUE_SOON, policy.due_soon_share)):
        at = _threshold(clock.started_at, due, total, calendar, share)
        timed(kind, at, at)
    if clock.obligation:
        timed(AlertKind.DUE_NOW, due, due)
        timed(AlertKind.OVERDUE, due, due + TICK)
    if met is not None:
        kind = AlertKind.MET if met <= due else AlertKind.MET_LATE
        found.append((met, Alert._known(task_id, clock.name, kind, due, met)))
    return found


def _all_alerts(
    task_id: UUID,
    clocks: Iterable[Clock],
    calendars: CalendarHistory,
    policy: AlertPolicy,
    closed_at: datetime | None,
) -> list[tuple[datetime, Alert]]:
    closed = None if closed_at is None else _aware(closed_at, "closed_at")
    task_id = task_id if isinstance(task_id, UUID) else UUID(str(task_id))
    result: list[tuple[datetime, Alert]] = []
    for clock in clocks:
        stopped = clock.closed_by(closed)  # the task's closing, or a receipt superseded by a transfer
        result.extend(_clock_alerts(task_id, clock, calendars.get(clock.calendar_version), policy, stopped))
    return result


def _order(alert: Alert) -> tuple[datetime, int, str, datetime]:
    return (alert.at, _RANK[alert.kind], alert.clock, alert.due_at)


def alerts_for(
    task_id: UUID,
    clocks: Iterable[Clock],
    calendars: CalendarHistory,
    as_of: datetime,
    policy: AlertPolicy = DEFAULT_POLICY,
    closed_at: datetime | None = None,
) -> list[Alert]:
    """Every alert of these clocks that is true at ``as_of``, in chronological order of ``at`` (then kind:
    warning, due_soon, due_now, overdue, met, met_late; then clock name). See the module docstring for the
    rules. Monotone in ``as_of`` while the clocks (the facts) stay the same."""
    return alerts_and_wakeup(task_id, clocks, calendars, as_of, policy, closed_at)[0]


def alerts_and_wakeup(
    task_id: UUID,
    clocks: Iterable[Clock],
    calendars: CalendarHistory,
    as_of: datetime,
    policy: AlertPolicy = DEFAULT_POLICY,
    closed_at: datetime | None = None,
) -> tuple[list[Alert], datetime | None]:
    """``(alerts_for(...), next_wakeup(...))`` from one evaluation of the clocks (what a worker needs)."""
    now = _aware(as_of, "as_of")
    every = _all_alerts(task_id, clocks, calendars, policy, closed_at)
    alerts = sorted((a for holds_from, a in every if holds_from <= now), key=_order)
    return alerts, min((t for t, _ in every if t > now), default=None)


def new_alerts(alerts: Iterable[Alert], seen: Container[tuple[str, str, str, str]]) -> list[Alert]:
    """The alerts whose key is not in ``seen`` (keys already raised), each key once, order kept."""
    fresh: dict[tuple[str, str, str, str], Alert] = {}
    for alert in alerts:
        if alert.key not in seen and alert.key not in fresh:
            fresh[alert.key] = alert
    return list(fresh.values())


def next_wakeup(
    task_id: UUID,
    clocks: Iterable[Clock],
    calendars: CalendarHistory,
    as_of: datetime,
    policy: AlertPolicy = DEFAULT_POLICY,
    closed_at: datetime | None = None,
) -> datetime | None:
    """The earliest instant after ``as_of`` at which ``alerts_for`` gains an alert (for a timer to schedule),
    None if no alert of these clocks is still to come. Exact: ``alerts_for`` is the same for every instant in
    [as_of, wakeup) and larger at the wakeup. ``overdue`` holds from one tick (1 µs) after the due instant,
    so at the due instant itself the next wakeup is ``due_at + TICK``. Clocks that do not exist yet (monitor
    follow-ups, the next periodic update) are not foreseen: recompute the task's clocks at every wakeup."""
    return alerts_and_wakeup(task_id, clocks, calendars, as_of, policy, closed_at)[1]
