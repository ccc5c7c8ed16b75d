"""Converting line-protocol timestamps to nanoseconds (the scanner in `_scanner.c` does the same in C)."""

from __future__ import annotations

from ..model import Precision

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# AUTO guesses the unit from the magnitude (CONTRACT §4.2): below each bound, the unit beside it.
_AUTO_BOUNDS = ((5_000_000_000, 1_000_000_000), (5_000_000_000_000, 1_000_000), (5_000_000_000_000_000, 1_000))


def auto_multiplier(value: int) -> int:
    """Nanoseconds per unit that precision AUTO assumes for this timestamp."""
    magnitude = abs(value)
    for bound, multiplier in _AUTO_BOUNDS:
        if magnitude < bound:
            return multiplier
    return 1


def to_nanoseconds(value: int, precision: Precision) -> int | None:
    """`value` in nanoseconds, or None when the result does not fit in an int64."""
    multiplier = auto_multiplier(value) if precision is Precision.AUTO else precision.multiplier
    result = value * multiplier
    return result if INT64_MIN <= result <= INT64_MAX else None
