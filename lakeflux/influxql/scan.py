"""The SQL side of a SELECT: WHERE clauses with the time range, GROUP BY time windows as SQL buckets
(daylight-saving changes included), and splitting an SQL answer into series by GROUP BY tags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .columns import Col
from .condition import Params, compile_condition, quote
from .plan import Plan, Source
from .results import Series
from .timeutil import MAX_TIME, MIN_TIME, chain, steps, utc_offset_ns, window

MAX_WINDOWS = 1_000_000  # per statement: fill materialises every window of every series

@dataclass
class Windows:
    """The GROUP BY time windows of a statement: the requested ones, plus the extra ones a transformation
    reads before them (after them in descending order), and the time range the SQL must read."""

    starts: list[int] | None  # the windows reported (InfluxQL's fill steps); None without a lower time bound
    first: int  # first requested window
    last: int  # last requested window
    data_lo: int
    data_hi: int


def windows_of(plan: Plan) -> Windows:
    tr = plan.time_range
    if not plan.interval:
        return Windows(None, MIN_TIME, MAX_TIME, tr.lo, tr.hi)
    step = (plan.interval, plan.offset, plan.tz)
    last = window(tr.hi, *step)[0]
    if tr.lo == MIN_TIME:
        return Windows(None, MIN_TIME, last, tr.lo, tr.hi)
    first = window(tr.lo, *step)[0]
    data_lo, data_hi = tr.lo, tr.hi
    lo_step, hi_step = first, last
    if plan.extra_windows and not plan.stmt.descending:
        for _ in range(plan.extra_windows):
            lo_step = window(lo_step - 1, *step)[0]
        data_lo = lo_step
    elif plan.extra_windows:
        for _ in range(plan.extra_windows):
            hi_step = window(hi_step, *step)[1]
        data_hi = window(hi_step, *step)[1] - 1
    starts = steps(lo_step, hi_step, plan.interval, plan.tz, MAX_WINDOWS)
    return Windows(starts, first, last, data_lo, data_hi)


def where_clauses(plan: Plan, source: Source, params: Params, span: Windows | None = None) -> list[str]:
    tr = plan.time_range
    lo, hi = (span.data_lo, span.data_hi) if span is not None else (tr.lo, tr.hi)
    clauses = []
    bounds = source.bounds() if source.bounds is not None and (lo != MIN_TIME or hi != MAX_TIME) else None
    if bounds is not None and lo <= bounds[0] and hi >= bounds[1]:
        lo, hi = MIN_TIME, MAX_TIME  # every row is in range: filtering on time would only cost
    if lo != MIN_TIME:
        clauses.append(f"time >= to_timestamp_nanos({int(lo)})")
    if hi != MAX_TIME:
        clauses.append(f"time <= to_timestamp_nanos({int(hi)})")
    if plan.condition is not None:
        clauses.append(compile_condition(plan.condition, source.cols, params))
    return clauses


def sql_text(select: list[str], source: Source, where: list[str], tail: str = "") -> str:
    sql = f"SELECT {', '.join(select)} FROM {quote(source.name)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + tail


def group_columns(plan: Plan, source: Source) -> list[str]:
    """SQL for each GROUP BY tag (NULL for tags this measurement lacks)."""
    return [quote(t) if t in source.cols.tags else "CAST(NULL AS VARCHAR)" for t in plan.group_tags]


@dataclass
class Groups:
    """Rows of an SQL answer split into series by their GROUP BY tag values."""

    keys: list[dict[str, str]]
    starts: np.ndarray  # row index where each series starts (rows sorted by series)
    order: np.ndarray  # the permutation that sorts rows by series (stable)

    def rows(self, i: int) -> np.ndarray:
        end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.order)
        return self.order[self.starts[i]:end]


def split_groups(table: pa.Table, names: list[str]) -> Groups:
    n = table.num_rows
    if n == 0:
        return Groups([], np.array([], dtype=np.int64), np.arange(0))
    if not names:
        return Groups([{}], np.array([0], dtype=np.int64), np.arange(n))
    codes = np.zeros(n, dtype=np.int64)
    dictionaries = []
    for i, _ in enumerate(names):
        column = table.column(f"__g{i}").fill_null("")
        encoded = column.combine_chunks().dictionary_encode() if n else pa.array([], pa.string()).dictionary_encode()
        values = encoded.dictionary.to_pylist()
        rank = np.argsort(np.argsort(np.array(values, dtype=object))) if values else np.array([], dtype=np.int64)
        idx = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        codes = codes * (len(values) + 1) + (rank[idx] if len(idx) else idx)
        dictionaries.append((values, rank))
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_codes[1:] != sorted_codes[:-1]))) if n else np.array(
        [], dtype=np.int64)
    firsts = order[starts]
    columns = [table.column(f"__g{i}").take(pa.array(firsts)).to_pylist() for i in range(len(names))]
    keys = [{name: (columns[i][k] or "") for i, name in enumerate(names)} for k in range(len(starts))]
    return Groups(keys, starts, order)


def make_series(plan: Plan, name: str, tags: dict[str, str], times: np.ndarray, cols: list[Col]) -> Series:
    arrays = [pa.array(times, pa.int64()), *(c.to_arrow() for c in cols)]
    return Series(name=name, columns=["time", *(o.name for o in plan.outputs)], arrays=arrays,
                  tags=dict(tags) if plan.group_tags else None, timezone=plan.tz)


def split_block(plan: Plan, block: Series, keys: list[dict[str, str]], counts: np.ndarray) -> list[Series]:
    """`block` (rows of every series, series after series) cut into one series per non-empty count; the
    pieces share the block's buffers."""
    out, offset = [], 0
    for i, count in enumerate(counts.tolist()):
        if count:
            piece = block.slice(offset, count)
            piece.tags = dict(keys[i]) if plan.group_tags else None
            out.append(piece)
        offset += count
    return out


