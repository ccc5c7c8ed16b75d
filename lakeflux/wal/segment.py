"""WAL segment encoding: one Parquet file per flush, every table's rows back to back in one row group.

Tables in one flush have different schemas. The file's columns are typed slots ("<type>/<k>": the
k-th column of that Arrow type in a table), shared by every table, so the width is that of the
widest table, not the sum of all (a flush touching 1,000 tables stays small and fast). A table's rows
are a run of rows (`first_row`, `rows`) with its columns in their slots and nulls in the rest; the
metadata maps each table's columns to their slots. The key-value metadata ("lakeflux.wal") is
self-describing: format version, sequence, writer id, min/max time, and per table its database, name,
first row, row count, tag columns, time range and the catalog identity of the table the rows were written
to (`table_seq`). Version 2 segments (written before 2026-12) held one row group per table instead
(`row_group`); they read the same. A reader of one table fetches the footer and the row groups holding its
run, of its slots only.
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

FORMAT_VERSION = 3
# Versions this code reads: 2 held one row group per table (the metadata names it), 3 one run of rows per table.
READABLE_VERSIONS = (2, 3)
META_KEY = b"lakeflux.wal"


@dataclass(frozen=True)
class WalTable:
    """One table's rows in a segment: tags Utf8, fields typed, "time" Int64 ns; nulls = absent."""

    db: str
    table: str
    data: pa.Table
    tags: tuple[str, ...]
    # The catalog sequence that created the table these rows were written to (TableDef.created_seq); None
    # in segments of versions that did not record it.
    table_seq: int | None = None


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
    slot_types: dict[str, pa.DataType] = {}
    entries: list[dict[str, Any]] = []
    placed: list[dict[str, pa.ChunkedArray]] = []  # per table: slot -> its column
    min_all: int | None = None
    max_all: int | None = None
    first = 0
    for t in segment.tables:
        slots = _slots(t.data.schema)
        for f, slot in zip(t.data.schema, slots, strict=True):
            slot_types.setdefault(slot, f.type)
        placed.append(dict(zip(slots, t.data.columns, strict=True)))
        lo, hi = _time_range(t.data)
        if lo is not None:
            min_all = lo if min_all is None else min(min_all, lo)
            max_all = hi if max_all is None else max(max_all, hi)  # type: ignore[type-var]
        entries.append(
            {"db": t.db, "table": t.table, "first_row": first, "rows": t.data.num_rows, "tags": list(t.tags),
             "columns": [[f.name, slot] for f, slot in zip(t.data.schema, slots, strict=True)],
             "min_time": lo, "max_time": hi, **({} if t.table_seq is None else {"table_seq": t.table_seq})}
        )
        first += t.data.num_rows
    meta = {"version": FORMAT_VERSION, "seq": segment.seq, "writer_id": segment.writer_id,
            "min_time": min_all, "max_time": max_all, "tables": entries}
    names = sorted(slot_types)
    schema = pa.schema([pa.field(name, slot_types[name], nullable=True) for name in names],
                       metadata={META_KEY: orjson.dumps(meta)})
    # One run of rows per table in one row group, not a row group per table: every row group costs each
    # slot a column chunk (encoders, pages, footer entries), which made a flush of the six tables of the
    # mixed benchmark body cost 1.4 ms before its first row (0.6 ms this way; 10,000 rows 2.5 → 1.7 ms).
    columns = [_run_of_slots(name, slot_types[name], segment.tables, placed) for name in names]
    # Encoded on every commit, read back only by replay and followers, deleted after the next snapshot: cheap
    # to write beats small. Strings (tags mostly) repeat a lot: dictionary pages. Integers (time above all)
    # are delta-encoded, which shrinks near-sorted timestamps without a codec. No compression: on the 10,000
    # rows of two mixed benchmark bodies this encodes in 2.7 ms instead of 3.3 (lz4, plain integers) at 246
    # KiB instead of 265; Telegraf-like rows (random floats) 0.9 vs 1.0 ms, 423 vs 404 KiB. Segments of
    # earlier versions (lz4) read the same: the codec and encodings are recorded per column chunk.
    strings = [f.name for f in schema if pa.types.is_string(f.type)]
    integers = {f.name: "DELTA_BINARY_PACKED" for f in schema if pa.types.is_integer(f.type)}
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema, compression="none", use_dictionary=strings or False,
                          column_encoding=integers or None, write_statistics=False) as writer:
        writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=max(1, first))
    return sink.getvalue()


