"""Working-time calendar: every expected instant below is worked out by hand in the comments."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, UUIDAsHex

from domain.calendar import (
    CALENDAR_ID,
    TZ_NAME,
    Calendar,
    CalendarHistory,
    WorkingCalendar,
    WorkingHours,
    default_calendar,
    vietnam_base,
)
from domain.errors import CalendarRangeError, InvariantViolation, NotFound, ValidationError

ICT = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh has been UTC+07:00 without DST since 1975
CAL = default_calendar(recorded_at=datetime(2026, 1, 1, tzinfo=UTC))
ACTOR = {"role": "central_office", "agency": "VPTW", "user": "an"}
V1_AT = datetime(2026, 1, 1, tzinfo=UTC)
V2_AT = datetime(2026, 5, 15, 3, 0, tzinfo=UTC)  # 10:00 local


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ICT)


def established() -> WorkingCalendar:
    days_off, working_days = vietnam_base(2015, 2045)
    return WorkingCalendar.establish(
        hours=WorkingHours(),
        days_off=days_off,
        working_days=working_days,
        first_year=2015,
        last_year=2045,
        source="holidays 0.109",
        actor=ACTOR,
        recorded_at=V1_AT,
    )


def with_june_first_off() -> WorkingCalendar:
    agg = established()
    agg.change(
        add_days_off=[date(2026, 6, 1)],
        reason="Government notice: Monday 1 June 2026 is a day off",
        actor=ACTOR,
        recorded_at=V2_AT,
    )
    return agg


# --- adding working hours (SPEC section 3) ----------------------------------------------------


def test_receipt_of_a_task_assigned_friday_afternoon_before_hung_kings_day_is_due_tuesday_at_ten() -> None:
    # Fri 24 Apr 15:00-17:00 = 2 h; Sat 25, Sun 26 weekend; Mon 27 = Hung Kings (Sun 26) observed;
    # Tue 28 08:00-10:00 = the other 2 h.
    due = CAL.add_working_hours(local(2026, 4, 24, 15), 4)
    assert due == local(2026, 4, 28, 10)


def test_an_instant_given_in_utc_gives_the_same_due_instant_and_it_comes_back_in_utc() -> None:
    # 2026-04-24T08:00Z is 15:00 local: same case as above; Tue 10:00 local is 03:00Z.
    due = CAL.add_working_hours(datetime(2026, 4, 24, 8, 0, tzinfo=UTC), 4)
    assert due == datetime(2026, 4, 28, 3, 0, tzinfo=UTC)
    assert due.utcoffset() == timedelta(0)
    assert due.isoformat() == "2026-04-28T03:00:00+00:00"
    assert CAL.local(due).isoformat() == "2026-04-28T10:00:00+07:00"


def test_a_start_on_national_day_counts_from_the_next_working_morning() -> None:
    # Tue 1 and Wed 2 Sep 2026 are National Day; Thu 3 Sep 08:00 + 4 h = 12:00 (a period end).
    assert CAL.add_working_hours(local(2026, 9, 1, 10), 4) == local(2026, 9, 3, 12)


def test_working_time_skips_the_lunch_break() -> None:
    # Wed 11 Mar 2026: 11:00-12:00 = 1 h, lunch, 13:00-14:00 = 1 h.
    assert CAL.add_working_hours(local(2026, 3, 11, 11), 2) == local(2026, 3, 11, 14)


def test_a_start_in_the_evening_counts_from_the_next_working_morning() -> None:
    # Wed 11 Mar 19:30 -> Thu 12 Mar 08:00, + 1 h = 09:00.
    assert CAL.add_working_hours(local(2026, 3, 11, 19, 30), 1) == local(2026, 3, 12, 9)


def test_lunar_new_year_2026_takes_monday_16_to_friday_20_february_off() -> None:
    # Fri 13 Feb 16:00-17:00 = 1 h; 14-15 weekend; 16-20 Tet; 21-22 weekend; Mon 23 08:00 + 3 h = 11:00.
    assert CAL.add_working_hours(local(2026, 2, 13, 16), 4) == local(2026, 2, 23, 11)


def test_the_make_up_saturday_22_august_2026_is_worked() -> None:
    # Fri 21 Aug 16:00-17:00 = 1 h; Sat 22 Aug is a make-up working day: 08:00 + 3 h = 11:00.
    assert CAL.is_working_day(date(2026, 8, 22))
    assert CAL.add_working_hours(local(2026, 8, 21, 16), 4) == local(2026, 8, 22, 11)


def test_monday_31_august_2026_is_the_day_off_given_for_the_make_up_saturday() -> None:
    # Fri 28 Aug 16:00-17:00 = 1 h; 29-30 weekend; Mon 31 substituted day off; Tue 1, Wed 2 Sep
    # National Day; Thu 3 Sep 08:00 + 1 h = 09:00.
    assert not CAL.is_working_day(date(2026, 8, 31))
    assert CAL.add_working_hours(local(2026, 8, 28, 16), 2) == local(2026, 9, 3, 9)


def test_a_sum_that_ends_exactly_at_a_period_end_returns_that_end() -> None:
    # Fri 13 Mar 13:00 + 4 h = 17:00 Friday, not Monday 08:00; 08:00 + 4 h = 12:00, not 13:00.
    assert CAL.add_working_hours(local(2026, 3, 13, 13), 4) == local(2026, 3, 13, 17)
    assert CAL.add_working_hours(local(2026, 3, 11, 8), 4) == local(2026, 3, 11, 12)


def test_adding_nothing_gives_the_next_working_moment() -> None:
    # Sat 14 Mar 10:00 -> Mon 16 Mar 08:00.
    assert CAL.add_working_time(local(2026, 3, 14, 10), timedelta(0)) == local(2026, 3, 16, 8)


def test_a_period_start_is_inside_working_time_and_a_period_end_is_outside() -> None:
    assert CAL.next_working_moment(local(2026, 3, 11, 8)) == local(2026, 3, 11, 8)
    assert CAL.next_working_moment(local(2026, 3, 11, 10, 15)) == local(2026, 3, 11, 10, 15)
    assert CAL.next_working_moment(local(2026, 3, 11, 12)) == local(2026, 3, 11, 13)
    # Fri 13 Mar 17:00 -> Mon 16 Mar 08:00.
    assert CAL.next_working_moment(local(2026, 3, 13, 17)) == local(2026, 3, 16, 8)


def test_one_working_day_is_eight_working_hours() -> None:
    # Fri 24 Apr 15:00-17:00 = 2 h; Mon 27 off; Tue 28 08:00-12:00 = 4 h, 13:00-15:00 = 2 h.
    assert CAL.add_working_days(local(2026, 4, 24, 15), 1) == local(2026, 4, 28, 15)


def test_twenty_working_days_from_monday_20_april_2026_end_on_wednesday_20_may() -> None:
    # Working days: 20-24 Apr (5), [27 off] 28-29 Apr (7), [30 Apr, 1 May off] 4-8 May (12),
    # 11-15 May (17), 18-20 May (20): 160 h from Mon 08:00 end at 17:00 on the 20th.
    assert CAL.add_working_days(local(2026, 4, 20, 8), 20) == local(2026, 5, 20, 17)


def test_working_time_added_then_measured_comes_back_the_same() -> None:
    starts = [local(2026, 4, 24, 15), local(2026, 2, 13, 16), local(2026, 8, 21, 16, 30)]
    for start in starts:
        for amount in (timedelta(minutes=30), timedelta(hours=4), timedelta(hours=37)):
            due = CAL.add_working_time(start, amount)
            assert CAL.working_time_between(start, due) == amount


def test_custom_working_hours_are_respected() -> None:
    hours = WorkingHours(periods=((time(7, 30), time(11, 30)), (time(13, 30), time(16, 30))))
    cal = Calendar(1, V1_AT, hours, frozenset(), frozenset(), 2026, 2026)
    # 4 h + 3 h = 7 h a day; Mon 16 Mar 07:30 + 1 working day = 16:30 the same day.
    assert hours.day_length == timedelta(hours=7)
    assert cal.add_working_days(local(2026, 3, 16, 7, 30), 1) == local(2026, 3, 16, 16, 30)


# --- working time between two instants --------------------------------------------------------


def test_working_time_between_counts_neither_the_weekend_nor_lunch() -> None:
    # Fri 13 Mar 11:30-12:00 (0:30) + 13:00-17:00 (4:00); Mon 16 Mar 08:00-12:00 (4:00) +
    # 13:00-14:15 (1:15) = 9:45.
    elapsed = CAL.working_time_between(local(2026, 3, 13, 11, 30), local(2026, 3, 16, 14, 15))
    assert elapsed == timedelta(hours=9, minutes=45)


def test_working_time_between_skips_the_observed_hung_kings_day() -> None:
    # The SPEC example read backwards: Fri 15:00-17:00 + Tue 08:00-10:00 = 4 h.
    assert CAL.working_time_between(local(2026, 4, 24, 15), local(2026, 4, 28, 10)) == timedelta(hours=4)


def test_working_time_between_is_zero_inside_lunch_and_for_reversed_bounds() -> None:
    assert CAL.working_time_between(local(2026, 3, 11, 12, 10), local(2026, 3, 11, 12, 50)) == (timedelta(0))
    assert CAL.working_time_between(local(2026, 3, 12, 9), local(2026, 3, 11, 9)) == timedelta(0)


# --- working days ------------------------------------------------------------------------------


def test_the_third_working_day_after_thursday_23_april_2026_ends_wednesday_29_april_at_17() -> None:
    # Fri 24 (1); 25-26 weekend; Mon 27 off; Tue 28 (2); Wed 29 (3) -> 17:00 local = 10:00Z.
    end = CAL.end_of_nth_working_day_after(date(2026, 4, 23), 3)
    assert end == datetime(2026, 4, 29, 10, 0, tzinfo=UTC)
    assert CAL.local(end).isoformat() == "2026-04-29T17:00:00+07:00"


def test_reunification_and_labour_day_push_the_next_working_day_after_29_april_to_4_may() -> None:
    # Thu 30 Apr and Fri 1 May are holidays, 2-3 May a weekend: Mon 4 May (1), Tue 5 (2), Wed 6 (3).
    assert CAL.nth_working_day_after(date(2026, 4, 29), 1) == date(2026, 5, 4)
    assert CAL.nth_working_day_after(date(2026, 4, 29), 3) == date(2026, 5, 6)


def test_the_end_of_a_working_day_is_17_local_even_on_a_holiday() -> None:
    assert CAL.end_of_working_day(date(2026, 4, 30)) == datetime(2026, 4, 30, 10, 0, tzinfo=UTC)


def test_the_last_working_day_of_august_2026_is_friday_28() -> None:
    # Mon 31 Aug is off, 29-30 a weekend.
    assert CAL.last_working_day_between(date(2026, 8, 1), date(2026, 8, 31)) == date(2026, 8, 28)
    # The make-up Saturday counts; Tet 2026 (Sat 14 - Sun 22 Feb) has no working day at all.
    assert CAL.last_working_day_between(date(2026, 8, 22), date(2026, 8, 23)) == date(2026, 8, 22)
    assert CAL.last_working_day_between(date(2026, 2, 14), date(2026, 2, 22)) is None


def test_the_nth_working_day_needs_n_of_at_least_one() -> None:
    with pytest.raises(ValidationError) as refused:
        CAL.nth_working_day_after(date(2026, 4, 23), 0)
    assert refused.value.field == "n"


# --- refusals of the clock --------------------------------------------------------------------


def test_a_naive_date_time_is_refused() -> None:
    naive = datetime(2026, 4, 24, 15, 0)
    for call in (
        lambda: CAL.add_working_hours(naive, 4),
        lambda: CAL.working_time_between(naive, local(2026, 4, 28, 10)),
        lambda: CAL.next_working_moment(naive),
        lambda: CAL.local(naive),
    ):
        with pytest.raises(ValidationError) as refused:
            call()
        assert (refused.value.field, refused.value.rule) == (
            "instant",
            "must carry a time zone offset",
        )


def test_a_walk_beyond_the_covered_years_is_refused_with_advice_to_extend_the_calendar() -> None:
    days_off, working_days = vietnam_base(2026, 2026)
    cal = Calendar(1, V1_AT, WorkingHours(), days_off, working_days, 2026, 2026)
    # Thu 31 Dec 2026 16:00-17:00 = 1 h; the other 3 h would need 1 Jan 2027.
    with pytest.raises(CalendarRangeError) as refused:
        cal.add_working_hours(local(2026, 12, 31, 16), 4)
    assert refused.value.field == "calendar"
    assert refused.value.rule == "covers 2026-2026; 2027-01-01 is outside; extend the calendar"
    with pytest.raises(CalendarRangeError):
        cal.is_working_day(date(2025, 12, 31))


def test_measuring_up_to_the_last_covered_evening_does_not_look_past_it() -> None:
    days_off, working_days = vietnam_base(2026, 2026)
    cal = Calendar(1, V1_AT, WorkingHours(), days_off, working_days, 2026, 2026)
    # Thu 31 Dec 2026 16:00-17:00 = 1 h; 17:00-20:00 is outside working hours.
    assert cal.working_time_between(local(2026, 12, 31, 16), local(2026, 12, 31, 20)) == (timedelta(hours=1))


def test_a_negative_amount_of_working_time_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        CAL.add_working_time(local(2026, 3, 11, 9), timedelta(hours=-1))
    assert (refused.value.field, refused.value.rule) == ("amount", "must not be negative")


# --- base data from the holidays package ------------------------------------------------------


def test_the_vietnam_base_for_2026_holds_the_days_off_and_the_make_up_saturday() -> None:
    days_off, working_days = vietnam_base(2026, 2026)
    assert days_off == {
        date(2026, 1, 1),  # New Year
        date(2026, 2, 16),  # Tet: Lunar New Year's Eve ...
        date(2026, 2, 17),
        date(2026, 2, 18),
        date(2026, 2, 19),
        date(2026, 2, 20),  # ... to the fourth day
        date(2026, 4, 26),  # Hung Kings (a Sunday)
        date(2026, 4, 27),  # Hung Kings observed
        date(2026, 4, 30),  # Reunification
        date(2026, 5, 1),  # Labour Day
        date(2026, 8, 31),  # substituted for the make-up Saturday 22 Aug
        date(2026, 9, 1),  # National Day (2 days)
        date(2026, 9, 2),
        date(2026, 11, 24),  # Vietnam Cultural Day
    }
    assert working_days == {date(2026, 8, 22)}


def test_make_up_saturdays_of_other_years_do_not_leak_into_the_range() -> None:
    # holidays.VN(years=2015).weekend_workdays also holds 2014-12-27 and 2019-01-05.
    assert vietnam_base(2015, 2015)[1] == {date(2015, 2, 14), date(2015, 4, 25)}


def test_no_date_is_both_a_day_off_and_a_make_up_working_day_from_2015_to_2045() -> None:
    days_off, working_days = vietnam_base(2015, 2045)
    assert not days_off & working_days
    assert {d.weekday() for d in working_days} == {5}  # all Saturdays


def test_a_calendar_with_a_date_both_off_and_worked_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        both = frozenset({date(2026, 8, 22)})
        Calendar(1, V1_AT, WorkingHours(), both, both, 2026, 2026)
    assert refused.value.field == "calendar"


# --- working hours ----------------------------------------------------------------------------


def test_working_hours_travel_as_plain_json_and_come_back_equal() -> None:
    hours = WorkingHours()
    assert hours.to_dict() == {
        "periods": [["08:00", "12:00"], ["13:00", "17:00"]],
        "weekdays": [0, 1, 2, 3, 4],
        "tz": TZ_NAME,
    }
    assert WorkingHours.from_dict(json.loads(json.dumps(hours.to_dict()))) == hours


@pytest.mark.parametrize(
    "periods",
    [
        ((time(13), time(17)), (time(8), time(12))),  # not sorted
        ((time(8), time(12)), (time(11), time(17))),  # overlapping
        ((time(12), time(8)),),  # ends before it starts
        (),  # no period at all
    ],
)
def test_malformed_working_periods_are_refused(periods: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        WorkingHours(periods=periods)
    assert refused.value.field == "calendar.hours"


def test_an_unknown_time_zone_and_malformed_hours_are_refused() -> None:
    with pytest.raises(ValidationError):
        WorkingHours(tz="Asia/Saigon_City")
    with pytest.raises(ValidationError):
        WorkingHours.from_dict({"periods": [["8 am", "noon"]]})
    with pytest.raises(ValidationError):
        WorkingHours(weekdays=frozenset({7}))


# --- versions: the calendar as an event-sourced aggregate -------------------------------------


def test_a_day_off_added_in_version_2_leaves_version_1_unchanged() -> None:
    agg = with_june_first_off()
    history = agg.history
    assert [c.version for c in history.versions] == [1, 2]
    assert history.get(1).is_working_day(date(2026, 6, 1))  # a Monday
    assert not history.get(2).is_working_day(date(2026, 6, 1))
    assert history.current is history.get(2)
    events = agg.collect_events()
    assert [type(e).__name__ for e in events] == ["Established", "Changed"]
    assert [e.originator_version for e in events] == [1, 2]
    assert events[1].timestamp == V2_AT
    assert events[1].days_off_added == ["2026-06-01"]  # type: ignore[attr-defined]


def test_a_due_instant_started_under_version_1_is_not_moved_by_version_2() -> None:
    history = with_june_first_off().history
    # Fri 29 May 15:00-17:00 = 2 h; then v1: Mon 1 Jun 08:00-10:00; v2: 1 Jun off -> Tue 2 Jun 10:00.
    assert history.get(1).add_working_hours(local(2026, 5, 29, 15), 4) == local(2026, 6, 1, 10)
    assert history.get(2).add_working_hours(local(2026, 5, 29, 15), 4) == local(2026, 6, 2, 10)


def test_the_version_in_force_is_picked_by_its_recorded_time() -> None:
    history = with_june_first_off().history
    assert history.in_force_at(datetime(2026, 5, 15, 2, 59, tzinfo=UTC)).version == 1
    assert history.in_force_at(local(2026, 5, 15, 10)).version == 2  # == V2_AT, inclusive
    assert history.in_force_at(datetime(2030, 1, 1, tzinfo=UTC)).version == 2
    assert history.in_force_at(datetime(2020, 1, 1, tzinfo=UTC)).version == 1  # before the first


def test_an_unknown_version_is_not_found() -> None:
    with pytest.raises(NotFound) as refused:
        with_june_first_off().history.get(3)
    assert refused.value.field == "calendar_version"


def test_the_calendar_rebuilt_from_its_stored_events_has_the_same_history() -> None:
    agg = with_june_first_off()
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    mapper: Mapper[Any] = Mapper(transcoder=transcoder)
    stored = [mapper.to_stored_event(e) for e in agg.collect_events()]
    rebuilt: Any = None
    for event in (mapper.to_domain_event(s) for s in stored):
        rebuilt = event.mutate(rebuilt)  # type: ignore[attr-defined]
    assert rebuilt.id == CALENDAR_ID
    assert rebuilt.history == agg.history
    assert rebuilt == agg


def test_the_change_event_holds_sorted_iso_dates_only() -> None:
    agg = established()
    agg.change(
        add_working_days=["2026-06-13", date(2026, 6, 6)],
        reason="Two make-up Saturdays",
        actor=ACTOR,
        recorded_at=V2_AT,
    )
    changed = agg.collect_events()[-1]
    state = {k: v for k, v in vars(changed).items() if k not in ("originator_id", "timestamp")}
    assert json.loads(json.dumps(state))["working_days_added"] == ["2026-06-06", "2026-06-13"]
    assert agg.history.current.is_working_day(date(2026, 6, 13))


def test_a_make_up_saturday_can_be_withdrawn_then_given_as_a_day_off() -> None:
    agg = established()
    agg.change(remove_working_days=[date(2026, 8, 22)], reason="Notice A", actor=ACTOR, recorded_at=V2_AT)
    agg.change(add_days_off=[date(2026, 8, 24)], reason="Notice B", actor=ACTOR, recorded_at=V2_AT)
    current = agg.history.current
    assert (current.version, current.is_working_day(date(2026, 8, 22))) == (3, False)
    assert not current.is_working_day(date(2026, 8, 24))


CHANGE_REFUSALS = [
    # (change arguments, error class, field, rule)
    ({}, ValidationError, "change", "must add or remove at least one date"),
    (
        {"add_days_off": [date(2026, 6, 1)], "remove_days_off": [date(2026, 6, 1)]},
        ValidationError,
        "remove_days_off",
        "2026-06-01 is also in add_days_off; put each date in one list only",
    ),
    (
        {"add_days_off": [date(2026, 4, 30)]},
        InvariantViolation,
        "add_days_off",
        "2026-04-30 is already a day off",
    ),
    (
        {"add_days_off": [date(2026, 6, 7)]},
        InvariantViolation,
        "add_days_off",
        "2026-06-07 is already a day off",
    ),
    (
        {"add_days_off": [date(2026, 8, 22)]},
        InvariantViolation,
        "add_days_off",
        "2026-08-22 is a make-up working day; remove it from working days first",
    ),
    (
        {"remove_days_off": [date(2026, 6, 1)]},
        InvariantViolation,
        "remove_days_off",
        "2026-06-01 is not a day off",
    ),
    (
        {"add_working_days": [date(2026, 6, 1)]},
        InvariantViolation,
        "add_working_days",
        "2026-06-01 is already a working day",
    ),
    (
        {"add_working_days": [date(2026, 9, 2)]},
        InvariantViolation,
        "add_working_days",
        "2026-09-02 is a day off; remove it from days off first",
    ),
    (
        {"remove_working_days": [date(2026, 6, 6)]},
        InvariantViolation,
        "remove_working_days",
        "2026-06-06 is not a make-up working day",
    ),
    (
        {"add_days_off": [date(2046, 1, 1)]},
        ValidationError,
        "add_days_off",
        "covers 2015-2045; 2046-01-01 is outside; extend the calendar",
    ),
    (
        {"add_days_off": ["1 June"]},
        ValidationError,
        "add_days_off",
        "'1 June' is not a date in the form YYYY-MM-DD",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "field", "rule"), CHANGE_REFUSALS)
def test_a_calendar_change_that_breaks_a_rule_is_refused_and_records_nothing(
    kwargs: dict[str, Any], error: type[Exception], field: str, rule: str
) -> None:
    agg = established()
    with pytest.raises(error) as refused:
        agg.change(**kwargs, reason="Notice", actor=ACTOR, recorded_at=V2_AT)
    assert (refused.value.field, refused.value.rule) == (field, rule)  # type: ignore[attr-defined]
    assert (agg.version, len(agg.collect_events())) == (1, 1)


def test_a_calendar_change_without_a_reason_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        established().change(add_days_off=[date(2026, 6, 1)], reason="  ", actor=ACTOR, recorded_at=V2_AT)
    assert refused.value.field == "reason"


def test_a_calendar_change_recorded_before_the_current_version_is_refused() -> None:
    with pytest.raises(InvariantViolation) as refused:
        with_june_first_off().change(add_days_off=[date(2026, 6, 2)], reason="Notice", actor=ACTOR, recorded_at=V1_AT)
    assert refused.value.field == "recorded_at"


def test_a_calendar_change_with_a_naive_recorded_time_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        established().change(
            add_days_off=[date(2026, 6, 1)],
            reason="Notice",
            actor=ACTOR,
            recorded_at=datetime(2026, 5, 15, 10, 0),
        )
    assert (refused.value.field, refused.value.rule) == (
        "recorded_at",
        "must carry a time zone offset",
    )


def test_a_history_must_number_its_versions_from_one() -> None:
    with pytest.raises(ValidationError):
        CalendarHistory((default_calendar(V1_AT), default_calendar(V2_AT)))
