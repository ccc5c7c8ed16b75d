"""The one place that builds and wires every part of a running server."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
from aiohttp import web

from ..buffer import WriteBuffer
from ..buffer.persist import Persister
from ..buffer.viewlock import ViewLock
from ..buffer.writebuffer import SnapshotPolicy
from ..catalog import INTERNAL_DB, Catalog
from ..cluster import ClusterNode, NodeRecord, Registry
from ..cluster.changes import RemoteDeletes
from ..cluster.compactor import Compactor, seals
from ..cluster.follower import Followers
from ..cluster.relay import Relay, WalFloor
from ..cluster.view import CompactedView
from ..config import Config
from ..engine.runtime import Engine
from ..engine.specs import PluginType, parse_plugin_types
from ..errors import NotAllowed, Unavailable
from ..influxql.executor import InfluxQL
from ..query.priority import lower_this_thread
from ..query.session import QueryEngine, QueryLimits
from ..query.sources import TableSource
from ..store import open_store
from ..store.base import ObjectStore
from ..wal import Wal
from .admission import QuerySlots, WriteBytes
from .engine_ports import BufferWriteSink, EngineQueryRunner, EngineWalListener, WalSegmentSource

log = logging.getLogger("lakeflux.server")
# Seconds between a query node's looks at the node registry for ingest nodes to follow (one listing each).
DISCOVERY_INTERVAL = 2.0


@dataclass
class Services:
    config: Config
    store: ObjectStore
    catalog: Catalog
    wal: Wal
    buffer: WriteBuffer
    query: QueryEngine
    engine: Engine
    plugin_writes: BufferWriteSink
    # This node in its cluster (a single node is a cluster of one): registry record and background jobs.
    cluster: ClusterNode
    # The cluster compactor, on a node of a cluster in compact mode.
    compactor: Compactor | None = None
    # Queries and other blocking work run here: Arrow and DataFusion release the GIL.
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="lakeflux-work"))
    influxql: InfluxQL | None = None
    # Write bodies parse here, one thread per core: the native scanner releases the GIL, so bodies parse
    # in parallel, and a burst of queries on `pool` cannot hold writes back behind them.
    parse_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(
        os.cpu_count() or 1, thread_name_prefix="lakeflux-parse"))
    # Bytes of write bodies between reading and answering (--max-write-bytes-in-flight).
    write_bytes: WriteBytes = field(default_factory=lambda: WriteBytes(None))
    # Queries (HTTP SQL and InfluxQL) run here, one thread each from planning to their last byte; a query
    # takes one of `query_slots` first, so queries never wait for a thread and never take `pool`'s threads
    # (configuration, tokens), the parsers' or the WAL's (--max-concurrent-queries).
    query_slots: QuerySlots = field(default_factory=lambda: QuerySlots(Config.max_concurrent_queries))
    query_pool: ThreadPoolExecutor = field(default_factory=lambda: query_pool(Config.max_concurrent_queries))

    @property
    def runs_triggers(self) -> bool:
        """Whether this node runs the processing engine's triggers (the process role)."""
        return self.config.has_mode("process")

    async def run_on_current_catalog(self, fn):  # type: ignore[no-untyped-def]
        """`run_blocking(fn)` for a change checked against the catalog as this node knows it (a trigger's):
        in a cluster, the other nodes' newer catalog changes are applied first (one GET when there are none),
        so a database created through another node a moment ago is found."""
        def current():  # type: ignore[no-untyped-def]
            if self.config.cluster_id is not None:
                self.catalog.sync()
            return fn()

        return await self.run_blocking(current)

    async def run_blocking(self, fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def run_parse(self, fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self.parse_pool, fn, *args)

    async def run_query(self, fn, *args):  # type: ignore[no-untyped-def]
        """`fn(*args)` on the query pool under a query slot (503 when none is free)."""
        self.query_slots.take()

        def work():  # type: ignore[no-untyped-def]
            try:
                return fn(*args)
            finally:  # given back by the thread: a slot is free only once its thread is
                self.query_slots.give_back()

        try:
            future = asyncio.get_running_loop().run_in_executor(self.query_pool, work)
        except RuntimeError:  # the pool is shut down
            self.query_slots.give_back()
            raise Unavailable("server is shutting down") from None
        return await future


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def build_services(config: Config, store: ObjectStore | None = None) -> Services:
    """Open the store, load the catalog and replay the WAL; blocking, call before serving."""
    store = store if store is not None else open_store(config)
    writer_id = f"{config.node_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    registry = Registry(store, config.cluster, NodeRecord(
        node_id=config.node_id, modes=config.modes, address=config.address, started_ns=time.time_ns(),
        heartbeat_ns=0, heartbeat_interval_s=config.heartbeat_interval, process=writer_id))
    if config.cluster_id is not None:
        # A second live process with this node id is refused before it touches anything (its recovery would
        # clear the snapshot the first one is staging); a single node keeps the takeover by fencing.
        registry.check_not_running()
    catalog = Catalog(store, config.cluster, writer_id=writer_id)
    catalog.load()
    wal = Wal(store, config.node_id, writer_id=writer_id)
    buffer = WriteBuffer(catalog, wal, flush_interval=config.wal_flush_interval, flush_size=config.wal_flush_size,
                         max_pending_writes=config.wal_max_write_buffer_size)
    if not config.has_mode("ingest"):
        buffer.refusal = NotAllowed(
            f"node {config.node_id!r} runs in mode {','.join(config.modes)}: it does not accept writes; send them "
            "to a node in ingest mode (lakeflux show nodes)")
    lock = ViewLock()
    persister = Persister(store, config.node_id, catalog, buffer.tables, wal, lock,
                          wal_segments_to_keep=config.snapshotted_wal_files_to_keep,
                          delta_log_retention_s=config.delta_log_retention)
    covered = persister.recover()
    buffer.persister = persister
    buffer.snapshot_policy = SnapshotPolicy(
        segments=snapshot_segments(config),
        buffered_bytes=config.snapshot_memory_bytes, age=config.gen1_duration)
    replayed = buffer.recover(after=covered, fail_on_error=config.wal_replay_fail_on_error)
    log.info("replayed %d WAL segments; next segment %d", replayed, buffer.next_seq)
    cluster = ClusterNode(registry, config.heartbeat_interval)
    relay: Relay | None = None
    if config.cluster_id is not None and config.has_mode("process"):
        # WAL triggers here read every ingest node's segments (this node's too) through the relay.
        relay = Relay(store, config.node_id, catalog)
        relay.recover()
    followers: Followers | None = None
    view: CompactedView | None = None
    if config.cluster_id is not None:
        # Queries here read the compactor's files beneath the nodes' own; an ingest node retires the files the
        # compactor absorbed as its view switches to them (cluster/view.py).
        view = CompactedView(store, config.cluster, catalog, ViewLock(),
                             persister=persister if config.has_mode("ingest") else None)
        cluster.add_job("compacted-view", min(config.heartbeat_interval, DISCOVERY_INTERVAL), view.advance,
                        at_start=True)
    if config.cluster_id is not None and (config.has_mode("query") or config.has_mode("process")):
        # Queries here (a process node's plugins' too) read every ingest node's data, found in the registry (at
        # start, then every 2 s).
        followers = Followers(store, catalog, registry, config.replication_interval, relay=relay, view=view)
        cluster.add_job("discover-nodes", min(config.heartbeat_interval, DISCOVERY_INTERVAL), followers.discover,
                        at_start=True, stop=followers.stop)
        catalog.add_listener(followers.catalog_changed)
    compactor: Compactor | None = None
    if config.cluster_id is not None and config.has_mode("compact"):
        compactor = Compactor(store, config.cluster, config.node_id, writer_id, catalog, registry,
                              cleanup_wait_s=config.compaction_cleanup_wait, row_limit=config.compaction_row_limit,
                              delta_log_retention_s=config.delta_log_retention)
        cluster.add_job("compactor", config.compaction_check_interval, compactor.run_once)
    engine_ref: list[Engine] = []
    query = QueryEngine(catalog, buffer.tables, persister=persister, lock=lock, query_log_size=config.query_log_size,
                        limits=query_limits(config),
                        remote_sources=_remote_sources(view, followers),
                        remote_lock=view.lock if view is not None else None,
                        system_tables=lambda db: {**_system_tables(engine_ref[0], catalog, registry, db),
                                                  "parquet_files": persister.parquet_files(db)})
    plugin_writes = BufferWriteSink(buffer)
    engine = Engine(
        catalog=catalog, store=store, node=config.node_id, writer=plugin_writes, queries=EngineQueryRunner(query),
        segments=relay if relay is not None else WalSegmentSource(wal, buffer), plugin_dir=config.plugin_dir, venv_dir=config.virtual_env,
        allowed_types=_allowed_types(config), plugin_timeout_s=config.plugin_timeout,
        plugin_repo=config.plugin_repo, wal_backlog_limit=config.plugin_wal_backlog_limit,
    )
    engine_ref.append(engine)
    # Deletions through another node of the cluster remove this node's rows and files of what they delete;
    # trigger changes start, restart or stop the triggers here (on a node that runs them).
    catalog.add_sync_listener(RemoteDeletes(buffer.tables, persister, config.hard_delete_default_duration))
    if config.has_mode("process"):
        catalog.add_sync_listener(engine.catalog_synced)
    if config.cluster_id is not None:
        cluster.add_job("catalog-sync", config.catalog_sync_interval, catalog.sync)
    # Snapshots trim the WAL, but never past a segment a WAL trigger has not finished (at-least-once): in a
    # cluster, this node's own triggers' or any process node's.
    persister.wal_floor = engine.min_wal_cursor
    if relay is not None:
        relay.notify = engine.segment_committed
        own_relay = relay
        persister.wal_floor = lambda: own_relay.floor(engine.min_wal_cursor()).get(config.node_id)
        def publish_floor() -> None:
            own_relay.publish(engine.min_wal_cursor())

        def stop_relay() -> None:
            publish_floor()  # the triggers' last positions, for the ingest nodes while this node is down
            own_relay.stop()

        cluster.add_job("relay-floor", config.heartbeat_interval, publish_floor, stop=stop_relay)
        # This node's own segments since the relay last took one (a crash in between), then its new ones.
        relay.start(wal if config.has_mode("ingest") else None)
        if config.has_mode("ingest"):
            buffer.add_listener(relay)
    else:
        # Registered after the replay: replayed segments reach WAL triggers through their cursors instead.
        buffer.add_listener(EngineWalListener(engine.segment_committed))
    if config.cluster_id is not None and config.has_mode("ingest"):
        persister.wal_floor = WalFloor(store, registry, wal, persister.wal_floor, config.plugin_wal_backlog_limit)
        # With a compactor in the cluster, snapshots seal their files so it can take them (cluster/compactor.py).
        persister.seal = seals(registry)
    services = Services(config=config, store=store, catalog=catalog, wal=wal, buffer=buffer, query=query,
                        engine=engine, plugin_writes=plugin_writes,
                        cluster=cluster, compactor=compactor,
                        write_bytes=WriteBytes(config.max_write_bytes_in_flight),
                        query_slots=QuerySlots(config.max_concurrent_queries),
                        query_pool=query_pool(config.max_concurrent_queries))
    from .databases import ServerDatabases  # databases imports this module: resolve at call time

    services.influxql = InfluxQL(catalog, query, admin=ServerDatabases(services))
    return services


