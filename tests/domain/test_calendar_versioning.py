"""A calendar change is recorded; each clock keeps the calendar version in force when it started,
also after replay (SPEC 3 and 5: never silently recompute a past due date).

Task A is assigned Fri 2026-04-24 15:00 local under calendar v1: receipt due Fri 15-17 (2 h),
Sat, Sun, Mon 04-27 off, Tue 04-28 08-10 (2 h) -> Tue 04-28 10:00.
At Fri 16:00 the government declares Tue 04-28 a day off (calendar v2).
Task B is assigned Fri 16:00 under v2: Fri 16-17 (1 h); Sat, Sun, Mon 04-27 and now Tue 04-28 off;
Wed 04-29 08-11 (3 h) -> Wed 04-29 11:00.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from uuid import UUID

import pytest

from domain import commands as c
from domain.application import TaskLedger
from domain.calendar import CALENDAR_ID
from domain.errors import NotAuthorized
from tests.conftest import ASSIGNEE, OFFICE, Clock, event_count, local

DAY_OFF = c.ChangeCalendar(add_days_off=[date(2026, 4, 28)], reason="Government notice: Tue 28 April is a day off")


def receipt_due(app: TaskLedger, task: UUID) -> str:
    return app.task_view(task)["clocks"]["receipt_due_at"]


@pytest.fixture
def world(
    make_ledger: Callable[..., TaskLedger], assign: Callable[..., UUID], clock: Clock
) -> tuple[TaskLedger, UUID, UUID]:
    app = make_ledger()
    task_a = assign(app)
    clock.set(local(2026, 4, 24, 16))
    before = event_count(app)
    result = app.change_calendar(OFFICE, DAY_OFF)
    assert (result.aggregate_id, result.version, result.event, event_count(app)) == (
        CALENDAR_ID,
        2,
        "Changed",
        before + 1,
    )
    task_b = assign(app, app.get_task(task_a).directive_id, assignee="HP")
    return app, task_a, task_b


def test_a_day_off_added_later_leaves_a_started_receipt_clock_unchanged(
    world: tuple[TaskLedger, UUID, UUID],
) -> None:
    app, task_a, _ = world

    assert receipt_due(app, task_a) == "2026-04-28T10:00:00+07:00"
    assert app.history(task_a)[0]["calendar_version"] == 1
    assert app.calendars.current.version == 2
    assert not app.calendars.current.is_working_day(date(2026, 4, 28))


def test_a_task_assigned_after_the_change_gets_the_shifted_due_instant(
    world: tuple[TaskLedger, UUID, UUID],
) -> None:
    app, _, task_b = world

    assert receipt_due(app, task_b) == "2026-04-29T11:00:00+07:00"
    assert app.history(task_b)[0]["calendar_version"] == 2


def test_replay_in_a_new_ledger_gives_the_same_due_instants(
    world: tuple[TaskLedger, UUID, UUID], make_ledger: Callable[..., TaskLedger]
) -> None:
    _, task_a, task_b = world

    reopened = make_ledger()  # same store, nothing cached: every aggregate is replayed from its events

    assert reopened.calendars.current.version == 2
    assert receipt_due(reopened, task_a) == "2026-04-28T10:00:00+07:00"
    assert receipt_due(reopened, task_b) == "2026-04-29T11:00:00+07:00"


def test_a_receipt_on_the_new_day_off_is_judged_by_the_calendar_of_its_clock(
    world: tuple[TaskLedger, UUID, UUID], clock: Clock
) -> None:
    app, task_a, _ = world
    clock.set(local(2026, 4, 28, 9, 30))  # Tue, now a day off, before task A's 10:00 due instant

    app.execute(ASSIGNEE, c.ReceiveTask(task_id=task_a))

    assert app.history(task_a)[-1]["payload"] == {"late": False}
    assert app.task_view(task_a)["status"] == "not_started_on_time"
    # the objection clock starts now, under v2: from Tue 09:30 (off) the next working moment is
    # Wed 04-29 08:00; 08-12 (4 h) + 13-17 (4 h) -> Wed 17:00 (under v1 it would be Wed 09:30)
    assert app.task_view(task_a)["clocks"]["objection_due_at"] == "2026-04-29T17:00:00+07:00"
    assert app.history(task_a)[-1]["calendar_version"] == 2


def test_only_the_central_office_changes_the_calendar(
    make_ledger: Callable[..., TaskLedger],
) -> None:
    app = make_ledger()
    before = event_count(app)

    with pytest.raises(NotAuthorized) as caught:
        app.change_calendar(ASSIGNEE, DAY_OFF)

    assert (caught.value.field, event_count(app), app.calendars.current.version) == (
        "actor.role",
        before,
        1,
    )
    assert "only central_office may change the working calendar" in caught.value.rule
