"""Output formats of `/api/v3/query_sql` (CONTRACT.md §4.3): choosing one, and rendering Arrow batches.

Rendering is column-at-a-time with Arrow compute kernels: each column becomes one string array
of its JSON (or CSV, or table-cell) text, the columns are joined into row strings by one kernel,
and the row strings' data buffer *is* the response chunk. Python touches individual values only
for rare types (lists, structs, binary, intervals), and for string columns holding control characters.

Choices where InfluxDB is silent or where lakeflux had to decide (all formats unless noted):

- Timestamps: `YYYY-MM-DDTHH:MM:SS` plus a fraction of 0, 3, 6 or 9 digits (the fewest that are
  exact); naive (no time zone) values have no suffix; tz-aware values are shown as wall-clock time
  in their zone followed by `Z` when the offset is zero (UTC, `+00:00`) or `+HH:MM`/`-HH:MM` otherwise.
- Dates `YYYY-MM-DD`; times of day `HH:MM:SS[.fraction]` with the timestamp fraction rule.
- Durations: ISO 8601 seconds with the timestamp fraction rule: `PT1.500S`, `-PT0.000000001S`, `PT0S`. Intervals: ISO 8601
  `P<months>M<days>DT<seconds>S` with zero parts left out (`PT300S`, `P1M2D`, `PT0S`).
- Decimals: exact decimal text (a bare JSON number).
- Binary: lower-case hex (a JSON string).
- Lists, structs, maps: their JSON text (nested timestamps become RFC 3339 strings); in CSV and
  pretty tables that JSON text is the cell.
- CSV of an empty result is the header line alone (InfluxDB writes nothing when no batch arrives;
  a header keeps the columns visible to tools that sniff them). CSV booleans `true`/`false`.
- Pretty tables: an empty result with columns still prints the header box; no columns prints `++`/`++`.
- Parquet: batches are grouped into row groups of up to PARQUET_ROW_GROUP_ROWS rows and each
  finished row group is sent as it is written; an empty result is an empty body.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeAlias

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import Invalid

# Rows per rendered chunk: big enough that per-chunk kernel overhead vanishes, small enough that one
# chunk's string array stays far below the 2 GiB offset limit and the client sees bytes early.
CHUNK_ROWS = 65_536
CHUNK_BYTES = 16 * 1024 * 1024
PARQUET_ROW_GROUP_ROWS = 131_072

_NS_PER = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_UTC_NAMES = frozenset({"utc", "z", "+00:00", "-00:00", "+0000", "etc/utc", "gmt", "etc/gmt", "zulu"})
_NULL_STRING = pa.scalar(None, pa.string())


class Format(enum.Enum):
    """A query output format; `content_type` is the exact Content-Type header of the response."""

    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    PRETTY = "pretty"
    PARQUET = "parquet"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    Format.JSON: "application/json",
    Format.JSONL: "application/jsonl",
    Format.CSV: "text/csv",
    Format.PRETTY: "text/plain; charset=utf-8",
    Format.PARQUET: "application/vnd.apache.parquet",
}

_FORMAT_NAMES = {
    "json": Format.JSON,
    "jsonl": Format.JSONL,
    "json_lines": Format.JSONL,
    "csv": Format.CSV,
    "pretty": Format.PRETTY,
    "parquet": Format.PARQUET,
}

# Media types accepted in `Accept`, besides anything mentioning text/html (browsers) → JSON.
_MEDIA_TYPES = {
    "application/json": Format.JSON,
    "*/*": Format.JSON,
    "application/*": Format.JSON,
    "text/csv": Format.CSV,
    "text/plain": Format.PRETTY,
    "text/*": Format.PRETTY,
    "application/vnd.apache.parquet": Format.PARQUET,
    # InfluxDB knows only the five above; jsonl media types cost nothing and mean what they say.
    "application/jsonl": Format.JSONL,
    "application/x-ndjson": Format.JSONL,
    "application/jsonlines": Format.JSONL,
}


def negotiate(format_param: str | None, accept: str | None) -> Format:
    """Choose the output format: the `format` parameter wins, else the `Accept` header.

    Accept lists are ordered by q-value (stable for ties); the first media type lakeflux serves wins,
    and types with q=0 are never chosen. A missing or blank Accept means JSON, and so does any header
    mentioning `text/html` (a browser). Raises Invalid for an unknown `format` or an Accept naming
    nothing servable.
    """
    if format_param is not None and format_param != "":
        found = _FORMAT_NAMES.get(format_param.strip().lower())
        if found is None:
            raise Invalid(
                f"invalid format {format_param!r}: expected one of json, jsonl, json_lines, csv, pretty, parquet"
            )
        return found
    if accept is None or accept.strip() == "" or "text/html" in accept.lower():
        return Format.JSON
    for media_type in _accept_in_preference_order(accept):
        found = _MEDIA_TYPES.get(media_type)
        if found is not None:
            return found
    raise Invalid(
        f"unsupported Accept header {accept!r}: expected application/json, application/jsonl, text/csv, "
        "text/plain or application/vnd.apache.parquet (or use the format parameter)"
    )


def _accept_in_preference_order(accept: str) -> list[str]:
    """Media types of an Accept header, parameters dropped, highest q first, q=0 removed."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media_type = pieces[0].lower()
        if not media_type:
            continue
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # a malformed q is no preference we can honour
        if quality > 0:
            ranked.append((-quality, position, media_type))
    ranked.sort()
    return [media_type for _, _, media_type in ranked]


