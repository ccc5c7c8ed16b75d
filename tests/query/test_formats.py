"""Query output formats (CONTRACT.md §4.3): negotiation and the exact bytes of every format."""

from __future__ import annotations

import datetime
import decimal
import io
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeflux.errors import Invalid
from lakeflux.query import formats
from lakeflux.query.formats import Format, negotiate, render

NS = 1_000_000_000


def body(table: pa.Table, fmt: Format) -> bytes:
    return b"".join(render(table.to_batches(), table.schema, fmt))


def json_rows(table: pa.Table) -> list[dict]:
    return json.loads(body(table, Format.JSON))


def one_value_json(array: pa.Array) -> object:
    """The JSON value of a one-row, one-column result (KeyError if the member was omitted)."""
    return json_rows(pa.table({"x": array}))[0]["x"]


def one_value_csv(array: pa.Array) -> str:
    text = body(pa.table({"x": array}), Format.CSV).decode()
    assert text.startswith("x\n") and text.endswith("\n")
    return text[2:-1]


# ------------------------------------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        (Format.JSON, "application/json"),
        (Format.JSONL, "application/jsonl"),
        (Format.CSV, "text/csv"),
        (Format.PRETTY, "text/plain; charset=utf-8"),
        (Format.PARQUET, "application/vnd.apache.parquet"),
    ],
)
def test_content_types_are_the_contract_ones(fmt: Format, content_type: str) -> None:
    assert fmt.content_type == content_type


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("json", Format.JSON),
        ("jsonl", Format.JSONL),
        ("json_lines", Format.JSONL),
        ("csv", Format.CSV),
        ("pretty", Format.PRETTY),
        ("parquet", Format.PARQUET),
        ("CSV", Format.CSV),
    ],
)
def test_format_parameter_wins_over_accept(param: str, expected: Format) -> None:
    assert negotiate(param, "application/json") is expected
    assert negotiate(param, "application/xml") is expected
    assert negotiate(param, None) is expected


def test_unknown_format_parameter_names_the_value_and_the_valid_ones() -> None:
    with pytest.raises(Invalid) as caught:
        negotiate("xml", None)
    assert "'xml'" in caught.value.message
    for name in ("json", "jsonl", "json_lines", "csv", "pretty", "parquet"):
        assert name in caught.value.message


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, Format.JSON),
        ("", Format.JSON),
        ("   ", Format.JSON),
        ("*/*", Format.JSON),
        ("application/json", Format.JSON),
        ("application/json; charset=utf-8", Format.JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", Format.JSON),
        ("text/html", Format.JSON),
        ("text/csv", Format.CSV),
        ("TEXT/CSV", Format.CSV),
        ("text/plain", Format.PRETTY),
        ("text/plain; charset=utf-8", Format.PRETTY),
        ("application/vnd.apache.parquet", Format.PARQUET),
        ("application/jsonl", Format.JSONL),
        ("application/x-ndjson", Format.JSONL),
        # lists: the first servable type wins, in q order (ties keep header order)
        ("application/xml, text/csv", Format.CSV),
        ("text/csv, application/json", Format.CSV),
        ("text/csv;q=0.5, text/plain", Format.PRETTY),
        ("text/csv;q=0.5, text/plain;q=0.9", Format.PRETTY),
        ("text/csv;q=0, application/json", Format.JSON),
        ("application/xml;q=1, */*;q=0.1", Format.JSON),
        ("text/csv;q=bogus, text/plain", Format.PRETTY),
    ],
)
def test_accept_negotiation(accept: str | None, expected: Format) -> None:
    assert negotiate(None, accept) is expected
    assert negotiate("", accept) is expected


@pytest.mark.parametrize("accept", ["application/xml", "image/png", "text/csv;q=0", "application/json;q=0"])
def test_unservable_accept_is_invalid(accept: str) -> None:
    with pytest.raises(Invalid) as caught:
        negotiate(None, accept)
    assert accept in caught.value.message


