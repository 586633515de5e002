"""Pure row builders: exact rows from real envelopes and task views built through the domain. No ClickHouse."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from domain import contract
from domain.values import CONTENT_FIELDS
from projections import rows
from projections.rows import ALERT_ID_NAMESPACE, alert_row, event_row, status_row
from projections.schema import ALERT_COLUMNS, EVENT_COLUMNS, STATUS_COLUMNS
from tests.projections.support import FREE_TEXTS, History

JUNE_3 = datetime(2026, 6, 3, 3, 0, tzinfo=UTC)  # Wednesday 10:00 local


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=UTC)


def strings_in(row: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for value in row.values():
        values = value if isinstance(value, list) else [value]
        found.extend(v for v in values if isinstance(v, str))
    return found


# -- event_row ----------------------------------------------------------------------------------------------------
def test_every_envelope_gives_a_row_with_exactly_the_insert_columns(history: History) -> None:
    assert len({e["type"] for e in history.envelopes}) == len(contract.EVENT_TYPES) == 23
    for envelope in history.envelopes:
        assert tuple(event_row(envelope)) == EVENT_COLUMNS, envelope["type"]


def test_task_assigned_row_exact(history: History) -> None:
    envelope = history.one("TaskAssigned", "t1")
    t1, d1 = history.ids["t1"], history.ids["d1"]

    row = event_row(envelope)

    assert row == {
        "event_id": str(contract.event_id_for(t1, 1)),
        "aggregate_type": "Task",
        "aggregate_id": str(t1),
        "version": 1,
        "position": 6,
        "type": "TaskAssigned",
        "occurred_at": utc(2026, 4, 24, 8, 5),
        "recorded_at": utc(2026, 4, 24, 8, 5),
        "actor_role": "central_office",
        "actor_agency": "VPTW",
        "actor_user": "an",
        "confidentiality": "regular",
        "calendar_version": 1,
        "command_id": "assign-1",
        "hash": envelope["hash"],
        "prev_hash": envelope["prev_hash"],
        "contract_version": 1,
        "directive_id": str(d1),
        "parent_id": None,
        "subtask_id": None,
        "assignee": "HN",
        "previous_assignee": None,
        "subtask_assignee": None,
        "assignee_kind": "provincial_committee",
        "assigning_body": "Politburo",
        "monitor": "BKT",
        "deadline": date(2026, 6, 30),
        "previous_deadline": None,
        "priority": "regular",
        "scope": "national",
        "scope_name": None,
        "update_every": "month",
        "ad_hoc": False,
        "percent": None,
        "report_no": None,
        "late": None,
        "late_against_original": None,
        "outcome": None,
        "grade": None,
        "finding_kind": None,
        "symbol": None,
        "directive_number": None,
        "issued_on": None,
        "registration_due_at": None,
        "changed_fields": [],
    }
    assert len(row["hash"]) == 64


def flattened(row: dict[str, Any]) -> dict[str, Any]:
    """The payload-derived part of a row that is set."""
    header = set(EVENT_COLUMNS[: EVENT_COLUMNS.index("directive_id")])
    return {k: v for k, v in row.items() if k not in header and v not in (None, [])}


@pytest.mark.parametrize(
    ("kind", "aggregate", "expected"),
    [
        (
            "ObjectionResolved",
            "t1",
            {
                "deadline": date(2026, 7, 15),
                "priority": "key",
                "late": False,
                "outcome": "accepted",
                "changed_fields": ["content", "deadline", "priority"],
            },
        ),
        ("TaskAdjusted", "t1", {"scope": "sector", "scope_name": "Science", "changed_fields": ["scope", "scope_name"]}),
        ("TaskReceived", "t1", {"late": False}),
        ("TaskObjected", "t1", {"late": False}),
        ("DeadlineExtended", "t1", {"deadline": date(2026, 8, 31), "previous_deadline": date(2026, 7, 15)}),
        ("TaskCompleted", "t1", {"late": False, "late_against_original": False}),
        ("TaskEvaluated", "t1", {"grade": "completed"}),
        ("FindingRaised", "t1", {"finding_kind": "data_error"}),
        ("ProgressReturned", "t1", {"report_no": 1}),
        ("TaskUrged", "t1", {}),
        ("DifficultyReported", "t1", {}),
        ("DelayExplained", "t1", {}),
        ("TaskTransferred", "t2", {"assignee": "HCM", "previous_assignee": "DN"}),
        ("TaskCancelled", "t2", {}),
        ("DirectiveAmended", "d1", {"directive_number": "57a", "changed_fields": ["number"]}),
        ("DirectiveWithdrawn", "d2", {}),
    ],
)
def test_payload_fields_are_flattened_exactly(
    history: History, kind: str, aggregate: str, expected: dict[str, Any]
) -> None:
    assert flattened(event_row(history.one(kind, aggregate))) == expected


def test_progress_rows_carry_report_number_and_percent(history: History) -> None:
    reported = [(r["report_no"], r["percent"]) for r in map(event_row, history.of_type("ProgressReported", "t1"))]
    approved = [r["report_no"] for r in map(event_row, history.of_type("ProgressApproved", "t1"))]

    assert reported == [(1, 40), (2, 50), (3, 100)]
    assert approved == [2, 3]


def test_subtask_assigned_names_the_child_not_this_tasks_assignee(history: History) -> None:
    row = event_row(history.one("SubtaskAssigned", "t1"))
    child = event_row(history.one("TaskAssigned", "sub"))

    assert flattened(row) == {"subtask_id": str(history.ids["sub"]), "subtask_assignee": "HNQ1"}
    assert row["assignee"] is None
    assert (child["assignee"], child["parent_id"], child["actor_role"]) == ("HNQ1", str(history.ids["t1"]), "assignee")


def test_directive_registered_row(history: History) -> None:
    row = event_row(history.one("DirectiveRegistered", "d1"))

    assert flattened(row) == {
        "late": False,
        "symbol": "57-NQ/TW",
        "directive_number": "57",
        "issued_on": date(2026, 4, 22),
        "registration_due_at": utc(2026, 4, 28, 10, 0),  # end of WD 3 after Wed 22 April (Mon 27 is off)
    }
    assert (row["aggregate_type"], row["command_id"], row["position"]) == ("Directive", "reg-57", 2)


def test_calendar_events_have_no_level(history: History) -> None:
    established, changed = (event_row(history.one(k)) for k in ("CalendarEstablished", "CalendarChanged"))

    assert (established["confidentiality"], established["calendar_version"], established["actor_role"]) == (
        None,
        1,
        "system",
    )
    assert (changed["confidentiality"], changed["calendar_version"], changed["version"]) == (None, 2, 2)
    assert flattened(changed) == {}


def test_confidential_rows_keep_the_dimensions(history: History) -> None:
    row = event_row(history.one("TaskAssigned", "t3"))

    assert row["confidentiality"] == "confidential"
    assert (row["assignee"], row["priority"], row["deadline"]) == ("QN", "urgent", date(2026, 6, 30))


def test_no_row_carries_free_text(history: History) -> None:
    """SPEC 6: whatever the level, no content field, reason, message, title or payload JSON is copied."""
    texts: set[str] = set(FREE_TEXTS)
    for envelope in history.envelopes:
        payload = envelope["payload"]
        for key in (*CONTENT_FIELDS, "reason", "title", "authority", "signer", "presenting_body", "source"):
            if isinstance(payload.get(key), str):
                texts.add(payload[key])
    texts.discard("Politburo")  # the assigning body is a dimension, not content

    for envelope in history.envelopes:
        values = strings_in(event_row(envelope))
        leaked = [v for v in values for t in texts if t and t in v]
        assert leaked == [], (envelope["type"], leaked)


def test_event_row_is_pure(history: History) -> None:
    envelope = history.one("ObjectionResolved", "t1")
    before = copy.deepcopy(envelope)

    assert event_row(envelope) == event_row(envelope)
    assert envelope == before


def test_an_absolute_secret_envelope_is_refused(history: History) -> None:
    envelope = dict(history.one("TaskReceived", "t1"), confidentiality="absolute_secret")

    with pytest.raises(ValueError, match="absolute_secret"):
        event_row(envelope)


# -- status_row ---------------------------------------------------------------------------------------------------
def test_status_row_of_a_confidential_task_in_progress_exact(history: History) -> None:
    """t3: assigned Fri 24 April 15:28 local, received 15:29, 60 % approved; deadline 30 June (cadence 2).
    As of Wed 3 June 10:00 local the half-way checkpoint (due Tue 2 June 17:00) is overdue."""
    view = history.app.task_view(history.ids["t3"], as_of=JUNE_3)
    assert view["content"] is None

    row = status_row(view, updated_at="2026-04-24T08:31:00Z")

    assert tuple(row) == STATUS_COLUMNS
    assert row == {
        "task_id": str(history.ids["t3"]),
        "version": 4,
        "as_of": JUNE_3,
        "updated_at": utc(2026, 4, 24, 8, 31),
        "directive_id": str(history.ids["d3"]),
        "directive_symbol": "01-NQ/TW",
        "parent_id": None,
        "confidentiality": "confidential",
        "assigning_body": "Politburo",
        "assignee": "QN",
        "assignee_kind": "provincial_committee",
        "monitor": "BKT",
        "with_deadline": True,
        "deadline": date(2026, 6, 30),
        "original_deadline": date(2026, 6, 30),
        "scope": "national",
        "scope_name": None,
        "priority": "urgent",
        "ad_hoc": False,
        "update_every": "month",
        "status": "in_progress_on_time",
        "coarse_result": "not_completed",
        "lifecycle": "received",
        "percent": 60,
        "rollup_percent": None,
        "evaluation": None,
        "assigned_at": utc(2026, 4, 24, 8, 28),
        "received_at": utc(2026, 4, 24, 8, 29),
        "completed_at": None,
        "cancelled_at": None,
        "last_approved_report_at": utc(2026, 4, 24, 8, 30),
        "completed_late_against_original": None,
        "reports": 1,
        "pending_report": None,
        "objections": 0,
        "late_objections": 0,
        "transfers": 0,
        "extensions": 0,
        "urges": 0,
        "difficulties": 0,
        "explanations": 0,
        "findings": 0,
        "cadence": "1_to_3_months",
        "registration_due_at": utc(2026, 4, 28, 10, 0),
        # Fri 15:28-17:00 (1h32), Mon 27 April off, Tue 08:00-10:28 (2h28)
        "receipt_due_at": utc(2026, 4, 28, 3, 28),
        # 8 WH from Fri 15:29: 1h31 Fri, Tue 08:00-12:00, 13:00-15:29
        "objection_due_at": utc(2026, 4, 28, 8, 29),
        "objection_handling_due_at": None,
        "next_periodic_update_due_at": None,
        "result_report_due_at": utc(2026, 7, 3, 10, 0),  # end of WD 3 after Tue 30 June
        "deadline_at": utc(2026, 6, 30, 10, 0),
        "original_deadline_at": utc(2026, 6, 30, 10, 0),
        # half of 24 Apr 15:28 -> 30 Jun 17:00 local (96 572 min) = 28 May 04:14 local
        "checkpoint_at": [utc(2026, 5, 27, 21, 14)],
        "checkpoint_due_at": [utc(2026, 6, 2, 10, 0)],  # end of WD 3 after Thu 28 May
        "checkpoint_met_at": [None],
        "clock_name": [
            "receipt",
            "objection",
            "checkpoint_0.5",
            "result_report",
            "deadline",
            "follow_up:checkpoint_0.5",
        ],
        "clock_started_at": [
            utc(2026, 4, 24, 8, 28),
            utc(2026, 4, 24, 8, 29),
            utc(2026, 5, 27, 21, 14),
            utc(2026, 6, 30, 10, 0),
            utc(2026, 4, 24, 8, 28),
            utc(2026, 6, 2, 10, 0),
        ],
        "clock_due_at": [
            utc(2026, 4, 28, 3, 28),
            utc(2026, 4, 28, 8, 29),
            utc(2026, 6, 2, 10, 0),
            utc(2026, 7, 3, 10, 0),
            utc(2026, 6, 30, 10, 0),
            utc(2026, 6, 5, 10, 0),  # follow-up: end of WD 3 after Tue 2 June
        ],
        "clock_met_at": [utc(2026, 4, 24, 8, 29), None, None, None, None, None],
        "clock_state": ["met", "expired", "overdue", "pending", "pending", "pending"],
        "clock_calendar_version": [1, 1, 1, 1, 1, 2],
        "overdue_clocks": 1,
        "next_due_clock": "follow_up:checkpoint_0.5",
        "next_due_at": utc(2026, 6, 5, 10, 0),
    }


def test_status_row_of_a_completed_task_with_subtask(history: History) -> None:
    view = history.app.task_view(history.ids["t1"], as_of=JUNE_3)

    row = status_row(view)

    assert (row["status"], row["coarse_result"], row["lifecycle"], row["percent"]) == (
        "completed_on_time",
        "completed",
        "completed",
        100,
    )
    assert (row["deadline"], row["original_deadline"], row["priority"], row["scope"], row["scope_name"]) == (
        date(2026, 8, 31),
        date(2026, 7, 15),
        "key",
        "sector",
        "Science",
    )
    assert (row["version"], row["rollup_percent"], row["evaluation"], row["updated_at"]) == (19, 0, "completed", None)
    assert (row["reports"], row["objections"], row["extensions"], row["urges"], row["findings"]) == (3, 1, 1, 1, 1)
    assert row["completed_at"] == utc(2026, 4, 24, 8, 21)
    assert row["overdue_clocks"] == 0 and row["next_due_clock"] is None
    assert view["content"] and view["content"] not in strings_in(row) and "content" not in row


def test_status_row_of_a_subtask_and_of_a_transferred_cancelled_task(history: History) -> None:
    sub = status_row(history.app.task_view(history.ids["sub"], as_of=JUNE_3))
    t2 = status_row(history.app.task_view(history.ids["t2"], as_of=JUNE_3))

    assert (sub["parent_id"], sub["assignee"], sub["monitor"], sub["status"]) == (
        str(history.ids["t1"]),
        "HNQ1",
        "HN",
        "awaiting_receipt",
    )
    assert (t2["assignee"], t2["status"], t2["with_deadline"], t2["deadline"], t2["transfers"]) == (
        "HCM",
        "cancelled",
        False,
        None,
        1,
    )
    assert t2["cadence"] == "periodic"


def test_status_row_refuses_absolute_secret(history: History) -> None:
    view = dict(history.app.task_view(history.ids["t3"], as_of=JUNE_3), confidentiality="absolute_secret")

    with pytest.raises(ValueError, match="SPEC 6"):
        status_row(view)


# -- alert_row ----------------------------------------------------------------------------------------------------
def test_alert_row_exact(history: History) -> None:
    view = history.app.task_view(history.ids["t3"], as_of=JUNE_3)
    checkpoint = next(c for c in view["clocks"]["all"] if c["clock"] == "checkpoint_0.5")

    row = alert_row(view, checkpoint, "overdue", JUNE_3)

    expected_id = uuid.uuid5(
        ALERT_ID_NAMESPACE, f"{history.ids['t3']}:checkpoint_0.5:overdue:2026-06-02T10:00:00+00:00"
    )
    assert tuple(row) == ALERT_COLUMNS
    assert row == {
        "alert_id": str(expected_id),
        "task_id": str(history.ids["t3"]),
        "clock": "checkpoint_0.5",
        "kind": "overdue",
        "due_at": utc(2026, 6, 2, 10, 0),
        "raised_at": JUNE_3,
        "clock_started_at": utc(2026, 5, 27, 21, 14),
        "agency": "QN",
        "monitor": "BKT",
        "confidentiality": "confidential",
        "priority": "urgent",
        "task_version": 4,
    }
    # raised again later (a replay): same identity
    assert alert_row(view, checkpoint, "overdue", "2026-06-04T00:00:00Z")["alert_id"] == row["alert_id"]


def test_alert_row_refuses_an_unknown_kind(history: History) -> None:
    view = history.app.task_view(history.ids["t3"], as_of=JUNE_3)

    with pytest.raises(ValueError, match="alert kind 'soon'"):
        alert_row(view, view["clocks"]["all"][0], "soon", JUNE_3)


# -- conversions --------------------------------------------------------------------------------------------------
def test_instants_become_aware_utc() -> None:
    assert rows.instant("2026-04-24T15:00:00+07:00") == utc(2026, 4, 24, 8, 0)
    assert rows.instant("2026-04-24T08:00:00.250000Z") == datetime(2026, 4, 24, 8, 0, 0, 250000, tzinfo=UTC)
    assert rows.instant("2026-04-24T08:00:00") == utc(2026, 4, 24, 8, 0)
    assert rows.instant(None) is None
    assert rows.day("2026-06-30") == date(2026, 6, 30)
    with pytest.raises(ValueError):
        rows.day(utc(2026, 6, 30))
