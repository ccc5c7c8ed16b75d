"""The fast parser: the native scanner (`_scanner.c`) for the common lines, the exact parser for the rest.

The scanner runs without the GIL and returns one Arrow struct array per measurement (its shapes of line
merged where their keys agree on kinds; otherwise per shape: table, keys and field types), exported
through the Arrow C Data Interface, plus the records it left to the exact parser
(escapes other than separators, multi-line strings, odd numbers, anything invalid). Here each group is
imported with one pyarrow call and handed to the `Assembler` with those leftover records, so the
schema rule, the tables and every error message are the same code for both parsers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from ..model import ColumnKind, Precision
from . import _scanner  # type: ignore[attr-defined]
from .assemble import Assembler, Columns, LineGroup
from .exact import add_record, parse_exact
from .records import check_utf8
from .types import ARROW_TYPES, ParseResult

_KINDS = (ColumnKind.TAG, ColumnKind.FLOAT64, ColumnKind.INT64, ColumnKind.UINT64, ColumnKind.BOOL,
          ColumnKind.STRING, ColumnKind.TIME)
"""Column kinds by the scanner's codes."""

_SCHEMA_CACHE_LIMIT = 4096
_schemas: dict[tuple[tuple[str, ...], bytes], tuple[pa.Schema, Columns]] = {}


def _schema(names: tuple[str, ...], codes: bytes) -> tuple[pa.Schema, Columns]:
    """The Arrow schema and (name, kind) columns of a group; shapes repeat from body to body, so cached."""
    key = (names, codes)
    found = _schemas.get(key)
    if found is None:
        kinds = [_KINDS[code] for code in codes]
        schema = pa.schema([pa.field(name, ARROW_TYPES[kind]) for name, kind in zip(names, kinds, strict=True)])
        if len(_schemas) >= _SCHEMA_CACHE_LIMIT:
            _schemas.clear()
        found = _schemas[key] = (schema, list(zip(names[:-1], kinds[:-1], strict=True)))
    return found


def _original_line(body: bytes, spans: bytes):  # type: ignore[no-untyped-def]
    ends = np.frombuffer(spans, dtype=np.int64)
    return lambda row: body[int(ends[2 * row]) : int(ends[2 * row + 1])].decode("utf-8")


def parse(body: bytes, *, precision: Precision, default_time_ns: int,
          known: Mapping[str, Mapping[str, ColumnKind]] | None = None) -> ParseResult:
    """Parse a line-protocol body into one Arrow table per measurement, plus line errors.

    Lines without a timestamp get `default_time_ns`; timestamps are read in `precision` (AUTO
    decides per timestamp) and converted to nanoseconds. Raises Invalid if the body is not UTF-8.
    Same result as `parse_exact`; the native part runs without the GIL, so bodies parse in parallel.
    """
    multiplier = 0 if precision is Precision.AUTO else precision.multiplier
    scanned = _scanner.scan(body, multiplier, default_time_ns)
    if scanned is None:  # beyond 32-bit Arrow offsets: no server accepts such a body, but stay correct
        return parse_exact(body, precision=precision, default_time_ns=default_time_ns, known=known)
    if isinstance(scanned, int):
        check_utf8(body)  # raises Invalid naming the offset
        raise AssertionError(f"the scanner rejected valid UTF-8 at byte {scanned}")
    groups, leftovers, line_count = scanned
    assembler = Assembler(known, reparse=lambda number, text: add_record(
        assembler, number, text, precision, default_time_ns))
    for table, names, codes, _capsule, address, numbers, spans, base, members in groups:
        schema, columns = _schema(names, codes)
        batch = pa.RecordBatch._import_from_c(address, schema)
        line_numbers = np.frombuffer(numbers, dtype=np.int64)
        assembler.add_group(LineGroup(table, columns, batch, line_numbers, _original_line(body, spans), base,
                                      uniform=members == 1))
    if leftovers:
        records = np.frombuffer(leftovers, dtype=np.int64).reshape(-1, 3).tolist()
        for line_number, start, end in records:
            if add_record(assembler, line_number, body[start:end].decode("utf-8"), precision, default_time_ns):
                line_count += 1
    return assembler.result(line_count)
