"""The plugin cache behind `influxdb3_local.cache` (CONTRACT §1.7): live objects, in memory, with TTLs.

One `CacheStore` per process holds namespaces:

- one per (database, trigger): a trigger's private values; dropped when the trigger stops (disable,
  delete, error-disable, update) or its database is deleted;
- one process-wide global namespace (`use_global=True`), alive until exit;
- for dry runs, a pair per `cache_name` (local and its own "global"), whose entries default to a 30-minute
  TTL so test runs do not pile up forever.

Values are stored by reference (never copied or pickled), so a plugin can cache a dict and mutate it.
An expired entry is removed when read; `sweep()` removes the rest (the runtime calls it at least every
`SWEEP_INTERVAL_S`, or calls `maybe_sweep()` often). All methods are thread-safe: async triggers share
their namespace across worker threads.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from ..model import SYSTEM_CLOCK, Clock
from .durations import NS_PER_SECOND

SWEEP_INTERVAL_S = 10.0
TEST_CACHE_DEFAULT_TTL_S = 30 * 60.0
DEFAULT_TEST_CACHE_NAME = "_shared_test"
# Beyond ~100 years the expiry would not fit the clock's int64 nanoseconds anyway; InfluxDB refuses
# durations it cannot represent, we refuse these.
MAX_TTL_S = 100 * 365.25 * 86_400.0

NamespaceId = tuple[str, ...]
GLOBAL_NAMESPACE: NamespaceId = ("global",)


def trigger_namespace(database: str, trigger: str) -> NamespaceId:
    return ("trigger", database, trigger)


def _test_namespaces(cache_name: str) -> tuple[NamespaceId, NamespaceId]:
    return ("test", cache_name), ("test_global", cache_name)


@dataclass
class _Entry:
    value: Any
    expires_ns: int | None
    token: int  # identifies this put, so a stale expiry-heap item cannot remove a newer value


@dataclass
class _Namespace:
    default_ttl_ns: int | None
    entries: dict[str, _Entry] = field(default_factory=dict)


def _ttl_to_ns(ttl: Any) -> int | None:
    """Validate a `ttl` argument (seconds, int or float) into nanoseconds; None means no expiry."""
    if ttl is None:
        return None
    if isinstance(ttl, str | bytes) or not hasattr(ttl, "__float__"):
        raise TypeError(f"ttl must be a number of seconds or None, not {type(ttl).__name__}")
    seconds = float(ttl)
    if math.isnan(seconds):
        raise ValueError("ttl must be a number of seconds, got NaN")
    if seconds < 0:
        raise ValueError(f"ttl must not be negative, got {seconds}")
    if seconds > MAX_TTL_S:
        raise ValueError(f"ttl of {seconds} seconds is too large (at most {MAX_TTL_S:.0f})")
    return round(seconds * NS_PER_SECOND)


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"cache key must be str, not {type(key).__name__}")
    return key


class CacheStore:
    """All plugin cache namespaces of this process."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._namespaces: dict[NamespaceId, _Namespace] = {}
        # (expires_ns, token, namespace, key); items go stale when their entry is replaced or deleted.
        self._expiries: list[tuple[int, int, NamespaceId, str]] = []
        self._tokens = itertools.count()
        self._last_sweep = clock.monotonic()

    # -- views ---------------------------------------------------------------------------------------

    def trigger_cache(self, database: str, trigger: str) -> PluginCache:
        """The `cache` object a trigger's plugin sees: local = (database, trigger), global = process-wide."""
        return PluginCache(self, trigger_namespace(database, trigger), GLOBAL_NAMESPACE)

    def test_cache(self, cache_name: str | None = None) -> PluginCache:
        """The `cache` object of a dry run, named by `cache_name`; entries default to a 30-minute TTL."""
        local, shared = _test_namespaces(cache_name or DEFAULT_TEST_CACHE_NAME)
        return PluginCache(self, local, shared)

    # -- operations used by PluginCache ----------------------------------------------------------------

    def put(self, namespace: NamespaceId, key: str, value: Any, ttl: Any = None) -> None:
        """Store `value` by reference under `key`, replacing any previous value and its expiry."""
        ttl_ns = _ttl_to_ns(ttl)
        with self._lock:
            space = self._namespace(namespace)
            if ttl_ns is None:
                ttl_ns = space.default_ttl_ns
            expires = None if ttl_ns is None else self._clock.now_ns() + ttl_ns
            token = next(self._tokens)
            space.entries[key] = _Entry(value, expires, token)
            if expires is not None:
                heapq.heappush(self._expiries, (expires, token, namespace, key))

    def get(self, namespace: NamespaceId, key: str, default: Any = None) -> Any:
        """The live value under `key`, or `default` if absent or expired (an expired entry is removed)."""
        with self._lock:
            space = self._namespaces.get(namespace)
            entry = space.entries.get(key) if space else None
            if entry is None:
                return default
            if entry.expires_ns is not None and entry.expires_ns <= self._clock.now_ns():
                assert space is not None
                del space.entries[key]
                return default
            return entry.value

    def delete(self, namespace: NamespaceId, key: str) -> bool:
        """Remove `key`; True if it was there (an expired, not yet swept entry counts as absent)."""
        with self._lock:
            space = self._namespaces.get(namespace)
            entry = space.entries.pop(key, None) if space else None
            if entry is None:
                return False
            return entry.expires_ns is None or entry.expires_ns > self._clock.now_ns()

    # -- housekeeping ----------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Remove every expired entry and empty namespace now; returns how many entries were removed."""
        removed = 0
        with self._lock:
            now = self._clock.now_ns()
            while self._expiries and self._expiries[0][0] <= now:
                _, token, namespace, key = heapq.heappop(self._expiries)
                space = self._namespaces.get(namespace)
                entry = space.entries.get(key) if space else None
                if space is not None and entry is not None and entry.token == token:
                    del space.entries[key]
                    removed += 1
            for namespace in [ns for ns, space in self._namespaces.items() if not space.entries]:
                del self._namespaces[namespace]
            self._last_sweep = self._clock.monotonic()
        return removed

    def maybe_sweep(self) -> int:
        """Sweep if `SWEEP_INTERVAL_S` passed since the last sweep (cheap to call after every plugin call)."""
        with self._lock:
            due = self._clock.monotonic() - self._last_sweep >= SWEEP_INTERVAL_S
        return self.sweep() if due else 0

    def drop_namespace(self, database: str, trigger: str) -> bool:
        """Forget a trigger's private values (it stopped); True if it had any."""
        with self._lock:
            return self._namespaces.pop(trigger_namespace(database, trigger), None) is not None

    def drop_database(self, database: str) -> int:
        """Forget the private values of every trigger of `database`; returns how many namespaces went."""
        with self._lock:
            doomed = [ns for ns in self._namespaces if ns[0] == "trigger" and ns[1] == database]
            for namespace in doomed:
                del self._namespaces[namespace]
            return len(doomed)

    def drop_test(self, cache_name: str) -> None:
        """Forget a dry-run cache (both its local and global side)."""
        with self._lock:
            for namespace in _test_namespaces(cache_name):
                self._namespaces.pop(namespace, None)

    def entry_count(self) -> int:
        """How many entries are held (expired but unswept ones included): for metrics and tests."""
        with self._lock:
            return sum(len(space.entries) for space in self._namespaces.values())

    def _namespace(self, namespace: NamespaceId) -> _Namespace:
        space = self._namespaces.get(namespace)
        if space is None:
            is_test = namespace[0] in ("test", "test_global")
            default_ttl = round(TEST_CACHE_DEFAULT_TTL_S * NS_PER_SECOND) if is_test else None
            space = self._namespaces[namespace] = _Namespace(default_ttl)
        return space


class PluginCache:
    """`influxdb3_local.cache`: a view of the store bound to one local namespace and one global one."""

    __slots__ = ("_store", "_local", "_global")

    def __init__(self, store: CacheStore, local: NamespaceId, shared: NamespaceId) -> None:
        self._store = store
        self._local = local
        self._global = shared

    def _target(self, use_global: Any) -> NamespaceId:
        return self._global if use_global else self._local

    def put(self, key: str, value: Any, ttl: float | None = None, use_global: bool | None = None) -> None:
        """Store `value` (by reference) for `ttl` seconds (None = no expiry; negative/NaN/huge → ValueError)."""
        self._store.put(self._target(use_global), _check_key(key), value, ttl)

    def get(self, key: str, default: Any = None, use_global: bool | None = None) -> Any:
        """The stored value, or `default` if absent or expired."""
        return self._store.get(self._target(use_global), _check_key(key), default)

    def delete(self, key: str, use_global: bool | None = None) -> bool:
        """Remove `key`; True if a live value was there."""
        return self._store.delete(self._target(use_global), _check_key(key))

    def __repr__(self) -> str:
        return f"<influxdb3 cache {'/'.join(self._local[1:])}>"
