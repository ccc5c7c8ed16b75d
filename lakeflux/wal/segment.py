"""WAL segment encoding: one Parquet file per flush, one row group per (database, table).

Tables in one flush have different schemas, so the file's schema is their union with each table's
columns namespaced as "<i>/<column>" (i = the table's index in the segment); row group i holds
table i's rows and nulls elsewhere. The key-value metadata ("lakeflux.wal") is self-describing:
format version, sequence, writer id, min/max time, and per table its database, name, row group,
row count, tag columns and time range. A reader of one table fetches the footer and that row
group's column chunks only. The WAL knows nothing of the catalog.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import Corrupt

FORMAT_VERSION = 1
META_KEY = b"lakeflux.wal"


@dataclass(frozen=True)
class WalTable:
    """One table's rows in a segment: tags Utf8, fields typed, "time" Int64 ns; nulls = absent."""

    db: str
    table: str
    data: pa.Table
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Segment:
    seq: int
    writer_id: str
    tables: list[WalTable]

    @property
    def rows(self) -> int:
        return sum(t.data.num_rows for t in self.tables)


def encode(segment: Segment) -> bytes:
    """Serialise a segment to Parquet bytes (pure; nothing is stored)."""
    fields: list[pa.Field] = []
    entries: list[dict[str, Any]] = []
    dict_columns: list[str] = []
    min_all: int | None = None
    max_all: int | None = None
    for i, t in enumerate(segment.tables):
        names = []
        for f in t.data.schema:
            fields.append(pa.field(f"{i}/{f.name}", f.type, nullable=True))
            names.append(f.name)
            if f.name in t.tags:
                dict_columns.append(f"{i}/{f.name}")
        lo, hi = _time_range(t.data)
        if lo is not None:
            min_all = lo if min_all is None else min(min_all, lo)
            max_all = hi if max_all is None else max(max_all, hi)  # type: ignore[type-var]
        entries.append(
            {"db": t.db, "table": t.table, "row_group": i, "rows": t.data.num_rows, "tags": list(t.tags),
             "columns": names, "min_time": lo, "max_time": hi}
        )
    meta = {"version": FORMAT_VERSION, "seq": segment.seq, "writer_id": segment.writer_id,
            "min_time": min_all, "max_time": max_all, "tables": entries}
    schema = pa.schema(fields, metadata={META_KEY: orjson.dumps(meta)})
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema, compression="lz4", use_dictionary=dict_columns or False,
                          write_statistics=False) as writer:
        for i, t in enumerate(segment.tables):
            writer.write_table(_widen(schema, i, t.data), row_group_size=max(1, t.data.num_rows))
    return sink.getvalue()


def _time_range(data: pa.Table) -> tuple[int | None, int | None]:
    if data.num_rows == 0 or "time" not in data.column_names:
        return None, None
    mm = pc.min_max(data.column("time"))
    return mm["min"].as_py(), mm["max"].as_py()


def _widen(schema: pa.Schema, index: int, data: pa.Table) -> pa.Table:
    prefix = f"{index}/"
    n = data.num_rows
    cols = []
    for f in schema:
        if f.name.startswith(prefix):
            cols.append(data.column(f.name[len(prefix):]))
        else:
            cols.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def read_meta(pf: pq.ParquetFile, key: str) -> dict[str, Any]:
    raw = (pf.schema_arrow.metadata or {}).get(META_KEY)
    if raw is None:
        raise Corrupt(f"WAL segment {key} has no lakeflux metadata")
    meta: dict[str, Any] = orjson.loads(raw)
    if meta.get("version") != FORMAT_VERSION:
        raise Corrupt(f"WAL segment {key} has unsupported format version {meta.get('version')}")
    return meta


def decode(source: Any, key: str, only: set[tuple[str, str]] | None = None) -> Segment:
    """Decode a segment from bytes or a seekable file; `only` limits it to those (db, table) pairs.

    With a range-reading file object only the footer and the selected row groups are fetched.
    """
    try:
        pf = pq.ParquetFile(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source)
        meta = read_meta(pf, key)
        tables = []
        for e in meta["tables"]:
            if only is not None and (e["db"], e["table"]) not in only:
                continue
            i = e["row_group"]
            rg = pf.read_row_group(i, columns=[f"{i}/{c}" for c in e["columns"]])
            rg = rg.rename_columns(e["columns"]).replace_schema_metadata(None)
            tables.append(WalTable(db=e["db"], table=e["table"], data=rg, tags=tuple(e["tags"])))
        return Segment(seq=meta["seq"], writer_id=meta["writer_id"], tables=tables)
    except Corrupt:
        raise
    except Exception as e:  # pyarrow raises many kinds for truncated or garbled files
        raise Corrupt(f"WAL segment {key} is unreadable: {e}") from e
