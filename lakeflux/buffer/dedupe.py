"""Duplicate points: rows of one table with the same tag set and the same time are one point.

InfluxDB semantics (CONTRACT.md §7): the later write wins per field; a later write that omits a field
(null) does not erase the earlier value. An absent tag equals only an absent tag, so tag sets that differ
by an absent vs a present tag are different series.

Everything here is vectorised (numpy/pyarrow, no per-row Python) and costs next to nothing when there is
nothing to merge: rows whose time occurs once cannot be duplicates, so only rows in equal-time runs are
ever compared by tags, and a table without duplicates is returned as the very same object.

`dirty_ranges` says where duplicates can hide between persisted files and buffered rows, so a query
reads only those time ranges through the merge and leaves everything else to DataFusion's native scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TIME = "time"


def dedupe(table: pa.Table, tags: Sequence[str]) -> pa.Table:
    """Merge duplicate points of `table`, whose rows are in write order (earlier rows first).

    Each field takes the last non-null value written for the point; the merged row sits where the point
    was first written, so a table sorted by time stays sorted. `tags` may name columns the table lacks
    (they are absent in every row). Returns `table` itself when it holds no duplicates.
    """
    times = time_values(table)
    candidates = _equal_time_rows(times)
    if candidates is None:
        return table
    groups = _duplicate_groups(table, [t for t in tags if t in table.column_names], times, candidates)
    if groups is None:
        return table
    return _merge(table, tags, groups)


def time_values(table: pa.Table) -> np.ndarray:
    """The `time` column as int64 nanoseconds (a zero-copy view when it is one chunk)."""
    column = table.column(TIME)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return np.asarray(column.to_numpy(), dtype=np.int64)


def _equal_time_rows(times: np.ndarray) -> np.ndarray | None:
    """Row numbers of every row whose time occurs more than once, ordered by (time, write order);
    None when every time is unique (the common case: nothing else is ever computed)."""
    if len(times) < 2:
        return None
    steps = np.diff(times)
    if (steps > 0).all():
        return None  # strictly increasing: sorted by time (persisted files, most buffers) and unique
    # Stable: equal times keep write order. Timsort is near-linear on the mostly sorted times of a buffer.
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return None
    in_run = np.zeros(len(times), dtype=bool)
    in_run[1:] = same
    in_run[:-1] |= same
    return order[in_run]


@dataclass(frozen=True)
class _Groups:
    """Rows of duplicated points only: `rows` (row numbers) sorted by (point, write order), each point's
    rows contiguous from `starts[i]`."""

    rows: np.ndarray
    starts: np.ndarray


def _duplicate_groups(table: pa.Table, tags: list[str], times: np.ndarray,
                      candidates: np.ndarray) -> _Groups | None:
    """Group the equal-time candidates by (time, tag set); keep only groups of two or more rows."""
    keys = [times[candidates]] + [_tag_codes(table.column(t), candidates) for t in tags]
    # lexsort takes its primary key last; the row number as the final tie-break keeps write order.
    order = np.lexsort([candidates, *reversed(keys)])
    rows = candidates[order]
    new_point = np.zeros(len(rows), dtype=bool)
    new_point[0] = True
    for key in keys:
        k = key[order]
        new_point[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(new_point)
    sizes = np.diff(np.append(starts, len(rows)))
    duplicated = sizes > 1
    if not duplicated.any():
        return None
    kept_sizes = sizes[duplicated]
    dup_rows = rows[np.repeat(duplicated, sizes)]
    return _Groups(rows=dup_rows, starts=np.concatenate(([0], np.cumsum(kept_sizes)[:-1])))


def _tag_codes(column: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """Integer codes of a tag's values at `rows`: equal strings share a code, null (absent) is -1."""
    values = _take(column, pa.array(rows)).combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)  # codes must not depend on per-chunk dictionaries
    indices = pc.dictionary_encode(values).indices
    return np.asarray(indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _merge(table: pa.Table, tags: Sequence[str], groups: _Groups) -> pa.Table:
    """One row per duplicated point at its first write's position; fields take their last non-null value."""
    first = groups.rows[groups.starts]
    keep = np.ones(table.num_rows, dtype=bool)
    keep[groups.rows] = False
    keep[first] = True
    kept = np.flatnonzero(keep)
    kept_index = pa.array(kept)
    merged_at = np.searchsorted(kept, first)  # where each point's merged row lands in the output
    tag_set = set(tags)
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name == TIME or name in tag_set:
            columns.append(_take(column, kept_index))  # equal within a point: any of its rows will do
        else:
            source = kept.copy()
            source[merged_at] = _last_written(column, groups, first)
            columns.append(_take(column, pa.array(source)))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _last_written(column: pa.ChunkedArray, groups: _Groups, first: np.ndarray) -> np.ndarray:
    """Per point, the row number of the last non-null value of `column` (its first row if all are null)."""
    valid = np.asarray(_take(column, pa.array(groups.rows)).is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    position = np.where(valid, np.arange(len(groups.rows)), -1)
    last = np.maximum.reduceat(position, groups.starts)
    return np.where(last >= 0, groups.rows[np.maximum(last, 0)], first)


def _take(column: pa.ChunkedArray, indices: pa.Array) -> pa.ChunkedArray:
    """`column.take`, also for Utf8View, which pyarrow cannot take from: that goes through a plain-string
    copy of the whole column, so callers with a choice merge plain strings and cast afterwards."""
    if pa.types.is_string_view(column.type):
        return column.cast(pa.string()).take(indices).cast(column.type)
    return column.take(indices)


@dataclass(frozen=True)
class Overlaps:
    """Where duplicate points can be: `dirty[i]` for the i-th file interval given, and the dirty time
    ranges [lo[j], hi[j]] (inclusive, disjoint, ascending)."""

    dirty: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def contains(self, times: np.ndarray) -> np.ndarray:
        """Which of `times` fall inside a dirty range."""
        if not len(self.lo):
            return np.zeros(len(times), dtype=bool)
        at = np.searchsorted(self.lo, times, side="right") - 1
        return (at >= 0) & (times <= self.hi[np.maximum(at, 0)])

    def split(self, points: Points) -> tuple[pa.Table, pa.Table]:
        """`points.rows` inside the dirty ranges and outside them (each in their original order)."""
        inside = self.contains(points.times)
        if not inside.any():
            return points.rows.slice(0, 0), points.rows
        return points.rows.filter(pa.array(inside)), points.rows.filter(pa.array(~inside))


@dataclass(frozen=True)
class Points:
    """Rows with no duplicate points among them, and their times (per row, and sorted for range lookups)."""

    rows: pa.Table
    times: np.ndarray
    sorted_times: np.ndarray

    @classmethod
    def merged(cls, table: pa.Table, tags: Sequence[str]) -> Points:
        """`table` (rows in write order) with its duplicate points merged."""
        rows = dedupe(table, tags)
        times = time_values(rows)
        return cls(rows=rows, times=times, sorted_times=np.sort(times, kind="stable"))


def dirty_ranges(min_times: Sequence[int], max_times: Sequence[int], sorted_buffer_times: np.ndarray) -> Overlaps:
    """Sweep the persisted files' [min, max] time intervals (plus the buffered rows' sorted times).

    Files are internally duplicate-free, and buffered rows among themselves can be merged apart, so a
    duplicate needs two sources whose times meet: a connected group of overlapping file intervals is
    dirty when it holds more than one file or any buffered row; files alone in their range are clean.
    """
    lo_in = np.asarray(min_times, dtype=np.int64)
    hi_in = np.asarray(max_times, dtype=np.int64)
    if not len(lo_in):
        return Overlaps(np.zeros(0, dtype=bool), lo_in, hi_in)
    order = np.argsort(lo_in, kind="stable")
    lo, hi = lo_in[order], hi_in[order]
    reach = np.maximum.accumulate(hi)
    starts_group = np.ones(len(lo), dtype=bool)
    starts_group[1:] = lo[1:] > reach[:-1]  # inclusive intervals: touching at one nanosecond overlaps
    starts = np.flatnonzero(starts_group)
    group_lo = lo[starts]
    group_hi = np.maximum.reduceat(hi, starts)
    files = np.diff(np.append(starts, len(lo)))
    buffered = (np.searchsorted(sorted_buffer_times, group_lo, side="left")
                < np.searchsorted(sorted_buffer_times, group_hi, side="right"))
    group_dirty = (files > 1) | buffered
    dirty = np.empty(len(lo), dtype=bool)
    dirty[order] = group_dirty[np.cumsum(starts_group) - 1]
    return Overlaps(dirty=dirty, lo=group_lo[group_dirty], hi=group_hi[group_dirty])
