"""The persisted table files' format: time-sorted, zstd Parquet with dictionary-encoded tags, one file per
table and UTC day; encoding, decoding (whole or only the row groups a time range needs) and the day split."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..store import paths

NS_PER_DAY = 86_400 * 1_000_000_000
ROW_GROUP_ROWS = 128 * 1024


def time_range(part: pa.Table) -> tuple[int, int]:
    """The smallest and largest `time` of a non-empty table, as int64 nanoseconds."""
    mm = pc.min_max(part.column("time").cast(pa.int64()))
    return int(mm["min"].as_py()), int(mm["max"].as_py())


def by_day(node: str, db: str, table: str, upto: int, data: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """Split rows by UTC day; each part sorted by time, keyed by its final table-file key.

    One day at a time, and without copying a part that is already one day or already sorted (the usual
    case): a snapshot holds the buffered rows while it runs, so every extra copy is peak memory. Rows
    sorted by time (most buffers) are cut into their days as slices, not filtered copies."""
    times = data.column("time").cast(pa.int64()).to_numpy()
    if len(times) > 1 and not bool(np.any(times[1:] < times[:-1])):
        first, last = int(times[0]) // NS_PER_DAY, int(times[-1]) // NS_PER_DAY
        for day in range(first, last + 1):
            lo, hi = np.searchsorted(times, [day * NS_PER_DAY, (day + 1) * NS_PER_DAY])
            if hi > lo:
                yield _day_key(node, db, table, upto, day), data.slice(int(lo), int(hi - lo))
        return
    days = np.floor_divide(times, NS_PER_DAY)
    for day in np.unique(days):
        in_day = days == day
        part = data if in_day.all() else data.filter(pa.array(in_day))
        part_times = times if in_day.all() else times[in_day]
        if len(part_times) > 1 and bool(np.any(part_times[1:] < part_times[:-1])):
            part = part.take(pa.array(np.argsort(part_times, kind="stable")))
        yield _day_key(node, db, table, upto, int(day)), part


def _day_key(node: str, db: str, table: str, upto: int, day: int) -> str:
    date = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%d")
    return paths.table_file(node, db, table, date, paths.snapshot_file_name(upto))


def encode_parquet(data: pa.Table, tags: list[str]) -> bytes:
    """Open Parquet: zstd, dictionary-encoded tags, statistics for time pruning, sorted by time."""
    sink = io.BytesIO()
    data = data.replace_schema_metadata(None)
    pq.write_table(data, sink, compression="zstd", use_dictionary=[t for t in tags if t in data.column_names],
                   row_group_size=ROW_GROUP_ROWS, write_statistics=True, coerce_timestamps=None,
                   store_schema=True)
    return sink.getvalue()


def read_parquet_within(data: bytes, lo: np.ndarray, hi: np.ndarray) -> pa.Table:
    """Decode only the row groups of a persisted file whose time statistics meet one of the inclusive,
    disjoint, ascending ranges [lo[i], hi[i]] (a row group without statistics is always read)."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    column = parquet.schema_arrow.get_field_index("time")  # flat schema: leaf index == field index
    keep = []
    for index in range(parquet.metadata.num_row_groups):
        stats = parquet.metadata.row_group(index).column(column).statistics
        if stats is None or not stats.has_min_max:
            keep.append(index)
            continue
        at = int(np.searchsorted(hi, stats.min_raw, side="left"))  # the first range ending at or after it
        if at < len(lo) and lo[at] <= stats.max_raw:
            keep.append(index)
    return parquet.read_row_groups(keep) if keep else parquet.schema_arrow.empty_table()


def read_parquet(data: bytes) -> pa.Table:
    """Decode a persisted file (for stores DataFusion cannot read natively)."""
    return pq.read_table(io.BytesIO(data))


__all__ = ["NS_PER_DAY", "ROW_GROUP_ROWS", "by_day", "encode_parquet", "read_parquet", "read_parquet_within",
           "time_range"]
