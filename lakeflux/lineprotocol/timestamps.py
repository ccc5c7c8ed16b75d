"""Converting line-protocol timestamps to nanoseconds, one at a time or as a numpy column."""

from __future__ import annotations

import numpy as np

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


def to_nanoseconds_array(values: np.ndarray, precision: Precision) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `to_nanoseconds`: (nanoseconds, in_range mask).

    `values` must exclude INT64_MIN (its absolute value overflows); the fast parser never passes it.
    Entries outside the range hold garbage and must be dropped by the caller.
    """
    magnitude = np.abs(values)
    if precision is Precision.AUTO:
        multipliers = np.ones(values.shape, dtype=np.int64)
        for bound, multiplier in reversed(_AUTO_BOUNDS):
            multipliers[magnitude < bound] = multiplier
        # AUTO never overflows: every bound times its multiplier stays below 5e18.
        return values * multipliers, np.ones(values.shape, dtype=bool)
    multiplier = precision.multiplier
    if multiplier == 1:
        return values, np.ones(values.shape, dtype=bool)
    in_range = magnitude <= INT64_MAX // multiplier
    return values * multiplier, in_range
