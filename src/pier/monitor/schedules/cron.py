"""When monitoring schedules run: SageMaker's cron expressions, time offsets and windows.

SageMaker (like EventBridge) writes a schedule as ``cron(Minutes Hours Day-of-month Month
Day-of-week Year)``, in UTC: ``cron(0 * ? * * *)`` is hourly (the default), ``cron(0 12 ? * * *)``
daily at noon, ``cron(0 0/6 ? * * *)`` every six hours. Each field takes ``*``, a number, a
range ``a-b``, a step ``*/n``, ``a/n`` or ``a-b/n`` and lists of those; months take JAN-DEC and
days of the week SUN-SAT (or 1-7, Sunday being 1). One of day-of-month and day-of-week must be
``?`` (the other then decides alone), as AWS requires. ``NOW`` (SageMaker's one-time schedule)
is handled by the caller: it has no ticks.

Not supported: ``L``, ``W`` and ``#`` (last day, nearest weekday, n-th weekday); they are
refused with a message saying so. A dependency (croniter) was not worth it: its fields are
the Unix ones (day-of-week 0-6 from Sunday, a 6th field of seconds, no ``?``), so SageMaker's
expressions would need translating anyway, and this parser is the size of that translation.

A scheduled execution at tick T analyses the captured records of ``[P, T)``, P being the
previous tick (the previous hour for an hourly schedule), unless the endpoint input names its
own offsets (``StartTimeOffset`` / ``EndTimeOffset``, ISO 8601 durations such as ``-PT1H``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

HOURLY = "cron(0 * ? * * *)"
NOW = "NOW"
_SEARCH_DAYS = 366 * 5  # a schedule whose next tick is further away than this has none

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_FIELDS = (
    # name, low, high, names (index 0 = low)
    ("Minutes", 0, 59, ()),
    ("Hours", 0, 23, ()),
    ("Day-of-month", 1, 31, ()),
    ("Month", 1, 12, _MONTHS),
    ("Day-of-week", 1, 7, _DAYS),
    ("Year", 1970, 2199, ()),
)
_EXPRESSION = re.compile(r"^cron\((?P<body>[^()]*)\)$")
_OFFSET = re.compile(
    r"^(?P<sign>[-+]?)P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)S)?)?$"
)


class CronError(ValueError):
    """A schedule expression pier cannot read; the message says what and where."""


@dataclass(frozen=True)
class Cron:
    """A parsed ``cron(...)`` expression: the allowed values of each field (None: any)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None
    months: frozenset[int]
    weekdays: frozenset[int] | None  # 1 = Sunday ... 7 = Saturday, as AWS numbers them
    years: frozenset[int] | None

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        if self.years is not None and day.year not in self.years:
            return False
        if self.days is not None and day.day not in self.days:
            return False
        aws_weekday = (day.weekday() + 1) % 7 + 1  # Python: Monday 0; AWS: Sunday 1
        return self.weekdays is None or aws_weekday in self.weekdays

    def next_after(self, t: datetime) -> datetime | None:
        """The first tick strictly after ``t`` (UTC), or None within five years."""
        t = _utc(t).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = t.date()
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        tick = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if tick >= t:
                            return tick
            day += timedelta(days=1)
        return None

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last tick at or before ``t`` (UTC), or None within five years."""
        t = _utc(t)
        day = t.date()
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours, reverse=True):
                    for minute in sorted(self.minutes, reverse=True):
                        tick = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if tick <= t:
                            return tick
            day -= timedelta(days=1)
        return None

    def previous_before(self, t: datetime) -> datetime | None:
        """The last tick strictly before ``t``."""
        return self.latest_at_or_before(_utc(t) - timedelta(microseconds=1))


def _utc(t: datetime) -> datetime:
    """``t`` in UTC, the zone of the ticks; a naive time is refused (its zone is a guess)."""
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t.isoformat()} given for a schedule time")
    return t.astimezone(UTC)


def parse(expression: str) -> Cron:
    """``cron(...)`` as a :class:`Cron`; CronError says what is wrong with it."""
    match = _EXPRESSION.match(expression.strip())
    if match is None:
        raise CronError(
            f"ScheduleExpression {expression!r} is not a cron expression: write "
            f"cron(Minutes Hours Day-of-month Month Day-of-week Year), e.g. {HOURLY} for "
            "hourly, or NOW for one execution now."
        )
    parts = match["body"].split()
    if len(parts) != 6:
        raise CronError(
            f"ScheduleExpression {expression!r} has {len(parts)} fields; SageMaker's cron has 6: "
            "Minutes Hours Day-of-month Month Day-of-week Year."
        )
    if (parts[2] == "?") == (parts[4] == "?"):
        raise CronError(
            f"ScheduleExpression {expression!r}: exactly one of Day-of-month and Day-of-week "
            "must be '?' (the other one decides which days run)."
        )
    values = [_field(expression, text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
    minutes, hours, days, months, weekdays, years = values
    assert minutes is not None
    assert hours is not None
    assert months is not None
    return Cron(expression.strip(), minutes, hours, days, months, weekdays, years)


def _field(
    expression: str, text: str, name: str, low: int, high: int, names: tuple[str, ...]
) -> frozenset[int] | None:
    def fail(why: str) -> CronError:
        return CronError(f"ScheduleExpression {expression!r}: {name} field {text!r} {why}.")

    if text == "?":
        if name not in ("Day-of-month", "Day-of-week"):
            raise fail("cannot be '?' (only Day-of-month and Day-of-week can)")
        return None
    if any(c in text.upper() for c in "LW#") and not any(n in text.upper() for n in names):
        raise fail("uses L, W or #, which pier does not support")
    if text == "*":
        return None if name in ("Day-of-month", "Day-of-week", "Year") else _all(low, high)

    def number(token: str) -> int:
        upper = token.upper()
        if upper in names:
            return low + names.index(upper)
        if not token.isdigit():
            raise fail(f"has {token!r}, which is not a number from {low} to {high}")
        value = int(token)
        if not low <= value <= high:
            raise fail(f"has {value}, outside {low}-{high}")
        return value

    allowed: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise fail(f"has the step {step_text!r}, which is not a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise fail(f"has the range {base!r}, which runs backwards")
        else:
            start = number(base)
            end = high if step_text else start
        allowed.update(range(start, end + 1, step))
    return frozenset(allowed)


def _all(low: int, high: int) -> frozenset[int]:
    return frozenset(range(low, high + 1))


def parse_offset(text: str, what: str = "offset") -> timedelta:
    """An ISO 8601 duration as SageMaker's offsets write it (``-PT1H``, ``-P1DT2H``, ``-PT0H``)."""
    match = _OFFSET.match(text.strip())
    if match is None or text.strip().endswith(("P", "T")):
        raise CronError(f"{what} {text!r} is not an ISO 8601 duration such as -PT1H or -P1DT12H.")
    delta = timedelta(
        days=int(match["days"] or 0),
        hours=int(match["hours"] or 0),
        minutes=int(match["minutes"] or 0),
        seconds=int(match["seconds"] or 0),
    )
    return -delta if match["sign"] == "-" else delta


