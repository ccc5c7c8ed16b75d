"""FileStore specifics: temp files, directories, crash leftovers, URLs."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lakeflux.errors import Invalid, NotFound
from lakeflux.store import FileStore, paths


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_objects_are_plain_files_under_the_root(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put_if_absent("node0/wal/00000000000000000001.parquet", b"seg")
    assert (tmp_path / "node0" / "wal" / "00000000000000000001.parquet").read_bytes() == b"seg"


def test_no_temp_files_survive_winners_or_losers(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    barrier = threading.Barrier(8)

    def attempt(i: int) -> bool:
        barrier.wait()
        return store.put_if_absent("t/k.json", str(i).encode())

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(attempt, range(8))) == 1
    store.put("t/replaced.json", b"1")
    store.put("t/replaced.json", b"2")
    assert _all_files(tmp_path) == ["t/k.json", "t/replaced.json"]


def test_crash_leftover_temp_files_are_invisible(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put_if_absent("node0/tables/db/cpu/date=2024-01-01/a.parquet", b"real")
    leftover = f"node0/tables/db/cpu/date=2024-01-01/b.parquet.1234{paths.TEMP_SUFFIX}"
    (tmp_path / leftover).write_bytes(b"half writ")
    assert [m.key for m in store.list("node0/")] == ["node0/tables/db/cpu/date=2024-01-01/a.parquet"]
    assert store.exists(leftover) is False
    with pytest.raises(NotFound):
        store.get(leftover)
    assert not leftover.endswith((".parquet", ".json"))


def test_sweep_temp_removes_only_old_leftovers(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put_if_absent("node0/wal/00000000000000000001.parquet", b"segment")
    old = tmp_path / f"node0/wal/00000000000000000002.parquet.dead{paths.TEMP_SUFFIX}"
    new = tmp_path / f"node0/wal/00000000000000000003.parquet.live{paths.TEMP_SUFFIX}"
    for path, mtime in ((old, 1_000.0), (new, 5_000.0)):
        path.write_bytes(b"half")
        os.utime(path, (mtime, mtime))
    assert store.sweep_temp(older_than_s=3_600, now=5_000.0) == 1
    assert not old.exists() and new.exists()
    assert [m.key for m in store.list("node0/")] == ["node0/wal/00000000000000000001.parquet"]
    assert store.sweep_temp(older_than_s=3_600, now=5_000.0) == 0


def test_a_key_below_an_object_is_invalid(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put_if_absent("a", b"x")
    with pytest.raises(Invalid):
        store.put_if_absent("a/b", b"y")
    with pytest.raises(Invalid):
        store.put("a/b", b"y")


def test_list_skips_missing_root(tmp_path: Path) -> None:
    assert FileStore(tmp_path / "not-yet").list("") == []


def test_list_ignores_directories(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    (tmp_path / "empty" / "dir").mkdir(parents=True)
    store.put_if_absent("empty/x", b"1")
    assert [m.key for m in store.list("")] == ["empty/x"]


def test_url_for_is_an_absolute_file_url(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "objects")
    key = paths.table_file("node0", "db", "my table", "2024-01-01", "f")
    store.put_if_absent(key, b"x")
    url = store.url_for(key)
    assert url.startswith("file:///")
    assert "%20" in url  # URL-escaped, not a raw space
    assert store.url.startswith("file:///") and os.path.isabs(store.root)
    assert store.datafusion_store() is None


def test_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileStore(Path("data"))
    assert store.root == tmp_path / "data"


_WRITER = """
import sys
from lakeflux.store import FileStore
store = FileStore(sys.argv[1])
me = sys.argv[2]
sys.stdin.readline()  # the start gun: every process is up before any writes
won = [str(i) for i in range(200) if store.put_if_absent(f"race/{i:04d}.json", me.encode())]
print(" ".join(won))
"""


def test_put_if_absent_race_across_processes(tmp_path: Path) -> None:
    """os.link is atomic across processes too: 6 processes race for 200 keys, each key has one winner."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), f"p{n}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for n in range(6)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    wins: dict[str, list[int]] = {}
    for n, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        wins[f"p{n}"] = [int(i) for i in out.split()]
    all_wins = sorted(i for won in wins.values() for i in won)
    assert all_wins == list(range(200))  # every key won exactly once
    store = FileStore(tmp_path)
    for name, won in wins.items():
        for i in won:
            assert store.get(f"race/{i:04d}.json") == name.encode()
    assert _all_files(tmp_path) == [f"race/{i:04d}.json" for i in range(200)]
