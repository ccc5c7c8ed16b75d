"""Fixtures shared by every test package: moto's S3 server and in-process lakeflux servers."""

from __future__ import annotations

import uuid

import pytest

from lakeflux.config import Config
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer


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
