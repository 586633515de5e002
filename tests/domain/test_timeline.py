"""Pure timeline functions: flat state, field diffs, late records, which facts count as of an
instant, and the clearance rule (SPEC 6, 8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from eventsourcing.domain import Aggregate, event

from domain import timeline as tl
from domain.actors import Actor
from domain.clearance import clearance_of, grantable_level, may_read, require_clearance, require_reader
from domain.errors import NotAuthorized, ValidationError
from domain.timeline import Basis, Change
from domain.values import Confidentiality as C

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def local(d: int, hh: int = 0, mm: int = 0) -> datetime:
    """An instant in May 2026, Viet Nam local time."""
    return datetime(2026, 5, d, hh, mm, tzinfo=VN)


# -- flat state and diff ----------------------------------------------------------------------
def test_flatten_turns_nested_views_into_dotted_and_indexed_keys() -> None:
    view = {
        "status": "received",
        "clocks": {"deadline_at": "D", "checkpoints": [{"at": "A", "met_at": None}]},
        "tags": ["x", "y"],
        "empty": [],
    }

    assert tl.flatten(view) == {
        "status": "received",
        "clocks.deadline_at": "D",
        "clocks.checkpoints[0].at": "A",
        "clocks.checkpoints[0].met_at": None,
        "tags": ["x", "y"],
        "empty": [],
    }


def test_state_drops_the_keys_that_change_without_any_fact() -> None:
    view = {"as_of": "now", "version": 3, "percent": 40, "clocks": {"all": [{"state": "overdue"}], "deadline_at": "D"}}

    assert tl.state_of(view) == {"percent": 40, "clocks.deadline_at": "D"}


def test_diff_lists_changed_fields_in_order_with_old_and_new_values() -> None:
    before = {"lifecycle": "received", "percent": 0, "pending_report": 1, "gone": "x"}
    after = {"lifecycle": "received", "percent": 40, "pending_report": None}

    assert tl.diff(before, after) == [
        Change("percent", 0, 40),
        Change("pending_report", 1, None),
        Change("gone", "x", None),
    ]


def test_a_creating_fact_changes_every_field_that_has_a_value() -> None:
    assert tl.diff(None, {"status": "awaiting_receipt", "received_at": None, "reports": 0, "tags": []}) == [
        Change("status", None, "awaiting_receipt"),
        Change("reports", None, 0),
    ]


def test_nothing_changed_is_an_empty_diff() -> None:
    assert tl.diff({"percent": 40}, {"percent": 40}) == []


def test_a_change_reads_old_arrow_new_with_a_dash_for_nothing() -> None:
    assert str(Change("percent", 0, 40)) == "percent: 0 → 40"
    assert str(Change("received_at", None, "2026-05-04T10:00:00+07:00")) == "received_at: — → 2026-05-04T10:00:00+07:00"
    assert str(Change("completed_late_against_original", None, False)) == "completed_late_against_original: — → false"


# -- late records -----------------------------------------------------------------------------
def test_a_fact_recorded_after_it_occurred_is_a_late_record_with_its_gap() -> None:
    occurred, recorded = local(15, 10), local(19, 9)  # Fri 10:00 -> Tue 09:00

    assert tl.is_late_record(occurred, recorded)
    assert tl.record_gap(occurred, recorded) == timedelta(days=3, hours=23)
    assert tl.format_gap(tl.record_gap(occurred, recorded)) == "3 d 23 h"


def test_a_fact_entered_live_is_not_late() -> None:
    assert not tl.is_late_record(local(4, 9), local(4, 9))
    assert tl.record_gap(None, local(4, 9)) == timedelta(0)


def test_a_tolerance_forgives_small_gaps() -> None:
    assert not tl.is_late_record(local(4, 9), local(4, 9, 1), tolerance=timedelta(minutes=5))


@pytest.mark.parametrize(
    ("gap", "text"),
    [
        (timedelta(days=2), "2 d"),
        (timedelta(days=1, hours=23, minutes=30), "1 d 23 h 30 min"),
        (timedelta(seconds=45), "45 s"),
        (timedelta(minutes=5, seconds=3), "5 min"),
        (timedelta(0), "0 s"),
    ],
)
def test_gaps_read_in_days_hours_and_minutes(gap: timedelta, text: str) -> None:
    assert tl.format_gap(gap) == text


# -- as of an instant -------------------------------------------------------------------------
@dataclass
class Fake:
    """Just the envelope split_at reads."""

    originator_version: int
    occurred_at: datetime
    timestamp: datetime


# v1 live on the 4th, v2 occurred the 15th but recorded the 19th, v3 live on the 20th
FACTS = [Fake(1, local(4, 9), local(4, 9)), Fake(2, local(15, 10), local(19, 9)), Fake(3, local(20, 8), local(20, 8))]


@pytest.mark.parametrize(
    ("at", "basis", "counted", "excluded"),
    [
        (local(3), Basis.OCCURRED, [], [1, 2, 3]),  # before anything
        (local(17, 12), Basis.OCCURRED, [1, 2], [3]),  # v2 had happened (recorded later)
        (local(17, 12), Basis.RECORDED, [1], [2, 3]),  # the system did not show v2 yet
        (local(19, 9), Basis.RECORDED, [1, 2], [3]),  # an instant equal to the record counts
        (local(21), Basis.RECORDED, [1, 2, 3], []),
    ],
)
def test_split_at_counts_the_prefix_of_facts_up_to_the_instant_by_the_basis(
    at: datetime, basis: Basis, counted: list[int], excluded: list[int]
) -> None:
    got_counted, got_excluded = tl.split_at(FACTS, at, basis)  # type: ignore[arg-type]

    assert [e.originator_version for e in got_counted] == counted
    assert [e.originator_version for e in got_excluded] == excluded


def test_excluded_facts_say_whether_they_had_occurred_by_the_instant() -> None:
    _, excluded = tl.split_at(FACTS, local(17, 12), Basis.RECORDED)  # type: ignore[arg-type]

    rows = tl.excluded_view(excluded, local(17, 12), Basis.RECORDED, VN)

    assert [(r["version"], r["occurred_by_instant"]) for r in rows] == [(2, True), (3, False)]
    assert rows[0]["occurred_at"] == "2026-05-15T10:00:00+07:00"
    assert rows[0]["recorded_at"] == "2026-05-19T09:00:00+07:00"


def test_counted_facts_recorded_after_the_instant_are_named() -> None:
    assert tl.recorded_after(FACTS[:2], local(17, 12)) == [2]  # type: ignore[arg-type]


def test_the_basis_says_what_the_view_answers() -> None:
    assert Basis.parse("recorded").note("T") == "what the system showed at T"
    assert Basis.parse("occurred").note("T") == "what had happened by T (including facts recorded later)"
    with pytest.raises(ValidationError, match="basis: 'business' is not one of occurred, recorded"):
        Basis.parse("business")


# -- the timeline of a small aggregate ---------------------------------------------------------
class Counter(Aggregate):
    @event("Started")
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @event("Added")
    def add(self, n: int) -> None:
        self.count += n


def test_the_timeline_shows_each_fact_with_what_it_changed() -> None:
    counter = Counter(name="c")
    counter.add(n=2)
    counter.add(n=0)
    events = counter.collect_events()

    rows = tl.timeline(events, lambda c, at: {"name": c.name, "count": c.count}, VN)

    assert [(r["version"], r["type"]) for r in rows] == [(1, "Started"), (2, "Added"), (3, "Added")]
    assert rows[0]["changes"] == [{"field": "name", "old": None, "new": "c"}, {"field": "count", "old": None, "new": 0}]
    assert rows[1]["changes"] == [{"field": "count", "old": 0, "new": 2}]
    assert rows[2]["changes"] == []
    assert all(r["late_record"] is False and r["record_gap"] is None for r in rows)


# -- clearance (SPEC 6) ------------------------------------------------------------------------
AUDITOR = Actor.parse("auditor:KTNN:giang")


@pytest.mark.parametrize(
    ("reader", "record", "allowed"),
    [
        (C.REGULAR, C.REGULAR, True),
        (C.REGULAR, C.CONFIDENTIAL, False),
        (C.CONFIDENTIAL, C.CONFIDENTIAL, True),
        (C.CONFIDENTIAL, C.TOP_SECRET, False),
        (C.TOP_SECRET, C.CONFIDENTIAL, True),
        (C.TOP_SECRET, C.ABSOLUTE_SECRET, False),
    ],
)
def test_a_reader_reads_records_up_to_its_clearance(reader: C, record: C, allowed: bool) -> None:
    assert may_read(reader, record) is allowed


def test_a_record_above_the_clearance_is_refused_explicitly() -> None:
    record_id = f"task {uuid4()}"
    with pytest.raises(NotAuthorized) as refused:
        require_clearance(AUDITOR, C.REGULAR, C.CONFIDENTIAL, record_id)

    assert refused.value.field == "clearance"
    assert refused.value.rule == f"{record_id} is confidential; KTNN:giang is cleared for regular only"


def test_only_auditors_inspectors_and_the_central_office_read_timelines() -> None:
    require_reader(AUDITOR)
    require_reader(Actor.parse("inspector:UBKTTW:em"))
    require_reader(Actor.parse("central_office:VPTW:an"))
    with pytest.raises(NotAuthorized, match="actor.role: .*; monitor may not"):
        require_reader(Actor.parse("monitor:BKT:dung"))


def test_without_a_grant_an_auditor_reads_regular_and_the_office_reads_all() -> None:
    assert clearance_of(AUDITOR, None) is C.REGULAR
    assert clearance_of(Actor.parse("central_office:VPTW:an"), None) is C.TOP_SECRET


@pytest.mark.parametrize("level", ["absolute_secret", "secret"])
def test_no_grant_reaches_absolute_secret_or_an_unknown_level(level: str) -> None:
    with pytest.raises(ValidationError) as refused:
        grantable_level(level)

    assert refused.value.field == "level"