# -------------------------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("ns", 0, "1970-01-01T00:00:00"),
        ("ns", 1 * NS + 500_000_000, "1970-01-01T00:00:01.500"),
        ("ns", 1 * NS + 123_456_700, "1970-01-01T00:00:01.123456700"),
        ("ns", 1 * NS + 123_456_000, "1970-01-01T00:00:01.123456"),
        ("ns", 1 * NS + 123_000_000, "1970-01-01T00:00:01.123"),
        ("ns", 1 * NS + 1, "1970-01-01T00:00:01.000000001"),
        ("ns", 1 * NS + 1_000, "1970-01-01T00:00:01.000001"),
        ("ns", 1 * NS + 1_000_000, "1970-01-01T00:00:01.001"),
        ("ns", 999_999_999, "1970-01-01T00:00:00.999999999"),
        ("ns", -1, "1969-12-31T23:59:59.999999999"),
        ("ns", -500_000_000, "1969-12-31T23:59:59.500"),
        ("ns", -NS, "1969-12-31T23:59:59"),
        ("ns", -86_400 * NS, "1969-12-31T00:00:00"),
        ("ns", 1_700_000_000 * NS, "2023-11-14T22:13:20"),
        ("ns", 951_782_400 * NS, "2000-02-29T00:00:00"),  # leap day of a 400-year leap year
        ("ns", 4_107_542_400 * NS, "2100-03-01T00:00:00"),  # 2100 is not a leap year
        ("ns", -(2**63) + 1, "1677-09-21T00:12:43.145224193"),
        ("ns", 2**63 - 1, "2262-04-11T23:47:16.854775807"),
        ("us", 1_500_000, "1970-01-01T00:00:01.500"),
        ("us", 1_000_001, "1970-01-01T00:00:01.000001"),
        ("us", -1, "1969-12-31T23:59:59.999999"),
        ("ms", 1_001, "1970-01-01T00:00:01.001"),
        ("ms", -1, "1969-12-31T23:59:59.999"),
        ("s", 1_700_000_000, "2023-11-14T22:13:20"),
        ("s", -1, "1969-12-31T23:59:59"),
        ("s", -62_135_596_800, "0001-01-01T00:00:00"),
        ("s", 253_402_300_799, "9999-12-31T23:59:59"),
        ("s", 253_402_300_800, "+10000-01-01T00:00:00"),  # beyond four-digit years: per-value path
        ("s", -62_198_755_200, "-0001-01-01T00:00:00"),
    ],
)
def test_naive_timestamps_render_without_z(unit: str, value: int, expected: str) -> None:
    array = pa.array([value], pa.timestamp(unit))
    assert one_value_json(array) == expected
    assert one_value_csv(array) == expected


@pytest.mark.parametrize(
    ("tz", "seconds", "nanos", "expected"),
    [
        ("UTC", 0, 0, "1970-01-01T00:00:00Z"),
        ("+00:00", 1_700_000_000, 500_000_000, "2023-11-14T22:13:20.500Z"),
        ("Etc/UTC", -1, 0, "1969-12-31T23:59:59Z"),
        ("America/New_York", 0, 0, "1969-12-31T19:00:00-05:00"),
        ("America/New_York", 1_719_835_200, 1_000, "2024-07-01T08:00:00.000001-04:00"),  # summer time
        ("+05:30", 0, 0, "1970-01-01T05:30:00+05:30"),
        ("Europe/London", 1_719_835_200, 0, "2024-07-01T13:00:00+01:00"),
        ("Europe/London", 1_704_067_200, 0, "2024-01-01T00:00:00Z"),  # winter: offset zero
    ],
)
def test_tz_aware_timestamps_carry_their_zone(tz: str, seconds: int, nanos: int, expected: str) -> None:
    array = pa.array([seconds * NS + nanos], pa.timestamp("ns", tz=tz))
    assert one_value_json(array) == expected
    assert one_value_csv(array) == expected


def test_tz_aware_timestamps_of_coarse_units() -> None:
    array = pa.array([1_500, None, -1], pa.timestamp("ms", tz="UTC"))
    rows = json_rows(pa.table({"t": array}))
    assert rows == [{"t": "1970-01-01T00:00:01.500Z"}, {}, {"t": "1969-12-31T23:59:59.999Z"}]


def test_timestamps_with_nulls_mixed_fractions() -> None:
    values = [0, None, 1_500_000_000, 1_123_456_789, None, 2 * NS]
    rows = json_rows(pa.table({"t": pa.array(values, pa.timestamp("ns"))}))
    assert rows == [
        {"t": "1970-01-01T00:00:00"},
        {},
        {"t": "1970-01-01T00:00:01.500"},
        {"t": "1970-01-01T00:00:01.123456789"},
        {},
        {"t": "1970-01-01T00:00:02"},
    ]


# ------------------------------------------------------------------------------------------- JSON values


