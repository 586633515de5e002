"""Auditors' timeline on both stores: full history with late records, time travel by business and
recorded time on a hand-built history, and clearances (SPEC 6, 8); the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from connectors.audit_timeline import (
    as_of,
    clearance_listing,
    grant_clearance,
    history,
    reader_level,
    revoke_clearance,
)
from domain import commands as c
from domain.actors import Actor
from domain.application import TaskLedger
from domain.clearance import CLEARANCES_ID
from domain.errors import Conflict, InvariantViolation, NotAuthorized, NotFound, ValidationError
from domain.timeline import Basis
from domain.values import Confidentiality
from tests.conftest import APPROVER, ASSIGNEE, INSPECTOR, MONITOR, OFFICE, Backend, Clock, local, new_cipher_key

AUDITOR = Actor.parse("auditor:KTNN:giang")


# -- the hand-built history ------------------------------------------------------------------
@dataclass(frozen=True)
class Built:
    app: TaskLedger
    task_id: UUID
    directive_id: UUID


def build_late_history(app: TaskLedger, clock: Clock, register: Callable[..., UUID]) -> Built:
    """Task of 57-NQ/TW to HN, monitored by BKT, deadline Fri 2026-06-05 (no days off in May/June).

    v  fact               by        occurred (business)   recorded            late by
    1  Assigned           office    Mon 05-04 09:00       Mon 05-04 09:00     —
    2  Received           HN:binh   Mon 05-04 10:00       Mon 05-04 10:00     —
    3  ProgressReported   HN:binh   Fri 05-15 10:00       Tue 05-19 09:00     3 d 23 h   (40 %, report 1)
    4  ProgressApproved   HN:chi    Fri 05-15 15:00       Tue 05-19 11:00     3 d 20 h
    5  Urged              BKT:dung  Tue 05-26 09:00       Tue 05-26 09:00     —
    6  ProgressReported   HN:binh   Mon 06-01 09:00       Wed 06-03 09:00     2 d        (100 %, report 2)
    7  ProgressApproved   HN:chi    Mon 06-01 10:00       Wed 06-03 09:30     1 d 23 h 30 min
    8  Completed          HN:binh   Mon 06-01 11:00       Wed 06-03 10:00     1 d 23 h
    """
    directive_id = register(app)  # at the clock's start, Fri 2026-04-24 15:00 local
    clock.set(local(2026, 5, 4, 9))
    task_id = app.execute(
        OFFICE,
        c.AssignTask(
            directive_id=directive_id,
            content="Draft the digital plan",
            assignee="HN",
            monitor="BKT",
            deadline=date(2026, 6, 5),
            command_id="late-1",
        ),
    ).aggregate_id
    steps: list[tuple[datetime, Actor, c.Command]] = [
        (local(2026, 5, 4, 10), ASSIGNEE, c.ReceiveTask(task_id=task_id, command_id="late-2")),
        (
            local(2026, 5, 19, 9),
            ASSIGNEE,
            c.ReportProgress(
                task_id=task_id, percent=40, note="draft", occurred_at=local(2026, 5, 15, 10), command_id="late-3"
            ),
        ),
        (
            local(2026, 5, 19, 11),
            APPROVER,
            c.ApproveProgress(task_id=task_id, occurred_at=local(2026, 5, 15, 15), command_id="late-4"),
        ),
        (local(2026, 5, 26, 9), MONITOR, c.UrgeTask(task_id=task_id, message="checkpoint due", command_id="late-5")),
        (
            local(2026, 6, 3, 9),
            ASSIGNEE,
            c.ReportProgress(task_id=task_id, percent=100, occurred_at=local(2026, 6, 1, 9), command_id="late-6"),
        ),
        (
            local(2026, 6, 3, 9, 30),
            APPROVER,
            c.ApproveProgress(task_id=task_id, occurred_at=local(2026, 6, 1, 10), command_id="late-7"),
        ),
        (
            local(2026, 6, 3, 10),
            ASSIGNEE,
            c.CompleteTask(
                task_id=task_id, result="plan adopted", occurred_at=local(2026, 6, 1, 11), command_id="late-8"
            ),
        ),
    ]
    for recorded, actor, command in steps:
        clock.set(recorded)
        app.execute(actor, command)
    return Built(app, task_id, directive_id)


@pytest.fixture
def built(make_ledger: Callable[..., TaskLedger], clock: Clock, register: Callable[..., UUID]) -> Built:
    return build_late_history(make_ledger(), clock, register)


# Clocks that no fact of this history moves (worked out by hand):
#   receipt: Mon 05-04 09:00 + 4 WH = 09-12 (3 h) + 13-14 (1 h) -> 05-04 14:00
#   objection window: received 05-04 10:00 + 8 WH = 10-12, 13-17 (6 h) + Tue 08-10 (2 h) -> 05-05 10:00
#   cadence: 05-04 09:00 to the deadline instant Fri 06-05 17:00 is >= 1 and < 3 months: one checkpoint
#   at 1/2: span 32 d 8 h, half 16 d 4 h -> Wed 05-20 13:00, due end of WD 3 after 05-20 -> Mon 05-25 17:00
#   result report: end of WD 3 after Fri 06-05 -> Wed 06-10 17:00
FIXED_CLOCKS = {
    "receipt_due_at": "2026-05-04T14:00:00+07:00",
    "objection_due_at": "2026-05-05T10:00:00+07:00",
    "deadline_at": "2026-06-05T17:00:00+07:00",
    "result_report_due_at": "2026-06-10T17:00:00+07:00",
}
CHECKPOINT = {"at": "2026-05-20T13:00:00+07:00", "due_at": "2026-05-25T17:00:00+07:00"}

# The hand-worked as-of table: three instants (local noon) x both bases.
AS_OF_CASES = [
    # Tue 05-12: only v1, v2 had occurred and been recorded; both bases agree. Received, nothing approved.
    (
        "05-12 occurred",
        local(2026, 5, 12, 12),
        Basis.OCCURRED,
        dict(
            counted=2,
            excluded=6,
            status="not_started_on_time",
            lifecycle="received",
            percent=0,
            reports=0,
            pending_report=None,
            urges=0,
            met_at=None,
            recorded_later=[],
            occurred_but_unrecorded=[],
        ),
    ),
    (
        "05-12 recorded",
        local(2026, 5, 12, 12),
        Basis.RECORDED,
        dict(
            counted=2,
            excluded=6,
            status="not_started_on_time",
            lifecycle="received",
            percent=0,
            reports=0,
            pending_report=None,
            urges=0,
            met_at=None,
            recorded_later=[],
            occurred_but_unrecorded=[],
        ),
    ),
    # Sun 05-17: the 40 % report (Fri 10:00) and its approval (Fri 15:00) HAD happened -> in progress...
    (
        "05-17 occurred",
        local(2026, 5, 17, 12),
        Basis.OCCURRED,
        dict(
            counted=4,
            excluded=4,
            status="in_progress_on_time",
            lifecycle="received",
            percent=40,
            reports=1,
            pending_report=None,
            urges=0,
            met_at=None,
            recorded_later=[3, 4],
            occurred_but_unrecorded=[],
        ),
    ),
    # ... but were entered only on Tue 05-19: the system still showed an untouched task.
    (
        "05-17 recorded",
        local(2026, 5, 17, 12),
        Basis.RECORDED,
        dict(
            counted=2,
            excluded=6,
            status="not_started_on_time",
            lifecycle="received",
            percent=0,
            reports=0,
            pending_report=None,
            urges=0,
            met_at=None,
            recorded_later=[],
            occurred_but_unrecorded=[3, 4],
        ),
    ),
    # Tue 06-02: completion had happened on Mon 06-01 11:00 (before the 06-05 deadline): completed on
    # time, 100 %, and the 06-01 09:00 report (after the checkpoint at 05-20 13:00) met it late.
    (
        "06-02 occurred",
        local(2026, 6, 2, 12),
        Basis.OCCURRED,
        dict(
            counted=8,
            excluded=0,
            status="completed_on_time",
            lifecycle="completed",
            percent=100,
            reports=2,
            pending_report=None,
            urges=1,
            met_at="2026-06-01T09:00:00+07:00",
            recorded_later=[6, 7, 8],
            occurred_but_unrecorded=[],
        ),
    ),
    # The system showed v1..v5 only (v6-v8 entered Wed 06-03): 40 %, in progress, checkpoint unmet.
    (
        "06-02 recorded",
        local(2026, 6, 2, 12),
        Basis.RECORDED,
        dict(
            counted=5,
            excluded=3,
            status="in_progress_on_time",
            lifecycle="received",
            percent=40,
            reports=1,
            pending_report=None,
            urges=1,
            met_at=None,
            recorded_later=[],
            occurred_but_unrecorded=[6, 7, 8],
        ),
    ),
]


@pytest.mark.parametrize(
    ("at", "basis", "expected"), [case[1:] for case in AS_OF_CASES], ids=[case[0] for case in AS_OF_CASES]
)
def test_as_of_gives_the_hand_worked_state_at_three_instants_by_both_bases(
    built: Built, at: datetime, basis: Basis, expected: dict[str, Any]
) -> None:
    result = as_of(built.app, AUDITOR, built.task_id, at, basis)

    view = result["view"]
    assert result["basis"] == basis.value
    assert result["events_total"] == 8
    assert (result["events_counted"], result["events_excluded"]) == (expected["counted"], expected["excluded"])
    assert view["version"] == expected["counted"]
    assert (view["status"], view["lifecycle"], view["percent"]) == (
        expected["status"],
        expected["lifecycle"],
        expected["percent"],
    )
    assert (view["reports"], view["pending_report"], view["urges"]) == (
        expected["reports"],
        expected["pending_report"],
        expected["urges"],
    )
    assert {k: view["clocks"][k] for k in FIXED_CLOCKS} == FIXED_CLOCKS
    assert view["clocks"]["checkpoints"] == [{**CHECKPOINT, "met_at": expected["met_at"]}]
    assert result["counted_but_recorded_later"] == expected["recorded_later"]
    assert [e["version"] for e in result["excluded"] if e["occurred_by_instant"]] == expected["occurred_but_unrecorded"]


def test_as_of_says_which_question_it_answers(built: Built) -> None:
    at = local(2026, 5, 17, 12)

    recorded = as_of(built.app, AUDITOR, built.task_id, at, Basis.RECORDED)
    occurred = as_of(built.app, AUDITOR, built.task_id, at, Basis.OCCURRED)

    assert recorded["at"] == "2026-05-17T12:00:00+07:00"
    assert recorded["note"] == "what the system showed at 2026-05-17T12:00:00+07:00"
    assert occurred["note"] == "what had happened by 2026-05-17T12:00:00+07:00 (including facts recorded later)"
    assert recorded["excluded"][0] == {
        "version": 3,
        "type": "ProgressReported",
        "occurred_at": "2026-05-15T10:00:00+07:00",
        "recorded_at": "2026-05-19T09:00:00+07:00",
        "occurred_by_instant": True,
    }


def test_the_status_at_an_instant_is_derived_at_that_instant(built: Built) -> None:
    # At Mon 06-08 noon by recorded time everything is in: completed on 06-01, so completed on time,
    # although the deadline (06-05 17:00) has passed by then.
    result = as_of(built.app, AUDITOR, built.task_id, local(2026, 6, 8, 12), Basis.RECORDED)

    assert result["view"]["status"] == "completed_on_time"
    assert result["events_counted"] == 8


@pytest.mark.parametrize("basis", list(Basis))
def test_as_of_before_the_task_existed_is_refused(built: Built, basis: Basis) -> None:
    with pytest.raises(NotFound) as refused:
        as_of(built.app, AUDITOR, built.task_id, local(2026, 5, 1, 12), basis)

    assert refused.value.field == "at"
    assert refused.value.rule == (
        f"task {built.task_id} did not exist yet at 2026-05-01T12:00:00+07:00 by {basis.value} time "
        "(created: occurred 2026-05-04T09:00:00+07:00, recorded 2026-05-04T09:00:00+07:00)"
    )


# -- history ------------------------------------------------------------------------------------
EXPECTED_TIMELINE = [
    # version, type, actor, occurred, recorded, late, gap
    (1, "Assigned", "central_office:VPTW:an", "2026-05-04T09:00:00+07:00", "2026-05-04T09:00:00+07:00", False, None),
    (2, "Received", "assignee:HN:binh", "2026-05-04T10:00:00+07:00", "2026-05-04T10:00:00+07:00", False, None),
    (
        3,
        "ProgressReported",
        "assignee:HN:binh",
        "2026-05-15T10:00:00+07:00",
        "2026-05-19T09:00:00+07:00",
        True,
        "3 d 23 h",
    ),
    (
        4,
        "ProgressApproved",
        "approver:HN:chi",
        "2026-05-15T15:00:00+07:00",
        "2026-05-19T11:00:00+07:00",
        True,
        "3 d 20 h",
    ),
    (5, "Urged", "monitor:BKT:dung", "2026-05-26T09:00:00+07:00", "2026-05-26T09:00:00+07:00", False, None),
    (6, "ProgressReported", "assignee:HN:binh", "2026-06-01T09:00:00+07:00", "2026-06-03T09:00:00+07:00", True, "2 d"),
    (
        7,
        "ProgressApproved",
        "approver:HN:chi",
        "2026-06-01T10:00:00+07:00",
        "2026-06-03T09:30:00+07:00",
        True,
        "1 d 23 h 30 min",
    ),
    (8, "Completed", "assignee:HN:binh", "2026-06-01T11:00:00+07:00", "2026-06-03T10:00:00+07:00", True, "1 d 23 h"),
]


def timeline_rows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            e["version"],
            e["type"],
            "{role}:{agency}:{user}".format(**e["actor"]),
            e["occurred_at"],
            e["recorded_at"],
            e["late_record"],
            e["record_gap"],
        )
        for e in data["events"]
    ]


def test_history_lists_every_fact_with_actor_both_times_and_the_late_flag(built: Built) -> None:
    data = history(built.app, AUDITOR, built.task_id)

    assert (data["kind"], data["confidentiality"], data["late_records"]) == ("task", "regular", 5)
    assert timeline_rows(data) == EXPECTED_TIMELINE
    assert [e["command_id"] for e in data["events"]] == [f"late-{v}" for v in range(1, 9)]
    assert {e["calendar_version"] for e in data["events"]} == {1}


def test_history_carries_the_hash_chain_in_full(built: Built) -> None:
    events = history(built.app, AUDITOR, built.task_id)["events"]

    assert all(len(e["hash"]) == 64 for e in events)
    assert [e["prev_hash"] for e in events[1:]] == [e["hash"] for e in events[:-1]]


def test_history_shows_what_each_fact_changed(built: Built) -> None:
    events = history(built.app, AUDITOR, built.task_id)["events"]
    changes = {e["version"]: {c["field"]: (c["old"], c["new"]) for c in e["changes"]} for e in events}

    assert changes[1]["lifecycle"] == (None, "awaiting_receipt")
    assert changes[1]["clocks.receipt_due_at"] == (None, "2026-05-04T14:00:00+07:00")
    assert changes[2] == {
        "status": ("awaiting_receipt", "not_started_on_time"),
        "lifecycle": ("awaiting_receipt", "received"),
        "received_at": (None, "2026-05-04T10:00:00+07:00"),
        "clocks.objection_due_at": (None, "2026-05-05T10:00:00+07:00"),
    }
    assert changes[3] == {"reports": (0, 1), "pending_report": (None, 1)}
    assert changes[4] == {
        "status": ("not_started_on_time", "in_progress_on_time"),
        "percent": (0, 40),
        "last_approved_report_at": (None, "2026-05-15T10:00:00+07:00"),
        "pending_report": (1, None),
    }
    assert changes[5] == {"urges": (0, 1)}
    assert changes[7] == {
        "percent": (40, 100),
        "last_approved_report_at": ("2026-05-15T10:00:00+07:00", "2026-06-01T09:00:00+07:00"),
        "pending_report": (2, None),
        "clocks.checkpoints[0].met_at": (None, "2026-06-01T09:00:00+07:00"),
    }
    assert changes[8] == {
        "status": ("in_progress_on_time", "completed_on_time"),
        "coarse_result": ("not_completed", "completed"),
        "lifecycle": ("received", "completed"),
        "completed_at": (None, "2026-06-01T11:00:00+07:00"),
        "completed_late_against_original": (None, False),
    }


def test_history_of_a_directive_by_its_facts(built: Built) -> None:
    data = history(built.app, AUDITOR, built.directive_id)

    assert data["kind"] == "directive"
    assert [(e["version"], e["type"]) for e in data["events"]] == [(1, "Registered")]
    assert ("symbol", None, "57-NQ/TW") in [(c["field"], c["old"], c["new"]) for c in data["events"][0]["changes"]]


def test_as_of_a_directive_by_recorded_time(built: Built) -> None:
    # Registered Fri 2026-04-24 15:00 local (the clock's start). Issued Wed 04-22, so due at the end of
    # WD 3 after it: Thu 04-23, Fri 04-24, (weekend, Mon 04-27 observed Hung Kings day off) Tue 04-28 17:00.
    result = as_of(built.app, AUDITOR, built.directive_id, local(2026, 5, 1, 12), Basis.RECORDED)

    assert (result["kind"], result["events_counted"], result["events_excluded"]) == ("directive", 1, 0)
    assert result["view"]["symbol"] == "57-NQ/TW"
    assert result["view"]["registration_due_at"] == "2026-04-28T17:00:00+07:00"


def test_history_of_an_unknown_id_is_refused(built: Built) -> None:
    unknown = UUID(int=7)
    with pytest.raises(NotFound, match=f"nothing recorded for {unknown}"):
        history(built.app, AUDITOR, unknown)


# -- roles and clearances -----------------------------------------------------------------------
@pytest.mark.parametrize("actor", [ASSIGNEE, APPROVER, MONITOR], ids=lambda a: a.role.value)
def test_other_roles_may_not_read_audit_timelines(built: Built, actor: Actor) -> None:
    with pytest.raises(NotAuthorized) as refused:
        history(built.app, actor, built.task_id)

    assert refused.value.field == "actor.role"
    assert refused.value.rule == (
        f"only auditor, inspector, central_office may read audit timelines (SPEC 1); {actor.role.value} may not"
    )


@dataclass(frozen=True)
class Classified:
    app: TaskLedger
    task_id: UUID
    cipher_key: str


@pytest.fixture
def classified(make_ledger: Callable[..., TaskLedger], clock: Clock, register: Callable[..., UUID]) -> Classified:
    """A confidential directive (no content, no signature) and one task under it, encrypted at rest."""
    key = new_cipher_key()
    app = make_ledger(cipher_key=key)
    directive_id = register(app, "58-NQ/TW", confidentiality="confidential", summary=None)
    clock.set(local(2026, 5, 4, 9))
    task_id = app.execute(
        OFFICE, c.AssignTask(directive_id=directive_id, assignee="HN", monitor="BKT", deadline=date(2026, 6, 5))
    ).aggregate_id
    clock.set(local(2026, 5, 6, 9))
    return Classified(app, task_id, key)


def test_a_regular_cleared_auditor_is_refused_a_confidential_task_then_a_grant_allows_it(
    classified: Classified,
) -> None:
    app, task_id = classified.app, classified.task_id
    expected = f"task {task_id} is confidential; KTNN:giang is cleared for regular only"
    for read in (
        lambda: history(app, AUDITOR, task_id),
        lambda: as_of(app, AUDITOR, task_id, local(2026, 5, 5, 12), Basis.RECORDED),
    ):
        with pytest.raises(NotAuthorized) as refused:
            read()
        assert (refused.value.field, refused.value.rule) == ("clearance", expected)

    grant_clearance(app, OFFICE, agency="KTNN", user="giang", level="confidential")

    assert reader_level(app, AUDITOR) is Confidentiality.CONFIDENTIAL
    data = history(app, AUDITOR, task_id)
    assert data["confidentiality"] == "confidential"
    assert [e["type"] for e in data["events"]] == ["Assigned"]
    assert as_of(app, AUDITOR, task_id, local(2026, 5, 5, 12), Basis.RECORDED)["view"]["content"] is None


def test_a_revoked_clearance_refuses_again(classified: Classified) -> None:
    app = classified.app
    grant_clearance(app, OFFICE, agency="KTNN", user="giang", level="top_secret")
    revoke_clearance(app, OFFICE, agency="KTNN", user="giang", reason="audit finished")

    with pytest.raises(NotAuthorized, match="is cleared for regular only"):
        history(app, AUDITOR, classified.task_id)


def test_an_inspector_is_limited_by_its_clearance_and_the_central_office_is_not(classified: Classified) -> None:
    with pytest.raises(NotAuthorized, match=f"task {classified.task_id} is confidential; UBKTTW:em is cleared"):
        history(classified.app, INSPECTOR, classified.task_id)

    assert history(classified.app, OFFICE, classified.task_id)["kind"] == "task"


def test_a_grant_is_personal_to_agency_and_user(classified: Classified) -> None:
    grant_clearance(classified.app, OFFICE, agency="KTNN", user="giang", level="confidential")

    with pytest.raises(NotAuthorized, match="KTNN:hoa is cleared for regular only"):
        history(classified.app, Actor.parse("auditor:KTNN:hoa"), classified.task_id)


def test_only_the_central_office_grants_clearances(built: Built) -> None:
    with pytest.raises(NotAuthorized) as refused:
        grant_clearance(built.app, AUDITOR, agency="KTNN", user="giang", level="top_secret")

    assert refused.value.field == "actor.role"
    assert "only central_office may record clearances" in refused.value.rule
    assert list(built.app.events.get(CLEARANCES_ID)) == []


def test_grants_are_hash_chained_facts_with_their_actor(built: Built, clock: Clock) -> None:
    clock.set(local(2026, 6, 10, 9))
    first = grant_clearance(built.app, OFFICE, agency="KTNN", user="giang", level="confidential", command_id="g1")
    again = grant_clearance(built.app, OFFICE, agency="KTNN", user="giang", level="confidential", command_id="g1")
    clock.set(local(2026, 6, 11, 9))
    revoke_clearance(built.app, OFFICE, agency="KTNN", user="giang", reason="audit finished")

    assert (first.version, first.duplicate) == (2, False)
    assert (again.version, again.duplicate) == (2, True)
    data = history(built.app, AUDITOR, CLEARANCES_ID)
    assert [(e["version"], e["type"], e["recorded_at"]) for e in data["events"]] == [
        (1, "Opened", "2026-06-10T09:00:00+07:00"),
        (2, "Granted", "2026-06-10T09:00:00+07:00"),
        (3, "Revoked", "2026-06-11T09:00:00+07:00"),
    ]
    assert all(e["actor"] == OFFICE.to_dict() for e in data["events"])
    assert data["events"][1]["changes"] == [{"field": "grants.KTNN:giang", "old": None, "new": "confidential"}]
    assert data["events"][2]["changes"] == [{"field": "grants.KTNN:giang", "old": "confidential", "new": None}]
    assert [e["prev_hash"] for e in data["events"][1:]] == [e["hash"] for e in data["events"][:-1]]


def test_the_clearances_list_who_is_cleared_since_when_and_by_whom(built: Built, clock: Clock) -> None:
    clock.set(local(2026, 6, 10, 9))
    grant_clearance(built.app, OFFICE, agency="KTNN", user="giang", level="top_secret")

    assert clearance_listing(built.app, AUDITOR) == [
        {
            "agency": "KTNN",
            "user": "giang",
            "level": "top_secret",
            "granted_at": "2026-06-10T09:00:00+07:00",
            "granted_by": OFFICE.to_dict(),
        }
    ]
    with pytest.raises(NotAuthorized, match="may list clearances"):
        clearance_listing(built.app, MONITOR)


def test_grant_refusals_name_the_rule(built: Built) -> None:
    app = built.app
    with pytest.raises(ValidationError, match="absolute_secret records are never held"):
        grant_clearance(app, OFFICE, agency="KTNN", user="giang", level="absolute_secret")
    grant_clearance(app, OFFICE, agency="KTNN", user="giang", level="confidential", command_id="g1")
    with pytest.raises(InvariantViolation, match="KTNN:giang is already cleared for confidential"):
        grant_clearance(app, OFFICE, agency="KTNN", user="giang", level="confidential")
    with pytest.raises(Conflict, match="g1 was already used for Granted"):
        revoke_clearance(app, OFFICE, agency="KTNN", user="giang", command_id="g1")
    with pytest.raises(InvariantViolation, match="KTNN:hoa has no grant to revoke"):
        revoke_clearance(app, OFFICE, agency="KTNN", user="hoa")


# -- the command line, as a subprocess on the same store ------------------------------------------
CLI_CLOCK = "2026-06-10T02:00:00+00:00"  # Wed 10 Jun 2026, 09:00 local


def cli(
    backend: Backend, home: Path, *args: str, actor: str = "auditor:KTNN:giang", cipher_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TASKLEDGER_", "PERSISTENCE_", "POSTGRES_", "SQLITE_", "CIPHER_"))
    }
    env.update(backend.env, TASKLEDGER_HOME=str(home), TASKLEDGER_CLOCK=CLI_CLOCK, TASKLEDGER_ACTOR=actor)
    if cipher_key:
        env["TASKLEDGER_CIPHER_KEY"] = cipher_key
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "audit", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_history_json_lists_every_fact_exactly(built: Built, backend: Backend, tmp_path: Path) -> None:
    proc = cli(backend, tmp_path, "history", str(built.task_id), "--json")

    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert timeline_rows(data) == EXPECTED_TIMELINE
    assert data["events"][3]["changes"][1] == {"field": "percent", "old": 0, "new": 40}


def test_cli_as_of_json_by_both_bases(built: Built, backend: Backend, tmp_path: Path) -> None:
    views = {}
    for basis in ("occurred", "recorded"):
        proc = cli(
            backend,
            tmp_path,
            "as-of",
            str(built.task_id),
            "--at",
            "2026-05-17T12:00:00+07:00",
            "--basis",
            basis,
            "--json",
        )
        assert proc.returncode == 0, proc.stderr
        views[basis] = json.loads(proc.stdout)

    assert (views["occurred"]["events_counted"], views["occurred"]["view"]["percent"]) == (4, 40)
    assert (views["recorded"]["events_counted"], views["recorded"]["view"]["percent"]) == (2, 0)
    assert views["recorded"]["note"] == "what the system showed at 2026-05-17T12:00:00+07:00"


def test_cli_human_history_flags_late_records_and_changes(built: Built, backend: Backend, tmp_path: Path) -> None:
    proc = cli(backend, tmp_path, "history", str(built.task_id))

    assert proc.returncode == 0, proc.stderr
    assert "LATE 3 d 23 h" in proc.stdout
    assert "percent: 0 → 40" in proc.stdout
    assert "8 facts, 5 recorded late" in proc.stdout


def test_cli_refuses_a_role_and_a_clearance_explicitly_and_shows_nothing(
    classified: Classified, backend: Backend, tmp_path: Path
) -> None:
    task = str(classified.task_id)
    key = classified.cipher_key

    by_role = cli(backend, tmp_path, "history", task, "--json", actor="assignee:HN:binh", cipher_key=key)
    refused = cli(backend, tmp_path, "history", task, "--json", cipher_key=key)

    assert by_role.returncode == 2 and "refused (not_authorized) actor.role:" in by_role.stderr
    assert "assignee may not" in by_role.stderr
    assert refused.returncode == 2
    assert json.loads(refused.stdout) == {
        "error": "not_authorized",
        "field": "clearance",
        "rule": f"task {task} is confidential; KTNN:giang is cleared for regular only",
    }

    granted = cli(
        backend,
        tmp_path,
        "grant",
        "giang",
        "--agency",
        "KTNN",
        "--level",
        "confidential",
        "--json",
        actor="central_office:VPTW:an",
        cipher_key=key,
    )
    assert granted.returncode == 0, granted.stderr
    allowed = cli(backend, tmp_path, "as-of", task, "--at", "2026-05-05T12:00:00+07:00", "--json", cipher_key=key)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["view"]["status"] == "awaiting_receipt"
