"""Hiding escaped separators and simple quoted strings from the fast path's byte classes.

The fast path finds tokens by separator class alone. Without this module every record holding a
backslash or a quote went to the exact parser (about a third of the parse time on a body where 5%
of the lines do). Two common cases are made plain instead, in place on the `kinds` of the body's
special bytes:

- an *escape*: a backslash followed by a space, `,` or `=`. Both bytes become ordinary (class 0),
  so the token keeps its raw bytes; callers unescape names and tag values. Any other backslash
  (`\\\\`, a backslash before a quote, a letter or a line end) stays a BACKSLASH and keeps its record
  on the exact path.
- a *plain string*: on a physical line whose quotes pair up as opener/closer, where every opener
  follows an unescaped `=` after the line's first space, is at a field-value position (more `=`
  than `,` since that space, as `records.open_string_after` counts), and no backslash or tab is on
  the line inside or around it. The quotes and everything between them become ordinary, so
  `"a b,c=d"` is one token. On such a line the scanner in `records` closes every string it opens,
  so the line is known to end its record without running it.

Lines with quotes that do not qualify keep their QUOTE classes: the caller runs the scanner on them
(they may open a string across lines) and sends their records to the exact parser.
"""

from __future__ import annotations

import numpy as np

from .tokens import BACKSLASH, COMMA, EQUALS, QUOTE, SPACE, TAB


