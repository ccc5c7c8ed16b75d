"""Humantime-style durations for `every:` trigger specs: parse to integer nanoseconds, render canonically.

The grammar is InfluxDB's (the Rust `humantime` crate): one or more `<integer><unit>` spans, with or
without whitespace between them and between number and unit (`1h30m`, `1h 30m`, `10 s`). Spans add up,
so `1s 1s` is two seconds. No signs, no fractions. `m` is minutes, `M` months of 30.44 days, a year is
365.25 days (CONTRACT §2.1).

Rendering follows humantime's `format_duration`, because the catalog stores `every:` specs in that form
and clients compare them: years, months, days (pluralised: `1day`, `2days`), then `h`, `m`, `s`, `ms`,
`us`, `ns`, zero components left out, joined by single spaces (`1h 30m`, `1day 2h`, `0s`). Weeks are never
rendered (`1w` renders as `7days`).
"""

from __future__ import annotations

from ..errors import Invalid

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 3_600 * NS_PER_SECOND
NS_PER_DAY = 86_400 * NS_PER_SECOND
NS_PER_WEEK = 7 * NS_PER_DAY
NS_PER_MONTH = 2_630_016 * NS_PER_SECOND  # 30.44 days
NS_PER_YEAR = 31_557_600 * NS_PER_SECOND  # 365.25 days

# humantime stores a duration as u64 seconds: anything beyond cannot come from InfluxDB either.
MAX_DURATION_NS = (2**64 - 1) * NS_PER_SECOND

_UNITS: dict[str, int] = {}
for _names, _ns in (
    (("ns", "nsec", "nanos"), 1),
    (("us", "µs", "μs", "usec"), NS_PER_US),  # both the micro sign U+00B5 and Greek mu U+03BC
    (("ms", "msec", "millis"), NS_PER_MS),
    (("s", "sec", "secs", "second", "seconds"), NS_PER_SECOND),
    (("m", "min", "mins", "minute", "minutes"), NS_PER_MINUTE),
    (("h", "hr", "hrs", "hour", "hours"), NS_PER_HOUR),
    (("d", "day", "days"), NS_PER_DAY),
    (("w", "wk", "wks", "week", "weeks"), NS_PER_WEEK),
    (("M", "month", "months"), NS_PER_MONTH),
    (("y", "yr", "yrs", "year", "years"), NS_PER_YEAR),
):
    for _name in _names:
        _UNITS[_name] = _ns

SUPPORTED_UNITS_TEXT = (
    "supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)"
)


def _is_unit_char(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ch in "µμ"


def parse_duration(text: str) -> int:
    """Parse a humantime duration (`1h30m`, `1h 30m`, `500ms`) into nanoseconds.

    Raises Invalid naming the problem: empty text, a missing number or unit, an unknown unit, a
    character that belongs to no span (`-`, `.`), or a value beyond humantime's range.
    """
    total = 0
    pos = 0
    length = len(text)
    seen_span = False
    while True:
        while pos < length and text[pos].isspace():
            pos += 1
        if pos >= length:
            break
        if not text[pos].isdigit():
            raise Invalid(f"expected number at {pos}")
        start = pos
        while pos < length and text[pos].isdigit():
            pos += 1
        number = int(text[start:pos])
        while pos < length and text[pos].isspace():
            pos += 1
        unit_start = pos
        while pos < length and _is_unit_char(text[pos]):
            pos += 1
        unit = text[unit_start:pos]
        if not unit:
            if pos < length and not text[pos].isdigit():
                raise Invalid(f"invalid character at {pos}")
            raise Invalid(f"time unit needed, for example {number}sec or {number}ms")
        if pos < length and not (text[pos].isspace() or text[pos].isdigit()):
            raise Invalid(f"invalid character at {pos}")
        scale = _UNITS.get(unit)
        if scale is None:
            raise Invalid(f"unknown time unit {unit!r}, {SUPPORTED_UNITS_TEXT}")
        total += number * scale
        if total > MAX_DURATION_NS:
            raise Invalid("number is too large")
        seen_span = True
    if not seen_span:
        raise Invalid("value was empty")
    return total


def format_duration(ns: int) -> str:
    """Render nanoseconds the way humantime's `format_duration` does (`1h 30m`, `2days`, `0s`)."""
    if ns < 0:
        raise ValueError(f"cannot format a negative duration: {ns}")
    if ns == 0:
        return "0s"
    seconds, sub = divmod(ns, NS_PER_SECOND)
    years, rest = divmod(seconds, NS_PER_YEAR // NS_PER_SECOND)
    months, rest = divmod(rest, NS_PER_MONTH // NS_PER_SECOND)
    days, rest = divmod(rest, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    millis, sub = divmod(sub, NS_PER_MS)
    micros, nanos = divmod(sub, NS_PER_US)
    parts: list[str] = []
    for value, name in ((years, "year"), (months, "month"), (days, "day")):
        if value:
            parts.append(f"{value}{name}{'s' if value > 1 else ''}")
    for value, name in (
        (hours, "h"), (minutes, "m"), (secs, "s"), (millis, "ms"), (micros, "us"), (nanos, "ns")
    ):
        if value:
            parts.append(f"{value}{name}")
    return " ".join(parts)
