"""Catalog changes another node of the cluster committed, carried out on this node's own data."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..buffer.manifest import PersistedFile
from ..buffer.persist import Persister
from ..buffer.tables import BufferedTables

log = logging.getLogger("lakeflux.cluster")


class RemoteDeletes:
    """A database or table deleted through another node leaves this node's data as it would have left
    through this one: its buffered rows at once, its persisted files to the trash until the deletion's
    hard-delete time (`purge_at_ns` of the op; None keeps them; ops of earlier versions use the default).
    """

    def __init__(self, tables: BufferedTables, persister: Persister | None, default_purge_s: float,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._tables = tables
        self._persister = persister
        self._default_purge_s = default_purge_s
        self._clock = clock

    def __call__(self, ops: list[dict[str, Any]]) -> None:
        """Blocking; returns once the files are moved (durable)."""
        for op in ops:
            doomed: Callable[[PersistedFile], bool]
            if op.get("op") == "delete_database":
                db = op["db"]
                self._tables.drop_database(db)
                doomed = _of_database(db)
            elif op.get("op") == "delete_table":
                db, table = op["db"], op["table"]
                self._tables.drop_table(db, table)
                doomed = _of_table(db, table)
            else:
                continue
            if self._persister is None:
                continue
            now = self._clock()
            purge_at = op["purge_at_ns"] if "purge_at_ns" in op else now + int(self._default_purge_s * 1e9)
            if purge_at is not None and purge_at <= now:
                self._persister.remove_files(doomed)
            else:
                self._persister.move_to_trash(doomed, purge_at)


def _of_database(db: str) -> Callable[[PersistedFile], bool]:
    return lambda f: f.db == db


def _of_table(db: str, table: str) -> Callable[[PersistedFile], bool]:
    return lambda f: f.db == db and f.table == table
