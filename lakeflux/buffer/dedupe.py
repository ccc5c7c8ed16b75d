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

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TIME = "time"


def dedupe(table: pa.Table, tags: Sequence[str], *, clean_rows: int = 0) -> pa.Table:
    """Merge duplicate points of `table`, whose rows are in write order (earlier rows first).

    Each field takes the last non-null value written for the point; the merged row sits where the point
    was first written, so a table sorted by time stays sorted. `tags` may name columns the table lacks
    (they are absent in every row). Returns `table` itself when it holds no duplicates.

    `clean_rows`: the first rows are known to be duplicate-free among themselves (an earlier result with
    rows appended since), so only points involving a later row are looked for.
    """
    times = time_values(table)
    candidates = _equal_time_rows(times) if clean_rows == 0 else _appended_candidates(times, clean_rows)
    if candidates is None:
        return table
    present = [t for t in tags if t in table.column_names]
    found = [g for window in _windows(times, candidates)
             if (g := _duplicate_groups(table, present, times, window)) is not None]
    if not found:
        return table
    return _merge(table, tags, found[0] if len(found) == 1 else _Groups.joined(found))


# Candidates are compared this many at a time (whole runs of one time, never split): the point keys cost
# several int64 arrays per candidate, and when many series share each timestamp every row is one (a
# 4M-row Telegraf-like buffer took 276 MB more at its snapshot; in windows, a tenth of that).
WINDOW_ROWS = 1 << 19


def _windows(times: np.ndarray, candidates: np.ndarray) -> list[np.ndarray]:
    """`candidates` (ordered by time) in consecutive slices of about WINDOW_ROWS, each ending where a run of
    one time ends: a point's rows all share its time, so each slice's duplicates are found on their own."""
    if len(candidates) <= WINDOW_ROWS:
        return [candidates]
    ordered = times[candidates]
    ends = np.unique(np.searchsorted(ordered, ordered[WINDOW_ROWS - 1::WINDOW_ROWS], side="right"))
    return np.split(candidates, ends[ends < len(candidates)])


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
    if (steps >= 0).all():
        return _in_runs(steps == 0, None)  # sorted already (many series per timestamp): no sort needed
    # Stable: equal times keep write order. Timsort is near-linear on the mostly sorted times of a buffer.
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    same = ordered[1:] == ordered[:-1]
    return _in_runs(same, order) if same.any() else None


