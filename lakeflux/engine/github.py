"""`gh:<path>` plugins: single files fetched from a plugin repository and cached on disk (CONTRACT §1.2).

`gh:examples/wal_plugin/wal_plugin.py` means an unauthenticated GET of
`<plugin-repo>/examples/wal_plugin/wal_plugin.py` (default repo: the raw files of
influxdata/influxdb3_plugins on its main branch). The body is kept under
`<plugin-dir>/.gh_cache/<path>` with a `.sha256` file next to it:

- creating a trigger and `update trigger` download (refresh) the file;
- starting a trigger (boot, enable) uses the cached copy when its checksum matches, so a restart works
  offline, and downloads only when the copy is missing or damaged.

Downloads run unlocked (the engine fetches before taking its lifecycle lock, so a slow repository
stalls only the request that asked for it); only writing and checking the cached pair of files is
serialised, so a check never sees a new body with the old checksum while another thread stores one.

A non-2xx answer is "error fetching plugin from repository: <status> <url>"; an unreachable repository
names the cause. Both are `BadGateway` (HTTP 502): the upstream failed, not the caller.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import BadGateway, Corrupt, Invalid
from .plugin import NO_PLUGIN_DIR, resolve_plugin_path

GH_PREFIX = "gh:"
DEFAULT_PLUGIN_REPO = "https://raw.githubusercontent.com/influxdata/influxdb3_plugins/main/"
CACHE_DIR = ".gh_cache"
FETCH_TIMEOUT_S = 30.0
MAX_PLUGIN_BYTES = 10 * 1024 * 1024

_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")


def is_gh(filename: str) -> bool:
    """Whether a trigger's `plugin_filename` names a repository plugin."""
    return filename.startswith(GH_PREFIX)


def repo_path(filename: str) -> str:
    """The repository-relative path of `gh:<path>`; Invalid for empty paths or ones leaving the repo."""
    path = filename[len(GH_PREFIX):].strip()
    parts = re.split(r"[/\\]", path)
    if not path or path.startswith(("/", "\\")) or _DRIVE_PREFIX.match(path) or ".." in parts:
        raise Invalid(f"Path traversal detected: {filename}" if path else f"empty plugin path: {filename}")
    return "/".join(part for part in parts if part and part != ".")


def plugin_url(repo: str, path: str) -> str:
    """`<repo>/<path>` with exactly one slash between them and the path percent-encoded."""
    return repo.rstrip("/") + "/" + urllib.parse.quote(path)


def download(url: str, timeout: float = FETCH_TIMEOUT_S) -> bytes:
    """The body of an unauthenticated GET of `url`; BadGateway for non-2xx or an unreachable repository."""
    request = urllib.request.Request(url, headers={"User-Agent": "lakeflux"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_PLUGIN_BYTES + 1)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise BadGateway(f"error fetching plugin from repository: {exc.code} {url}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadGateway(f"error fetching plugin from repository: {url}: {reason}") from None
    if not 200 <= status < 300:
        raise BadGateway(f"error fetching plugin from repository: {status} {url}")
    if len(body) > MAX_PLUGIN_BYTES:
        raise BadGateway(f"error fetching plugin from repository: {url}: larger than {MAX_PLUGIN_BYTES} bytes")
    return body


class PluginSource:
    """Turns a trigger's `plugin_filename` into a local path: plugin-dir files and cached `gh:` files."""

    def __init__(self, plugin_dir: Path | None, repo: str | None = None) -> None:
        self.plugin_dir = Path(plugin_dir) if plugin_dir is not None else None
        self.repo = repo or DEFAULT_PLUGIN_REPO
        self._cache_lock = threading.Lock()  # body + checksum are written and read as one pair

    def resolve(self, filename: str, *, refresh: bool = False) -> Path:
        """The local path of the plugin. `refresh` re-downloads a `gh:` plugin (create, update).

        Raises like `resolve_plugin_path` for local plugins; for `gh:` plugins Invalid (bad path or no
        plugin dir) or BadGateway (download failed and no usable cached copy when not refreshing).
        """
        if not is_gh(filename):
            return resolve_plugin_path(self.plugin_dir, filename)
        if self.plugin_dir is None:
            raise Invalid(NO_PLUGIN_DIR)
        path = repo_path(filename)
        target = self.cache_file(path)
        if not refresh and self._verified(target):
            return target
        body = download(plugin_url(self.repo, path))  # slow: no lock held
        self._store(target, body)
        return target

    def cache_file(self, path: str) -> Path:
        """Where the cached copy of repository path `path` lives."""
        assert self.plugin_dir is not None
        return self.plugin_dir / CACHE_DIR / path

    @staticmethod
    def _checksum_file(target: Path) -> Path:
        return target.with_name(target.name + ".sha256")

    def _verified(self, target: Path) -> bool:
        with self._cache_lock:
            return self._verified_unlocked(target)

    def _verified_unlocked(self, target: Path) -> bool:
        try:
            body = target.read_bytes()
            expected = self._checksum_file(target).read_text().strip()
        except OSError:
            return False
        return hashlib.sha256(body).hexdigest() == expected

    def _store(self, target: Path, body: bytes) -> None:
        """Write body and checksum, each by rename, so a crash leaves the old copy or a detectable mismatch."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._cache_lock:
            _replace_file(target, body)
            _replace_file(self._checksum_file(target), hashlib.sha256(body).hexdigest().encode() + b"\n")
            verified = self._verified_unlocked(target)
        if not verified:
            raise Corrupt(f"cached plugin {target} does not match its checksum after writing")


def _replace_file(target: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
