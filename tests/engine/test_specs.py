"""Trigger spec grammar, humantime durations and canonical storage (CONTRACT §2.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lakeflux.engine.durations import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_MONTH,
    NS_PER_MS,
    NS_PER_SECOND,
    NS_PER_WEEK,
    NS_PER_YEAR,
    format_duration,
    parse_duration,
)
from lakeflux.engine.schedule import CronSchedule, EverySchedule
from lakeflux.engine.specs import (
    UNKNOWN_FORM_CONTEXT,
    TriggerSpec,
    check_allowed,
    parse_plugin_types,
)
from lakeflux.errors import Invalid

# -- durations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("17ns", 17), ("17nsec", 17), ("17nanos", 17),
        ("3us", 3_000), ("3µs", 3_000), ("3μs", 3_000), ("3usec", 3_000),
        ("500ms", 500 * NS_PER_MS), ("31msec", 31 * NS_PER_MS), ("31millis", 31 * NS_PER_MS),
        ("10s", 10 * NS_PER_SECOND), ("10sec", 10 * NS_PER_SECOND), ("10secs", 10 * NS_PER_SECOND),
        ("1second", NS_PER_SECOND), ("50seconds", 50 * NS_PER_SECOND),
        ("5m", 5 * NS_PER_MINUTE), ("5min", 5 * NS_PER_MINUTE), ("5mins", 5 * NS_PER_MINUTE),
        ("1minute", NS_PER_MINUTE), ("7minutes", 7 * NS_PER_MINUTE),
        ("2h", 2 * NS_PER_HOUR), ("7hr", 7 * NS_PER_HOUR), ("7hrs", 7 * NS_PER_HOUR),
        ("1hour", NS_PER_HOUR), ("24hours", 24 * NS_PER_HOUR),
        ("1d", NS_PER_DAY), ("1day", NS_PER_DAY), ("2days", 2 * NS_PER_DAY),
        ("1w", NS_PER_WEEK), ("1wk", NS_PER_WEEK), ("2wks", 2 * NS_PER_WEEK), ("1week", NS_PER_WEEK),
        ("7weeks", 7 * NS_PER_WEEK),
        ("1M", NS_PER_MONTH), ("1month", NS_PER_MONTH), ("3months", 3 * NS_PER_MONTH),
        ("1y", NS_PER_YEAR), ("1yr", NS_PER_YEAR), ("2yrs", 2 * NS_PER_YEAR), ("1year", NS_PER_YEAR),
        ("7years", 7 * NS_PER_YEAR),
        # combinations, with and without spaces; spans add up
        ("1h30m", 90 * NS_PER_MINUTE), ("1h 30m", 90 * NS_PER_MINUTE), ("2h 37min", 9_420 * NS_PER_SECOND),
        ("20 min 17 nsec ", 1_200 * NS_PER_SECOND + 17), ("  10 s", 10 * NS_PER_SECOND),
        ("1s 1s", 2 * NS_PER_SECOND), ("1d2h", NS_PER_DAY + 2 * NS_PER_HOUR),
    ],
)
def test_parse_duration_units(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


def test_month_and_year_lengths_are_humantime_s() -> None:
    assert NS_PER_MONTH == 2_630_016 * NS_PER_SECOND  # 30.44 days
    assert NS_PER_YEAR == 31_557_600 * NS_PER_SECOND  # 365.25 days
    assert parse_duration("12M") == 31_560_192 * NS_PER_SECOND  # a little over one year


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "value was empty"),
        ("   ", "value was empty"),
        ("10", "time unit needed, for example 10sec or 10ms"),
        ("1h 30", "time unit needed, for example 30sec or 30ms"),
        ("10x", "unknown time unit 'x'"),
        ("10 parsecs", "unknown time unit 'parsecs'"),
        ("h", "expected number at 0"),
        ("-1s", "expected number at 0"),
        ("1.5h", "invalid character at 1"),
        ("1h,30m", "invalid character at 2"),
        ("1h 2 hours min", "expected number at 11"),
        ("99999999999999999999999y", "number is too large"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(Invalid) as info:
        parse_duration(text)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1us 500ns"),
        (500 * NS_PER_MS, "500ms"),
        (10 * NS_PER_SECOND, "10s"),
        (90 * NS_PER_MINUTE, "1h 30m"),
        (9_420 * NS_PER_SECOND, "2h 37m"),
        (NS_PER_DAY, "1day"),
        (NS_PER_DAY + 2 * NS_PER_HOUR, "1day 2h"),
        (2 * NS_PER_DAY, "2days"),
        (NS_PER_WEEK, "7days"),  # weeks are never rendered
        (NS_PER_MONTH, "1month"),
        (2 * NS_PER_MONTH + NS_PER_DAY, "2months 1day"),
        (NS_PER_YEAR, "1year"),
        (2 * NS_PER_YEAR + NS_PER_SECOND, "2years 1s"),
        (365 * NS_PER_DAY, "11months 30days 3h 50m 24s"),  # 365 d is under humantime's 365.25 d year
        (NS_PER_HOUR + 1, "1h 1ns"),
    ],
)
def test_format_duration_like_humantime(ns: int, text: str) -> None:
    assert format_duration(ns) == text


@given(st.integers(min_value=0, max_value=200 * NS_PER_YEAR))
def test_format_then_parse_round_trips(ns: int) -> None:
    assert parse_duration(format_duration(ns)) == ns


# -- specs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical", "plugin_type"),
    [
        ("table:cpu", TriggerSpec("table", table="cpu"), "table:cpu", "wal"),
        ("  table: cpu  ", TriggerSpec("table", table="cpu"), "table:cpu", "wal"),
        ("table:_anomalies.cpu", TriggerSpec("table", table="_anomalies.cpu"), "table:_anomalies.cpu", "wal"),
        ("all_tables", TriggerSpec("all_tables"), "all_tables", "wal"),
        (" all_tables ", TriggerSpec("all_tables"), "all_tables", "wal"),
        ("every:1h30m", TriggerSpec("every", duration_ns=90 * NS_PER_MINUTE), "every:1h 30m", "schedule"),
        ("every: 10s", TriggerSpec("every", duration_ns=10 * NS_PER_SECOND), "every:10s", "schedule"),
        ("every:1d", TriggerSpec("every", duration_ns=NS_PER_DAY), "every:1day", "schedule"),
        ("every:1ms", TriggerSpec("every", duration_ns=NS_PER_MS), "every:1ms", "schedule"),
        ("every:1year", TriggerSpec("every", duration_ns=NS_PER_YEAR), "every:1year", "schedule"),
        ("every:60m", TriggerSpec("every", duration_ns=NS_PER_HOUR), "every:1h", "schedule"),
        ("cron:0 0 * * * *", TriggerSpec("cron", cron="0 0 * * * *"), "cron:0 0 * * * *", "schedule"),
        ("cron:  0  0 9 * * MON ", TriggerSpec("cron", cron="0 0 9 * * MON"), "cron:0 0 9 * * MON", "schedule"),
        ("cron:*/5 * * * *", TriggerSpec("cron", cron="*/5 * * * *"), "cron:*/5 * * * *", "schedule"),
        ("cron:0 0 0 1 1 * 2030", TriggerSpec("cron", cron="0 0 0 1 1 * 2030"), "cron:0 0 0 1 1 * 2030",
         "schedule"),
        ("cron:@hourly", TriggerSpec("cron", cron="@hourly"), "cron:@hourly", "schedule"),
        ("request:hello", TriggerSpec("request", path="hello"), "request:hello", "request"),
        ("request:/hello", TriggerSpec("request", path="hello"), "request:hello", "request"),
        ("request:a/b", TriggerSpec("request", path="a/b"), "request:a/b", "request"),
        ("path:hello", TriggerSpec("request", path="hello"), "request:hello", "request"),
        ("path: /x ", TriggerSpec("request", path="x"), "request:x", "request"),
    ],
)
def test_parse_and_canonical(text: str, expected: TriggerSpec, canonical: str, plugin_type: str) -> None:
    spec = TriggerSpec.parse(text)
    assert spec == expected
    assert spec.canonical() == canonical
    assert str(spec) == canonical
    assert spec.plugin_type == plugin_type
    assert TriggerSpec.parse(spec.canonical()) == spec  # the stored form parses back to the same spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("table:", "failed to parse trigger from table:: table name is empty"),
        ("table:   ", "failed to parse trigger from table:: table name is empty"),
        ("every:", "failed to parse trigger from every:: couldn't parse to duration"),
        ("every:soon", "failed to parse trigger from every:soon: couldn't parse to duration"),
        ("every:10", "failed to parse trigger from every:10: couldn't parse to duration"),
        ("every:2y", "failed to parse trigger from every:2y: don't support every schedules of over 1 year"),
        ("every:12M", "don't support every schedules of over 1 year"),
        ("every:1year 1s", "don't support every schedules of over 1 year"),
        ("every:0s", "failed to parse trigger from every:0s"),
        ("every:999us", "failed to parse trigger from every:999us"),
        ("cron:", "failed to parse trigger from cron:"),
        ("cron:* * *", "failed to parse trigger from cron:* * *"),
        ("cron:61 * * * * *", "failed to parse trigger from cron:61 * * * * *"),
        ("cron:0 0 0 * * 8", "failed to parse trigger from cron:0 0 0 * * 8"),
        ("cron:0 0 0 * * FUNDAY", "failed to parse trigger from cron:0 0 0 * * FUNDAY"),
        ("cron:0 0 0 1 1 * 1969", "failed to parse trigger from cron:0 0 0 1 1 * 1969"),
        ("cron:0 0 0 1 1 * 20x0", "failed to parse trigger from cron:0 0 0 1 1 * 20x0"),
        ("cron:1 2 3 4 5 6 2030 8", "failed to parse trigger from cron:1 2 3 4 5 6 2030 8"),
        ("request:", "failed to parse trigger from request:"),
        ("request:/", "failed to parse trigger from request:/"),
        ("path:", "failed to parse trigger from path:"),
        ("", f"failed to parse trigger from : {UNKNOWN_FORM_CONTEXT}"),
        ("Table:cpu", f"failed to parse trigger from Table:cpu: {UNKNOWN_FORM_CONTEXT}"),
        ("all_tables:", f"failed to parse trigger from all_tables:: {UNKNOWN_FORM_CONTEXT}"),
        ("EVERY:1h", UNKNOWN_FORM_CONTEXT),
        ("schedule:1h", UNKNOWN_FORM_CONTEXT),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(Invalid) as info:
        TriggerSpec.parse(text)
    assert message in info.value.message
    assert info.value.message.startswith("failed to parse trigger from ")


def test_unknown_prefix_text_is_influxdbs() -> None:
    assert UNKNOWN_FORM_CONTEXT == (
        "expect one of the following forms: 'table:<TABLE_NAME>', 'all_tables', 'cron:<CRON_EXPRESSION>', "
        "'every:<DURATION>', or 'request:<PATH>'"
    )


def test_schedule_of_each_kind() -> None:
    every = TriggerSpec.parse("every:1h").schedule()
    assert every == EverySchedule(NS_PER_HOUR)
    cron = TriggerSpec.parse("cron:0 0 9 * * MON").schedule()
    assert isinstance(cron, CronSchedule)
    with pytest.raises(ValueError):
        TriggerSpec.parse("all_tables").schedule()


def test_specs_are_hashable_values() -> None:
    assert len({TriggerSpec.parse("path:x"), TriggerSpec.parse("request:/x")}) == 1


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("wal", {"wal"}),
        ("wal,schedule,request", {"wal", "schedule", "request"}),
        (" Schedule , request ", {"schedule", "request"}),
        ("", set()),
    ],
)
def test_parse_plugin_types(text: str, allowed: set[str]) -> None:
    assert parse_plugin_types(text) == allowed


def test_parse_plugin_types_rejects_unknown() -> None:
    with pytest.raises(Invalid, match="unknown plugin trigger type 'cron'"):
        parse_plugin_types("wal,cron")


@pytest.mark.parametrize(
    ("spec", "allowed", "refused_as"),
    [
        ("table:cpu", frozenset({"schedule"}), "Wal"),
        ("all_tables", frozenset({"request"}), "Wal"),
        ("every:1h", frozenset({"wal"}), "Schedule"),
        ("cron:* * * * * *", frozenset({"wal", "request"}), "Schedule"),
        ("request:x", frozenset({"wal", "schedule"}), "Request"),
    ],
)
def test_check_allowed_refuses(spec: str, allowed: frozenset, refused_as: str) -> None:
    with pytest.raises(Invalid) as info:
        check_allowed(TriggerSpec.parse(spec), allowed)
    assert info.value.message == f"server is configured to reject {refused_as} plugin triggers"


@pytest.mark.parametrize("spec", ["table:cpu", "every:1h", "request:x"])
def test_check_allowed_passes(spec: str) -> None:
    check_allowed(TriggerSpec.parse(spec), None)
    check_allowed(TriggerSpec.parse(spec), frozenset({"wal", "schedule", "request"}))
