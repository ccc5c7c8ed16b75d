"""A WAL trigger's backlog: the committed segments with rows for it that no call has taken yet.

Entries are kept in commit order. A segment's rows stay in memory while the backlog's bytes are
under its memory limit; past it, only the segment's sequence, row count and commit time are kept
and its rows are read back from the object store when a call takes it. The trigger's cursor
already keeps every segment after it in the store, so a stuck plugin costs a few dozen bytes of
memory per segment, not the segment's rows. Segments listed from the store after a restart enter
the same way (their row counts are unknown until they are read).

Not thread-safe: the WAL trigger guards it with its own lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .ports import SegmentInfo, SegmentTable


@dataclass(eq=False, slots=True)
class Pending:
    """One committed segment waiting for a call."""

    seq: int
    committed_ns: int
    # Rows for the trigger; None for a segment listed from the store and not read yet.
    rows: int | None
    # The trigger's tables of the segment; None when they are only in the object store.
    tables: list[SegmentTable] | None
    nbytes: int = 0  # memory the held tables count for against the limit
    gone: bool = False  # taken or dropped: no longer counted by the backlog


def tables_nbytes(tables: Iterable[SegmentTable]) -> int:
    """Bytes of the buffers the tables hold (whole buffers: what keeping them costs, and ~30× cheaper to
    work out than `Table.nbytes`, which the WAL fan-out paid per trigger and segment)."""
    return sum(table.data.get_total_buffer_size() for table in tables)


class Backlog:
    """Pending segments in commit order, with their rows held in memory up to `memory_limit` bytes."""

    def __init__(self, memory_limit: int) -> None:
        self.memory_limit = memory_limit
        self.memory = 0  # bytes of tables held by entries
        self.rows = 0  # known rows of all entries
        self._entries: deque[Pending] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, seq: int, committed_ns: int, tables: list[SegmentTable], rows: int, nbytes: int) -> None:
        """Append a newly committed segment (newer than every entry); its rows stay in memory if they fit.

        `nbytes` is `tables_nbytes(tables)`, computed by the caller outside its lock.
        """
        if self.memory + nbytes > self.memory_limit:
            self._entries.append(Pending(seq, committed_ns, rows, None))
        else:
            self.memory += nbytes
            self._entries.append(Pending(seq, committed_ns, rows, tables, nbytes))
        self.rows += rows

    def add_stored(self, infos: Iterable[SegmentInfo]) -> None:
        """Merge segments listed from the object store (rows unknown) into commit order."""
        listed = [Pending(info.seq, info.committed_ns, None, None) for info in infos]
        if not listed:
            return
        merged = sorted([*listed, *self._entries], key=lambda entry: entry.seq)
        self._entries = deque(merged)

    def first(self) -> Pending | None:
        return self._entries[0] if self._entries else None

    def front(self, limit: int) -> list[Pending]:
        """Up to `limit` entries from the front, oldest first (not removed)."""
        out: list[Pending] = []
        for entry in self._entries:
            if len(out) >= limit:
                break
            out.append(entry)
        return out

    def loaded(self, entry: Pending, tables: list[SegmentTable]) -> None:
        """Record the tables of an entry read back from the store (held until the entry is taken)."""
        if entry.gone:
            return  # dropped (backlog limit) while it was being read
        rows = sum(table.data.num_rows for table in tables)
        if entry.rows is None:
            self.rows += rows
        entry.rows = rows
        entry.tables = tables
        entry.nbytes = tables_nbytes(tables)
        self.memory += entry.nbytes

    def take(self, entry: Pending) -> bool:
        """Remove `entry` if it is still the oldest one (retention may have dropped it meanwhile)."""
        if not self._entries or self._entries[0] is not entry:
            return False
        self._entries.popleft()
        self._forget(entry)
        return True

    def drop_through(self, seq: int) -> tuple[int, int]:
        """Drop every entry up to and including `seq`; returns (segments, known rows) dropped."""
        segments = rows = 0
        while self._entries and self._entries[0].seq <= seq:
            entry = self._entries.popleft()
            self._forget(entry)
            segments += 1
            rows += entry.rows or 0
        return segments, rows

    def oldest_committed_ns(self) -> int | None:
        return self._entries[0].committed_ns if self._entries else None

    def first_seq(self) -> int | None:
        return self._entries[0].seq if self._entries else None

    def _forget(self, entry: Pending) -> None:
        entry.gone = True
        self.memory -= entry.nbytes
        self.rows -= entry.rows or 0
