"""Python packages for plugins: the plugin virtual environment and real pip runs in it (CONTRACT §1.1, §4.5).

The venv lives at `--virtual-env-location` or `<plugin-dir>/.venv`. It is created with
`<this python> -m venv` the first time something is installed, and packages are installed with
`<venv>/bin/python -m pip install …` (or `uv pip install --python <venv python> …` when the package manager
is `uv`, or `discover` finds no pip but finds uv). The engine already put the venv's site-packages on
`sys.path` at start-up (`prepare_plugin_environment`); after an install this module refreshes the import
system so plugins import the new packages on their next call, without a restart.

Failures are errors with pip's output: `PackageInstallError` (HTTP 500); `--package-manager disabled`
→ Forbidden (403). pip's own environment variables (`PIP_INDEX_URL`, `PIP_NO_INDEX`, …) pass through.
"""

from __future__ import annotations

import importlib
import os
import shutil
import site
import subprocess
import sys
import threading
from pathlib import Path

from ..errors import Forbidden, Invalid, LakefluxError
from .plugin import NO_PLUGIN_DIR, venv_site_packages

PACKAGE_MANAGERS = ("discover", "pip", "uv", "disabled")
INSTALL_TIMEOUT_S = 900.0
OUTPUT_LIMIT = 20_000  # characters of pip output kept in an error


class PackageInstallError(LakefluxError):
    """Creating the venv or running the installer failed; the message carries the tool's output (HTTP 500)."""


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


class PackageInstaller:
    """Installs packages into the plugin venv; one install at a time (pip is not safe to run concurrently)."""

    def __init__(
        self,
        plugin_dir: Path | None,
        venv_dir: Path | None = None,
        package_manager: str = "discover",
        python: str = sys.executable,
    ) -> None:
        if package_manager not in PACKAGE_MANAGERS:
            raise Invalid(f"unknown package manager {package_manager!r}: expected one of {', '.join(PACKAGE_MANAGERS)}")
        self.plugin_dir = Path(plugin_dir) if plugin_dir is not None else None
        self._venv_dir = Path(venv_dir) if venv_dir is not None else None
        self.package_manager = package_manager
        self._python = python
        self._lock = threading.Lock()

    @property
    def venv_dir(self) -> Path:
        """The venv location; Invalid "Node not configured with plugin directory" when there is none."""
        if self._venv_dir is not None:
            return self._venv_dir.resolve()
        if self.plugin_dir is None:
            raise Invalid(NO_PLUGIN_DIR)
        return (self.plugin_dir / ".venv").resolve()

    @property
    def venv_python(self) -> Path:
        return self.venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def install_packages(self, packages: object) -> str:
        """Install requirement specifiers (`["requests==2.32.3", …]`); returns the installer's output.

        Blocking (minutes for big packages): call it off the event loop. Raises Forbidden when installing is
        disabled, Invalid for a bad list, PackageInstallError with the output when the install fails.
        """
        names = _check_packages(packages)
        return self._install(names)

    def install_requirements(self, requirements_location: object) -> str:
        """Install a requirements file that is on the server; returns and raises like `install_packages`."""
        if not isinstance(requirements_location, str) or not requirements_location.strip():
            raise Invalid("missing or invalid 'requirements_location': expected a path on the server")
        path = Path(requirements_location)
        if not path.is_absolute() and self.plugin_dir is not None:
            path = self.plugin_dir / path  # relative paths are taken from the plugin dir
        if not path.is_file():
            raise Invalid(f"requirements file not found: {requirements_location}")
        return self._install(["-r", str(path)])

    def ensure_venv(self) -> Path:
        """Create the venv (with pip) unless it exists; returns its python. Raises PackageInstallError."""
        python = self.venv_python
        if python.exists():
            return python
        self.venv_dir.parent.mkdir(parents=True, exist_ok=True)
        _run([self._python, "-m", "venv", str(self.venv_dir)], "creating the plugin virtual environment")
        return python

    def _install(self, arguments: list[str]) -> str:
        if self.package_manager == "disabled":
            raise Forbidden("package installation is disabled on this server (--package-manager disabled)")
        with self._lock:
            python = self.ensure_venv()
            output = _run(self._command(python, arguments), "installing packages")
            _refresh_imports(self.venv_dir)
        return output

    def _command(self, python: Path, arguments: list[str]) -> list[str]:
        uv = shutil.which("uv")
        if self.package_manager == "uv" or (self.package_manager == "discover" and not _has_pip(python) and uv):
            if uv is None:
                raise PackageInstallError("package manager uv was requested but uv is not on PATH")
            return [uv, "pip", "install", "--python", str(python), *arguments]
        return [str(python), "-m", "pip", "install", "--disable-pip-version-check", *arguments]


def _check_packages(packages: object) -> list[str]:
    if not isinstance(packages, list) or not packages:
        raise Invalid("'packages' must be a non-empty list of package names")
    for name in packages:
        # Options would let a request point pip anywhere (--index-url, --target): names only.
        if not isinstance(name, str) or not name.strip() or name.lstrip().startswith("-"):
            raise Invalid(f"invalid package name {name!r}")
    return [name.strip() for name in packages]


def _has_pip(python: Path) -> bool:
    return any((python.parent.parent / "lib").glob("python*/site-packages/pip")) or (
        python.parent.parent / "Lib" / "site-packages" / "pip").exists()


def _run(command: list[str], what: str) -> str:
    """Run a tool to completion; its combined output, or PackageInstallError carrying that output."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PackageInstallError(f"{what} failed: {exc}") from None
    output = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0:
        raise PackageInstallError(f"{what} failed (exit {done.returncode}):\n{_tail(output)}")
    return output


def _refresh_imports(venv_dir: Path) -> None:
    """Make new packages importable on the next plugin call: site dir (with its .pth files), finder caches."""
    site.addsitedir(str(venv_site_packages(venv_dir)))
    importlib.invalidate_caches()
