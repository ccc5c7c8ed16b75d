"""The catalog: databases, tables, columns, triggers and tokens, persisted in the object store.

Persistence is an append-only log of change batches, each committed with put-if-absent at the next
sequence number, plus a checkpoint (the whole state, naming the sequence it includes) rewritten
every CHECKPOINT_EVERY entries. Loading reads the checkpoint and applies every later log entry.

Every node of a cluster shares one catalog (under the cluster's prefix). A node that loses a slot to
another node's entry applies it, checks its own change again against the result and commits at the next
slot; `sync` applies other nodes' changes between commits (a cluster node calls it periodically). Log
entries are never removed, so a node always finds every entry after its state by probing the next slot.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import Corrupt, LakefluxError, NotFound, Unavailable
from ..store import paths
from ..store.base import ObjectStore
from .names import INTERNAL_DB
from .state import CatalogState, apply_op, state_from_json, state_to_json

CHECKPOINT_EVERY = 100
# Slots a commit may lose in a row to other nodes' changes before it gives up (Unavailable: retry).
COMMIT_ATTEMPTS = 50
Ops = list[dict[str, Any]]
log = logging.getLogger("lakeflux.catalog")


class Catalog:
    """Thread-safe catalog. Reads see committed state only; `commit` is the one way to change it."""

    def __init__(self, store: ObjectStore, cluster: str, writer_id: str | None = None) -> None:
        self._store = store
        # The prefix of the catalog: the cluster id, which for a single node is its node id.
        self._cluster = cluster
        # Written into every log entry: a slot holding our own entry is a commit whose response was lost.
        self._writer_id = writer_id or uuid.uuid4().hex
        self._lock = threading.RLock()
        self._state = CatalogState()
        self._listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self._sync_listeners: list[Callable[[list[dict[str, Any]]], None]] = []

    # --- loading -----------------------------------------------------------------------------------
    def load(self) -> None:
        """Load checkpoint + later log entries from the store. Returns with the committed state in memory."""
        with self._lock:
            state = CatalogState()
            try:
                state = state_from_json(orjson.loads(self._store.get(paths.catalog_checkpoint(self._cluster))))
            except NotFound:
                pass
            except (ValueError, KeyError, TypeError) as e:
                raise Corrupt(f"catalog checkpoint {paths.catalog_checkpoint(self._cluster)} is unreadable: {e}") from e
            for meta in self._store.list(paths.catalog_log_prefix(self._cluster)):
                seq = paths.parse_seq(meta.key)
                if seq is None or seq <= state.seq:
                    continue
                if seq != state.seq + 1:
                    raise Corrupt(f"catalog log has a gap: expected sequence {state.seq + 1}, found {meta.key}")
                ops = self._read_log(meta.key)
                for op in ops:
                    apply_op(state, op)
                state.seq = seq
            self._state = state.frozen()
            # Another node of the cluster may create it at the same moment: derived from the newest state.
            self.commit(lambda now: [] if now.live_db(INTERNAL_DB) is not None else [
                {"op": "create_database", "db": INTERNAL_DB}])

    def _read_log(self, key: str) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = self._decode(key, self._store.get(key))["ops"]
        return ops

    # --- reading -----------------------------------------------------------------------------------
    @property
    def state(self) -> CatalogState:
        """The current committed state. Treat as read-only; it is replaced, never mutated, by commits."""
        return self._state

    def add_listener(self, fn: Callable[[list[dict[str, Any]]], None]) -> None:
        """Call `fn(ops)` after each commit (from the committing thread)."""
        self._listeners.append(fn)

    def add_sync_listener(self, fn: Callable[[list[dict[str, Any]]], None]) -> None:
        """Call `fn(ops)` for each change another writer (another node of the cluster) committed, once this
        catalog has applied it (from the thread that found it: `sync` or a `commit` that lost its slot)."""
        self._sync_listeners.append(fn)

    # --- following other writers -------------------------------------------------------------------
    def sync(self) -> int:
        """Apply every change committed since ours (by other nodes of the cluster); returns how many.

        Probes the next log sequence numbers (one GET each) instead of listing. Returns once the changes
        are applied in memory; their listeners have run.
        """
        with self._lock:
            found = self._catch_up()
        self._notify(found)
        return len(found)

    def _catch_up(self) -> list[tuple[bool, list[dict[str, Any]]]]:
        """Apply log entries after our state, in order, until the next slot is empty; returns (ours, ops)
        of each. Call with the lock held. An entry that does not apply is Corrupt: every committed entry
        was validated against exactly the state before it."""
        found = []
        state: CatalogState | None = None
        while True:
            seq = (state or self._state).seq + 1
            key = paths.catalog_log(self._cluster, seq)
            try:
                raw = self._store.get(key)
            except NotFound:
                break
            entry = self._decode(key, raw)
            if state is None:
                state = self._state.changing()
            try:
                for op in entry["ops"]:
                    apply_op(state, op)
            except LakefluxError as e:
                raise Corrupt(f"catalog log entry {key} does not apply to the state before it: {e}") from e
            state.seq = seq
            found.append((entry.get("writer") == self._writer_id, entry["ops"]))
        if state is not None:
            self._state = state.frozen()
        return found

    def _notify(self, found: list[tuple[bool, list[dict[str, Any]]]]) -> None:
        for ours, ops in found:
            for fn in self._listeners:
                fn(ops)
            if not ours:
                for sync_fn in self._sync_listeners:
                    sync_fn(ops)

    # --- changing ----------------------------------------------------------------------------------
    def commit(self, change: Ops | Callable[[CatalogState], Ops]) -> CatalogState:
        """Validate and durably commit a change as one log entry; returns the new state once it is durable.

        `change` is a list of ops, or a function deriving them from the state they apply to (called again
        on the newer state each time the slot is lost). A node that finds its slot taken (by another node
        of the cluster, or by an earlier commit of ours whose reply was lost) applies that entry and every
        later one, validates the change again against the result and retries at the next slot.

        Raises the validation error of the first bad op against the newest state (nothing committed; a
        change refused against this node's state is checked again after applying any newer entries): after
        another node's change, e.g. a second type for one column, that is a Conflict. Raises Unavailable if the store failed (the
        change may still land: a retry finds it) or the slot was lost COMMIT_ATTEMPTS times in a row.
        """
        found: list[tuple[bool, list[dict[str, Any]]]] = []
        ops: Ops = []
        try:
            with self._lock:
                for _ in range(COMMIT_ATTEMPTS):
                    ops = change(self._state) if callable(change) else change
                    if not ops:
                        return self._state
                    new = self._state.changing()
                    try:
                        for op in ops:
                            apply_op(new, op)
                    except LakefluxError:
                        # Checked against what this node knew: another node's newer change may settle it
                        # (the database it names was created there). Final only once nothing is newer.
                        newer = self._catch_up()
                        if not newer:
                            raise
                        found.extend(newer)
                        continue
                    seq = self._state.seq + 1
                    key = paths.catalog_log(self._cluster, seq)
                    data = orjson.dumps({"seq": seq, "writer": self._writer_id, "ops": ops})
                    if self._store.put_if_absent(key, data) or self._store.get(key) == data:
                        new.seq = seq
                        self._state = new.frozen()
                        self._checkpoint(new)
                        break
                    # Another writer's entry (or our own lost one) holds the slot: catch up, then retry.
                    found.extend(self._catch_up())
                else:
                    raise Unavailable(f"the catalog kept changing while committing ({COMMIT_ATTEMPTS} attempts); "
                                      "retry")
        finally:
            self._notify(found)
        for fn in self._listeners:
            fn(ops)
        return self._state

    def _decode(self, key: str, raw: bytes) -> dict[str, Any]:
        try:
            entry = orjson.loads(raw)
            if not isinstance(entry, dict) or not isinstance(entry.get("ops"), list):
                raise ValueError("not a catalog log entry")
            return entry
        except ValueError as e:
            raise Corrupt(f"catalog log entry {key} is unreadable: {e}") from e

    def _checkpoint(self, state: CatalogState) -> None:
        """Rewrite the checkpoint every CHECKPOINT_EVERY entries (the node committing that entry does); the
        log alone is already durable, so a failure here is logged, not raised (the next checkpoint covers
        it). A checkpoint names its sequence: one older than the log's end costs a longer load, nothing else."""
        if state.seq % CHECKPOINT_EVERY != 0:
            return
        try:
            self._store.put(paths.catalog_checkpoint(self._cluster), orjson.dumps(state_to_json(state)))
        except Unavailable as e:
            log.warning("catalog checkpoint at %d failed (the log keeps every change): %s", state.seq, e)
