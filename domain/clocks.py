"""Clocks of SPEC section 5 and the derived status of section 4, as pure functions of a task's state.

Every clock keeps the calendar version stamped on the event that started it, so a later calendar
change never moves a due instant already computed, and replay yields the same instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from domain.values import Cadence, Lifecycle, Status, UpdateEvery

if TYPE_CHECKING:
    from domain.calendar import Calendar, CalendarHistory
    from domain.directive import Directive
    from domain.task import Task

RECEIPT_HOURS = 4
OBJECTION_HOURS = 8
OBJECTION_HANDLING_HOURS = 8
FOLLOW_UP_DAYS = 3
MAX_PERIODS = 1200


@dataclass(frozen=True, slots=True)
class Clock:
    """One clock instance: what must happen by when, and whether it did."""

    name: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None
    calendar_version: int
    obligation: bool = True
    # When the clock stopped applying without being met: a receipt clock superseded by a transfer
    # before the task was received (the new agency's receipt clock takes over).
    superseded_at: datetime | None = None

    def closed_by(self, task_closed_at: datetime | None) -> datetime | None:
        """The earliest of the task's closing and this clock's own supersession."""
        instants = [t for t in (task_closed_at, self.superseded_at) if t is not None]
        return min(instants) if instants else None

    def state(self, as_of: datetime, closed_at: datetime | None = None) -> str:
        if self.met_at is not None:
            return "met" if self.met_at <= self.due_at else "met_late"
        closed_at = self.closed_by(closed_at)
        if closed_at is not None and closed_at <= self.due_at:
            return "void"
        if as_of > self.due_at:
            return "overdue" if self.obligation else "expired"
        return "pending"

    def to_dict(self, tz: ZoneInfo, as_of: datetime, closed_at: datetime | None) -> dict[str, Any]:
        return {
            "clock": self.name,
            "started_at": local_iso(self.started_at, tz),
            "due_at": local_iso(self.due_at, tz),
            "met_at": local_iso(self.met_at, tz),
            "state": self.state(as_of, closed_at),
            "calendar_version": self.calendar_version,
        }


def local_iso(t: datetime | None, tz: ZoneInfo) -> str | None:
    return None if t is None else t.astimezone(tz).isoformat()


# -- single clocks -------------------------------------------------------------------------
def receipt_due(task: Task, calendars: CalendarHistory) -> datetime:
    last = task.receipts[-1]
    cal = calendars.get(last["calendar_version"])
    return cal.add_working_hours(last["started_at"], RECEIPT_HOURS)


def objection_due(task: Task, calendars: CalendarHistory) -> datetime | None:
    if task.received_at is None or task.received_calendar_version is None:
        return None
    return calendars.get(task.received_calendar_version).add_working_hours(task.received_at, OBJECTION_HOURS)


def objection_handling_due(task: Task, calendars: CalendarHistory) -> datetime | None:
    if not task.objections:
        return None
    last = task.objections[-1]
    return calendars.get(last["calendar_version"]).add_working_hours(last["at"], OBJECTION_HANDLING_HOURS)


def deadline_instant(day: str | None, cal: Calendar) -> datetime | None:
    """17:00 local on the deadline date (SPEC 5)."""
    if day is None:
        return None
    return cal.end_of_working_day(date.fromisoformat(day))


def deadline_at(task: Task, calendars: CalendarHistory) -> datetime | None:
    return deadline_instant(task.deadline, calendars.get(task.deadline_calendar_version))


def original_deadline_at(task: Task, calendars: CalendarHistory) -> datetime | None:
    return deadline_instant(task.original_deadline, calendars.get(task.assigned_calendar_version))


def registration_due(directive: Directive) -> datetime:
    return directive.registration_due_at


# -- cadence -------------------------------------------------------------------------------
def add_months(t: datetime, months: int) -> datetime:
    index = t.month - 1 + months
    year, month = t.year + index // 12, index % 12 + 1
    days = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return t.replace(year=year, month=month, day=min(t.day, days))


def cadence(task: Task, calendars: CalendarHistory) -> Cadence:
    due = deadline_at(task, calendars)
    if due is None:
        return Cadence.PERIODIC
    tz = ZoneInfo(calendars.current.hours.tz)
    start = task.assigned_at.astimezone(tz)
    if due < add_months(start, 1):
        return Cadence.SHORT
    if due < add_months(start, 3):
        return Cadence.MEDIUM
    if due < add_months(start, 6):
        return Cadence.LONG
    return Cadence.PERIODIC


def _approved_reports(task: Task) -> list[dict[str, Any]]:
    return [r for r in task.reports if r["state"] == "approved"]


def checkpoints(task: Task, calendars: CalendarHistory) -> list[Clock]:
    kind = cadence(task, calendars)
    fractions = {Cadence.MEDIUM: (0.5,), Cadence.LONG: (0.5, 0.75)}.get(kind, ())
    due_deadline = deadline_at(task, calendars)
    if not fractions or due_deadline is None:
        return []
    version = task.deadline_calendar_version
    cal = calendars.get(version)
    span = due_deadline - task.assigned_at
    result = []
    for fraction in fractions:
        at = task.assigned_at + span * fraction
        due = cal.end_of_nth_working_day_after(cal.local(at).date(), 3)
        met = next((r["reported_at"] for r in _approved_reports(task) if r["reported_at"] >= at), None)
        result.append(Clock(f"checkpoint_{fraction:g}", at, due, met, version))
    return result


def _period_bounds(task: Task, k: int, tz: ZoneInfo) -> tuple[date, date]:
    step = UpdateEvery(task.update_every).months
    assigned = task.assigned_at.astimezone(tz).date()
    first_month = (assigned.month - 1) // step * step  # month index (0-based) of the assignment period
    start_index = assigned.year * 12 + first_month + k * step
    start = date(start_index // 12, start_index % 12 + 1, 1)
    end_index = start_index + step
    end = date(end_index // 12, end_index % 12 + 1, 1) - timedelta(days=1)
    return start, end


def periodic_updates(task: Task, calendars: CalendarHistory, as_of: datetime) -> list[Clock]:
    """Cadence 4: one update per calendar month (quarter, year) after the one of assignment,
    due 17:00 on the period's last working day. Generated up to the first period after ``as_of``."""
    if cadence(task, calendars) is not Cadence.PERIODIC:
        return []
    tz = ZoneInfo(calendars.current.hours.tz)
    last_day = date.fromisoformat(task.deadline) if task.deadline else None
    closed = task.completed_at or task.cancelled_at
    horizon = (closed or as_of).astimezone(tz).date()
    result: list[Clock] = []
    for k in range(1, MAX_PERIODS):
        start, end = _period_bounds(task, k, tz)
        if last_day is not None and start > last_day:
            break
        start_at = datetime.combine(start, time(0), tz).astimezone(timezone.utc)
        version = max(task.assigned_calendar_version, calendars.in_force_at(start_at).version)
        cal = calendars.get(version)
        day = cal.last_working_day_between(start, end) or end
        due = cal.end_of_working_day(day)
        met = next((r["reported_at"] for r in _approved_reports(task) if start_at <= r["reported_at"] <= due), None)
        result.append(Clock(f"periodic_update_{start.isoformat()[:7]}", start_at, due, met, version))
        if start > horizon:
            break
    return result


