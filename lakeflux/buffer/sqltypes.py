"""The SQL-facing types of buffered and persisted rows: dictionary tags, timestamp time, columns by name."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ..model import ColumnKind

# Tags are plain strings while SQL runs: DataFusion groups and filters them about twice as fast as
# dictionaries. They are still dictionary-encoded in Parquet, information_schema reports InfluxDB's
# Dictionary(Int32, Utf8), and Arrow Flight results carry them as dictionaries (DICTIONARY_TAG_TYPE).
TAG_TYPE = pa.string()
DICTIONARY_TAG_TYPE = pa.dictionary(pa.int32(), pa.string())
TIME_TYPE = pa.timestamp("ns")
_ARROW_TYPES = {
    ColumnKind.TAG: TAG_TYPE,
    ColumnKind.TIME: TIME_TYPE,
    ColumnKind.INT64: pa.int64(),
    ColumnKind.UINT64: pa.uint64(),
    ColumnKind.FLOAT64: pa.float64(),
    ColumnKind.STRING: pa.string(),
    ColumnKind.BOOL: pa.bool_(),
}


def arrow_type(kind: ColumnKind) -> pa.DataType:
    return _ARROW_TYPES[kind]


def table_schema(columns: dict[str, ColumnKind]) -> pa.Schema:
    """Columns sorted by name, as InfluxDB 3 presents `SELECT *`; time is never null."""
    return pa.schema(
        [pa.field(name, arrow_type(kind), nullable=kind is not ColumnKind.TIME)
         for name, kind in sorted(columns.items())]
    )


def to_query_form(data: pa.Table, tags: tuple[str, ...] | list[str]) -> pa.Table:
    """Committed WAL rows (Int64 time) → SQL types (timestamp time; tags stay strings)."""
    cols = []
    fields = []
    for f, col in zip(data.schema, data.columns, strict=True):
        if f.name in tags and col.type != TAG_TYPE:
            col = col.cast(TAG_TYPE)
        elif f.name == "time" and col.type != TIME_TYPE:
            # Int64 nanoseconds and timestamp[ns] share their buffers: a view, not a cast kernel (which costs
            # ~40 µs of dispatch per column on every commit).
            col = pa.chunked_array([chunk.view(TIME_TYPE) for chunk in col.chunks], TIME_TYPE)
        cols.append(col)
        fields.append(pa.field(f.name, col.type))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def tags_as_dictionaries(table: pa.Table, tags: set[str]) -> pa.Table:
    """Result columns named like a tag and holding strings become Dictionary(Int32, Utf8), the type
    InfluxDB 3 clients receive for tags."""
    for i, f in enumerate(table.schema):
        if _is_tag_column(f, tags):
            table = table.set_column(i, pa.field(f.name, DICTIONARY_TAG_TYPE, f.nullable),
                                     pc.dictionary_encode(table.column(i)))
    return table


def tag_fields_as_dictionaries(schema: pa.Schema, tags: set[str]) -> pa.Schema:
    """The schema `tags_as_dictionaries` gives a result of `schema`."""
    return pa.schema([f.with_type(DICTIONARY_TAG_TYPE) if _is_tag_column(f, tags) else f for f in schema],
                     metadata=schema.metadata)


def _is_tag_column(f: pa.Field, tags: set[str]) -> bool:
    return f.name in tags and pa.types.is_string(f.type)


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder `data` to `schema`, filling absent columns with nulls; a column of another type (a
    query's Utf8View for a buffered Utf8) is cast, everything else is reused as it is."""
    n = data.num_rows
    names = set(data.column_names)
    cols = [_as(data.column(f.name), f.type) if f.name in names else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _as(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    return column if column.type == kind else column.cast(kind)
