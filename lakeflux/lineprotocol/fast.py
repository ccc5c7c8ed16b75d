"""The fast line-protocol parser: numpy over the whole body, Python only per shape of line.

1. Classify every byte once (separators, quotes, backslashes, tabs, newlines) and split records.
2. A record is *simple* if it has no quote, backslash or tab and does not start with a blank or
   `#`. Everything else goes to the exact parser, one record at a time.
3. Simple records are bucketed by separator layout (tags, fields, timestamp or not); a bucket is
   checked against the one separator pattern valid for it, so each token's span is a column of a
   matrix. Records are then grouped by shape: measurement, keys and field types, compared exactly
   through fingerprints of their bytes.
4. Per group, values are converted column by column (numbers validated and parsed in numpy, floats
   cast by Arrow). A record with any token the kernels do not accept goes to the exact parser,
   which then either parses it the same way or produces its error message.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..model import ColumnKind, Precision
from .assemble import Assembler, LineGroup
from .exact import STRING_LIMIT, add_record, unescape_key, unescape_measurement
from .masking import mask_escapes, mask_strings
from .records import check_utf8, multiline_spans
from .timestamps import to_nanoseconds_array
from .tokens import (
    COMMA,
    EQUALS,
    NEWLINE,
    QUOTE,
    SPACE,
    TAB,
    Body,
    decimal_shape,
    drop_backslashes,
    equal_groups,
    fingerprint,
    gather,
    signed_values,
    string_array,
    strings,
    unsigned_values,
)  # fmt: skip
from .types import ParseResult

_FLOAT_CODE, _INT_CODE, _UINT_CODE, _BOOL_CODE, _STRING_CODE = 0, 1, 2, 3, 4
_CODE_KINDS = {
    _FLOAT_CODE: ColumnKind.FLOAT64, _INT_CODE: ColumnKind.INT64,
    _UINT_CODE: ColumnKind.UINT64, _BOOL_CODE: ColumnKind.BOOL, _STRING_CODE: ColumnKind.STRING,
}  # fmt: skip
_BOOL_SPELLINGS = {b"t": True, b"T": True, b"true": True, b"True": True, b"TRUE": True,
                   b"f": False, b"F": False, b"false": False, b"False": False, b"FALSE": False}  # fmt: skip
_BOOL_KEYS = np.array([len(s) << 56 | int.from_bytes(s, "little") for s in _BOOL_SPELLINGS], dtype=np.uint64)
_FLOAT_TOKEN_LIMIT = 300  # longer decimals could overflow to inf; the exact parser reports those


class _Records:
    """Every record's span and first line number, and which records are simple."""

    def __init__(self, body: Body) -> None:
        classes = body.classes()
        special = np.flatnonzero(classes != 0)
        kinds = classes[special]
        newlines = special[kinds == NEWLINE]
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(body.bytes)]))
        line_numbers = np.arange(1, len(starts) + 1, dtype=np.int64)
        escapes = mask_escapes(special, kinds) if body.escaped else np.empty(0, dtype=np.int64)
        keep = np.ones(len(starts), dtype=bool)
        if b'"' in body.raw:
            # Lines whose strings were masked end their record; only the others need the scanner.
            quoted_lines = np.flatnonzero(mask_strings(special, kinds, newlines, starts, escapes)).tolist()
            line_at = lambda i: body.raw[starts[i] : ends[i]]  # noqa: E731
            for first, last in multiline_spans(quoted_lines, line_at, len(starts)):
                ends[first] = ends[last]
                keep[first + 1 : last + 1] = False
            starts, ends, line_numbers = starts[keep], ends[keep], line_numbers[keep]
        self.raw_ends = ends.copy()
        carriage = (ends > starts) & (body.at(ends - 1) == 13)
        ends -= carriage
        awkward = special[(kinds >= QUOTE) & (kinds <= TAB)]
        has_awkward = np.searchsorted(awkward, ends) > np.searchsorted(awkward, starts)
        first_byte = body.at(starts)
        blank_start = (first_byte == 32) | (first_byte == 9) | (first_byte == 35)
        self.nonempty = ends > starts
        self.simple = self.nonempty & ~has_awkward & ~blank_start
        self.starts, self.ends, self.line_numbers = starts, ends, line_numbers
        separator = (kinds >= COMMA) & (kinds <= SPACE)
        self.separators = special[separator]
        self.separator_kinds = kinds[separator]


