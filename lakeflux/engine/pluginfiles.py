"""Plugin files on the server: upload, replace, atomic directory swap, and `system.plugin_files` (§3, §4.5).

- `write_plugin_file(dir, relative, content)`: `POST /api/v3/plugins/files` — a new file anywhere under the
  plugin dir (parents created).
- `replace_trigger_file(dir, state, trigger, content)`: `PUT /api/v3/plugins/files` — the trigger's file, or
  its directory's `__init__.py`.
- `replace_trigger_directory(dir, state, trigger, files)`: `PUT /api/v3/plugins/directory` — the trigger's
  directory replaced as a whole: the new tree is written next to it, then swapped in by rename.

Every write is a temp file plus `os.replace`, so a running trigger never reads half a file; hot reload
(engine/plugin.py) picks the change up on the next call. Paths leaving the plugin dir are refused with
"Path traversal detected: <path>".
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..catalog import INTERNAL_DB, CatalogState, TriggerDef
from ..errors import Invalid, NotFound
from .github import is_gh
from .plugin import NO_PLUGIN_DIR, resolve_plugin_path

PLUGIN_FILES = "plugin_files"
PLUGIN_FILES_SCHEMA = pa.schema([
    ("plugin_name", pa.string()),
    ("file_name", pa.string()),
    ("file_path", pa.string()),
    ("size_bytes", pa.int64()),
    ("last_modified", pa.int64()),
])

_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")


def safe_target(plugin_dir: Path | None, relative: object) -> Path:
    """`plugin_dir / relative`, refusing absolute paths, `..`, drive prefixes and symlinks leading out."""
    if plugin_dir is None:
        raise Invalid(NO_PLUGIN_DIR)
    if not isinstance(relative, str) or not relative.strip():
        raise Invalid("missing or invalid 'plugin_name': expected a relative path")
    parts = re.split(r"[/\\]", relative)
    if relative.startswith(("/", "\\")) or _DRIVE_PREFIX.match(relative) or ".." in parts or "\x00" in relative:
        raise Invalid(f"Path traversal detected: {relative}")
    root = Path(plugin_dir).resolve()
    target = root / Path(*[part for part in parts if part and part != "."])
    if target == root or not target.resolve().is_relative_to(root):
        raise Invalid(f"Path traversal detected: {relative}")
    return target


def _check_content(content: object) -> str:
    if not isinstance(content, str):
        raise Invalid("missing or invalid 'content': expected the file's text")
    return content


def _atomic_write(target: Path, content: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_plugin_file(plugin_dir: Path | None, relative: object, content: object) -> Path:
    """Create or overwrite a file under the plugin dir; returns its path. Durable? Written, not fsynced."""
    target = safe_target(plugin_dir, relative)
    if target.is_dir():
        raise Invalid(f"{relative} is a directory")
    _atomic_write(target, _check_content(content))
    return target


def find_trigger(state: CatalogState, name: object, db: object = None) -> TriggerDef:
    """The trigger called `name` (in `db` when given); Invalid when several databases have one."""
    if not isinstance(name, str) or not name:
        raise Invalid("missing or invalid 'plugin_name': expected a trigger name")
    found = [t for d in state.databases.values() if not d.deleted and (db is None or d.name == db)
             for t in d.triggers.values() if t.name == name]
    if not found:
        raise NotFound(f"trigger not found: {name}")
    if len({t.plugin_filename for t in found}) > 1:
        raise Invalid(f"trigger name {name} is used in several databases with different plugins: pass 'db'")
    return found[0]


def _local_plugin(plugin_dir: Path | None, trigger: TriggerDef) -> Path:
    if is_gh(trigger.plugin_filename):
        raise Invalid(f"trigger {trigger.name} runs {trigger.plugin_filename} from the plugin repository; "
                      "its code cannot be replaced (update the trigger instead)")
    return resolve_plugin_path(plugin_dir, trigger.plugin_filename)


def replace_trigger_file(plugin_dir: Path | None, state: CatalogState, name: object, content: object,
                         db: object = None) -> Path:
    """Replace the code of trigger `name`: its file, or `__init__.py` of its directory. Returns the path."""
    text = _check_content(content)
    path = _local_plugin(plugin_dir, find_trigger(state, name, db))
    target = path / "__init__.py" if path.is_dir() else path
    _atomic_write(target, text)
    return target


def replace_trigger_directory(plugin_dir: Path | None, state: CatalogState, name: object, files: object,
                              db: object = None) -> Path:
    """Swap the directory of trigger `name` for `files` ([{relative_path, content}], needs `__init__.py`)."""
    path = _local_plugin(plugin_dir, find_trigger(state, name, db))
    if not path.is_dir():
        raise Invalid(f"trigger {name} runs the single file {path.name}: use PUT /api/v3/plugins/files")
    entries = _check_files(files)
    staging = path.with_name(f".{path.name}.new-{uuid.uuid4().hex[:8]}")
    retired = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        for relative, content in entries:
            _atomic_write(safe_target(staging, relative), content)
        os.replace(path, retired)
        os.replace(staging, path)
    except BaseException:
        if retired.exists() and not path.exists():
            os.replace(retired, path)  # put the old tree back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(retired, ignore_errors=True)
    return path


def _check_files(files: object) -> list[tuple[str, str]]:
    if not isinstance(files, list) or not files:
        raise Invalid("'files' must be a non-empty list of {relative_path, content}")
    entries: list[tuple[str, str]] = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("relative_path"), str):
            raise Invalid("each entry of 'files' needs 'relative_path' and 'content'")
        entries.append((item["relative_path"], _check_content(item.get("content"))))
    if not any(Path(relative).as_posix().lstrip("./") == "__init__.py" for relative, _ in entries):
        raise Invalid("a plugin directory needs an __init__.py")
    return entries


# -- system.plugin_files -------------------------------------------------------------------------


def _file_rows(trigger: TriggerDef, path: Path) -> Iterable[tuple[str, str, str, int, int]]:
    if path.is_file():
        files = [(path.name, path)]
    else:
        files = sorted((f.relative_to(path).as_posix(), f) for f in path.rglob("*.py")
                       if not any(p == "__pycache__" or p.startswith(".") for p in f.relative_to(path).parts[:-1]))
    for name, file in files:
        try:
            st = file.stat()
        except OSError:
            continue  # removed while we listed
        yield trigger.name, name, str(file), st.st_size, st.st_mtime_ns // 1_000_000


def plugin_files_table(state: CatalogState, plugin_dir: Path | None, db: str) -> pa.Table:
    """`system.plugin_files`: one row per local plugin file of the db's triggers (every db's in `_internal`)."""
    rows: list[tuple[str, str, str, int, int]] = []
    for database in state.databases.values():
        if database.deleted or (db != INTERNAL_DB and database.name != db):
            continue
        for trigger in database.triggers.values():
            if is_gh(trigger.plugin_filename):
                continue
            try:
                path = resolve_plugin_path(plugin_dir, trigger.plugin_filename)
            except (Invalid, NotFound):
                continue
            rows.extend(_file_rows(trigger, path))
    columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 5
    return pa.table(columns, schema=PLUGIN_FILES_SCHEMA)
