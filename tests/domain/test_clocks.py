"""Due instants of SPEC section 5 and derived statuses of section 4, through the application.

Every literal is worked out by hand in the comments against the Viet Nam working calendar:
Mon-Fri 08:00-12:00 and 13:00-17:00 local (+07:00); 2026 days off near the dates used here:
Mon 04-27 (Hung Kings, observed), Thu 04-30, Fri 05-01, Mon 08-31 (substituted for the make-up
working Saturday 08-22), Tue 09-01, Wed 09-02. "WD n after d" = the n-th working day strictly after d.
The ledger's clock starts at Fri 2026-04-24 15:00 local (08:00 UTC).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from uuid import UUID

import pytest

from domain import commands as c
from domain.application import TaskLedger
from tests.conftest import APPROVER, ASSIGNEE, MONITOR, OFFICE, Clock, event_count, local


@pytest.fixture
def app(ledger: TaskLedger) -> TaskLedger:
    return ledger


@pytest.fixture
def directive(app: TaskLedger, register: Callable[..., UUID]) -> UUID:
    return register(app)  # issued Wed 2026-04-22, registered Fri 2026-04-24 15:00


@pytest.fixture
def assign_at(app: TaskLedger, directive: UUID, assign: Callable[..., UUID], clock: Clock) -> Callable[..., UUID]:
    def _assign_at(when: datetime, **fields: Any) -> UUID:
        clock.set(when)
        return assign(app, directive, **fields)

    return _assign_at


def at(app: TaskLedger, clock: Clock, when: datetime, actor: Any, command: c.Command) -> None:
    clock.set(when)
    app.execute(actor, command)


def clocks(app: TaskLedger, task: UUID, as_of: datetime | None = None) -> dict[str, Any]:
    return app.task_view(task, as_of=as_of)["clocks"]


def named(view_clocks: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [k for k in view_clocks["all"] if k["clock"] == name]
    return found


# -- registration ------------------------------------------------------------------------------
def test_registration_is_due_at_the_end_of_working_day_3_after_issue(app: TaskLedger, register: Callable) -> None:
    # issued Wed 04-22: WD1 Thu 04-23, WD2 Fri 04-24, (Sat, Sun, Mon 04-27 off) WD3 Tue 04-28 -> 17:00
    register(app, "57-NQ/TW", issued_on=date(2026, 4, 22))
    # issued Thu 04-16: WD1 Fri 04-17, WD2 Mon 04-20, WD3 Tue 04-21 -> 17:00; registered Fri 04-24: late
    register(app, "58-NQ/TW", issued_on=date(2026, 4, 16))

    views = {d["symbol"]: d for d in app.list_directives()}

    assert (views["57-NQ/TW"]["registration_due_at"], views["57-NQ/TW"]["registered_late"]) == (
        "2026-04-28T17:00:00+07:00",
        False,
    )
    assert (views["58-NQ/TW"]["registration_due_at"], views["58-NQ/TW"]["registered_late"]) == (
        "2026-04-21T17:00:00+07:00",
        True,
    )


# -- receipt: assignment + 4 WH --------------------------------------------------------------
@pytest.mark.parametrize(
    ("assigned", "due"),
    [
        # SPEC example: Fri 15-17 (2 h); Sat, Sun, Mon 04-27 off; Tue 08-10 (2 h)
        (local(2026, 4, 24, 15), "2026-04-28T10:00:00+07:00"),
        # Wed 15:30-17 (1.5 h); Thu 04-30, Fri 05-01, Sat, Sun off; Mon 05-04 08:00-10:30 (2.5 h)
        (local(2026, 4, 29, 15, 30), "2026-05-04T10:30:00+07:00"),
        # Sat 04-25 is off: counts from the next working moment, Tue 04-28 08:00; 08-12 is 4 h
        (local(2026, 4, 25, 10), "2026-04-28T12:00:00+07:00"),
        # Tue 12:30 is the lunch break: counts from 13:00; 13-17 is 4 h
        (local(2026, 5, 5, 12, 30), "2026-05-05T17:00:00+07:00"),
        # Fri 08-21 15-17 (2 h); Sat 08-22 is a make-up working day: 08-10 (2 h)
        (local(2026, 8, 21, 15), "2026-08-22T10:00:00+07:00"),
    ],
    ids=[
        "spec-example",
        "across-30-april-1-may",
        "from-a-saturday",
        "from-lunch",
        "make-up-saturday",
    ],
)
def test_receipt_is_due_4_working_hours_after_assignment(
    app: TaskLedger, assign_at: Callable[..., UUID], assigned: datetime, due: str
) -> None:
    task = assign_at(assigned, deadline=date(2026, 9, 30))

    assert clocks(app, task)["receipt_due_at"] == due


def test_a_receipt_after_its_due_instant_is_recorded_late(app: TaskLedger, assign_at: Callable, clock: Clock) -> None:
    task = assign_at(local(2026, 4, 24, 15))  # receipt due Tue 04-28 10:00

    at(app, clock, local(2026, 4, 28, 10), ASSIGNEE, c.ReceiveTask(task_id=task))  # exactly on time
    late = assign_at(local(2026, 4, 24, 15))
    at(app, clock, local(2026, 4, 28, 10, 1), ASSIGNEE, c.ReceiveTask(task_id=late))

    assert app.history(task)[-1]["payload"] == {"late": False}
    assert app.history(late)[-1]["payload"] == {"late": True}
    assert named(clocks(app, late), "receipt")["state"] == "met_late"


# -- objection and objection handling: + 8 WH --------------------------------------------------
def test_objection_and_objection_handling_are_due_8_working_hours_after_their_start(
    app: TaskLedger, assign_at: Callable, clock: Clock
) -> None:
    task = assign_at(local(2026, 4, 24, 15))
    at(app, clock, local(2026, 4, 29, 10), ASSIGNEE, c.ReceiveTask(task_id=task))
    # objection window from Wed 04-29 10:00: 10-12 (2 h) + 13-17 (4 h); Thu 04-30, Fri 05-01, Sat, Sun
    # off; Mon 05-04 08-10 (2 h) -> Mon 10:00
    assert clocks(app, task)["objection_due_at"] == "2026-05-04T10:00:00+07:00"

    at(
        app,
        clock,
        local(2026, 5, 4, 9, 30),
        ASSIGNEE,
        c.ObjectTask(task_id=task, reason="beyond competence"),
    )
    # handling from Mon 09:30: 09:30-12 (2.5 h) + 13-17 (4 h); Tue 05-05 08:00-09:30 (1.5 h)
    view = clocks(app, task)
    assert view["objection_handling_due_at"] == "2026-05-05T09:30:00+07:00"
    assert app.history(task)[-1]["payload"]["late"] is False

    before = event_count(app)
    at(
        app,
        clock,
        local(2026, 5, 5, 10),
        OFFICE,
        c.ResolveObjection(task_id=task, accept=False, reason="it is yours"),
    )
    assert event_count(app) == before + 1
    last = app.history(task)[-1]
    assert (last["type"], last["payload"]["outcome"], last["payload"]["late"]) == (
        "ObjectionResolved",
        "dismissed",
        True,
    )
    assert named(clocks(app, task), "objection_handling")["state"] == "met_late"
    assert app.task_view(task)["lifecycle"] == "received"


# -- cadence 1: under one month ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("assigned", "deadline", "deadline_at", "result_due"),
    [
        # deadline Wed 04-29; WD after: Thu 04-30, Fri 05-01 off; WD1 Mon 05-04, WD2 Tue 05-05, WD3 Wed 05-06
        (
            local(2026, 4, 24, 15),
            date(2026, 4, 29),
            "2026-04-29T17:00:00+07:00",
            "2026-05-06T17:00:00+07:00",
        ),
        # deadline Fri 08-21; WD1 Sat 08-22 (make-up working day), WD2 Mon 08-24, WD3 Tue 08-25
        (
            local(2026, 8, 17, 9),
            date(2026, 8, 21),
            "2026-08-21T17:00:00+07:00",
            "2026-08-25T17:00:00+07:00",
        ),
    ],
    ids=["across-30-april-1-may", "make-up-saturday"],
)
def test_cadence_1_has_only_a_result_report_3_working_days_after_the_deadline(
    app: TaskLedger,
    assign_at: Callable,
    assigned: datetime,
    deadline: date,
    deadline_at: str,
    result_due: str,
) -> None:
    task = assign_at(assigned, deadline=deadline)

    view = clocks(app, task)

    assert (view["cadence"], view["deadline_at"], view["result_report_due_at"]) == (
        "under_1_month",
        deadline_at,
        result_due,
    )
    assert (view["checkpoints"], view["next_periodic_update_due_at"]) == ([], None)


# -- cadence 2: one to three months --------------------------------------------------------------
def test_cadence_2_has_a_checkpoint_at_half_the_duration(app: TaskLedger, assign_at: Callable, clock: Clock) -> None:
    # assigned Fri 04-24 15:00 (08:00 UTC); deadline instant Wed 06-24 17:00 (10:00 UTC)
    # duration = 61 days (04-24 -> 05-24 is 30, -> 06-24 is 31) + 2 h; half = 30 days 13 h
    # c = 05-24 08:00 UTC + 13 h = 05-24 21:00 UTC = Mon 05-25 04:00 local
    # due: WD3 after Mon 05-25: Tue 26, Wed 27, Thu 28 -> 05-28 17:00
    # result: WD3 after Wed 06-24: Thu 25, Fri 26, Mon 29 -> 06-29 17:00
    task = assign_at(local(2026, 4, 24, 15), deadline=date(2026, 6, 24))
    at(app, clock, local(2026, 4, 28, 9), ASSIGNEE, c.ReceiveTask(task_id=task))
    at(
        app,
        clock,
        local(2026, 5, 4, 9),
        ASSIGNEE,
        c.ReportProgress(task_id=task, percent=20, note="before c"),
    )
    at(app, clock, local(2026, 5, 4, 10), APPROVER, c.ApproveProgress(task_id=task))
    at(
        app,
        clock,
        local(2026, 5, 26, 9),
        ASSIGNEE,
        c.ReportProgress(task_id=task, percent=60, note="after c"),
    )
    at(app, clock, local(2026, 5, 26, 10), APPROVER, c.ApproveProgress(task_id=task))

    view = clocks(app, task)

    assert (view["cadence"], view["deadline_at"], view["result_report_due_at"]) == (
        "1_to_3_months",
        "2026-06-24T17:00:00+07:00",
        "2026-06-29T17:00:00+07:00",
    )
    # met by the first approved report made at or after c (the one of 05-04 is before c)
    assert view["checkpoints"] == [
        {
            "at": "2026-05-25T04:00:00+07:00",
            "due_at": "2026-05-28T17:00:00+07:00",
            "met_at": "2026-05-26T09:00:00+07:00",
        }
    ]
    assert view["next_periodic_update_due_at"] is None


# -- cadence 3: three to six months -------------------------------------------------------------
def test_cadence_3_has_checkpoints_at_half_and_three_quarters_and_a_result_report_5_days_after(
    app: TaskLedger, assign_at: Callable
) -> None:
    # assigned Fri 04-24 08:00 UTC; deadline instant Fri 08-28 17:00 local = 10:00 UTC
    # duration = 126 days (6 to 04-30, 31 May, 30 June, 31 July, 28 August) + 2 h
    # 1/2 = 63 days 1 h -> 06-26 09:00 UTC = Fri 06-26 16:00 local;
    #       WD3 after 06-26: Mon 29, Tue 30, Wed 07-01 -> 07-01 17:00
    # 3/4 = 94 days 13 h 30 min -> 07-27 21:30 UTC = Tue 07-28 04:30 local;
    #       WD3 after 07-28: Wed 29, Thu 30, Fri 31 -> 07-31 17:00
    # result: WD5 after Fri 08-28: Sat, Sun, Mon 08-31, Tue 09-01, Wed 09-02 off;
    #       Thu 09-03 (1), Fri 04 (2), Mon 07 (3), Tue 08 (4), Wed 09 (5) -> 09-09 17:00
    task = assign_at(local(2026, 4, 24, 15), deadline=date(2026, 8, 28))

    view = clocks(app, task)

    assert (view["cadence"], view["deadline_at"], view["result_report_due_at"]) == (
        "3_to_6_months",
        "2026-08-28T17:00:00+07:00",
        "2026-09-09T17:00:00+07:00",
    )
    assert view["checkpoints"] == [
        {"at": "2026-06-26T16:00:00+07:00", "due_at": "2026-07-01T17:00:00+07:00", "met_at": None},
        {"at": "2026-07-28T04:30:00+07:00", "due_at": "2026-07-31T17:00:00+07:00", "met_at": None},
    ]


# -- cadence 4: six months or more, or no deadline -----------------------------------------------
@pytest.mark.parametrize(
    ("every", "as_of", "due"),
    [
        # month after April is May; 05-31 Sun, 05-30 Sat -> last working day Fri 05-29
        ("month", None, "2026-05-29T17:00:00+07:00"),
        # as of Mon 08-03 the next unmet one is August's: 08-31 is off (substituted), 08-30 Sun,
        # 08-29 Sat -> Fri 08-28
        ("month", local(2026, 8, 3, 9), "2026-08-28T17:00:00+07:00"),
        # quarter after Q2 (April-June) is Q3: Wed 09-30 is a working day
        ("quarter", None, "2026-09-30T17:00:00+07:00"),
        # year after 2026 is 2027: Fri 2027-12-31 is a working day
        ("year", None, "2027-12-31T17:00:00+07:00"),
    ],
    ids=["monthly", "monthly-in-august", "quarterly", "yearly"],
)
def test_cadence_4_without_deadline_is_due_on_the_last_working_day_of_each_period(
    app: TaskLedger, assign_at: Callable, every: str, as_of: datetime | None, due: str
) -> None:
    task = assign_at(local(2026, 4, 24, 15), deadline=None, update_every=every)

    view = clocks(app, task, as_of)

    assert (view["cadence"], view["next_periodic_update_due_at"]) == ("periodic", due)
    assert (view["deadline_at"], view["result_report_due_at"], view["checkpoints"]) == (
        None,
        None,
        [],
    )


def test_cadence_4_with_a_deadline_six_months_away_or_more(app: TaskLedger, assign_at: Callable) -> None:
    # 04-24 -> 12-31 is more than six months: periodic updates, no checkpoint, no result report clock
    task = assign_at(local(2026, 4, 24, 15), deadline=date(2026, 12, 31))

    view = clocks(app, task)

    assert (view["cadence"], view["next_periodic_update_due_at"], view["deadline_at"]) == (
        "periodic",
        "2026-05-29T17:00:00+07:00",
        "2026-12-31T17:00:00+07:00",
    )
    assert view["result_report_due_at"] is None


def test_a_periodic_update_is_met_by_an_approved_report_in_its_period(
    app: TaskLedger, assign_at: Callable, clock: Clock
) -> None:
    task = assign_at(local(2026, 4, 24, 15), deadline=None)
    at(app, clock, local(2026, 4, 28, 9), ASSIGNEE, c.ReceiveTask(task_id=task))
    at(
        app,
        clock,
        local(2026, 5, 20, 9),
        ASSIGNEE,
        c.ReportProgress(task_id=task, percent=30, note="May update"),
    )
    at(app, clock, local(2026, 5, 20, 10), APPROVER, c.ApproveProgress(task_id=task))

    view = clocks(app, task)

    may = named(view, "periodic_update_2026-05")
    assert (may["due_at"], may["met_at"], may["state"]) == (
        "2026-05-29T17:00:00+07:00",
        "2026-05-20T09:00:00+07:00",
        "met",
    )
    # June: 06-30 is a Tuesday
    assert view["next_periodic_update_due_at"] == "2026-06-30T17:00:00+07:00"


# -- monitor follow-up ----------------------------------------------------------------------------
def test_a_missed_receipt_opens_a_follow_up_for_the_monitor_3_working_days_later(
    app: TaskLedger, assign_at: Callable, clock: Clock
) -> None:
    task = assign_at(local(2026, 4, 24, 15))  # receipt due Tue 04-28 10:00
    # follow-up: WD3 after Tue 04-28: Wed 04-29 (1), Thu 30, Fri 01 off, Mon 05-04 (2), Tue 05-05 (3)
    view = clocks(app, task, as_of=local(2026, 4, 28, 10, 1))

    assert named(view, "receipt")["state"] == "overdue"
    follow_up = named(view, "follow_up:receipt")
    assert (follow_up["due_at"], follow_up["state"]) == ("2026-05-05T17:00:00+07:00", "pending")

    at(
        app,
        clock,
        local(2026, 4, 29, 9),
        MONITOR,
        c.UrgeTask(task_id=task, message="please acknowledge"),
    )
    follow_up = named(clocks(app, task), "follow_up:receipt")
    assert (follow_up["met_at"], follow_up["state"]) == ("2026-04-29T09:00:00+07:00", "met")


# -- derived status (SPEC 4) -----------------------------------------------------------------------
def status(app: TaskLedger, task: UUID, as_of: datetime | None = None) -> str:
    return app.task_view(task, as_of=as_of)["status"]


def test_the_status_of_a_task_completed_late_over_its_life(app: TaskLedger, assign_at: Callable, clock: Clock) -> None:
    task = assign_at(local(2026, 4, 24, 15), deadline=date(2026, 5, 15))  # deadline instant Fri 05-15 17:00
    at(app, clock, local(2026, 4, 28, 9), ASSIGNEE, c.ReceiveTask(task_id=task))
    at(
        app,
        clock,
        local(2026, 5, 4, 10),
        ASSIGNEE,
        c.ReportProgress(task_id=task, percent=40, note="n"),
    )
    at(app, clock, local(2026, 5, 4, 11), APPROVER, c.ApproveProgress(task_id=task))
    at(
        app,
        clock,
        local(2026, 5, 19, 10),
        ASSIGNEE,
        c.ReportProgress(task_id=task, percent=100, note="n"),
    )
    at(app, clock, local(2026, 5, 19, 11), APPROVER, c.ApproveProgress(task_id=task))
    at(
        app,
        clock,
        local(2026, 5, 19, 14),
        ASSIGNEE,
        c.CompleteTask(task_id=task, result="plan adopted"),
    )

    assert status(app, task, local(2026, 4, 24, 16)) == "awaiting_receipt"
    assert status(app, task, local(2026, 4, 28, 12)) == "not_started_on_time"
    assert status(app, task, local(2026, 5, 4, 10, 30)) == "not_started_on_time"  # a draft is not progress
    assert status(app, task, local(2026, 5, 4, 12)) == "in_progress_on_time"
    assert status(app, task, local(2026, 5, 15, 17)) == "in_progress_on_time"  # the deadline instant itself
    assert status(app, task, local(2026, 5, 15, 17, 1)) == "in_progress_overdue"
    assert status(app, task, local(2026, 5, 19, 15)) == "completed_late"
    assert status(app, task) == "completed_late"
    assert app.history(task)[-1]["payload"]["late"] is True


def test_the_status_of_a_task_never_started(app: TaskLedger, assign_at: Callable, clock: Clock) -> None:
    task = assign_at(local(2026, 4, 24, 15), deadline=date(2026, 5, 15))
    at(app, clock, local(2026, 4, 28, 9), ASSIGNEE, c.ReceiveTask(task_id=task))
    clock.set(local(2026, 5, 20, 9))

    assert status(app, task, local(2026, 5, 15, 16)) == "not_started_on_time"
    assert status(app, task, local(2026, 5, 18, 8)) == "not_started_overdue"
    assert status(app, task) == "not_started_overdue"


def test_the_status_of_an_objected_task(app: TaskLedger, assign_at: Callable, clock: Clock) -> None:
    task = assign_at(local(2026, 4, 24, 15))
    at(app, clock, local(2026, 4, 28, 9), ASSIGNEE, c.ReceiveTask(task_id=task))
    at(
        app,
        clock,
        local(2026, 4, 28, 11),
        ASSIGNEE,
        c.ObjectTask(task_id=task, reason="wrong agency"),
    )

    assert status(app, task, local(2026, 4, 28, 10)) == "not_started_on_time"
    assert status(app, task) == "objected"


def test_the_status_of_a_task_completed_on_time(app: TaskLedger, assign_at: Callable, clock: Clock) -> None:
    task = assign_at(local(2026, 4, 24, 15), deadline=date(2026, 5, 15))
    at(app, clock, local(2026, 4, 28, 9), ASSIGNEE, c.ReceiveTask(task_id=task))
    at(
        app,
        clock,
        local(2026, 5, 15, 15),
        ASSIGNEE,
        c.ReportProgress(task_id=task, percent=100, note="n"),
    )
    at(app, clock, local(2026, 5, 15, 16), APPROVER, c.ApproveProgress(task_id=task))
    at(
        app,
        clock,
        local(2026, 5, 15, 16, 59),
        ASSIGNEE,
        c.CompleteTask(task_id=task, result="done"),
    )
    clock.set(local(2026, 6, 1, 9))

    view = app.task_view(task)
    assert (view["status"], view["coarse_result"], view["completed_at"]) == (
        "completed_on_time",
        "completed",
        "2026-05-15T16:59:00+07:00",
    )
    assert named(view["clocks"], "deadline")["state"] == "met"


def test_the_status_of_a_cancelled_task(app: TaskLedger, assign_at: Callable, clock: Clock) -> None:
    task = assign_at(local(2026, 4, 24, 15))
    at(app, clock, local(2026, 4, 28, 9), OFFICE, c.CancelTask(task_id=task, reason="superseded"))

    assert status(app, task, local(2026, 4, 28, 8)) == "awaiting_receipt"
    assert status(app, task) == "cancelled"
