"""Reading local plugin code for `create trigger --upload` and `update trigger -p`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .output import CliFailure


@dataclass(frozen=True)
class PluginFile:
    """One `.py` file of a plugin: its path relative to the plugin (file name or inside the directory)."""

    relative_path: str
    content: str


def read_plugin(path: Path) -> list[PluginFile]:
    """The plugin's files: a single `.py` file, or every `.py` of a directory with `__init__.py`.

    `__pycache__` and hidden directories are skipped; files come in sorted order so uploads are stable.
    """
    if path.is_file():
        return [PluginFile(path.name, _read(path))]
    if not path.is_dir():
        raise CliFailure(f"plugin path not found: {path}")
    if not (path / "__init__.py").is_file():
        raise CliFailure(f"plugin directory {path} has no __init__.py")
    files = []
    for file in sorted(path.rglob("*.py")):
        relative = file.relative_to(path)
        if any(part == "__pycache__" or part.startswith(".") for part in relative.parts[:-1]):
            continue
        files.append(PluginFile(relative.as_posix(), _read(file)))
    return files


def upload_names(path: Path, files: list[PluginFile]) -> tuple[str, list[tuple[str, str]]]:
    """For `--upload`: the trigger's `plugin_filename` and the (plugin_name, content) pairs to POST.

    A file uploads as its own name; a directory as `<dir name>/<relative path>`, named by the directory.
    """
    if path.is_file():
        return path.name, [(path.name, files[0].content)]
    return path.name, [(f"{path.name}/{file.relative_path}", file.content) for file in files]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliFailure(f"cannot read plugin file {path}: {exc}") from None
