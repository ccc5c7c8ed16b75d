"""Store wrappers for tests: inject faults into a real store, or count the calls made to it.

Faults are injected around a real backend, never by patching its internals:

    store = FaultyStore(MemoryStore(), seed=7)
    store.fail_before("put_if_absent", prefix="node0/wal/", times=1)   # request never sent
    store.lose_response("put_if_absent", probability=0.5)              # done, but the caller hears Unavailable
    store.add_latency(0.2, "get", sleep=clock.advance)                 # injected sleep: no real waiting

A lost response is what a timeout or a dropped connection looks like to a caller: the write happened,
the caller does not know it. Code under test must cope (read back, retry with put_if_absent, etc.).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Invalid, Unavailable
from ..store.base import ObjectMeta, ObjectStore

OPERATIONS = ("get", "get_range", "put_if_absent", "put", "copy", "list", "delete", "exists")
FAIL_BEFORE = "fail_before"
LOSE_RESPONSE = "lose_response"
LATENCY = "latency"


@dataclass
class FaultRule:
    """One injected fault: which calls it matches, how often it fires, and what it does.

    `ops` None matches every operation; `prefix` matches the key (or the list prefix) by its start,
    `contains` anywhere in it.
    It fires with `probability` (drawn from the store's seeded random source) and, if `times` is set,
    at most that many times in all; `delay` is the latency added by a LATENCY rule.
    """

    kind: str
    ops: frozenset[str] | None = None
    prefix: str = ""
    probability: float = 1.0
    times: int | None = None
    delay: float = 0.0
    fired: int = field(default=0)
    contains: str = ""  # and the key holds this (e.g. one table's name segment, wherever it sits)

    def matches(self, op: str, key: str) -> bool:
        return ((self.ops is None or op in self.ops) and key.startswith(self.prefix) and self.contains in key
                and not self.exhausted)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


def _ops(ops: str | Iterable[str] | None) -> frozenset[str] | None:
    if ops is None:
        return None
    names = frozenset([ops] if isinstance(ops, str) else ops)
    unknown = names - set(OPERATIONS)
    if unknown:
        raise Invalid(f"unknown store operation(s) {sorted(unknown)}; known: {', '.join(OPERATIONS)}")
    return names


class FaultyStore:
    """An ObjectStore that forwards to `inner` and injects the faults its rules describe.

    `injected` counts faults by (kind, operation); `sleep` (default time.sleep) is what latency calls,
    so tests pass a fake clock's advance function instead and never wait.
    """

    def __init__(
        self, inner: ObjectStore, *, seed: int = 0, sleep: Callable[[float], Any] = time.sleep
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.rules: list[FaultRule] = []
        self.injected: Counter[tuple[str, str]] = Counter()
        self._random = random.Random(seed)
        self._sleep = sleep
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # url_for, datafusion_store and the like are not calls we inject into.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # --- rules -----------------------------------------------------------------------------------
    def add_rule(self, rule: FaultRule) -> FaultRule:
        if not 0.0 <= rule.probability <= 1.0:
            raise Invalid(f"fault probability must be within [0, 1], got {rule.probability}")
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail_before(
        self, ops: str | Iterable[str] | None = None, *, prefix: str = "", probability: float = 1.0,
        times: int | None = None, contains: str = "",
    ) -> FaultRule:
        """Matching calls raise Unavailable without reaching the inner store."""
        return self.add_rule(FaultRule(FAIL_BEFORE, _ops(ops), prefix, probability, times, contains=contains))

    def lose_response(
        self, ops: str | Iterable[str] | None = None, *, prefix: str = "", probability: float = 1.0,
        times: int | None = None,
    ) -> FaultRule:
        """Matching calls run against the inner store, then raise Unavailable instead of returning."""
        return self.add_rule(FaultRule(LOSE_RESPONSE, _ops(ops), prefix, probability, times))

    def add_latency(
        self, seconds: float, ops: str | Iterable[str] | None = None, *, prefix: str = "",
        probability: float = 1.0, times: int | None = None,
    ) -> FaultRule:
        """Matching calls first call the injected sleep function with `seconds`."""
        return self.add_rule(FaultRule(LATENCY, _ops(ops), prefix, probability, times, delay=seconds))

    def clear(self) -> None:
        """Remove every rule (counters are kept)."""
        with self._lock:
            self.rules.clear()

    def _firing(self, op: str, key: str) -> list[FaultRule]:
        """The rules that fire for this call, counted as fired; one random draw per matching rule."""
        firing: list[FaultRule] = []
        with self._lock:
            for rule in self.rules:
                if rule.matches(op, key) and self._random.random() < rule.probability:
                    rule.fired += 1
                    self.injected[(rule.kind, op)] += 1
                    firing.append(rule)
        return firing

    def _call(self, op: str, key: str, call: Callable[[], Any]) -> Any:
        firing = self._firing(op, key)
        for rule in firing:
            if rule.kind == LATENCY:
                self._sleep(rule.delay)
        if any(rule.kind == FAIL_BEFORE for rule in firing):
            raise Unavailable(f"injected fault: {op} {key!r} failed before the request")
        result = call()
        if any(rule.kind == LOSE_RESPONSE for rule in firing):
            raise Unavailable(f"injected fault: {op} {key!r} done but its response was lost")
        return result

    def injected_total(self, kind: str | None = None) -> int:
        """How many faults were injected in all, or of one kind."""
        return sum(n for (k, _), n in self.injected.items() if kind is None or k == kind)

    # --- ObjectStore -----------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        """Inner get, with faults."""
        return self._call("get", key, lambda: self.inner.get(key))

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Inner get_range, with faults."""
        return self._call("get_range", key, lambda: self.inner.get_range(key, start, end))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Inner put_if_absent (same durability), with faults: a lost response means it may have landed."""
        return self._call("put_if_absent", key, lambda: self.inner.put_if_absent(key, data))

    def put(self, key: str, data: bytes) -> None:
        """Inner put (same durability), with faults."""
        self._call("put", key, lambda: self.inner.put(key, data))

    def list(self, prefix: str) -> list[ObjectMeta]:
        """Inner list, with faults (rules match the list prefix)."""
        return self._call("list", prefix, lambda: self.inner.list(prefix))

    def copy(self, src: str, dst: str) -> None:
        """Inner copy (same durability), with faults (matched on `dst`)."""
        self._call("copy", dst, lambda: self.inner.copy(src, dst))

    def delete(self, key: str) -> None:
        """Inner delete (same durability), with faults."""
        self._call("delete", key, lambda: self.inner.delete(key))

    def exists(self, key: str) -> bool:
        """Inner exists, with faults."""
        return self._call("exists", key, lambda: self.inner.exists(key))


class CountingStore:
    """An ObjectStore that forwards to `inner` and counts calls per operation (e.g. PUTs per flush).

    `calls[op]` counts every call, `bytes_written` the payload bytes of put and put_if_absent calls; with
    `record_keys`, `requests` lists each call as (op, key or list prefix; for copy the destination).
    Counts are taken before the call, so failed calls count too.
    """

    def __init__(self, inner: ObjectStore, *, record_keys: bool = False) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: Counter[str] = Counter()
        self.bytes_written = 0
        self.requests: list[tuple[str, str]] = []
        self._record_keys = record_keys
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _count(self, op: str, key: str, written: int = 0) -> None:
        with self._lock:
            self.calls[op] += 1
            self.bytes_written += written
            if self._record_keys:
                self.requests.append((op, key))

    @property
    def puts(self) -> int:
        """put + put_if_absent calls: the object writes a request cost (what S3 bills as PUTs)."""
        return self.calls["put"] + self.calls["put_if_absent"]

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.calls.clear()
            self.bytes_written = 0
            self.requests.clear()

    def get(self, key: str) -> bytes:
        """Inner get, counted."""
        self._count("get", key)
        return self.inner.get(key)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Inner get_range, counted."""
        self._count("get_range", key)
        return self.inner.get_range(key, start, end)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Inner put_if_absent (same durability), counted."""
        self._count("put_if_absent", key, len(data))
        return self.inner.put_if_absent(key, data)

    def put(self, key: str, data: bytes) -> None:
        """Inner put (same durability), counted."""
        self._count("put", key, len(data))
        self.inner.put(key, data)

    def list(self, prefix: str) -> list[ObjectMeta]:
        """Inner list, counted."""
        self._count("list", prefix)
        return self.inner.list(prefix)

    def copy(self, src: str, dst: str) -> None:
        """Inner copy (same durability), counted."""
        self._count("copy", dst)
        self.inner.copy(src, dst)

    def delete(self, key: str) -> None:
        """Inner delete (same durability), counted."""
        self._count("delete", key)
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        """Inner exists, counted."""
        self._count("exists", key)
        return self.inner.exists(key)
