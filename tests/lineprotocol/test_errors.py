"""Line errors: each bad line is reported (1-based line number, message, original line) and dropped."""

from __future__ import annotations

import pytest
from lp_helpers import both, only_error, rows

from lakeflux.errors import Invalid
from lakeflux.lineprotocol import LineError, parse, parse_exact
from lakeflux.model import Precision


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("m", "No fields were provided"),
        ("m,t=a", "No fields were provided"),
        ("m ", "No fields were provided"),
        (",t=a f=1", "Invalid measurement was provided"),
        ("m,t f=1", "Tag set malformed: tag `t` has no value"),
        ("m,t= f=1", "Tag set malformed: tag `t` has an empty value"),
        ("m,=a f=1", "Tag set malformed: a tag key is empty"),
        ("m, f=1", "Tag set malformed"),
        ("m,t=a,t=b f=1", "Must not contain duplicate tags, but `t` was repeated"),
        ("m,time=a f=1", "Invalid tag key `time`"),
        ("m time=1", "Invalid field key `time`"),
        ("m f=1,f=2", "Must not contain duplicate fields, but `f` was repeated"),
        ("m,f=a f=1", "Field `f` has the same name as a tag"),
        ("m f", "Field set malformed: field `f` has no value"),
        ("m f=", "Field set malformed: field `f` has an empty value"),
        ("m =1", "Field set malformed: a field key is empty"),
        ("m f=1,", "Field set malformed: expected a field after `,`"),
        ("m f=9223372036854775808i", "Unable to parse integer value `9223372036854775808i` for field `f`"),
        ("m f=1.5i", "Unable to parse integer value `1.5i` for field `f`"),
        ("m f=-1u", "Unable to parse unsigned integer value `-1u` for field `f`"),
        ("m f=18446744073709551616u", "Unable to parse unsigned integer value"),
        ("m f=1.2.3", "Unable to parse floating-point value `1.2.3` for field `f`"),
        ("m f=1.", "Unable to parse floating-point value `1.`"),
        ("m f=.5", "Unable to parse floating-point value `.5`"),
        ("m f=+1", "Unable to parse floating-point value `+1`"),
        ("m f=1e400", "Unable to parse floating-point value `1e400` for field `f`: out of range"),
        ("m f=inf", "Unable to parse value `inf` for field `f`"),
        ("m f=NaN", "Unable to parse value `NaN` for field `f`"),
        ("m f=yes", "Unable to parse value `yes` for field `f`"),
        ("m f=tru", "Unable to parse unsigned integer value `tru`"),
        ('m f="abc', "Unterminated string value for field `f`"),
        ('m f="abc"x', "Could not parse entire line. Found trailing content: `x`"),
        ("m f=1 abc", "Unable to parse timestamp value `abc`"),
        ("m f=1 12.5", "Unable to parse timestamp value `12.5`"),
        ("m f=1 1 2", "Could not parse entire line. Found trailing content: `2`"),
        ("m f=1 99999999999999999999", "Timestamp value `99999999999999999999` is out of range for precision `ns`"),
        ("m,t=a\\\\ f=1", "Measurements, tag keys and values, and field keys may not end with a backslash"),
        ("m,t=a\\\tf=1", "Measurements, tag keys and values, and field keys may not end with a backslash"),
    ],
)
def test_line_errors(line: str, message: str) -> None:
    assert message in only_error(line)


def test_timestamp_out_of_range_after_precision() -> None:
    message = only_error("m f=1 9223372036854775807", Precision.SECOND)
    assert "out of range for precision `s`" in message
    assert "out of range" in only_error("m f=1 -9300000000000", Precision.MILLISECOND)


def test_string_limit_is_64_kib() -> None:
    assert both(f'm s="{"x" * 65536}"').errors == []
    assert "String is greater than 64KB" in only_error(f'm s="{"x" * 65537}"')


def test_bad_lines_are_dropped_others_kept_with_line_numbers() -> None:
    body = "# header\nm f=1 1\nm f=oops 2\n\nm f=3 3\nm\n"
    result = both(body)
    assert [(e.line_number, e.original_line) for e in result.errors] == [(3, "m f=oops 2"), (6, "m")]
    assert [row["f"] for row in rows(result, "m")] == [1.0, 3.0]
    assert list(result.tables["m"].line_numbers) == [2, 5]
    assert result.line_count == 4


def test_field_type_conflict_drops_the_later_line() -> None:
    result = both("m f=1 1\nm f=1i,g=1 2\nm f=2 3\n")
    assert result.errors == [
        LineError(
            2,
            "invalid column type for column 'f', expected iox::column_type::field::float, "
            "got iox::column_type::field::integer",
            "m f=1i,g=1 2",
        )
    ]
    # The dropped line adds nothing, not even its new column.
    assert list(result.tables["m"].columns) == ["f", "time"]
    assert [row["f"] for row in rows(result, "m")] == [1.0, 2.0]


def test_type_is_fixed_by_first_accepted_line_of_the_table() -> None:
    result = both("m f=bad 1\nm f=1u 2\nm f=1 3\nother f=1 4\n")
    assert [e.line_number for e in result.errors] == [1, 3]
    assert "expected iox::column_type::field::uinteger, got iox::column_type::field::float" in result.errors[1].error_message
    assert rows(result, "other") == [{"f": 1.0, "time": 4}]


def test_tag_and_field_with_same_name_across_lines() -> None:
    result = both("m,host=a f=1 1\nm host=1 2\nm,f=x g=1 3\n")
    assert [e.line_number for e in result.errors] == [2, 3]
    assert result.errors[0].error_message == ("invalid column type for column 'host', expected iox::column_type::tag, "
                                              "got iox::column_type::field::float")
    assert result.errors[1].error_message == ("invalid column type for column 'f', "
                                              "expected iox::column_type::field::float, got iox::column_type::tag")


def test_conflicting_group_reports_each_line_with_its_own_column() -> None:
    # Lines 2 and 4 share a shape; line 2 conflicts on `a`, line 4 also on `b` (fixed by line 3).
    body = "m a=1i 1\nm b=1,a=1 2\nm b=1i 3\nm b=2,a=2 4\n"
    result = both(body)
    assert [(e.line_number, e.error_message.split("'")[1]) for e in result.errors] == [(2, "a"), (4, "b")]


def test_original_line_truncated_to_one_kib_and_json_shape() -> None:
    line = "m f=" + "x" * 3000
    (error,) = both(line).errors
    assert error.original_line == line[:1024]
    assert error.to_json() == {"error_message": error.error_message, "line_number": 1,
                               "original_line": line[:1024]}


def test_non_utf8_body_is_invalid() -> None:
    for parser in (parse, parse_exact):
        with pytest.raises(Invalid, match="not valid UTF-8"):
            parser(b"m f=1\nm,t=\xff f=2", precision=Precision.NANOSECOND, default_time_ns=0)