def _remote_sources(view: CompactedView | None, followers: Followers | None) -> Callable[[], list[TableSource]] | None:
    """What this node's queries read besides its own data: the compacted files and every followed node's."""
    if view is None:
        return None
    if followers is None:
        return lambda: [view]
    return lambda: [view, *followers.sources()]


def query_pool(threads: int) -> ThreadPoolExecutor:
    """The query threads: at the query priority (query/priority.py), so writes keep the CPU they need."""
    return ThreadPoolExecutor(threads, thread_name_prefix="lakeflux-query", initializer=lower_this_thread)


def query_limits(config: Config) -> QueryLimits:
    """The query engine's limits from `config` (a query's share of the pool: the pool / concurrent queries)."""
    pool = config.exec_mem_pool_bytes
    return QueryLimits(timeout=config.query_timeout, memory_bytes=pool,
                       memory_text=f"--exec-mem-pool-bytes, {pool} bytes for all running queries",
                       function_bytes=pool // max(1, config.max_concurrent_queries),
                       function_text="--exec-mem-pool-bytes / --max-concurrent-queries")


def snapshot_segments(config: Config) -> int:
    """WAL segments per snapshot: `--wal-snapshot-size`, else one gen1 window's worth of flush intervals."""
    if config.wal_snapshot_size:
        return config.wal_snapshot_size
    return max(1, round(config.gen1_duration / max(config.wal_flush_interval, 1e-3)))


def _allowed_types(config: Config) -> frozenset[PluginType] | None:
    """`--restrict-plugin-triggers-to`: None (all allowed) when not given."""
    if not config.restrict_plugin_triggers_to:
        return None
    return parse_plugin_types(",".join(config.restrict_plugin_triggers_to))


def _system_tables(engine: Engine, catalog: Catalog, registry: Registry, db: str) -> dict[str, pa.Table]:
    """The engine's system tables, plus `system.tokens` (names only, never digests) and `system.nodes` (the
    cluster's node registry) in `_internal`."""
    tables = engine.system_tables(db)
    if db == INTERNAL_DB:
        from .tokens import tokens_table  # tokens imports services: resolve at call time

        tables = {**tables, "tokens": tokens_table(catalog.state), "nodes": registry.table()}
    return tables
