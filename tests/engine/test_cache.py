"""The plugin cache (CONTRACT §1.7): namespaces, TTLs on an injected clock, validation, threads."""

from __future__ import annotations

import math
import threading

import pytest

from lakeflux.engine.cache import (
    DEFAULT_TEST_CACHE_NAME,
    SWEEP_INTERVAL_S,
    TEST_CACHE_DEFAULT_TTL_S,
    CacheStore,
)

START_NS = 1_700_000_000 * 1_000_000_000


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = START_NS
        self.mono = 1_000.0

    def now_ns(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1_000_000_000)
        self.mono += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> CacheStore:
    return CacheStore(clock)


def test_put_get_delete(store: CacheStore) -> None:
    cache = store.trigger_cache("db", "t1")
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    cache.put("k", 41)
    assert cache.get("k") == 41
    cache.put("k", 42)  # overwrite
    assert cache.get("k") == 42
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k", default=0) == 0


def test_values_are_stored_by_reference(store: CacheStore) -> None:
    cache = store.trigger_cache("db", "t1")
    state = {"count": 0}
    cache.put("state", state)
    cache.get("state")["count"] += 1
    assert cache.get("state") is state
    assert state == {"count": 1}


def test_stored_none_is_returned_not_default(store: CacheStore) -> None:
    cache = store.trigger_cache("db", "t1")
    cache.put("k", None)
    assert cache.get("k", "default") is None


def test_namespaces_are_per_database_and_trigger(store: CacheStore) -> None:
    a = store.trigger_cache("db", "a")
    b = store.trigger_cache("db", "b")
    other_db = store.trigger_cache("other", "a")
    a.put("k", "a")
    b.put("k", "b")
    other_db.put("k", "other")
    assert (a.get("k"), b.get("k"), other_db.get("k")) == ("a", "b", "other")
    assert store.trigger_cache("db", "a").get("k") == "a"  # a fresh view sees the same namespace


def test_use_global_is_process_wide(store: CacheStore) -> None:
    a = store.trigger_cache("db1", "a")
    b = store.trigger_cache("db2", "b")
    a.put("shared", [1], use_global=True)
    assert b.get("shared", use_global=True) == [1]
    assert a.get("shared") is None  # the local namespace is separate
    assert b.delete("shared", use_global=True) is True
    assert a.get("shared", use_global=True) is None


@pytest.mark.parametrize(
    ("ttl", "alive_at", "gone_at"),
    [
        (10, 9.999, 10.0),
        (0.5, 0.4, 0.5),
        (2.25, 2.2, 2.25),
        (0, None, 0.0),  # expires at once
        (True, 0.5, 1.0),  # bool is an int: one second
    ],
)
def test_ttl_expiry_on_get(
    store: CacheStore, clock: FakeClock, ttl: float, alive_at: float | None, gone_at: float
) -> None:
    cache = store.trigger_cache("db", "t")
    cache.put("k", "v", ttl)  # ttl may be positional
    if alive_at is not None:
        clock.advance(alive_at)
        assert cache.get("k") == "v"
        clock.advance(gone_at - alive_at)
    else:
        clock.advance(gone_at)
    assert cache.get("k", "expired") == "expired"
    assert store.entry_count() == 0  # removed on read


def test_no_ttl_never_expires(store: CacheStore, clock: FakeClock) -> None:
    cache = store.trigger_cache("db", "t")
    cache.put("k", "v")
    clock.advance(10 * 365 * 86_400)
    assert store.sweep() == 0
    assert cache.get("k") == "v"


def test_overwrite_replaces_ttl(store: CacheStore, clock: FakeClock) -> None:
    cache = store.trigger_cache("db", "t")
    cache.put("k", "short", ttl=1)
    cache.put("k", "forever")
    clock.advance(5)
    assert store.sweep() == 0  # the stale expiry of the first put must not remove the second value
    assert cache.get("k") == "forever"
    cache.put("k", "long", ttl=100)
    cache.put("k", "short", ttl=1)
    clock.advance(2)
    assert cache.get("k") is None


def test_delete_of_expired_entry_reports_false(store: CacheStore, clock: FakeClock) -> None:
    cache = store.trigger_cache("db", "t")
    cache.put("k", "v", ttl=1)
    clock.advance(1)
    assert cache.delete("k") is False


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        (-1, ValueError),
        (-0.001, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (1e300, ValueError),
        (10_000 * 365 * 86_400.0, ValueError),
        ("10", TypeError),
        (b"10", TypeError),
        ([1], TypeError),
    ],
)
def test_bad_ttl_is_refused(store: CacheStore, ttl: object, error: type[Exception]) -> None:
    cache = store.trigger_cache("db", "t")
    with pytest.raises(error):
        cache.put("k", "v", ttl)  # type: ignore[arg-type]
    assert cache.get("k") is None  # nothing was stored


