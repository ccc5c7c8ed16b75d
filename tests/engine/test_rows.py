"""table_batches rows hold only the columns present in each line, ordered tags, fields, time."""

from __future__ import annotations

import pyarrow as pa

from lakeflux.engine.ports import SegmentTable
from lakeflux.engine.rows import segment_rows, table_batches


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
