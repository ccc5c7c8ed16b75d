"""Fixtures for the store tests: one `store` fixture parametrized over every backend.

The moto S3 server is the session-wide `s3_server` fixture of tests/conftest.py (started once per
session through lakeflux.testing.s3server); here each s3 test gets its own key prefix in one bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeflux.store import FileStore, MemoryStore, ObjectStore
from lakeflux.testing.s3server import MotoServer, S3Endpoint

BACKENDS = ["memory", "file", pytest.param("s3", marks=pytest.mark.s3)]


@pytest.fixture(scope="session")
def store_bucket(s3_server: MotoServer) -> S3Endpoint:
    """One bucket for every s3 store test of the session (tests are kept apart by prefix)."""
    return s3_server.endpoint("lakeflux-store-tests")


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "file":
        return FileStore(tmp_path / "objects")
    endpoint: S3Endpoint = request.getfixturevalue("store_bucket")
    return endpoint.store(prefix=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """A fresh, empty store of each backend kind."""
    s = make_store(request.param, request, tmp_path)
    yield s
    if isinstance(s, MemoryStore):
        s.clear()
