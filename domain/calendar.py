"""Working-time calendar (SPEC section 3): Viet Nam days off, working hours, versioned as an aggregate."""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate
from holidays import country_holidays

from domain.actors import Actor
from domain.errors import CalendarRangeError, InvariantViolation, NotFound, ValidationError
from domain.events import Chained

TZ_NAME = "Asia/Ho_Chi_Minh"
CALENDAR_ID: uuid.UUID = uuid.uuid5(uuid.NAMESPACE_URL, "taskledger:working-calendar")

_HOURS = "calendar.hours"
_HOURS_SHAPE = (
    'must look like {"periods": [["08:00", "12:00"], ["13:00", "17:00"]], '
    '"weekdays": [0, 1, 2, 3, 4], "tz": "Asia/Ho_Chi_Minh"}'
)
Interval = tuple[datetime, datetime]


# --- small checks and conversions -------------------------------------------------------------


def _utc(t: datetime, field: str = "instant") -> datetime:
    """An aware instant converted to UTC; a naive one is refused (its meaning would be a guess)."""
    if type(t) is datetime and t.tzinfo is UTC:
        return t  # already UTC (the common case)
    if not isinstance(t, datetime):
        raise ValidationError(field, "must be a date-time with a time zone offset")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValidationError(field, "must carry a time zone offset")
    return t.astimezone(UTC)


def _check_date(d: date, field: str = "date") -> date:
    if not isinstance(d, date) or isinstance(d, datetime):
        raise ValidationError(field, "must be a calendar date (YYYY-MM-DD), not a date-time")
    return d


