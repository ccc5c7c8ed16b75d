"""Converting the value tokens of every group in a body at once, one kernel call per column kind.

A 5,000-line body holds a handful of groups (one per table and shape) of a few hundred to a few
thousand rows each. Converted column by column, the cost was the number of numpy calls (about 15 per
integer column, more per timestamp), not the bytes. Here each column registers its token spans and
gets a `Slot`; `run()` concatenates the spans of each kind and converts them with one call of each
kernel; a group then reads its rows' validity and values back by slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..model import ColumnKind, Precision
from .exact import STRING_LIMIT
from .timestamps import to_nanoseconds_array
from .tokens import (
    Body,
    decimal_shape,
    drop_backslashes,
    gather,
    signed_values,
    string_array,
    unsigned_values,
)
from .types import ARROW_TYPES

_BOOL_SPELLINGS = (b"t", b"T", b"true", b"True", b"TRUE", b"f", b"F", b"false", b"False", b"FALSE")
_BOOL_KEYS = np.sort(np.array([len(s) << 56 | int.from_bytes(s, "little") for s in _BOOL_SPELLINGS], dtype=np.uint64))
_FLOAT_TOKEN_LIMIT = 300  # longer decimals could overflow to inf; the exact parser reports those
_QUOTE = 34


@dataclass(frozen=True)
class Slot:
    """Where one column's tokens sit in its kind's concatenation."""

    kind: ColumnKind
    offset: int
    size: int

    @property
    def span(self) -> slice:
        return slice(self.offset, self.offset + self.size)


class Converter:
    """Collects the token spans of every column of a body, then converts each kind in one pass."""

    def __init__(self, body: Body, precision: Precision) -> None:
        self.body, self.precision = body, precision
        self._starts: dict[ColumnKind, list[np.ndarray]] = {}
        self._ends: dict[ColumnKind, list[np.ndarray]] = {}
        self._sizes: dict[ColumnKind, int] = {}
        self._values: dict[ColumnKind, np.ndarray | pa.Array] = {}
        self._good: dict[ColumnKind, np.ndarray | None] = {}

    def add(self, kind: ColumnKind, starts: np.ndarray, ends: np.ndarray) -> Slot:
        """Register one column's tokens (TIME for timestamps); read them back after `run()`."""
        offset = self._sizes.get(kind, 0)
        self._starts.setdefault(kind, []).append(starts)
        self._ends.setdefault(kind, []).append(ends)
        self._sizes[kind] = offset + len(starts)
        return Slot(kind, offset, len(starts))

    def run(self) -> None:
        for kind, starts_list in self._starts.items():
            starts, ends = np.concatenate(starts_list), np.concatenate(self._ends[kind])
            self._values[kind], self._good[kind] = self._convert(kind, starts, ends)

    def good(self, slot: Slot) -> np.ndarray | None:
        """Which of the slot's tokens are valid values of its kind (None: all)."""
        good = self._good[slot.kind]
        return None if good is None else good[slot.span]

    def array(self, slot: Slot, keep: np.ndarray | None) -> pa.Array:
        """The slot's values as an Arrow array, only the rows in `keep` (None: all)."""
        values = self._values[slot.kind]
        if isinstance(values, pa.Array):
            part = values.slice(slot.offset, slot.size)
            return part if keep is None else part.filter(pa.array(keep))
        part = values[slot.span]
        return pa.array(part if keep is None else part[keep], type=ARROW_TYPES[slot.kind])

    def times(self, slot: Slot, keep: np.ndarray | None) -> np.ndarray:
        values = self._values[slot.kind]
        assert isinstance(values, np.ndarray)
        part = values[slot.span]
        return part if keep is None else part[keep]

    def _convert(self, kind: ColumnKind, starts: np.ndarray, ends: np.ndarray):
        body = self.body
        if kind is ColumnKind.TAG:
            return _tags(body, starts, ends), None
        if kind is ColumnKind.STRING:
            return _strings(body, starts, ends)
        if kind is ColumnKind.FLOAT64:
            return _floats(body, starts, ends)
        if kind is ColumnKind.BOOL:
            return _booleans(body, starts, ends)
        if kind is ColumnKind.INT64:
            return signed_values(body, starts, ends - 1)
        if kind is ColumnKind.UINT64:
            return unsigned_values(body, starts, ends - 1)
        values, good = signed_values(body, starts, ends)
        nanoseconds, in_range = to_nanoseconds_array(values, self.precision)
        return nanoseconds, good & in_range


def _tags(body: Body, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    data, offsets = gather(body, starts, ends)
    if body.escaped:  # every backslash left in a fast-path tag value is an escape (see `masking`)
        data, offsets = drop_backslashes(data, offsets)
    return string_array(data, offsets)


def _strings(body: Body, starts: np.ndarray, ends: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Masked plain strings: `"`, content without quotes or backslashes, `"`."""
    lengths = ends - starts
    good = (lengths >= 2) & (body.at(ends - 1) == _QUOTE) & (lengths - 2 <= STRING_LIMIT)
    data, offsets = gather(body, starts + 1, np.maximum(ends - 1, starts + 1))
    return string_array(data, offsets), good


def _floats(body: Body, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data, offsets = gather(body, starts, ends)
    good = decimal_shape(data, offsets, allow_point=True) & (ends - starts <= _FLOAT_TOKEN_LIMIT)
    texts = string_array(data, offsets)
    if good.all():
        return pc.cast(texts, pa.float64()).to_numpy(), good
    values = np.zeros(len(starts), dtype=np.float64)
    values[good] = pc.cast(texts.filter(pa.array(good)), pa.float64()).to_numpy()
    return values, good


def _booleans(body: Body, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = (ends - starts).astype(np.uint64)
    low_bytes = np.where(lengths >= 8, np.uint64(2**64 - 1), (np.uint64(1) << (lengths * np.uint64(8))) - np.uint64(1))
    keys = (lengths << np.uint64(56)) | (body.words(starts) & low_bytes)
    # A search in the sorted spellings, not np.isin: isin compares with each of the ten in turn.
    found = _BOOL_KEYS[np.minimum(np.searchsorted(_BOOL_KEYS, keys), len(_BOOL_KEYS) - 1)] == keys
    return (body.bytes[starts] | np.uint8(32)) == 116, found & (lengths <= 5)  # true: `t` or `T` first