def test_json_omits_null_columns_and_keeps_nan_as_null() -> None:
    table = pa.table(
        {
            "time": pa.array([0, NS, 2 * NS], pa.timestamp("ns")),
            "host": pa.array(["a", None, "c"]).dictionary_encode(),
            "usage": pa.array([1.0, None, float("nan")]),
            "up": pa.array([None, True, False]),
        }
    )
    assert body(table, Format.JSON) == (
        b'[{"time":"1970-01-01T00:00:00","host":"a","usage":1.0},'
        b'{"time":"1970-01-01T00:00:01","up":true},'
        b'{"time":"1970-01-01T00:00:02","host":"c","usage":null,"up":false}]'
    )


@pytest.mark.parametrize(
    ("array", "expected_text"),
    [
        (pa.array([1.0]), b"1.0"),
        (pa.array([-0.0]), b"-0.0"),
        (pa.array([2.5]), b"2.5"),
        (pa.array([0.1]), b"0.1"),
        (pa.array([1e20]), b"1e+20"),
        (pa.array([1e-7]), b"1e-7"),
        (pa.array([123456789.0]), b"123456789.0"),
        (pa.array([float("nan")]), b"null"),
        (pa.array([float("inf")]), b"null"),
        (pa.array([float("-inf")]), b"null"),
        (pa.array([1.5], pa.float32()), b"1.5"),
        (pa.array([3], pa.int64()), b"3"),
        (pa.array([-(2**63)], pa.int64()), b"-9223372036854775808"),
        (pa.array([2**64 - 1], pa.uint64()), b"18446744073709551615"),
        (pa.array([7], pa.int8()), b"7"),
        (pa.array([True]), b"true"),
        (pa.array([False]), b"false"),
        (pa.array(["plain"]), b'"plain"'),
        (pa.array(['say "hi"']), b'"say \\"hi\\""'),
        (pa.array(["C:\\temp"]), b'"C:\\\\temp"'),
        (pa.array(["two\nlines\ttab"]), b'"two\\nlines\\ttab"'),
        (pa.array(["bell\x01"]), b'"bell\\u0001"'),
        (pa.array(["caf\u00e9 \u2603"]), '"caf\u00e9 \u2603"'.encode()),
        (pa.array(["large"], pa.large_string()), b'"large"'),
        (pa.array(["tag"]).dictionary_encode(), b'"tag"'),
        (pa.array([5]).dictionary_encode(), b"5"),
        (pa.array([1.0, 2.5]).dictionary_encode().slice(0, 1), b"1.0"),
        (pa.array([decimal.Decimal("1.50")], pa.decimal128(5, 2)), b"1.50"),
        (pa.array([datetime.date(2024, 2, 29)], pa.date32()), b'"2024-02-29"'),
        (pa.array([datetime.date(1969, 12, 31)], pa.date64()), b'"1969-12-31"'),
        (pa.array([3_723_500_000_000], pa.time64("ns")), b'"01:02:03.500"'),
        (pa.array([3_723], pa.time32("s")), b'"01:02:03"'),
        (pa.array([1_500], pa.duration("ms")), b'"PT1.500S"'),
        (pa.array([-1], pa.duration("ns")), b'"-PT0.000000001S"'),
        (pa.array([0], pa.duration("s")), b'"PT0S"'),
        (
            pa.array(
                [pa.scalar((0, 0, 300 * NS), pa.month_day_nano_interval()).as_py()],
                pa.month_day_nano_interval(),
            ),
            b'"PT300S"',
        ),
        (
            pa.array(
                [pa.scalar((1, 2, 0), pa.month_day_nano_interval()).as_py()], pa.month_day_nano_interval()
            ),
            b'"P1M2D"',
        ),
        (pa.array([b"\x00\xff"]), b'"00ff"'),
        (pa.array([[1, 2]]), b"[1,2]"),
        (pa.array([{"a": 1, "b": "x"}]), b'{"a":1,"b":"x"}'),
    ],
)
def test_json_value_rendering(array: pa.Array, expected_text: bytes) -> None:
    rendered = body(pa.table({"x": array}), Format.JSON)
    assert rendered == b'[{"x":' + expected_text + b"}]"
    json.loads(rendered)  # always valid JSON


def test_json_first_column_null_leaves_no_stray_comma() -> None:
    table = pa.table({"a": pa.array([None, None, 1, None]), "b": pa.array(["x", None, "y", None])})
    assert body(table, Format.JSON) == b'[{"b":"x"},{},{"a":1,"b":"y"},{}]'
    assert body(table, Format.JSONL) == b'{"b":"x"}\n{}\n{"a":1,"b":"y"}\n{}\n'