def _parse_date(value: date | str, field: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValidationError(field, f"{value!r} is not a date in the form YYYY-MM-DD") from None
    return _check_date(value, field)


def _dates(values: Iterable[date | str], field: str) -> frozenset[date]:
    if isinstance(values, str | date):
        raise ValidationError(field, "must be a list of dates, not a single value")
    try:
        return frozenset(_parse_date(v, field) for v in values)
    except TypeError:
        raise ValidationError(field, "must be a list of dates") from None


def _iso_list(days: Iterable[date]) -> list[str]:
    return [d.isoformat() for d in sorted(days)]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_years(first_year: int, last_year: int) -> None:
    if not (_is_int(first_year) and _is_int(last_year)):
        raise ValidationError("calendar", "first_year and last_year must be whole years")
    if first_year > last_year:
        raise ValidationError("calendar", f"first_year {first_year} is after last_year {last_year}")


def _check_amount(amount: timedelta, field: str) -> timedelta:
    if not isinstance(amount, timedelta):
        raise ValidationError(field, "must be a duration")
    if amount < timedelta(0):
        raise ValidationError(field, "must not be negative")
    return amount


def _actor_dict(actor: Actor | Mapping[str, str]) -> dict[str, str]:
    if isinstance(actor, Actor):
        return actor.to_dict()
    try:
        return Actor.from_dict(dict(actor)).to_dict()
    except (KeyError, TypeError, ValueError):
        raise ValidationError("actor", 'must be {"role": ..., "agency": ..., "user": ...}') from None


# --- working hours ----------------------------------------------------------------------------


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(_HOURS, f"unknown time zone {name!r}; use an IANA name") from None


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _fmt_time(t: time) -> str:
    return t.isoformat(timespec="minutes") if not (t.second or t.microsecond) else t.isoformat()


def _check_period(period: Any) -> tuple[time, time]:
    try:
        start, end = period
    except (TypeError, ValueError):
        raise ValidationError(_HOURS, "each period must be a (start, end) pair of times") from None
    if not all(isinstance(t, time) and t.tzinfo is None for t in (start, end)):
        raise ValidationError(_HOURS, "period bounds must be local times without a time zone")
    if start >= end:
        raise ValidationError(_HOURS, f"period {_fmt_time(start)}-{_fmt_time(end)} must start before it ends")
    return start, end


def _check_periods(periods: Iterable[Any]) -> tuple[tuple[time, time], ...]:
    checked = tuple(_check_period(p) for p in periods)
    if not checked:
        raise ValidationError(_HOURS, "needs at least one working period")
    for (_, end), (start, _) in pairwise(checked):
        if start < end:
            raise ValidationError(_HOURS, "periods must be sorted by time and must not overlap")
    return checked


def _check_weekdays(weekdays: Iterable[int]) -> frozenset[int]:
    checked = frozenset(weekdays)
    if not checked or not all(_is_int(w) and 0 <= w <= 6 for w in checked):
        raise ValidationError(_HOURS, "weekdays must be a non-empty set of 0 (Monday) to 6 (Sunday)")
    return checked


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Daily working periods (local wall-clock time, start inclusive, end exclusive) and working weekdays."""

    periods: tuple[tuple[time, time], ...] = ((time(8), time(12)), (time(13), time(17)))
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday=0
    tz: str = TZ_NAME

    def __post_init__(self) -> None:
        object.__setattr__(self, "periods", _check_periods(self.periods))
        object.__setattr__(self, "weekdays", _check_weekdays(self.weekdays))
        _zone(self.tz)

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.tz)

    @property
    def day_length(self) -> timedelta:
        """Working time in one full working day (8 h by default)."""
        return sum((_since_midnight(e) - _since_midnight(s) for s, e in self.periods), timedelta())

    def to_dict(self) -> dict[str, Any]:
        return {
            "periods": [[_fmt_time(s), _fmt_time(e)] for s, e in self.periods],
            "weekdays": sorted(self.weekdays),
            "tz": self.tz,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WorkingHours:
        """Missing keys take the defaults; anything malformed is refused."""
        try:
            kwargs: dict[str, Any] = {}
            if "periods" in d:
                kwargs["periods"] = tuple(_parse_period(p) for p in d["periods"])
            if "weekdays" in d:
                kwargs["weekdays"] = frozenset(d["weekdays"])
            if "tz" in d:
                kwargs["tz"] = d["tz"]
        except (TypeError, ValueError, AttributeError):
            raise ValidationError(_HOURS, _HOURS_SHAPE) from None
        return cls(**kwargs)


def _parse_period(pair: Any) -> tuple[time, time]:
    start, end = pair
    return time.fromisoformat(start), time.fromisoformat(end)


# --- base data from the holidays package ------------------------------------------------------


@lru_cache(maxsize=16)
def vietnam_base(first_year: int, last_year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(days_off, working_days) from holidays.VN(years=...): days_off = every holiday date (incl. observed
    and substituted days off, e.g. 2026-04-27 and 2026-08-31); working_days = the package's
    `weekend_workdays` (make-up working Saturdays, e.g. 2026-08-22) within the range."""
    _check_years(first_year, last_year)
    vn = country_holidays("VN", years=range(first_year, last_year + 1))

    def inside(d: date) -> bool:
        return first_year <= d.year <= last_year

    # weekend_workdays leaks dates of other years (2014-12-27, 2019-01-05 for years=2015): filter.
    return (
        frozenset(d for d in vn if inside(d)),
        frozenset(d for d in vn.weekend_workdays if inside(d)),
    )


# --- the working-time index of one year ---------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _us(t: datetime) -> int:
    """A UTC instant as whole microseconds since 1970 (exact: timedelta arithmetic is integral)."""
    return (t - _EPOCH) // _MICRO


def _instant(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class _Year:
    """The working periods of one calendar year as integer microseconds (UTC), with prefix sums:
    ``before[i]`` is the working time of the year before its day ``i`` (``before[-1]`` the year's total)."""

    first: date
    periods: tuple[tuple[tuple[int, int], ...], ...]  # per day of the year, () if not worked
    before: tuple[int, ...]  # len(periods) + 1

    @property
    def total(self) -> int:
        return self.before[-1]

    def day_index(self, d: date) -> int:
        return d.toordinal() - self.first.toordinal()

    def elapsed(self, i: int, t: int) -> int:
        """Working time of the year before instant ``t`` (microseconds), ``t`` being on the year's day ``i``."""
        done = self.before[i]
        for s, e in self.periods[i]:
            if t <= s:
                break
            done += min(e, t) - s
        return done

    def instant_at(self, amount: int) -> int:
        """The earliest instant at which ``amount`` (> 0, <= total) of the year's working time has elapsed:
        a result exactly on a period end is that end."""
        i = bisect_left(self.before, amount) - 1  # the day whose periods reach ``amount``
        done = self.before[i]
        for s, e in self.periods[i]:
            if amount - done <= e - s:
                return s + (amount - done)
            done += e - s
        raise AssertionError("unreachable: before[] is the running sum of periods[]")


# --- one calendar version ---------------------------------------------------------------------


@dataclass(frozen=True)
class Calendar:
    """One version of the working-time calendar. All returned instants are timezone-aware UTC datetimes.
    Naive datetimes given in -> ValidationError(field='instant', rule='must carry a time zone offset')."""

    version: int
    recorded_at: datetime
    hours: WorkingHours
    days_off: frozenset[date]
    working_days: frozenset[date]
    first_year: int
    last_year: int

    def __post_init__(self) -> None:
        if not _is_int(self.version) or self.version < 1:
            raise ValidationError("calendar.version", "must be a whole number from 1")
        if not isinstance(self.hours, WorkingHours):
            raise ValidationError(_HOURS, "must be WorkingHours")
        _check_years(self.first_year, self.last_year)
        object.__setattr__(self, "recorded_at", _utc(self.recorded_at, "recorded_at"))
        object.__setattr__(self, "days_off", _dates(self.days_off, "days_off"))
        object.__setattr__(self, "working_days", _dates(self.working_days, "working_days"))
        self._check_dates()
        object.__setattr__(self, "_years", {})  # year -> _Year, built on first use (not a field: not compared)

    def _check_dates(self) -> None:
        for field, days in (("days_off", self.days_off), ("working_days", self.working_days)):
            outside = sorted(d for d in days if not self.first_year <= d.year <= self.last_year)
            if outside:
                raise ValidationError(field, self._range_rule(outside[0]))
        both = sorted(self.days_off & self.working_days)
        if both:
            raise ValidationError("calendar", f"{both[0]} is both a day off and a working day")

    def _range_rule(self, d: date) -> str:
        return f"covers {self.first_year}-{self.last_year}; {d} is outside; extend the calendar"

    def _check_range(self, d: date) -> None:
        if not self.first_year <= d.year <= self.last_year:
            raise CalendarRangeError("calendar", self._range_rule(d))

    def _works(self, d: date) -> bool:
        self._check_range(d)
        if d in self.working_days:
            return True
        return d not in self.days_off and d.weekday() in self.hours.weekdays

    def is_working_day(self, d: date) -> bool:
        return self._works(_check_date(d))

    def local(self, t: datetime) -> datetime:
        """The instant in the calendar's time zone (for display and for finding its local date)."""
        return _utc(t).astimezone(self.hours.zone)

    def _year(self, year: int) -> _Year:
        """The working-time index of ``year`` (CalendarRangeError outside the covered years)."""
        index: dict[int, _Year] = self._years  # type: ignore[attr-defined]
        found = index.get(year)
        if found is None:
            first = date(year, 1, 1)
            self._check_range(first)
            days = (date(year + 1, 1, 1) - first).days
            periods: list[tuple[tuple[int, int], ...]] = []
            before = [0]
            for offset in range(days):
                d = first + timedelta(days=offset)
                spans = tuple((_us(s), _us(e)) for s, e in self._periods_of(d)) if self._works(d) else ()
                periods.append(spans)
                before.append(before[-1] + sum(e - s for s, e in spans))
            found = index[year] = _Year(first, tuple(periods), tuple(before))
        return found

    def _position(self, t: datetime) -> tuple[int, int]:
        """(local year of UTC instant ``t``, working time of that year elapsed before ``t``) in microseconds."""
        day = t.astimezone(self.hours.zone).date()
        year = self._year(day.year)
        return day.year, year.elapsed(year.day_index(day), _us(t))

    def _periods_of(self, d: date) -> list[Interval]:
        zone = self.hours.zone
        return [
            (
                datetime.combine(d, s, zone).astimezone(UTC),
                datetime.combine(d, e, zone).astimezone(UTC),
            )
            for s, e in self.hours.periods
        ]

    def _intervals_from(self, t: datetime) -> Iterator[Interval]:
        """Working intervals from UTC instant t on, clipped to start at t. Ends with CalendarRangeError
        at the first day outside the calendar, which bounds every walk."""
        day, moment = t.astimezone(self.hours.zone).date(), _us(t)
        while True:
            year = self._year(day.year)
            for s, e in year.periods[year.day_index(day)]:
                if e > moment:
                    yield _instant(max(s, moment)), _instant(e)
            day += timedelta(days=1)

    def next_working_moment(self, t: datetime) -> datetime:
        """t itself inside a working period (start inclusive, end exclusive), else the next period start."""
        return next(self._intervals_from(_utc(t)))[0]

    def add_working_time(self, t: datetime, amount: timedelta) -> datetime:
        """Earliest instant at which `amount` of working time has elapsed counting from t.
        A result exactly on a period end is that end (13:00 Fri + 4 h = 17:00 Fri)."""
        start, remaining = _utc(t), _check_amount(amount, "amount")
        if not remaining:
            return self.next_working_moment(start)
        year, done = self._position(start)
        target = done + remaining // _MICRO  # working time of ``year`` before the result
        index = self._year(year)
        while target > index.total:  # past this year's working time: carry into the next year
            target -= index.total
            year += 1
            index = self._year(year)  # CalendarRangeError past the covered years, as a walk would
        return _instant(index.instant_at(target))

    def add_working_hours(self, t: datetime, hours: float) -> datetime:
        if not isinstance(hours, int | float) or isinstance(hours, bool):
            raise ValidationError("hours", "must be a number of hours")
        return self.add_working_time(t, _check_amount(timedelta(hours=hours), "hours"))

    def add_working_days(self, t: datetime, days: int) -> datetime:
        """t + days full working days of working time (8 h each by default)."""
        if not _is_int(days) or days < 0:
            raise ValidationError("days", "must be a whole number of days, not negative")
        return self.add_working_time(t, days * self.hours.day_length)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Overlap of [a, b) with working periods; timedelta(0) if b <= a."""
        start, end = _utc(a), _utc(b)
        if end <= start:
            return timedelta(0)
        first, before_start = self._position(start)
        last, before_end = self._position(end)
        whole_years = sum(self._year(y).total for y in range(first, last))
        return timedelta(microseconds=whole_years + before_end - before_start)

    def nth_working_day_after(self, d: date, n: int) -> date:
        """The n-th working day strictly after d (n >= 1)."""
        if not _is_int(n) or n < 1:
            raise ValidationError("n", "must be a whole number from 1")
        day, count = _check_date(d), 0
        while count < n:
            day += timedelta(days=1)
            count += self._works(day)
        return day

    def end_of_nth_working_day_after(self, d: date, n: int) -> datetime:
        """17:00 local (end of the last period) on the n-th working day strictly after d, in UTC."""
        return self.end_of_working_day(self.nth_working_day_after(d, n))

    def end_of_working_day(self, d: date) -> datetime:
        """End of the last period on date d (17:00 local), in UTC, whether or not d is worked.
        Reads no calendar data, so it is not limited to the covered years."""
        end = self.hours.periods[-1][1]
        return datetime.combine(_check_date(d), end, self.hours.zone).astimezone(UTC)

    def last_working_day_between(self, start: date, end: date) -> date | None:
        """The last working day in [start, end], or None if there is none."""
        first, day = _check_date(start, "start"), _check_date(end, "end")
        while day >= first:
            if self._works(day):
                return day
            day -= timedelta(days=1)
        return None


def default_calendar(recorded_at: datetime, first_year: int = 2015, last_year: int = 2045) -> Calendar:
    """Version 1: Viet Nam's days off and make-up Saturdays from the holidays package, default hours."""
    days_off, working_days = vietnam_base(first_year, last_year)
    return Calendar(1, recorded_at, WorkingHours(), days_off, working_days, first_year, last_year)


# --- the versions in force over time ----------------------------------------------------------


@dataclass(frozen=True)
class CalendarHistory:
    """Every version of the calendar, 1..n in the order they came into force."""

    versions: tuple[Calendar, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "versions", tuple(self.versions))
        if not self.versions:
            raise ValidationError("calendar", "a history needs at least one version")
        for position, cal in enumerate(self.versions, start=1):
            if cal.version != position:
                raise ValidationError("calendar.version", f"version {cal.version} at position {position}")
        for before, after in pairwise(self.versions):
            if after.recorded_at < before.recorded_at:
                raise ValidationError("recorded_at", f"version {after.version} predates its predecessor")

    def get(self, version: int) -> Calendar:
        if _is_int(version) and 1 <= version <= len(self.versions):
            return self.versions[version - 1]
        known = f"1-{len(self.versions)}"
        raise NotFound("calendar_version", f"no calendar version {version!r}; known versions are {known}")

    @property
    def current(self) -> Calendar:
        return self.versions[-1]

    def in_force_at(self, instant: datetime) -> Calendar:
        """Latest version recorded at or before instant; before the first, the first."""
        at = _utc(instant)
        for cal in reversed(self.versions):
            if cal.recorded_at <= at:
                return cal
        return self.versions[0]


# --- the calendar as an event-sourced aggregate -----------------------------------------------

_CHANGE_LISTS = ("add_days_off", "remove_days_off", "add_working_days", "remove_working_days")


class WorkingCalendar(Chained, Aggregate):
    """The calendar as an event-sourced aggregate: every change is a recorded fact, each event is a new
    version (calendar version == aggregate version)."""

    if TYPE_CHECKING:  # state set by the events' apply(); real annotations would make a dataclass
        source: str
        _history: CalendarHistory

    class Event(Aggregate.Event):
        """Base of the calendar's events; `timestamp` is when the version came into force."""

        prev_hash: str
        hash: str

    class Established(Event, Aggregate.Created):
        hours: dict[str, Any]
        days_off: list[str]
        working_days: list[str]
        first_year: int
        last_year: int
        source: str
        actor: dict[str, str]

        def apply(self, aggregate: WorkingCalendar) -> None:
            first = Calendar(
                version=self.originator_version,
                recorded_at=self.timestamp,
                hours=WorkingHours.from_dict(self.hours),
                days_off=_dates(self.days_off, "days_off"),
                working_days=_dates(self.working_days, "working_days"),
                first_year=self.first_year,
                last_year=self.last_year,
            )
            aggregate.source = self.source
            aggregate._history = CalendarHistory((first,))
            aggregate.commands = {}
            aggregate.last_hash = self.hash

    class Changed(Event):
        days_off_added: list[str]
        days_off_removed: list[str]
        working_days_added: list[str]
        working_days_removed: list[str]
        reason: str
        actor: dict[str, str]
        command_id: str | None

        def apply(self, aggregate: WorkingCalendar) -> None:
            aggregate.last_hash = self.hash
            if self.command_id:
                aggregate.commands = {**aggregate.commands, self.command_id: self.originator_version}
            current = aggregate.history.current
            days_off = current.days_off - _dates(self.days_off_removed, "days_off_removed")
            working = current.working_days - _dates(self.working_days_removed, "working_days_removed")
            new = replace(
                current,
                version=self.originator_version,
                recorded_at=self.timestamp,
                days_off=days_off | _dates(self.days_off_added, "days_off_added"),
                working_days=working | _dates(self.working_days_added, "working_days_added"),
            )
            aggregate._history = CalendarHistory((*aggregate.history.versions, new))

    @classmethod
    def establish(
        cls,
        *,
        hours: WorkingHours,
        days_off: Iterable[date | str],
        working_days: Iterable[date | str],
        first_year: int,
        last_year: int,
        source: str,
        actor: Actor | Mapping[str, str],
        recorded_at: datetime,
    ) -> WorkingCalendar:
        """Version 1. Everything is validated by building the Calendar before the fact is recorded."""
        first = Calendar(
            1,
            recorded_at,
            hours,
            _dates(days_off, "days_off"),
            _dates(working_days, "working_days"),
            first_year,
            last_year,
        )
        if not isinstance(source, str) or not source.strip():
            raise ValidationError("source", "must say where the dates come from, e.g. holidays 0.109")
        return cls._create(
            cls.Established,
            id=CALENDAR_ID,
            timestamp=first.recorded_at,
            hours=first.hours.to_dict(),
            days_off=_iso_list(first.days_off),
            working_days=_iso_list(first.working_days),
            first_year=first.first_year,
            last_year=first.last_year,
            source=source.strip(),
            actor=_actor_dict(actor),
        )

    def change(
        self,
        *,
        add_days_off: Iterable[date | str] = (),
        remove_days_off: Iterable[date | str] = (),
        add_working_days: Iterable[date | str] = (),
        remove_working_days: Iterable[date | str] = (),
        reason: str,
        actor: Actor | Mapping[str, str],
        recorded_at: datetime,
        command_id: str | None = None,
    ) -> None:
        """Record a government announcement (or a correction) as the next calendar version."""
        given = (add_days_off, remove_days_off, add_working_days, remove_working_days)
        lists = {name: _dates(v, name) for name, v in zip(_CHANGE_LISTS, given, strict=True)}
        _check_change_shape(lists, reason)
        at = _utc(recorded_at, "recorded_at")
        actor_dict = _actor_dict(actor)
        _check_change_against(self.history.current, lists, at)
        self.trigger_event(
            self.Changed,
            timestamp=at,
            days_off_added=_iso_list(lists["add_days_off"]),
            days_off_removed=_iso_list(lists["remove_days_off"]),
            working_days_added=_iso_list(lists["add_working_days"]),
            working_days_removed=_iso_list(lists["remove_working_days"]),
            reason=reason.strip(),
            actor=actor_dict,
            command_id=command_id,
        )

    @property
    def history(self) -> CalendarHistory:
        """Every version, 1..n, each as it was right after its event."""
        return self._history


def _check_change_shape(lists: Mapping[str, frozenset[date]], reason: str) -> None:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason", "must say why the calendar changes, e.g. the government notice")
    if not any(lists.values()):
        raise ValidationError("change", "must add or remove at least one date")
    seen: dict[date, str] = {}
    for name, days in lists.items():
        for d in sorted(days):
            if d in seen:
                raise ValidationError(name, f"{d} is also in {seen[d]}; put each date in one list only")
            seen[d] = name


def _check_change_against(cal: Calendar, lists: Mapping[str, frozenset[date]], at: datetime) -> None:
    if at < cal.recorded_at:
        raise InvariantViolation(
            "recorded_at",
            f"must not precede version {cal.version}, recorded at {cal.recorded_at.isoformat()}",
        )
    for name, days in lists.items():
        for d in sorted(days):
            if not cal.first_year <= d.year <= cal.last_year:
                raise ValidationError(name, cal._range_rule(d))
            _check_one(cal, name, d)


def _check_one(cal: Calendar, name: str, d: date) -> None:
    rule = {
        "add_days_off": _refuse_add_day_off,
        "remove_days_off": _refuse_remove_day_off,
        "add_working_days": _refuse_add_working_day,
        "remove_working_days": _refuse_remove_working_day,
    }[name](cal, d)
    if rule:
        raise InvariantViolation(name, rule)


def _refuse_add_day_off(cal: Calendar, d: date) -> str | None:
    if d in cal.working_days:
        return f"{d} is a make-up working day; remove it from working days first"
    return None if cal.is_working_day(d) else f"{d} is already a day off"


def _refuse_remove_day_off(cal: Calendar, d: date) -> str | None:
    return None if d in cal.days_off else f"{d} is not a day off"


def _refuse_add_working_day(cal: Calendar, d: date) -> str | None:
    if d in cal.days_off:
        return f"{d} is a day off; remove it from days off first"
    return f"{d} is already a working day" if cal.is_working_day(d) else None


def _refuse_remove_working_day(cal: Calendar, d: date) -> str | None:
    return None if d in cal.working_days else f"{d} is not a make-up working day"
