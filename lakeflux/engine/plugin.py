"""Finding, loading and hot-reloading plugin code (CONTRACT §1.1, §1.2).

A plugin is loaded once per trigger and called many times (DESIGN §4: re-executing the file per
call is too slow). Each `LoadedPlugin` owns one module under a name unique to it, so two triggers
running the same file never share globals. Before a call it checks whether the source changed
(one `os.stat` for a single file, one stat per `.py` file for a directory) and re-executes into a
fresh module when it did.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import linecache
import os
import re
import site
import sys
import threading
from collections.abc import Callable, MutableMapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from lakeflux.errors import Invalid, NotFound
from lakeflux.lineprotocol.builder import (
    InfluxDBError,
    InvalidKeyError,
    InvalidLineError,
    InvalidMeasurementError,
    LineBuilder,
)

from .api import QueryError

MODULE_PREFIX = "_lakeflux_plugin_"
NO_PLUGIN_DIR = "Node not configured with plugin directory"

ENTRY_POINT_SIGNATURES = {
    "process_writes": "process_writes(influxdb3_local, table_batches, args=None)",
    "process_scheduled_call": "process_scheduled_call(influxdb3_local, call_time, args=None)",
    "process_request": (
        "process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None)"
    ),
}

PLUGIN_BUILTINS: dict[str, type] = {
    "LineBuilder": LineBuilder,
    "InfluxDBError": InfluxDBError,
    "InvalidMeasurementError": InvalidMeasurementError,
    "InvalidKeyError": InvalidKeyError,
    "InvalidLineError": InvalidLineError,
    "QueryError": QueryError,
}

_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")


class PluginError(Exception):
    """Plugin code could not be loaded or lacks the entry point a trigger needs."""


# -- paths -----------------------------------------------------------------------------------


def resolve_plugin_path(plugin_dir: Path | None, filename: str) -> Path:
    """Resolve a trigger's `plugin_filename` inside `plugin_dir`.

    Raises Invalid "Node not configured with plugin directory" without a plugin dir, Invalid
    "Path traversal detected: <filename>" for `..`, absolute paths, drive prefixes or symlinks
    leading out of the dir, Invalid when a directory plugin has no `__init__.py`, and NotFound
    "Plugin not found: <filename>" when nothing is there. Returns the resolved path.
    """
    if plugin_dir is None:
        raise Invalid(NO_PLUGIN_DIR)
    if _looks_like_traversal(filename):
        raise Invalid(f"Path traversal detected: {filename}")
    root = Path(plugin_dir).resolve()
    candidate = (root / filename).resolve()
    # resolve() follows symlinks, so a link pointing outside the dir is caught here too.
    if candidate != root and not candidate.is_relative_to(root):
        raise Invalid(f"Path traversal detected: {filename}")
    if candidate == root or not candidate.exists():
        raise NotFound(f"Plugin not found: {filename}")
    if candidate.is_dir() and not (candidate / "__init__.py").is_file():
        raise Invalid(f"plugin directory {filename} has no __init__.py")
    return candidate


def _looks_like_traversal(filename: str) -> bool:
    if not filename:
        return False
    if filename.startswith(("/", "\\")) or _DRIVE_PREFIX.match(filename):
        return True
    return ".." in re.split(r"[/\\]", filename)


# -- process environment ---------------------------------------------------------------------


def install_plugin_builtins() -> None:
    """Put `LineBuilder`, its exceptions and `QueryError` into `builtins` (plugins use them unimported)."""
    for name, value in PLUGIN_BUILTINS.items():
        setattr(builtins, name, value)


def venv_site_packages(venv_dir: Path) -> Path:
    """The site-packages directory of a venv made by this interpreter."""
    if os.name == "nt":
        return venv_dir / "Lib" / "site-packages"
    return venv_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def prepare_plugin_environment(
    plugin_dir: Path | None,
    venv_dir: Path | None = None,
    *,
    environ: MutableMapping[str, str] | None = None,
) -> Path | None:
    """Set up the process for plugins (CONTRACT §1.1); returns the venv dir used, if any.

    Sets `INFLUXDB3_PLUGIN_DIR` and `LAKEFLUX_PLUGIN_DIR` (and `PLUGIN_DIR` unless already set) to
    the plugin dir; `VIRTUAL_ENV` to the venv (default `<plugin_dir>/.venv`, which need not exist
    yet), its `bin` first on `PATH`, and its site-packages on `sys.path`, so packages installed
    later import on the next call. Also installs the plugin builtins. `environ` defaults to
    `os.environ`.
    """
    env = os.environ if environ is None else environ
    install_plugin_builtins()
    if plugin_dir is not None:
        plugin_text = str(Path(plugin_dir).resolve())
        env["INFLUXDB3_PLUGIN_DIR"] = plugin_text
        env["LAKEFLUX_PLUGIN_DIR"] = plugin_text
        env.setdefault("PLUGIN_DIR", plugin_text)
    if venv_dir is None:
        if plugin_dir is None:
            return None
        venv_dir = Path(plugin_dir) / ".venv"
    venv = Path(venv_dir).resolve()
    env["VIRTUAL_ENV"] = str(venv)
    _put_first_on_path(env, str(venv / ("Scripts" if os.name == "nt" else "bin")))
    site_packages = str(venv_site_packages(venv))
    if site_packages not in sys.path:
        # Appended, not prepended: a plugin's packages must not shadow the server's own pyarrow.
        site.addsitedir(site_packages)
    importlib.invalidate_caches()
    return venv


def _put_first_on_path(env: MutableMapping[str, str], directory: str) -> None:
    parts = [part for part in env.get("PATH", "").split(os.pathsep) if part and part != directory]
    env["PATH"] = os.pathsep.join([directory, *parts])


# -- loading ---------------------------------------------------------------------------------


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source on every load.

    The bytecode cache keys on whole-second mtimes and size, so an edit within one second that
    keeps the size would otherwise re-run the old code after a reload.
    """

    def path_stats(self, path: str) -> Any:
        raise OSError("plugin modules do not use the bytecode cache")


