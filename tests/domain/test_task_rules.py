"""Every role rule and invariant of the Task and Directive aggregates (SPEC sections 1 and 2).

Each refusal shows the error class, its field, a fragment of its rule, and that nothing was appended
(event count and task version unchanged). Timeline of the shared fixtures (local time, +07:00):
Fri 2026-04-24 15:00 directive 57-NQ/TW registered and task assigned to HN (monitor BKT, deadline
2026-05-15); Tue 2026-04-28 09:00 received by HN.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain import commands as c
from domain.actors import Actor
from domain.application import TaskLedger
from domain.errors import Conflict, InvariantViolation, NotAuthorized, NotFound, ValidationError
from tests.conftest import (
    APPROVER,
    ASSIGNEE,
    INSPECTOR,
    MONITOR,
    OFFICE,
    Clock,
    assign_command,
    directive_command,
    event_count,
    expect_refusal,
    local,
    types_of,
)

OTHER_ASSIGNEE = Actor.parse("assignee:HP:lan")
OTHER_APPROVER = Actor.parse("approver:HP:mai")
OTHER_MONITOR = Actor.parse("monitor:BTG:hoa")


@pytest.fixture
def app(ledger: TaskLedger) -> TaskLedger:
    return ledger


@pytest.fixture
def task(app: TaskLedger, assign: Callable[..., UUID]) -> UUID:
    """Assigned Fri 2026-04-24 15:00 local, deadline 2026-05-15, awaiting receipt by HN."""
    return assign(app)


@pytest.fixture
def received(app: TaskLedger, task: UUID, clock: Clock) -> UUID:
    clock.set(local(2026, 4, 28, 9))
    app.execute(ASSIGNEE, c.ReceiveTask(task_id=task))
    return task


def report(app: TaskLedger, task: UUID, percent: int, **kw: Any) -> None:
    app.execute(ASSIGNEE, c.ReportProgress(task_id=task, percent=percent, note=f"{percent} % done", **kw))


def approve(app: TaskLedger, task: UUID) -> None:
    app.execute(APPROVER, c.ApproveProgress(task_id=task))


# -- roles (SPEC 1) ---------------------------------------------------------------------------
OFFICE_ONLY: dict[str, Callable[[UUID, UUID], c.Command]] = {
    "transfer": lambda t, d: c.TransferTask(task_id=t, to="HP", reason="HP is competent"),
    "adjust": lambda t, d: c.AdjustTask(task_id=t, changes={"priority": "key"}, reason="now a key task"),
    "extend": lambda t, d: c.ExtendDeadline(task_id=t, deadline=date(2026, 6, 5), reason="r", authority="VPTW"),
    "cancel": lambda t, d: c.CancelTask(task_id=t, reason="no longer needed"),
    "resolve objections": lambda t, d: c.ResolveObjection(task_id=t, accept=False, reason="content is right"),
    "assign": lambda t, d: assign_command(d, assignee="HP"),
}


@pytest.mark.parametrize("what", list(OFFICE_ONLY))
def test_only_the_central_office_transfers_adjusts_extends_cancels_resolves_and_assigns(
    app: TaskLedger, received: UUID, clock: Clock, what: str
) -> None:
    clock.set(local(2026, 4, 28, 10))
    app.execute(ASSIGNEE, c.ObjectTask(task_id=received, reason="beyond our competence"))
    directive_id = app.get_task(received).directive_id
    verb = {"extend": "extend deadlines", "resolve objections": "resolve objections"}.get(what, f"{what} tasks")

    error = expect_refusal(
        app,
        ASSIGNEE,
        OFFICE_ONLY[what](received, directive_id),
        NotAuthorized,
        "actor.role",
        f"only central_office may {verb}",
        task_id=received,
    )

    assert "assignee may not" in error.rule


def test_only_the_central_office_registers_directives(app: TaskLedger, signed: Callable) -> None:
    for actor in (ASSIGNEE, MONITOR, INSPECTOR):
        expect_refusal(
            app,
            actor,
            directive_command(signed, "58-NQ/TW"),
            NotAuthorized,
            "actor.role",
            "only central_office may register directives",
        )
    assert app.list_directives() == []


@pytest.mark.parametrize(
    "command",
    [
        lambda t: c.ReportProgress(task_id=t, percent=10, note="n"),
        lambda t: c.ObjectTask(task_id=t, reason="wrong content"),
        lambda t: c.CompleteTask(task_id=t, result="done"),
    ],
    ids=["report", "object", "complete"],
)
def test_an_assignee_of_another_agency_cannot_report_object_or_complete(
    app: TaskLedger, received: UUID, command: Callable[[UUID], c.Command]
) -> None:
    expect_refusal(
        app,
        OTHER_ASSIGNEE,
        command(received),
        NotAuthorized,
        "actor.agency",
        "assignee HP acts only on tasks of its own agency; this task is assigned to HN",
        task_id=received,
    )


def test_an_assignee_of_another_agency_cannot_receive(app: TaskLedger, task: UUID) -> None:
    expect_refusal(
        app,
        OTHER_ASSIGNEE,
        c.ReceiveTask(task_id=task),
        NotAuthorized,
        "actor.agency",
        "acts only on tasks of its own agency",
        task_id=task,
    )
    assert app.task_view(task)["lifecycle"] == "awaiting_receipt"


def test_an_approver_of_another_agency_cannot_approve(app: TaskLedger, received: UUID) -> None:
    report(app, received, 30)

    expect_refusal(
        app,
        OTHER_APPROVER,
        c.ApproveProgress(task_id=received),
        NotAuthorized,
        "actor.agency",
        "approver HP acts only on tasks of its own agency",
        task_id=received,
    )
    assert app.task_view(received)["pending_report"] == 1


def test_the_drafter_may_not_approve_their_own_report(app: TaskLedger, received: UUID) -> None:
    report(app, received, 30)

    expect_refusal(
        app,
        Actor.parse("approver:HN:binh"),
        c.ApproveProgress(task_id=received),
        NotAuthorized,
        "actor.user",
        "maker-checker",
        task_id=received,
    )


def test_a_monitor_of_another_agency_cannot_urge_but_the_own_monitor_can(app: TaskLedger, task: UUID) -> None:
    expect_refusal(
        app,
        OTHER_MONITOR,
        c.UrgeTask(task_id=task, message="please"),
        NotAuthorized,
        "actor.agency",
        "monitor BTG acts only on tasks it monitors; this task is monitored by BKT",
        task_id=task,
    )

    before = event_count(app)
    result = app.execute(MONITOR, c.UrgeTask(task_id=task, message="please acknowledge"))

    assert (result.version, result.event, event_count(app)) == (2, "Urged", before + 1)
    assert app.task_view(task)["urges"] == 1


@pytest.mark.parametrize("actor", [OFFICE, MONITOR, ASSIGNEE, APPROVER], ids=lambda a: a.role.value)
def test_only_the_inspector_raises_findings(app: TaskLedger, task: UUID, actor: Actor) -> None:
    finding = c.RaiseFinding(task_id=task, kind="delay", description="receipt not confirmed")
    expect_refusal(
        app,
        actor,
        finding,
        NotAuthorized,
        "actor.role",
        "only inspector may raise findings",
        task_id=task,
    )

    result = app.execute(INSPECTOR, finding)

    assert (result.version, result.event) == (2, "FindingRaised")
    assert app.history(task)[-1]["payload"] == {
        "kind": "delay",
        "description": "receipt not confirmed",
    }


# -- lifecycle invariants (SPEC 2) --------------------------------------------------------------
def test_nothing_but_an_assignment_creates_a_task(app: TaskLedger, task: UUID) -> None:
    unknown = uuid4()
    expect_refusal(
        app,
        ASSIGNEE,
        c.ReceiveTask(task_id=unknown),
        NotFound,
        "task_id",
        f"no task with id {unknown}",
    )
    # a directive's id is not a task either
    directive_id = app.get_task(task).directive_id
    expect_refusal(
        app,
        OFFICE,
        c.CancelTask(task_id=directive_id, reason="x"),
        NotFound,
        "task_id",
        "no task with id",
    )


def test_no_progress_before_receipt(app: TaskLedger, task: UUID) -> None:
    expect_refusal(
        app,
        ASSIGNEE,
        c.ReportProgress(task_id=task, percent=10, note="n"),
        InvariantViolation,
        "task",
        "has not been received by HN",
        task_id=task,
    )


AFTER_CANCEL: list[tuple[Actor, Callable[[UUID], c.Command]]] = [
    (ASSIGNEE, lambda t: c.ReceiveTask(task_id=t)),
    (MONITOR, lambda t: c.UrgeTask(task_id=t, message="hurry")),
    (OFFICE, lambda t: c.TransferTask(task_id=t, to="HP", reason="r")),
    (
        OFFICE,
        lambda t: c.ExtendDeadline(task_id=t, deadline=date(2026, 6, 5), reason="r", authority="VPTW"),
    ),
    (OFFICE, lambda t: c.CancelTask(task_id=t, reason="again")),
    (INSPECTOR, lambda t: c.RaiseFinding(task_id=t, kind="violation", description="d")),
    (ASSIGNEE, lambda t: c.ExplainDelay(task_id=t, explanation="e")),
]


@pytest.mark.parametrize(
    ("actor", "command"),
    AFTER_CANCEL,
    ids=["receive", "urge", "transfer", "extend", "cancel", "finding", "explain"],
)
def test_no_event_follows_a_cancellation(
    app: TaskLedger, task: UUID, clock: Clock, actor: Actor, command: Callable[[UUID], c.Command]
) -> None:
    app.execute(OFFICE, c.CancelTask(task_id=task, reason="superseded by 58-NQ/TW"))
    clock.advance(hours=1)

    expect_refusal(
        app,
        actor,
        command(task),
        InvariantViolation,
        "task",
        "no events follow TaskCancelled",
        task_id=task,
    )
    assert app.task_view(task)["status"] == "cancelled"
    assert types_of(app, task) == ["Assigned", "Cancelled"]


def test_percent_never_decreases_without_a_reason(app: TaskLedger, received: UUID) -> None:
    report(app, received, 50)
    approve(app, received)

    expect_refusal(
        app,
        ASSIGNEE,
        c.ReportProgress(task_id=received, percent=30, note="n"),
        InvariantViolation,
        "percent",
        "may not fall below the approved 50 %",
        task_id=received,
    )

    before = event_count(app)
    report(app, received, 30, reason="part of the plan was rejected by the Politburo")
    approve(app, received)
    assert event_count(app) == before + 2
    assert app.history(received)[-2]["payload"]["decrease_reason"] == "part of the plan was rejected by the Politburo"
    assert app.task_view(received)["percent"] == 30


@pytest.mark.parametrize("state", ["approved 60 %", "100 % draft not yet approved"])
def test_completion_needs_an_approved_100_percent_report(app: TaskLedger, received: UUID, state: str) -> None:
    report(app, received, 60)
    approve(app, received)
    if state == "100 % draft not yet approved":
        report(app, received, 100)

    expect_refusal(
        app,
        ASSIGNEE,
        c.CompleteTask(task_id=received, result="plan adopted"),
        InvariantViolation,
        "report",
        "completion needs an approved progress report at 100 %",
        task_id=received,
    )


def test_a_task_with_an_approved_100_percent_report_completes(app: TaskLedger, received: UUID, clock: Clock) -> None:
    report(app, received, 100)
    approve(app, received)
    clock.set(local(2026, 4, 28, 11))
    before = event_count(app)

    result = app.execute(ASSIGNEE, c.CompleteTask(task_id=received, result="plan adopted"))

    assert (result.version, result.event, event_count(app)) == (5, "Completed", before + 1)
    view = app.task_view(received)
    assert (view["status"], view["completed_at"]) == (
        "completed_on_time",
        "2026-04-28T11:00:00+07:00",
    )
    assert app.history(received)[-1]["payload"] == {
        "result": "plan adopted",
        "products": None,
        "late": False,
        "late_against_original": False,
    }


def test_only_one_draft_report_may_be_pending(app: TaskLedger, received: UUID) -> None:
    report(app, received, 10)

    expect_refusal(
        app,
        ASSIGNEE,
        c.ReportProgress(task_id=received, percent=20, note="n"),
        InvariantViolation,
        "report",
        "report 1 is awaiting approval",
        task_id=received,
    )


def test_approve_needs_a_pending_report(app: TaskLedger, received: UUID) -> None:
    expect_refusal(
        app,
        APPROVER,
        c.ApproveProgress(task_id=received),
        InvariantViolation,
        "report",
        "no progress report is awaiting approval",
        task_id=received,
    )


def test_an_objection_needs_a_reason(app: TaskLedger, received: UUID) -> None:
    # The command refuses a blank reason on its own ...
    with pytest.raises(ValidationError) as caught:
        c.ObjectTask.build(task_id=received, reason="   ")
    assert caught.value.field == "reason"
    # ... and the aggregate refuses it too, should a blank one get past the command layer.
    blank = c.ObjectTask.model_construct(task_id=received, reason="   ")
    expect_refusal(
        app,
        ASSIGNEE,
        blank,
        ValidationError,
        "reason",
        "is required for an objection",
        task_id=received,
    )


def test_an_objection_after_8_working_hours_is_recorded_and_flagged_late(
    app: TaskLedger, received: UUID, clock: Clock
) -> None:
    # Received Tue 04-28 09:00; 8 WH: Tue 09-12 (3 h) + 13-17 (4 h) + Wed 04-29 08-09 (1 h) -> Wed 09:00.
    clock.set(local(2026, 5, 4, 9))  # Mon 2026-05-04, after Thu 30 Apr and Fri 1 May off
    before = event_count(app)

    result = app.execute(ASSIGNEE, c.ObjectTask(task_id=received, reason="beyond our competence"))

    assert (result.version, result.event, event_count(app)) == (3, "Objected", before + 1)
    last = app.history(received)[-1]
    assert (last["type"], last["payload"]) == (
        "Objected",
        {"reason": "beyond our competence", "late": True},
    )
    view = app.task_view(received)
    assert (view["status"], view["late_objections"]) == ("objected", 1)
    assert view["clocks"]["objection_due_at"] == "2026-04-29T09:00:00+07:00"


def test_an_objection_within_8_working_hours_is_not_late(app: TaskLedger, received: UUID, clock: Clock) -> None:
    clock.set(local(2026, 4, 29, 8, 59))  # one minute before the window closes

    app.execute(ASSIGNEE, c.ObjectTask(task_id=received, reason="beyond our competence"))

    assert app.history(received)[-1]["payload"]["late"] is False


def test_an_extension_must_be_later_than_the_current_deadline(app: TaskLedger, received: UUID) -> None:
    for day in (date(2026, 5, 15), date(2026, 5, 14)):
        expect_refusal(
            app,
            OFFICE,
            c.ExtendDeadline(task_id=received, deadline=day, reason="r", authority="Standing member"),
            ValidationError,
            "deadline",
            "must be later than the current deadline 2026-05-15",
            task_id=received,
        )


def test_an_extension_keeps_the_original_deadline(app: TaskLedger, received: UUID, clock: Clock) -> None:
    before = event_count(app)
    for new in (date(2026, 6, 5), date(2026, 6, 12)):
        app.execute(
            OFFICE,
            c.ExtendDeadline(task_id=received, deadline=new, reason="flood", authority="Standing member"),
        )

    assert event_count(app) == before + 2
    view = app.task_view(received)
    assert (view["deadline"], view["original_deadline"], view["extensions"]) == (
        "2026-06-12",
        "2026-05-15",
        2,
    )
    assert view["clocks"]["deadline_at"] == "2026-06-12T17:00:00+07:00"
    assert view["clocks"]["original_deadline_at"] == "2026-05-15T17:00:00+07:00"
    assert app.history(received)[-1]["payload"] == {
        "deadline": "2026-06-12",
        "previous": "2026-06-05",
        "reason": "flood",
        "authority": "Standing member",
    }
    # completed Wed 2026-05-20: late against the original deadline, on time against the extended one
    report(app, received, 100)
    approve(app, received)
    clock.set(local(2026, 5, 20, 10))
    app.execute(ASSIGNEE, c.CompleteTask(task_id=received, result="done"))
    view = app.task_view(received)
    assert (view["status"], view["completed_late_against_original"]) == ("completed_on_time", True)


def test_occurred_at_in_the_future_is_refused(app: TaskLedger, task: UUID, clock: Clock) -> None:
    expect_refusal(
        app,
        ASSIGNEE,
        c.ReceiveTask(task_id=task, occurred_at=clock.now + timedelta(minutes=1)),
        ValidationError,
        "occurred_at",
        "may not be in the future",
        task_id=task,
    )


def test_occurred_at_before_the_previous_event_is_refused(app: TaskLedger, task: UUID, clock: Clock) -> None:
    clock.set(local(2026, 4, 28, 9))
    expect_refusal(
        app,
        ASSIGNEE,
        c.ReceiveTask(task_id=task, occurred_at=local(2026, 4, 24, 14, 59)),
        InvariantViolation,
        "occurred_at",
        "is before the task's previous event",
        task_id=task,
    )
    # a past instant after the assignment is a legitimate import of a past record
    app.execute(ASSIGNEE, c.ReceiveTask(task_id=task, occurred_at=local(2026, 4, 27, 9)))
    last = app.history(task)[-1]
    assert (last["occurred_at"], last["recorded_at"]) == (
        "2026-04-27T09:00:00+07:00",
        "2026-04-28T09:00:00+07:00",
    )
    assert last["payload"] == {"late": False}


def test_a_transfer_restarts_the_receipt_clock_for_the_new_agency(
    app: TaskLedger, received: UUID, clock: Clock
) -> None:
    clock.set(local(2026, 4, 28, 14))  # Tue
    before = event_count(app)

    app.execute(OFFICE, c.TransferTask(task_id=received, to="HP", reason="HP is the competent committee"))

    assert event_count(app) == before + 1
    assert app.history(received)[-1]["payload"] == {
        "to": "HP",
        "previous": "HN",
        "reason": "HP is the competent committee",
    }
    view = app.task_view(received)
    assert (view["assignee"], view["lifecycle"], view["transfers"]) == ("HP", "awaiting_receipt", 1)
    # 4 WH from Tue 14:00: 14-17 (3 h) + Wed 04-29 08-09 (1 h)
    assert view["clocks"]["receipt_due_at"] == "2026-04-29T09:00:00+07:00"
    expect_refusal(
        app,
        ASSIGNEE,
        c.ReportProgress(task_id=received, percent=10, note="n"),
        NotAuthorized,
        "actor.agency",
        "this task is assigned to HP",
        task_id=received,
    )
    app.execute(OTHER_ASSIGNEE, c.ReceiveTask(task_id=received))
    assert app.task_view(received)["lifecycle"] == "received"


def test_a_transfer_before_receipt_voids_the_first_agencys_receipt_clock(
    app: TaskLedger, task: UUID, clock: Clock
) -> None:
    # HN's receipt clock: assigned Fri 04-24 15:00 + 4 WH -> Tue 04-28 10:00 (Mon 27 is a day off).
    clock.set(local(2026, 4, 27, 9))  # Mon, before HN's clock fell due: the transfer voids it
    app.execute(OFFICE, c.TransferTask(task_id=task, to="HP", reason="HP is competent"))
    clock.set(local(2026, 5, 6, 9))  # long after both due instants, nothing received
    receipts = [k for k in app.task_view(task)["clocks"]["all"] if k["clock"] == "receipt"]
    # HP's clock: Mon 27 is off -> from Tue 08:00 + 4 WH -> Tue 04-28 12:00; never met -> overdue
    assert [(k["due_at"], k["state"]) for k in receipts] == [
        ("2026-04-28T10:00:00+07:00", "void"),
        ("2026-04-28T12:00:00+07:00", "overdue"),
    ]
    follow_ups = [k["clock"] for k in app.task_view(task)["clocks"]["all"] if k["clock"].startswith("follow_up")]
    assert follow_ups.count("follow_up:receipt") == 1  # only the new agency's clock calls for a follow-up


def test_a_transfer_after_the_receipt_fell_due_keeps_it_overdue_on_record(
    app: TaskLedger, task: UUID, clock: Clock
) -> None:
    clock.set(local(2026, 4, 28, 11))  # Tue 11:00: HN's clock (due 10:00) is already overdue
    app.execute(OFFICE, c.TransferTask(task_id=task, to="HP", reason="HN did not acknowledge"))
    receipts = [k for k in app.task_view(task)["clocks"]["all"] if k["clock"] == "receipt"]
    # HP's: Tue 11:00 + 4 WH = 11-12 (1 h) + 13-16 (3 h) -> Tue 16:00, still pending at 11:00
    assert [(k["due_at"], k["state"]) for k in receipts] == [
        ("2026-04-28T10:00:00+07:00", "overdue"),
        ("2026-04-28T16:00:00+07:00", "pending"),
    ]


# -- sub-assignment (Art. 6.2.c, 8.2) ----------------------------------------------------------
def subtask(app: TaskLedger, parent: UUID, assignee: str, deadline: date | None = None) -> UUID:
    command = c.AssignSubtask(parent_id=parent, content=f"part for {assignee}", assignee=assignee, deadline=deadline)
    return app.execute(ASSIGNEE, command).aggregate_id


def test_an_assignee_sub_assigns_to_a_subordinate_unit(app: TaskLedger, received: UUID, clock: Clock) -> None:
    clock.set(local(2026, 4, 28, 10))
    before = event_count(app)

    child = subtask(app, received, "HN-DA", date(2026, 5, 10))

    assert event_count(app) == before + 2  # the child's Assigned and the parent's SubtaskAssigned
    assert types_of(app, received)[-1] == "SubtaskAssigned"
    view = app.task_view(child)
    assert (view["parent_id"], view["assignee"], view["monitor"], view["assigning_body"]) == (
        str(received),
        "HN-DA",
        "HN",
        "HN",
    )
    assert (view["deadline"], view["status"]) == ("2026-05-10", "awaiting_receipt")
    # the child has its own receipt clock: 4 WH from Tue 10:00 = 10-12 (2 h) + 13-15 (2 h)
    assert view["clocks"]["receipt_due_at"] == "2026-04-28T15:00:00+07:00"
    parent = app.task_view(received)
    assert parent["assignee"] == "HN"  # the parent's assignee stays accountable to the centre
    assert parent["subtasks"] == [
        {"task_id": str(child), "assignee": "HN-DA", "status": "awaiting_receipt", "percent": 0}
    ]


def test_a_subtask_may_not_end_after_its_parent(app: TaskLedger, received: UUID) -> None:
    command = c.AssignSubtask(parent_id=received, content="part", assignee="HN-DA", deadline=date(2026, 5, 18))

    expect_refusal(
        app,
        ASSIGNEE,
        command,
        InvariantViolation,
        "deadline",
        "may not end after its parent's deadline 2026-05-15",
        task_id=received,
    )


def test_only_the_parent_assignee_sub_assigns(app: TaskLedger, received: UUID) -> None:
    command = c.AssignSubtask(parent_id=received, content="part", assignee="HP-X")

    expect_refusal(
        app,
        OTHER_ASSIGNEE,
        command,
        NotAuthorized,
        "actor.agency",
        "acts only on tasks of its own agency",
        task_id=received,
    )


def test_the_parent_view_rolls_up_its_subtasks(app: TaskLedger, received: UUID, clock: Clock) -> None:
    clock.set(local(2026, 4, 28, 10))
    first, second = subtask(app, received, "HN-DA"), subtask(app, received, "HN-SS")
    clock.set(local(2026, 4, 28, 11))
    app.execute(Actor.parse("assignee:HN-DA:lan"), c.ReceiveTask(task_id=first))
    app.execute(Actor.parse("assignee:HN-DA:lan"), c.ReportProgress(task_id=first, percent=50, note="half"))
    app.execute(Actor.parse("approver:HN-DA:tuan"), c.ApproveProgress(task_id=first))

    parent = app.task_view(received)

    assert [(s["task_id"], s["assignee"], s["status"], s["percent"]) for s in parent["subtasks"]] == [
        (str(first), "HN-DA", "in_progress_on_time", 50),
        (str(second), "HN-SS", "awaiting_receipt", 0),
    ]
    assert parent["rollup_percent"] == 25  # (50 + 0) / 2
    assert parent["percent"] == 0  # the parent's own approved percent is its own


def test_the_rollup_as_of_a_past_instant_shows_the_subtasks_as_they_were(
    app: TaskLedger, received: UUID, clock: Clock
) -> None:
    clock.set(local(2026, 4, 28, 10))
    child = subtask(app, received, "HN-DA")
    clock.set(local(2026, 4, 29, 9))
    app.execute(Actor.parse("assignee:HN-DA:lan"), c.ReceiveTask(task_id=child))
    app.execute(Actor.parse("assignee:HN-DA:lan"), c.ReportProgress(task_id=child, percent=80, note="most"))
    app.execute(Actor.parse("approver:HN-DA:tuan"), c.ApproveProgress(task_id=child))

    then = app.task_view(received, as_of=local(2026, 4, 28, 12))  # before the child was even received

    assert then["subtasks"] == [
        {"task_id": str(child), "assignee": "HN-DA", "status": "awaiting_receipt", "percent": 0}
    ]
    assert then["rollup_percent"] == 0


# -- directives --------------------------------------------------------------------------------
def test_a_withdrawn_directive_takes_no_new_tasks(app: TaskLedger, task: UUID) -> None:
    directive_id = app.get_task(task).directive_id
    app.execute(OFFICE, c.WithdrawDirective(directive_id=directive_id, reason="replaced by 58-NQ/TW"))

    expect_refusal(
        app,
        OFFICE,
        assign_command(directive_id, assignee="HP"),
        InvariantViolation,
        "directive_id",
        "57-NQ/TW was withdrawn; no new tasks",
    )
    assert [d["withdrawn_at"] for d in app.list_directives()] == ["2026-04-24T15:00:00+07:00"]


@pytest.mark.parametrize("symbol", ["57-NQ/TW", " 57-nq/tw "])
def test_a_directive_symbol_is_registered_once(
    app: TaskLedger, register: Callable, signed: Callable, symbol: str
) -> None:
    register(app, "57-NQ/TW")

    expect_refusal(app, OFFICE, directive_command(signed, symbol), Conflict, "symbol", "is already registered")
    assert len(app.list_directives()) == 1


def test_an_adjusted_deadline_may_not_precede_the_local_assignment_date(
    app: TaskLedger, assign: Callable[..., UUID], clock: Clock
) -> None:
    # Assigned Mon 2026-05-04 06:30 local, which is still Sun 05-03 23:30 in UTC. The assignment
    # itself refuses a deadline of 05-03 (before the local assignment date); an adjustment must too.
    clock.set(local(2026, 5, 4, 6, 30))
    directive_id = app.get_task(assign(app)).directive_id
    expect_refusal(
        app,
        OFFICE,
        assign_command(directive_id, assignee="HP", deadline=date(2026, 5, 3)),
        ValidationError,
        "deadline",
        "may not be before the assignment date",
    )
    task = assign(app, directive_id, assignee="HP", deadline=date(2026, 5, 8))

    expect_refusal(
        app,
        OFFICE,
        c.AdjustTask(task_id=task, changes={"deadline": "2026-05-03"}, reason="typo"),
        ValidationError,
        "deadline",
        "may not be before the assignment date",
        task_id=task,
    )
