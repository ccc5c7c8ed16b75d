"""Encoding InfluxQL answers: v1 JSON values and times, chunking, CSV, and InfluxDB 3's flat table."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from lakeflux.influxql.results import (
    Encoder,
    Series,
    StatementResult,
    flat_table,
    rfc3339,
    v1_csv,
    v1_json,
    v1_json_chunks,
)
from lakeflux.influxql.timeutil import epoch_divisor, format_time, parse_time_string, window


def series(values: list[float | None], times: list[int] | None = None, **kw) -> Series:  # type: ignore[no-untyped-def]
    times = times or list(range(len(values)))
    return Series("m", ["time", "v"], [pa.array(times, pa.int64()), pa.array(values, pa.float64())], **kw)


def test_floats_print_like_influxdb_and_infinity_is_an_error():
    body = json.loads(v1_json([StatementResult(0, [series([1.0, 2.5, None, float("nan"), 1e20, 3e19])])],
                              Encoder(1)))
    assert body["results"][0]["series"][0]["values"] == [[0, 1], [1, 2.5], [2, None], [3, None], [4, 1e20],
                                                         [5, 3e19]]
    broken = json.loads(v1_json([StatementResult(0, [series([float("inf")])])], Encoder(1)))
    assert broken == {"results": [{"statement_id": 0, "error": "json: unsupported value: +Inf"}]}


def test_times_in_rfc3339_with_0_3_6_or_9_digits_or_in_an_epoch_unit():
    assert rfc3339(np.array([0, 1_500_000_000, 1_000_001_000, 1_000_000_001])) == [
        "1970-01-01T00:00:00Z", "1970-01-01T00:00:01.500Z", "1970-01-01T00:00:01.000001Z",
        "1970-01-01T00:00:01.000000001Z"]
    assert format_time(1_710_054_000 * 10**9, "America/New_York") == "2024-03-10T03:00:00-04:00"
    assert format_time(1_730_073_600 * 10**9, "Europe/London") == "2024-10-28T00:00:00Z"
    assert Encoder(epoch_divisor("ms")).times(pa.array([1_700_000_000_123_456_789])) == [1_700_000_000_123]


def test_time_literals_and_windows():
    assert parse_time_string("2024-01-01T00:00:00Z") == 1_704_067_200 * 10**9
    assert parse_time_string("2024-01-01 00:00:00.5") == 1_704_067_200_500_000_000
    assert parse_time_string("2024-01-01T02:00:00+02:00") == 1_704_067_200 * 10**9
    assert parse_time_string("2024-01-01", "Asia/Kolkata") == 1_704_067_200 * 10**9 - 19_800 * 10**9
    hour = 3600 * 10**9
    start, end = window(1_730_613_600 * 10**9, 24 * hour, 0, "America/New_York")  # the day clocks go back
    assert (end - start) == 25 * hour
    assert window(90 * 60 * 10**9, hour, 0, None) == (hour, 2 * hour)


def test_chunks_split_series_and_mark_them_partial():
    result = StatementResult(0, [series([1.0, 2.0, 3.0]), Series("n", ["time", "v"], [pa.array([9]), pa.array([4.0])])])
    lines = [json.loads(line) for line in v1_json_chunks([result], Encoder(1), 2)]
    assert [(r["results"][0]["series"][0]["name"], len(r["results"][0]["series"][0]["values"]),
             r["results"][0]["series"][0].get("partial", False), r["results"][0].get("partial", False))
            for r in lines] == [("m", 2, True, True), ("m", 1, False, True), ("n", 1, False, False)]


def test_csv_and_flat_table():
    result = StatementResult(0, [series([1.5], [7], tags={"host": "a,b"})])
    assert v1_csv([result], Encoder(None)) == b'name,tags,time,v\nm,"host=a,b",7,1.5\n'
    table = flat_table(result)
    assert table.column_names == ["iox::measurement", "time", "host", "v"]
    assert table.schema.field("time").type == pa.timestamp("ns")
    assert table.column("host").to_pylist() == ["a,b"]
