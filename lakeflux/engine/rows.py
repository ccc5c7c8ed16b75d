"""Turn committed WAL rows into the `table_batches` argument of `process_writes` (CONTRACT §1.8).

A row holds only the columns present in its line: a null in the segment means "absent in that
line", so it becomes a missing key, never `None`. Keys are ordered tags, fields, then `time`.
Every call builds fresh dicts and lists, because plugins pop keys and mutate rows.

A call may carry several committed segments (a trigger that fell behind gets them together):
`merged_table_batches` keeps one entry per table, tables in the order they were first written,
and each table's rows in commit order, exactly as if the segments had been one.

**Rows are built when the plugin first looks at them.** A WAL trigger on a busy table sees every
row ingest writes, and building a dict per row costs about as much CPU as ingesting the line did
(~0.5–1 µs per row), under the interpreter lock that ingest needs too. Many plugins never look at
the rows (they count them, or react to the call itself), so `batch["rows"]` is a `list` subclass
that knows its length and the Arrow columns behind it, and builds the dicts on the first operation
that reads or changes its items: iteration, indexing, slicing, `in`, comparison, `repr`, any
mutating method, copying or pickling. Afterwards it is a list like any other (its class becomes
`Rows`, a plain `list` subclass, so later operations cost what they cost on a list). `len()` and
truth testing do not build, and `clear()` drops the rows unbuilt. `isinstance(rows, list)` holds,
and `json.dumps`, `pandas.DataFrame`, `numpy` and `sorted` read lists of this kind through their
iterator, so they see the built rows. Code in C that reads a list subclass's storage directly,
without iterating (orjson, `pyarrow.array`) would see placeholders that are not rows before the first
build: it fails ("Type is not JSON serializable: RowNotBuilt") rather than seeing no rows;
`list(rows)` first avoids that. Rows are built at most once per call, under a lock, so threads a
plugin starts see the same dicts.

Rows are built column by column: every row starts as a copy of one dict holding all the keys in
order, then each column's values are stored with `map(setitem, …)`, and the keys of null cells are
deleted afterwards. This runs in C loops and costs about half of building each row with a
comprehension.
"""

from __future__ import annotations

import threading
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


class RowNotBuilt:
    """What a row list holds in its storage until its rows are built (only C code reading it directly sees it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<row not built yet>"


_NOT_BUILT = RowNotBuilt()
_build_lock = threading.Lock()


class Rows(list):  # type: ignore[type-arg]
    """A table's rows in `table_batches` once built: a `list` of dicts (see the module docstring)."""

    __slots__ = ("_pieces",)


class _LazyRows(Rows):
    """`Rows` not built yet: the length is known, the dicts are made by the first operation that needs them.

    `_pieces` holds the Arrow tables (and their tags) the rows come from, in order. Building replaces
    the placeholders with the dicts and turns the object into a plain `Rows`.
    """

    __slots__ = ()

    def _build(self) -> None:
        with _build_lock:
            pieces = self._pieces
            if pieces is None:
                return  # another thread built them meanwhile
            built: list[dict[str, Any]] = []
            for data, tags in pieces:
                built.extend(segment_rows(data, tags))
            list.__setitem__(self, slice(None), built)
            self._pieces = None
            self.__class__ = Rows

    def clear(self) -> None:
        with _build_lock:
            self._pieces = None
            list.clear(self)
            self.__class__ = Rows


def _building(name: str) -> Any:
    """A `list` method of `_LazyRows` that builds the rows (its own and any unbuilt arguments') first."""
    method = getattr(list, name)

    def call(self: _LazyRows, *args: Any, **kwargs: Any) -> Any:
        if type(self) is _LazyRows:
            self._build()
        for arg in args:
            if type(arg) is _LazyRows:
                arg._build()
        return method(self, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


# Every `list` method that reads or changes the items (len, bool, sizeof and clear do not need them).
for _name in ("__init__", "__iter__", "__reversed__", "__contains__", "__getitem__", "__setitem__", "__delitem__",
              "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__iadd__", "__mul__",
              "__rmul__", "__imul__", "__repr__", "__reduce__", "__reduce_ex__", "__getstate__", "append", "copy",
              "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort"):
    setattr(_LazyRows, _name, _building(_name))


def _radd(self: _LazyRows, other: Any) -> Any:
    """`[...] + rows`: build, then let the left list concatenate the built items."""
    if type(self) is _LazyRows:
        self._build()
    return NotImplemented


_LazyRows.__radd__ = _radd  # type: ignore[attr-defined]


def lazy_rows(pieces: list[tuple[pa.Table, tuple[str, ...]]]) -> Rows:
    """The rows of these Arrow tables (in order) as `Rows`, built when first looked at."""
    rows = _LazyRows.__new__(_LazyRows)
    rows._pieces = pieces
    count = sum(data.num_rows for data, _ in pieces)
    if count:
        list.append(rows, _NOT_BUILT)
        list.__imul__(rows, count)
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
    commit order (segment by segment, then line order within a segment). The rows are `Rows`, built
    when the plugin first looks at them; every call of this function returns new ones.
    """
    merged: dict[str, list[tuple[pa.Table, tuple[str, ...]]]] = {}
    for tables in segments:
        for table in tables:
            if table_name is not None and table.table != table_name:
                continue
            if table.data.num_rows == 0:
                continue
            found = merged.get(table.table)
            if found is None:
                merged[table.table] = [(table.data, table.tags)]
            else:
                found.append((table.data, table.tags))
    return [{"table_name": name, "rows": lazy_rows(pieces)} for name, pieces in merged.items()]
