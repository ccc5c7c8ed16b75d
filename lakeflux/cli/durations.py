"""Humantime-style durations (`1s`, `10m`, `1h 30m`, `72h`) for CLI flags, parsed to seconds.

The unit table follows CONTRACT §2.1 (`m` = minutes, `M` = months of 30.44 days, year = 365.25 days), so
a duration accepted by `serve` is spelled the same way as one in an `every:` trigger spec.
"""

from __future__ import annotations

import re

_MINUTE = 60.0
_HOUR = 3600.0
_DAY = 86400.0

_UNITS: dict[str, float] = {
    "ns": 1e-9, "nsec": 1e-9, "nanos": 1e-9,
    "us": 1e-6, "µs": 1e-6, "usec": 1e-6, "micros": 1e-6,
    "ms": 1e-3, "msec": 1e-3, "millis": 1e-3,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": _MINUTE, "min": _MINUTE, "mins": _MINUTE, "minute": _MINUTE, "minutes": _MINUTE,
    "h": _HOUR, "hr": _HOUR, "hrs": _HOUR, "hour": _HOUR, "hours": _HOUR,
    "d": _DAY, "day": _DAY, "days": _DAY,
    "w": 7 * _DAY, "wk": 7 * _DAY, "wks": 7 * _DAY, "week": 7 * _DAY, "weeks": 7 * _DAY,
    "M": 30.44 * _DAY, "month": 30.44 * _DAY, "months": 30.44 * _DAY,
    "y": 365.25 * _DAY, "yr": 365.25 * _DAY, "yrs": 365.25 * _DAY, "year": 365.25 * _DAY,
    "years": 365.25 * _DAY,
}

_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-zµ]+)")


class DurationError(ValueError):
    """The text is not a duration; the message names the text and what was expected."""


def parse_duration(text: str) -> float:
    """Parse `1h30m`, `1h 30m`, `10m`, `72h`, `500ms` into seconds (a bare number is seconds)."""
    stripped = text.strip()
    if not stripped:
        raise DurationError("empty duration")
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        return float(stripped)
    total = 0.0
    position = 0
    while position < len(stripped):
        match = _PART.match(stripped, position)
        if match is None:
            raise DurationError(f"invalid duration {text!r}: expected a number and a unit, e.g. 10s, 5m, 1h30m")
        number, unit = match.groups()
        # Units are case-sensitive only where it matters (m vs M); other spellings are accepted in any case.
        factor = _UNITS.get(unit) if unit in ("m", "M") else _UNITS.get(unit.lower())
        if factor is None:
            raise DurationError(f"invalid duration {text!r}: unknown unit {unit!r}")
        total += float(number) * factor
        position = match.end()
    return total
