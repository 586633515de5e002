"""Alerts of SPEC section 5 (domain.alerts): pure, no I/OVER. Every literal is worked out by hand in the comments.

Viet Nam working calendar, version 1 (default_calendar): Mon-Fri 08:00-12:00 and 13:00-17:00 local (+07:00).
2026 days off near the dates used: Sat 04-25, Sun 04-26, Mon 04-27 (Hung Kings day, Sun 04-26, observed),
Thu 04-30 (Reunification Day), Fri 05-01 (Labour Day), Sat 05-02, Sun 05-03.

The receipt clock used throughout (SPEC 3's example): started Fri 04-24 15:00, due start + 4 WH:
Fri 15:00-17:00 = 2 h, (Sat, Sun, Mon 27 off), Tue 04-28 08:00-10:00 = 2 h -> due Tue 10:00.
  warning  50 % = 2 WH   -> Fri 17:00 (exactly the end of Friday's afternoon period)
  due_soon 90 % = 3.6 WH -> Fri 2 h + Tue 1.6 h = 1 h 36 min after 08:00 -> Tue 09:36
  due_now  = Tue 10:00; overdue from any instant after Tue 10:00.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from uuid import UUID

import pytest

from domain.alerts import (
    DEFAULT_POLICY,
    TICK,
    Alert,
    AlertKind,
    AlertPolicy,
    alerts_for,
    elapsed_share,
    new_alerts,
    next_wakeup,
    threshold_instant,
)
from domain.calendar import CalendarHistory, default_calendar
from domain.clocks import Clock
from domain.errors import ValidationError

ICT = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh: UTC+07:00, no DST
CAL = default_calendar(recorded_at=datetime(2026, 1, 1, tzinfo=UTC))
CALENDARS = CalendarHistory((CAL,))
TASK = UUID("00000000-0000-4000-8000-000000000001")

WARN, SOON, NOW, OVER, MET, LATE = (
    AlertKind.WARNING,
    AlertKind.DUE_SOON,
    AlertKind.DUE_NOW,
    AlertKind.OVERDUE,
    AlertKind.MET,
    AlertKind.MET_LATE,
)


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ICT)


FRI_15 = local(2026, 4, 24, 15)
FRI_17 = local(2026, 4, 24, 17)
TUE_0936 = local(2026, 4, 28, 9, 36)
TUE_10 = local(2026, 4, 28, 10)


def receipt(met_at: datetime | None = None, version: int = 1) -> Clock:
    return Clock("receipt", FRI_15, TUE_10, met_at, version)


def objection_window(met_at: datetime | None = None) -> Clock:
    # received Tue 04-28 10:00; + 8 WH: Tue 10-12 (2 h) + 13-17 (4 h) = 6 h, Wed 04-29 08-10 (2 h) -> Wed 10:00
    return Clock("objection", TUE_10, local(2026, 4, 29, 10), met_at, 1, obligation=False)


def kinds(alerts: list[Alert]) -> list[tuple[str, AlertKind, datetime]]:
    return [(a.clock, a.kind, a.at) for a in alerts]


def keys(alerts: list[Alert]) -> set[tuple[str, str, str, str]]:
    return {a.key for a in alerts}


# -- the clock's own arithmetic agrees with the hand-worked instants --------------------------------------------
def test_the_receipt_clock_of_spec_3_is_due_tuesday_at_ten() -> None:
    assert CAL.add_working_hours(FRI_15, 4) == TUE_10
    assert CAL.working_time_between(FRI_15, TUE_10) == timedelta(hours=4)


# -- elapsed_share -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("as_of", "share"),
    [
        (local(2026, 4, 24, 14), 0.0),  # before the start
        (FRI_15, 0.0),
        (local(2026, 4, 24, 16), 0.25),  # 1 h of 4
        (FRI_17, 0.5),  # 2 h of 4
        (local(2026, 4, 25, 12), 0.5),  # Saturday: no working time passes
        (local(2026, 4, 27, 11), 0.5),  # Mon 27 is Hung Kings day (observed): still 2 h
        (local(2026, 4, 28, 9), 0.75),  # + Tue 08-09 = 3 h
        (TUE_0936, 0.9),  # 3.6 h
        (TUE_10, 1.0),
        (local(2026, 5, 4, 10), 1.0),  # long after: capped at the due instant
    ],
)
def test_elapsed_share_counts_working_time_only(as_of: datetime, share: float) -> None:
    assert elapsed_share(receipt(), CAL, as_of) == share


def test_a_start_outside_working_hours_counts_from_the_next_working_moment() -> None:
    # started Sat 04-25 09:00, due Tue 04-28 12:00: span = Tue 08-12 = 4 h (Sat, Sun, Mon 27 off)
    clock = Clock("receipt", local(2026, 4, 25, 9), local(2026, 4, 28, 12), None, 1)
    assert elapsed_share(clock, CAL, local(2026, 4, 27, 16)) == 0.0
    assert elapsed_share(clock, CAL, local(2026, 4, 28, 10)) == 0.5  # Tue 08-10 = 2 h of 4
    # warning at 2 h counted from Tue 08:00 -> Tue 10:00
    assert threshold_instant(clock, CAL, 0.5) == local(2026, 4, 28, 10)


def test_a_clock_without_working_time_in_its_span_is_all_or_nothing() -> None:
    # Sat 04-25 09:00 -> Sun 04-26 10:00: a weekend, no working time at all
    clock = Clock("x", local(2026, 4, 25, 9), local(2026, 4, 26, 10), None, 1)
    assert elapsed_share(clock, CAL, local(2026, 4, 26, 9, 59)) == 0.0
    assert elapsed_share(clock, CAL, local(2026, 4, 26, 10)) == 1.0
    assert threshold_instant(clock, CAL, 0.5) == local(2026, 4, 26, 10)  # every share is reached when due
    # all four time-driven alerts at Sun 10:00, in kind order; overdue holds from one tick after
    assert kinds(alerts_for(TASK, [clock], CALENDARS, local(2026, 4, 26, 10))) == [
        ("x", WARN, local(2026, 4, 26, 10)),
        ("x", SOON, local(2026, 4, 26, 10)),
        ("x", NOW, local(2026, 4, 26, 10)),
    ]
    assert [a.kind for a in alerts_for(TASK, [clock], CALENDARS, local(2026, 4, 26, 11))] == [WARN, SOON, NOW, OVER]


def test_elapsed_share_refuses_a_naive_instant() -> None:
    with pytest.raises(ValidationError) as refused:
        elapsed_share(receipt(), CAL, datetime(2026, 4, 24, 16))
    assert refused.value.field == "as_of"


# -- threshold_instant -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("share", "instant"),
    [
        (0.5, FRI_17),  # 2 h: Fri 15-17, exactly the period end (not Tue 08:00)
        (0.9, TUE_0936),  # 3.6 h: Fri 2 h + Tue 08:00 + 1 h 36 min
        (0.25, local(2026, 4, 24, 16)),  # 1 h
        (0.75, local(2026, 4, 28, 9)),  # 3 h: Fri 2 h + Tue 08-09
        (0.0, FRI_15),
        (1.0, TUE_10),
    ],
)
def test_threshold_instants(share: float, instant: datetime) -> None:
    assert threshold_instant(receipt(), CAL, share) == instant


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), "0.5", True])
def test_threshold_instant_refuses_a_share_outside_0_1(share: object) -> None:
    with pytest.raises(ValidationError) as refused:
        threshold_instant(receipt(), CAL, share)  # type: ignore[arg-type]
    assert refused.value.field == "share"


# -- alerts_for: the receipt clock -------------------------------------------------------------------------------
def test_no_alert_before_the_warning_threshold() -> None:
    assert alerts_for(TASK, [receipt()], CALENDARS, local(2026, 4, 24, 16, 59)) == []


def test_warning_when_half_the_working_time_has_elapsed_at_friday_five_pm() -> None:
    [warning] = alerts_for(TASK, [receipt()], CALENDARS, FRI_17)
    assert warning == Alert(TASK, "receipt", WARN, TUE_10, FRI_17)
    # the instant it became true, not when it was noticed: asked on Monday (a day off), still Fri 17:00
    assert alerts_for(TASK, [receipt()], CALENDARS, local(2026, 4, 27, 12)) == [warning]


def test_due_soon_at_ninety_percent_on_tuesday_at_nine_thirty_six() -> None:
    assert kinds(alerts_for(TASK, [receipt()], CALENDARS, TUE_0936)) == [
        ("receipt", WARN, FRI_17),
        ("receipt", SOON, TUE_0936),
    ]
    assert len(alerts_for(TASK, [receipt()], CALENDARS, TUE_0936 - TICK)) == 1


def test_due_now_at_the_due_instant_and_overdue_once_it_has_passed() -> None:
    assert [a.kind for a in alerts_for(TASK, [receipt()], CALENDARS, TUE_10)] == [WARN, SOON, NOW]
    after = alerts_for(TASK, [receipt()], CALENDARS, TUE_10 + TICK)
    assert kinds(after) == [
        ("receipt", WARN, FRI_17),
        ("receipt", SOON, TUE_0936),
        ("receipt", NOW, TUE_10),
        ("receipt", OVER, TUE_10),
    ]
    # time-driven: no new event needed, a week later it is still exactly these four
    assert alerts_for(TASK, [receipt()], CALENDARS, local(2026, 5, 5, 10)) == after


def test_received_tuesday_at_nine_is_met_with_the_warning_but_no_due_soon() -> None:
    # met Tue 09:00: after the warning (Fri 17:00), before due_soon (Tue 09:36) and before due (Tue 10:00)
    clock = receipt(met_at=local(2026, 4, 28, 9))
    assert clock.state(local(2026, 4, 28, 12)) == "met"
    assert kinds(alerts_for(TASK, [clock], CALENDARS, local(2026, 4, 28, 12))) == [
        ("receipt", WARN, FRI_17),
        ("receipt", MET, local(2026, 4, 28, 9)),
    ]


def test_received_friday_at_four_pm_raises_only_met() -> None:
    clock = receipt(met_at=local(2026, 4, 24, 16))  # before even the warning
    assert kinds(alerts_for(TASK, [clock], CALENDARS, local(2026, 5, 5))) == [("receipt", MET, local(2026, 4, 24, 16))]


def test_met_exactly_at_the_due_instant_is_met_and_never_due_now() -> None:
    clock = receipt(met_at=TUE_10)
    assert clock.state(TUE_10) == "met"
    assert [a.kind for a in alerts_for(TASK, [clock], CALENDARS, local(2026, 5, 5))] == [WARN, SOON, MET]


def test_met_exactly_at_a_threshold_suppresses_it() -> None:
    # met at Fri 17:00, the warning instant: met by then, nothing to warn about
    clock = receipt(met_at=FRI_17)
    assert [a.kind for a in alerts_for(TASK, [clock], CALENDARS, local(2026, 5, 5))] == [MET]


def test_received_tuesday_at_eleven_is_met_late_after_being_overdue_from_ten() -> None:
    clock = receipt(met_at=local(2026, 4, 28, 11))
    assert clock.state(local(2026, 4, 28, 12)) == "met_late"
    assert kinds(alerts_for(TASK, [clock], CALENDARS, local(2026, 4, 28, 12))) == [
        ("receipt", WARN, FRI_17),
        ("receipt", SOON, TUE_0936),
        ("receipt", NOW, TUE_10),
        ("receipt", OVER, TUE_10),  # it was overdue from 10:00 to 11:00
        ("receipt", LATE, local(2026, 4, 28, 11)),
    ]


def test_alert_instants_are_kept_in_utc_and_the_key_names_the_clock_instance() -> None:
    [warning] = alerts_for(TASK, [receipt()], CALENDARS, FRI_17)
    assert warning.at.utcoffset() == timedelta(0)
    assert warning.at.isoformat() == "2026-04-24T10:00:00+00:00"  # Fri 17:00 local
    # due Tue 10:00 local = 03:00 UTC
    assert warning.key == ("00000000-0000-4000-8000-000000000001", "receipt", "warning", "2026-04-28T03:00:00+00:00")
    assert Alert(str(TASK), "receipt", "warning", TUE_10, FRI_17).key == warning.key  # type: ignore[arg-type]


def test_alert_refuses_naive_instants() -> None:
    with pytest.raises(ValidationError) as refused:
        Alert(TASK, "receipt", WARN, datetime(2026, 4, 28, 10), FRI_17)
    assert refused.value.field == "due_at"


# -- the objection window is not an obligation ---------------------------------------------------------------------
def test_the_objection_window_warns_but_expires_silently() -> None:
    # 8 WH from Tue 10:00. warning 4 h: Tue 10-12 (2 h) + 13-15 (2 h) -> Tue 15:00.
    # due_soon 7.2 h = 7 h 12 min: Tue 10-12, 13-17 = 6 h; Wed 08:00 + 1 h 12 min -> Wed 09:12.
    clock = objection_window()
    assert threshold_instant(clock, CAL, 0.5) == local(2026, 4, 28, 15)
    assert threshold_instant(clock, CAL, 0.9) == local(2026, 4, 29, 9, 12)
    as_of = local(2026, 5, 5, 10)  # long after Wed 10:00
    assert clock.state(as_of) == "expired"
    assert kinds(alerts_for(TASK, [clock], CALENDARS, as_of)) == [
        ("objection", WARN, local(2026, 4, 28, 15)),
        ("objection", SOON, local(2026, 4, 29, 9, 12)),
    ]  # no due_now, no overdue
    assert next_wakeup(TASK, [clock], CALENDARS, local(2026, 4, 29, 9, 12)) is None


def test_an_objection_filed_in_the_window_is_met() -> None:
    clock = objection_window(met_at=local(2026, 4, 28, 16))  # after the warning (Tue 15:00)
    assert kinds(alerts_for(TASK, [clock], CALENDARS, local(2026, 4, 29, 12))) == [
        ("objection", WARN, local(2026, 4, 28, 15)),
        ("objection", MET, local(2026, 4, 28, 16)),
    ]


# -- closed tasks ------------------------------------------------------------------------------------------------
def test_a_task_cancelled_on_saturday_raises_nothing_new_after_it() -> None:
    closed = local(2026, 4, 25, 10)
    clock = receipt()
    assert clock.state(local(2026, 5, 5), closed) == "void"
    # only the warning of Fri 17:00, raised before the closure
    assert kinds(alerts_for(TASK, [clock], CALENDARS, local(2026, 5, 5), closed_at=closed)) == [
        ("receipt", WARN, FRI_17)
    ]
    assert next_wakeup(TASK, [clock], CALENDARS, local(2026, 4, 25, 12), closed_at=closed) is None


def test_closing_at_a_threshold_instant_beats_the_timer() -> None:
    assert alerts_for(TASK, [receipt()], CALENDARS, local(2026, 5, 5), closed_at=FRI_17) == []
    # closed at the due instant: the clock is void (Clock.state), so neither due_now nor overdue
    assert receipt().state(local(2026, 5, 5), TUE_10) == "void"
    assert [a.kind for a in alerts_for(TASK, [receipt()], CALENDARS, local(2026, 5, 5), closed_at=TUE_10)] == [
        WARN,
        SOON,
    ]
    # closed one tick after: it was overdue (Clock.state agrees)
    assert receipt().state(local(2026, 5, 5), TUE_10 + TICK) == "overdue"
    after = alerts_for(TASK, [receipt()], CALENDARS, local(2026, 5, 5), closed_at=TUE_10 + TICK)
    assert [a.kind for a in after] == [WARN, SOON, NOW, OVER]


def test_a_met_fact_of_a_closed_task_is_still_raised() -> None:
    # cancelled Sat 10:00, the (test-built) clock met Tue 11:00: no due_soon / due_now / overdue, but met_late
    clock = receipt(met_at=local(2026, 4, 28, 11))
    closed = local(2026, 4, 25, 10)
    assert kinds(alerts_for(TASK, [clock], CALENDARS, local(2026, 4, 28, 12), closed_at=closed)) == [
        ("receipt", WARN, FRI_17),
        ("receipt", LATE, local(2026, 4, 28, 11)),
    ]


def test_a_deadline_met_by_the_completion_that_closes_the_task() -> None:
    # deadline clock: assigned Fri 04-24 15:00, deadline instant Tue 04-28 17:00 (= 2 h Fri + 8 h Tue = 10 WH);
    # completed (closed) Tue 16:00.
    # warning 5 h: Fri 2 h + Tue 08:00-11:00 -> Tue 11:00; due_soon 9 h: Fri 2 h + Tue 7 h -> 08-12, 13-16 -> 16:00
    done = local(2026, 4, 28, 16)
    clock = Clock("deadline", FRI_15, local(2026, 4, 28, 17), done, 1)
    assert kinds(alerts_for(TASK, [clock], CALENDARS, local(2026, 4, 29), closed_at=done)) == [
        ("deadline", WARN, local(2026, 4, 28, 11)),
        ("deadline", MET, done),  # due_soon (16:00) is suppressed: met by then
    ]


# -- calendars: each clock keeps its own version ----------------------------------------------------------------
def test_each_clock_is_measured_on_the_calendar_version_it_was_started_with() -> None:
    # version 2 (test-built) also takes Tue 04-28 off: 4 WH from Fri 15:00 -> Fri 2 h + Wed 04-29 08-10 -> Wed 10:00
    v2 = replace(
        CAL, version=2, recorded_at=datetime(2026, 4, 1, tzinfo=UTC), days_off=CAL.days_off | {date(2026, 4, 28)}
    )
    history = CalendarHistory((CAL, v2))
    wed_10 = v2.add_working_hours(FRI_15, 4)
    assert wed_10 == local(2026, 4, 29, 10)
    old = Clock("receipt", FRI_15, TUE_10, None, 1)
    new = Clock("receipt", FRI_15, wed_10, None, 2)
    as_of = local(2026, 4, 28, 12)
    # v1: due_soon Tue 09:36, due now Tue 10:00, overdue; v2: only the warning (Fri 17:00) so far
    assert kinds(alerts_for(TASK, [old, new], history, as_of)) == [
        ("receipt", WARN, FRI_17),
        ("receipt", WARN, FRI_17),
        ("receipt", SOON, TUE_0936),
        ("receipt", NOW, TUE_10),
        ("receipt", OVER, TUE_10),
    ]
    # v2's due_soon: Fri 2 h + 1.6 h from Wed 08:00 -> Wed 09:36
    assert next_wakeup(TASK, [new], history, as_of) == local(2026, 4, 29, 9, 36)
    # the two clock instances have distinct keys (the due instant is part of the key)
    assert len(keys(alerts_for(TASK, [old, new], history, as_of))) == 5


# -- policy ------------------------------------------------------------------------------------------------------
def test_a_policy_moves_the_thresholds() -> None:
    # 25 % = 1 h -> Fri 16:00; 75 % = 3 h -> Fri 2 h + Tue 08-09 -> Tue 09:00
    policy = AlertPolicy(warning_share=0.25, due_soon_share=0.75)
    assert kinds(alerts_for(TASK, [receipt()], CALENDARS, local(2026, 4, 28, 9), policy)) == [
        ("receipt", WARN, local(2026, 4, 24, 16)),
        ("receipt", SOON, local(2026, 4, 28, 9)),
    ]


def test_the_default_policy_is_fifty_and_ninety_percent() -> None:
    assert AlertPolicy() == DEFAULT_POLICY == AlertPolicy(0.5, 0.9)


@pytest.mark.parametrize(
    ("warning", "due_soon", "field"),
    [
        (0, 0.9, "warning_share"),
        (1, 0.9, "warning_share"),
        (-0.5, 0.9, "warning_share"),
        (float("nan"), 0.9, "warning_share"),
        (True, 0.9, "warning_share"),
        ("0.5", 0.9, "warning_share"),
        (0.5, 1, "due_soon_share"),
        (0.5, 1.2, "due_soon_share"),
        (0.5, None, "due_soon_share"),
        (0.9, 0.5, "due_soon_share"),  # due_soon must come after warning
        (0.5, 0.5, "due_soon_share"),
    ],
)
def test_policy_validation_names_the_field(warning: object, due_soon: object, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AlertPolicy(warning, due_soon)  # type: ignore[arg-type]
    assert refused.value.field == field


# -- next_wakeup -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("as_of", "wakeup"),
    [
        (local(2026, 4, 24, 9), FRI_17),  # before the clock even started
        (local(2026, 4, 24, 16), FRI_17),
        (FRI_17, TUE_0936),
        (local(2026, 4, 27, 10), TUE_0936),  # Hung Kings day
        (TUE_0936, TUE_10),
        (TUE_10, TUE_10 + TICK),  # due_now holds; overdue from the next instant
        (TUE_10 + TICK, None),
    ],
)
def test_next_wakeup_gives_the_exact_next_threshold(as_of: datetime, wakeup: datetime | None) -> None:
    assert next_wakeup(TASK, [receipt()], CALENDARS, as_of) == wakeup


def test_next_wakeup_is_the_earliest_over_all_clocks_and_ignores_what_was_met() -> None:
    clocks = [receipt(met_at=local(2026, 4, 28, 9)), objection_window()]
    # receipt met Tue 09:00: its due_soon (09:36), due_now and overdue never come.
    # the objection window's warning is Tue 15:00 (see above)
    assert next_wakeup(TASK, clocks, CALENDARS, local(2026, 4, 28, 9)) == local(2026, 4, 28, 15)


def test_a_timer_driven_by_next_wakeup_raises_each_alert_once_at_its_instant() -> None:
    clocks = [receipt(), objection_window()]
    as_of: datetime | None = local(2026, 4, 24, 12)
    seen: set[tuple[str, str, str, str]] = set()
    raised: list[tuple[str, AlertKind, datetime, datetime]] = []
    while as_of is not None:
        for alert in new_alerts(alerts_for(TASK, clocks, CALENDARS, as_of), seen):
            assert alert.at <= as_of
            seen.add(alert.key)
            raised.append((alert.clock, alert.kind, alert.at, as_of))
        as_of = next_wakeup(TASK, clocks, CALENDARS, as_of)
    assert raised == [
        ("receipt", WARN, FRI_17, FRI_17),
        ("receipt", SOON, TUE_0936, TUE_0936),
        ("receipt", NOW, TUE_10, TUE_10),
        ("receipt", OVER, TUE_10, TUE_10 + TICK),
        ("objection", WARN, local(2026, 4, 28, 15), local(2026, 4, 28, 15)),
        ("objection", SOON, local(2026, 4, 29, 9, 12), local(2026, 4, 29, 9, 12)),
    ]


# -- monotonicity ------------------------------------------------------------------------------------------------
MIXED = [
    receipt(),
    # transferred Tue 11:00, a new receipt: + 4 WH = Tue 11-12 (1 h), 13-16 (3 h) -> Tue 16:00; received 15:00
    Clock("receipt", local(2026, 4, 28, 11), local(2026, 4, 28, 16), local(2026, 4, 28, 15), 1),
    objection_window(met_at=local(2026, 4, 29, 9)),
    objection_window(),
    Clock("deadline", FRI_15, local(2026, 5, 5, 17), None, 1),  # deadline Tue 05-05 (after 04-30, 05-01 off)
    # end of WD 3 after Tue 04-28: Wed 29, (Thu 30, Fri 05-01, Sat, Sun off) Mon 05-04, Tue 05-05 -> 17:00
    Clock("follow_up:receipt", TUE_10, local(2026, 5, 5, 17), local(2026, 5, 4, 8, 30), 1),
]
INSTANTS = [
    local(2026, 4, 24, 12) + timedelta(hours=9 * i) for i in range(20)
]  # every 9 h, Fri 04-24 12:00 .. Fri 05-01 15:00


def test_alerts_only_accumulate_as_time_passes() -> None:
    assert len(INSTANTS) == 20
    previous: set[tuple[str, str, str, str]] = set()
    for as_of in INSTANTS:
        now = alerts_for(TASK, MIXED, CALENDARS, as_of)
        assert previous <= keys(now), as_of
        assert [a.at for a in now] == sorted(a.at for a in now)  # chronological
        assert all(a.at <= as_of for a in now)
        previous = keys(now)
    assert previous  # something was raised along the way


def test_alerts_for_is_constant_until_next_wakeup_and_grows_at_it() -> None:
    for as_of in INSTANTS:
        now = keys(alerts_for(TASK, MIXED, CALENDARS, as_of))
        wakeup = next_wakeup(TASK, MIXED, CALENDARS, as_of)
        if wakeup is None:
            continue
        assert wakeup > as_of
        assert keys(alerts_for(TASK, MIXED, CALENDARS, wakeup - TICK)) == now
        assert keys(alerts_for(TASK, MIXED, CALENDARS, wakeup)) > now


def test_alerts_for_is_a_pure_function() -> None:
    as_of = local(2026, 4, 29, 12)
    assert alerts_for(TASK, MIXED, CALENDARS, as_of) == alerts_for(TASK, iter(MIXED), CALENDARS, as_of)
    # the order of the clocks given does not matter
    assert alerts_for(TASK, MIXED, CALENDARS, as_of) == alerts_for(TASK, MIXED[::-1], CALENDARS, as_of)


# -- dedupe ------------------------------------------------------------------------------------------------------
def test_new_alerts_drops_what_was_already_raised() -> None:
    first = alerts_for(TASK, [receipt()], CALENDARS, TUE_0936)  # warning, due_soon
    seen = keys(first)
    later = alerts_for(TASK, [receipt()], CALENDARS, TUE_10 + TICK)  # + due_now, overdue
    fresh = new_alerts(later, seen)
    assert [a.kind for a in fresh] == [NOW, OVER]
    assert new_alerts(later, keys(later)) == []
    # a repeat inside one batch (a replayed event, a rebalance) is raised once
    assert new_alerts([*later, *later], set()) == later
    # the same alert computed on another worker with the instants in another zone is the same key
    ict_copy = [Alert(a.task_id, a.clock, a.kind, a.due_at.astimezone(ICT), a.at.astimezone(ICT)) for a in later]
    assert new_alerts(ict_copy, keys(later)) == []


def test_a_receipt_clock_superseded_by_a_transfer_raises_nothing_after_the_transfer() -> None:
    # Transferred Mon 04-27 09:00 (a day off), before HN's clock fell due at Tue 10:00: only the warning
    # of Fri 17:00 had become true; no due_soon, due_now or overdue follows for HN.
    superseded = replace(receipt(), superseded_at=local(2026, 4, 27, 9))
    alerts = alerts_for(TASK, [superseded], CALENDARS, local(2026, 5, 6, 9))
    assert kinds(alerts) == [("receipt", WARN, FRI_17)]
    assert next_wakeup(TASK, [superseded], CALENDARS, local(2026, 4, 27, 10)) is None
