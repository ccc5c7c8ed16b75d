"""Column types as SQL reports them (information_schema); the types themselves live in buffer.sqltypes."""

from __future__ import annotations

from ..buffer.sqltypes import TAG_TYPE, TIME_TYPE, arrow_type, conform, table_schema
from ..model import ColumnKind

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


def type_name(kind: ColumnKind) -> str:
    return _TYPE_NAMES[kind]

__all__ = ["TAG_TYPE", "TIME_TYPE", "arrow_type", "conform", "table_schema", "type_name"]
