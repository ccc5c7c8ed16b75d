"""Fire-time computation for `every:` and `cron:` triggers, with time passed in (CONTRACT §1.9, §2.3)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lakeflux.engine.durations import NS_PER_HOUR, NS_PER_MINUTE, NS_PER_MS, NS_PER_SECOND
from lakeflux.engine.schedule import (
    CronSchedule,
    EverySchedule,
    call_time,
    dry_run_fire_ns,
    format_rfc3339,
)
from lakeflux.engine.specs import TriggerSpec
from lakeflux.errors import Invalid


def ns(*parts: int) -> int:
    """Nanoseconds since the epoch of a UTC wall-clock time."""
    moment = dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]
    return int(moment.timestamp()) * NS_PER_SECOND


def utc(fire_ns: int | None) -> dt.datetime:
    assert fire_ns is not None
    return call_time(fire_ns)


# -- every: ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "now", "first"),
    [
        ("every:1h", ns(2024, 5, 1, 12, 34, 56), dt.datetime(2024, 5, 1, 13, 0, 0)),
        ("every:1h", ns(2024, 5, 1, 12, 0, 0), dt.datetime(2024, 5, 1, 13, 0, 0)),  # strictly after
        ("every:1h", ns(2024, 5, 1, 23, 59, 59), dt.datetime(2024, 5, 2, 0, 0, 0)),
        ("every:10s", ns(2024, 5, 1, 12, 0, 3), dt.datetime(2024, 5, 1, 12, 0, 10)),
        ("every:15m", ns(2024, 5, 1, 12, 16, 0), dt.datetime(2024, 5, 1, 12, 30, 0)),
        ("every:1day", ns(2024, 5, 1, 12, 0, 0), dt.datetime(2024, 5, 2, 0, 0, 0)),  # midnight UTC
        ("every:7s", 0, dt.datetime(1970, 1, 1, 0, 0, 7)),  # multiples since the epoch
    ],
)
def test_every_first_fire_is_next_multiple_since_epoch(spec: str, now: int, first: dt.datetime) -> None:
    schedule = TriggerSpec.parse(spec).schedule()
    assert utc(schedule.next_after(now)) == first


def test_every_sub_second_now_is_honoured() -> None:
    schedule = EverySchedule(NS_PER_HOUR)
    just_after = ns(2024, 5, 1, 13, 0, 0) + 1
    assert schedule.next_after(just_after) == ns(2024, 5, 1, 14, 0, 0)
    assert schedule.next_after(ns(2024, 5, 1, 13, 0, 0) - 1) == ns(2024, 5, 1, 13, 0, 0)


def test_every_then_previous_scheduled_plus_period() -> None:
    schedule = EverySchedule(10 * NS_PER_SECOND)
    fire = schedule.next_after(ns(2024, 5, 1, 12, 0, 3))
    fires = [fire]
    for _ in range(3):
        fire = schedule.next_after(fire)
        fires.append(fire)
    assert [f - fires[0] for f in fires] == [0, 10 * NS_PER_SECOND, 20 * NS_PER_SECOND, 30 * NS_PER_SECOND]


def test_catch_up_is_easy_for_the_runtime() -> None:
    """A sync run that overran three ticks: the runtime asks from the previous *scheduled* time."""
    schedule = EverySchedule(NS_PER_MINUTE)
    scheduled = ns(2024, 5, 1, 12, 0, 0)
    now_after_overrun = scheduled + 3 * NS_PER_MINUTE + 5 * NS_PER_SECOND
    due = []
    nxt = schedule.next_after(scheduled)
    while nxt <= now_after_overrun:  # the runtime fires these back-to-back, each with its own time
        due.append(call_time(nxt))
        nxt = schedule.next_after(nxt)
    assert due == [dt.datetime(2024, 5, 1, 12, m, 0) for m in (1, 2, 3)]
    assert call_time(nxt) == dt.datetime(2024, 5, 1, 12, 4, 0)


@given(
    period_ms=st.integers(min_value=1, max_value=10**9),
    now=st.integers(min_value=0, max_value=4 * 10**18),
)
def test_every_nanosecond_arithmetic_equals_influxdbs_milliseconds(period_ms: int, now: int) -> None:
    period = period_ms * NS_PER_MS
    fire = EverySchedule(period).next_after(now)
    now_ms = now // NS_PER_MS
    assert fire == (now_ms // period_ms + 1) * period_ms * NS_PER_MS
    assert fire > now and fire % period == 0


def test_every_rejects_non_positive_period() -> None:
    with pytest.raises(ValueError):
        EverySchedule(0)


# -- cron: -----------------------------------------------------------------------------------------------

NOW = ns(2024, 5, 1, 12, 0, 0)  # a Wednesday


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # 6 fields: sec min hour dom month dow
        ("* * * * * *", NOW, [(2024, 5, 1, 12, 0, 1), (2024, 5, 1, 12, 0, 2)]),
        ("*/15 * * * * *", NOW + 1, [(2024, 5, 1, 12, 0, 15), (2024, 5, 1, 12, 0, 30)]),
        ("0 0 * * * *", NOW, [(2024, 5, 1, 13, 0, 0), (2024, 5, 1, 14, 0, 0)]),
        ("30 5 9 * * *", NOW, [(2024, 5, 2, 9, 5, 30), (2024, 5, 3, 9, 5, 30)]),
        ("0 0 0 1 * *", NOW, [(2024, 6, 1), (2024, 7, 1)]),
        ("0 0 0 29 2 *", NOW, [(2028, 2, 29), (2032, 2, 29)]),
        ("0 0 12 * JAN,jul *", NOW, [(2024, 7, 1, 12), (2024, 7, 2, 12)]),
        ("0 0 0 L * *", NOW, [(2024, 5, 31), (2024, 6, 30)]),
        ("0 0 0 * * FRI#2", NOW, [(2024, 5, 10), (2024, 6, 14)]),
        ("0 0 0 * * THU,FRI", NOW, [(2024, 5, 2), (2024, 5, 3)]),  # names containing H and R still work
        ("0 0 0 ? * MON", NOW, [(2024, 5, 6), (2024, 5, 13)]),
        # 5 fields: standard cron, seconds = 0
        ("* * * * *", NOW, [(2024, 5, 1, 12, 1), (2024, 5, 1, 12, 2)]),
        ("*/20 * * * *", NOW, [(2024, 5, 1, 12, 20), (2024, 5, 1, 12, 40)]),
        ("0 9 * * 1-5", NOW, [(2024, 5, 2, 9), (2024, 5, 3, 9)]),
        # 7 fields: + year
        ("0 0 0 1 1 * 2030", NOW, [(2030, 1, 1)]),
        ("0 0 0 1 1 * 2025-2026", NOW, [(2025, 1, 1), (2026, 1, 1)]),
        ("0 0 0 1 1 * */4", NOW, [(2026, 1, 1), (2030, 1, 1)]),  # 1970 + 4k
        ("0 0 0 1 1 * 2027,2025", NOW, [(2025, 1, 1), (2027, 1, 1)]),
        ("0 0 12 * * * 2024", NOW, [(2024, 5, 2, 12), (2024, 5, 3, 12)]),
        ("0 0 0 1 * * 2024/2", NOW, [(2024, 6, 1), (2024, 7, 1)]),
        ("0 0 0 1 1 * *", NOW, [(2025, 1, 1), (2026, 1, 1)]),
        # shortcuts
        ("@hourly", NOW, [(2024, 5, 1, 13), (2024, 5, 1, 14)]),
        ("@daily", NOW, [(2024, 5, 2), (2024, 5, 3)]),
        ("@weekly", NOW, [(2024, 5, 5), (2024, 5, 12)]),  # Sundays
        ("@monthly", NOW, [(2024, 6, 1), (2024, 7, 1)]),
        ("@yearly", NOW, [(2025, 1, 1), (2026, 1, 1)]),
    ],
)
def test_cron_next_matches(expression: str, after: int, expected: list[tuple[int, ...]]) -> None:
    schedule = CronSchedule.parse(expression)
    got = []
    t = after
    for _ in expected:
        t = schedule.next_after(t)
        got.append(utc(t))
    assert got == [dt.datetime(*parts) for parts in expected]  # type: ignore[misc]


def test_cron_year_match_at_exact_midnight_of_first_allowed_year() -> None:
    schedule = CronSchedule.parse("0 0 0 * * * 2026")
    assert utc(schedule.next_after(NOW)) == dt.datetime(2026, 1, 1)


def test_cron_match_is_strictly_after() -> None:
    schedule = CronSchedule.parse("0 0 13 * * *")
    at = ns(2024, 5, 1, 13, 0, 0)
    assert utc(schedule.next_after(at)) == dt.datetime(2024, 5, 2, 13)
    assert utc(schedule.next_after(at - 1)) == dt.datetime(2024, 5, 1, 13)  # 12:59:59.999999999


# Pinned weekday mapping: 0 and 7 = Sunday, 1 = Monday … 6 = Saturday; names and long names agree.
WEEKDAY_FIELDS = [
    ("0", "SUN"), ("7", "SUN"), ("1", "MON"), ("2", "TUE"), ("3", "WED"), ("4", "THU"), ("5", "FRI"),
    ("6", "SAT"), ("SUN", "SUN"), ("mon", "MON"), ("Tue", "TUE"), ("WED", "WED"), ("thu", "THU"),
    ("FRI", "FRI"), ("sat", "SAT"), ("Monday", "MON"), ("tues", "TUE"), ("thurs", "THU"),
    ("SUNDAY", "SUN"),
]


@pytest.mark.parametrize(("field", "day"), WEEKDAY_FIELDS)
@pytest.mark.parametrize("form", ["6", "5"])
def test_cron_weekday_mapping_is_pinned(field: str, day: str, form: str) -> None:
    expression = f"0 0 0 * * {field}" if form == "6" else f"0 0 * * {field}"
    fire = CronSchedule.parse(expression).next_after(NOW)
    assert utc(fire).strftime("%a").upper() == day


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("MON-FRI", ["MON", "TUE", "WED", "THU", "FRI"]),
        ("1-5", ["MON", "TUE", "WED", "THU", "FRI"]),
        ("SAT,SUN", ["SAT", "SUN"]),
        ("6,0", ["SAT", "SUN"]),
        ("5-7", ["FRI", "SAT", "SUN"]),
    ],
)
def test_cron_weekday_ranges(field: str, days: list[str]) -> None:
    schedule = CronSchedule.parse(f"0 0 0 * * {field}")
    seen = set()
    t = NOW
    for _ in range(14):
        t = schedule.next_after(t)
        seen.add(utc(t).strftime("%a").upper())
    assert seen == set(days)


def test_cron_both_day_fields_six_field_needs_both() -> None:
    """InfluxDB's dialect: day-of-month AND day-of-week (Friday the 13th)."""
    schedule = CronSchedule.parse("0 0 0 13 * FRI")
    assert utc(schedule.next_after(NOW)) == dt.datetime(2024, 9, 13)