def test_json_string_containing_the_opening_is_left_alone() -> None:
    table = pa.table({"a": pa.array([None, 1]), "b": pa.array([",{,", ",{,"])})
    assert json_rows(table) == [{"b": ",{,"}, {"a": 1, "b": ",{,"}]


def test_json_column_names_are_escaped() -> None:
    table = pa.table({'we"ird\\name': pa.array([1])})
    assert json_rows(table) == [{'we"ird\\name': 1}]


def test_json_empty_and_jsonl_empty() -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert body(empty, Format.JSON) == b"[]"
    assert body(empty, Format.JSONL) == b""
    assert b"".join(render([], empty.schema, Format.JSON)) == b"[]"


def test_json_without_columns() -> None:
    batch = pa.RecordBatch.from_pydict({"a": [1, 2]}).select([])
    assert b"".join(render([batch], batch.schema, Format.JSON)) == b"[{},{}]"
    assert b"".join(render([batch], batch.schema, Format.JSONL)) == b"{}\n{}\n"


def batches_of(values: list[int], size: int) -> list[pa.RecordBatch]:
    table = pa.table({"n": pa.array(values, pa.int64())})
    return table.to_batches(max_chunksize=size)


def test_json_array_is_streamed_over_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "CHUNK_ROWS", 4)
    batches = batches_of(list(range(10)), 3) + [pa.RecordBatch.from_pydict({"n": pa.array([], pa.int64())})]
    chunks = list(render(batches, batches[0].schema, Format.JSON))
    assert chunks[0] == b"[" and chunks[-1] == b"]"
    assert len(chunks) > 3
    assert json.loads(b"".join(chunks)) == [{"n": n} for n in range(10)]
    lines = b"".join(render(batches, batches[0].schema, Format.JSONL)).decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"n": n} for n in range(10)]


def test_render_consumes_batches_lazily() -> None:
    consumed: list[int] = []

    def produce() -> Iterator[pa.RecordBatch]:
        for index, batch in enumerate(batches_of(list(range(9)), 3)):
            consumed.append(index)
            yield batch

    schema = pa.schema([("n", pa.int64())])
    for fmt in (Format.JSON, Format.JSONL, Format.CSV):
        consumed.clear()
        stream = render(produce(), schema, fmt)
        next(stream)
        next(stream)
        assert len(consumed) < 3, fmt


# ---------------------------------------------------------------------------------------------------- CSV


def test_csv_shape() -> None:
    table = pa.table(
        {
            "time": pa.array([1_500_000_000, None, -NS], pa.timestamp("ns")),
            "host": pa.array(["a", "b,c", None]).dictionary_encode(),
            "usage": pa.array([1.0, float("nan"), None]),
            "count": pa.array([None, 2, 3], pa.uint64()),
            "up": pa.array([True, None, False]),
        }
    )
    assert body(table, Format.CSV).decode() == (
        "time,host,usage,count,up\n"
        "1970-01-01T00:00:01.500,a,1.0,,true\n"
        ',"b,c",NaN,2,\n'
        "1969-12-31T23:59:59,,,3,false\n"
    )


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("plain", "plain"),
        ("with,comma", '"with,comma"'),
        ('say "hi"', '"say ""hi"""'),
        ("two\nlines", '"two\nlines"'),
        ("carriage\rreturn", '"carriage\rreturn"'),
        ("", ""),
        (" spaced ", " spaced "),
    ],
)
def test_csv_quoting(value: str, cell: str) -> None:
    assert one_value_csv(pa.array([value])) == cell
    assert one_value_csv(pa.array([value]).dictionary_encode()) == cell


@pytest.mark.parametrize(
    ("array", "cell"),
    [
        (pa.array([1.0]), "1.0"),
        (pa.array([0.25]), "0.25"),
        (pa.array([float("nan")]), "NaN"),
        (pa.array([float("inf")]), "inf"),
        (pa.array([float("-inf")]), "-inf"),
        (pa.array([None], pa.float64()), ""),
        (pa.array([None], pa.string()), ""),
        (pa.array([None], pa.null()), ""),
        (pa.array([[1, 2]]), '"[1,2]"'),
        (pa.array([1_500], pa.duration("ms")), "PT1.500S"),
        (pa.array([90_000_001], pa.duration("us")), "PT90.000001S"),
    ],
)
def test_csv_values(array: pa.Array, cell: str) -> None:
    assert one_value_csv(array) == cell


