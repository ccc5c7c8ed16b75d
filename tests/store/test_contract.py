"""The ObjectStore contract, run against every backend (memory, file, s3 on moto's real HTTP server)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lakeflux.errors import Invalid, NotFound
from lakeflux.store import ObjectStore, compare_stored, paths


def test_is_an_object_store(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    assert store.url


def test_put_if_absent_creates_once(store: ObjectStore) -> None:
    assert store.put_if_absent("n/wal/1.parquet", b"first") is True
    assert store.put_if_absent("n/wal/1.parquet", b"second") is False
    assert store.get("n/wal/1.parquet") == b"first"


def test_put_creates_and_replaces(store: ObjectStore) -> None:
    store.put("n/catalog/checkpoint.json", b"v1")
    assert store.get("n/catalog/checkpoint.json") == b"v1"
    store.put("n/catalog/checkpoint.json", b"version two")
    assert store.get("n/catalog/checkpoint.json") == b"version two"
    assert [m.size for m in store.list("n/catalog/")] == [len(b"version two")]


def test_put_if_absent_refuses_a_key_made_by_put(store: ObjectStore) -> None:
    store.put("k", b"x")
    assert store.put_if_absent("k", b"y") is False
    assert store.get("k") == b"x"


def test_binary_and_empty_payloads_round_trip(store: ObjectStore) -> None:
    every_byte = bytes(range(256)) * 4096  # 1 MiB
    assert store.put_if_absent("bin", every_byte)
    assert store.get("bin") == every_byte
    assert store.put_if_absent("empty", b"")
    assert store.get("empty") == b""
    assert store.exists("empty")


def test_missing_objects_raise_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFound):
        store.get("nope")
    with pytest.raises(NotFound):
        store.get_range("nope", 0, 10)
    with pytest.raises(NotFound):
        store.get_range("nope", 0, 0)
    assert store.exists("nope") is False


def test_get_range(store: ObjectStore) -> None:
    store.put_if_absent("r", b"0123456789")
    assert store.get_range("r", 0, 10) == b"0123456789"
    assert store.get_range("r", 2, 5) == b"234"
    assert store.get_range("r", 7, 100) == b"789"
    assert store.get_range("r", 4, 4) == b""
    assert store.get_range("r", 10, 20) == b""
    assert store.get_range("r", 50, 60) == b""
    with pytest.raises(Invalid):
        store.get_range("r", 5, 4)
    with pytest.raises(Invalid):
        store.get_range("r", -1, 4)


def test_exists_is_false_for_a_prefix_of_objects(store: ObjectStore) -> None:
    store.put_if_absent("dir/obj", b"x")
    assert store.exists("dir/obj") is True
    assert store.exists("dir") is False
    with pytest.raises(NotFound):
        store.get("dir")


def test_delete(store: ObjectStore) -> None:
    store.put_if_absent("d/1", b"x")
    store.put_if_absent("d/2", b"y")
    store.delete("d/1")
    assert not store.exists("d/1")
    assert [m.key for m in store.list("d/")] == ["d/2"]
    store.delete("d/1")  # a missing key is not an error
    store.delete("never/was")
    assert store.put_if_absent("d/1", b"again") is True
    assert store.get("d/1") == b"again"


def test_list_is_sorted_and_filtered_by_prefix(store: ObjectStore) -> None:
    keys = ["a/b/2", "a/bc", "a/b/10", "a/a", "b/x", "a/b/1", "ab"]
    for i, key in enumerate(keys):
        store.put_if_absent(key, b"x" * i)
    assert [m.key for m in store.list("")] == sorted(keys)
    assert [m.key for m in store.list("a/")] == ["a/a", "a/b/1", "a/b/10", "a/b/2", "a/bc"]
    assert [m.key for m in store.list("a/b")] == ["a/b/1", "a/b/10", "a/b/2", "a/bc"]
    assert [m.key for m in store.list("a/b/")] == ["a/b/1", "a/b/10", "a/b/2"]
    assert [m.key for m in store.list("a/b/1")] == ["a/b/1", "a/b/10"]
    assert store.list("zzz") == []
    assert store.list("a/zzz/") == []
    sizes = {m.key: m.size for m in store.list("")}
    assert sizes == {key: i for i, key in enumerate(keys)}
    assert all(m.last_modified_ns > 0 for m in store.list(""))


def test_wal_keys_list_in_sequence_order(store: ObjectStore) -> None:
    for seq in (10, 2, 1, 100, 9):
        assert store.put_if_absent(paths.wal_segment("node0", seq), f"seg{seq}".encode())
    listed = [paths.parse_seq(m.key) for m in store.list(paths.wal_prefix("node0"))]
    assert listed == [1, 2, 9, 10, 100]


def test_escaped_names_round_trip(store: ObjectStore) -> None:
    key = paths.table_file("node0", "my db", "cpu/%load", "2024-01-02", "00000000000000000007")
    assert store.put_if_absent(key, b"parquet bytes")
    listed = store.list(paths.table_prefix("node0", "my db", "cpu/%load"))
    assert [m.key for m in listed] == [key]
    assert store.get(key) == b"parquet bytes"


@pytest.mark.parametrize("bad", ["", "/abs", "a//b", "../up", "a/../b", "./a", "a/", "a\\b"])
def test_invalid_keys_are_refused(store: ObjectStore, bad: str) -> None:
    with pytest.raises(Invalid):
        store.put_if_absent(bad, b"x")
    with pytest.raises(Invalid):
        store.put(bad, b"x")
    with pytest.raises(Invalid):
        store.get(bad)


def test_temp_names_are_reserved(store: ObjectStore) -> None:
    for write in (store.put, store.put_if_absent):
        with pytest.raises(Invalid):
            write("n/wal/1.parquet" + paths.TEMP_SUFFIX, b"x")
    assert store.list("") == []


def test_compare_stored(store: ObjectStore) -> None:
    assert compare_stored(store, "c", b"mine") is None
    store.put_if_absent("c", b"mine")
    assert compare_stored(store, "c", b"mine") is True
    assert compare_stored(store, "c", b"theirs") is False


def _race(store: ObjectStore, key: str, writers: int) -> list[bool]:
    """`writers` threads call put_if_absent on one key at once, each with its own payload."""
    barrier = threading.Barrier(writers)

    def attempt(i: int) -> bool:
        barrier.wait()  # line everyone up so the puts overlap
        return store.put_if_absent(key, f"writer {i} of {key}".encode() * (i + 1))

    with ThreadPoolExecutor(max_workers=writers) as pool:
        return list(pool.map(attempt, range(writers)))


def test_put_if_absent_race_has_exactly_one_winner(store: ObjectStore) -> None:
    for round_ in range(6):
        key = paths.wal_segment("node0", round_)
        results = _race(store, key, writers=16)
        assert results.count(True) == 1, results
        winner = results.index(True)
        assert store.get(key) == f"writer {winner} of {key}".encode() * (winner + 1)
    assert len(store.list(paths.wal_prefix("node0"))) == 6
