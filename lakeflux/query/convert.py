"""Arrow results as plain Python rows for plugins (CONTRACT.md §1.6 `query`, §1.8 `table_batches`).

Values are converted a column at a time (`to_pylist` on an already-converted column), and rows are
assembled by zipping the column lists: no per-cell Arrow scalar access.

Conversions (both functions):

| Arrow type | Python value |
|---|---|
| integers (uint64 too) | `int` |
| floats (float16/32/64) | `float` (NaN stays NaN) |
| Utf8, LargeUtf8, Utf8View, Dictionary(…, Utf8) | `str` |
| Boolean | `bool` |
| every Timestamp, any unit, any time zone | `int` nanoseconds since the epoch (UTC) |
| Date32 / Date64 | `str` `YYYY-MM-DD` (plugins serialise results; `date` objects break `json.dumps`) |
| Time32 / Time64 | `str` `HH:MM:SS[.fff…]` (the fraction rule of the HTTP output) |
| Duration, any unit | `int` nanoseconds |
| Decimal | `float` (plugins do float arithmetic; `Decimal + float` raises) |
| Interval(MonthDayNano) | pyarrow's `MonthDayNano(months, days, nanoseconds)` named tuple |
| Binary | `bytes` |
| List, Struct, Map | `list` / `dict` / list of pairs, as pyarrow converts them (nested timestamps stay `datetime`) |
| Null | `None` |

A dictionary column converts as its value type would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .formats import temporal_text

_NS_PER = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
TIME_COLUMN = "time"


def table_to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of a query result for `influxdb3_local.query`: every column a key, nulls as None.

    Each call builds new dicts. An empty result is `[]`.
    """
    if table.num_rows == 0:
        return []
    names = table.column_names
    columns = [column_values(table.column(index)) for index in range(table.num_columns)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def table_batches_rows(table: pa.Table, tags: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of one table for a WAL trigger's `table_batches`: only the columns present in each row.

    Keys are ordered tags (in the order given, those the table has), then fields (in table order),
    then `time`; a null (absent) column has no key at all. Each call builds new dicts, so plugins may
    pop keys freely.
    """
    if table.num_rows == 0:
        return []
    present = set(table.column_names)
    tag_names = [name for name in dict.fromkeys(tags) if name in present]
    tag_set = set(tag_names)
    field_names = [name for name in table.column_names if name not in tag_set and name != TIME_COLUMN]
    names = tag_names + field_names + ([TIME_COLUMN] if TIME_COLUMN in present else [])
    chunked = [table.column(name) for name in names]
    columns = [column_values(column) for column in chunked]
    if all(column.null_count == 0 for column in chunked):
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    return [
        {name: value for name, value in zip(names, row, strict=True) if value is not None}
        for row in zip(*columns, strict=True)
    ]


def column_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """The Python values of one column, converted as the module docstring's table says."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            return _array_values(column.chunk(0))
        values: list[Any] = []
        for chunk in column.chunks:
            values.extend(_array_values(chunk))
        return values
    return _array_values(column)


def _array_values(array: pa.Array) -> list[Any]:
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _array_values(array.dictionary_decode())
    if pa.types.is_timestamp(kind) or pa.types.is_duration(kind):
        return _nanoseconds(array)
    if pa.types.is_date(kind) or pa.types.is_time(kind):
        text = temporal_text(array)
        assert text is not None  # dates and times always have a text form
        return text.to_pylist()
    if pa.types.is_decimal(kind) or pa.types.is_float16(kind):
        return array.cast(pa.float64()).to_pylist()
    if pa.types.is_null(kind):
        return [None] * len(array)
    return array.to_pylist()


def _nanoseconds(array: pa.Array) -> list[int | None]:
    """Timestamps or durations as int nanoseconds; the time zone does not matter (values are UTC)."""
    counts = array.cast(pa.int64())
    factor = _NS_PER[array.type.unit]
    if factor == 1:
        return counts.to_pylist()
    try:
        return pc.multiply_checked(counts, factor).to_pylist()
    except pa.ArrowInvalid:
        # Beyond the int64 nanosecond range (years before 1677 or after 2262): Python ints do not overflow.
        return [None if value is None else value * factor for value in counts.to_pylist()]
