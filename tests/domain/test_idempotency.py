"""Commands are idempotent by command_id (SPEC 2), and a batch is all or nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date
from uuid import UUID

import pytest

from domain import commands as c
from domain.actors import Actor
from domain.application import BatchRefused, CommandResult, TaskLedger
from domain.errors import Conflict, NotAuthorized, NotFound
from domain.events import task_id_for
from tests.conftest import (
    APPROVER,
    ASSIGNEE,
    OFFICE,
    Clock,
    assign_command,
    directive_command,
    event_count,
    events_via_connector,
    local,
    types_of,
)


@pytest.fixture
def app(ledger: TaskLedger) -> TaskLedger:
    return ledger


@pytest.fixture
def directive(app: TaskLedger, register: Callable[..., UUID]) -> UUID:
    return register(app)


@pytest.fixture
def task(app: TaskLedger, directive: UUID) -> UUID:
    return app.execute(OFFICE, assign_command(directive)).aggregate_id


def twice(app: TaskLedger, actor: Actor, command: c.Command) -> tuple[CommandResult, CommandResult, int]:
    """Execute the same command twice; also return how many events the two calls appended."""
    before = event_count(app)
    first = app.execute(actor, command)
    second = app.execute(actor, command)
    return first, second, event_count(app) - before


def test_count_events_counts_the_backend_store(app: TaskLedger, task: UUID) -> None:
    """Every test here counts appended events; the connector's count must agree with the store.
    calendar Established + Directive Registered + Task Assigned = 3 events."""
    assert event_count(app) == 3  # schema-qualified count made by the test suite itself
    assert events_via_connector(app) == 3  # connectors.eventstore.count_events(app)["events"]


def test_registering_a_directive_twice_with_one_command_id_appends_once(app: TaskLedger, signed: Callable) -> None:
    first, second, appended = twice(app, OFFICE, directive_command(signed, "57-NQ/TW", command_id="reg-57"))

    assert appended == 1
    assert (first.duplicate, second.duplicate) == (False, True)
    assert (second.aggregate_id, second.version) == (first.aggregate_id, 1)
    assert len(app.list_directives()) == 1


def test_assigning_twice_with_one_command_id_creates_one_task(app: TaskLedger, directive: UUID) -> None:
    first, second, appended = twice(app, OFFICE, assign_command(directive, command_id="assign-hn-1"))

    assert appended == 1
    assert (first.duplicate, second.duplicate) == (False, True)
    assert (second.aggregate_id, second.version, second.event) == (
        first.aggregate_id,
        1,
        "Assigned",
    )
    assert len(app.list_tasks()) == 1


def test_receiving_twice_with_one_command_id_appends_once(app: TaskLedger, task: UUID) -> None:
    first, second, appended = twice(app, ASSIGNEE, c.ReceiveTask(task_id=task, command_id="recv-1"))

    assert appended == 1
    assert (first.duplicate, second.duplicate) == (False, True)
    assert (second.aggregate_id, second.version, second.event) == (task, 2, "Received")
    assert types_of(app, task) == ["Assigned", "Received"]


def test_reporting_progress_twice_with_one_command_id_appends_once(app: TaskLedger, task: UUID) -> None:
    app.execute(ASSIGNEE, c.ReceiveTask(task_id=task))

    first, second, appended = twice(
        app,
        ASSIGNEE,
        c.ReportProgress(task_id=task, percent=40, note="two of five districts", command_id="rep-1"),
    )

    assert appended == 1
    assert (first.duplicate, second.duplicate) == (False, True)
    assert (second.aggregate_id, second.version, second.event) == (task, 3, "ProgressReported")
    view = app.task_view(task)
    assert (view["reports"], view["pending_report"]) == (1, 1)


def test_a_retry_after_later_events_still_returns_the_first_version(app: TaskLedger, task: UUID) -> None:
    receive = c.ReceiveTask(task_id=task, command_id="recv-1")
    app.execute(ASSIGNEE, receive)
    app.execute(ASSIGNEE, c.ReportProgress(task_id=task, percent=10, note="n"))
    before = event_count(app)

    retry = app.execute(ASSIGNEE, receive)

    assert (retry.version, retry.duplicate, event_count(app)) == (2, True, before)
    assert app.get_task(task).version == 3


@pytest.mark.parametrize("kind", ["register", "assign", "receive", "report"])
def test_a_retry_returns_the_first_result(app: TaskLedger, signed: Callable, directive: UUID, kind: str) -> None:
    """SPEC 2: 'a retry with the same id returns the first result' -- the same result, only flagged."""
    if kind == "register":
        actor, command = OFFICE, directive_command(signed, "59-NQ/TW", command_id="k")
    elif kind == "assign":
        actor, command = OFFICE, assign_command(directive, command_id="k")
    else:
        task = app.execute(OFFICE, assign_command(directive)).aggregate_id
        if kind == "receive":
            actor, command = ASSIGNEE, c.ReceiveTask(task_id=task, command_id="k")
        else:
            app.execute(ASSIGNEE, c.ReceiveTask(task_id=task))
            actor, command = (
                ASSIGNEE,
                c.ReportProgress(task_id=task, percent=10, note="n", command_id="k"),
            )
    first = app.execute(actor, command)

    second = app.execute(actor, command)

    assert second == dataclasses.replace(first, duplicate=True)


def test_a_command_id_reused_for_another_command_on_the_task_is_a_conflict(app: TaskLedger, task: UUID) -> None:
    app.execute(ASSIGNEE, c.ReceiveTask(task_id=task, command_id="cmd-7"))
    before, version = event_count(app), app.get_task(task).version

    with pytest.raises(Conflict) as caught:
        app.execute(ASSIGNEE, c.ReportProgress(task_id=task, percent=10, note="n", command_id="cmd-7"))

    assert caught.value.field == "command_id"
    assert "cmd-7 was already used for Received" in caught.value.rule
    assert (event_count(app), app.get_task(task).version) == (before, version)


def test_the_assignment_command_id_cannot_be_reused_on_its_task(app: TaskLedger, directive: UUID) -> None:
    task = app.execute(OFFICE, assign_command(directive, command_id="assign-1")).aggregate_id
    before = event_count(app)

    with pytest.raises(Conflict) as caught:
        app.execute(ASSIGNEE, c.ReceiveTask(task_id=task, command_id="assign-1"))

    assert (caught.value.field, event_count(app)) == ("command_id", before)
    assert "already used for Assigned" in caught.value.rule


def test_a_batch_with_a_refused_command_writes_nothing(app: TaskLedger, directive: UUID, signed: Callable) -> None:
    before = event_count(app)
    batch = [
        (OFFICE, directive_command(signed, "60-NQ/TW")),
        (OFFICE, assign_command(directive, command_id="b-assign")),
        (Actor.parse("assignee:HP:lan"), c.ReceiveTask(task_id=task_id_for("b-assign"))),
        (OFFICE, assign_command(directive, assignee="HP", command_id="b-assign-2")),
    ]

    with pytest.raises(BatchRefused) as caught:
        app.execute_batch(batch)

    assert (caught.value.index, caught.value.field, caught.value.kind) == (
        2,
        "actor.agency",
        "not_authorized",
    )
    assert isinstance(caught.value.cause, NotAuthorized)
    assert "command 3 of the batch" in caught.value.rule and "nothing was written" in caught.value.rule
    assert event_count(app) == before
    assert [d["symbol"] for d in app.list_directives()] == ["57-NQ/TW"]
    with pytest.raises(NotFound):
        app.get_task(task_id_for("b-assign"))


def test_a_refused_batch_leaves_no_trace_on_existing_tasks(app: TaskLedger, task: UUID, clock: Clock) -> None:
    clock.set(local(2026, 4, 28, 9))
    before = event_count(app)
    batch = [
        (ASSIGNEE, c.ReceiveTask(task_id=task)),
        (ASSIGNEE, c.ReportProgress(task_id=task, percent=50, note="n")),
        (Actor.parse("approver:HP:mai"), c.ApproveProgress(task_id=task)),
    ]

    with pytest.raises(BatchRefused):
        app.execute_batch(batch)

    assert event_count(app) == before
    view = app.task_view(task)
    assert (view["version"], view["lifecycle"], view["reports"]) == (1, "awaiting_receipt", 0)
    # the same commands, approved by HN's own approver, then go through as one unit
    results = app.execute_batch([*batch[:2], (APPROVER, c.ApproveProgress(task_id=task))])
    assert [(r.event, r.version) for r in results] == [
        ("Received", 2),
        ("ProgressReported", 3),
        ("ProgressApproved", 4),
    ]
    assert event_count(app) == before + 3
    assert app.task_view(task)["percent"] == 50


def test_a_calendar_change_retried_with_its_command_id_appends_once(app: TaskLedger) -> None:
    change = c.ChangeCalendar(add_days_off=[date(2026, 6, 1)], reason="Government notice", command_id="cal-1")
    before = event_count(app)

    first = app.change_calendar(OFFICE, change)
    second = app.change_calendar(OFFICE, change)  # a client retry after a lost response

    assert event_count(app) == before + 1
    assert (first.version, second.version, second.duplicate) == (2, 2, True)