def _run_of_slots(slot: str, kind: pa.DataType, tables: list[WalTable],
                  placed: list[dict[str, pa.ChunkedArray]]) -> pa.ChunkedArray:
    """Slot `slot`'s column over every table's run of rows: the table's column, or nulls where it has none."""
    chunks: list[pa.Array] = []
    for t, slots in zip(tables, placed, strict=True):
        column = slots.get(slot)
        if column is not None:
            chunks.extend(column.chunks)
        elif t.data.num_rows:
            chunks.append(pa.nulls(t.data.num_rows, kind))
    return pa.chunked_array(chunks, kind)


def _slots(schema: pa.Schema) -> list[str]:
    """The slot of each column: its Arrow type and its rank among the table's columns of that type."""
    seen: dict[str, int] = {}
    out = []
    for f in schema:
        kind = str(f.type)
        n = seen.get(kind, 0)
        seen[kind] = n + 1
        out.append(f"{kind}/{n}")
    return out


def _time_range(data: pa.Table) -> tuple[int | None, int | None]:
    if data.num_rows == 0 or "time" not in data.column_names:
        return None, None
    mm = pc.min_max(data.column("time"))
    return mm["min"].as_py(), mm["max"].as_py()


def read_meta(pf: pq.ParquetFile, key: str) -> dict[str, Any]:
    raw = (pf.schema_arrow.metadata or {}).get(META_KEY)
    if raw is None:
        raise Corrupt(f"WAL segment {key} has no lakeflux metadata")
    meta: dict[str, Any] = orjson.loads(raw)
    if meta.get("version") not in READABLE_VERSIONS:
        raise Corrupt(f"WAL segment {key} has unsupported format version {meta.get('version')}")
    return meta


def decode(source: Any, key: str, only: set[tuple[str, str]] | None = None) -> Segment:
    """Decode a segment from bytes or a seekable file; `only` limits it to those (db, table) pairs.

    With a range-reading file object only the footer and the row groups holding the selected tables' rows
    (their slots) are fetched. A whole segment is decoded in one read and cut into its tables
    (zero-copy slices): reading it table by table cost about 1 ms per table, which made replaying
    segments of many tables slow.
    """
    try:
        whole = isinstance(source, bytes | bytearray) and only is None
        pf = pq.ParquetFile(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source)
        meta = read_meta(pf, key)
        everything = pf.read().replace_schema_metadata(None) if whole else None
        starts = [0]  # the first row of each row group, and the end of the last
        for i in range(pf.metadata.num_row_groups):
            starts.append(starts[-1] + pf.metadata.row_group(i).num_rows)
        tables = []
        for e in meta["tables"]:
            if only is not None and (e["db"], e["table"]) not in only:
                continue
            names = [name for name, _ in e["columns"]]
            slots = [slot for _, slot in e["columns"]]
            first = e["first_row"] if "first_row" in e else starts[e["row_group"]]
            rows = e["rows"]
            if everything is not None:
                rg = everything.select(slots).slice(first, rows)
            else:
                rg = _read_run(pf, starts, slots, first, rows)
            rg = rg.rename_columns(names).replace_schema_metadata(None)
            tables.append(WalTable(db=e["db"], table=e["table"], data=rg, tags=tuple(e["tags"]),
                                   table_seq=e.get("table_seq")))
        return Segment(seq=meta["seq"], writer_id=meta["writer_id"], tables=tables)
    except Corrupt:
        raise
    except Exception as e:  # pyarrow raises many kinds for truncated or garbled files
        raise Corrupt(f"WAL segment {key} is unreadable: {e}") from e


def _read_run(pf: pq.ParquetFile, starts: list[int], slots: list[str], first: int, rows: int) -> pa.Table:
    """Rows [first, first + rows) of `slots`, reading only the row groups that hold them."""
    groups = [i for i in range(len(starts) - 1) if starts[i] < first + rows and starts[i + 1] > first]
    if not groups:
        return pf.schema_arrow.empty_table().select(slots)
    return pf.read_row_groups(groups, columns=slots).slice(first - starts[groups[0]], rows)
