"""The one small protocol every object-store backend implements.

Keys are relative, '/'-separated strings; a backend maps them under its own root (a directory, a
bucket prefix, a memory root). Every backend error a caller could see is translated into a
`lakeflux.errors` kind: NotFound for a missing key, Unavailable for anything transient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectMeta:
    """One listed object: its key (relative to the store root), size in bytes, and mtime in ns."""

    key: str
    size: int
    last_modified_ns: int


@runtime_checkable
class ObjectStore(Protocol):
    """Storage backend protocol; implementations: file, memory, s3 (see store/__init__.open_store)."""

    url: str

    def get(self, key: str) -> bytes:
        """Return the whole object. Raises NotFound if absent. Reads only committed (complete) objects."""
        ...

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes [start, end) of the object (end may exceed the size). Raises NotFound if absent."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` only if it does not exist; the commit point of every lakeflux protocol.

        Returns True once the object is durable in the store and was written by this call; False if
        another writer's object already held the key (nothing was written). Atomic: of any number of
        concurrent callers exactly one gets True. An ambiguous backend failure is resolved by reading
        the object back and comparing bytes. Raises Unavailable if the outcome is unknown or failed.
        """
        ...

    def put(self, key: str, data: bytes) -> None:
        """Create or replace `key` atomically (readers see old or new bytes, never a mix).

        Returns once the new bytes are durable. Used only for objects that name their own version
        (a checkpoint) or are not read by the protocol (caches).
        """
        ...

    def copy(self, src: str, dst: str) -> None:
        """Copy committed object `src` to `dst` (create or replace, atomically), without the bytes
        passing through lakeflux where the backend can (hard link, server-side copy).

        Returns once `dst` is durable. Raises NotFound if `src` is absent.
        """
        ...

    def list(self, prefix: str) -> list[ObjectMeta]:
        """All committed objects whose key starts with `prefix`, sorted by key. Never shows temp objects."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error. Returns once the delete is durable."""
        ...

    def exists(self, key: str) -> bool:
        """True if `key` is a committed object."""
        ...
