"""Committing, listing and replaying WAL segments; the notifier protocol the engine listens on."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from ..errors import Corrupt, Fenced, NotFound, Unavailable
from ..store import paths
from ..store.base import ObjectMeta, ObjectStore
from .segment import Segment, decode, encode

log = logging.getLogger("lakeflux.wal")


class WalListener(Protocol):
    def segment_committed(self, segment: Segment) -> None:
        """Called after a segment is committed and its rows are queryable; must not block."""
        ...


class Wal:
    """Writes and reads one node's WAL segments in an object store."""

    def __init__(self, store: ObjectStore, node: str, writer_id: str, *,
                 attempts: int = 4, backoff: float = 0.1, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.node = node
        self.writer_id = writer_id
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep
        # Seconds spent in `commit` encoding segments and storing them (retries included), for /metrics.
        self.encode_seconds = 0.0
        self.store_seconds = 0.0

    def commit(self, segment: Segment) -> int:
        """Durably commit `segment` at its sequence number with put-if-absent; returns its size in bytes.

        Returns only once the segment is committed in the store. Retries transient failures; a retry
        that finds the slot filled with our own bytes counts as success (the earlier response was
        lost). Raises Fenced if another writer holds the slot, Unavailable if the outcome is still
        failed after the retries (the caller must not acknowledge, and must not reuse the sequence).
        """
        key = paths.wal_segment(self.node, segment.seq)
        started = time.perf_counter()
        data = encode(segment)
        encoded = time.perf_counter()
        self.encode_seconds += encoded - started
        try:
            return self._put(key, data)
        finally:
            self.store_seconds += time.perf_counter() - encoded

    def _put(self, key: str, data: bytes) -> int:
        last: Exception | None = None
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._backoff * (2 ** (attempt - 1)))
            try:
                if self.store.put_if_absent(key, data):
                    return len(data)
                if self.store.get(key) == data:
                    return len(data)
                raise Fenced(
                    f"fenced: WAL slot {key} was written by another server with node id {self.node!r}; "
                    "this server stops accepting writes"
                )
            except Fenced:
                raise
            except Unavailable as e:
                last = e
                log.warning("WAL commit of %s failed (attempt %d/%d): %s", key, attempt + 1, self._attempts, e)
        raise Unavailable(f"could not commit WAL segment {key}: {last}")

    def list_seqs(self, after: int = -1) -> list[int]:
        """Sequence numbers of committed segments greater than `after`, ascending."""
        return [seq for seq, _ in self.list_segments(after)]

    def list_segments(self, after: int = -1) -> list[tuple[int, ObjectMeta]]:
        """Committed segments greater than `after` with their listing (size, mtime), ascending."""
        found = []
        for meta in self.store.list(paths.wal_prefix(self.node)):
            seq = paths.parse_seq(meta.key)
            if seq is not None and seq > after:
                found.append((seq, meta))
        return found

    def read(self, seq: int, only: set[tuple[str, str]] | None = None) -> Segment:
        """Read a committed segment (only the selected tables' column chunks when `only` is given)."""
        key = paths.wal_segment(self.node, seq)
        if only is None:
            return decode(self.store.get(key), key)
        return decode(RangeFile(self.store, key), key, only)

    def replay(self, after: int, *, fail_on_error: bool = False) -> Iterator[Segment]:
        """Yield committed segments after `after` in order; corrupt ones are logged by key and skipped."""
        for seq in self.list_seqs(after):
            try:
                yield self.read(seq)
            except Corrupt as e:
                if fail_on_error:
                    raise
                log.error("skipping corrupt WAL segment: %s", e)

    def delete_through(self, seq: int) -> int:
        """Delete segments with sequence ≤ `seq`; returns how many. Durable on return."""
        n = 0
        for s in self.list_seqs():
            if s > seq:
                break
            self.store.delete(paths.wal_segment(self.node, s))
            n += 1
        return n


class RangeFile(io.RawIOBase):
    """A read-only seekable file over one object, fetching only the byte ranges asked for."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self._store = store
        self._key = key
        self._pos = 0
        self._size: int | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        if self._size is None:
            metas = [m for m in self._store.list(self._key) if m.key == self._key]
            if not metas:
                raise NotFound(f"object not found: {self._key}")
            self._size = metas[0].size
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self.size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self._pos + n)
        if end <= self._pos:
            return b""
        data = self._store.get_range(self._key, self._pos, end)
        self._pos += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)
