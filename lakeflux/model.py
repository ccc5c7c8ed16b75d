"""Value types shared by every layer: precisions, column kinds, and the injected clock."""

from __future__ import annotations

import enum
import time
from typing import Protocol

from .errors import Invalid


class Precision(enum.Enum):
    """Timestamp precision of a line-protocol body; AUTO guesses per timestamp (v3 only)."""

    AUTO = "auto"
    SECOND = "s"
    MILLISECOND = "ms"
    MICROSECOND = "us"
    NANOSECOND = "ns"

    @classmethod
    def parse(cls, text: str | None, default: Precision) -> Precision:
        """Parse a `precision` query parameter (short and long InfluxDB spellings)."""
        if text is None or text == "":
            return default
        found = _PRECISION_NAMES.get(text.strip().lower())
        if found is None:
            raise Invalid(
                f"invalid precision {text!r}: expected one of auto, s, ms, us, ns "
                "(or second, millisecond, microsecond, nanosecond)"
            )
        return found

    @property
    def multiplier(self) -> int:
        """Nanoseconds per unit (AUTO has none: it is decided per timestamp)."""
        return _MULTIPLIERS[self]


_PRECISION_NAMES = {
    "auto": Precision.AUTO,
    "s": Precision.SECOND,
    "second": Precision.SECOND,
    "ms": Precision.MILLISECOND,
    "millisecond": Precision.MILLISECOND,
    "us": Precision.MICROSECOND,
    "u": Precision.MICROSECOND,
    "µs": Precision.MICROSECOND,
    "microsecond": Precision.MICROSECOND,
    "ns": Precision.NANOSECOND,
    "n": Precision.NANOSECOND,
    "nanosecond": Precision.NANOSECOND,
}
_MULTIPLIERS = {
    Precision.AUTO: 0,
    Precision.SECOND: 1_000_000_000,
    Precision.MILLISECOND: 1_000_000,
    Precision.MICROSECOND: 1_000,
    Precision.NANOSECOND: 1,
}


class ColumnKind(enum.Enum):
    """What a table column is: a tag, a typed field, or the time column."""

    TAG = "tag"
    TIME = "time"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT64 = "float64"
    STRING = "utf8"
    BOOL = "bool"

    @property
    def is_field(self) -> bool:
        return self not in (ColumnKind.TAG, ColumnKind.TIME)


class Clock(Protocol):
    """Injected time, so flush, snapshot, TTL and schedule logic are tested without sleeping."""

    def now_ns(self) -> int:
        """Wall-clock time in nanoseconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for intervals."""
        ...


class SystemClock:
    """The real clock."""

    def now_ns(self) -> int:
        return time.time_ns()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