def _pattern(tags: int, fields: int, timestamp: bool) -> np.ndarray:
    """The separator kinds of a valid simple record with this many tags and fields."""
    kinds = [COMMA, EQUALS] * tags + [SPACE, EQUALS] + [COMMA, EQUALS] * (fields - 1) + [SPACE] * timestamp
    return np.array(kinds, dtype=np.uint8)


class _Shape:
    """One bucket of simple records sharing a separator layout, as a matrix of token spans."""

    def __init__(self, body: Body, tags: int, fields: int, timestamp: bool, starts, ends, separators):
        self.body, self.tags, self.fields, self.timestamp = body, tags, fields, timestamp
        self.starts, self.ends = starts, ends
        self.bounds = np.column_stack((separators, ends))  # separator positions, then the record end

    def measurement(self) -> tuple[np.ndarray, np.ndarray]:
        return self.starts, self.bounds[:, 0]

    def tag_key(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        return self.bounds[:, 2 * j] + 1, self.bounds[:, 2 * j + 1]

    def tag_value(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        return self.bounds[:, 2 * j + 1] + 1, self.bounds[:, 2 * j + 2]

    def field_key(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        base = 2 * self.tags + 2 * j
        return self.bounds[:, base] + 1, self.bounds[:, base + 1]

    def field_value(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        base = 2 * self.tags + 2 * j
        return self.bounds[:, base + 1] + 1, self.bounds[:, base + 2]

    def timestamp_token(self) -> tuple[np.ndarray, np.ndarray]:
        return self.bounds[:, -2] + 1, self.ends

    def take(self, rows: np.ndarray) -> _Shape:
        shape = _Shape.__new__(_Shape)
        shape.body, shape.tags, shape.fields, shape.timestamp = self.body, self.tags, self.fields, self.timestamp
        shape.starts, shape.ends, shape.bounds = self.starts[rows], self.ends[rows], self.bounds[rows]
        return shape

    def type_codes(self, j: int) -> np.ndarray:
        """Per record, the type its j-th field value looks like (validated later)."""
        starts, ends = self.field_value(j)
        last = self.body.at(ends - 1)
        first = self.body.at(starts) | np.uint8(32)  # lower-cased for letters
        codes = np.where((first == 116) | (first == 102), _BOOL_CODE, _FLOAT_CODE).astype(np.uint64)
        codes[last == 117] = _UINT_CODE
        codes[last == 105] = _INT_CODE
        codes[self.body.at(starts) == 34] = _STRING_CODE  # a masked plain string (see `masking`)
        return codes

    def signature(self) -> list[np.ndarray]:
        """Columns that are equal for two records exactly when their shapes are equal."""
        columns = fingerprint(self.body, *self.measurement())
        for j in range(self.tags):
            columns += fingerprint(self.body, *self.tag_key(j))
        for j in range(self.fields):
            columns += fingerprint(self.body, *self.field_key(j))
            columns.append(self.type_codes(j))
        return columns


def _layout_buckets(records: _Records, rows: np.ndarray):
    """Yield (tags, fields, timestamp, rows) for simple records whose separator counts fit a layout."""
    if not len(rows):
        return
    separators, kinds = records.separators, records.separator_kinds
    starts, ends = records.starts[rows], records.ends[rows]
    first = np.searchsorted(separators, starts)
    count = np.searchsorted(separators, ends) - first
    spaces = np.flatnonzero(kinds == SPACE)
    space_from = np.searchsorted(spaces, first)
    space_count = np.searchsorted(spaces, first + count) - space_from
    first_space = spaces[np.minimum(space_from, max(len(spaces) - 1, 0))] if len(spaces) else first
    before_space = first_space - first
    timestamp = space_count == 2
    after_space = count - before_space - timestamp
    fits = ((space_count == 1) | timestamp) & (before_space % 2 == 0) & (after_space >= 2) & (after_space % 2 == 0)
    key = (before_space // 2) * (1 << 33) + (after_space // 2) * 2 + timestamp
    key = np.where(fits, key, -1)
    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    cuts = np.flatnonzero(np.diff(sorted_keys)) + 1
    for part in np.split(order, cuts):
        bucket_key = int(key[part[0]])
        if bucket_key < 0:
            continue
        yield bucket_key >> 33, (bucket_key & ((1 << 33) - 1)) >> 1, bool(bucket_key & 1), rows[part], first[part]


def _shape_of(body: Body, records: _Records, tags: int, fields: int, timestamp: bool, rows, first):
    """The bucket's shape restricted to records matching the pattern with no empty token, and those rows."""
    pattern = _pattern(tags, fields, timestamp)
    index = first[:, None] + np.arange(len(pattern))
    ok = np.all(records.separator_kinds[index] == pattern, axis=1)
    positions = records.separators[index]
    starts, ends = records.starts[rows], records.ends[rows]
    ok &= positions[:, 0] > starts
    ok &= np.all(np.diff(positions, axis=1) > 1, axis=1)
    ok &= ends > positions[:, -1] + 1
    shape = _Shape(body, tags, fields, timestamp, starts[ok], ends[ok], positions[ok])
    return shape, rows[ok]


class _GroupBuilder:
    """Converts one group of same-shaped records to Arrow columns; records it cannot take are `rejected`."""

    def __init__(self, shape: _Shape, precision: Precision, default_time_ns: int) -> None:
        self.shape, self.precision, self.default_time_ns = shape, precision, default_time_ns
        self.good = np.ones(len(shape.starts), dtype=bool)
        self.finishers: list = []

    def _float(self, starts, ends):
        data, offsets = gather(self.shape.body, starts, ends)
        self.good &= decimal_shape(data, offsets, allow_point=True) & (ends - starts <= _FLOAT_TOKEN_LIMIT)
        texts = string_array(data, offsets)
        return lambda keep: pc.cast(texts if keep is None else texts.filter(keep), pa.float64())

    def _integer(self, starts, ends, kind: ColumnKind):
        if kind is ColumnKind.INT64:
            values, good = signed_values(self.shape.body, starts, ends - 1)
        else:
            values, good = unsigned_values(self.shape.body, starts, ends - 1)
        self.good &= good
        arrow_type = pa.int64() if kind is ColumnKind.INT64 else pa.uint64()
        return lambda keep: pa.array(values if keep is None else values[keep], type=arrow_type)

    def _boolean(self, starts, ends):
        lengths = (ends - starts).astype(np.uint64)
        word = self.shape.body.words(starts) & np.where(lengths >= 8, np.uint64(2**64 - 1),
                                                         (np.uint64(1) << (lengths * np.uint64(8))) - np.uint64(1))
        self.good &= np.isin((lengths << np.uint64(56)) | word, _BOOL_KEYS) & (lengths <= 5)
        values = np.isin(self.shape.body.bytes[starts], (116, 84))
        return lambda keep: pa.array(values if keep is None else values[keep], type=pa.bool_())

    def _string(self, starts, ends):
        """A masked plain string: `"`, content without quotes or backslashes, `"`."""
        lengths = ends - starts
        self.good &= (lengths >= 2) & (self.shape.body.at(ends - 1) == 34) & (lengths - 2 <= STRING_LIMIT)
        texts = strings(self.shape.body, starts + 1, np.maximum(ends - 1, starts + 1))
        return lambda keep: texts if keep is None else texts.filter(keep)

    def _tag(self, starts, ends):
        data, offsets = gather(self.shape.body, starts, ends)
        if self.shape.body.escaped:  # every backslash left in a simple record's tag value is an escape
            data, offsets = drop_backslashes(data, offsets)
        texts = string_array(data, offsets)
        return lambda keep: texts if keep is None else texts.filter(keep)

    def column(self, kind: ColumnKind, starts: np.ndarray, ends: np.ndarray) -> None:
        """Validate a column now; convert it in `finish`, once the rejected rows are known."""
        if kind is ColumnKind.TAG:
            self.finishers.append(self._tag(starts, ends))
        elif kind is ColumnKind.STRING:
            self.finishers.append(self._string(starts, ends))
        elif kind is ColumnKind.FLOAT64:
            self.finishers.append(self._float(starts, ends))
        elif kind is ColumnKind.BOOL:
            self.finishers.append(self._boolean(starts, ends))
        else:
            self.finishers.append(self._integer(starts, ends, kind))

    def times(self) -> np.ndarray:
        rows = len(self.shape.starts)
        if not self.shape.timestamp:
            return np.full(rows, self.default_time_ns, dtype=np.int64)
        values, good = signed_values(self.shape.body, *self.shape.timestamp_token())
        nanoseconds, in_range = to_nanoseconds_array(values, self.precision)
        self.good &= good & in_range
        return nanoseconds

    def finish(self) -> list[pa.Array]:
        keep = None if self.good.all() else pa.array(self.good)
        return [finisher(keep) for finisher in self.finishers]


def _names(shape: _Shape) -> tuple[str, list[str], list[str]]:
    body = shape.body
    text = lambda span: body.text(int(span[0][0]), int(span[1][0]))  # noqa: E731
    table = unescape_measurement(text(shape.measurement()))
    tag_keys = [unescape_key(text(shape.tag_key(j))) for j in range(shape.tags)]
    field_keys = [unescape_key(text(shape.field_key(j))) for j in range(shape.fields)]
    return table, tag_keys, field_keys


def _plain_keys(tag_keys: list[str], field_keys: list[str]) -> bool:
    """False if the keys break a per-line rule (duplicates, `time`): the exact parser reports it."""
    keys = tag_keys + field_keys
    return len(set(keys)) == len(keys) and "time" not in keys


def _group(shape: _Shape, rows, line_numbers, precision, default_time_ns) -> tuple[LineGroup | None, np.ndarray]:
    """Convert one shape group; returns the group (None if empty) and the rows left to the exact parser."""
    table, tag_keys, field_keys = _names(shape)
    if not _plain_keys(tag_keys, field_keys):
        return None, rows
    builder = _GroupBuilder(shape, precision, default_time_ns)
    columns = [(key, ColumnKind.TAG) for key in tag_keys]
    for j in range(shape.tags):
        builder.column(ColumnKind.TAG, *shape.tag_value(j))
    # Equal within a group (they are part of the signature): read them off the first record.
    first = shape.take(np.zeros(1, dtype=np.int64))
    codes = [int(first.type_codes(j)[0]) for j in range(shape.fields)]
    for j, code in enumerate(codes):
        columns.append((field_keys[j], _CODE_KINDS[code]))
        builder.column(_CODE_KINDS[code], *shape.field_value(j))
    times = builder.times()
    good = builder.good
    if not good.any():
        return None, rows
    arrays = builder.finish()
    starts, ends = shape.starts[good], shape.ends[good]
    body = shape.body
    group = LineGroup(
        table=table, columns=columns, arrays=arrays, times=times[good], line_numbers=line_numbers[good],
        original_line=lambda row: body.text(int(starts[row]), int(ends[row])),
    )
    return group, rows[~good]


def _fast_groups(body: Body, records: _Records, assembler: Assembler, precision, default_time_ns) -> list:
    """Add every group the kernels can take to `assembler`; return the record indices left over."""
    simple = np.flatnonzero(records.simple)
    left: list[np.ndarray] = [np.empty(0, dtype=np.int64)]  # concatenate needs one array
    covered = np.zeros(len(records.starts), dtype=bool)
    for tags, fields, timestamp, rows, first in _layout_buckets(records, simple):
        shape, rows = _shape_of(body, records, tags, fields, timestamp, rows, first)
        covered[rows] = True
        if not len(rows):
            continue
        groups, collisions = equal_groups(shape.signature())
        left.append(rows[collisions])
        for part in groups:
            group, rejected = _group(shape.take(part), rows[part], records.line_numbers[rows[part]],
                                     precision, default_time_ns)
            if group is not None:
                assembler.add_group(group)
            left.append(rejected)
    left.append(simple[~covered[simple]])
    return left


def parse(body: bytes, *, precision: Precision, default_time_ns: int,
          known: Mapping[str, Mapping[str, ColumnKind]] | None = None) -> ParseResult:
    """Parse a line-protocol body into one Arrow table per measurement, plus line errors.

    Lines without a timestamp get `default_time_ns`; timestamps are read in `precision` (AUTO
    decides per timestamp) and converted to nanoseconds. Raises Invalid if the body is not UTF-8.
    Same result as `parse_exact`, several times faster on bodies of mostly unescaped lines.
    """
    check_utf8(body)
    buffer = Body(body)
    records = _Records(buffer)
    assembler = Assembler(known)
    leftovers = _fast_groups(buffer, records, assembler, precision, default_time_ns)
    others = np.flatnonzero(records.nonempty & ~records.simple)
    line_count = int(records.simple.sum())
    for index in others.tolist():
        start, end = int(records.starts[index]), int(records.raw_ends[index])
        line_number = int(records.line_numbers[index])
        if add_record(assembler, line_number, buffer.text(start, end), precision, default_time_ns):
            line_count += 1
    for index in np.concatenate(leftovers).tolist():
        start, end = int(records.starts[index]), int(records.raw_ends[index])
        add_record(assembler, int(records.line_numbers[index]), buffer.text(start, end), precision,
                   default_time_ns)
    return assembler.result(line_count)
