"""Time in InfluxQL: literal parsing, GROUP BY time windows (time zones included), output formatting.

All times are int nanoseconds since the epoch (UTC). Windows follow InfluxDB 1.x's rule: a window starts
at the time truncated to the interval after shifting by the offset and by the zone's UTC offset, and a
window that starts before a daylight-saving change keeps local alignment.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import Invalid

MIN_TIME = -(2**63) + 2  # InfluxDB's bounds, leaving room for the sentinels
MAX_TIME = 2**63 - 2
NS = 1_000_000_000

EPOCH_DIVISORS = {"ns": 1, "n": 1, "u": 1_000, "µ": 1_000, "us": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS,
                  "h": 3600 * NS, "d": 86400 * NS, "w": 7 * 86400 * NS}

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$")


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unable to find time zone {name!r}") from None


def parse_time_string(text: str, tz: str | None = None) -> int:
    """An InfluxQL time string ('2024-01-01T00:00:00Z', '2024-01-01 00:00:00.5', '2024-01-01') in ns;
    strings without an offset are in `tz` (UTC when none)."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise Invalid(f"invalid time literal {text!r}: expected RFC3339 like '2024-01-01T00:00:00Z'")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    try:
        naive = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as e:
        raise Invalid(f"invalid time literal {text!r}: {e}") from None
    if offset and offset.upper() != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        aware = naive.replace(tzinfo=dt.timezone(sign * delta))
    elif offset:
        aware = naive.replace(tzinfo=dt.UTC)
    else:
        aware = naive.replace(tzinfo=zone(tz) if tz else dt.UTC)
    seconds = _epoch_seconds(aware)
    return seconds * NS + int((frac or "0").ljust(9, "0"))


def _epoch_seconds(aware: dt.datetime) -> int:
    delta = aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return delta.days * 86400 + delta.seconds


def utc_offset_ns(tz: str | None, t: int) -> int:
    """The zone's offset from UTC at instant `t`, in ns (0 for UTC)."""
    if not tz:
        return 0
    seconds = max(min(t // NS, 253402300799), -62135596800)  # datetime's range
    when = dt.datetime.fromtimestamp(seconds, dt.UTC).astimezone(zone(tz))
    offset = when.utcoffset()
    return int(offset.total_seconds()) * NS if offset is not None else 0


def window(t: int, interval: int, offset: int, tz: str | None) -> tuple[int, int]:
    """[start, end) of the GROUP BY time window holding `t`."""
    t -= offset
    z = utc_offset_ns(tz, t)
    dt_ = (t + z) % interval
    start = MIN_TIME if MIN_TIME + dt_ >= t else t - dt_
    if tz:
        o = z - utc_offset_ns(tz, start)
        if o != 0 and abs(o) < interval:
            start += o
    start += offset
    rest = interval - dt_
    end = MAX_TIME if MAX_TIME - rest <= t else t + rest
    if tz:
        end_offset = utc_offset_ns(tz, end)
        o = z - end_offset
        # Clocks going back add the hour to this window; clocks going forward take it away only when the
        # change happens inside the window.
        if o != 0 and abs(o) < interval and (o > 0 or utc_offset_ns(tz, end + o) == end_offset):
            end += o
    return start, end + offset


def steps(first: int, last: int, interval: int, tz: str | None, limit: int) -> list[int]:
    """The windows InfluxQL reports from `first` through `last` (window starts): each the previous plus the
    interval, moved by a daylight-saving change crossed on the way when the change is shorter than the
    interval (InfluxDB 1.x's fill rule; data windows near such a change may differ from these)."""
    if not tz:
        count = (last - first) // interval + 1 if last >= first else 0
        if count > limit:
            raise _too_many(count, limit)
        return list(range(first, first + count * interval, interval)) if count > 0 else []
    out = []
    t, current = first, utc_offset_ns(tz, first)
    while t <= last:
        out.append(t)
        if len(out) > limit:
            raise _too_many(len(out), limit)
        t += interval
        offset = utc_offset_ns(tz, t - 1)
        if offset != current:
            if abs(current - offset) < interval:
                t += current - offset
            current = offset
    return out


def chain(lo: int, hi: int, interval: int, offset: int, tz: str | None, limit: int) -> list[int]:
    """Start of every window grouping the data between lo and hi: InfluxQL groups points window by window,
    each from the end of the one before (a window holding a daylight-saving change shorter than the
    interval is that much longer or shorter)."""
    out = []
    t = window(lo, interval, offset, tz)[0]
    while t <= hi:
        out.append(t)
        if len(out) > limit:
            raise _too_many(len(out), limit)
        end = window(t, interval, offset, tz)[1]
        if end <= t:
            break
        t = end
    return out


def _too_many(count: int, limit: int) -> Invalid:
    return Invalid(f"max-select-buckets limit exceeded: ({count}/{limit}): narrow the time range or use a larger "
                   "GROUP BY time interval")


def format_time(t: int, tz: str | None = None) -> str:
    """RFC3339 with a fraction of 0, 3, 6 or 9 digits (the fewest that are exact), `Z` for UTC, else the
    zone's offset (InfluxDB 3's v1 API format)."""
    seconds, frac = divmod(t, NS)
    offset = utc_offset_ns(tz, t) // NS if tz else 0
    when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds + offset)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        digits = f"{frac:09d}"
        if digits.endswith("000000"):
            digits = digits[:3]
        elif digits.endswith("000"):
            digits = digits[:6]
        text += "." + digits
    if offset == 0:  # Go's RFC3339 writes a zero offset as Z, whatever the zone
        return text + "Z"
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def epoch_divisor(epoch: str | None) -> int | None:
    """ns per unit for the v1 `epoch` parameter; None for RFC3339 output."""
    if not epoch:
        return None
    divisor = EPOCH_DIVISORS.get(epoch)
    if divisor is None:
        raise Invalid(f"invalid epoch {epoch!r}: expected one of ns, u, µ, ms, s, m, h")
    return divisor