def test_cron_both_day_fields_five_field_needs_either() -> None:
    """Standard cron: day-of-month OR day-of-week."""
    schedule = CronSchedule.parse("0 0 13 * FRI")
    assert utc(schedule.next_after(NOW)) == dt.datetime(2024, 5, 3)  # the first Friday comes first


@pytest.mark.parametrize(
    ("expression", "after"),
    [
        ("0 0 0 1 1 * 2020-2023", NOW),  # every year in the past
        ("0 0 0 1 1 * 2024", NOW),  # this year's only match passed
        ("0 0 0 31 2 *", NOW),  # no 31 February
        ("0 0 0 30 2 * 2025-2030", NOW),
        ("0 0 0 1 1 * 2099", ns(2099, 6, 1)),  # the last representable year is over
    ],
)
def test_cron_exhausted_returns_none(expression: str, after: int) -> None:
    assert CronSchedule.parse(expression).next_after(after) is None


def test_cron_exhaustion_after_last_fire() -> None:
    schedule = CronSchedule.parse("0 0 0 1 1 * 2025,2026")
    first = schedule.next_after(NOW)
    second = schedule.next_after(first)
    assert [utc(first).year, utc(second).year] == [2025, 2026]
    assert schedule.next_after(second) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "cron expression is empty"),
        ("* * *", "has 3 fields"),
        ("* * * * * * * *", "has 8 fields"),
        ("60 * * * * *", "invalid cron expression"),
        ("* 60 * * * *", "invalid cron expression"),
        ("* * 24 * * *", "invalid cron expression"),
        ("* * * 32 * *", "invalid cron expression"),
        ("* * * * 13 *", "invalid cron expression"),
        ("* * * * * 8", "invalid cron expression"),
        ("* * * * * BLURSDAY", "invalid cron expression"),
        ("* * * * * * 1969", "out of range"),
        ("* * * * * * 2100", "out of range"),
        ("* * * * * * 2030-2020", "out of range"),
        ("* * * * * * 20x0", "invalid year field"),
        ("* * * * * * 2030/0", "out of range"),
        ("H * * * * *", "not supported"),
        ("R * * * * *", "not supported"),
        ("0 r * * * *", "not supported"),
    ],
)
def test_cron_parse_errors(expression: str, message: str) -> None:
    with pytest.raises(Invalid) as info:
        CronSchedule.parse(expression)
    assert message in info.value.message


