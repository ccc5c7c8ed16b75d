"""Query results as Python rows for plugins (CONTRACT.md §1.6) and WAL trigger rows (§1.8)."""

from __future__ import annotations

import datetime
import decimal
import math

import pyarrow as pa
import pytest

from lakeflux.query.convert import column_values, table_batches_rows, table_to_rows

NS = 1_000_000_000


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (pa.array([1, None], pa.int64()), [1, None]),
        (pa.array([2**64 - 1], pa.uint64()), [2**64 - 1]),
        (pa.array([-3], pa.int8()), [-3]),
        (pa.array([1.5, None]), [1.5, None]),
        (pa.array([1.5], pa.float32()), [1.5]),
        (pa.array([1.5], pa.float16()), [1.5]),
        (pa.array(["a", None]), ["a", None]),
        (pa.array(["a"], pa.large_string()), ["a"]),
        (pa.array(["cpu", None, "cpu"]).dictionary_encode(), ["cpu", None, "cpu"]),
        (pa.array([True, False, None]), [True, False, None]),
        (pa.array([1_500_000_000, None], pa.timestamp("ns")), [1_500_000_000, None]),
        (pa.array([1_500_000], pa.timestamp("us")), [1_500_000_000]),
        (pa.array([1_500], pa.timestamp("ms")), [1_500_000_000]),
        (pa.array([2], pa.timestamp("s")), [2 * NS]),
        (pa.array([-1], pa.timestamp("ms")), [-1_000_000]),
        (pa.array([-1], pa.timestamp("ns")), [-1]),
        (pa.array([5], pa.timestamp("ns", tz="UTC")), [5]),
        (pa.array([5], pa.timestamp("ns", tz="+00:00")), [5]),
        (pa.array([5], pa.timestamp("s", tz="America/New_York")), [5 * NS]),
        # beyond the int64 nanosecond range: Python ints do not overflow
        (pa.array([253_402_300_799], pa.timestamp("s")), [253_402_300_799 * NS]),
        (pa.array([1_500], pa.duration("ms")), [1_500_000_000]),
        (pa.array([datetime.date(2024, 2, 29), None], pa.date32()), ["2024-02-29", None]),
        (pa.array([datetime.date(1969, 12, 31)], pa.date64()), ["1969-12-31"]),
        (pa.array([3_723_500_000_000], pa.time64("ns")), ["01:02:03.500"]),
        (pa.array([3_723], pa.time32("s")), ["01:02:03"]),
        (pa.array([decimal.Decimal("1.50"), None], pa.decimal128(5, 2)), [1.5, None]),
        (pa.array([b"\x00\x01"]), [b"\x00\x01"]),
        (pa.array([[1, 2], None]), [[1, 2], None]),
        (pa.array([{"a": 1}]), [{"a": 1}]),
        (pa.array([None, None], pa.null()), [None, None]),
    ],
)
def test_column_values(array: pa.Array, expected: list) -> None:
    values = column_values(array)
    assert values == expected
    assert [type(value) for value in values] == [type(value) for value in expected]


def test_interval_converts_to_month_day_nano() -> None:
    interval = pa.scalar((1, 2, 300 * NS), pa.month_day_nano_interval()).as_py()
    [value] = column_values(pa.array([interval], pa.month_day_nano_interval()))
    assert (value.months, value.days, value.nanoseconds) == (1, 2, 300 * NS)


def test_nan_stays_a_float_nan() -> None:
    [value] = column_values(pa.array([float("nan")]))
    assert isinstance(value, float) and math.isnan(value)


def test_chunked_columns_are_concatenated() -> None:
    column = pa.chunked_array([pa.array([1, 2]), pa.array([3])])
    assert column_values(column) == [1, 2, 3]
    assert column_values(pa.chunked_array([], pa.int64())) == []


def test_table_to_rows_keeps_every_column_with_none_for_null() -> None:
    table = pa.table(
        {
            "host": pa.array(["a", None]).dictionary_encode(),
            "usage": pa.array([None, 2.5]),
            "time": pa.array([NS, 2 * NS], pa.timestamp("ns")),
        }
    )
    assert table_to_rows(table) == [
        {"host": "a", "usage": None, "time": NS},
        {"host": None, "usage": 2.5, "time": 2 * NS},
    ]
    assert list(table_to_rows(table)[0]) == ["host", "usage", "time"]


def test_table_to_rows_empty_is_an_empty_list() -> None:
    assert table_to_rows(pa.table({"a": pa.array([], pa.int64())})) == []
    assert table_to_rows(pa.table({})) == []


def test_table_to_rows_over_several_chunks() -> None:
    table = pa.Table.from_batches(
        [pa.RecordBatch.from_pydict({"n": [1, 2]}), pa.RecordBatch.from_pydict({"n": [3]})]
    )
    assert table_to_rows(table) == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_rows_are_fresh_each_call() -> None:
    table = pa.table({"host": ["a"], "time": pa.array([1], pa.timestamp("ns"))})
    first = table_to_rows(table)
    first[0].pop("host")
    assert table_to_rows(table) == [{"host": "a", "time": 1}]
    rows = table_batches_rows(table, ["host"])
    rows[0].clear()
    assert table_batches_rows(table, ["host"]) == [{"host": "a", "time": 1}]


# --------------------------------------------------------------------------------------------- WAL rows


def wal_table() -> pa.Table:
    return pa.table(
        {
            "usage": pa.array([1.5, None, 3.0]),
            "time": pa.array([10, 20, 30], pa.timestamp("ns")),
            "region": pa.array(["eu", "us", None]).dictionary_encode(),
            "host": pa.array(["a", None, "c"]).dictionary_encode(),
            "count": pa.array([None, 7, 8], pa.uint64()),
            "ok": pa.array([True, None, False]),
            "note": pa.array(["x", "y", None]),
        }
    )


def test_wal_rows_only_hold_present_columns_in_tag_field_time_order() -> None:
    rows = table_batches_rows(wal_table(), ["host", "region"])
    assert rows == [
        {"host": "a", "region": "eu", "usage": 1.5, "ok": True, "note": "x", "time": 10},
        {"region": "us", "count": 7, "note": "y", "time": 20},
        {"host": "c", "usage": 3.0, "count": 8, "ok": False, "time": 30},
    ]
    assert [list(row) for row in rows] == [
        ["host", "region", "usage", "ok", "note", "time"],
        ["region", "count", "note", "time"],
        ["host", "usage", "count", "ok", "time"],
    ]
    assert all(type(row["time"]) is int for row in rows)


def test_wal_rows_without_nulls_and_unknown_tags() -> None:
    table = pa.table(
        {
            "time": pa.array([5], pa.timestamp("ns")),
            "v": pa.array([1]),
            "t": pa.array(["x"]).dictionary_encode(),
        }
    )
    rows = table_batches_rows(table, ["missing", "t", "t"])
    assert rows == [{"t": "x", "v": 1, "time": 5}]
    assert list(rows[0]) == ["t", "v", "time"]


def test_wal_rows_nan_is_present_and_empty_tables_give_no_rows() -> None:
    rows = table_batches_rows(pa.table({"v": [float("nan")], "time": pa.array([1], pa.timestamp("ns"))}), [])
    assert list(rows[0]) == ["v", "time"] and math.isnan(rows[0]["v"])
    assert table_batches_rows(pa.table({"v": pa.array([], pa.float64())}), []) == []


def test_wal_rows_without_a_time_column() -> None:
    assert table_batches_rows(pa.table({"v": [1, None]}), []) == [{"v": 1}, {}]
