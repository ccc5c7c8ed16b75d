"""buffer/dedupe.py: duplicate points merge (last non-null write per field); nothing else changes."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import lakeflux.buffer.dedupe as dedupe_module
from lakeflux.buffer.dedupe import Points, dedupe, dirty_ranges

TAGS = ["host", "region"]


def table(rows: list[dict[str, Any]], *, views: bool = False) -> pa.Table:
    text = pa.string_view() if views else pa.string()
    schema = pa.schema([("host", text), ("region", text), ("time", pa.timestamp("ns")), ("a", pa.float64()),
                        ("b", pa.int64()), ("s", text)])
    return pa.Table.from_pylist(rows, schema=schema)


def row(time: int, host: str | None = "h", region: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"host": host, "region": region, "time": time, **fields}


def plain(t: pa.Table) -> list[dict[str, Any]]:
    """Rows as Python values: view strings as str, time as int nanoseconds."""
    def simple(f: pa.Field) -> pa.Field:
        if pa.types.is_string_view(f.type):
            return f.with_type(pa.string())
        return f.with_type(pa.int64()) if pa.types.is_timestamp(f.type) else f
    return t.cast(pa.schema([simple(f) for f in t.schema])).to_pylist()


def reference(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain-Python model: points keyed by (time, tags), first-write position, last non-null per field."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r["time"], *(r.get(t) for t in TAGS))
        if key not in merged:
            merged[key] = dict(r)
            continue
        for name, value in r.items():
            if value is not None:
                merged[key][name] = value
    return list(merged.values())


def test_no_duplicates_returns_the_same_object():
    unique = table([row(1, a=1.0), row(2, a=2.0), row(2, host="g", a=3.0), row(0, a=4.0)])
    assert dedupe(unique, TAGS) is unique
    sorted_unique = table([row(i, a=float(i)) for i in range(100)])
    assert dedupe(sorted_unique, TAGS) is sorted_unique
    assert dedupe(table([]), TAGS) is not None


def test_same_point_twice_is_one_row():
    t = table([row(5, a=1.0), row(5, a=1.0)])
    assert plain(dedupe(t, TAGS)) == [row(5, a=1.0, b=None, s=None)]


def test_later_value_wins_and_null_does_not_erase():
    t = table([row(5, a=1.0, b=1, s="x"), row(6, a=9.0), row(5, a=2.0, b=None), row(5, s="y")])
    assert plain(dedupe(t, TAGS)) == [row(5, a=2.0, b=1, s="y"), row(6, a=9.0, b=None, s=None)]


def test_different_tag_sets_and_absent_tags_are_different_series():
    t = table([row(5, a=1.0), row(5, region="r", a=2.0), row(5, host=None, a=3.0), row(5, host=None, b=4),
               row(5, host="g", a=5.0)])
    assert plain(dedupe(t, TAGS)) == [row(5, a=1.0, b=None, s=None), row(5, region="r", a=2.0, b=None, s=None),
                                      row(5, host=None, a=3.0, b=4, s=None), row(5, host="g", a=5.0, b=None, s=None)]


def test_sorted_input_stays_sorted_and_views_work():
    rows = [row(1, a=1.0), row(2, a=2.0), row(2, a=3.0), row(3, region="r", a=4.0), row(3, region="r", b=1)]
    out = dedupe(table(rows, views=True), TAGS)
    assert out.schema == table([], views=True).schema
    assert plain(out) == [{**r, **{k: r.get(k) for k in ("a", "b", "s")}} for r in reference(rows)]
    assert np.all(np.diff(out.column("time").cast(pa.int64()).to_numpy()) >= 0)


def test_missing_tag_columns_and_many_chunks():
    t = pa.concat_tables([pa.table({"time": pa.array([1, 2], pa.timestamp("ns")), "v": [1.0, None]}),
                          pa.table({"time": pa.array([2, 1], pa.timestamp("ns")), "v": [5.0, 6.0]})])
    assert plain(dedupe(t, ["host"])) == [{"time": 1, "v": 6.0}, {"time": 2, "v": 5.0}]


rows_strategy = st.lists(
    st.fixed_dictionaries({
        "host": st.sampled_from(["a", "b", None]),
        "region": st.sampled_from(["r", None]),
        "time": st.integers(0, 4),
        "a": st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)),
        "b": st.one_of(st.none(), st.integers(-3, 3)),
        "s": st.one_of(st.none(), st.sampled_from(["x", "y", ""])),
    }),
    max_size=30,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(rows_strategy, st.booleans())
def test_matches_the_reference_model(rows, views):
    t = table(rows, views=views)
    out = dedupe(t, TAGS)
    expected = reference(rows)
    assert plain(out) == expected
    if len(expected) == len(rows):
        assert out is t


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(rows_strategy, st.integers(1, 8))
def test_candidates_compared_in_windows_merge_the_same(rows, window):
    """Big buffers compare their candidate rows a window at a time (whole runs of one time per window)."""
    with mock.patch.object(dedupe_module, "WINDOW_ROWS", window):
        out = dedupe(table(rows), TAGS)
        windows = list(dedupe_module._windows(np.array([r["time"] for r in rows] or [0], dtype=np.int64),
                                              np.argsort([r["time"] for r in rows] or [0], kind="stable")))
    assert plain(out) == reference(rows)
    if rows:
        ends = [int(w[-1]) for w in windows[:-1]]
        starts = [int(w[0]) for w in windows[1:]]
        assert all(rows[a]["time"] != rows[b]["time"] for a, b in zip(ends, starts, strict=True))
        assert sum(len(w) for w in windows) == len(rows)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(rows_strategy, rows_strategy)
def test_appended_rows_merge_like_a_full_merge(earlier, later):
    """A buffer's merge is extended commit by commit: only appended rows and the points they meet."""
    first = table(earlier)
    merged = dedupe(first, TAGS)
    both = pa.concat_tables([merged, table(later)])
    out = dedupe(both, TAGS, clean_rows=merged.num_rows)
    assert plain(out) == reference(earlier + later)
    extended = Points.merged(first, TAGS).extended(table(later), TAGS)
    assert plain(extended.rows) == reference(earlier + later)
    times = extended.rows.column("time").cast(pa.int64()).to_numpy()
    assert extended.times.tolist() == times.tolist()
    assert extended.sorted_times.tolist() == sorted(times.tolist())


