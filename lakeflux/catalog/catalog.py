"""The catalog: databases, tables, columns, triggers and tokens, persisted in the object store.

Persistence is an append-only log of change batches, each committed with put-if-absent at the next
sequence number, plus a checkpoint (the whole state, naming the sequence it includes) rewritten
every CHECKPOINT_EVERY entries. Loading reads the checkpoint and applies every later log entry.
"""

from __future__ import annotations

import copy
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import Corrupt, Fenced, NotFound, Unavailable
from ..store import paths
from ..store.base import ObjectStore
from .names import INTERNAL_DB
from .state import CatalogState, apply_op, state_from_json, state_to_json

CHECKPOINT_EVERY = 100
log = logging.getLogger("lakeflux.catalog")


class Catalog:
    """Thread-safe catalog. Reads see committed state only; `commit` is the one way to change it."""

    def __init__(self, store: ObjectStore, node: str, writer_id: str | None = None) -> None:
        self._store = store
        self._node = node
        # Written into every log entry: a slot holding our own entry is a commit whose response was lost.
        self._writer_id = writer_id or uuid.uuid4().hex
        self._lock = threading.RLock()
        self._state = CatalogState()
        self._listeners: list[Callable[[list[dict[str, Any]]], None]] = []

    # --- loading -----------------------------------------------------------------------------------
    def load(self) -> None:
        """Load checkpoint + later log entries from the store. Returns with the committed state in memory."""
        with self._lock:
            state = CatalogState()
            try:
                state = state_from_json(orjson.loads(self._store.get(paths.catalog_checkpoint(self._node))))
            except NotFound:
                pass
            except (ValueError, KeyError, TypeError) as e:
                raise Corrupt(f"catalog checkpoint {paths.catalog_checkpoint(self._node)} is unreadable: {e}") from e
            for meta in self._store.list(paths.catalog_log_prefix(self._node)):
                seq = paths.parse_seq(meta.key)
                if seq is None or seq <= state.seq:
                    continue
                if seq != state.seq + 1:
                    raise Corrupt(f"catalog log has a gap: expected sequence {state.seq + 1}, found {meta.key}")
                ops = self._read_log(meta.key)
                for op in ops:
                    apply_op(state, op)
                state.seq = seq
            self._state = state
            if state.live_db(INTERNAL_DB) is None:
                self.commit([{"op": "create_database", "db": INTERNAL_DB}])

    def _read_log(self, key: str) -> list[dict[str, Any]]:
        try:
            entry = orjson.loads(self._store.get(key))
            ops = entry["ops"]
            assert isinstance(ops, list)
            return ops
        except (ValueError, KeyError, AssertionError) as e:
            raise Corrupt(f"catalog log entry {key} is unreadable: {e}") from e

    # --- reading -----------------------------------------------------------------------------------
    @property
    def state(self) -> CatalogState:
        """The current committed state. Treat as read-only; it is replaced, never mutated, by commits."""
        return self._state

    def add_listener(self, fn: Callable[[list[dict[str, Any]]], None]) -> None:
        """Call `fn(ops)` after each commit (from the committing thread)."""
        self._listeners.append(fn)

    # --- changing ----------------------------------------------------------------------------------
    def commit(self, ops: list[dict[str, Any]]) -> CatalogState:
        """Validate and durably commit `ops` as one log entry; returns the new state once it is durable.

        Raises the validation error of the first bad op (nothing committed), Fenced if another writer
        took our next log slot, Unavailable if the store failed (the change may still land; retry).
        """
        if not ops:
            return self._state
        with self._lock:
            new = copy.deepcopy(self._state)
            for op in ops:
                apply_op(new, op)
            seq = self._state.seq + 1
            key = paths.catalog_log(self._node, seq)
            data = orjson.dumps({"seq": seq, "writer": self._writer_id, "ops": ops})
            if not self._store.put_if_absent(key, data):
                existing = self._store.get(key)
                if existing != data:
                    self._adopt_lost_commit(key, seq, existing)
            new.seq = seq
            self._state = new
            self._checkpoint(new)
        for fn in self._listeners:
            fn(ops)
        return new

    def _adopt_lost_commit(self, key: str, seq: int, existing: bytes) -> None:
        """Our next slot is taken. If by an earlier commit of ours whose response was lost, apply it (it is
        durable) and raise Unavailable so the caller re-checks its change; else raise Fenced."""
        try:
            entry = orjson.loads(existing)
        except orjson.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or entry.get("writer") != self._writer_id:
            raise Fenced(
                f"fenced: catalog log slot {key} was written by another server with node id {self._node!r}; "
                "this server stops accepting changes"
            )
        adopted = copy.deepcopy(self._state)
        for op in entry["ops"]:
            apply_op(adopted, op)
        adopted.seq = seq
        self._state = adopted
        self._checkpoint(adopted)
        for fn in self._listeners:
            fn(entry["ops"])
        raise Unavailable("the catalog changed while committing (an earlier commit's reply was lost); retry")

    def _checkpoint(self, state: CatalogState) -> None:
        """Rewrite the checkpoint every CHECKPOINT_EVERY entries; the log alone is already durable, so a
        failure here is logged, not raised (the next checkpoint covers it)."""
        if state.seq % CHECKPOINT_EVERY != 0:
            return
        try:
            self._store.put(paths.catalog_checkpoint(self._node), orjson.dumps(state_to_json(state)))
        except Unavailable as e:
            log.warning("catalog checkpoint at %d failed (the log keeps every change): %s", state.seq, e)
