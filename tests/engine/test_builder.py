"""LineBuilder renders exactly the lines of CONTRACT §1.5 and raises its errors."""

from __future__ import annotations

import pytest

from lakeflux.lineprotocol.builder import (
    InfluxDBError,
    InvalidKeyError,
    InvalidLineError,
    InvalidMeasurementError,
    LineBuilder,
)


def test_full_line_renders_measurement_tags_fields_and_time() -> None:
    line = (
        LineBuilder("cpu")
        .tag("host", "a")
        .tag("region", "eu")
        .int64_field("n", -3)
        .uint64_field("u", 7)
        .float64_field("f", 1.5)
        .string_field("s", "hi")
        .bool_field("ok", True)
        .bool_field("bad", False)
        .time_ns(1_700_000_000_000_000_000)
        .build()
    )
    assert line == 'cpu,host=a,region=eu n=-3i,u=7u,f=1.5,s="hi",ok=t,bad=f 1700000000000000000'


def test_without_tags_or_time() -> None:
    assert LineBuilder("m").float64_field("v", 0.25).build() == "m v=0.25"


@pytest.mark.parametrize(
    ("value", "rendered"),
    [(2.0, "2.0"), (-0.0, "0.0"), (1e16, "10000000000000000.0"), (3, "3.0"), (0.1, "0.1"), (1e-7, "1e-07")],
)
def test_float_rendering(value: float, rendered: str) -> None:
    assert LineBuilder("m").float64_field("v", value).build() == f"m v={rendered}"


def test_first_set_order_and_reset_replaces_in_place() -> None:
    builder = LineBuilder("m").tag("b", "1").tag("a", "2").int64_field("y", 1).int64_field("x", 2)
    builder.tag("b", "3").int64_field("y", 9)
    assert builder.build() == "m,b=3,a=2 y=9i,x=2i"


def test_escaping_rules() -> None:
    line = (
        LineBuilder("my,meas")
        .tag("t", "a b,c=d\\e")
        .string_field("s", 'say "hi" \\ bye, x=1')
        .float64_field("f\\k", 1.0)
        .build()
    )
    assert line == 'my\\,meas,t=a\\ b\\,c\\=d\\\\e s="say \\"hi\\" \\\\ bye, x=1",f\\\\k=1.0'


def test_tag_value_is_str_of_value() -> None:
    assert LineBuilder("m").tag("n", 5).tag("b", True).bool_field("v", 1).build() == "m,n=5,b=True v=t"


def test_setters_return_self() -> None:
    builder = LineBuilder("m")
    for call in (
        lambda: builder.tag("t", "v"),
        lambda: builder.int64_field("i", 1),
        lambda: builder.uint64_field("u", 1),
        lambda: builder.float64_field("f", 1.0),
        lambda: builder.string_field("s", "x"),
        lambda: builder.bool_field("b", True),
        lambda: builder.time_ns(1),
    ):
        assert call() is builder


@pytest.mark.parametrize("name", ["has space", ""])
def test_bad_measurement(name: str) -> None:
    with pytest.raises(InvalidMeasurementError):
        LineBuilder(name)


@pytest.mark.parametrize("key", ["", "a b", "a,b", "a=b"])
@pytest.mark.parametrize(
    "setter",
    ["tag", "int64_field", "uint64_field", "float64_field", "string_field", "bool_field"],
)
def test_bad_keys(key: str, setter: str) -> None:
    value = {"string_field": "x", "tag": "x", "bool_field": True}.get(setter, 1)
    with pytest.raises(InvalidKeyError):
        getattr(LineBuilder("m"), setter)(key, value)


def test_negative_uint_is_value_error() -> None:
    with pytest.raises(ValueError):
        LineBuilder("m").uint64_field("u", -1)
    assert LineBuilder("m").uint64_field("u", 0).build() == "m u=0u"


def test_build_without_fields() -> None:
    with pytest.raises(InvalidLineError):
        LineBuilder("m").tag("t", "v").time_ns(5).build()


def test_error_hierarchy() -> None:
    for error in (InvalidMeasurementError, InvalidKeyError, InvalidLineError):
        assert issubclass(error, InfluxDBError)
    assert issubclass(InfluxDBError, Exception)


def test_build_has_no_newline_and_can_be_called_twice() -> None:
    builder = LineBuilder("m").string_field("s", "a\tb")
    assert builder.build() == builder.build() == 'm s="a\tb"'


def test_lines_round_trip_through_lakeflux_parser() -> None:
    exact = pytest.importorskip("lakeflux.lineprotocol.exact")
    from lakeflux.model import ColumnKind, Precision

    tricky = 'a b,c=d\\e "q" \\'
    tag_value = tricky.rstrip("\\")  # line protocol has no way to end a tag value with a backslash
    line = (
        LineBuilder("my,meas\\x")
        .tag("host", tag_value)
        .tag("n", 5)
        .int64_field("i", -(2**63))
        .uint64_field("u", 2**64 - 1)
        .float64_field("f", 1e16)
        .float64_field("g", -2.5e-9)
        .string_field("s\\k", tricky)
        .bool_field("b", False)
        .time_ns(-5)
        .build()
    )
    parsed = exact.parse_record(line, Precision.NANOSECOND, 0)
    assert parsed.table == "my,meas\\x"
    assert parsed.tags == [("host", tag_value), ("n", "5")]
    assert parsed.fields == [
        ("i", ColumnKind.INT64, -(2**63)),
        ("u", ColumnKind.UINT64, 2**64 - 1),
        ("f", ColumnKind.FLOAT64, 1e16),
        ("g", ColumnKind.FLOAT64, -2.5e-9),
        ("s\\k", ColumnKind.STRING, tricky),
        ("b", ColumnKind.BOOL, False),
    ]
    assert parsed.time_ns == -5
