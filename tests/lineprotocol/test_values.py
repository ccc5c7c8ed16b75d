"""Table-driven cases: what specific lines parse to, checked on both parsers."""

from __future__ import annotations

import pyarrow as pa
import pytest
from lp_helpers import DEFAULT_TIME, both, only_value, rows

from lakeflux.model import ColumnKind, Precision


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("m f=1", 1.0),
        ("m f=1.5", 1.5),
        ("m f=-1e3", -1000.0),
        ("m f=2E+2", 200.0),
        ("m f=1.5e-3", 0.0015),
        ("m f=-0.25", -0.25),
        ("m f=007", 7.0),
        ("m f=0.1", 0.1),
        ("m f=3i", 3),
        ("m f=-3i", -3),
        ("m f=9223372036854775807i", 9223372036854775807),
        ("m f=-9223372036854775808i", -9223372036854775808),
        ("m f=0u", 0),
        ("m f=18446744073709551615u", 18446744073709551615),
        ('m f="hello"', "hello"),
        ('m f=""', ""),
        ('m f="a b,c=d e"', "a b,c=d e"),
        ('m f="say \\"hi\\" \\\\ back"', 'say "hi" \\ back'),
        ('m f="lone \\n backslash"', "lone \\n backslash"),
        ('m f="ünïcødé ✓"', "ünïcødé ✓"),
    ],
)
def test_field_values(line: str, expected: object) -> None:
    assert only_value(line) == expected


@pytest.mark.parametrize("spelling", ["t", "T", "true", "True", "TRUE"])
def test_true_spellings(spelling: str) -> None:
    assert only_value(f"m f={spelling}") is True


@pytest.mark.parametrize("spelling", ["f", "F", "false", "False", "FALSE"])
def test_false_spellings(spelling: str) -> None:
    assert only_value(f"m f={spelling}") is False


def test_column_kinds_and_arrow_types() -> None:
    result = both('m,host=a i=1i,u=2u,x=1.5,s="s",b=t 5')
    table = result.tables["m"]
    assert table.columns == {
        "host": ColumnKind.TAG, "i": ColumnKind.INT64, "u": ColumnKind.UINT64, "x": ColumnKind.FLOAT64,
        "s": ColumnKind.STRING, "b": ColumnKind.BOOL, "time": ColumnKind.TIME,
    }  # fmt: skip
    assert table.table.schema.types == [
        pa.string(), pa.int64(), pa.uint64(), pa.float64(), pa.string(), pa.bool_(), pa.int64()
    ]
    assert rows(result, "m") == [{"host": "a", "i": 1, "u": 2, "x": 1.5, "s": "s", "b": True, "time": 5}]


def test_escapes_in_names_and_tag_values() -> None:
    result = both("my\\ m\\,x,t\\ k\\=1=v\\ a\\,l\\=ue f\\ k\\,\\==1i 7")
    (name,) = result.tables
    assert name == "my m,x"
    assert rows(result, name) == [{"t k=1": "v a,l=ue", "f k,=": 1, "time": 7}]


def test_unescaped_equals_allowed_in_measurement_and_tag_value() -> None:
    result = both("a=b,t=x=y f=1 1")
    assert rows(result, "a=b") == [{"t": "x=y", "f": 1.0, "time": 1}]


def test_unknown_escape_keeps_backslash() -> None:
    result = both("m,t=a\\b f=1 1")
    assert rows(result, "m")[0]["t"] == "a\\b"


@pytest.mark.parametrize(
    ("stamp", "precision", "expected"),
    [
        ("1700000000", Precision.AUTO, 1_700_000_000_000_000_000),
        ("1700000000123", Precision.AUTO, 1_700_000_000_123_000_000),
        ("1700000000123456", Precision.AUTO, 1_700_000_000_123_456_000),
        ("1700000000123456789", Precision.AUTO, 1_700_000_000_123_456_789),
        ("-1700000000", Precision.AUTO, -1_700_000_000_000_000_000),
        ("4999999999", Precision.AUTO, 4_999_999_999_000_000_000),
        ("5000000000", Precision.AUTO, 5_000_000_000_000_000),
        ("12", Precision.SECOND, 12_000_000_000),
        ("12", Precision.MILLISECOND, 12_000_000),
        ("12", Precision.MICROSECOND, 12_000),
        ("12", Precision.NANOSECOND, 12),
        ("-5", Precision.NANOSECOND, -5),
        ("9223372036854775807", Precision.NANOSECOND, 9223372036854775807),
        ("-9223372036854775808", Precision.NANOSECOND, -9223372036854775808),
    ],
)
def test_timestamps(stamp: str, precision: Precision, expected: int) -> None:
    assert only_value(f"m f=1 {stamp}", "time", precision) == expected


