"""SageMaker's cron expressions, ISO 8601 offsets and the window an execution analyses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pier.monitor.schedules import cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_hourly_is_the_default_and_ticks_on_the_hour() -> None:
    hourly = cron.parse(cron.HOURLY)
    assert hourly.next_after(at("2026-11-30 06:41:07")) == at("2026-11-30 07:00:00")
    assert hourly.next_after(at("2026-11-30 07:00:00")) == at("2026-11-30 08:00:00")
    assert hourly.latest_at_or_before(at("2026-11-30 07:00:00")) == at("2026-11-30 07:00:00")
    assert hourly.previous_before(at("2026-11-30 07:00:00")) == at("2026-11-30 06:00:00")


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 12 ? * * *)", "2026-11-30 12:00:00", "2026-12-01 12:00:00"),  # daily at noon
        ("cron(0 0/6 ? * * *)", "2026-11-30 06:30:00", "2026-11-30 12:00:00"),  # every 6 hours
        ("cron(0 6/12 ? * * *)", "2026-11-30 07:00:00", "2026-11-30 18:00:00"),
        ("cron(15,45 * ? * * *)", "2026-11-30 06:20:00", "2026-11-30 06:45:00"),
        ("cron(0 9 ? * MON-FRI *)", "2026-11-27 10:00:00", "2026-11-30 09:00:00"),  # Fri → Mon
        ("cron(0 9 ? * 2 *)", "2026-11-30 10:00:00", "2026-12-07 09:00:00"),  # 2 = Monday
        ("cron(0 0 1 * ? *)", "2026-11-30 00:00:00", "2026-12-01 00:00:00"),  # monthly
        ("cron(0 0 1 JAN ? 2027)", "2026-11-30 00:00:00", "2027-01-01 00:00:00"),
        ("cron(*/20 8-9 ? * * *)", "2026-11-30 09:40:00", "2026-12-01 08:00:00"),
    ],
)
def test_next_ticks(expression: str, after: str, expected: str) -> None:
    assert cron.parse(expression).next_after(at(after)) == at(expected)


def test_a_schedule_that_never_ticks_again() -> None:
    assert cron.parse("cron(0 0 1 JAN ? 2025)").next_after(at("2026-01-01 00:00:00")) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 * ? * * *", "is not a cron expression"),
        ("hourly: cron(0 * ? * * *)", "is not a cron expression"),
        ("cron(0 * * * *)", "has 5 fields; SageMaker's cron has 6"),
        ("cron(0 * * * * *)", "exactly one of Day-of-month and Day-of-week must be '?'"),
        ("cron(0 * 1 * MON *)", "exactly one of Day-of-month and Day-of-week must be '?'"),
        ("cron(60 * ? * * *)", "Minutes field '60' has 60, outside 0-59"),
        ("cron(0 24 ? * * *)", "Hours field '24' has 24, outside 0-23"),
        ("cron(0 * ? * 0 *)", "Day-of-week field '0' has 0, outside 1-7"),
        ("cron(0 * ? FOO * *)", "Month field 'FOO' has 'FOO', which is not a number"),
        ("cron(0 */0 ? * * *)", "has the step '0', which is not a positive number"),
        ("cron(0 9-5 ? * * *)", "has the range '9-5', which runs backwards"),
        ("cron(0 0 L * ? *)", "uses L, W or #, which pier does not support"),
        ("cron(0 0 ? * 6#3 *)", "uses L, W or #, which pier does not support"),
        ("cron(? * ? * * *)", "Minutes field '?' cannot be '?'"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(cron.CronError, match=None) as caught:
        cron.parse(expression)
    assert message in str(caught.value)
    assert repr(expression) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("-PT1H", timedelta(hours=-1)),
        ("-PT0H", timedelta(0)),
        ("-P1DT12H", timedelta(days=-1, hours=-12)),
        ("-PT90M", timedelta(minutes=-90)),
        ("PT30S", timedelta(seconds=30)),
    ],
)
def test_offsets(text: str, delta: timedelta) -> None:
    assert cron.parse_offset(text) == delta


@pytest.mark.parametrize("text", ["-1H", "PT", "-P", "-PT1.5H", "P1W", ""])
def test_bad_offsets(text: str) -> None:
    with pytest.raises(cron.CronError, match="is not an ISO 8601 duration"):
        cron.parse_offset(text, "StartTimeOffset")


def test_a_tick_analyses_the_interval_before_it() -> None:
    hourly = cron.parse(cron.HOURLY)
    assert cron.window(hourly, at("2026-11-30 07:00:00")) == (
        at("2026-11-30 06:00:00"),
        at("2026-11-30 07:00:00"),
    )
    six = cron.parse("cron(0 0/6 ? * * *)")
    assert cron.window(six, at("2026-11-30 12:00:00")) == (
        at("2026-11-30 06:00:00"),
        at("2026-11-30 12:00:00"),
    )


def test_an_execution_on_demand_covers_one_interval_before_now() -> None:
    hourly = cron.parse(cron.HOURLY)
    now = at("2026-11-30 07:41:07.250000")
    assert cron.window(hourly, now, on_demand=True) == (
        at("2026-11-30 06:41:07"),
        at("2026-11-30 07:41:07"),
    )
    daily = cron.parse("cron(0 12 ? * * *)")
    assert cron.window(daily, now, on_demand=True)[0] == at("2026-11-29 07:41:07")


def test_offsets_decide_the_window_when_given() -> None:
    hourly = cron.parse(cron.HOURLY)
    start, end = cron.window(hourly, at("2026-11-30 07:00:00"), "-PT3H", "-PT1H")
    assert (start, end) == (at("2026-11-30 04:00:00"), at("2026-11-30 06:00:00"))
    assert cron.window(None, at("2026-11-30 07:00:00"), "-PT5H", "-PT0H")[0] == at(
        "2026-11-30 02:00:00"
    )
    with pytest.raises(cron.CronError, match="the analysis window is empty"):
        cron.window(hourly, at("2026-11-30 07:00:00"), "-PT1H", "-PT2H")
