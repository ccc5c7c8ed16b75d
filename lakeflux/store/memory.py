"""Object store in process memory through fsspec's memory filesystem (tests and `--object-store memory`).

fsspec's memory filesystem is one dict shared by the whole process, so every MemoryStore gets its own
root (a fresh uuid unless one is named). Its `mode="create"` checks for the key and then stores it, two
steps another thread can run between, so writes here hold one process-wide lock.
"""

from __future__ import annotations

import threading
import time
import uuid

import fsspec
from fsspec.implementations.memory import MemoryFileSystem

from ..errors import Invalid, NotFound
from ._common import check_key, check_prefix, check_range, check_write_key
from .base import ObjectMeta
from .paths import is_temp

# One lock for all instances because the memory filesystem itself is one per process.
_WRITE_LOCK = threading.Lock()


class MemoryStore:
    """ObjectStore in memory; nothing survives the process. Durability wording below means "visible"."""

    def __init__(self, root: str | None = None) -> None:
        name = (root or f"lakeflux-{uuid.uuid4().hex}").strip("/")
        if not name:
            raise Invalid("memory store root must not be empty")
        self.root = "/" + name
        self.url = f"memory://{self.root}"
        fs = fsspec.filesystem("memory")
        assert isinstance(fs, MemoryFileSystem)
        self._fs = fs
        # mtimes are not kept by fsspec's memory fs; keep our own so listings have one.
        self._mtimes: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({self.root!r})"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def get(self, key: str) -> bytes:
        """Return the whole object. Raises NotFound if absent."""
        check_key(key)
        try:
            return bytes(self._fs.cat_file(self._path(key)))
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"object {key!r} not found") from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes [start, end) of the object (end may exceed the size). Raises NotFound if absent."""
        check_range(start, end)
        return self.get(key)[start:end]

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` only if absent (`pipe_file(mode="create")` under the process-wide write lock).

        Returns True once the object is visible and this call created it; False if the key was taken.
        Exactly one of any number of concurrent callers in this process gets True.
        """
        check_write_key(key)
        path = self._path(key)
        with _WRITE_LOCK:
            try:
                self._fs.pipe_file(path, bytes(data), mode="create")
            except FileExistsError:
                if self._fs.isfile(path):
                    return False
                raise Invalid(f"memory store: a parent of {key!r} is an object") from None
            self._mtimes[path] = time.time_ns()
        return True

    def put(self, key: str, data: bytes) -> None:
        """Create or replace `key`; returns once the new bytes are visible (replacement is atomic)."""
        check_write_key(key)
        path = self._path(key)
        with _WRITE_LOCK:
            try:
                self._fs.pipe_file(path, bytes(data))
            except FileExistsError:
                raise Invalid(f"memory store: a parent of {key!r} is an object") from None
            self._mtimes[path] = time.time_ns()

    def copy(self, src: str, dst: str) -> None:
        """Copy `src` to `dst` (create or replace); returns once `dst` is visible."""
        self.put(dst, self.get(src))

    def list(self, prefix: str) -> list[ObjectMeta]:
        """All objects whose key starts with `prefix`, sorted by key."""
        check_prefix(prefix)
        start = self._path(prefix)
        cut = len(self.root) + 1
        found: list[ObjectMeta] = []
        # Snapshot the dict under the lock: iterating it while another thread inserts would fail.
        with _WRITE_LOCK:
            items = [(p, f) for p, f in self._fs.store.items() if p.startswith(start)]
        for path, f in items:
            key = path[cut:]
            if is_temp(key):
                continue
            found.append(ObjectMeta(key=key, size=f.size, last_modified_ns=self._mtimes.get(path, 0)))
        found.sort(key=lambda m: m.key)
        return found

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error. Returns once the removal is visible."""
        check_key(key)
        path = self._path(key)
        with _WRITE_LOCK:
            if self._fs.isfile(path):
                self._fs.rm_file(path)
            self._mtimes.pop(path, None)

    def exists(self, key: str) -> bool:
        """True if `key` is an object."""
        check_key(key)
        return self._fs.isfile(self._path(key))

    def clear(self) -> None:
        """Drop every object under this store's root (frees memory at the end of a test)."""
        with _WRITE_LOCK:
            for path in [p for p in self._fs.store if p.startswith(self.root + "/")]:
                del self._fs.store[path]
                self._mtimes.pop(path, None)

    def url_for(self, key: str) -> str:
        """The fsspec URL of `key` (readable through fsspec/pyarrow only, not by DataFusion natively)."""
        return f"memory://{self._path(key)}"

    def datafusion_store(self) -> None:
        """DataFusion cannot read fsspec's memory filesystem natively; query code uses the fsspec route."""
        return None
