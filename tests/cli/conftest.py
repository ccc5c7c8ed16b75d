"""Fixtures for CLI tests: a recording fake server, a clean environment, a CliRunner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_fakes import FakeServer, start_fake_server
from typer.testing import CliRunner


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake, stop = start_fake_server()
    yield fake
    stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LAKEFLUX_/INFLUXDB3_/AWS_ settings leak in from the machine; the token file and state dirs are empty."""
    for name in list(os.environ):
        if name.startswith(("LAKEFLUX_", "INFLUXDB3_", "AWS_")) or name == "VIRTUAL_ENV":
            monkeypatch.delenv(name)
    monkeypatch.setenv("LAKEFLUX_DB_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LAKEFLUX_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
