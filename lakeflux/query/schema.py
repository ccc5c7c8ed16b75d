"""The SQL-facing schema of a table: column types and order, and conforming buffered chunks to it."""

from __future__ import annotations

import pyarrow as pa

from ..buffer.tables import TAG_TYPE, TIME_TYPE
from ..model import ColumnKind

_FIELD_TYPES = {
    ColumnKind.TAG: TAG_TYPE,
    ColumnKind.TIME: TIME_TYPE,
    ColumnKind.INT64: pa.int64(),
    ColumnKind.UINT64: pa.uint64(),
    ColumnKind.FLOAT64: pa.float64(),
    ColumnKind.STRING: pa.string(),
    ColumnKind.BOOL: pa.bool_(),
}

# InfluxDB 3 reports column types with Arrow's Debug names; plugins compare against these strings.
_TYPE_NAMES = {
    ColumnKind.TAG: "Dictionary(Int32, Utf8)",
    ColumnKind.TIME: "Timestamp(Nanosecond, None)",
    ColumnKind.INT64: "Int64",
    ColumnKind.UINT64: "UInt64",
    ColumnKind.FLOAT64: "Float64",
    ColumnKind.STRING: "Utf8",
    ColumnKind.BOOL: "Boolean",
}


def arrow_type(kind: ColumnKind) -> pa.DataType:
    return _FIELD_TYPES[kind]


def type_name(kind: ColumnKind) -> str:
    return _TYPE_NAMES[kind]


def table_schema(columns: dict[str, ColumnKind]) -> pa.Schema:
    """Columns sorted by name, as InfluxDB 3 presents `SELECT *`; time is never null."""
    return pa.schema(
        [pa.field(name, arrow_type(kind), nullable=kind is not ColumnKind.TIME) for name, kind in sorted(columns.items())]
    )


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder `data` to `schema`, filling absent columns with nulls (cheap: no re-encoding)."""
    n = data.num_rows
    names = set(data.column_names)
    cols = [data.column(f.name) if f.name in names else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)