def test_dirty_ranges_sweep():
    # files: [0,10] alone; [20,30] and [25,40] meet on [25,30]; [50,60] alone but a buffered row at 55;
    # [70,80] alone. Only where two sources hold the same times is dirty, not the files' whole spans.
    lo, hi = [20, 0, 50, 25, 70], [30, 10, 60, 40, 80]
    o = dirty_ranges(lo, hi, np.array([5 - 100, 55, 90], dtype=np.int64))
    assert o.dirty.tolist() == [True, False, True, True, False]
    assert list(zip(o.lo.tolist(), o.hi.tolist(), strict=True)) == [(25, 30), (55, 55)]
    assert o.contains(np.array([19, 24, 25, 30, 31, 40, 54, 55, 56])).tolist() == [
        False, False, True, True, False, False, False, True, False]
    touching = dirty_ranges([0, 10], [10, 20], np.array([], dtype=np.int64))
    assert touching.dirty.tolist() == [True, True]
    assert list(zip(touching.lo.tolist(), touching.hi.tolist(), strict=True)) == [(10, 10)]
    # A file inside another, and a third meeting only the outer one: every pairwise intersection is dirty.
    nested = dirty_ranges([0, 10, 90], [100, 20, 200], np.array([150, 160], dtype=np.int64))
    assert list(zip(nested.lo.tolist(), nested.hi.tolist(), strict=True)) == [(10, 20), (90, 100), (150, 160)]
    assert nested.dirty.tolist() == [True, True, True]
    table = pa.table({"time": pa.array([5, 10, 15, 25], pa.timestamp("ns"))})
    assert touching.rows_inside(table).column("time").cast(pa.int64()).to_pylist() == [10]
    assert touching.rows_outside(table).column("time").cast(pa.int64()).to_pylist() == [5, 15, 25]
    none = dirty_ranges([], [], np.array([1], dtype=np.int64))
    assert not none.contains(np.array([1])).any()


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 15)), max_size=6),
       st.lists(st.integers(0, 80), max_size=6))
def test_dirty_ranges_cover_every_possible_duplicate(spans, buffered):
    lo = [a for a, _ in spans]
    hi = [a + w for a, w in spans]
    o = dirty_ranges(lo, hi, np.array(sorted(buffered), dtype=np.int64))
    domain = np.arange(0, 100)
    covered = [sum(a <= t <= b for a, b in zip(lo, hi, strict=True)) for t in domain.tolist()]
    must = [c >= 2 or (c >= 1 and t in buffered) for t, c in zip(domain.tolist(), covered, strict=True)]
    dirty_at = o.contains(domain).tolist()
    assert all(d for d, m in zip(dirty_at, must, strict=True) if m)  # no possible duplicate is missed
    assert all(c >= 1 for d, c in zip(dirty_at, covered, strict=True) if d)  # dirty only where files are
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        assert bool(o.dirty[i]) == any(dirty_at[a:b + 1])


def test_read_parquet_within_decodes_only_row_groups_meeting_the_ranges():
    import io

    import pyarrow.parquet as pq

    from lakeflux.buffer.tablefiles import read_parquet_within

    table = pa.table({"time": pa.array(range(0, 400, 10), pa.timestamp("ns")), "v": [float(i) for i in range(40)]})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=10)  # row groups: times 0-90, 100-190, 200-290, 300-390
    data = sink.getvalue()
    got = read_parquet_within(data, np.array([95, 385], dtype=np.int64), np.array([105, 500], dtype=np.int64))
    assert got.column("time").cast(pa.int64()).to_pylist() == list(range(100, 200, 10)) + list(range(300, 400, 10))
    none = read_parquet_within(data, np.array([1_000], dtype=np.int64), np.array([2_000], dtype=np.int64))
    assert none.num_rows == 0 and none.schema.names == ["time", "v"]
