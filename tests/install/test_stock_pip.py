"""`pip install -e '.[test]'` with the pip a fresh venv brings (no upgrade), as a user installing into their own
venv does. It needs the package index, so it runs only when asked: `make install-check` (or
LAKEFLUX_NETWORK_TESTS=1), and skips when the index cannot be reached."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("LAKEFLUX_NETWORK_TESTS") != "1",
                       reason="needs the package index: run `make install-check` (LAKEFLUX_NETWORK_TESTS=1)"),
]


def _index_reachable() -> bool:
    host = urlsplit(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")).hostname or "pypi.org"
    try:
        with socket.create_connection((host, 443), timeout=10):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stock_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _index_reachable():
        pytest.skip("the package index is not reachable")
    venv = tmp_path_factory.mktemp("stock") / "venv"
    # The base interpreter's venv module seeds the venv with the pip bundled by ensurepip: the stock one.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    return venv


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what a build reads: builds write metadata beside the sources, which must stay clean."""
    copy = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "lakeflux", copy / "lakeflux", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _pip(venv: Path, source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "pip"), *args], cwd=source, capture_output=True, text=True,
                          timeout=1800, check=False)


def test_the_test_extras_resolve_with_the_stock_pip(stock_venv: Path, source: Path) -> None:
    version = _pip(stock_venv, source, "--version").stdout
    result = _pip(stock_venv, source, "install", "--dry-run", "-e", ".[test]")
    assert result.returncode == 0, f"{version}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "ResolutionImpossible" not in result.stderr
    assert "Would install" in result.stdout and "lakeflux-" in result.stdout


def test_the_build_raises_no_packaging_deprecation(stock_venv: Path, source: Path) -> None:
    result = _pip(stock_venv, source, "install", "-v", "--no-deps", "-e", ".")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "project.license" not in result.stdout + result.stderr
