"""table_batches rows hold only the columns present in each line, ordered tags, fields, time; they are built
when the plugin first looks at them, and every call gets its own."""

from __future__ import annotations

import copy
import json
import pickle
import threading
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakeflux.engine.ports import SegmentTable
from lakeflux.engine.rows import RowNotBuilt, Rows, merged_table_batches, segment_rows, table_batches


def _cpu() -> SegmentTable:
    data = pa.table(
        {
            "usage": pa.array([1.5, None, 3.0], pa.float64()),
            "host": pa.array(["a", "b", None], pa.string()),
            "time": pa.array([10, 20, 30], pa.int64()),
            "count": pa.array([None, 2, 3], pa.int64()),
            "big": pa.array([None, None, 2**63], pa.uint64()),
            "ok": pa.array([True, None, False], pa.bool_()),
            "msg": pa.array(["x", None, ""], pa.string()),
            "region": pa.array(["eu", "us", "eu"], pa.string()),
        }
    )
    return SegmentTable(table="cpu", data=data, tags=("region", "host"))


def test_rows_keep_only_present_columns_in_tag_field_time_order() -> None:
    rows = segment_rows(_cpu().data, _cpu().tags)
    assert rows == [
        {"host": "a", "region": "eu", "usage": 1.5, "ok": True, "msg": "x", "time": 10},
        {"host": "b", "region": "us", "count": 2, "time": 20},
        {"region": "eu", "usage": 3.0, "count": 3, "big": 2**63, "ok": False, "msg": "", "time": 30},
    ]
    assert list(rows[0]) == ["host", "region", "usage", "ok", "msg", "time"]
    assert list(rows[2]) == ["region", "usage", "count", "big", "ok", "msg", "time"]
    assert type(rows[2]["big"]) is int and type(rows[0]["time"]) is int


def test_timestamp_and_dictionary_columns_become_int_ns_and_str() -> None:
    data = pa.table(
        {
            "t": pa.array(["x", "y"]).dictionary_encode(),
            "v": pa.array([1, 2], pa.int64()),
            "time": pa.array([1, 2], pa.timestamp("ms")),
        }
    )
    assert segment_rows(data, ("t",)) == [
        {"t": "x", "v": 1, "time": 1_000_000},
        {"t": "y", "v": 2, "time": 2_000_000},
    ]


def test_table_batches_filters_and_keeps_segment_order() -> None:
    mem = SegmentTable("mem", pa.table({"free": [1], "time": [5]}), ())
    empty = SegmentTable(
        "disk", pa.table({"free": pa.array([], pa.int64()), "time": pa.array([], pa.int64())}), ()
    )
    tables = [mem, _cpu(), empty]
    everything = table_batches(tables)
    assert [batch["table_name"] for batch in everything] == ["mem", "cpu"]
    assert everything[0]["rows"] == [{"free": 1, "time": 5}]
    only_cpu = table_batches(tables, "cpu")
    assert [batch["table_name"] for batch in only_cpu] == ["cpu"]
    assert table_batches(tables, "absent") == []


def test_each_call_builds_fresh_mutable_rows() -> None:
    tables = [_cpu()]
    first = table_batches(tables)
    first[0]["rows"][0].pop("host")
    first[0]["rows"].clear()
    second = table_batches(tables)
    assert second[0]["rows"][0]["host"] == "a"
    assert len(second[0]["rows"]) == 3


# -- rows built when first looked at ---------------------------------------------------------------------------


def _unbuilt(rows: list[Any]) -> bool:
    """Whether the list still holds placeholders (what C code reading its storage directly would see)."""
    return len(rows) > 0 and isinstance(list.__getitem__(rows, 0), RowNotBuilt)


def test_len_and_truth_do_not_build_rows() -> None:
    batches = merged_table_batches([[_cpu()], [_cpu()]])
    rows = batches[0]["rows"]
    assert isinstance(rows, list)
    assert len(rows) == 6 and rows
    assert sum(len(batch["rows"]) for batch in batches) == 6
    assert _unbuilt(rows)
    assert rows[4] == {"host": "b", "region": "us", "count": 2, "time": 20}
    assert not _unbuilt(rows)
    assert type(rows) is Rows  # a plain list subclass from here on


def test_clear_drops_unbuilt_rows() -> None:
    rows = table_batches([_cpu()])[0]["rows"]
    rows.clear()
    assert rows == [] and len(rows) == 0
    rows.append({"x": 1})
    assert rows == [{"x": 1}]


def test_mutating_first_builds_then_mutates() -> None:
    rows = table_batches([_cpu()])[0]["rows"]
    rows.append({"extra": 1})
    assert len(rows) == 4 and rows[0]["host"] == "a" and rows[3] == {"extra": 1}
    rows = table_batches([_cpu()])[0]["rows"]
    rows[1] = {"replaced": True}
    del rows[0]
    assert rows[0] == {"replaced": True} and len(rows) == 2
    rows = table_batches([_cpu()])[0]["rows"]
    rows.insert(0, {})
    rows.sort(key=len)
    assert rows[0] == {} and len(rows) == 4