def test_missing_timestamp_gets_default_time() -> None:
    assert only_value("m f=1", "time") == DEFAULT_TIME
    assert only_value("m f=1   ", "time") == DEFAULT_TIME


def test_blank_comment_and_whitespace_lines_and_line_numbers() -> None:
    body = "\n# a comment\n   \n  m f=1 1\r\nm f=2 2\n\t# indented comment\nm  f=3   3  \n"
    result = both(body)
    assert result.line_count == 3
    assert result.errors == []
    assert list(result.tables["m"].line_numbers) == [4, 5, 7]
    assert [row["f"] for row in rows(result, "m")] == [1.0, 2.0, 3.0]


def test_string_with_raw_newline_spans_lines() -> None:
    body = 'm s="line one\nline two",n=1i 5\nm n=2i 6\n'
    result = both(body)
    assert result.errors == []
    assert rows(result, "m") == [
        {"s": "line one\nline two", "n": 1, "time": 5},
        {"s": None, "n": 2, "time": 6},
    ]
    assert list(result.tables["m"].line_numbers) == [1, 3]
    assert result.line_count == 2


def test_columns_in_first_seen_order_time_after_first_line_absent_values_null() -> None:
    result = both("m,a=1 x=1 1\nm,b=2 y=2i 2\nm,a=3 x=3,z=t 3")
    table = result.tables["m"]
    assert list(table.columns) == ["a", "x", "time", "b", "y", "z"]
    assert rows(result, "m") == [
        {"a": "1", "x": 1.0, "time": 1, "b": None, "y": None, "z": None},
        {"a": None, "x": None, "time": 2, "b": "2", "y": 2, "z": None},
        {"a": "3", "x": 3.0, "time": 3, "b": None, "y": None, "z": True},
    ]


def test_tables_in_order_of_first_appearance_rows_in_line_order() -> None:
    body = "b f=1 1\na f=1 2\nb f=2 3\nb,t=x f=3 4\na g=1i 5\nb f=4 6\n"
    result = both(body)
    assert list(result.tables) == ["b", "a"]
    assert list(result.tables["b"].line_numbers) == [1, 3, 4, 6]
    assert [row["f"] for row in rows(result, "b")] == [1.0, 2.0, 3.0, 4.0]


def test_empty_body_has_no_tables() -> None:
    for body in ["", "\n\n", "# only a comment\n"]:
        result = both(body)
        assert result.tables == {} and result.errors == [] and result.line_count == 0


def test_many_lines_of_few_shapes() -> None:
    lines = []
    for n in range(500):
        lines.append(f"cpu,host=h{n % 7},cpu=cpu{n % 3} user={n}.5,idle={n % 10}i {n}")
        lines.append(f"mem,host=h{n % 7} used={n}u,ok={'t' if n % 2 else 'F'} {n}")
        if n % 50 == 0:
            lines.append(f'log,host=h message="n is {n}, ok" {n}')
    result = both("\n".join(lines))
    assert result.errors == []
    assert result.tables["cpu"].table.num_rows == 500
    assert rows(result, "cpu")[3] == {"host": "h3", "cpu": "cpu0", "user": 3.5, "idle": 3, "time": 3}
    assert rows(result, "mem")[1] == {"host": "h1", "used": 1, "ok": True, "time": 1}
    assert result.tables["log"].table.num_rows == 10


def test_escaped_quote_and_comment_quotes_do_not_open_strings() -> None:
    body = 'm s="a \\" b" 1\n# say "hi\nm,t="x s="y" 2\nm s="c\\\\" 3\n'
    result = both(body)
    assert result.errors == []
    assert [(row["s"], row["t"]) for row in rows(result, "m")] == [('a " b', None), ("y", '"x'), ("c\\", None)]
    assert list(result.tables["m"].line_numbers) == [1, 3, 4]


def test_unterminated_string_swallows_the_rest_of_the_body() -> None:
    # As in InfluxDB: an open quote runs on through newlines, so the following lines are part of it.
    result = both('m f=1 1\nm s="open 2\nm f=3 3\nm f=4 4\n')
    assert result.line_count == 2
    assert [(e.line_number, e.error_message) for e in result.errors] == [
        (2, "Unterminated string value for field `s`: missing closing `\"`")
    ]
    assert result.errors[0].original_line == 'm s="open 2\nm f=3 3\nm f=4 4\n'
