"""Object store on a local directory, with crash-safe, race-free put-if-absent.

Why not fsspec's LocalFileSystem with mode="create": it checks for the file and then writes it, so two
writers can both pass the check. Here every object is first written to a temp file in the target
directory, fsynced, and then published with `os.link`, which the kernel performs atomically and refuses
(EEXIST) when the name is taken. Readers therefore only ever see complete objects.
"""

from __future__ import annotations

import errno
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ..errors import Invalid, NotFound, Unavailable
from ._common import check_key, check_prefix, check_range, check_write_key
from .base import ObjectMeta
from .paths import TEMP_SUFFIX, is_temp


def _unavailable(op: str, key: str, exc: OSError) -> Unavailable:
    return Unavailable(f"file store: {op} {key!r} failed: {exc.strerror or exc}")


def _fsync_dir(path: Path) -> None:
    """Make directory entries (a new link, a rename, an unlink) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """ObjectStore over a directory: key 'a/b/c' is the file `<root>/a/b/c`.

    Temp files are named `<name>.<uuid><TEMP_SUFFIX>` beside their target, never end in `.parquet` or
    `.json`, and are never listed. A crash can leave one behind; recovery sweeps them.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # --- helpers ---------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _make_parents(self, path: Path, key: str) -> None:
        """Create missing parent directories and fsync each new entry so the object's path survives a crash."""
        missing: list[Path] = []
        parent = path.parent
        while not parent.is_dir():
            missing.append(parent)
            if parent == parent.parent:
                break
            parent = parent.parent
        for directory in reversed(missing):
            try:
                directory.mkdir()
            except FileExistsError:
                if not directory.is_dir():
                    raise Invalid(f"file store: a parent of {key!r} is an object, not a directory") from None
                continue  # a concurrent writer created it
            except NotADirectoryError:
                raise Invalid(f"file store: a parent of {key!r} is an object, not a directory") from None
            _fsync_dir(directory.parent)

    def _write_temp(self, path: Path, data: bytes) -> Path:
        """Write `data` to a fresh temp file beside `path` and fsync it; returns the temp path."""
        temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(temp)
            raise
        os.close(fd)
        return temp

    # --- ObjectStore -----------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        """Return the whole object. Raises NotFound if absent; only complete (published) objects exist."""
        check_key(key)
        if is_temp(key):
            raise NotFound(f"object {key!r} not found")
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"object {key!r} not found") from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:  # no object can have that name
                raise NotFound(f"object {key!r} not found") from None
            raise _unavailable("get", key, exc) from exc

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes [start, end) of the object (end may exceed the size). Raises NotFound if absent."""
        check_key(key)
        check_range(start, end)
        if is_temp(key):
            raise NotFound(f"object {key!r} not found")
        try:
            with open(self._path(key), "rb") as f:
                f.seek(start)
                return f.read(end - start)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"object {key!r} not found") from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise NotFound(f"object {key!r} not found") from None
            raise _unavailable("get_range", key, exc) from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` only if absent: temp file, fsync, link to the final name, fsync the directory.

        Returns True after the object and its directory entry are fsynced (durable) and this call created
        it; False if the name was already taken (nothing is left behind). Exactly one of any number of
        concurrent callers, in any number of processes on this host, gets True. Raises Unavailable on an
        I/O error (disk full, permissions), in which case nothing was published.
        """
        check_write_key(key)
        path = self._path(key)
        try:
            self._make_parents(path, key)
            temp = self._write_temp(path, data)
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
            except NotADirectoryError:
                raise Invalid(f"file store: a parent of {key!r} is an object, not a directory") from None
            finally:
                _unlink_quietly(temp)
            _fsync_dir(path.parent)
            return True
        except OSError as exc:
            raise _unavailable("put_if_absent", key, exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """Create or replace `key` atomically (temp file, fsync, rename over, fsync the directory).

        Returns once the new bytes and the rename are durable; readers see the old or new bytes, never a mix.
        """
        check_write_key(key)
        path = self._path(key)
        try:
            self._make_parents(path, key)
            temp = self._write_temp(path, data)
            try:
                os.replace(temp, path)
            except BaseException:
                _unlink_quietly(temp)
                raise
            _fsync_dir(path.parent)
        except IsADirectoryError:
            raise Invalid(f"file store: {key!r} is a directory of other objects") from None
        except OSError as exc:
            raise _unavailable("put", key, exc) from exc

    def copy(self, src: str, dst: str) -> None:
        """Hard-link `src` to a temp name beside `dst`, then rename over `dst` and fsync the directory.

        Returns once the new name is durable; objects are immutable, so sharing the inode is safe.
        """
        check_key(src)
        check_write_key(dst)
        source = self._path(src)
        path = self._path(dst)
        try:
            self._make_parents(path, dst)
            temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
            try:
                os.link(source, temp)
            except FileNotFoundError:
                raise NotFound(f"object not found: {src}") from None
            try:
                os.replace(temp, path)
            except BaseException:
                _unlink_quietly(temp)
                raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise _unavailable("copy", dst, exc) from exc

    def list(self, prefix: str) -> list[ObjectMeta]:
        """All published objects whose key starts with `prefix`, sorted by key; temp files are never shown.

        A listing taken while writers are active shows every object published before it started and may
        or may not show ones published during it.
        """
        check_prefix(prefix)
        base_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(base_key) if base_key else self.root
        found: list[ObjectMeta] = []
        try:
            for key, path in self._walk(base, base_key):
                if not key.startswith(prefix) or is_temp(key):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # deleted while we listed
                found.append(ObjectMeta(key=key, size=st.st_size, last_modified_ns=st.st_mtime_ns))
        except OSError as exc:
            raise _unavailable("list", prefix, exc) from exc
        found.sort(key=lambda m: m.key)
        return found

    def _walk(self, base: Path, base_key: str) -> Iterator[tuple[str, Path]]:
        """Yield (key, path) of every regular file under `base` (nothing if `base` is missing)."""
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            key = f"{base_key}/{entry.name}" if base_key else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                yield key, Path(entry.path)

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error. Returns once the unlink is fsynced (durable).

        Empty directories are left in place: removing them would race with a concurrent writer creating
        an object in the same directory.
        """
        check_key(key)
        path = self._path(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return  # missing, or a directory of other objects (not an object)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return  # no object can have that name
            raise _unavailable("delete", key, exc) from exc
        try:
            _fsync_dir(path.parent)
        except OSError as exc:
            raise _unavailable("delete", key, exc) from exc

    def exists(self, key: str) -> bool:
        """True if `key` is a published object (a temp file or a directory is not)."""
        check_key(key)
        try:
            return not is_temp(key) and self._path(key).is_file()
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return False
            raise _unavailable("exists", key, exc) from exc

    def sweep_temp(self, older_than_s: float, now: float | None = None) -> int:
        """Delete temp files left by writers that crashed mid-write, if last modified more than
        `older_than_s` seconds before `now` (default: the wall clock); returns how many were removed.

        A live writer's temp file is seconds old, so a grace period of minutes never removes one in use.
        Temp files hold no published object: removing them cannot lose an acknowledged write.
        """
        cutoff = (time.time() if now is None else now) - older_than_s
        removed = 0
        for key, path in self._walk(self.root, ""):
            if not is_temp(key):
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue  # its writer finished or cleaned up meanwhile
        return removed

    # --- native readers --------------------------------------------------------------------------
    def url_for(self, key: str) -> str:
        """The `file://` URL of `key` (or of a prefix ending in '/') for DataFusion, DuckDB or pyarrow."""
        return f"{self.url.rstrip('/')}/{quote(key, safe='/=')}"

    def datafusion_store(self) -> None:
        """DataFusion reads `file://` URLs with its built-in local store, so nothing needs registering."""
        return None


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
