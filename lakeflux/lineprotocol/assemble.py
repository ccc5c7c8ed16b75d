"""Turning parsed lines into per-table Arrow tables, applying the in-body schema rule.

Within one body a column's kind (tag, or field type) is fixed by the first accepted line of its
table that has it; a later line that disagrees is a line error and is dropped whole. Both parsers
feed this module, the fast one with groups of identically shaped lines (already columnar), the
exact one with single lines, so the rule and the table building exist once.

Units are processed in order of their first line. A group is homogeneous, so it is accepted or
rejected whole at its first line; a rejected group's lines are then re-checked one by one at their
own line numbers so each error message names the column that line conflicts on at that point.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pyarrow as pa

from ..model import ColumnKind
from .types import (
    ARROW_TYPES,
    LineError,
    ParsedLine,
    ParsedTable,
    ParseResult,
    column_type_error,
    truncate_line,
)

Columns = list[tuple[str, ColumnKind]]


@dataclass
class LineGroup:
    """Valid lines of one table with identical columns and kinds, already converted to Arrow."""

    table: str
    columns: Columns
    batch: pa.RecordBatch
    """The group's columns in `columns` order, then `time` (int64 nanoseconds)."""
    line_numbers: np.ndarray
    original_line: Callable[[int], str]
    """The text of the group's row i, for error messages."""
    base: int | None = None
    """How many of `columns` come first in the table, before `time` (None: all)."""
    uniform: bool = True
    """Every row has every column. Otherwise (the scanner merged several shapes of line) absent values
    are null, and a group rejected at its first line is re-parsed line by line."""


@dataclass
class _TableState:
    columns: dict[str, ColumnKind] = field(default_factory=dict)
    groups: list[LineGroup] = field(default_factory=list)
    lines: list[ParsedLine] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)


def _line_columns(line: ParsedLine) -> Columns:
    columns: Columns = [(key, ColumnKind.TAG) for key, _ in line.tags]
    columns.extend((key, kind) for key, kind, _ in line.fields)
    return columns


def _conflict(established: Mapping[str, ColumnKind], columns: Columns) -> str | None:
    """The error for the first column whose kind disagrees with the table so far, if any."""
    for name, kind in columns:
        expected = established.get(name)
        if expected is not None and expected is not kind:
            return column_type_error(name, expected, kind)
    return None


class Assembler:
    """Collects groups, single lines and syntax errors; `result()` applies the schema rule."""

    def __init__(self, known: Mapping[str, Mapping[str, ColumnKind]] | None = None,
                 reparse: Callable[[int, str], object] | None = None) -> None:
        # Column kinds already fixed outside this body (the catalog): they win over the body's first line.
        self._known = known or {}
        # Parses one line into this assembler with the exact parser: the rows of a rejected merged group.
        self._reparse = reparse
        self._queue: list[tuple[int, int, object]] = []
        self._errors: list[LineError] = []
        self._tables: dict[str, _TableState] = {}
        self._sequence = 0

    def _push(self, line_number: int, item: object) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (line_number, self._sequence, item))

    def add_group(self, group: LineGroup) -> None:
        """Queue a group of identically shaped valid lines."""
        self._push(int(group.line_numbers[0]), group)

    def add_line(self, line_number: int, line: ParsedLine, text: str) -> None:
        """Queue one valid line."""
        self._push(line_number, (line, text))

    def add_error(self, line_number: int, message: str, text: str) -> None:
        """Record a line that failed to parse."""
        self._errors.append(LineError(line_number, message, truncate_line(text)))

    def _state(self, table: str) -> _TableState:
        state = self._tables.get(table)
        if state is None:
            state = self._tables[table] = _TableState()
        return state

    def _accept_columns(self, table: str, columns: Columns, base: int | None = None) -> _TableState:
        """Fix the kinds of `columns`; a table's first unit places `time` after its first `base` columns."""
        state = self._state(table)
        first = not state.columns
        for name, kind in columns[:base]:
            state.columns.setdefault(name, kind)
        if first:
            state.columns["time"] = ColumnKind.TIME
        for name, kind in columns[len(columns) if base is None else base:]:
            state.columns.setdefault(name, kind)
        return state

    def _conflict(self, table: str, columns: Columns) -> str | None:
        known = self._known.get(table)
        message = _conflict(known, columns) if known else None
        state = self._tables.get(table)
        if message is None and state is not None:
            message = _conflict(state.columns, columns)
        return message

    def _process_group(self, group: LineGroup) -> None:
        first_line = int(group.line_numbers[0])
        message = self._conflict(group.table, group.columns)
        if message is None:
            self._accept_columns(group.table, group.columns, group.base).groups.append(group)
            return
        if not group.uniform:
            # Lines of several shapes: each may or may not have the conflicting column.
            assert self._reparse is not None, "merged groups come with a way to re-parse their lines"
            for row in range(len(group.line_numbers)):
                self._reparse(int(group.line_numbers[row]), group.original_line(row))
            return
        self.add_error(first_line, message, group.original_line(0))
        for row in range(1, len(group.line_numbers)):
            self._push(int(group.line_numbers[row]), (group, row))

    def _process_line(self, line_number: int, line: ParsedLine, text: str) -> None:
        columns = _line_columns(line)
        message = self._conflict(line.table, columns)
        if message is not None:
            self.add_error(line_number, message, text)
            return
        state = self._accept_columns(line.table, columns)
        state.lines.append(line)
        state.line_numbers.append(line_number)

    def _process_rejected_row(self, line_number: int, group: LineGroup, row: int) -> None:
        message = self._conflict(group.table, group.columns)
        # A column that conflicted at the group's first line still conflicts: kinds never change.
        assert message is not None
        self.add_error(line_number, message, group.original_line(row))

    def result(self, line_count: int) -> ParseResult:
        """Apply the schema rule in line order and build the tables."""
        while self._queue:
            line_number, _, item = heapq.heappop(self._queue)
            if isinstance(item, LineGroup):
                self._process_group(item)
                continue
            first, second = cast(tuple[Any, Any], item)
            if isinstance(first, LineGroup):
                self._process_rejected_row(line_number, first, second)
            else:
                self._process_line(line_number, first, second)
        tables = {name: _build_table(name, state) for name, state in self._tables.items() if state.columns}
        self._errors.sort(key=lambda error: error.line_number)
        return ParseResult(tables=tables, errors=self._errors, line_count=line_count)