def _in_runs(same: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """Row numbers (through `order`, None = identity) of the rows in runs of equal neighbours."""
    in_run = np.zeros(len(same) + 1, dtype=bool)
    in_run[1:] = same
    in_run[:-1] |= same
    if in_run.all():  # common when many series share each timestamp
        return np.arange(len(in_run)) if order is None else order
    return np.flatnonzero(in_run) if order is None else order[in_run]


def _appended_candidates(times: np.ndarray, clean: int) -> np.ndarray | None:
    """Like `_equal_time_rows` when rows before `clean` hold no duplicates among themselves: the appended
    rows, and the earlier rows sharing a time with one of them (only those could be their duplicates)."""
    appended = times[clean:]
    if not len(appended):
        return None
    old = times[:clean]
    near = np.flatnonzero((old >= appended.min()) & (old <= appended.max()))  # new data is mostly recent
    ordered = np.sort(appended)
    at = np.minimum(np.searchsorted(ordered, old[near]), len(ordered) - 1)
    rows = np.concatenate((near[ordered[at] == old[near]], np.arange(clean, len(times))))
    if len(rows) < 2:
        return None
    return rows[np.argsort(times[rows], kind="stable")]  # rows ascend, so equal times keep write order


@dataclass(frozen=True)
class _Groups:
    """Rows of duplicated points only: `rows` (row numbers) sorted by (point, write order), each point's
    rows contiguous from `starts[i]`."""

    rows: np.ndarray
    starts: np.ndarray

    @staticmethod
    def joined(parts: list[_Groups]) -> _Groups:
        """The points of `parts` (disjoint) as one `_Groups`."""
        offsets = np.cumsum([0] + [len(p.rows) for p in parts[:-1]])
        return _Groups(rows=np.concatenate([p.rows for p in parts]),
                       starts=np.concatenate([p.starts + o for p, o in zip(parts, offsets, strict=True)]))


def _duplicate_groups(table: pa.Table, tags: list[str], times: np.ndarray,
                      candidates: np.ndarray) -> _Groups | None:
    """Group the equal-time candidates by (time, tag set); keep only groups of two or more rows."""
    key = _point_keys(table, tags, times, candidates)
    if not _repeats(key):
        return None  # equal times, but all of different series (many hosts reporting at one instant)
    order = np.argsort(key, kind="stable")  # stable: a point's rows stay in write order
    rows, key = candidates[order], key[order]
    new_point = np.ones(len(rows), dtype=bool)
    new_point[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(new_point)
    sizes = np.diff(np.append(starts, len(rows)))
    duplicated = sizes > 1
    kept_sizes = sizes[duplicated]
    dup_rows = rows[np.repeat(duplicated, sizes)]
    return _Groups(rows=dup_rows, starts=np.concatenate(([0], np.cumsum(kept_sizes)[:-1])))


def _point_keys(table: pa.Table, tags: list[str], times: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """One int64 per candidate, equal exactly for rows of one point: its time (as an offset, or as a rank
    among the candidates, which are sorted by time) and each tag's code, packed (one sort key, not many)."""
    whole = len(candidates) == table.num_rows  # then encode the columns as they are: no string copies
    codes = []
    for tag in tags:
        c = _tag_codes(table.column(tag), None if whole else candidates)
        codes.append((c[candidates] if whole else c) + 1)  # absent (-1) becomes 0
    widths = [int(c.max()) + 1 for c in codes]
    candidate_times = times[candidates]
    span = int(candidate_times[-1]) - int(candidate_times[0]) + 1
    if span * math.prod(widths) < 2**62:
        key = candidate_times - candidate_times[0]
    else:
        key = np.zeros(len(candidates), dtype=np.int64)
        key[1:] = np.cumsum(candidate_times[1:] != candidate_times[:-1])
    for c, width in zip(codes, widths, strict=True):
        if int(key.max()) >= (2**62) // width:
            key = _dense_rank(key)  # many tags of many values: renumber before the product overflows
        key = key * width + c
    return key


def _repeats(key: np.ndarray) -> bool:
    """Whether any value occurs twice (an unstable in-place sort is the cheapest check here)."""
    ordered = np.sort(key)
    return bool((ordered[1:] == ordered[:-1]).any())


def _dense_rank(key: np.ndarray) -> np.ndarray:
    """`key` renumbered 0, 1, 2… in the same order (equal stays equal)."""
    order = np.argsort(key)
    ordered = key[order]
    rank = np.empty_like(key)
    rank[order] = np.concatenate(([0], np.cumsum(ordered[1:] != ordered[:-1])))
    return rank


def _tag_codes(column: pa.ChunkedArray, rows: np.ndarray | None) -> np.ndarray:
    """Integer codes of a tag's values (at `rows`, None = all): equal strings share a code, absent is -1."""
    values = column if rows is None else _take(column, pa.array(rows))
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)  # codes must not depend on per-chunk dictionaries
    encoded = pc.dictionary_encode(values)
    chunks = encoded.chunks
    if any(not c.dictionary.equals(chunks[0].dictionary) for c in chunks[1:]):
        chunks = [pc.dictionary_encode(values.combine_chunks())]  # one dictionary for all codes
    indices = pa.chunked_array([c.indices for c in chunks], pa.int32())
    return np.asarray(indices.fill_null(-1).to_numpy(), dtype=np.int64)


def _merge(table: pa.Table, tags: Sequence[str], groups: _Groups) -> pa.Table:
    """One row per duplicated point at its first write's position; fields take their last non-null value."""
    first = groups.rows[groups.starts]
    keep = np.ones(table.num_rows, dtype=bool)
    keep[groups.rows] = False
    keep[first] = True
    mask = pa.array(keep)
    merged_at = (np.cumsum(keep) - 1)[first]  # where each point's merged row lands in the output
    tag_set = set(tags)
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name == TIME or name in tag_set:
            # Equal within a point: any of its rows will do. Filtering is 3-4x faster than a take here.
            columns.append(_on_plain(column, lambda c: c.filter(mask)))
        else:
            patch = functools.partial(_patched, mask=mask, merged_at=merged_at, first=first,
                                      chosen=_last_written(column, groups, first))
            columns.append(_on_plain(column, patch))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _patched(column: pa.ChunkedArray, mask: pa.Array, merged_at: np.ndarray, first: np.ndarray,
             chosen: np.ndarray) -> pa.ChunkedArray:
    """`column` filtered by `mask`, with each point's row taking the value of row `chosen` (not `first`)."""
    kept = column.filter(mask)
    moved = chosen != first
    if not moved.any():
        return kept
    at = merged_at[moved]
    order = np.argsort(at)  # replace_with_mask takes the replacements in output order
    where = np.zeros(len(kept), dtype=bool)
    where[at] = True
    values = column.take(pa.array(chosen[moved][order])).combine_chunks()
    return pc.replace_with_mask(kept, pa.array(where), values)


def _last_written(column: pa.ChunkedArray, groups: _Groups, first: np.ndarray) -> np.ndarray:
    """Per point, the row number of the last non-null value of `column` (its first row if all are null)."""
    valid = np.asarray(_take(column, pa.array(groups.rows)).is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    position = np.where(valid, np.arange(len(groups.rows)), -1)
    last = np.maximum.reduceat(position, groups.starts)
    return np.where(last >= 0, groups.rows[np.maximum(last, 0)], first)


def _take(column: pa.ChunkedArray, indices: pa.Array) -> pa.ChunkedArray:
    return _on_plain(column, lambda c: c.take(indices))


def _on_plain(column: pa.ChunkedArray, op: Callable[[pa.ChunkedArray], pa.ChunkedArray]) -> pa.ChunkedArray:
    """`op(column)`, also for Utf8View, which pyarrow cannot take from or filter: that goes through a
    plain-string copy of the whole column, so callers with a choice merge plain strings."""
    if pa.types.is_string_view(column.type):
        return op(column.cast(pa.string())).cast(column.type)
    return op(column)


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

    def rows_inside(self, table: pa.Table) -> pa.Table:
        """The rows of `table` whose time lies in a dirty range (in their order)."""
        inside = self.contains(time_values(table))
        return table if inside.all() else table.filter(pa.array(inside))

    def rows_outside(self, table: pa.Table) -> pa.Table:
        """The rows of `table` whose time lies in no dirty range (in their order)."""
        inside = self.contains(time_values(table))
        return table if not inside.any() else table.filter(pa.array(~inside))

    def widened(self, more: Overlaps, min_times: Sequence[int], max_times: Sequence[int]) -> Overlaps:
        """These dirty ranges and `more`'s together, with `dirty` found again for the file intervals given
        (the same files these ranges were found for)."""
        lo, hi = _union(np.concatenate((self.lo, more.lo)), np.concatenate((self.hi, more.hi)))
        return Overlaps(dirty=_meeting(lo, hi, np.asarray(min_times, dtype=np.int64),
                                       np.asarray(max_times, dtype=np.int64)), lo=lo, hi=hi)

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
        return cls.of_merged(dedupe(table, tags))

    @classmethod
    def of_merged(cls, rows: pa.Table) -> Points:
        """`rows`, known to hold no duplicate points, with their times."""
        times = time_values(rows)
        return cls(rows=rows, times=times, sorted_times=np.sort(times, kind="stable"))

    def extended(self, more: pa.Table, tags: Sequence[str]) -> Points:
        """These points followed by `more` (later writes, same schema), merged: only the new rows and the
        points they meet are compared, so a growing buffer is not merged from scratch at every commit."""
        table = pa.concat_tables([self.rows, more])
        rows = dedupe(table, tags, clean_rows=self.rows.num_rows)
        if rows is not table:
            return Points.of_merged(rows)  # rare (a retried write): times from the merged rows
        added = time_values(more)
        # Stable sort = timsort: two sorted runs are merged in linear time.
        sorted_times = np.sort(np.concatenate((self.sorted_times, np.sort(added))), kind="stable")
        return Points(rows=rows, times=np.concatenate((self.times, added)), sorted_times=sorted_times)


def dirty_ranges(min_times: Sequence[int], max_times: Sequence[int], sorted_buffer_times: np.ndarray) -> Overlaps:
    """Where duplicate points can be, given the persisted files' [min, max] time intervals and the buffered
    rows' sorted times.

    Files are internally duplicate-free and buffered rows are merged among themselves, so a duplicate needs
    two sources holding the same time: it can only lie where two file intervals intersect, or at a
    buffered time inside a file's interval. Only those stretches are dirty — not the files' whole spans —
    so two big files that overlap by a few milliseconds (writers' clocks or batches slightly out of order)
    cost a few milliseconds of rows in the merge, not both files.
    """
    lo_in = np.asarray(min_times, dtype=np.int64)
    hi_in = np.asarray(max_times, dtype=np.int64)
    if not len(lo_in):
        return Overlaps(np.zeros(0, dtype=bool), lo_in, hi_in)
    order = np.argsort(lo_in, kind="stable")
    lo, hi = lo_in[order], hi_in[order]
    reach = np.maximum.accumulate(hi)
    # Sorted by start, interval j meets an earlier one exactly on [lo_j, min(hi_j, the earlier ones' reach)].
    pair_lo, pair_hi = lo[1:], np.minimum(hi[1:], reach[:-1])
    met = pair_lo <= pair_hi
    buf_lo, buf_hi = _buffered_spans(lo, hi, sorted_buffer_times)
    d_lo, d_hi = _union(np.concatenate((pair_lo[met], buf_lo)), np.concatenate((pair_hi[met], buf_hi)))
    return Overlaps(dirty=_meeting(d_lo, d_hi, lo_in, hi_in), lo=d_lo, hi=d_hi)


def _meeting(d_lo: np.ndarray, d_hi: np.ndarray, lo_in: np.ndarray, hi_in: np.ndarray) -> np.ndarray:
    """Which intervals [lo_in, hi_in] meet a range of the disjoint ascending [d_lo, d_hi]: the first range
    ending at or after an interval's start."""
    dirty = np.zeros(len(lo_in), dtype=bool)
    at = np.searchsorted(d_hi, lo_in, side="left")
    found = at < len(d_lo)
    dirty[found] = d_lo[at[found]] <= hi_in[found]
    return dirty


def layers_meet(base_min: Sequence[int], base_max: Sequence[int], min_times: Sequence[int],
                max_times: Sequence[int], sorted_times: np.ndarray) -> Overlaps:
    """Where rows of a lower layer (files [base_min, base_max], duplicate-free among themselves) can share a
    point with rows of the layers above it (files [min_times, max_times], and rows at `sorted_times`): where
    a file interval above meets a lower one, and the first to last time above inside each lower interval.
    `dirty` says which lower files meet those ranges."""
    b_lo, b_hi = _union(np.asarray(base_min, dtype=np.int64), np.asarray(base_max, dtype=np.int64))
    o_lo, o_hi = _union(np.asarray(min_times, dtype=np.int64), np.asarray(max_times, dtype=np.int64))
    # Each interval above against the lower intervals it reaches (both lists disjoint and ascending).
    first = np.searchsorted(b_hi, o_lo, side="left")
    last = np.searchsorted(b_lo, o_hi, side="right")
    counts = np.maximum(last - first, 0)
    above = np.repeat(np.arange(len(o_lo)), counts)
    below = np.concatenate([np.arange(f, f + c) for f, c in zip(first, counts, strict=True)]) if len(above) else \
        np.zeros(0, dtype=np.int64)
    pair_lo = np.maximum(o_lo[above], b_lo[below]) if len(above) else np.zeros(0, dtype=np.int64)
    pair_hi = np.minimum(o_hi[above], b_hi[below]) if len(above) else np.zeros(0, dtype=np.int64)
    buf_lo, buf_hi = _buffered_spans(b_lo, b_hi, sorted_times)
    lo, hi = _union(np.concatenate((pair_lo, buf_lo)), np.concatenate((pair_hi, buf_hi)))
    return Overlaps(dirty=_meeting(lo, hi, np.asarray(base_min, dtype=np.int64), np.asarray(base_max, dtype=np.int64)),
                    lo=lo, hi=hi)


def _buffered_spans(lo: np.ndarray, hi: np.ndarray, buffered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per file interval (any order), the first to last buffered time inside it (files holding none: left out)."""
    if not len(buffered):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    first = np.searchsorted(buffered, lo, side="left")
    last = np.searchsorted(buffered, hi, side="right") - 1
    has = first <= last
    return buffered[first[has]], buffered[last[has]]


def _union(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive ranges merged into disjoint ascending ones."""
    if not len(lo):
        return lo.astype(np.int64), hi.astype(np.int64)
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    starts = np.ones(len(lo), dtype=bool)
    starts[1:] = lo[1:] > reach[:-1]
    index = np.flatnonzero(starts)
    return lo[index], np.maximum.reduceat(hi, index)