def result_report(task: Task, calendars: CalendarHistory) -> Clock | None:
    kind = cadence(task, calendars)
    days = {Cadence.SHORT: 3, Cadence.MEDIUM: 3, Cadence.LONG: 5}.get(kind)
    if days is None or task.deadline is None:
        return None
    version = task.deadline_calendar_version
    cal = calendars.get(version)
    start = deadline_at(task, calendars)
    assert start is not None
    due = cal.end_of_nth_working_day_after(date.fromisoformat(task.deadline), days)
    return Clock("result_report", start, due, task.completed_at, version)


# -- all clocks of a task -------------------------------------------------------------------
def task_clocks(task: Task, calendars: CalendarHistory, as_of: datetime) -> list[Clock]:
    """Every clock of the task as of ``as_of`` (monitor follow-ups included)."""
    clocks: list[Clock] = []
    for index, receipt in enumerate(task.receipts):
        cal = calendars.get(receipt["calendar_version"])
        due = cal.add_working_hours(receipt["started_at"], RECEIPT_HOURS)
        later = task.receipts[index + 1]["started_at"] if index + 1 < len(task.receipts) else None
        superseded = later if receipt["received_at"] is None else None
        clocks.append(
            Clock("receipt", receipt["started_at"], due, receipt["received_at"], cal.version, superseded_at=superseded)
        )
    objection_window = objection_due(task, calendars)
    if objection_window is not None and task.received_at is not None:
        filed = next((o["at"] for o in task.objections if o["at"] >= task.received_at), None)
        clocks.append(
            Clock(
                "objection",
                task.received_at,
                objection_window,
                filed,
                task.received_calendar_version or 0,
                obligation=False,
            )
        )
    for objection in task.objections:
        cal = calendars.get(objection["calendar_version"])
        due = cal.add_working_hours(objection["at"], OBJECTION_HANDLING_HOURS)
        clocks.append(Clock("objection_handling", objection["at"], due, objection["resolved_at"], cal.version))
    clocks.extend(checkpoints(task, calendars))
    clocks.extend(periodic_updates(task, calendars, as_of))
    report = result_report(task, calendars)
    if report is not None:
        clocks.append(report)
    due_deadline = deadline_at(task, calendars)
    if due_deadline is not None:
        clocks.append(
            Clock("deadline", task.assigned_at, due_deadline, task.completed_at, task.deadline_calendar_version)
        )
    clocks.extend(follow_ups(task, clocks, calendars, as_of))
    return clocks


