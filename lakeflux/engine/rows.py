"""Turn committed WAL rows into the `table_batches` argument of `process_writes` (CONTRACT §1.8).

A row holds only the columns present in its line: a null in the segment means "absent in that
line", so it becomes a missing key, never `None`. Keys are ordered tags, fields, then `time`.
Every call builds fresh dicts and lists, because plugins pop keys and mutate rows.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .ports import SegmentTable

TIME_COLUMN = "time"


def _ordered_columns(data: pa.Table, tags: tuple[str, ...]) -> list[str]:
    """Tags (segment column order), then fields, then `time` if the segment has it."""
    tag_set = set(tags)
    names = data.column_names
    tag_names = [name for name in names if name in tag_set]
    field_names = [name for name in names if name not in tag_set and name != TIME_COLUMN]
    time_names = [TIME_COLUMN] if TIME_COLUMN in names else []
    return tag_names + field_names + time_names


def _python_values(column: pa.ChunkedArray) -> list[Any]:
    """Plain Python values of one column; timestamps become integer nanoseconds."""
    if pa.types.is_timestamp(column.type):
        if column.type.unit != "ns":
            column = column.cast(pa.timestamp("ns", column.type.tz))
        column = column.cast(pa.int64())
    elif pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.to_pylist()


def segment_rows(data: pa.Table, tags: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of one table of a segment as dicts of the columns present in each line."""
    names = _ordered_columns(data, tags)
    columns = [_python_values(data.column(name)) for name in names]
    return [
        {name: value for name, value in zip(names, values, strict=True) if value is not None}
        for values in zip(*columns, strict=True)
    ]


def table_batches(tables: list[SegmentTable], table_name: str | None = None) -> list[dict[str, Any]]:
    """Build `table_batches` for one database's tables of a segment.

    `table_name` set (a `table:<t>` trigger) keeps only that table; `None` (`all_tables`) keeps all.
    Tables keep their segment order; tables without rows are left out.
    """
    batches: list[dict[str, Any]] = []
    for table in tables:
        if table_name is not None and table.table != table_name:
            continue
        if table.data.num_rows == 0:
            continue
        batches.append({"table_name": table.table, "rows": segment_rows(table.data, table.tags)})
    return batches
