"""The node registry: one record per node of a cluster under `<cluster>/nodes/`, so every node (and
`lakeflux show nodes`) knows which nodes exist, what they do, where they answer and whether they are alive.

A record is rewritten in place (`put`) at start, at every heartbeat and at a clean stop. Nothing relies on it
for correctness: data is found under each node's own prefix. A process starting with the id of a node whose
record shows it running, and that answers at its address, is refused (`check_not_running`); two processes
that start at the same moment are still kept apart by WAL fencing. Records stay after a node stops, because
its data stays too: a node that left for good is removed with `Registry.forget`.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass

import orjson
import pyarrow as pa

from ..errors import Conflict, Corrupt, NotFound
from ..store import paths
from ..store.base import ObjectStore
from ..versioned import decode_versioned

log = logging.getLogger("lakeflux.cluster")
FORMAT_VERSION = 1
# A running node whose heartbeat is older than this many intervals shows as unresponsive.
MISSED_HEARTBEATS = 3
RUNNING, STOPPED, UNRESPONSIVE = "running", "stopped", "unresponsive"


def answers(address: str, timeout: float = 2.0) -> bool:
    """Whether a server answers HTTP at `address` (any status counts: auth may be on)."""
    try:
        with urllib.request.urlopen(f"{address}/health", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class NodeRecord:
    """What a node says about itself. Times are ns since the epoch; `process` tells restarts apart."""

    node_id: str
    modes: tuple[str, ...]
    address: str
    started_ns: int
    heartbeat_ns: int
    heartbeat_interval_s: float
    process: str
    stopped: bool = False

    def to_bytes(self) -> bytes:
        return orjson.dumps({"version": FORMAT_VERSION, **asdict(self)})

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> NodeRecord:
        return decode_versioned(data, FORMAT_VERSION, "node record", key,
                                lambda d: cls(**{**d, "modes": tuple(d["modes"])}))

    def state(self, now_ns: int) -> str:
        """running, stopped, or unresponsive (no heartbeat for MISSED_HEARTBEATS intervals)."""
        if self.stopped:
            return STOPPED
        silent_s = (now_ns - self.heartbeat_ns) / 1e9
        return UNRESPONSIVE if silent_s > MISSED_HEARTBEATS * self.heartbeat_interval_s else RUNNING

    def has_mode(self, mode: str) -> bool:
        return "all" in self.modes or mode in self.modes


class Registry:
    """Reads the cluster's records and keeps this node's own up to date."""

    def __init__(self, store: ObjectStore, cluster: str, record: NodeRecord,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self.cluster = cluster
        self.record = record
        self._clock = clock

    def heartbeat(self, *, stopped: bool = False) -> None:
        """Rewrite this node's record with the current time; returns once it is durable."""
        self.record = NodeRecord(**{**asdict(self.record), "heartbeat_ns": self._clock(), "stopped": stopped})
        self.store.put(paths.node_record(self.cluster, self.record.node_id), self.record.to_bytes())

    def check_not_running(self, alive: Callable[[str], bool] | None = None) -> None:
        """Refuse to start a second process with this node id: raise Conflict if this node's record says
        another process runs it (not stopped, a heartbeat within MISSED_HEARTBEATS intervals) and that
        process answers at its address (`alive(address)`, default: any HTTP answer from /health). A record
        naming this process's own address is a crashed predecessor's: this process holds that address now.
        Blocking (one GET and, rarely, one HTTP probe)."""
        try:
            previous = NodeRecord.from_bytes(self.store.get(paths.node_record(self.cluster, self.record.node_id)),
                                             self.record.node_id)
        except (NotFound, Corrupt):
            return
        if previous.process == self.record.process or previous.state(self._clock()) != RUNNING:
            return
        if previous.address == self.record.address or not (alive or answers)(previous.address):
            return
        raise Conflict(
            f"node {previous.node_id!r} of cluster {self.cluster!r} is already running at {previous.address} (its "
            f"last heartbeat was {(self._clock() - previous.heartbeat_ns) / 1e9:.0f} s ago): two processes with one "
            "node id would fence each other; stop that one first, or give this one another --node-id")

    def nodes(self, cache: dict[str, NodeRecord] | None = None) -> list[NodeRecord]:
        """Every registered node, ordered by node id; unreadable records are logged and left out. With `cache`
        (object key -> record, kept by the caller between calls), only records not in it are read: one
        listing, and a GET per new node (heartbeats and states in cached records are as old as the cache)."""
        found = []
        listed = set()
        for meta in self.store.list(paths.node_registry_prefix(self.cluster)):
            if not meta.key.endswith(".json"):
                continue
            listed.add(meta.key)
            if cache is not None and meta.key in cache:
                found.append(cache[meta.key])
                continue
            try:
                record = NodeRecord.from_bytes(self.store.get(meta.key), meta.key)
            except NotFound:
                continue  # forgotten since the listing
            except Corrupt as e:
                log.error("%s", e)
                continue
            found.append(record)
            if cache is not None:
                cache[meta.key] = record
        if cache is not None:
            for key in [k for k in cache if k not in listed]:
                del cache[key]
        return sorted(found, key=lambda r: r.node_id)

    def record_of(self, node_id: str) -> NodeRecord | None:
        """The registry record of `node_id` (one GET); None when there is none or it is unreadable (logged)."""
        key = paths.node_record(self.cluster, node_id)
        try:
            return NodeRecord.from_bytes(self.store.get(key), key)
        except NotFound:
            return None
        except Corrupt as e:
            log.error("%s", e)
            return None

    def forget(self, node_id: str) -> None:
        """Remove a node's record (a node that left the cluster for good). Durable on return."""
        self.store.delete(paths.node_record(self.cluster, node_id))

    def table(self, now_ns: int | None = None) -> pa.Table:
        """`system.nodes`: one row per registered node."""
        now = self._clock() if now_ns is None else now_ns
        nodes = self.nodes()
        return pa.table({
            "node_id": pa.array([n.node_id for n in nodes], pa.string()),
            "mode": pa.array([",".join(n.modes) for n in nodes], pa.string()),
            "address": pa.array([n.address for n in nodes], pa.string()),
            "state": pa.array([n.state(now) for n in nodes], pa.string()),
            "started_at": pa.array([n.started_ns for n in nodes], pa.timestamp("ns")),
            "heartbeat_at": pa.array([n.heartbeat_ns for n in nodes], pa.timestamp("ns")),
            "this_node": pa.array([n.node_id == self.record.node_id for n in nodes], pa.bool_()),
        })