def test_every_call_and_attempt_gets_its_own_dicts() -> None:
    segments = [[_cpu()]]
    first = merged_table_batches(segments)[0]["rows"]
    second = merged_table_batches(segments)[0]["rows"]
    first[0].pop("host")
    first[2]["usage"] = -1.0
    assert second[0]["host"] == "a" and second[2]["usage"] == 3.0
    assert all(a is not b for a, b in zip(first, second, strict=True))
    assert merged_table_batches(segments)[0]["rows"][0]["host"] == "a"


def test_rows_are_built_once_for_every_thread() -> None:
    rows = merged_table_batches([[_cpu()]] * 50)[0]["rows"]
    seen: list[list[int]] = []
    barrier = threading.Barrier(4)

    def touch() -> None:
        barrier.wait()
        seen.append([id(row) for row in rows])

    threads = [threading.Thread(target=touch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 4 and all(ids == seen[0] for ids in seen)
    assert len(rows) == 150


def test_list_operations_see_the_rows() -> None:
    expected = segment_rows(_cpu().data, _cpu().tags) * 2

    def fresh() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = merged_table_batches([[_cpu()], [_cpu()]])[0]["rows"]
        return rows

    assert fresh() == expected and expected == fresh() and fresh() == fresh()
    assert [] + fresh() == expected and fresh() + [] == expected and 2 * fresh() == expected * 2
    assert list(fresh()) == expected and [*fresh()] == expected and list(reversed(fresh())) == expected[::-1]
    assert fresh()[1:3] == expected[1:3] and expected[2] in fresh() and fresh().index(expected[2]) == 2
    assert repr(fresh()) == repr(expected) and f"{fresh()}" == str(expected)
    assert copy.deepcopy(fresh()) == expected and pickle.loads(pickle.dumps(fresh())) == expected
    assert sorted(fresh(), key=lambda row: row["time"])[0]["time"] == 10
    assert json.loads(json.dumps([{"table_name": "cpu", "rows": fresh()}]))[0]["rows"] == expected
    plain: list[dict[str, Any]] = []
    plain.extend(fresh())
    assert plain == expected


def test_code_reading_list_storage_directly_fails_loudly_before_the_first_build() -> None:
    """orjson reads a list subclass's items without iterating: it raises instead of writing no rows."""
    rows = table_batches([_cpu()])[0]["rows"]
    with pytest.raises(TypeError, match="RowNotBuilt"):
        orjson.dumps(rows)
    assert orjson.loads(orjson.dumps(list(rows))) == segment_rows(_cpu().data, _cpu().tags)
    assert orjson.loads(orjson.dumps(rows)) == segment_rows(_cpu().data, _cpu().tags)  # built now


_COLUMN_TYPES = {
    "i": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "u": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "f": (pa.float64(), st.floats(allow_nan=False)),
    "b": (pa.bool_(), st.booleans()),
    "s": (pa.string(), st.text(max_size=5)),
}


@st.composite
def _segment_tables(draw: st.DrawFn) -> SegmentTable:
    rows = draw(st.integers(1, 12))
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True, max_size=5))
    tags = tuple(name for name in names if draw(st.booleans()))
    columns: dict[str, pa.Array] = {}
    for name in names:
        kind = "s" if name in tags else draw(st.sampled_from(sorted(_COLUMN_TYPES)))
        arrow_type, values = _COLUMN_TYPES[kind]
        cells = draw(st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows))
        columns[name] = pa.array(cells, arrow_type)
    columns["time"] = pa.array(draw(st.lists(st.integers(0, 2**62), min_size=rows, max_size=rows)), pa.int64())
    order = draw(st.permutations(list(columns)))
    return SegmentTable(draw(st.sampled_from(["m", "n"])), pa.table({name: columns[name] for name in order}), tags)


def _oracle(tables: list[SegmentTable]) -> list[dict[str, Any]]:
    """table_batches built row by row, straight from CONTRACT §1.8."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for table in tables:
        names = table.data.column_names
        keys = ([n for n in names if n in table.tags] + [n for n in names if n not in table.tags and n != "time"]
                + ["time"])
        for record in table.data.to_pylist():
            merged.setdefault(table.table, []).append({k: record[k] for k in keys if record[k] is not None})
    return [{"table_name": name, "rows": rows} for name, rows in merged.items()]


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.lists(_segment_tables(), min_size=1, max_size=4), st.sampled_from(["iterate", "index", "json", "len"]))
def test_lazy_rows_equal_rows_built_one_by_one(tables: list[SegmentTable], access: str) -> None:
    expected = _oracle(tables)
    batches = merged_table_batches([[table] for table in tables])
    assert [b["table_name"] for b in batches] == [b["table_name"] for b in expected]
    for got, want in zip(batches, expected, strict=True):
        rows = got["rows"]
        assert len(rows) == len(want["rows"])
        if access == "iterate":
            assert [list(row.items()) for row in rows] == [list(row.items()) for row in want["rows"]]
        elif access == "index":
            assert [list(rows[k].items()) for k in range(len(rows))] == [list(r.items()) for r in want["rows"]]
        elif access == "json":
            assert json.dumps(rows) == json.dumps(want["rows"])
        else:
            assert _unbuilt(rows)
            assert rows == want["rows"]
