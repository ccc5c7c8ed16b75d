"""Turn committed WAL rows into the `table_batches` argument of `process_writes` (CONTRACT §1.8).

A row holds only the columns present in its line: a null in the segment means "absent in that
line", so it becomes a missing key, never `None`. Keys are ordered tags, fields, then `time`.
Every call builds fresh dicts and lists, because plugins pop keys and mutate rows.

A call may carry several committed segments (a trigger that fell behind gets them together):
`merged_table_batches` keeps one entry per table, tables in the order they were first written,
and each table's rows in commit order, exactly as if the segments had been one.

Rows are built column by column: every row starts as a copy of one dict holding all the keys in
order, then each column's values are stored with `map(setitem, …)`, and the keys of null cells are
deleted afterwards. This runs in C loops and costs about half of building each row with a
comprehension, which matters because conversion runs for every row a WAL trigger sees, under the
interpreter lock that ingest needs too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import setitem
from typing import Any

import numpy as np
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


def _null_rows(column: pa.ChunkedArray) -> np.ndarray:
    """Indices of the null cells of a column that has some."""
    return np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))


def segment_rows(data: pa.Table, tags: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of one table of a segment as dicts of the columns present in each line."""
    if data.num_rows == 0:
        return []
    names = _ordered_columns(data, tags)
    rows = list(map(dict.copy, repeat(dict.fromkeys(names), data.num_rows)))
    sparse = []
    for name in names:
        column = data.column(name)
        deque(map(setitem, rows, repeat(name), _python_values(column)), maxlen=0)
        if column.null_count:
            sparse.append((name, column))
    for name, column in sparse:
        for index in _null_rows(column).tolist():
            del rows[index][name]
    return rows


def table_batches(tables: list[SegmentTable], table_name: str | None = None) -> list[dict[str, Any]]:
    """Build `table_batches` for one database's tables of a segment.

    `table_name` set (a `table:<t>` trigger) keeps only that table; `None` (`all_tables`) keeps all.
    Tables keep their segment order; tables without rows are left out.
    """
    return merged_table_batches([tables], table_name)


def merged_table_batches(segments: Iterable[Sequence[SegmentTable]],
                         table_name: str | None = None) -> list[dict[str, Any]]:
    """`table_batches` of several segments of one database, given in commit order, as one call sees them.

    One entry per table with rows: tables in the order of their first rows, each table's rows in
    commit order (segment by segment, then line order within a segment).
    """
    merged: dict[str, list[dict[str, Any]]] = {}
    for tables in segments:
        for table in tables:
            if table_name is not None and table.table != table_name:
                continue
            if table.data.num_rows == 0:
                continue
            rows = segment_rows(table.data, table.tags)
            found = merged.get(table.table)
            if found is None:
                merged[table.table] = rows
            else:
                found.extend(rows)
    return [{"table_name": name, "rows": rows} for name, rows in merged.items()]
