"""Column kinds fixed before the body (the catalog) win over the body's own first line."""

import pytest

from lakeflux.lineprotocol import parse, parse_exact
from lakeflux.model import ColumnKind, Precision


@pytest.mark.parametrize("parser", [parse, parse_exact])
def test_known_kinds_win_over_the_first_line(parser):
    known = {"cpu": {"v": ColumnKind.FLOAT64, "host": ColumnKind.TAG}}
    body = b"cpu v=2i 2\ncpu v=3 3\ncpu,v=x n=1i 4\nmem v=1i 5"
    result = parser(body, precision=Precision.NANOSECOND, default_time_ns=0, known=known)
    assert [e.line_number for e in result.errors] == [1, 3]
    assert "expected iox::column_type::field::float, got iox::column_type::field::integer" in result.errors[0].error_message
    assert result.tables["cpu"].table.column("v").to_pylist() == [3.0]
    assert result.tables["mem"].columns["v"] is ColumnKind.INT64


def test_fast_and_exact_agree_with_known_kinds():
    known = {"m": {"a": ColumnKind.INT64, "t": ColumnKind.TAG}}
    body = b"\n".join(f"m,t=x a={i}{'i' if i % 3 else ''} {i}".encode() for i in range(50))
    a = parse(body, precision=Precision.NANOSECOND, default_time_ns=0, known=known)
    b = parse_exact(body, precision=Precision.NANOSECOND, default_time_ns=0, known=known)
    assert a.errors == b.errors
    assert a.tables["m"].table.equals(b.tables["m"].table)
