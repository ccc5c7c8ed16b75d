"""Fixtures shared by every test package: moto's S3 server and in-process lakeflux servers."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from lakeflux.config import Config
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer


def _token_files(data_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data_dir.glob("admin-token*"))}


@pytest.fixture(scope="session", autouse=True)
def local_state_in_a_temp_dir(tmp_path_factory: pytest.TempPathFactory):
    """Servers leave token files and notes for the local CLI in the state dir (lakeflux.localstate): every
    test's go to a temp dir. And no test may touch the token file of the developer's own server in ./data."""
    state = tmp_path_factory.mktemp("state")
    before = os.environ.get("LAKEFLUX_STATE_DIR")
    os.environ["LAKEFLUX_STATE_DIR"] = str(state)
    checkout_data = Path("data").absolute()
    tokens_before = _token_files(checkout_data)
    yield state
    if before is None:
        os.environ.pop("LAKEFLUX_STATE_DIR", None)
    else:
        os.environ["LAKEFLUX_STATE_DIR"] = before
    assert _token_files(checkout_data) == tokens_before, f"a test changed the token files in {checkout_data}"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server as a real HTTP server on loopback, one per test session."""
    from lakeflux.testing.s3server import MotoServer

    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_endpoint(s3_server):
    """A fresh bucket on the session's moto server."""
    return s3_server.endpoint(f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def fast_config(tmp_path) -> Config:
    """Defaults, but a short flush interval so tests do not wait a second per write."""
    return Config(data_dir=tmp_path / "data", object_store="memory", wal_flush_interval=0.02, without_auth=True)


@pytest.fixture
def server(fast_config):
    """An in-process server over a fresh memory store."""
    with InProcessServer(fast_config, store=MemoryStore()) as srv:
        yield srv
