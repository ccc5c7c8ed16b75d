"""buffer/dedupe.py: duplicate points merge (last non-null write per field); nothing else changes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

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
    # files: [0,10] alone; [20,30] and [25,40] overlap; [50,60] alone but a buffered row at 55; [70,80] alone
    lo, hi = [20, 0, 50, 25, 70], [30, 10, 60, 40, 80]
    o = dirty_ranges(lo, hi, np.array([5 - 100, 55, 90], dtype=np.int64))
    assert o.dirty.tolist() == [True, False, True, True, False]
    assert list(zip(o.lo.tolist(), o.hi.tolist(), strict=True)) == [(20, 40), (50, 60)]
    assert o.contains(np.array([19, 20, 40, 41, 55, 61])).tolist() == [False, True, True, False, True, False]
    touching = dirty_ranges([0, 10], [10, 20], np.array([], dtype=np.int64))
    assert touching.dirty.tolist() == [True, True]
    none = dirty_ranges([], [], np.array([1], dtype=np.int64))
    assert not none.contains(np.array([1])).any()
