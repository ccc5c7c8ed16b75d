"""numpy kernels over a body buffer: byte classes, token fingerprints, strings and numbers.

A token is a half-open byte span [start, end) of the body; every kernel takes arrays of spans and
works on all of them at once, with no per-token Python.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

COMMA, EQUALS, SPACE, QUOTE, BACKSLASH, TAB, NEWLINE = 1, 2, 3, 4, 5, 6, 7
"""Byte classes; 0 is an ordinary byte. QUOTE and above (except NEWLINE) send a record to the exact parser."""

BYTE_CLASS = np.zeros(256, dtype=np.uint8)
for _byte, _class in ((b",", COMMA), (b"=", EQUALS), (b" ", SPACE), (b'"', QUOTE), (b"\\", BACKSLASH),
                      (b"\t", TAB), (b"\n", NEWLINE)):  # fmt: skip
    BYTE_CLASS[_byte[0]] = _class
_CLASS_TABLE = bytes(BYTE_CLASS.tolist())

LOW_BYTES_MASK = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [2**64 - 1], dtype=np.uint64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_DIGIT_LIMIT = 19  # 19 decimal digits always fit in a uint64
_NIBBLES_HIGH = np.uint64(0xF0F0F0F0F0F0F0F0)
_NIBBLES_LOW = np.uint64(0x0F0F0F0F0F0F0F0F)
_SIX = np.uint64(0x0606060606060606)
_THREES = np.uint64(0x3333333333333333)
_ZEROS = np.uint64(0x3030303030303030)


_FRONT = 8  # zero bytes before the body, so the word ending at any token end can be read


class Body:
    """A body as a byte array plus an unaligned 8-byte-word view for fingerprints and digits."""

    def __init__(self, body: bytes) -> None:
        self.raw = body
        self.escaped = b"\\" in body  # any backslash at all (most bodies have none: skip escape work)
        self.bytes = np.frombuffer(body, dtype=np.uint8)
        padded = np.zeros(_FRONT + len(body) + 16, dtype=np.uint8)
        padded[_FRONT : _FRONT + len(body)] = self.bytes
        self._padded = padded
        # _words[i + _FRONT] is the little-endian uint64 of bytes i..i+7 (numpy allows unaligned strides).
        self._words = np.ndarray((len(body) + 17,), dtype="<u8", buffer=padded, strides=(1,))

    def words(self, positions: np.ndarray) -> np.ndarray:
        """The 8 bytes starting at each position (which may be up to 8 before the body) as uint64."""
        return self._words[positions + _FRONT]

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The byte at each position; positions up to 8 before or 16 after the body read as 0."""
        return self._padded[positions + _FRONT]

    def classes(self) -> np.ndarray:
        """BYTE_CLASS of every byte (bytes.translate is the fastest table lookup available)."""
        return np.frombuffer(self.raw.translate(_CLASS_TABLE), dtype=np.uint8)

    def text(self, start: int, end: int) -> str:
        return self.raw[start:end].decode("utf-8")


