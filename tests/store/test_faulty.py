"""FaultyStore and CountingStore around a real (memory) store."""

from __future__ import annotations

import pytest

from lakeflux.errors import Invalid, Unavailable
from lakeflux.store import MemoryStore, ObjectStore, compare_stored
from lakeflux.testing.faulty import FAIL_BEFORE, LATENCY, LOSE_RESPONSE, CountingStore, FaultyStore


@pytest.fixture
def inner() -> MemoryStore:
    store = MemoryStore()
    yield store
    store.clear()


def test_wrappers_are_object_stores(inner: MemoryStore) -> None:
    assert isinstance(FaultyStore(inner), ObjectStore)
    assert isinstance(CountingStore(inner), ObjectStore)
    assert FaultyStore(inner).url_for("k") == inner.url_for("k")


def test_fail_before_never_reaches_the_store(inner: MemoryStore) -> None:
    store = FaultyStore(inner, seed=1)
    store.fail_before("put_if_absent", times=1)
    with pytest.raises(Unavailable, match="before the request"):
        store.put_if_absent("k", b"x")
    assert not inner.exists("k")
    assert store.put_if_absent("k", b"x") is True  # the rule is used up
    assert store.injected == {(FAIL_BEFORE, "put_if_absent"): 1}


def test_lost_response_means_the_write_happened(inner: MemoryStore) -> None:
    store = FaultyStore(inner, seed=1)
    store.lose_response("put_if_absent", times=1)
    with pytest.raises(Unavailable, match="response was lost"):
        store.put_if_absent("k", b"mine")
    assert inner.get("k") == b"mine"
    # What a careful caller does next: retrying says "taken", reading back says "it was ours".
    assert store.put_if_absent("k", b"mine") is False
    assert compare_stored(store, "k", b"mine") is True
    assert store.injected_total(LOSE_RESPONSE) == 1


def test_rules_match_operation_and_key_prefix(inner: MemoryStore) -> None:
    store = FaultyStore(inner, seed=1)
    store.fail_before(["put_if_absent", "put"], prefix="node0/wal/")
    with pytest.raises(Unavailable):
        store.put_if_absent("node0/wal/1", b"x")
    with pytest.raises(Unavailable):
        store.put("node0/wal/2", b"x")
    assert store.put_if_absent("node0/catalog/1", b"x") is True
    assert store.get("node0/catalog/1") == b"x"
    assert [m.key for m in store.list("node0/")] == ["node0/catalog/1"]
    store.clear()
    assert store.put_if_absent("node0/wal/1", b"x") is True
    assert store.injected_total() == 2


def test_list_rules_match_the_list_prefix(inner: MemoryStore) -> None:
    store = FaultyStore(inner, seed=1)
    store.fail_before("list", prefix="a/")
    with pytest.raises(Unavailable):
        store.list("a/b/")
    assert store.list("b/") == []


def test_probability_is_seeded_and_reproducible(inner: MemoryStore) -> None:
    def pattern(seed: int) -> list[bool]:
        store = FaultyStore(inner, seed=seed)
        store.fail_before("exists", probability=0.5)
        outcomes = []
        for _ in range(200):
            try:
                store.exists("k")
                outcomes.append(True)
            except Unavailable:
                outcomes.append(False)
        return outcomes

    first = pattern(42)
    assert first == pattern(42)
    assert 40 < first.count(False) < 160
    assert first != pattern(43)


def test_probability_zero_never_fires_and_out_of_range_is_invalid(inner: MemoryStore) -> None:
    store = FaultyStore(inner, seed=1)
    store.fail_before(probability=0.0)
    for i in range(50):
        store.put(f"k{i}", b"x")
    assert store.injected_total() == 0
    with pytest.raises(Invalid):
        store.fail_before(probability=1.5)


def test_latency_uses_the_injected_sleep(inner: MemoryStore) -> None:
    slept: list[float] = []
    store = FaultyStore(inner, seed=1, sleep=slept.append)
    store.add_latency(0.25, "get", times=2)
    store.put("k", b"x")
    for _ in range(3):
        assert store.get("k") == b"x"
    assert slept == [0.25, 0.25]
    assert store.injected == {(LATENCY, "get"): 2}


def test_unknown_operation_is_invalid(inner: MemoryStore) -> None:
    with pytest.raises(Invalid, match="unknown store operation"):
        FaultyStore(inner).fail_before("upload")


def test_counting_store_counts_calls_and_bytes(inner: MemoryStore) -> None:
    store = CountingStore(inner)
    store.put_if_absent("a", b"12345")
    store.put_if_absent("a", b"67")
    store.put("b", b"xyz")
    store.get("a")
    store.get_range("a", 0, 2)
    store.list("")
    store.exists("a")
    store.delete("b")
    assert store.calls == {
        "put_if_absent": 2, "put": 1, "get": 1, "get_range": 1, "list": 1, "exists": 1, "delete": 1,
    }
    assert store.puts == 3
    assert store.bytes_written == 10
    store.reset()
    assert store.puts == 0 and store.bytes_written == 0


def test_counting_around_faulty_counts_failed_calls(inner: MemoryStore) -> None:
    faulty = FaultyStore(inner, seed=3)
    faulty.fail_before("put_if_absent", times=2)
    store = CountingStore(faulty)
    for _ in range(3):
        try:
            store.put_if_absent("k", b"x")
        except Unavailable:
            pass
    assert store.calls["put_if_absent"] == 3
    assert inner.get("k") == b"x"
