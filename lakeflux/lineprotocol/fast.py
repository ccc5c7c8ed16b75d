"""The fast line-protocol parser: numpy over the whole body, Python only per shape of line.

1. Classify every byte once (separators, quotes, backslashes, tabs, newlines) and split records;
   escaped separators and plain quoted strings are masked to ordinary bytes (`masking`).
2. A record is *simple* if it has no unmasked quote, backslash or tab and does not start with a
   blank or `#`. Everything else goes to the exact parser, one record at a time.
3. Simple records are bucketed by separator layout (tags, fields, timestamp or not); a bucket is
   checked against the one separator pattern valid for it, so each token's span is a column of a
   matrix. Records are then grouped by shape: measurement, keys and field types, compared exactly
   by their bytes with one record of each shape (hashing only when a bucket has many shapes).
4. The value tokens of all groups are converted together, one kernel call per column kind
   (`columns`). A record with any token the kernels do not accept goes to the exact parser,
   which then either parses it the same way or produces its error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..model import ColumnKind, Precision
from .assemble import Assembler, LineGroup
from .columns import Converter, Slot
from .exact import add_record, unescape_key, unescape_measurement
from .masking import mask_escapes, mask_strings
from .records import check_utf8, multiline_spans
from .tokens import (
    COMMA,
    EQUALS,
    LOW_BYTES_MASK,
    NEWLINE,
    QUOTE,
    SPACE,
    TAB,
    Body,
    equal_groups,
    fingerprint,
)  # fmt: skip
from .types import ParseResult

_FLOAT_CODE, _INT_CODE, _UINT_CODE, _BOOL_CODE, _STRING_CODE = 0, 1, 2, 3, 4
_CODE_KINDS = {
    _FLOAT_CODE: ColumnKind.FLOAT64, _INT_CODE: ColumnKind.INT64,
    _UINT_CODE: ColumnKind.UINT64, _BOOL_CODE: ColumnKind.BOOL, _STRING_CODE: ColumnKind.STRING,
}  # fmt: skip


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
        awkward = special[(kinds - np.uint8(QUOTE)) <= TAB - QUOTE]  # QUOTE..TAB in one compare
        awkward_from, awkward_to = _ranges(awkward, starts)
        has_awkward = awkward_to > awkward_from
        first_byte = body.at(starts)
        blank_start = (first_byte == 32) | (first_byte == 9) | (first_byte == 35)
        self.nonempty = ends > starts
        self.simple = self.nonempty & ~has_awkward & ~blank_start
        self.starts, self.ends, self.line_numbers = starts, ends, line_numbers
        separator = (kinds - np.uint8(COMMA)) <= SPACE - COMMA  # COMMA..SPACE in one compare (0 wraps)
        self.separators = special[separator]
        self.separator_kinds = kinds[separator]
        self.separator_from, self.separator_to = _ranges(self.separators, starts)
        spaces = np.flatnonzero(self.separator_kinds == SPACE)
        self.space_from, self.space_to = _ranges(spaces, self.separator_from)  # the same tiling, by index
        self.spaces = spaces


def _ranges(positions: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per record, the index range [from, to) of the sorted `positions` inside it, by one search.

    Records tile the body except for the newline (and carriage return) after each, which `positions`
    never hold, so a record's range ends where the next record's begins.
    """
    begin = np.searchsorted(positions, starts)
    return begin, np.append(begin[1:], len(positions))


def _pattern(tags: int, fields: int, timestamp: bool) -> np.ndarray:
    """The separator kinds of a valid simple record with this many tags and fields."""
    kinds = [COMMA, EQUALS] * tags + [SPACE, EQUALS] + [COMMA, EQUALS] * (fields - 1) + [SPACE] * timestamp
    return np.array(kinds, dtype=np.uint8)


