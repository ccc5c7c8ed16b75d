"""Awkward table names in the lake on every store, and files an earlier version keyed differently."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from lakeflux.buffer import manifest as mf
from lakeflux.config import Config, S3Settings
from lakeflux.engine.cursors import CursorStore
from lakeflux.store import paths
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

T0 = 1_767_225_600 * 10**9
NAMES = [".", "..", "x" * 300, "中" * 30, "y" * 3000]


def sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_all(srv: InProcessServer) -> None:
    body = "\n".join(f"{n},k=a v={i}i {T0 + i}" for i, n in enumerate(NAMES))
    assert srv.write("lake", body).status == 204


def check_all(srv: InProcessServer) -> None:
    for i, n in enumerate(NAMES):
        assert srv.query("lake", f"SELECT v FROM {sql_name(n)}") == [{"v": i}], n[:20]


@pytest.mark.s3
def test_awkward_names_persist_and_query_on_s3(tmp_path, s3_endpoint):
    s3 = S3Settings(bucket=s3_endpoint.bucket, endpoint=s3_endpoint.endpoint_url, region=s3_endpoint.region,
                    access_key_id=s3_endpoint.access_key, secret_access_key=s3_endpoint.secret, allow_http=True)
    cfg = Config(data_dir=tmp_path / "d", object_store="s3", s3=s3, wal_flush_interval=0.02)
    with InProcessServer(cfg) as srv:
        write_all(srv)
        srv.call(srv.services.buffer.snapshot())
        assert srv.services.buffer.tables.rows == 0
        assert {f.table for f in srv.services.buffer.persister.manifest.files} == set(NAMES)
        check_all(srv)
    with InProcessServer(cfg) as srv:
        check_all(srv)


def test_files_under_an_earlier_key_layout_move_on_restart(tmp_path):
    """An earlier version escaped names without a bound: a 30-character CJK table name was a 270-byte
    segment, which S3 (and memory) stores took. Those files move to the current keys on restart."""
    store = MemoryStore()
    cfg = Config(object_store="memory", data_dir=tmp_path / "data", wal_flush_interval=0.01)
    name = "中" * 30
    with InProcessServer(cfg, store=store) as srv:
        assert srv.write("lake", f"{name},k=a v=1i {T0}\ncpu v=2i {T0}").status == 204
        srv.call(srv.services.buffer.snapshot())
        current = srv.services.buffer.persister.manifest
    # Rewrite the lake as the earlier version left it: the file at the old key, a manifest naming it.
    (moved,) = [f for f in current.files if f.table == name]
    old_key = moved.key.replace(paths.name_segment(name), quote(name, safe="-_.,=:@ "))
    assert old_key != moved.key
    store.copy(moved.key, old_key)
    store.delete(moved.key)
    files = tuple(f if f is not moved else mf.PersistedFile(**{**vars(f), "key": old_key}) for f in current.files)
    mf.commit(store, "node0", mf.Manifest(seq=current.seq + 1, wal_seq=current.wal_seq, files=files))
    with InProcessServer(cfg, store=store) as srv:
        assert srv.query("lake", f"SELECT v FROM {sql_name(name)}") == [{"v": 1}]
        assert srv.query("lake", "SELECT v FROM cpu") == [{"v": 2}]
        keys = {f.key for f in srv.services.buffer.persister.manifest.files}
        assert moved.key in keys and old_key not in keys
    assert not store.exists(old_key) and store.exists(moved.key)


def test_a_cursor_under_an_earlier_key_is_read_then_moved():
    store = MemoryStore()
    cursors = CursorStore(store, "node0")
    trigger = "t" * 300
    legacy = paths.legacy_trigger_cursor("node0", "db", trigger)
    assert legacy is not None
    store.put(legacy, b'{"seq": 41}')
    assert cursors.get("db", trigger) == 41
    cursors.put("db", trigger, 42)
    assert not store.exists(legacy)
    assert cursors.get("db", trigger) == 42
    assert store.exists(paths.trigger_cursor("node0", "db", trigger))
