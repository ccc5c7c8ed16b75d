"""Publishing lakeflux's persisted tables as Delta Lake tables, one Delta commit per manifest change.

The snapshot manifest stays lakeflux's source of truth; each table's Delta log follows it. After manifest
n commits, every table it changed gets one Delta commit, created with put-if-absent at the next version:
the files n added and those it removed, together, so an outside reader sees the table before or after
the change, never half of it. The commit's commitInfo names manifest n, so publishing again (a retry,
or recovery after a crash at any step) finds it and writes nothing twice.

Requests: one put-if-absent per changed table; a table's newest version is read (one list, one get) only
the first time it is published by this process, after a failed or lost commit, or when another writer
took the version. The heads a publish needs are read 8 tables at a time first (recovery reads every
table's). Every tenth version adds two puts: its checkpoint, then `_last_checkpoint`. A checkpoint
is a reader's shortcut, not part of the commit: one that fails is logged and skipped (readers replay the
JSON commits from the previous one), and a crash between the two puts leaves a complete checkpoint the
pointer does not name yet, which readers that list the log use and the others do without.

Log cleanup (`clean_logs`): once a table's checkpoint and pointer are written, the table is due for cleanup,
which deletes the log files the Delta protocol lets go (delta.expired_log_files: older than the retention
and than the newest checkpoint at least that old). It runs later, from housekeeping, not at checkpoint
time: publishing happens inside a snapshot's swap, where one list and about ten deletes more per
checkpointed table would lengthen every tenth snapshot (all tables checkpoint at once when they are
written alike), while cleanup is never urgent and its failures are only retried. A table stays due until
its cleanup succeeds; after a restart it is due again at its next checkpoint, whose cleanup takes
everything older too. Requests: one list per checkpoint, then one delete per file that goes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import Corrupt, NotFound
from ..model import ColumnKind
from ..store import paths
from ..store.base import ObjectStore
from .delta import (
    CHECKPOINT_INTERVAL,
    LOG_RETENTION_S,
    Checkpoint,
    Commit,
    DataFile,
    LogHead,
    expired_log_files,
    read_head,
    schema_string,
    table_configuration,
)

log = logging.getLogger("lakeflux.tableformat")
# Each lost race for a version means another writer committed one: give up (and retry later) after a few.
_MAX_RACES = 8
# Tables cleaned per `clean_logs` call at most (the others stay due for the next).
CLEAN_TABLES_PER_CALL = 1_000
# Store calls at once when cleaning logs or reading many tables' log heads (each waits on the store).
_IO_THREADS = 8


@dataclass(frozen=True)
class TableChange:
    """What manifest `marker` did to one table (its prefix `root`)."""

    root: str
    columns: dict[str, ColumnKind] | None  # the table's columns now; None when the table is deleted
    live: tuple[DataFile, ...]  # every file of the table in the manifest
    added: tuple[DataFile, ...] = ()  # files this manifest added
    removed: tuple[str, ...] = ()  # keys of the files this manifest removed
    operation: str = "WRITE"


@dataclass
class Publisher:
    """Writes the Delta commits of the tables under one lakeflux node. Thread-safe."""

    store: ObjectStore
    clock_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    checkpoint_interval: int = CHECKPOINT_INTERVAL  # versions between checkpoints; 0: none
    log_retention_s: float | None = LOG_RETENTION_S  # log files younger than this are never deleted; None: none are
    # The newest version of each table's log this process knows of (its own commits, or read).
    _heads: dict[str, LogHead | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Tables due for log cleanup: the newest checkpoint `_last_checkpoint` was pointed at by this process.
    _clean_due: dict[str, int] = field(default_factory=dict)

    @property
    def configuration(self) -> dict[str, str]:
        """The table properties every table's metaData records."""
        return table_configuration(self.log_retention_s)

    def publish(self, marker: int, changes: list[TableChange],
                after_each: Callable[[], None] | None = None) -> int:
        """Give each changed table its Delta commit for manifest `marker`; returns how many were written.

        Returns once every commit is durable (or was found already made). Raises Unavailable when the store
        fails: tables published so far stay published, and calling again with the same arguments finishes
        the rest. `after_each` runs after each table's commit (crash tests).
        """
        written = 0
        with self._lock:
            self._read_heads([c.root for c in changes])
            for change in changes:
                if self._publish_table(marker, change):
                    written += 1
                if after_each is not None:
                    after_each()
        return written

    def version_of(self, root: str) -> int | None:
        """The newest Delta version of the table at `root` this process knows of (its own commits, or read
        at recovery); None when it has no log yet. No store request."""
        with self._lock:
            head = self._heads.get(root)
        return None if head is None else head.version

    def forget(self) -> None:
        """Drop what is known of every log (the next commit reads each table's newest version first)."""
        with self._lock:
            self._heads.clear()

    def _publish_table(self, marker: int, change: TableChange) -> bool:
        for _ in range(_MAX_RACES):
            head = self._head(change.root)
            commit = self._commit_for(marker, change, head)
            if commit is None:
                return False
            version = 0 if head is None else head.version + 1
            key = paths.delta_commit(change.root, version)
            data = commit.to_bytes()
            try:
                created = self.store.put_if_absent(key, data)
            except Exception:
                self._heads.pop(change.root, None)  # the commit may have landed: read the log next time
                raise
            if created:
                if commit.schema is not None:
                    new_head = LogHead(version, marker, commit.schema, commit.configuration)
                else:
                    new_head = LogHead(version, marker, head.schema if head else None,
                                       head.configuration if head else None)
                self._heads[change.root] = new_head
                if self.checkpoint_interval and version and version % self.checkpoint_interval == 0:
                    self._checkpoint(change, new_head, commit.timestamp_ms)
                return True
            self._heads.pop(change.root, None)  # another writer took the version: read it, then go on
        raise Corrupt(f"Delta log {paths.delta_log_prefix(change.root)}: lost the race for a new version "
                      f"{_MAX_RACES} times")

    def _commit_for(self, marker: int, change: TableChange, head: LogHead | None) -> Commit | None:
        """The commit publishing `change`, or None when there is nothing to write."""
        if head is not None and head.marker is not None and head.marker >= marker:
            return None  # published already (by an attempt whose reply was lost, or before a crash)
        schema = schema_string(change.columns) if change.columns is not None else None
        now = self.clock_ms()
        config = self.configuration
        if head is None:
            # The table's first commit: every live file (a lake persisted before publishing started too).
            if schema is None or not change.live:
                return None
            return Commit(change.root, marker, change.operation, now, adds=change.live, schema=schema, first=True,
                          configuration=config)
        live = {f.key for f in change.live}
        adds = tuple(f for f in change.added if f.key in live)
        removes = tuple(k for k in change.removed if k not in live)
        if not adds and not removes:
            return None  # files make a commit; a column nobody persisted yet waits for its first file
        # The metaData goes with a commit when the schema or the table properties changed (a new retention),
        # or when the log's are unknown (read after a restart).
        changed = schema != head.schema or config != head.configuration
        new_schema = schema if schema is not None and changed else None
        return Commit(change.root, marker, change.operation, now, adds=adds, removes=removes, schema=new_schema,
                      configuration=config)

    def _checkpoint(self, change: TableChange, head: LogHead, timestamp_ms: int) -> None:
        """Write the checkpoint of `head.version` (the table's state is `change.live`), then point
        `_last_checkpoint` at it; both durable on return. Failures are logged, never raised."""
        if head.schema is None:
            return  # the log's schema is unknown here: a checkpoint must carry it
        checkpoint = Checkpoint(change.root, head.version, head.schema, change.live, timestamp_ms,
                                head.configuration or {})
        try:
            self.store.put(paths.delta_checkpoint(change.root, head.version), checkpoint.to_parquet())
            self.store.put(paths.delta_last_checkpoint(change.root), checkpoint.pointer())
        except Exception as e:  # a reader's shortcut only: the commit is made, readers replay instead
            log.warning("Delta checkpoint %d of %s not written: %s", head.version, change.root, e)
            return
        self._clean_due[change.root] = head.version

    def cleanup_due(self) -> int:
        """How many tables wait for log cleanup. No store request."""
        with self._lock:
            return len(self._clean_due)

    def clean_logs(self, now_ns: int) -> int:
        """Delete the expired log files (module docstring) of up to CLEAN_TABLES_PER_CALL tables due for
        cleanup, oldest due first, a few tables at once; returns how many files were deleted. Returns once
        those deletes are durable. Never raises: a table whose list or delete failed is logged and stays
        due (the next call tries again; files it deleted stay deleted, oldest first, so the log it leaves
        has no gap). Safe beside `publish`: a checkpoint written meanwhile only makes the table due again."""
        with self._lock:
            due = list(self._clean_due.items())[:CLEAN_TABLES_PER_CALL]
            for root, _ in due:
                del self._clean_due[root]
        if not due or self.log_retention_s is None:
            return 0
        cutoff_ns = now_ns - int(self.log_retention_s * 1e9)
        if len(due) == 1:
            return self._clean_log(due[0][0], due[0][1], cutoff_ns)
        with ThreadPoolExecutor(min(_IO_THREADS, len(due)), thread_name_prefix="delta-clean") as pool:
            return sum(pool.map(lambda item: self._clean_log(item[0], item[1], cutoff_ns), due))

    def _clean_log(self, root: str, until_version: int, cutoff_ns: int) -> int:
        deleted = 0
        try:
            listing = self.store.list(paths.delta_log_prefix(root))
            for key in expired_log_files(root, listing, until_version, cutoff_ns):
                self.store.delete(key)
                deleted += 1
        except Exception as e:
            with self._lock:  # due again (or still: a newer checkpoint is due as it is)
                self._clean_due[root] = max(until_version, self._clean_due.get(root, until_version))
            log.warning("Delta log cleanup of %s stopped after %d deletes (retried at the next housekeeping): %s",
                        root, deleted, e)
        return deleted

    def _head(self, root: str) -> LogHead | None:
        """The newest commit of the table's log (None: no log yet), from memory or read from the store."""
        if root in self._heads:
            return self._heads[root]
        head, keep = self._read_head(root)
        if keep:
            self._heads[root] = head
        return head

    def _read_heads(self, roots: list[str]) -> None:
        """Read the newest commits of the tables not known yet, _IO_THREADS at a time (a restart reads
        every table's: one list and one get each, waiting on the store, not the CPU). Call with the lock."""
        missing = [root for root in dict.fromkeys(roots) if root not in self._heads]
        if len(missing) <= 1:
            return  # `_head` reads it
        with ThreadPoolExecutor(min(_IO_THREADS, len(missing)), thread_name_prefix="delta-head") as pool:
            for root, (head, keep) in zip(missing, pool.map(self._read_head, missing), strict=True):
                if keep:
                    self._heads[root] = head

    def _read_head(self, root: str) -> tuple[LogHead | None, bool]:
        """The newest commit of the table's log read from the store, and whether to keep it in memory."""
        versions = [(seq, m.key) for m in self.store.list(paths.delta_log_prefix(root))
                    if (seq := paths.parse_seq(m.key)) is not None and m.key.endswith(".json")]
        if not versions:
            return None, True
        version, key = max(versions)
        try:
            return read_head(version, self.store.get(key), key), True
        except NotFound:  # deleted under us: read the log again next time
            return LogHead(version, None, None), False


__all__ = ["Publisher", "TableChange"]
