"""Statement results and their encodings: InfluxDB v1's JSON (whole or chunked) and CSV, and the flat
Arrow table InfluxDB 3 answers with on `/api/v3/query_influxql` and over Flight (`iox::measurement` first).

A series holds its columns as Arrow arrays; `time` is int64 ns. Encoding follows InfluxDB 3's v1 API:
floats with no fractional part print as integers, NaN as null, ±Inf is an error; times are RFC3339 with
0, 3, 6 or 9 fraction digits, or integers in the `epoch` unit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa

from ..errors import Invalid
from .timeutil import format_time

MEASUREMENT_COLUMN = "iox::measurement"
DEFAULT_CHUNK_SIZE = 10_000
_I64_LIMIT = 9.2e18


@dataclass
class Series:
    name: str
    columns: list[str]
    arrays: list[pa.Array]
    tags: dict[str, str] | None = None  # None: no GROUP BY tags, the "tags" key is left out
    time_column: int | None = 0
    partial: bool = False
    timezone: str | None = None  # tz() of the statement: times print in that zone
    # A series cut from a block (the rows of many series in one set of arrays) says where: encoders
    # convert the block's columns once instead of each small series' own.
    block: Series | None = None
    offset: int = 0

    @property
    def num_rows(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def slice(self, start: int, length: int) -> Series:
        block, offset = (self.block, self.offset + start) if self.block is not None else (self, start)
        return Series(self.name, self.columns, [a.slice(start, length) for a in self.arrays], self.tags,
                      self.time_column, self.partial, self.timezone, block, offset)


@dataclass
class StatementResult:
    statement_id: int
    series: list[Series] = field(default_factory=list)
    error: str | None = None
    # Statements whose InfluxDB 3 table form is not their v1 series (SHOW DATABASES, SHOW RETENTION POLICIES).
    flat: pa.Table | None = None
    group_tags: list[str] = field(default_factory=list)


# --- JSON ------------------------------------------------------------------------------------------------------


class Encoder:
    """Turns series into JSON-ready rows for one request's `epoch` and time zone settings."""

    def __init__(self, epoch_divisor: int | None, timezone: str | None = None) -> None:
        self.divisor = epoch_divisor
        self.timezone = timezone

    def rows(self, series: Series) -> list[tuple[object, ...]]:
        columns = [self.column(a, i == series.time_column, series.timezone) for i, a in enumerate(series.arrays)]
        return list(zip(*columns, strict=True)) if columns else []

    def rows_of(self, series: list[Series]) -> list[list[tuple[object, ...]]]:
        """`rows` of each series; series cut from one block (a statement grouped by tags has many small
        series) are converted with the block, once."""
        converted: dict[int, list[tuple[object, ...]]] = {}
        out = []
        for s in series:
            if s.block is None:
                out.append(self.rows(s))
                continue
            rows = converted.get(id(s.block))
            if rows is None:
                rows = converted[id(s.block)] = self.rows(s.block)
            out.append(rows[s.offset:s.offset + s.num_rows])
        return out

    def column(self, array: pa.Array, is_time: bool, timezone: str | None = None) -> list[object]:
        if is_time:
            return self.times(array, timezone or self.timezone)
        if pa.types.is_floating(array.type):
            return _floats(array)
        return array.to_pylist()  # type: ignore[no-any-return]

    def times(self, array: pa.Array, timezone: str | None = None) -> list[object]:
        values = array.cast(pa.int64()).to_numpy(zero_copy_only=False)
        if self.divisor is not None:
            return (values // self.divisor).tolist()  # type: ignore[no-any-return]
        if timezone:
            return [format_time(int(t), timezone) for t in values]
        return list(rfc3339(values))


def rfc3339(values: np.ndarray) -> list[str]:
    """UTC RFC3339 strings with the fewest of 0, 3, 6 or 9 fraction digits that are exact."""
    if len(values) == 0:
        return []
    stamps = values.astype("datetime64[ns]")
    out = np.empty(len(values), dtype=object)
    frac = values % 1_000_000_000
    for unit, mask in (("s", frac == 0), ("ms", (frac % 1_000_000 == 0) & (frac != 0)),
                       ("us", (frac % 1_000 == 0) & (frac % 1_000_000 != 0)), ("ns", frac % 1_000 != 0)):
        if mask.any():
            out[mask] = np.char.add(np.datetime_as_string(stamps[mask], unit=unit), "Z")  # type: ignore[call-overload]
    return out.tolist()  # type: ignore[no-any-return]


def _floats(array: pa.Array) -> list[object]:
    values = array.to_numpy(zero_copy_only=False).astype(np.float64)
    nulls = np.asarray(array.is_null()) if array.null_count else np.zeros(len(values), dtype=bool)
    if np.isinf(values[~nulls]).any():
        sign = "+" if (values[~nulls] > 0)[np.isinf(values[~nulls])][0] else "-"
        raise Invalid(f"json: unsupported value: {sign}Inf")
    out = values.astype(object)
    finite = np.isfinite(values) & ~nulls
    whole = finite & (np.floor(values) == values) & (np.abs(values) < _I64_LIMIT)
    if whole.any():
        out[whole] = values[whole].astype(np.int64).astype(object)
    out[~finite] = None
    return out.tolist()  # type: ignore[no-any-return]


def _series_json(series: Series, encoder: Encoder, partial: bool = False,
                 rows: list[tuple[object, ...]] | None = None) -> dict[str, object]:
    body: dict[str, object] = {"name": series.name} if series.name else {}
    if series.tags is not None:
        body["tags"] = series.tags
    body["columns"] = series.columns
    body["values"] = encoder.rows(series) if rows is None else rows
    if partial:
        body["partial"] = True
    return body


def _result_json(result: StatementResult, encoder: Encoder) -> dict[str, object]:
    body: dict[str, object] = {"statement_id": result.statement_id}
    if result.error is not None:
        body["error"] = result.error
        return body
    shown = [s for s in result.series if s.num_rows or not s.arrays]
    try:
        series = [_series_json(s, encoder, rows=rows) for s, rows in zip(shown, encoder.rows_of(shown), strict=True)]
    except Invalid as e:
        body["error"] = e.message
        return body
    if series:
        body["series"] = series
    return body


def v1_json(results: list[StatementResult], encoder: Encoder, pretty: bool = False) -> bytes:
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps({"results": [_result_json(r, encoder) for r in results]}, option=option)


def v1_json_chunks(results: list[StatementResult], encoder: Encoder, chunk_size: int,
                   pretty: bool = False) -> Iterator[bytes]:
    """InfluxDB's chunked form: one JSON document per line, each holding at most `chunk_size` rows of one
    series; `partial` marks a series continued in the next chunk and a statement with chunks to come."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    size = chunk_size if chunk_size > 0 else DEFAULT_CHUNK_SIZE
    for result in results:
        pieces: list[tuple[Series, bool]] = []
        if result.error is None:
            for s in result.series:
                for start in range(0, max(s.num_rows, 1), size):
                    pieces.append((s.slice(start, size), start + size < s.num_rows))
        if not pieces:
            yield orjson.dumps({"results": [_result_json(result, encoder)]}, option=option) + b"\n"
            continue
        for i, (piece, series_partial) in enumerate(pieces):
            try:
                body: dict[str, object] = {"statement_id": result.statement_id,
                                           "series": [_series_json(piece, encoder, series_partial)]}
            except Invalid as e:
                body = {"statement_id": result.statement_id, "error": e.message}
                yield orjson.dumps({"results": [body]}, option=option) + b"\n"
                break
            if i + 1 < len(pieces):
                body["partial"] = True
            yield orjson.dumps({"results": [body]}, option=option) + b"\n"


# --- CSV ------------------------------------------------------------------------------------------------------


def v1_csv(results: list[StatementResult], encoder: Encoder) -> bytes:
    """InfluxDB 3's v1 CSV: per statement a `name,tags,<columns>` header, then a row per value row;
    statements that failed are left out; times default to epoch nanoseconds."""
    if encoder.divisor is None:
        encoder = Encoder(1, None)
    out: list[str] = []
    first = True
    for result in results:
        if result.error is not None or not result.series:
            continue
        if not first:
            out.append("")
        first = False
        out.append(",".join(["name", "tags", *(_csv(c) for c in result.series[0].columns)]))
        for s in result.series:
            name = _csv(s.name)
            tags = _csv(",".join(f"{k}={v}" for k, v in (s.tags or {}).items()))
            columns = [encoder.column(a, i == s.time_column) for i, a in enumerate(s.arrays)]
            for row in zip(*columns, strict=True):
                out.append(",".join([name, tags, *(_csv_value(v) for v in row)]))
    return ("\n".join(out) + "\n").encode() if out else b""


def _csv_value(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return _csv(str(v))


def _csv(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


# --- the flat (InfluxDB 3) table --------------------------------------------------------------------------------


def flat_table(result: StatementResult) -> pa.Table:
    """One statement's rows as InfluxDB 3's table: `iox::measurement`, `time`, the GROUP BY tags, then the
    projected columns; times as Timestamp(ns)."""
    if result.flat is not None:
        return result.flat
    columns: list[str] = [MEASUREMENT_COLUMN]
    for s in result.series:
        time_name = [s.columns[s.time_column]] if s.time_column is not None else []
        rest = [c for i, c in enumerate(s.columns) if i != s.time_column]
        for c in [*time_name, *sorted(s.tags or {}), *rest]:
            if c not in columns:
                columns.append(c)
    parts: dict[str, list[pa.Array]] = {c: [] for c in columns}
    types: dict[str, pa.DataType] = {}
    for s in result.series:
        n = s.num_rows
        given = {c: a for c, a in zip(s.columns, s.arrays, strict=True)}
        for i, c in enumerate(s.columns):
            if i == s.time_column:
                given[c] = given[c].cast(pa.int64()).cast(pa.timestamp("ns"))
            types.setdefault(c, given[c].type)
        for k, v in (s.tags or {}).items():
            if k not in given:
                given[k] = pa.array([v] * n, pa.string())
                types.setdefault(k, pa.string())
        given[MEASUREMENT_COLUMN] = pa.array([s.name] * n, pa.string())
        types[MEASUREMENT_COLUMN] = pa.string()
        for c in columns:
            parts[c].append(given[c] if c in given else None)  # type: ignore[arg-type]
    arrays = []
    for c in columns:
        target = types.get(c, pa.null())
        chunks = []
        for s, chunk in zip(result.series, parts[c], strict=True):
            if chunk is None:
                chunks.append(pa.nulls(s.num_rows, target))
            else:
                chunks.append(_cast(chunk, target))
        arrays.append(pa.concat_arrays(chunks) if chunks else pa.array([], target))
    return pa.table(arrays, names=columns)


def _cast(array: pa.Array, target: pa.DataType) -> pa.Array:
    if array.type == target:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), target)
    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return array.cast(pa.string())