def window(
    cron: Cron | None,
    scheduled: datetime,
    start_offset: str | None = None,
    end_offset: str | None = None,
    *,
    on_demand: bool = False,
) -> tuple[datetime, datetime]:
    """The time window ``[start, end)`` an execution scheduled at ``scheduled`` analyses.

    With offsets: ``[scheduled + start_offset, scheduled + end_offset)``. Without: from the
    previous tick of ``cron`` (an hour before for a schedule without ticks) to ``scheduled``.
    An execution started on demand (between ticks) covers one interval of the schedule
    before ``scheduled``: the last hour, for an hourly schedule.
    """
    scheduled = _utc(scheduled).replace(microsecond=0)
    end = scheduled + parse_offset(end_offset, "EndTimeOffset") if end_offset else scheduled
    if start_offset:
        start = scheduled + parse_offset(start_offset, "StartTimeOffset")
    elif on_demand:
        start = scheduled - interval(cron, scheduled)
    else:
        previous = cron.previous_before(scheduled) if cron is not None else None
        start = previous if previous is not None else scheduled - timedelta(hours=1)
    if start >= end:
        raise CronError(
            f"the analysis window is empty: it starts at {start:%Y-%m-%dT%H:%M:%SZ} and ends at "
            f"{end:%Y-%m-%dT%H:%M:%SZ} (StartTimeOffset must come before EndTimeOffset)."
        )
    return start, end


def interval(cron: Cron | None, at: datetime) -> timedelta:
    """The time between the last two ticks at or before ``at`` (an hour without ticks)."""
    last = cron.latest_at_or_before(at) if cron is not None else None
    before = cron.previous_before(last) if cron is not None and last is not None else None
    if last is None or before is None:
        return timedelta(hours=1)
    return last - before