def test_csv_header_quoting_and_empty_result_is_header_only() -> None:
    empty = pa.table({"a,b": pa.array([], pa.int64()), "c": pa.array([], pa.string())})
    assert body(empty, Format.CSV) == b'"a,b",c\n'


# ------------------------------------------------------------------------------------------------- pretty


def test_pretty_table() -> None:
    table = pa.table(
        {
            "host": pa.array(["a", None, "server01"]).dictionary_encode(),
            "time": pa.array([0, 1_500_000_000, None], pa.timestamp("ns")),
            "v": pa.array([1.0, None, float("nan")]),
        }
    )
    assert body(table, Format.PRETTY).decode() == (
        "+----------+-------------------------+-----+\n"
        "| host     | time                    | v   |\n"
        "+----------+-------------------------+-----+\n"
        "| a        | 1970-01-01T00:00:00     | 1.0 |\n"
        "|          | 1970-01-01T00:00:01.500 |     |\n"
        "| server01 |                         | NaN |\n"
        "+----------+-------------------------+-----+\n"
    )


def test_pretty_over_several_batches_and_wide_characters() -> None:
    batches = batches_of([1, 22, 333], 1)
    text = b"".join(render(batches, batches[0].schema, Format.PRETTY)).decode()
    assert text == "+-----+\n| n   |\n+-----+\n| 1   |\n| 22  |\n| 333 |\n+-----+\n"
    table = pa.table({"name": ["\u00e9t\u00e9"]})
    assert body(table, Format.PRETTY).decode().splitlines()[3] == "| \u00e9t\u00e9  |"


def test_pretty_empty_results() -> None:
    empty = pa.table({"a": pa.array([], pa.int64()), "long_name": pa.array([], pa.string())})
    assert body(empty, Format.PRETTY).decode() == (
        "+---+-----------+\n| a | long_name |\n+---+-----------+\n+---+-----------+\n"
    )
    no_columns = pa.schema([])
    assert b"".join(render([], no_columns, Format.PRETTY)) == b"++\n++\n"


# ------------------------------------------------------------------------------------------------ parquet


def test_parquet_is_one_file_with_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "PARQUET_ROW_GROUP_ROWS", 4)
    batches = batches_of(list(range(10)), 3)
    chunks = list(render(batches, batches[0].schema, Format.PARQUET))
    assert len(chunks) > 1  # row groups go out as they are written
    data = b"".join(chunks)
    assert data[:4] == b"PAR1" and data[-4:] == b"PAR1"
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.num_row_groups == 2  # 3+3 rows reach 4, then the rest at the end
    assert parquet.read().column("n").to_pylist() == list(range(10))


def test_parquet_keeps_types() -> None:
    table = pa.table(
        {
            "time": pa.array([NS], pa.timestamp("ns")),
            "host": pa.array(["a"]).dictionary_encode(),
            "v": pa.array([float("nan")]),
        }
    )
    read = pq.read_table(io.BytesIO(body(table, Format.PARQUET)))
    assert read.schema.field("time").type == pa.timestamp("ns")
    assert read.column("host").to_pylist() == ["a"]


def test_parquet_empty_result_is_empty_body() -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert body(empty, Format.PARQUET) == b""
    assert b"".join(render([], empty.schema, Format.PARQUET)) == b""


# ------------------------------------------------------------------------------------------ all formats


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_agrees_on_a_mixed_table(fmt: Format) -> None:
    table = pa.table(
        {
            "time": pa.array([i * 250_000_000 for i in range(50)], pa.timestamp("ns")),
            "host": pa.array([f"h{i % 3}" if i % 7 else None for i in range(50)]).dictionary_encode(),
            "v": pa.array([i / 4 if i % 5 else None for i in range(50)]),
        }
    )
    data = body(table, fmt)
    if fmt is Format.JSON:
        rows = json.loads(data)
    elif fmt is Format.JSONL:
        rows = [json.loads(line) for line in data.decode().splitlines()]
    elif fmt is Format.PARQUET:
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        assert rows == table.to_pylist()
        return
    else:
        assert data.decode().count("\n") == (51 if fmt is Format.CSV else 54)
        return
    expected = [
        {key: value for key, value in row.items() if value is not None}
        for row in table.select(["host", "v"]).to_pylist()
    ]
    assert [{k: v for k, v in row.items() if k != "time"} for row in rows] == expected
