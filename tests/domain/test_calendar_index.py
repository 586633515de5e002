"""The calendar's year index (prefix sums of working microseconds) against a plain day-by-day walk.

``Calendar.add_working_time`` / ``working_time_between`` / ``next_working_moment`` answer from a per-year
index; the reference below is the walk they replaced (every day, every period, timedelta arithmetic).
Both must agree to the microsecond on every instant tried: random starts over three years (including
nights, weekends, Tet, make-up Saturdays and year ends), random amounts from 1 µs to 300 working days,
and a calendar with other hours, weekdays and time zone."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

import pytest

from domain.calendar import Calendar, WorkingHours, default_calendar
from domain.errors import CalendarRangeError

RECORDED = datetime(2025, 1, 1, tzinfo=UTC)


def _periods(cal: Calendar, d: date) -> list[tuple[datetime, datetime]]:
    zone = cal.hours.zone
    return [
        (datetime.combine(d, s, zone).astimezone(UTC), datetime.combine(d, e, zone).astimezone(UTC))
        for s, e in cal.hours.periods
    ]


def walk_intervals(cal: Calendar, t: datetime):  # type: ignore[no-untyped-def]
    day = t.astimezone(cal.hours.zone).date()
    while True:
        if cal.is_working_day(day):
            yield from ((max(s, t), e) for s, e in _periods(cal, day) if e > t)
        day += timedelta(days=1)


def walk_add(cal: Calendar, t: datetime, amount: timedelta) -> datetime:
    start, remaining = t.astimezone(UTC), amount
    if not remaining:
        return next(walk_intervals(cal, start))[0]
    for s, e in walk_intervals(cal, start):
        if remaining <= e - s:
            return s + remaining
        remaining -= e - s
    raise AssertionError


def walk_between(cal: Calendar, a: datetime, b: datetime) -> timedelta:
    start, end = a.astimezone(UTC), b.astimezone(UTC)
    total = timedelta(0)
    if end <= start:
        return total
    day, last = cal.local(start).date(), cal.local(end).date()
    while day <= last:
        if cal.is_working_day(day):
            for s, e in _periods(cal, day):
                total += max(min(e, end) - max(s, start), timedelta(0))
        day += timedelta(days=1)
    return total


def other_hours() -> Calendar:
    """Three periods, a six-day week, another zone, a few days off and one make-up Sunday."""
    hours = WorkingHours(
        periods=((time(7, 30), time(11, 15)), (time(12), time(15)), (time(15, 30), time(18, 5))),
        weekdays=frozenset({0, 1, 2, 3, 4, 5}),
        tz="Europe/Paris",  # with daylight saving time: the index must follow the shifting UTC offsets
    )
    days_off = {date(2025, 12, 25), date(2026, 1, 1), date(2026, 3, 30), date(2026, 10, 26)}
    return Calendar(1, RECORDED, hours, frozenset(days_off), frozenset({date(2026, 3, 29)}), 2024, 2028)


CALENDARS = {"vietnam": lambda: default_calendar(RECORDED), "paris-6-days": other_hours}


def random_instant(rnd: random.Random) -> datetime:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    return base + timedelta(seconds=rnd.randrange(3 * 365 * 86400), microseconds=rnd.randrange(1_000_000))


def random_amount(rnd: random.Random) -> timedelta:
    kind = rnd.random()
    if kind < 0.1:
        return timedelta(0)
    if kind < 0.2:
        return timedelta(microseconds=rnd.randrange(1, 1000))
    if kind < 0.6:
        return timedelta(minutes=rnd.randrange(1, 60 * 40))  # up to 5 working days
    return timedelta(seconds=rnd.randrange(1, 300 * 8 * 3600))  # up to 300 working days


@pytest.mark.parametrize("name", sorted(CALENDARS))
def test_the_index_adds_working_time_exactly_as_a_day_by_day_walk(name: str) -> None:
    cal, rnd = CALENDARS[name](), random.Random(8)
    for _ in range(1500):
        t, amount = random_instant(rnd), random_amount(rnd)
        assert cal.add_working_time(t, amount) == walk_add(cal, t, amount), (t, amount)


@pytest.mark.parametrize("name", sorted(CALENDARS))
def test_the_index_measures_working_time_exactly_as_a_day_by_day_walk(name: str) -> None:
    cal, rnd = CALENDARS[name](), random.Random(80)
    for _ in range(1500):
        a = random_instant(rnd)
        b = a + timedelta(seconds=rnd.randrange(-86400, 400 * 86400)) if rnd.random() < 0.9 else random_instant(rnd)
        assert cal.working_time_between(a, b) == walk_between(cal, a, b), (a, b)
        assert cal.next_working_moment(a) == walk_add(cal, a, timedelta(0)), a


def test_period_ends_and_year_ends_are_exact() -> None:
    cal = default_calendar(RECORDED)
    wednesday_end = datetime(2025, 12, 31, 10, 0, tzinfo=UTC)  # 17:00 local, the last working moment of 2025
    # 13:00 local + 4 h of work ends exactly at the period end, not at the next period start
    assert cal.add_working_time(datetime(2025, 12, 31, 6, 0, tzinfo=UTC), timedelta(hours=4)) == wednesday_end
    # one more microsecond carries over 1 January (a day off) to Friday 2 January 2026, 08:00 local + 1 µs
    assert cal.add_working_time(datetime(2025, 12, 31, 6, 0, tzinfo=UTC), timedelta(hours=4, microseconds=1)) == (
        datetime(2026, 1, 2, 1, 0, 0, 1, tzinfo=UTC)
    )
    # 16:00-17:00 local on 31 December, then 08:00-09:00 local on 2 January
    start, end = datetime(2025, 12, 31, 9, 0, tzinfo=UTC), datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
    assert cal.working_time_between(start, end) == timedelta(hours=2)


def test_a_walk_past_the_covered_years_is_a_range_error() -> None:
    cal = default_calendar(RECORDED)
    with pytest.raises(CalendarRangeError):
        cal.add_working_time(datetime(2045, 12, 1, 2, 0, tzinfo=UTC), timedelta(hours=8 * 40))
    with pytest.raises(CalendarRangeError):
        cal.working_time_between(datetime(2045, 12, 1, tzinfo=UTC), datetime(2046, 1, 5, tzinfo=UTC))
