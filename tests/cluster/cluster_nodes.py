"""Several in-process lakeflux nodes of one cluster on one store (a memory store unless told otherwise)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from lakeflux.config import Config
from lakeflux.errors import LakefluxError
from lakeflux.store import paths
from lakeflux.store.base import ObjectStore
from lakeflux.testing.server import InProcessServer

CLUSTER = "c1"
T0 = 1_700_000_000_000_000_000


def node_config(tmp_path: Path, node: str, mode: str = "all", **changes: Any) -> Config:
    """A node of cluster CLUSTER: short flush, catalog sync and heartbeat intervals, auth off."""
    modes = tuple(mode.split(",")) if mode != "all" else ("all",)
    return Config(node_id=node, cluster_id=CLUSTER, modes=modes, object_store="memory",
                  data_dir=tmp_path / node, wal_flush_interval=0.02, without_auth=True,
                  catalog_sync_interval=0.05, heartbeat_interval=0.2).with_changes(**changes)


@contextlib.contextmanager
def running(store: ObjectStore, *configs: Config) -> Iterator[list[InProcessServer]]:
    """Start one in-process server per config, all on `store`; stop them all at the end."""
    servers: list[InProcessServer] = []
    try:
        for config in configs:
            srv = InProcessServer(config, store=store)
            srv.start()
            servers.append(srv)
        yield servers
    finally:
        for srv in reversed(servers):
            srv.stop()


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    """Poll `check` until it returns a truthy value (returned) or raise after `timeout` seconds (a bound
    on liveness, generous for a loaded machine; never a timing assertion)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, LakefluxError) as e:  # not there yet
            last = e
        else:
            if last:
                return last
        time.sleep(0.02)
    raise AssertionError(f"{what} did not hold within {timeout} s; last: {last!r}")


def lines(table: str, start: int, n: int, tag: str = "a", field: str = "v") -> str:
    return "\n".join(f"{table},k={tag} {field}={i}i {T0 + start + i}" for i in range(n))


def count(srv: InProcessServer, db: str, table: str) -> int:
    return int(srv.query(db, f'SELECT count(*) AS n FROM "{table}"')[0]["n"])


def source(srv: InProcessServer, node: str) -> Any:
    """The query source of `node`'s data on `srv` (a follower, or the compacted files for "compactor")."""
    return next(s for s in srv.services.query._sources() if s.node == node)


def compacted_delta_files(store: ObjectStore, db: str, table: str, cluster: str = CLUSTER) -> set[str]:
    """The files of a compacted table's Delta log, its JSON commits replayed (as full keys)."""
    root = paths.compacted_table_prefix(cluster, db, table)
    live: set[str] = set()
    for meta in store.list(paths.delta_log_prefix(root)):
        if not meta.key.endswith(".json") or paths.parse_seq(meta.key) is None:
            continue
        for line in store.get(meta.key).splitlines():
            action = orjson.loads(line)
            if "add" in action:
                live.add(root + action["add"]["path"])
            elif "remove" in action:
                live.discard(root + action["remove"]["path"])
    return live
