"""Read-only SQL over in-memory Arrow tables (no database): InfluxQL runs its outer query over a subquery's
answer with the same SQL it uses for stored tables."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from datafusion import SessionConfig, SessionContext, SQLOptions

from ..errors import Invalid
from .schema import plain_strings

_READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)


def run_sql_over(tables: dict[str, pa.Table], sql: str, params: dict[str, Any] | None = None) -> pa.Table:
    """`sql` (with `$name` parameters bound after parsing) over `tables`, registered under their names."""
    ctx = SessionContext(SessionConfig().with_information_schema(False))
    for name, table in tables.items():
        batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
        ctx.register_record_batches(name, [batches])
    try:
        df = ctx.sql_with_options(sql, _READ_ONLY, param_values=params or None)
        schema = df.schema()
        batches = [plain_strings(b.to_pyarrow()) for b in df.execute_stream()]
    except Exception as e:  # DataFusion raises plain exceptions for planning and execution errors
        raise Invalid(str(e).strip().replace("\n", " ")) from e
    if not batches:
        return pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f
                          for f in schema]).empty_table()
    return pa.Table.from_batches(batches)