def render(batches: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: Format) -> Iterator[bytes]:
    """Render query results as a stream of body chunks in `fmt`.

    Chunks are produced as batches arrive (the pretty table needs every row first to size its
    columns, so it is produced at the end). Concatenated, the chunks form the whole body.
    """
    if fmt is Format.JSON:
        return _render_json_array(batches, schema)
    if fmt is Format.JSONL:
        return _render_jsonl(batches, schema)
    if fmt is Format.CSV:
        return _render_csv(batches, schema)
    if fmt is Format.PRETTY:
        return _render_pretty(batches, schema)
    return _render_parquet(batches, schema)


# --------------------------------------------------------------------------------------------- streaming

# A piece of a rendered column: an array of text (null where that piece is absent in a row), or a
# constant string that belongs to every row where the column's value is present.
Piece: TypeAlias = "pa.Array | str"


def _slices(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Non-empty slices of at most CHUNK_ROWS rows and about CHUNK_BYTES of data, in order: a batch of
    wide rows is rendered a few rows at a time, so its text never takes much more memory than the batch."""
    for batch in batches:
        rows = CHUNK_ROWS
        if batch.num_rows and batch.nbytes > CHUNK_BYTES:
            rows = max(1, min(CHUNK_ROWS, CHUNK_BYTES * batch.num_rows // batch.nbytes))
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _string_data(strings: pa.Array) -> bytes:
    """The concatenation of all (non-null) values of a string array: a slice of its data buffer."""
    _, offsets_buffer, data_buffer = strings.buffers()
    offset_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)
    start = int(offsets[strings.offset])
    end = int(offsets[strings.offset + len(strings)])
    if data_buffer is None or end == start:
        return b""
    return data_buffer[start:end].to_pybytes()


def _valid_mask(array: pa.Array) -> np.ndarray:
    """Numpy booleans, True where the value is present."""
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    return array.is_valid().to_numpy(zero_copy_only=False)


def _strings_from_parts(lengths: np.ndarray, data: np.ndarray | bytes, valid: np.ndarray | None) -> pa.Array:
    """A string array built straight from value lengths, concatenated UTF-8 data and validity."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    large = offsets[-1] >= 2**31
    kind = pa.large_string() if large else pa.string()
    offsets_buffer = pa.py_buffer(offsets if large else offsets.astype(np.int32))
    validity = None if valid is None or valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(kind, len(lengths), [validity, offsets_buffer, pa.py_buffer(data)])


def _present_where(valid: np.ndarray, text: str) -> pa.Array:
    """`text` in every row where `valid` is True, null elsewhere; built without a kernel pass."""
    encoded = text.encode()
    lengths = valid.astype(np.int64) * len(encoded)
    return _strings_from_parts(lengths, encoded * int(valid.sum()), valid)


def _materialise(pieces: list[Piece], valid: np.ndarray, has_nulls: bool) -> list[Piece]:
    """Constant pieces become arrays (absent in null rows) when the column has nulls."""
    if not has_nulls:
        return pieces
    return [_present_where(valid, piece) if isinstance(piece, str) else piece for piece in pieces]


def _join(pieces: list[Piece]) -> pa.Array:
    """Concatenate pieces row by row into never-null strings; absent (null) pieces contribute nothing."""
    if len(pieces) == 1 and not isinstance(pieces[0], str):
        return pieces[0].fill_null("")
    return pc.binary_join_element_wise(*pieces, "", null_handling="replace", null_replacement="")


def _value_text(array: pa.Array, pieces: list[Piece]) -> pa.Array:
    """Concatenate one column's pieces into its text: null exactly where the value is null."""
    if len(pieces) == 1 and not isinstance(pieces[0], str):
        return pieces[0]
    text = _join(pieces)
    if array.null_count == 0:
        return text
    return pc.if_else(array.is_valid(), text, _NULL_STRING)


# -------------------------------------------------------------------------------------------------- JSON


def _render_json_array(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    # Every row is rendered as ",{...}"; the very first row of the stream drops its comma.
    yield b"["
    first = True
    for batch in _slices(batches):
        body = _string_data(_json_rows(batch, schema, ",{", "}"))
        if first:
            body = body[1:]
            first = False
        yield body
    yield b"]"


def _render_jsonl(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    for batch in _slices(batches):
        yield _string_data(_json_rows(batch, schema, "{", "}\n"))


def _json_rows(batch: pa.RecordBatch, schema: pa.Schema, opening: str, closing: str) -> pa.Array:
    """One string per row: `opening` + the row's JSON members + `closing`; null columns left out."""
    rows = batch.num_rows
    if not schema.names:
        return pa.array([opening + closing] * rows, pa.string())
    pieces: list[Piece] = [opening]
    masks = []
    for index, field in enumerate(schema):
        array = batch.column(index)
        valid = _valid_mask(array)
        masks.append(valid)
        # Members after the first carry their own leading comma, so absent members leave no trace.
        key = ("," if index else "") + orjson.dumps(field.name).decode() + ":"
        pieces.extend(_materialise([key, *_json_value_pieces(array)], valid, array.null_count > 0))
    pieces.append(closing)
    joined = pc.binary_join_element_wise(*pieces, "", null_handling="skip")
    # Rows whose first column is null but which have other members start `opening` + ",": drop the comma.
    needs_fix = ~masks[0] & np.logical_or.reduce(masks[1:]) if len(masks) > 1 else np.zeros(rows, dtype=bool)
    if needs_fix.any():
        fixed = pc.utf8_replace_slice(joined, len(opening), len(opening) + 1, "")
        joined = pc.if_else(pa.array(needs_fix), fixed, joined)
    return joined


def _json_value_pieces(array: pa.Array) -> list[Piece]:
    """Pieces of the JSON text of each value; array pieces are null where the value is null."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return [_value_text(array.dictionary, _json_value_pieces(array.dictionary)).take(array.indices)]
    if _is_string(kind):
        return _json_string_pieces(array.cast(pa.string()))
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return [array.cast(pa.string())]
    if pa.types.is_floating(kind):
        return _float_pieces(array, nan="null", pos_inf="null", neg_inf="null")
    if pa.types.is_null(kind):
        return [pa.nulls(len(array), pa.string())]
    temporal = temporal_text(array)
    if temporal is not None:
        return ['"', temporal, '"']
    if _is_binary(kind):
        return ['"', _binary_hex(array), '"']
    return [_per_value(array, _nested_json)]


def _json_string_pieces(strings: pa.Array) -> list[Piece]:
    """Quoted JSON strings: escaping only when some value needs it; control characters via orjson."""
    if not len(strings) or not pc.any(pc.match_substring_regex(strings, r'[\x00-\x1f"\\]')).as_py():
        return ['"', strings, '"']
    if pc.any(pc.match_substring_regex(strings, r"[\x00-\x1f]")).as_py():
        return [_per_value(strings, lambda value: orjson.dumps(value).decode())]
    escaped = pc.replace_substring(strings, "\\", "\\\\")
    return ['"', pc.replace_substring(escaped, '"', '\\"'), '"']


def _nested_json(value: Any) -> str:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_default(value: Any) -> Any:
    """orjson fallbacks for values nested in lists and structs."""
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "months") and hasattr(value, "nanoseconds"):  # MonthDayNano interval
        return _interval_iso(value)
    if hasattr(value, "total_seconds"):  # timedelta
        return _duration_iso(round(value.total_seconds() * 1_000_000) * 1_000)
    return str(value)  # Decimal and anything else with a faithful str()


# -------------------------------------------------------------------------------------------- scalars


def _is_string(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind))
    )


def _is_binary(kind: pa.DataType) -> bool:
    return (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or (hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(kind))
    )


def _float_pieces(array: pa.Array, *, nan: str, pos_inf: str, neg_inf: str) -> list[Piece]:
    """Shortest round-trip text of floats, whole numbers with `.0`, non-finite values spelt as given."""
    if pa.types.is_float16(array.type):
        array = array.cast(pa.float32())
    text = array.cast(pa.string())
    # Arrow writes whole floats without a point ("1", "-0"); a point keeps them floats for readers.
    whole = pc.match_substring_regex(text, r"^-?[0-9]+$").fill_null(False).to_numpy(zero_copy_only=False)
    pieces: list[Piece] = [text]
    if whole.any():
        pieces.append(_present_where(whole, ".0"))
    finite = pc.is_finite(array)
    if pc.all(finite).as_py() is False:
        special = pc.if_else(pc.is_nan(array), nan, pc.if_else(pc.greater(array, 0), pos_inf, neg_inf))
        pieces[0] = pc.if_else(finite, text, special)
    return pieces


def _per_value(array: pa.Array, text_of: Callable[[Any], str]) -> pa.Array:
    """The slow path: Python text of each non-null value."""
    return pa.array([None if value is None else text_of(value) for value in array.to_pylist()], pa.string())


def _binary_hex(array: pa.Array) -> pa.Array:
    return _per_value(array, lambda value: value.hex())


def temporal_text(array: pa.Array) -> pa.Array | None:
    """Unquoted text of timestamps, dates, times, durations and intervals; None for other types."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        return _timestamp_text(array)
    if pa.types.is_date(kind):
        return array.cast(pa.string())
    if pa.types.is_time(kind):
        since_midnight = array.cast(pa.int32() if pa.types.is_time32(kind) else pa.int64()).cast(pa.int64())
        as_timestamp = pa.Array.from_buffers(pa.timestamp(kind.unit), len(array), since_midnight.buffers())
        return pc.utf8_slice_codeunits(_timestamp_text(as_timestamp), len("1970-01-01T"))
    if pa.types.is_duration(kind):
        return _per_value(array.cast(pa.duration("ns")).cast(pa.int64()), _duration_iso)
    if pa.types.is_interval(kind):
        return _per_value(array, _interval_iso)
    return None


def _timestamp_text(array: pa.Array) -> pa.Array:
    """ISO 8601 text of timestamps of any unit (see the module docstring for the exact form)."""
    zone = array.type.tz
    per_second = _PER_SECOND[array.type.unit]
    offsets: np.ndarray | None = None
    if zone is not None and zone.lower() not in _UTC_NAMES:
        # Show wall-clock time in the value's own zone; the offset may differ per value (DST).
        local = pc.local_timestamp(array)
        offsets = _counts(local) // per_second - _counts(array) // per_second
        array = local
    elif zone is not None:
        offsets = np.zeros(len(array), dtype=np.int64)
    seconds, within = np.divmod(_counts(array), per_second)
    return _iso_datetimes(seconds, within * _NS_PER[array.type.unit], offsets, _valid_mask(array))


def _counts(array: pa.Array) -> np.ndarray:
    """The raw int64 counts of a temporal array, 0 where null."""
    return array.cast(pa.int64()).fill_null(0).to_numpy()


def _civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proleptic Gregorian (year, month, day) of days since 1970-01-01 (Howard Hinnant's algorithm)."""
    shifted = days + 719_468
    era = np.floor_divide(shifted, 146_097)
    day_of_era = shifted - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1_460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = np.where(month_index < 10, month_index + 3, month_index - 9)
    year = year_of_era + era * 400 + (month <= 2)
    return year, month, day


_ISO_WIDTH = len("YYYY-MM-DDTHH:MM:SS") + len(".123456789") + len("+HH:MM")


def _iso_datetimes(
    seconds: np.ndarray, nanos: np.ndarray, offsets: np.ndarray | None, valid: np.ndarray
) -> pa.Array:
    """Format date-times digit by digit in numpy: one byte matrix, then keep each row's used prefix.

    `offsets` (seconds east of UTC) is None for naive values (no suffix), else 0 → `Z`, other → ±HH:MM.
    """
    days, second_of_day = np.divmod(seconds, 86_400)
    if len(days) and (days.min() < -719_528 or days.max() > 2_932_896):  # outside 0000-01-01..9999-12-31
        year, month, day = _civil_from_days(days)
        return _iso_datetimes_slowly(year, month, day, second_of_day, nanos, offsets, valid)
    # int32 arithmetic from here on: every value fits, and numpy's int32 division is much faster.
    year, month, day = _civil_from_days(days.astype(np.int32))
    nanos = nanos.astype(np.int32)
    # The byte matrix is position-major (one contiguous row of bytes per character position), so
    # every digit is written by one contiguous numpy pass; rows are read out column-wise at the end.
    rows = len(seconds)
    matrix = np.zeros((_ISO_WIDTH, rows), dtype=np.uint8)
    second_of_day = second_of_day.astype(np.int32)
    _put_digits(matrix, 0, year, 4)
    _put_digits(matrix, 5, month, 2)
    _put_digits(matrix, 8, day, 2)
    _put_digits(matrix, 11, second_of_day // 3600, 2)
    _put_digits(matrix, 14, second_of_day // 60 % 60, 2)
    _put_digits(matrix, 17, second_of_day % 60, 2)
    matrix[[4, 7]] = ord("-")
    matrix[10] = ord("T")
    matrix[[13, 16]] = ord(":")
    if nanos.any():
        matrix[19] = ord(".")
        _put_digits(matrix, 20, nanos, 9)
    fraction = np.where(
        nanos == 0, 0, np.where(nanos % 1_000_000 == 0, 4, np.where(nanos % 1_000 == 0, 7, 10))
    )
    lengths = 19 + fraction
    if offsets is not None:
        lengths = lengths + _put_offsets(matrix, lengths, offsets)
    lengths = np.where(valid, lengths, 0)
    width = int(lengths.max()) if rows else 0
    if (lengths == width).all():
        data = np.ascontiguousarray(matrix[:width].T)  # every row the same length: a plain transpose
    else:
        data = matrix.T[np.arange(_ISO_WIDTH) < lengths[:, None]]
    return _strings_from_parts(lengths, data, valid)


def _put_digits(matrix: np.ndarray, position: int, value: np.ndarray, width: int) -> None:
    """Write `value` as `width` zero-padded decimal digits at `position` of every row."""
    for place in range(position + width - 1, position - 1, -1):
        value, digit = np.divmod(value, 10)
        matrix[place] = digit
    matrix[position : position + width] += 48


def _put_offsets(matrix: np.ndarray, at: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Write `Z` or `±HH:MM` at position `at` of each row; return each suffix's length."""
    rows = np.arange(len(at))
    utc = offsets == 0
    matrix[at, rows] = np.where(utc, ord("Z"), np.where(offsets > 0, ord("+"), ord("-")))
    minutes = np.abs(offsets[~utc]) // 60
    zone_rows, zone_at = rows[~utc], at[~utc]
    for shift, value in (
        (1, minutes // 600 % 10),
        (2, minutes // 60 % 10),
        (4, minutes % 60 // 10),
        (5, minutes % 10),
    ):
        matrix[zone_at + shift, zone_rows] = 48 + value
    matrix[zone_at + 3, zone_rows] = ord(":")
    return np.where(utc, 1, 6)


def _iso_datetimes_slowly(
    year: np.ndarray,
    month: np.ndarray,
    day: np.ndarray,
    second_of_day: np.ndarray,
    nanos: np.ndarray,
    offsets: np.ndarray | None,
    valid: np.ndarray,
) -> pa.Array:
    """Per-value formatting for years outside 0000-9999 (possible in s/ms/us units): `+10000-…`, `-0001-…`."""
    texts: list[str | None] = []
    zones = offsets.tolist() if offsets is not None else [None] * len(year)
    for y, mo, d, sod, ns, zone, ok in zip(
        year.tolist(),
        month.tolist(),
        day.tolist(),
        second_of_day.tolist(),
        nanos.tolist(),
        zones,
        valid.tolist(),
        strict=True,
    ):
        if not ok:
            texts.append(None)
            continue
        year_text = f"{y:04d}" if 0 <= y <= 9999 else f"{'+' if y > 0 else '-'}{abs(y):04d}"
        clock = f"{sod // 3600:02d}:{sod // 60 % 60:02d}:{sod % 60:02d}"
        texts.append(f"{year_text}-{mo:02d}-{d:02d}T{clock}{_fraction_of(ns)}{_zone_suffix(zone)}")
    return pa.array(texts, pa.string())


def _zone_suffix(offset: int | None) -> str:
    if offset is None:
        return ""
    if offset == 0:
        return "Z"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{'+' if offset > 0 else '-'}{hours:02d}:{minutes:02d}"


def _duration_iso(nanoseconds: int) -> str:
    sign = "-" if nanoseconds < 0 else ""
    seconds, within = divmod(abs(nanoseconds), 1_000_000_000)
    return f"{sign}PT{seconds}{_fraction_of(within)}S"


def _fraction_of(nanos: int) -> str:
    """`.ddd`, `.dddddd` or `.ddddddddd`: the fewest digits that are exact; "" for a whole second."""
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


def _interval_iso(value: Any) -> str:
    """ISO 8601 text of an interval (MonthDayNano, or a plain month count for year-month intervals)."""
    if isinstance(value, int):
        return f"P{value}M" if value else "PT0S"
    months, days, nanoseconds = value.months, value.days, value.nanoseconds
    text = "P"
    if months:
        text += f"{months}M"
    if days:
        text += f"{days}D"
    if nanoseconds or text == "P":
        sign = "-" if nanoseconds < 0 else ""
        seconds, within = divmod(abs(nanoseconds), 1_000_000_000)
        text += f"T{sign}{seconds}{_fraction_of(within)}S"
    return text


# --------------------------------------------------------------------------------------------------- CSV

_NEEDS_CSV_QUOTES = r'[,"\r\n]'


def _render_csv(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    yield (",".join(_csv_field(name) for name in schema.names) + "\n").encode()
    if not schema.names:
        return
    for batch in _slices(batches):
        pieces: list[Piece] = []
        for index in range(len(schema)):
            pieces.extend(_csv_pieces(batch.column(index)))
            pieces.append("," if index + 1 < len(schema) else "\n")
        yield _string_data(_join(pieces))


def _csv_field(text: str) -> str:
    if re.search(_NEEDS_CSV_QUOTES, text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_pieces(array: pa.Array) -> list[Piece]:
    """CSV cell pieces of one column: text, quoted when it holds a comma, quote or line break."""
    pieces = _cell_pieces(array)
    if _never_needs_quotes(array.type):
        return pieces
    text = _join(pieces)
    needs_quotes = pc.match_substring_regex(text, _NEEDS_CSV_QUOTES)
    if not pc.any(needs_quotes).as_py():
        return [text]
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return [pc.if_else(needs_quotes, quoted, text)]


def _never_needs_quotes(kind: pa.DataType) -> bool:
    return (
        pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_null(kind)
    )


def _cell_pieces(array: pa.Array) -> list[Piece]:
    """Pieces of the plain (unquoted) text of each value for CSV and pretty tables; null stays null."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return [_value_text(array.dictionary, _cell_pieces(array.dictionary)).take(array.indices)]
    if (
        _is_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_decimal(kind)
    ):
        return [array.cast(pa.string())]
    if pa.types.is_floating(kind):
        return _float_pieces(array, nan="NaN", pos_inf="inf", neg_inf="-inf")
    if pa.types.is_null(kind):
        return [pa.nulls(len(array), pa.string())]
    temporal = temporal_text(array)
    if temporal is not None:
        return [temporal]
    if _is_binary(kind):
        return [_binary_hex(array)]
    return [_per_value(array, _nested_json)]


# ------------------------------------------------------------------------------------------------ pretty


def _render_pretty(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    if not schema.names:
        yield b"++\n++\n"
        return
    table = pa.Table.from_batches(list(batches), schema=schema)
    columns = [_join(_cell_pieces(_whole_column(table, index))) for index in range(table.num_columns)]
    widths = [_column_width(name, cells) for name, cells in zip(schema.names, columns, strict=True)]
    border = ("+" + "+".join("-" * (width + 2) for width in widths) + "+\n").encode()
    header = "| " + " | ".join(name.ljust(width) for name, width in zip(schema.names, widths, strict=True))
    yield border + (header + " |\n").encode() + border
    if table.num_rows:
        padded = [pc.utf8_rpad(cells, width, " ") for cells, width in zip(columns, widths, strict=True)]
        inner = pc.binary_join_element_wise(*padded, " | ")
        yield _string_data(pc.binary_join_element_wise("| ", inner, " |\n", ""))
    yield border


def _whole_column(table: pa.Table, index: int) -> pa.Array:
    column = table.column(index)
    if column.num_chunks == 0:
        return pa.array([], column.type)
    return column.combine_chunks() if column.num_chunks > 1 else column.chunk(0)


def _column_width(name: str, cells: pa.Array) -> int:
    longest = pc.max(pc.utf8_length(cells)).as_py() if len(cells) else 0
    return max(len(name), longest or 0)


# ----------------------------------------------------------------------------------------------- parquet


class _ChunkSink:
    """A write-only file object that hands its bytes out as they accumulate."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> int:
        self._pieces.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces.clear()
        return data


def _render_parquet(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    sink = _ChunkSink()
    writer: pq.ParquetWriter | None = None
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= PARQUET_ROW_GROUP_ROWS:
            writer = writer or pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema)
            writer.write_table(pa.Table.from_batches(pending, schema=schema))
            pending, pending_rows = [], 0
            yield sink.take()
    if writer is None and not pending:
        return  # no rows: an empty body, not an empty Parquet file
    writer = writer or pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema)
    if pending:
        writer.write_table(pa.Table.from_batches(pending, schema=schema))
    writer.close()
    yield sink.take()