def test_cron_ignores_host_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        # 10 March 2024 is a DST change day in New York; UTC matching must not notice.
        schedule = CronSchedule.parse("0 30 2 * * *")
        assert utc(schedule.next_after(ns(2024, 3, 10, 0, 0, 0))) == dt.datetime(2024, 3, 10, 2, 30)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


# -- call_time, dry runs -------------------------------------------------------------------------------


def test_call_time_is_naive_utc_whole_seconds() -> None:
    value = call_time(ns(2024, 5, 1, 12, 0, 5) + 999_999_999)
    assert value == dt.datetime(2024, 5, 1, 12, 0, 5)
    assert value.tzinfo is None and value.microsecond == 0


def test_format_rfc3339() -> None:
    assert format_rfc3339(ns(2024, 5, 1, 12, 0, 5) + 123) == "2024-05-01T12:00:05Z"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (None, dt.datetime(2024, 5, 1, 12, 0, 1)),  # default `* * * * * *`: the next second
        ("", dt.datetime(2024, 5, 1, 12, 0, 1)),
        ("0 0 * * * *", dt.datetime(2024, 5, 1, 13)),
        ("*/5 * * * *", dt.datetime(2024, 5, 1, 12, 5)),
        ("cron:0 0 * * * *", dt.datetime(2024, 5, 1, 13)),  # a trigger spec pasted as is
        ("every:10m", dt.datetime(2024, 5, 1, 12, 10)),
    ],
)
def test_dry_run_fire_time(expression: str | None, expected: dt.datetime) -> None:
    assert call_time(dry_run_fire_ns(expression, NOW + 250 * NS_PER_MS)) == expected


def test_dry_run_errors() -> None:
    with pytest.raises(Invalid, match="invalid cron expression"):
        dry_run_fire_ns("99 * * * * *", NOW)
    with pytest.raises(Invalid, match="time unit needed"):
        dry_run_fire_ns("every:10", NOW)
    with pytest.raises(Invalid, match="zero period"):
        dry_run_fire_ns("every:0s", NOW)
    with pytest.raises(Invalid, match="no upcoming fire time"):
        dry_run_fire_ns("0 0 0 1 1 * 2020", NOW)
