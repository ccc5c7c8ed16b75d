"""What a line-protocol parse returns: one Arrow table per measurement, plus per-line errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..model import ColumnKind

ORIGINAL_LINE_LIMIT = 1024
"""Bytes of a bad line echoed back to the client (InfluxDB echoes 20; 1 KiB is debuggable)."""

ARROW_TYPES: dict[ColumnKind, pa.DataType] = {
    ColumnKind.TAG: pa.string(),
    ColumnKind.TIME: pa.int64(),
    ColumnKind.INT64: pa.int64(),
    ColumnKind.UINT64: pa.uint64(),
    ColumnKind.FLOAT64: pa.float64(),
    ColumnKind.STRING: pa.string(),
    ColumnKind.BOOL: pa.bool_(),
}
"""The Arrow type of each column kind in a ParsedTable (time is int64 nanoseconds)."""

COLUMN_TYPE_NAMES: dict[ColumnKind, str] = {
    ColumnKind.TAG: "iox::column_type::tag",
    ColumnKind.TIME: "iox::column_type::timestamp",
    ColumnKind.INT64: "iox::column_type::field::integer",
    ColumnKind.UINT64: "iox::column_type::field::uinteger",
    ColumnKind.FLOAT64: "iox::column_type::field::float",
    ColumnKind.STRING: "iox::column_type::field::string",
    ColumnKind.BOOL: "iox::column_type::field::boolean",
}
"""Names InfluxDB 3 uses for column types in its write error messages."""


def column_type_error(column: str, expected: ColumnKind, got: ColumnKind) -> str:
    """InfluxDB 3 Core's line error for a column used with another type than the one it has (clients match
    on it), the same whether the column was fixed by an earlier write or an earlier line of this one."""
    return (f"invalid column type for column '{column}', expected {COLUMN_TYPE_NAMES[expected]}, "
            f"got {COLUMN_TYPE_NAMES[got]}")


def truncate_line(line: str) -> str:
    """Cut a line to ORIGINAL_LINE_LIMIT bytes of UTF-8 without splitting a character."""
    if len(line) <= ORIGINAL_LINE_LIMIT // 4:
        return line
    raw = line.encode("utf-8")
    if len(raw) <= ORIGINAL_LINE_LIMIT:
        return line
    return raw[:ORIGINAL_LINE_LIMIT].decode("utf-8", errors="ignore")


@dataclass
class ParsedLine:
    """One valid line from the exact parser: table, tags and typed fields in line order, time in ns."""

    table: str
    tags: list[tuple[str, str]]
    fields: list[tuple[str, ColumnKind, object]]
    time_ns: int


@dataclass(frozen=True)
class LineError:
    """One rejected line: what is wrong with it, where it is, and (up to 1 KiB of) the line itself."""

    line_number: int
    error_message: str
    original_line: str

    def to_json(self) -> dict:
        """The JSON shape InfluxDB uses for a line error in a 400 response's `data`."""
        return {
            "error_message": self.error_message,
            "line_number": self.line_number,
            "original_line": self.original_line,
        }


@dataclass
class ParsedTable:
    """The accepted rows of one measurement, as Arrow columns in first-seen order (time included)."""

    name: str
    columns: dict[str, ColumnKind]
    table: pa.Table
    line_numbers: np.ndarray

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


@dataclass
class ParseResult:
    """Everything one body parsed to: tables in order of first appearance, errors by line number."""

    tables: dict[str, ParsedTable]
    errors: list[LineError]
    line_count: int

    @property
    def row_count(self) -> int:
        """Rows accepted across all tables."""
        return sum(t.table.num_rows for t in self.tables.values())