class _PluginSubmoduleFinder(importlib.abc.MetaPathFinder):
    """Finds submodules of directory plugins (names under MODULE_PREFIX) with `_FreshSourceLoader`."""

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(MODULE_PREFIX) or "." not in fullname or path is None:
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            package_dir = os.path.join(entry, leaf)
            package_init = os.path.join(package_dir, "__init__.py")
            if os.path.isfile(package_init):
                return _source_spec(fullname, package_init, package_dir)
            module_file = os.path.join(entry, leaf + ".py")
            if os.path.isfile(module_file):
                return _source_spec(fullname, module_file, None)
        return None


def _source_spec(fullname: str, file: str, package_dir: str | None) -> importlib.machinery.ModuleSpec:
    spec = importlib.util.spec_from_file_location(
        fullname,
        file,
        loader=_FreshSourceLoader(fullname, file),
        submodule_search_locations=None if package_dir is None else [package_dir],
    )
    assert spec is not None  # a file location with an explicit loader always yields a spec
    return spec


_finder_lock = threading.Lock()
_finder: _PluginSubmoduleFinder | None = None


def _install_submodule_finder() -> None:
    global _finder
    with _finder_lock:
        if _finder is None:
            _finder = _PluginSubmoduleFinder()
            sys.meta_path.insert(0, _finder)


_instance_numbers = itertools.count(1)


def _unique_module_name(label: str) -> str:
    digest = hashlib.sha1(label.encode("utf-8")).hexdigest()[:12]
    return f"{MODULE_PREFIX}{digest}_{next(_instance_numbers)}"


def _drop_modules(name: str) -> None:
    prefix = name + "."
    for key in [key for key in sys.modules if key == name or key.startswith(prefix)]:
        del sys.modules[key]