class _Shape:
    """One bucket of simple records sharing a separator layout, as a matrix of token spans.

    `bounds` has one row per separator (then the record ends) and one column per record: stored this
    way round, every token column is a contiguous row, and a test over all of a record's tokens
    (`.all(axis=0)`) runs as whole-row operations instead of a short loop per record.
    """

    def __init__(self, body: Body, tags: int, fields: int, timestamp: bool, starts, ends, bounds):
        self.body, self.tags, self.fields, self.timestamp = body, tags, fields, timestamp
        self.starts, self.ends, self.bounds = starts, ends, bounds

    def measurement(self) -> tuple[np.ndarray, np.ndarray]:
        return self.starts, self.bounds[0]

    def tag_key(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        return self.bounds[2 * j] + 1, self.bounds[2 * j + 1]

    def tag_value(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        return self.bounds[2 * j + 1] + 1, self.bounds[2 * j + 2]

    def field_key(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        base = 2 * self.tags + 2 * j
        return self.bounds[base] + 1, self.bounds[base + 1]

    def field_value(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        base = 2 * self.tags + 2 * j
        return self.bounds[base + 1] + 1, self.bounds[base + 2]

    def timestamp_token(self) -> tuple[np.ndarray, np.ndarray]:
        return self.bounds[-2] + 1, self.ends

    def take(self, rows: np.ndarray) -> _Shape:
        shape = _Shape.__new__(_Shape)
        shape.body, shape.tags, shape.fields, shape.timestamp = self.body, self.tags, self.fields, self.timestamp
        shape.starts, shape.ends, shape.bounds = self.starts[rows], self.ends[rows], self.bounds[:, rows]
        return shape

    def key_spans(self) -> np.ndarray:
        """The start and end of every key, one row each (the measurement, then the tag and field keys)."""
        keys = self.tags + self.fields
        spans = np.empty((2 * keys + 2, len(self.starts)), dtype=self.bounds.dtype)
        spans[0], spans[1] = self.starts, self.bounds[0]
        spans[2::2] = self.bounds[0 : 2 * keys : 2] + 1
        spans[3::2] = self.bounds[1 : 2 * keys : 2]
        return spans

    def type_codes(self) -> np.ndarray:
        """The type each field value looks like (validated later), one row per field: one pass over all
        fields costs as many numpy calls as one field."""
        values = slice(2 * self.tags + 1, 2 * (self.tags + self.fields), 2)
        first = self.body.at(self.bounds[values] + 1)
        last = self.body.at(self.bounds[values.start + 1 : values.stop + 1 : 2] - 1)
        lowered = first | np.uint8(32)  # lower-cased for letters
        codes = np.where((lowered == 116) | (lowered == 102), _BOOL_CODE, _FLOAT_CODE)
        codes[last == 117] = _UINT_CODE
        codes[last == 105] = _INT_CODE
        codes[first == 34] = _STRING_CODE  # a masked plain string (see `masking`)
        return codes

    def signature(self, codes: np.ndarray) -> list[np.ndarray]:
        """Columns that are equal for two records exactly when their shapes are equal (`codes`: `type_codes()`)."""
        columns = fingerprint(self.body, *self.measurement())
        for j in range(self.tags):
            columns += fingerprint(self.body, *self.tag_key(j))
        for j in range(self.fields):
            columns += fingerprint(self.body, *self.field_key(j))
            columns.append(codes[j])
        return columns


_TEMPLATE_ROUNDS = 4
"""Shapes found in a layout bucket by comparing every record with one record of the shape; a bucket
with more distinct shapes than this is grouped by hashing the rest (one argsort, more numpy calls)."""


def _same_shape(body: Body, key_starts: np.ndarray, header: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The candidates (record indices) whose measurement, keys and field types equal the first one's.

    `header` holds each record's key lengths and field type codes (a row each, a column per record).
    All key bytes are compared in one gather of 8-byte words (a words x candidates matrix): compared
    per key and word, the numpy calls were the cost, not the bytes.
    """
    if len(candidates) < header.shape[1]:
        header, key_starts = header[:, candidates], key_starts[:, candidates]
    same = (header == header[:, :1]).all(axis=0)
    if not same.all():
        candidates, key_starts = candidates[same], key_starts[:, same]
    keys, offsets, masks = [], [], []
    for key, length in enumerate(header[: len(key_starts), 0].tolist()):
        for offset in range(0, length, 8):  # equal lengths now: the words stay inside each token's record
            keys.append(key)
            offsets.append([offset])
            masks.append([LOW_BYTES_MASK[min(8, length - offset)]])
    words = body.words(key_starts[keys] + np.array(offsets)) & np.array(masks, dtype=np.uint64)
    same = (words == words[:, :1]).all(axis=0)
    return candidates if same.all() else candidates[same]


def _shape_groups(shape: _Shape) -> tuple[list[np.ndarray], list[list[int]], np.ndarray]:
    """Split a bucket into groups of equal shape: (record indices, field type codes) per group, and
    the records left over by a hash collision."""
    spans = shape.key_spans()
    codes = shape.type_codes()
    header = np.concatenate((spans[1::2] - spans[0::2], codes))
    unassigned = np.arange(len(shape.starts))
    assigned = np.zeros(len(shape.starts), dtype=bool)
    groups: list[np.ndarray] = []
    for _ in range(_TEMPLATE_ROUNDS):
        if not len(unassigned):
            break
        members = _same_shape(shape.body, spans[0::2], header, unassigned)
        groups.append(members)
        if len(members) == len(unassigned):  # the usual bucket: a single shape
            unassigned = unassigned[:0]
            break
        assigned[members] = True  # a mask, not np.isin: members are indices into this bucket
        unassigned = unassigned[~assigned[unassigned]]
    collisions = np.empty(0, dtype=np.int64)
    if len(unassigned):
        hashed, collided = equal_groups(shape.take(unassigned).signature(codes[:, unassigned]))
        groups += [unassigned[part] for part in hashed]
        collisions = unassigned[collided]
    return groups, [codes[:, part[0]].tolist() for part in groups], collisions


def _small_sort_key(key: np.ndarray, fits: np.ndarray, tags: np.ndarray, fields: np.ndarray) -> np.ndarray:
    """`key`, or a uint16 key in the same order when every layout is small enough: numpy's stable sort
    of 16-bit keys is a radix sort, several times faster than of int64 keys."""
    if not (((tags < 255) & (fields < 128)) | ~fits).all():
        return key
    return np.where(fits, key >> 25 | key & 255, 65535).astype(np.uint16)  # not fitting: last, not first


def _layout_buckets(records: _Records, rows: np.ndarray):
    """Yield (tags, fields, timestamp, rows) for simple records whose separator counts fit a layout."""
    if not len(rows):
        return
    first = records.separator_from[rows]
    count = records.separator_to[rows] - first
    spaces, space_from = records.spaces, records.space_from[rows]
    space_count = records.space_to[rows] - space_from
    first_space = spaces[np.minimum(space_from, max(len(spaces) - 1, 0))] if len(spaces) else first
    before_space = first_space - first
    timestamp = space_count == 2
    after_space = count - before_space - timestamp
    fits = ((space_count == 1) | timestamp) & (before_space % 2 == 0) & (after_space >= 2) & (after_space % 2 == 0)
    tags, fields = before_space // 2, after_space // 2
    key = np.where(fits, tags * (1 << 33) + fields * 2 + timestamp, -1)
    order = np.argsort(_small_sort_key(key, fits, tags, fields), kind="stable")
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
    index = first + np.arange(len(pattern))[:, None]  # a row per separator, a column per record
    ok = (records.separator_kinds[index] == pattern[:, None]).all(axis=0)
    starts, ends = records.starts[rows], records.ends[rows]
    bounds = np.empty((len(pattern) + 1, len(rows)), dtype=records.separators.dtype)
    bounds[:-1] = records.separators[index]
    bounds[-1] = ends
    ok &= bounds[0] > starts
    ok &= (np.diff(bounds, axis=0) > 1).all(axis=0)  # no empty token, the last one included
    if not ok.all():
        starts, ends, bounds, rows = starts[ok], ends[ok], bounds[:, ok], rows[ok]
    return _Shape(body, tags, fields, timestamp, starts, ends, bounds), rows


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


@dataclass
class _Pending:
    """A group whose columns wait in the converter: its rows, names and slots."""

    shape: _Shape
    rows: np.ndarray
    line_numbers: np.ndarray
    table: str
    columns: list[tuple[str, ColumnKind]]
    slots: list[Slot]
    times: Slot | None


def _plan(shape: _Shape, rows, line_numbers, codes: list[int], converter: Converter) -> _Pending | None:
    """Register one shape group's columns with the converter; None if its keys need the exact parser."""
    table, tag_keys, field_keys = _names(shape)
    if not _plain_keys(tag_keys, field_keys):
        return None
    columns = [(key, ColumnKind.TAG) for key in tag_keys]
    slots = [converter.add(ColumnKind.TAG, *shape.tag_value(j)) for j in range(shape.tags)]
    for j, code in enumerate(codes):
        columns.append((field_keys[j], _CODE_KINDS[code]))
        slots.append(converter.add(_CODE_KINDS[code], *shape.field_value(j)))
    times = converter.add(ColumnKind.TIME, *shape.timestamp_token()) if shape.timestamp else None
    return _Pending(shape, rows, line_numbers, table, columns, slots, times)


def _finish(pending: _Pending, converter: Converter, default_time_ns: int) -> tuple[LineGroup | None, np.ndarray]:
    """The converted group (None if no row survived) and the rows left to the exact parser."""
    good = np.ones(len(pending.rows), dtype=bool)
    for slot in [*pending.slots, pending.times]:
        valid = converter.good(slot) if slot is not None else None
        if valid is not None:
            good &= valid
    if not good.any():
        return None, pending.rows
    keep = None if good.all() else good
    arrays = [converter.array(slot, keep) for slot in pending.slots]
    if pending.times is None:
        times = np.full(int(good.sum()), default_time_ns, dtype=np.int64)
    else:
        times = converter.times(pending.times, keep)
    shape = pending.shape
    starts, ends, body = shape.starts[good], shape.ends[good], shape.body
    group = LineGroup(
        table=pending.table, columns=pending.columns, arrays=arrays, times=times,
        line_numbers=pending.line_numbers[good],
        original_line=lambda row: body.text(int(starts[row]), int(ends[row])),
    )
    return group, pending.rows[~good]


def _fast_groups(body: Body, records: _Records, assembler: Assembler, precision, default_time_ns) -> list:
    """Add every group the kernels can take to `assembler`; return the record indices left over."""
    simple = np.flatnonzero(records.simple)
    left: list[np.ndarray] = [np.empty(0, dtype=np.int64)]  # concatenate needs one array
    covered = np.zeros(len(records.starts), dtype=bool)
    converter = Converter(body, precision)
    pending: list[_Pending] = []
    for tags, fields, timestamp, rows, first in _layout_buckets(records, simple):
        shape, rows = _shape_of(body, records, tags, fields, timestamp, rows, first)
        covered[rows] = True
        if not len(rows):
            continue
        groups, codes, collisions = _shape_groups(shape)
        left.append(rows[collisions])
        for part, part_codes in zip(groups, codes, strict=True):
            planned = _plan(shape.take(part), rows[part], records.line_numbers[rows[part]], part_codes, converter)
            if planned is None:
                left.append(rows[part])
            else:
                pending.append(planned)
    converter.run()
    for planned in pending:
        group, rejected = _finish(planned, converter, default_time_ns)
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