def fingerprint(body: Body, starts: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
    """Columns that identify each token exactly: its length and its bytes as 8-byte words."""
    lengths = ends - starts
    columns = [lengths.astype(np.uint64)]
    longest = int(lengths.max()) if len(lengths) else 0
    for chunk in range((longest + 7) // 8):
        remaining = np.minimum(np.maximum(lengths - 8 * chunk, 0), 8)
        columns.append(body.words(starts + 8 * chunk) & LOW_BYTES_MASK[remaining])
    return columns


def row_hash(columns: list[np.ndarray]) -> np.ndarray:
    """A 64-bit hash of each row of `columns` (uint64 arithmetic wraps, as intended)."""
    hashed = np.zeros(len(columns[0]), dtype=np.uint64)
    for column in columns:
        hashed = (hashed ^ column.astype(np.uint64)) * _MIX
        hashed ^= hashed >> np.uint64(29)
    return hashed


def equal_groups(columns: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Split row indices into groups of rows whose `columns` are all equal, in order of first row.

    Rows are grouped by a hash, then every row is compared with its group's first row; rows that
    differ (a hash collision) are returned separately instead of being grouped.
    """
    hashed = row_hash(columns)
    order = np.argsort(hashed, kind="stable")
    sorted_hashes = hashed[order]
    run_start = np.ones(len(order), dtype=bool)
    run_start[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
    representative = np.empty(len(order), dtype=np.int64)
    representative[order] = order[np.maximum.accumulate(np.where(run_start, np.arange(len(order)), 0))]
    same = np.ones(len(order), dtype=bool)
    for column in columns:
        same &= column == column[representative]
    runs = np.split(order, np.flatnonzero(run_start)[1:])
    groups = [run[same[run]] for run in runs]
    groups = [group for group in groups if len(group)]
    groups.sort(key=lambda group: int(group[0]))
    return groups, np.flatnonzero(~same)


def gather(body: Body, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tokens' bytes back to back, and int64 offsets (len(tokens) + 1) into them."""
    lengths = ends - starts
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(total, dtype=np.int64)
    return body.bytes[index], offsets


def string_array(data: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """An Arrow string array over gathered token bytes (the body was checked to be UTF-8)."""
    count = len(offsets) - 1
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                           pa.py_buffer(data)])
    large = pa.Array.from_buffers(pa.large_string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return large.cast(pa.string())


def drop_backslashes(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gathered tokens without their backslash bytes (for tokens whose every backslash is an escape)."""
    positions = np.flatnonzero(data == 92)
    if not len(positions):
        return data, offsets
    # Backslashes are few: counting those before each offset by search beats a cumsum over every byte.
    return np.delete(data, positions), offsets - np.searchsorted(positions, offsets)


def strings(body: Body, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The tokens as an Arrow string array."""
    return string_array(*gather(body, starts, ends))


def decimal_shape(data: np.ndarray, offsets: np.ndarray, allow_point: bool) -> np.ndarray:
    """Which tokens match `-?[0-9]+` (or `-?[0-9]+(\\.[0-9]+)?` when `allow_point`)."""
    count = len(offsets) - 1
    lengths = np.diff(offsets)
    token_of = np.repeat(np.arange(count), lengths)
    odd = np.flatnonzero((data - np.uint8(48)) > 9)  # bytes that are not ASCII digits
    odd_token = token_of[odd]
    odd_byte = data[odd]
    relative = odd - offsets[odd_token]
    negative = np.zeros(count, dtype=bool)
    negative[odd_token[(odd_byte == 45) & (relative == 0)]] = True
    good = lengths > negative  # at least one digit
    is_minus = (odd_byte == 45) & (relative == 0)
    is_point = (odd_byte == 46) if allow_point else np.zeros(len(odd), dtype=bool)
    good[odd_token[~(is_minus | is_point)]] = False
    if allow_point:
        point_token = odd_token[is_point]
        good[np.bincount(point_token, minlength=count) > 1] = False
        point_at = relative[is_point]
        misplaced = (point_at < 1 + negative[point_token]) | (point_at > lengths[point_token] - 2)
        good[point_token[misplaced]] = False
    return good


def _eight_digits(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, all ASCII digits) of 8-byte little-endian words read as 8 decimal digits, in SWAR."""
    high_nibbles = words & _NIBBLES_HIGH
    shifted = ((words + _SIX) & _NIBBLES_HIGH) >> np.uint64(4)
    digits = (high_nibbles | shifted) == _THREES
    value = ((words & _NIBBLES_LOW) * np.uint64(2561)) >> np.uint64(8)
    value = ((value & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
    value = ((value & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)
    return value, digits


def unsigned_values(body: Body, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of 1 to 19 ASCII digits as uint64, and which tokens were such."""
    lengths = ends - starts
    good = (lengths >= 1) & (lengths <= _DIGIT_LIMIT)
    total = np.zeros(len(starts), dtype=np.uint64)
    longest = int(lengths[good].max()) if good.any() else 0
    for chunk in range((longest + 7) // 8):
        # The word ending 8*chunk bytes before the token end; bytes before the token become '0'.
        chunk_end = ends - 8 * chunk
        outside = 8 - np.minimum(np.maximum(chunk_end - starts, 0), 8)
        fill = LOW_BYTES_MASK[outside]
        words = (body.words(chunk_end - 8) & ~fill) | (_ZEROS & fill)
        value, digits = _eight_digits(words)
        good &= digits
        total += value * np.uint64(10 ** (8 * chunk))
    return total, good


def signed_values(body: Body, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens matching `-?[0-9]{1,19}` within (-2**63, 2**63) as int64, and which tokens were such."""
    negative = body.bytes[starts] == 45
    magnitude, good = unsigned_values(body, starts + negative, ends)
    good &= magnitude <= np.uint64(2**63 - 1)
    values = magnitude.astype(np.int64)
    return np.where(negative, -values, values), good