def _last_frame_in(tb: TracebackType | None, inside: Callable[[str], bool]) -> tuple[str, int] | None:
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if inside(filename):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _load_error(exc: Exception, path: Path, inside: Callable[[str], bool]) -> PluginError:
    """A readable PluginError for code that failed to compile or to run at import time."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename or path}, line {exc.lineno}"
        text = (exc.text or "").strip()
        detail = f"{exc.msg}: {text}" if text else exc.msg
        return PluginError(f"syntax error in plugin {where}: {detail}")
    frame = _last_frame_in(exc.__traceback__, inside)
    where = f" ({frame[0]}, line {frame[1]})" if frame else ""
    return PluginError(f"error loading plugin {path}{where}: {type(exc).__name__}: {exc}")


class LoadedPlugin:
    """One trigger's copy of a plugin: a single `.py` file or a package directory.

    Thread-safe: concurrent calls of an async trigger share the module; a reload happens once.
    """

    def __init__(self, path: Path, label: str) -> None:
        """`path` from `resolve_plugin_path`; `label` names the trigger (e.g. "db/trigger")."""
        self.path = Path(path)
        self.is_package = self.path.is_dir()
        self.module_name = _unique_module_name(label)
        self._lock = threading.Lock()
        self._module: ModuleType | None = None
        self._fingerprint: object = None

    def entry_point(self, name: str) -> Callable[..., Any]:
        """The function `name` of the current code, reloading first if the source changed.

        Raises PluginError when loading fails (message names file and line) or when the plugin
        does not define `name`; NotFound "Plugin not found" when the source is gone.
        """
        function = getattr(self.module(), name, None)
        if not callable(function):
            signature = ENTRY_POINT_SIGNATURES.get(name, f"{name}(...)")
            raise PluginError(
                f"the {name} function is not present in the plugin. Should be defined as: {signature}"
            )
        return function

    def module(self) -> ModuleType:
        """The loaded module, (re)loaded when its source changed since the last load."""
        fingerprint = self._current_fingerprint()
        module = self._module
        if module is not None and fingerprint == self._fingerprint:
            return module
        with self._lock:
            if self._module is not None and fingerprint == self._fingerprint:
                return self._module
            module = self._load()
            self._module, self._fingerprint = module, fingerprint
            return module

    def close(self) -> None:
        """Forget the module (the trigger stopped); running calls keep their references."""
        with self._lock:
            self._module = None
            self._fingerprint = None
            _drop_modules(self.module_name)

    def _current_fingerprint(self) -> object:
        try:
            if self.is_package:
                return _package_fingerprint(self.path)
            st = os.stat(self.path)
        except FileNotFoundError:
            raise NotFound(f"Plugin not found: {self.path}") from None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> ModuleType:
        install_plugin_builtins()
        # Forget negative path-finder entries: a package pip just installed (maybe into a venv
        # whose site-packages did not exist at start-up) must import on this load.
        importlib.invalidate_caches()
        _drop_modules(self.module_name)
        try:
            if self.is_package:
                return self._import_package()
            return self._exec_file()
        except BaseException as exc:
            _drop_modules(self.module_name)
            if isinstance(exc, Exception) and not isinstance(exc, PluginError):
                raise _load_error(exc, self.path, self._is_own_file) from exc
            raise

    def _is_own_file(self, filename: str) -> bool:
        if self.is_package:
            return filename.startswith(str(self.path) + os.sep)
        return filename == str(self.path)

    def _exec_file(self) -> ModuleType:
        filename = str(self.path)
        source = self.path.read_bytes()
        linecache.checkcache(filename)  # tracebacks must show the new source, not a cached old one
        code = compile(source, filename, "exec", dont_inherit=True)
        module = ModuleType(self.module_name)
        module.__file__ = filename
        # Registered so dataclasses, typing and pickle can find the module by its __name__.
        sys.modules[self.module_name] = module
        exec(code, module.__dict__)
        return module

    def _import_package(self) -> ModuleType:
        _install_submodule_finder()
        init_file = str(self.path / "__init__.py")
        for filename in list(linecache.cache):
            if filename.startswith(str(self.path) + os.sep):
                linecache.checkcache(filename)
        spec = _source_spec(self.module_name, init_file, str(self.path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module
        assert spec.loader is not None
        spec.loader.exec_module(module)
        return module


def _package_fingerprint(directory: Path) -> object:
    """(relative path, mtime_ns, size) of every `.py` file under `directory`, sorted."""
    entries: list[tuple[str, int, int]] = []
    stack = [str(directory)]
    while stack:
        current = stack.pop()
        with os.scandir(current) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith(".") and entry.name != "__pycache__":
                        stack.append(entry.path)
                elif entry.name.endswith(".py"):
                    st = entry.stat()
                    entries.append((entry.path, st.st_mtime_ns, st.st_size))
    entries.sort()
    init_file = os.path.join(str(directory), "__init__.py")
    if not any(path == init_file for path, _, _ in entries):
        raise FileNotFoundError(init_file)
    return tuple(entries)
