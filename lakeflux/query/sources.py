"""Where a query finds a table's rows: one source per node whose data it reads.

A single node reads only its own data (`LocalSource`: its snapshot manifest's files plus its buffered WAL
rows). A query node of a cluster reads every ingest node's as well (`lakeflux.cluster.follower`): for each,
the files of the newest manifest it knows of plus the rows of the WAL segments after it that it has read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from ..buffer.manifest import PersistedFile
from ..buffer.persist import Persister
from ..buffer.tables import BufferedTables
from ..errors import Unavailable
from ..store.base import ObjectStore

T = TypeVar("T")


class SwappedAway(Unavailable):
    """A persisted file of another node was gone when the query read it: that node replaced it (a snapshot
    compacted it away) after this node planned with the manifest naming it. The query engine runs the query
    again on the newer manifest; past the first batch it cannot, and the client retries (HTTP 503)."""


class TableSource(Protocol):
    """One node's rows of every table, as of one consistent moment per capture."""

    node: str
    # Its persisted files are read through this store (None: the node has no persisted files).
    store: ObjectStore | None
    # True when the node's table prefixes hold exactly the files `capture` names while the query runs (this
    # node's own, swapped under the query's view lock): a query may list a whole prefix. Otherwise it reads
    # the named files one by one.
    listing: bool

    def capture(self, db: str, table: str, buffered: Callable[[BufferedTables], T]) -> tuple[list[PersistedFile], T]:
        """The table's persisted files and `buffered(its buffered rows)`, both as of one moment."""
        ...

    def refresh(self) -> None:
        """Catch up with the node's newest snapshot manifest now (a file the query needed was swapped away).
        Blocking; returns once the newer manifest, if any, is in use."""
        ...


class LocalSource:
    """This node's own rows: consistent under the query engine's view lock, which the caller holds."""

    listing = True

    def __init__(self, tables: BufferedTables, persister: Persister | None) -> None:
        self.tables = tables
        self.persister = persister
        self.node = persister.node if persister is not None else ""
        self.store = persister.store if persister is not None else None

    def capture(self, db: str, table: str, buffered: Callable[[BufferedTables], T]) -> tuple[list[PersistedFile], T]:
        files = self.persister.manifest.files_of(db, table) if self.persister is not None else []
        return files, buffered(self.tables)

    def refresh(self) -> None:
        """Nothing to do: this node's files change only under the view lock the query holds."""