def follow_ups(task: Task, clocks: list[Clock], calendars: CalendarHistory, as_of: datetime) -> list[Clock]:
    """Monitors follow up within 3 working days after a clock falls due unmet (Art. 6.3)."""
    closed = task.completed_at or task.cancelled_at
    result = []
    for clock in clocks:
        fell_due_unmet = (
            clock.obligation and clock.due_at < as_of and (clock.met_at is None or clock.met_at > clock.due_at)
        )
        stopped = clock.closed_by(closed)
        if not fell_due_unmet or (stopped is not None and stopped <= clock.due_at):
            continue
        version = max(clock.calendar_version, calendars.in_force_at(clock.due_at).version)
        cal = calendars.get(version)
        due = cal.end_of_nth_working_day_after(cal.local(clock.due_at).date(), FOLLOW_UP_DAYS)
        urged = next((u["at"] for u in task.urges if u["at"] >= clock.due_at), None)
        result.append(Clock(f"follow_up:{clock.name}", clock.due_at, due, urged, version))
    return result


# -- derived status -------------------------------------------------------------------------
def derive_status(task: Task, calendars: CalendarHistory, as_of: datetime) -> Status:
    """SPEC 4 'by result', derived, never typed in."""
    if task.lifecycle is Lifecycle.CANCELLED:
        return Status.CANCELLED
    if task.lifecycle is Lifecycle.COMPLETED:
        return Status.COMPLETED_LATE if task.completed_late else Status.COMPLETED_ON_TIME
    if task.lifecycle is Lifecycle.AWAITING_RECEIPT:
        return Status.AWAITING_RECEIPT
    if task.lifecycle is Lifecycle.OBJECTED:
        return Status.OBJECTED
    due = deadline_at(task, calendars)
    overdue = due is not None and as_of > due
    if task.percent > 0:
        return Status.IN_PROGRESS_OVERDUE if overdue else Status.IN_PROGRESS_ON_TIME
    return Status.NOT_STARTED_OVERDUE if overdue else Status.NOT_STARTED_ON_TIME


def coarse_result(status: Status) -> str:
    """What a Confidential record may show of its result (SPEC 6)."""
    return {
        Status.COMPLETED_ON_TIME: "completed",
        Status.COMPLETED_LATE: "not_completed_on_time",
        Status.IN_PROGRESS_OVERDUE: "overdue",
        Status.NOT_STARTED_OVERDUE: "overdue",
        Status.CANCELLED: "cancelled",
    }.get(status, "not_completed")


def clocks_view(
    task: Task,
    directive: Directive | None,
    calendars: CalendarHistory,
    as_of: datetime,
    all_clocks: list[Clock] | None = None,
) -> dict[str, Any]:
    """The ``clocks`` object of ``task show``: due instants, ISO 8601 with the local offset. ``all_clocks``:
    ``task_clocks(task, calendars, as_of)`` when the caller already has it (it is not computed again)."""
    tz = ZoneInfo(calendars.current.hours.tz)
    if all_clocks is None:
        all_clocks = task_clocks(task, calendars, as_of)
    closed = task.completed_at or task.cancelled_at
    receipts = [c for c in all_clocks if c.name == "receipt"]
    handling = [c for c in all_clocks if c.name == "objection_handling"]
    periodic = [c for c in all_clocks if c.name.startswith("periodic_update")]
    upcoming = None
    if closed is None:
        upcoming = next((c.due_at for c in periodic if c.due_at >= as_of and c.met_at is None), None)
    report = result_report(task, calendars)
    return {
        "cadence": cadence(task, calendars).value,
        "registration_due_at": local_iso(directive.registration_due_at, tz) if directive else None,
        "receipt_due_at": local_iso(receipts[-1].due_at, tz) if receipts else None,
        "objection_due_at": local_iso(objection_due(task, calendars), tz),
        "objection_handling_due_at": local_iso(handling[-1].due_at, tz) if handling else None,
        "checkpoints": [
            {"at": local_iso(c.started_at, tz), "due_at": local_iso(c.due_at, tz), "met_at": local_iso(c.met_at, tz)}
            for c in all_clocks
            if c.name.startswith("checkpoint")
        ],
        "next_periodic_update_due_at": local_iso(upcoming, tz),
        "result_report_due_at": local_iso(report.due_at, tz) if report else None,
        "deadline_at": local_iso(deadline_at(task, calendars), tz),
        "original_deadline_at": local_iso(original_deadline_at(task, calendars), tz),
        "all": [c.to_dict(tz, as_of, closed) for c in all_clocks],
    }