@pytest.mark.parametrize("key", [1, None, b"k", ("k",)])
def test_key_must_be_str(store: CacheStore, key: object) -> None:
    cache = store.trigger_cache("db", "t")
    for call in (
        lambda: cache.put(key, "v"),  # type: ignore[arg-type]
        lambda: cache.get(key),  # type: ignore[arg-type]
        lambda: cache.delete(key),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError):
            call()


def test_sweep_removes_expired_and_empty_namespaces(store: CacheStore, clock: FakeClock) -> None:
    cache = store.trigger_cache("db", "t")
    cache.put("a", 1, ttl=1)
    cache.put("b", 2, ttl=5)
    cache.put("c", 3)
    store.trigger_cache("db", "other").put("x", 1, ttl=1)
    clock.advance(1)
    assert store.sweep() == 2
    assert store.entry_count() == 2
    clock.advance(4)
    assert store.sweep() == 1
    assert cache.get("c") == 3
    assert store.entry_count() == 1


def test_maybe_sweep_runs_at_most_every_interval(store: CacheStore, clock: FakeClock) -> None:
    cache = store.trigger_cache("db", "t")
    cache.put("a", 1, ttl=1)
    clock.advance(2)
    assert store.maybe_sweep() == 0  # not yet due
    assert store.entry_count() == 1
    clock.advance(SWEEP_INTERVAL_S)
    assert store.maybe_sweep() == 1
    cache.put("b", 1, ttl=1)
    clock.advance(2)
    assert store.maybe_sweep() == 0  # the interval restarted at the last sweep


def test_drop_namespace(store: CacheStore) -> None:
    a = store.trigger_cache("db", "a")
    b = store.trigger_cache("db", "b")
    a.put("k", 1)
    a.put("g", 1, use_global=True)
    b.put("k", 2)
    assert store.drop_namespace("db", "a") is True
    assert store.drop_namespace("db", "a") is False
    assert a.get("k") is None
    assert b.get("k") == 2
    assert a.get("g", use_global=True) == 1  # the global namespace lives until exit


def test_drop_database(store: CacheStore) -> None:
    store.trigger_cache("db", "a").put("k", 1)
    store.trigger_cache("db", "b").put("k", 1)
    store.trigger_cache("keep", "a").put("k", 1)
    store.trigger_cache("db", "a").put("g", 1, use_global=True)
    assert store.drop_database("db") == 2
    assert store.trigger_cache("db", "a").get("k") is None
    assert store.trigger_cache("keep", "a").get("k") == 1
    assert store.trigger_cache("x", "y").get("g", use_global=True) == 1


def test_test_caches_are_named_separate_and_expire_after_30_minutes(store: CacheStore, clock: FakeClock) -> None:
    default = store.test_cache()
    named = store.test_cache("mine")
    trigger = store.trigger_cache("db", "t")
    default.put("k", "default")
    named.put("k", "named")
    named.put("g", "named-global", use_global=True)
    trigger.put("g", "real-global", use_global=True)
    assert store.test_cache(DEFAULT_TEST_CACHE_NAME).get("k") == "default"
    assert store.test_cache("mine").get("k") == "named"
    assert named.get("g", use_global=True) == "named-global"  # a dry run never sees the real global
    assert trigger.get("g", use_global=True) == "real-global"
    named.put("explicit", 1, ttl=3_600)
    clock.advance(TEST_CACHE_DEFAULT_TTL_S - 1)
    assert named.get("k") == "named"
    clock.advance(1)
    assert named.get("k") is None
    assert named.get("g", use_global=True) is None
    assert named.get("explicit") == 1  # an explicit ttl wins over the default
    assert trigger.get("g", use_global=True) == "real-global"


def test_drop_test(store: CacheStore) -> None:
    cache = store.test_cache("mine")
    cache.put("k", 1)
    cache.put("k", 1, use_global=True)
    store.drop_test("mine")
    assert store.entry_count() == 0


def test_concurrent_access_is_consistent(store: CacheStore) -> None:
    cache = store.trigger_cache("db", "t")
    cache.put("counter", [0])
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(500):
            cache.put(f"{worker}-{i}", i, ttl=60)
            assert cache.get(f"{worker}-{i}") == i
            with lock:
                cache.get("counter")[0] += 1
            if i % 2:
                assert cache.delete(f"{worker}-{i}") is True
            store.sweep()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("counter") == [8 * 500]
    assert store.entry_count() == 1 + 8 * 250