def _lines_piece(state: _TableState) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Columnar arrays for the table's single lines (absent values null)."""
    rows = len(state.lines)
    values: dict[str, list[object]] = {name: [None] * rows for name in state.columns}
    for row, line in enumerate(state.lines):
        for tag_key, tag_value in line.tags:
            values[tag_key][row] = tag_value
        for field_key, _, field_value in line.fields:
            values[field_key][row] = field_value
    arrays = {
        name: pa.array(values[name], type=ARROW_TYPES[kind])
        for name, kind in state.columns.items()
        if kind is not ColumnKind.TIME
    }
    arrays["time"] = pa.array(np.fromiter((line.time_ns for line in state.lines), dtype=np.int64, count=rows))
    return arrays, np.asarray(state.line_numbers, dtype=np.int64)


def _piece_table(columns: dict[str, ColumnKind], arrays: dict[str, pa.Array], rows: int) -> pa.Table:
    """The piece's arrays in the table's column order, absent columns as nulls."""
    full = []
    for name, kind in columns.items():
        array = arrays.get(name)
        full.append(array if array is not None else pa.nulls(rows, type=ARROW_TYPES[kind]))
    return pa.Table.from_arrays(full, names=list(columns))


def _group_table(columns: dict[str, ColumnKind], group: LineGroup) -> pa.Table:
    batch = group.batch
    if len(group.columns) + 1 == len(columns) and all(
        name == table_name for (name, _), table_name in zip(group.columns, columns, strict=False)
    ):
        return pa.Table.from_batches([batch])  # the usual case: the group fixed the table's columns
    names = [name for name, _ in group.columns] + ["time"]
    return _piece_table(columns, dict(zip(names, batch.columns, strict=True)), batch.num_rows)


def _build_table(name: str, state: _TableState) -> ParsedTable:
    tables: list[pa.Table] = []
    numbers: list[np.ndarray] = []
    for group in state.groups:
        tables.append(_group_table(state.columns, group))
        numbers.append(group.line_numbers)
    if state.lines:
        arrays, line_numbers = _lines_piece(state)
        tables.append(_piece_table(state.columns, arrays, len(line_numbers)))
        numbers.append(line_numbers)
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    line_numbers = numbers[0] if len(numbers) == 1 else np.concatenate(numbers)
    if len(numbers) > 1 and np.any(line_numbers[1:] < line_numbers[:-1]):  # one piece: in line order
        order = np.argsort(line_numbers, kind="stable")
        table = table.take(pa.array(order))
        line_numbers = line_numbers[order]
    return ParsedTable(name=name, columns=dict(state.columns), table=table, line_numbers=line_numbers)