def limited(plan: Plan, keep: np.ndarray) -> np.ndarray:
    """Row positions after OFFSET and LIMIT."""
    idx = np.flatnonzero(keep)
    if plan.stmt.offset:
        idx = idx[plan.stmt.offset:]
    if plan.stmt.limit:
        idx = idx[:plan.stmt.limit]
    return idx


def bucket_for(plan: Plan, span: Windows, source: Source) -> str:
    """`bucket_sql` over the times the statement reads (the table's earliest time without a lower bound)."""
    lo, hi = span.data_lo, span.data_hi
    if plan.tz and lo == MIN_TIME:
        earliest = source.run(f"SELECT CAST(min(time) AS BIGINT) AS lo FROM {quote(source.name)}", {})
        value = earliest.column("lo")[0].as_py() if earliest.num_rows else None
        lo = value if value is not None else hi
    return bucket_sql(plan, lo, hi)


def bucket_sql(plan: Plan, lo: int, hi: int) -> str:
    """SQL for the start (int ns) of the GROUP BY time window holding each row's time in [lo, hi], as
    InfluxQL groups them: windows aligned in local time, one holding a daylight-saving change longer or
    shorter by it (when the change is shorter than the interval)."""
    interval, offset = int(plan.interval), int(plan.offset)
    if not plan.tz:
        return _date_bin(interval, offset)
    starts = chain(lo, hi, interval, offset, plan.tz, MAX_WINDOWS)
    if not starts:
        return _date_bin(interval, offset - utc_offset_ns(plan.tz, hi))
    # Runs of windows one interval apart share one date_bin; the last window of a run (whose length may
    # differ) is its own arm.
    arms: list[tuple[int, str]] = []
    run_start = 0
    for k in range(1, len(starts) + 1):
        if k == len(starts) or starts[k] - starts[k - 1] != interval:
            last = k - 1
            arms.append((starts[last], f"CAST({starts[last]} AS BIGINT)"))
            if last > run_start:
                arms.append((starts[run_start], _date_bin(interval, starts[run_start])))
            run_start = k
    arms.sort(reverse=True)  # a time takes the first arm whose start it has reached: the latest first
    cases = " ".join(f"WHEN time >= to_timestamp_nanos({start}) THEN {sql}" for start, sql in arms[:-1])
    return f"CASE {cases} ELSE {arms[-1][1]} END" if cases else arms[-1][1]


def _date_bin(interval: int, origin: int) -> str:
    return (f"CAST(date_bin(INTERVAL '{interval} nanoseconds', time, to_timestamp_nanos({origin})) AS BIGINT)")
