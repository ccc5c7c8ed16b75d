"""Checking parsed line protocol against the catalog: which catalog changes a write needs, and
which lines clash with the column types the catalog already fixed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import CatalogState
from ..lineprotocol import LineError, ParsedTable, ParseResult
from ..lineprotocol.types import column_type_error
from ..model import ColumnKind


@dataclass
class CheckedTable:
    name: str
    data: pa.Table  # only accepted rows
    tags: tuple[str, ...]
    kinds: dict[str, ColumnKind]


@dataclass
class CheckedWrite:
    ops: list[dict[str, Any]] = field(default_factory=list)
    tables: list[CheckedTable] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.data.num_rows for t in self.tables)


def check_write(state: CatalogState, db: str, parsed: ParseResult, body: bytes | None = None) -> CheckedWrite:
    """Split a parse result into catalog ops to commit, accepted rows per table, and line errors.

    `body` supplies original_line for type-conflict errors (split only when there are any).
    """
    out = CheckedWrite(errors=list(parsed.errors))
    dbdef = state.live_db(db)
    if dbdef is None and parsed.tables:
        out.ops.append({"op": "create_database", "db": db})
    for name, pt in parsed.tables.items():
        tdef = dbdef.tables.get(name) if dbdef is not None else None
        known = tdef.columns if tdef is not None and not tdef.deleted else {}
        data, errors = _drop_conflicts(pt, known, body)
        out.errors.extend(errors)
        if data.num_rows == 0:
            continue
        present = [c for c in pt.columns if _has_values(data, c)]
        new_cols = [[c, pt.columns[c].value] for c in present if c not in known]
        if not known:
            out.ops.append({"op": "create_table", "db": db, "table": name, "columns": new_cols})
        elif new_cols:
            out.ops.append({"op": "add_columns", "db": db, "table": name, "columns": new_cols})
        data = data.select(present)
        tags = tuple(c for c in present if pt.columns[c] is ColumnKind.TAG)
        out.tables.append(CheckedTable(name, data, tags, {c: pt.columns[c] for c in present}))
    out.errors.sort(key=lambda e: e.line_number)
    return out


def _has_values(data: pa.Table, column: str) -> bool:
    return column == "time" or data.column(column).null_count < data.num_rows


def _drop_conflicts(
    pt: ParsedTable, known: dict[str, ColumnKind], body: bytes | None
) -> tuple[pa.Table, list[LineError]]:
    bad = np.zeros(pt.table.num_rows, dtype=bool)
    messages: dict[int, str] = {}
    for col, kind in pt.columns.items():
        have = known.get(col)
        if have is None or have is kind:
            continue
        valid = pt.table.column(col).is_valid().to_numpy(zero_copy_only=False)
        rows = np.nonzero(valid & ~bad)[0]
        msg = column_type_error(col, have, kind)
        for row in rows.tolist():
            messages[row] = msg
        bad |= valid
    if not bad.any():
        return pt.table, []
    errors = []
    lines = body.split(b"\n") if body is not None else None
    for r, msg in sorted(messages.items()):
        line_no = int(pt.line_numbers[r])
        raw = lines[line_no - 1] if lines is not None and line_no - 1 < len(lines) else b""
        original = raw.rstrip(b"\r")[:1024].decode("utf-8", "replace")
        errors.append(LineError(line_number=line_no, error_message=msg, original_line=original))
    return pt.table.filter(pc.invert(pa.array(bad))), errors