def mask_escapes(special: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Make every backslash-space/comma/equals pair ordinary; return those backslashes' indices in `special`.

    `special` holds the positions of the body's non-ordinary bytes, `kinds` their classes (changed in place).
    """
    backslashes = np.flatnonzero(kinds == BACKSLASH)
    if not len(backslashes):
        return backslashes
    following = np.minimum(backslashes + 1, len(special) - 1)
    escaped = kinds[following]
    good = (special[following] == special[backslashes] + 1) & (escaped >= COMMA) & (escaped <= SPACE)
    good &= backslashes + 1 < len(special)
    kinds[following[good]] = 0
    kinds[backslashes[good]] = 0
    return backslashes[good]


def _rank_in_line(line_of: np.ndarray) -> np.ndarray:
    """For items sorted by line, each one's 0-based index among the items of its line."""
    index = np.arange(len(line_of))
    first = np.ones(len(line_of), dtype=bool)
    first[1:] = line_of[1:] != line_of[:-1]
    return index - np.maximum.accumulate(np.where(first, index, 0))


def _inside(total: int, openers: np.ndarray, closers: np.ndarray) -> np.ndarray:
    """Which of `total` special bytes lie strictly between an opener and its closer (indices of pairs).

    A running depth (+1 at an opener, -1 at its closer) rather than a search per byte: one cumsum.
    """
    step = np.zeros(total, dtype=np.int8)
    step[openers] = 1
    step[closers] = -1
    inside = np.cumsum(step, dtype=np.int8) == 1
    inside[openers] = False
    return inside


def _lines_with(positions: np.ndarray, newlines: np.ndarray, line_total: int) -> np.ndarray:
    flags = np.zeros(line_total, dtype=bool)
    flags[np.searchsorted(newlines, positions)] = True
    return flags


class _Quotes:
    """The body's quotes, paired within their physical line as opener, closer, opener, ..."""

    def __init__(self, special: np.ndarray, kinds: np.ndarray, newlines: np.ndarray, line_total: int) -> None:
        self.index = np.flatnonzero(kinds == QUOTE)
        self.position = special[self.index]
        self.line = np.searchsorted(newlines, self.position)
        self.opener = _rank_in_line(self.line) % 2 == 0
        self.bad = np.bincount(self.line, minlength=line_total) % 2 == 1  # an unpaired quote

    def reject(self, quotes: np.ndarray) -> None:
        """Mark the lines of these quotes as not plain."""
        self.bad[self.line[quotes]] = True

    def inside(self, total: int) -> np.ndarray:
        """Which of the `total` special bytes are inside a string of a line not (yet) marked bad."""
        keep = ~self.bad[self.line]
        return _inside(total, self.index[keep & self.opener], self.index[keep & ~self.opener])


def _check_openers(quotes: _Quotes, special: np.ndarray, kinds: np.ndarray, line_starts: np.ndarray) -> None:
    """Reject lines where an opener does not open a string for the scanner in `records`."""
    openers = np.flatnonzero(quotes.opener)
    at = quotes.index[openers]
    after_equals = (at > 0) & (kinds[np.maximum(at - 1, 0)] == EQUALS)
    after_equals &= special[np.maximum(at - 1, 0)] == quotes.position[openers] - 1
    quotes.reject(openers[~after_equals])
    spaces = np.flatnonzero(kinds == SPACE)
    line = quotes.line[openers]
    nth = np.searchsorted(special[spaces], line_starts[line]) if len(spaces) else np.zeros(len(line), np.int64)
    has_space = nth < len(spaces)
    first_space = spaces[np.minimum(nth, max(len(spaces) - 1, 0))] if len(spaces) else nth
    has_space &= special[first_space] < quotes.position[openers]
    quotes.reject(openers[~has_space])
    # More `=` than `,` outside strings since the first space; strings of lines still in the running
    # are masked for the count (a rejected line's own count no longer matters).
    step = (kinds == EQUALS).view(np.int8) - (kinds == COMMA).view(np.int8)
    step[quotes.inside(len(special))] = 0
    balance = np.cumsum(step, dtype=np.int32)
    opens = balance[at] - balance[first_space] > 0
    quotes.reject(openers[~opens])


def _quote_line_specials(special: np.ndarray, kinds: np.ndarray, newlines: np.ndarray,
                         line_starts: np.ndarray) -> np.ndarray:
    """Indices (into `special`) of the special bytes on the physical lines that hold a quote."""
    quoted = np.unique(np.searchsorted(newlines, special[kinds == QUOTE]))
    low = np.searchsorted(special, line_starts[quoted])
    high = np.searchsorted(special, np.append(newlines, np.iinfo(np.int64).max)[quoted])  # up to its newline
    counts = high - low
    return np.repeat(low - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(counts.sum())


def mask_strings(special: np.ndarray, kinds: np.ndarray, newlines: np.ndarray, line_starts: np.ndarray,
                 escapes: np.ndarray) -> np.ndarray:
    """Make plain strings ordinary (see the module docstring); return which lines hold unmasked quotes.

    `kinds` is changed in place; `escapes` are the backslashes `mask_escapes` made ordinary. Only the
    special bytes of lines with quotes are looked at (a few percent of a typical body's).
    """
    if not (kinds == QUOTE).any():
        return np.zeros(len(line_starts), dtype=bool)
    sub = _quote_line_specials(special, kinds, newlines, line_starts)
    local_kinds = kinds[sub]
    local_escapes = np.searchsorted(sub, escapes)
    local_escapes = local_escapes[sub[np.minimum(local_escapes, len(sub) - 1)] == escapes]
    scan = _mask_strings(special[sub], local_kinds, newlines, line_starts, local_escapes)
    kinds[sub] = local_kinds
    return scan


def _mask_strings(special: np.ndarray, kinds: np.ndarray, newlines: np.ndarray, line_starts: np.ndarray,
                  escapes: np.ndarray) -> np.ndarray:
    line_total = len(line_starts)
    quotes = _Quotes(special, kinds, newlines, line_total)
    if not len(quotes.index):
        return np.zeros(line_total, dtype=bool)
    # A backslash or tab left on a line makes the scanner's view differ from the pairing: not plain.
    awkward = special[(kinds == BACKSLASH) | (kinds == TAB)]
    quotes.bad |= _lines_with(awkward, newlines, line_total)
    _check_openers(quotes, special, kinds, line_starts)
    # An escape inside a string is the string's own business (`\\"`, `\\\\`): leave that line to the exact parser.
    escaped_inside = escapes[quotes.inside(len(special))[escapes]]
    quotes.bad |= _lines_with(special[escaped_inside], newlines, line_total)
    covered = quotes.inside(len(special))
    covered[quotes.index[~quotes.bad[quotes.line]]] = True
    kinds[covered] = 0
    return quotes.bad & _lines_with(quotes.position, newlines, line_total)
