"""Sealed files (issue 15, the compactor's first step): once a cluster has a compactor, an ingest node's
snapshots seal the files they write and never rewrite them; a late write into a sealed file's time range
goes to a new file beside it (queries merge the two as they read), so a compactor can take sealed files
while the node keeps writing. `retire_absorbed` then takes files a compaction absorbed out of the node's
manifest and table prefixes, with copies under deleted/ and the compaction's sequence in the manifest."""

from __future__ import annotations

import orjson
import pytest

from lakeflux.buffer.manifest import Manifest, PersistedFile
from lakeflux.buffer.persist import Persister
from lakeflux.config import Config
from lakeflux.store import paths
from lakeflux.store.file import FileStore
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

T0 = 1_767_225_600 * 10**9  # 2026-01-01
HOUR = 3_600 * 10**9
NODE = "node0"


@pytest.fixture(params=["file", "memory"])
def srv(request, tmp_path):
    cfg = Config(data_dir=tmp_path / "d", object_store=request.param, wal_flush_interval=0.02, without_auth=True)
    store = FileStore(tmp_path / "d") if request.param == "file" else MemoryStore()
    with InProcessServer(cfg, store=store) as server:
        yield server


def persister(srv: InProcessServer) -> Persister:
    p = srv.services.buffer.persister
    assert p is not None
    return p


def write(srv: InProcessServer, body: str) -> None:
    r = srv.write("lake", body)
    assert r.status == 204, r.body


def snapshot(srv: InProcessServer) -> None:
    srv.call(srv.services.buffer.snapshot())


def hours(first: int, n: int, value: int) -> str:
    return "\n".join(f"cpu,host=h{i % 2} v={value + i}i {T0 + i * HOUR}" for i in range(first, first + n))


def files(srv: InProcessServer) -> list[PersistedFile]:
    return persister(srv).manifest.files_of("lake", "cpu")


def test_a_sealed_file_is_never_rewritten_and_late_rows_go_to_a_new_file(srv):
    p = persister(srv)
    p.seal = lambda: True
    write(srv, hours(0, 10, 0))
    snapshot(srv)
    [first] = files(srv)
    assert p.manifest.sealed == first.wal_seq and p.manifest.is_sealed(first)
    assert first.table_seq == srv.services.catalog.state.require_table("lake", "cpu").created_seq
    body = p.store.get(first.key)
    write(srv, hours(3, 2, 100))  # late rows rewriting two points of the sealed file
    snapshot(srv)
    now = files(srv)
    assert first in now and len(now) == 2 and p.store.get(first.key) == body
    assert all(p.manifest.is_sealed(f) for f in now)
    rows = srv.query("lake", "SELECT count(*) AS n, sum(v) AS s FROM cpu")
    assert rows == [{"n": 10, "s": sum(range(10)) - 3 - 4 + 103 + 104}]


def test_without_sealing_late_rows_are_compacted_as_before(srv):
    write(srv, hours(0, 10, 0))
    snapshot(srv)
    write(srv, hours(3, 2, 100))
    snapshot(srv)
    assert len(files(srv)) == 1 and persister(srv).manifest.sealed == -1
    raw = orjson.loads(persister(srv).store.get(paths.snapshot_manifest(NODE, persister(srv).manifest.seq)))
    assert "sealed" not in raw and "compaction" not in raw  # a single node's manifests are as they were


def test_sealing_starts_with_the_snapshot_that_asks_for_it(srv):
    p = persister(srv)
    write(srv, hours(0, 10, 0))
    snapshot(srv)
    assert p.manifest.sealed == -1
    p.seal = lambda: True
    write(srv, hours(3, 2, 100))  # merged with the unsealed file: the merged file is sealed
    snapshot(srv)
    [merged] = files(srv)
    assert p.manifest.is_sealed(merged)
    p.seal = lambda: False  # sealing never goes back
    write(srv, hours(20, 2, 0))
    snapshot(srv)
    assert p.manifest.sealed == merged.wal_seq and merged in files(srv)


def test_retire_absorbed_takes_sealed_files_out_with_the_compaction_named(srv):
    p = persister(srv)
    p.seal = lambda: True
    write(srv, hours(0, 10, 0))
    snapshot(srv)
    write(srv, hours(30, 5, 0))
    snapshot(srv)
    old, new = sorted(files(srv), key=lambda f: f.wal_seq)
    seen: list[int] = []

    def inside() -> None:
        seen.append(p.manifest.seq)  # runs before the manifest changes, under the view lock

    before = p.manifest.seq
    assert p.retire_absorbed({old.key, "lake/never/listed.parquet"}, 7, inside) == 1
    assert seen == [before]
    assert files(srv) == [new] and p.manifest.compaction == 7 and p.manifest.retired == (old.key,)
    assert not p.store.exists(old.key)
    trashed = [m.key for m in p.store.list(paths.trash_prefix(NODE))]
    assert len(trashed) == 1 and trashed[0].endswith(old.key.split("/", 2)[2])
    assert p.retire_absorbed({old.key}, 8) == 0 and p.manifest.compaction == 7  # nothing left to retire
    # The committed manifest says the same after a restart.
    loaded = Manifest.from_bytes(p.store.get(paths.snapshot_manifest(NODE, p.manifest.seq)), "m")
    assert loaded.compaction == 7 and loaded.sealed == new.wal_seq and loaded.files == (new,)


def test_unsealed_files_are_never_retired(srv):
    write(srv, hours(0, 10, 0))
    snapshot(srv)
    [f] = files(srv)
    with pytest.raises(ValueError, match="unsealed"):
        persister(srv).retire_absorbed({f.key}, 0)
    assert files(srv) == [f]
