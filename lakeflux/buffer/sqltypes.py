"""The SQL-facing types of buffered and persisted rows: dictionary tags, timestamp time, columns by name."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ..model import ColumnKind

TAG_TYPE = pa.dictionary(pa.int32(), pa.string())
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
    """Committed WAL rows (Utf8 tags, Int64 time) → SQL types (dictionary tags, timestamp time)."""
    cols = []
    fields = []
    for f, col in zip(data.schema, data.columns, strict=True):
        if f.name in tags:
            col = pc.dictionary_encode(col)
            if col.type != TAG_TYPE:
                col = col.cast(TAG_TYPE)
        elif f.name == "time":
            col = col.cast(TIME_TYPE)
        cols.append(col)
        fields.append(pa.field(f.name, col.type))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder `data` to `schema`, filling absent columns with nulls (cheap: no re-encoding)."""
    n = data.num_rows
    names = set(data.column_names)
    cols = [data.column(f.name) if f.name in names else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)
