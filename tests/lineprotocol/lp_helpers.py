"""Shared by the line-protocol tests: run both parsers and insist they agree."""

from __future__ import annotations

from unittest import mock

import numpy as np

import lakeflux.lineprotocol.native as native
from lakeflux.lineprotocol import (
    ParseResult,
    _scanner,  # type: ignore[attr-defined]
    parse,
    parse_exact,
)
from lakeflux.model import Precision

DEFAULT_TIME = 1_111_111_111_000_000_000


def assert_same(fast: ParseResult, exact: ParseResult) -> None:
    """Field-by-field equality of two parse results, with a readable failure."""
    assert list(fast.tables) == list(exact.tables)
    for name, table in fast.tables.items():
        other = exact.tables[name]
        assert table.columns == other.columns, name
        assert table.table.schema.equals(other.table.schema), name
        assert table.table.to_pylist() == other.table.to_pylist(), name
        assert table.table.equals(other.table), name
        assert table.line_numbers.dtype == np.int64
        assert np.array_equal(table.line_numbers, other.line_numbers), name
    assert fast.errors == exact.errors
    assert fast.line_count == exact.line_count


def both(body: str | bytes, precision: Precision = Precision.NANOSECOND, default: int = DEFAULT_TIME) -> ParseResult:
    """Parse with both parsers, check they agree, return the result."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    fast = parse(raw, precision=precision, default_time_ns=default)
    exact = parse_exact(raw, precision=precision, default_time_ns=default)
    assert_same(fast, exact)
    return fast


def rows(result: ParseResult, table: str) -> list[dict]:
    return result.tables[table].table.to_pylist()


def only_value(body: str, column: str = "f", precision: Precision = Precision.NANOSECOND):
    """The single value of `column` in the single table of a one-line body (no errors allowed)."""
    result = both(body, precision)
    assert result.errors == [], result.errors
    (table,) = result.tables.values()
    (row,) = table.table.to_pylist()
    return row[column]


def only_error(body: str, precision: Precision = Precision.NANOSECOND) -> str:
    """The message of the single line error of `body`."""
    result = both(body, precision)
    assert len(result.errors) == 1, result.errors
    return result.errors[0].error_message


def exact_records(body: str) -> list[str]:
    """The records the native parser handed to the exact parser (after checking both parsers agree)."""
    seen: list[str] = []
    original = native.add_record

    def spy(assembler, line_number, text, *rest):
        seen.append(text)
        return original(assembler, line_number, text, *rest)

    with mock.patch.object(native, "add_record", spy):
        both(body)
    return seen


def native_groups(body: str, merge: bool = False) -> list[list[int]]:
    """The line numbers of each group the scanner found, sorted: groups of equally shaped lines, or with
    `merge` (what the parser asks for) a measurement's shapes merged where they agree."""
    groups, _, _ = _scanner.scan(body.encode(), 1, 0, merge)
    return sorted(np.frombuffer(group[5], dtype=np.int64).tolist() for group in groups)
