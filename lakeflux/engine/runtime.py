"""The processing engine: trigger lifecycle, WAL fan-out, request dispatch, logs and housekeeping.

The server builds one `Engine` and wires it (server/services.py):

- `segment_committed(CommittedSegment)` is called after every WAL commit; it only enqueues.
- `start()` after the WAL replay and once writes are accepted: loads plugin logs, starts every
  enabled trigger (a failure is logged as "failed to start trigger at boot; continuing in degraded
  state"), and a housekeeping thread that persists logs and sweeps the cache.
- `create_trigger` / `update_trigger` / `enable_trigger` / `disable_trigger` / `delete_trigger`
  check, commit to the catalog, then start or stop the running trigger.
- `request_trigger(path)` finds the trigger behind `/api/v3/engine/<path>`; its `handle` runs on
  `request_pool`, which no other trigger uses.
- `stop()` interrupts running calls, stops every trigger and persists the logs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..catalog import Catalog, TriggerDef
from ..errors import Conflict, Invalid, LakefluxError
from ..model import SYSTEM_CLOCK, Clock
from ..store.base import ObjectStore
from .cache import SWEEP_INTERVAL_S, CacheStore
from .cursors import CursorStore
from .execution import Ports
from .github import PluginSource, is_gh
from .lifecycle import (
    check_arguments,
    check_bool,
    check_trigger_name,
    normalise_error_behavior,
    require_trigger,
    validate_definition,
)
from .logs import PluginLogs
from .plugin import prepare_plugin_environment
from .pluginfiles import PLUGIN_FILES, plugin_files_table
from .ports import CommittedSegment, QueryRunner, WriteSink
from .specs import PluginType, TriggerSpec
from .stats import EngineStats, Family, WalLagSample
from .system_tables import WalLagRow, engine_system_tables
from .timer import SYSTEM_TIMER, Timer
from .triggers import (
    RequestTrigger,
    RunningTrigger,
    ScheduleTrigger,
    SegmentSource,
    TriggerServices,
)
from .waltrigger import DeliveryLimits, Lag, WalTrigger

log = logging.getLogger("lakeflux.engine")

BOOT_FAILURE = "failed to start trigger at boot; continuing in degraded state"
LOG_FLUSH_INTERVAL_S = 1.0
# WAL a lagging trigger may hold back before it skips its oldest segments (`--plugin-wal-backlog-limit`).
DEFAULT_WAL_BACKLOG_LIMIT = 2**30
# How often the housekeeping thread checks lagging triggers against the WAL backlog limit.
BACKLOG_CHECK_INTERVAL_S = 5.0
_UNSET: Any = object()


class Engine:
    """Owns every running trigger of this server."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        store: ObjectStore | None,
        node: str,
        writer: WriteSink,
        queries: QueryRunner,
        segments: SegmentSource,
        plugin_dir: Path | None = None,
        venv_dir: Path | None = None,
        allowed_types: frozenset[PluginType] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        timer: Timer = SYSTEM_TIMER,
        request_workers: int = 8,
        async_workers: int = 8,
        log_flush_interval: float = LOG_FLUSH_INTERVAL_S,
        plugin_timeout_s: float | None = None,
        plugin_repo: str | None = None,
        wal_backlog_limit: int | None = DEFAULT_WAL_BACKLOG_LIMIT,
        delivery: DeliveryLimits | None = None,
        backlog_check_interval: float = BACKLOG_CHECK_INTERVAL_S,
    ) -> None:
        self.catalog = catalog
        self.plugin_dir = Path(plugin_dir) if plugin_dir is not None else None
        self.venv_dir = venv_dir
        # Local plugin files and `gh:` plugins (downloaded at create/update, cached for restarts).
        self.plugin_source = PluginSource(self.plugin_dir, plugin_repo)
        self.allowed_types = allowed_types
        self.logs = PluginLogs(store, node, clock)
        self.caches = CacheStore(clock)
        # Per-trigger call counters for /metrics; kept across disable/enable, dropped on delete.
        self.stats = EngineStats()
        self.cursors: CursorStore | _NoCursors = CursorStore(store, node) if store is not None else _NoCursors()
        self.timer = timer
        self.plugin_timeout_s = plugin_timeout_s
        # Waits between retries; None waits on the trigger's stop flag. Tests set a recorder.
        self.retry_sleep: Callable[[float], Any] | None = None
        self.request_pool = ThreadPoolExecutor(request_workers, thread_name_prefix="lakeflux-request")
        self._async_pool = ThreadPoolExecutor(async_workers, thread_name_prefix="lakeflux-plugin")
        self._ports = Ports(writer=writer, queries=queries, logs=self.logs)
        self._segments = segments
        self._lock = threading.RLock()  # lifecycle changes, one at a time
        self._running: dict[tuple[str, str], RunningTrigger] = {}
        self._paths: dict[str, RequestTrigger] = {}
        self._stop_housekeeping = threading.Event()
        self._housekeeping: threading.Thread | None = None
        self._log_flush_interval = log_flush_interval
        self._clock = clock
        # None: no limit (a lagging trigger keeps the WAL for as long as it needs).
        self.wal_backlog_limit = wal_backlog_limit
        # WAL triggers' per-call and memory limits, read when a trigger starts (tests shrink them).
        self.delivery = delivery
        self._backlog_check_interval = backlog_check_interval
        self._started = False
        catalog.add_listener(self._catalog_changed)

    # -- lifecycle of the engine -------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the plugin environment, load logs, start enabled triggers and housekeeping."""
        if self.plugin_dir is not None:
            prepare_plugin_environment(self.plugin_dir, self.venv_dir)
        state = self.catalog.state
        for db in state.databases.values():
            if not db.deleted:
                self.logs.load(db.name)
        with self._lock:
            self._started = True
            for db in list(state.databases.values()):
                if db.deleted:
                    continue
                for definition in db.triggers.values():
                    if not definition.disabled:
                        self._boot(definition)
        self._housekeeping = threading.Thread(target=self._housekeep, name="lakeflux-engine-housekeeping",
                                              daemon=True)
        self._housekeeping.start()

    def _boot(self, definition: TriggerDef) -> None:
        cursor = self._cursor(definition)
        try:
            self._start(definition, start_cursor=cursor if cursor is not None else self._head_cursor(definition))
        except Exception as exc:
            log.error("%s: trigger %s/%s: %s", BOOT_FAILURE, definition.database, definition.name, exc)
            self.logs.log(definition.database, definition.name, "ERROR", f"{BOOT_FAILURE}: {exc}")

    def stop(self) -> None:
        """Stop every trigger (interrupting running calls), then persist the logs. Durable on return."""
        with self._lock:
            self._started = False
            running = list(self._running.values())
            self._running.clear()
            self._paths.clear()
        for trigger in running:
            trigger.stopped.set()
            trigger.guard.interrupt()
        for trigger in running:
            trigger.stop()
        self._stop_housekeeping.set()
        if self._housekeeping is not None:
            self._housekeeping.join(5.0)
        self.request_pool.shutdown(wait=False, cancel_futures=True)
        self._async_pool.shutdown(wait=False, cancel_futures=True)
        self.logs.flush()

    def _housekeep(self) -> None:
        last_check = time.monotonic()
        while not self._stop_housekeeping.wait(min(self._log_flush_interval, SWEEP_INTERVAL_S,
                                                   self._backlog_check_interval)):
            try:
                self.logs.flush()
                self.caches.maybe_sweep()
                if time.monotonic() - last_check >= self._backlog_check_interval:
                    last_check = time.monotonic()
                    self.enforce_wal_backlog_limit()
            except Exception:
                log.exception("engine housekeeping failed")

    # -- WAL fan-out -------------------------------------------------------------------------------

    def segment_committed(self, segment: CommittedSegment) -> None:
        """Tell every WAL trigger about a committed segment (they queue what has rows for them).

        Called in commit order after each WAL commit; never blocks on plugins.
        """
        committed_ns = self._clock.now_ns()
        for trigger in self._wal_triggers():
            trigger.observe(segment.seq, committed_ns, segment.databases.get(trigger.definition.database))

    def _wal_triggers(self) -> list[WalTrigger]:
        # Not under the lifecycle lock: a WAL commit or a scrape must never wait for a lifecycle change
        # that is stopping a trigger. dict.copy() is atomic under the GIL.
        return [t for t in self._running.copy().values() if isinstance(t, WalTrigger)]

    def wal_lag(self) -> list[tuple[WalTrigger, Lag]]:
        """Each running WAL trigger with its lag."""
        return [(trigger, trigger.lag()) for trigger in self._wal_triggers()]

    def enforce_wal_backlog_limit(self) -> int:
        """Skip the oldest segments of every trigger holding back more WAL than the backlog limit.

        A trigger with unfinished segments holds back every WAL segment after its position. When
        their bytes exceed `wal_backlog_limit`, the trigger keeps the newest segments within the
        limit and gives up the older ones (`WalTrigger.skip_through`: an ERROR row naming the range,
        its cursor moves past them, and the next snapshot may delete them). Runs on the housekeeping
        thread; lists the WAL only while some trigger is behind. Returns how many triggers skipped.
        """
        limit = self.wal_backlog_limit
        if limit is None:
            return 0
        behind = {trigger: lag.position for trigger, lag in self.wal_lag() if lag.segments}
        if not behind:
            return 0
        infos = self._segments.list_after(min(behind.values()))
        skipped = 0
        for trigger, position in behind.items():
            held = [info for info in infos if info.seq > position]
            if sum(info.size for info in held) <= limit:
                continue
            kept = 0
            cut = None
            for info in reversed(held):
                if kept and kept + info.size > limit:
                    cut = info.seq
                    break
                kept += info.size
            if cut is None:
                continue
            given_up = [info for info in held if info.seq <= cut]
            trigger.skip_through(cut, given_up[0].seq, len(given_up),
                                 f"the trigger held back more than {limit:,} bytes of WAL (--plugin-wal-backlog-limit)")
            skipped += 1
        return skipped

    # -- request triggers --------------------------------------------------------------------------

    def request_trigger(self, path: str) -> RequestTrigger | None:
        """The running trigger serving `/api/v3/engine/<path>`, if any."""
        with self._lock:
            return self._paths.get(path)

    # -- metrics -----------------------------------------------------------------------------------

    def metric_families(self) -> list[Family]:
        """Per-trigger call counters and each running WAL trigger's lag, for /metrics."""
        now = self._clock.now_ns()
        return self.stats.families(
            WalLagSample(*trigger.key, lag.segments, lag.rows, lag.seconds(now), lag.skipped_segments,
                         lag.rows_finished)
            for trigger, lag in self.wal_lag())

    # -- system tables -----------------------------------------------------------------------------

    def system_tables(self, db: str) -> dict[str, pa.Table]:
        """`system.processing_engine_*` and `system.plugin_files` of `db`, for the query engine."""
        state = self.catalog.state
        now = self._clock.now_ns()
        lags = [WalLagRow(trigger.definition.database, trigger.definition.name, lag.segments, lag.rows,
                          lag.seconds(now), lag.position, lag.skipped_segments)
                for trigger, lag in self.wal_lag()]
        tables = engine_system_tables(state, self.logs, db, lags)
        tables[PLUGIN_FILES] = plugin_files_table(state, self.plugin_dir, db)
        return tables

    def min_wal_cursor(self) -> int | None:
        """The oldest position of a running WAL trigger, for WAL trimming (None: no WAL trigger runs).

        A position only passes segments whose calls finished and whose write-backs are committed, so
        trimming below it loses nothing even if the persisted cursor lags behind it (after a crash the
        trigger lists the WAL after its cursor, and finds only what it still needs).
        """
        positions = [t.position() for t in self._wal_triggers()]
        return min(positions, default=None)

    # -- trigger lifecycle -------------------------------------------------------------------------

    def create_trigger(
        self,
        *,
        db: str,
        name: str,
        plugin_filename: str,
        spec: str,
        arguments: Any = None,
        run_async: Any = None,
        error_behavior: Any = None,
        disabled: Any = None,
    ) -> TriggerDef:
        """Check, commit and (unless disabled) start a trigger; it sees only later segments.

        A `gh:` plugin is downloaded before the lifecycle lock is taken. Returns once the definition is
        durable in the catalog. Raises Invalid (400), NotFound (404), Conflict (409) or BadGateway (502,
        the plugin repository failed) naming what is wrong; nothing is committed then.
        """
        if not isinstance(plugin_filename, str) or not plugin_filename:
            raise Invalid("missing or invalid 'plugin_filename': expected a non-empty string")
        if not isinstance(spec, str):
            raise Invalid("missing or invalid 'trigger_specification': expected a string")
        definition = TriggerDef(
            name=check_trigger_name(name),
            database=db,
            plugin_filename=plugin_filename,
            spec=spec,
            arguments=check_arguments(arguments),
            run_async=check_bool(run_async, "run_async", False),
            error_behavior=normalise_error_behavior(error_behavior),
            disabled=check_bool(disabled, "disabled", False),
        )
        self._validate(definition, creating=True, resolve=self._fetch_plugin)
        with self._lock:
            parsed = self._validate(definition, creating=True, resolve=self.plugin_source.resolve)
            definition = dataclasses.replace(definition, spec=parsed.canonical())
            self.catalog.commit([{"op": "create_trigger", "trigger": definition.to_json()}])
            if not definition.disabled:
                self._start_at_head(definition)
        return definition

    def update_trigger(self, *, db: str, name: str, **changes: Any) -> TriggerDef:
        """Change a trigger in place (omitted fields kept), with create's checks; restarts it.

        The cache is dropped; a WAL trigger that stays a WAL trigger keeps its cursor. A `gh:` plugin is
        downloaded again, before the lifecycle lock is taken. Returns once the new definition is durable.
        """
        self._validate(_apply_changes(require_trigger(self.catalog.state, db, name), changes), creating=False,
                       resolve=self._fetch_plugin)
        with self._lock:
            current = require_trigger(self.catalog.state, db, name)
            updated = _apply_changes(current, changes)
            parsed = self._validate(updated, creating=False, resolve=self.plugin_source.resolve)
            updated = dataclasses.replace(updated, spec=parsed.canonical())
            keeps_cursor = (TriggerSpec.parse(current.spec).plugin_type == "wal"
                            and parsed.plugin_type == "wal" and not current.disabled)
            self._stop(db, name)
            self.catalog.commit([{"op": "update_trigger", "trigger": updated.to_json()}])
            if not updated.disabled:
                cursor = self._cursor(updated) if keeps_cursor else None
                if cursor is not None:
                    self._start(updated, start_cursor=cursor)
                else:
                    self._start_at_head(updated)
        return updated

    def enable_trigger(self, db: str, name: str) -> None:
        """Set `disabled=false` and start at the WAL head (nothing from the disabled period). Idempotent."""
        self._warm_plugin_cache(require_trigger(self.catalog.state, db, name).plugin_filename)
        with self._lock:
            current = require_trigger(self.catalog.state, db, name)
            if not current.disabled and (db, name) in self._running:
                return
            enabled = dataclasses.replace(current, disabled=False)
            if current.disabled:
                self.catalog.commit([{"op": "update_trigger", "trigger": enabled.to_json()}])
            self._start_at_head(enabled)

    def disable_trigger(self, db: str, name: str) -> None:
        """Set `disabled=true`, interrupt the running call and drop the cache. Idempotent."""
        with self._lock:
            current = require_trigger(self.catalog.state, db, name)
            self._stop(db, name)
            if not current.disabled:
                disabled = dataclasses.replace(current, disabled=True)
                self.catalog.commit([{"op": "update_trigger", "trigger": disabled.to_json()}])

    def delete_trigger(self, db: str, name: str, *, force: bool = False) -> None:
        """Delete a trigger; an enabled one only with `force` (else 409). Durable on return."""
        with self._lock:
            current = require_trigger(self.catalog.state, db, name)
            if not current.disabled and not force:
                raise Conflict(f"Cannot delete running plugin {name}. Disable it first or use --force.")
            self._stop(db, name)
            self.catalog.commit([{"op": "delete_trigger", "db": db, "trigger": name}])
            self.cursors.delete(db, name)
            self.stats.forget_trigger(db, name)

    def _error_disable(self, definition: TriggerDef, error: str) -> None:
        """The `disable` error behaviour: persist `disabled=true` and stop (from the trigger's thread)."""
        running = self._running.get((definition.database, definition.name))
        # Whoever holds the lifecycle lock may be stopping this very trigger and joining its thread:
        # then it handles the stop, and waiting for the lock here would only stall both.
        while not self._lock.acquire(timeout=0.05):
            if running is None or running.stopped.is_set():
                return
        try:
            current = self.catalog.state.live_db(definition.database)
            found = current.triggers.get(definition.name) if current else None
            self._stop(definition.database, definition.name)
            if found is not None and not found.disabled:
                try:
                    self.catalog.commit([{"op": "update_trigger",
                                          "trigger": dataclasses.replace(found, disabled=True).to_json()}])
                except Exception:
                    log.exception("could not persist disabled trigger %s/%s", definition.database, definition.name)
        finally:
            self._lock.release()

    # -- running triggers --------------------------------------------------------------------------

    def _services(self) -> TriggerServices:
        return TriggerServices(
            ports=self._ports, caches=self.caches, plugin_dir=self.plugin_dir, timer=self.timer,
            cursors=self.cursors,  # type: ignore[arg-type]
            segments=self._segments, async_pool=self._async_pool, retry_sleep=self._sleep_between_retries,
            plugin_timeout_s=self.plugin_timeout_s,
            on_error_disable=self._error_disable,
            resolve_plugin=self.plugin_source.resolve,
            stats=self.stats,
            delivery=self.delivery,
        )

    def _validate(self, definition: TriggerDef, *, creating: bool, resolve: Callable[[str], Path]) -> TriggerSpec:
        """Create's and update's checks against the catalog as it is now (CONTRACT §2.2).

        They run twice. First without the lifecycle lock, with `resolve=_fetch_plugin`: a `gh:` plugin
        is downloaded then, so a slow plugin repository holds up no other trigger's lifecycle change,
        and a refused request fails as before. Then under the lock, against the catalog as it is by
        then (the name or request path may have been taken meanwhile), reading the plugin from the
        cache the first pass filled.
        """
        return validate_definition(self.catalog.state, definition, plugin_dir=self.plugin_dir,
                                   allowed=self.allowed_types, creating=creating, resolve=resolve)

    def _warm_plugin_cache(self, filename: str) -> None:
        """Download a `gh:` plugin whose cached copy is missing or damaged, before the lifecycle lock.

        A failure is left for the locked start to report, which resolves the plugin again.
        """
        if not is_gh(filename):
            return
        try:
            self.plugin_source.resolve(filename)
        except LakefluxError:
            pass

    def _fetch_plugin(self, filename: str) -> Path:
        """Create and update check the plugin and re-download a `gh:` one (CONTRACT §2.2)."""
        return self.plugin_source.resolve(filename, refresh=True)

    def _sleep_between_retries(self, seconds: float) -> Any:
        if self.retry_sleep is not None:
            return self.retry_sleep(seconds)
        return self._stop_housekeeping.wait(seconds)

    def _cursor(self, definition: TriggerDef) -> int | None:
        if TriggerSpec.parse(definition.spec).plugin_type != "wal":
            return None
        return self.cursors.get(definition.database, definition.name)

    def _head_cursor(self, definition: TriggerDef) -> int | None:
        """For a WAL trigger without a cursor: record the WAL head, so a crash cannot skip segments."""
        if TriggerSpec.parse(definition.spec).plugin_type != "wal":
            return None
        head = self._segments.head()
        self.cursors.put(definition.database, definition.name, head)
        return None

    def _start_at_head(self, definition: TriggerDef) -> None:
        if not self._started:
            return  # boot starts it
        running = self._start(definition, start_cursor=None)
        if isinstance(running, WalTrigger):
            self.cursors.put(definition.database, definition.name, self._segments.head())

    def _start(self, definition: TriggerDef, start_cursor: int | None) -> RunningTrigger | None:
        if not self._started:
            return None
        self._stop(definition.database, definition.name)
        running = _make_running_trigger(definition, self._services(), start_cursor)
        self._running[running.key] = running
        if isinstance(running, RequestTrigger):
            self._paths[running.path] = running
        running.start()
        return running

    def _stop(self, db: str, name: str) -> None:
        running = self._running.pop((db, name), None)
        if running is None:
            return
        if isinstance(running, RequestTrigger) and self._paths.get(running.path) is running:
            del self._paths[running.path]
        running.stop()

    def catalog_synced(self, ops: list[dict[str, Any]]) -> None:
        """Trigger changes another node of the cluster committed: start, restart or stop those triggers here
        as if they had been changed through this node (a WAL trigger keeps its cursor here, if it has one)."""
        for op in ops:
            kind = op.get("op")
            if kind in ("create_trigger", "update_trigger"):
                definition = TriggerDef.from_json(op["trigger"])
                with self._lock:
                    self._stop(definition.database, definition.name)
                    if not definition.disabled and self._started:
                        self._boot(definition)
            elif kind == "delete_trigger":
                with self._lock:
                    self._stop(op["db"], op["trigger"])

    def _catalog_changed(self, ops: list[dict[str, Any]]) -> None:
        """A deleted database stops its triggers and drops their caches, cursors and logs."""
        for op in ops:
            if op.get("op") != "delete_database":
                continue
            db = op["db"]
            with self._lock:
                doomed = [name for (database, name) in self._running if database == db]
                for name in doomed:
                    self._stop(db, name)
            self.caches.drop_database(db)
            self.logs.drop_database(db)
            self.stats.forget_database(db)


def _make_running_trigger(definition: TriggerDef, services: TriggerServices,
                          start_cursor: int | None = None) -> RunningTrigger:
    """The running form of a trigger definition (not started). Raises like `resolve_plugin_path`."""
    spec = TriggerSpec.parse(definition.spec)
    if spec.plugin_type == "wal":
        return WalTrigger(definition, spec, services, start_cursor)
    if spec.plugin_type == "schedule":
        return ScheduleTrigger(definition, spec, services)
    return RequestTrigger(definition, spec, services)


class _NoCursors:
    """Cursor store of an engine without an object store (unit tests): remembers nothing."""

    def get(self, db: str, trigger: str) -> int | None:
        return None

    def put(self, db: str, trigger: str, seq: int) -> None:
        pass

    def delete(self, db: str, trigger: str) -> None:
        pass


def _apply_changes(current: TriggerDef, changes: dict[str, Any]) -> TriggerDef:
    """The definition with the given fields replaced; unknown fields are refused."""
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if key == "plugin_filename":
            if not isinstance(value, str) or not value:
                raise Invalid("'plugin_filename' must be a non-empty string")
            values[key] = value
        elif key == "spec":
            if not isinstance(value, str):
                raise Invalid("'trigger_specification' must be a string")
            values[key] = value
        elif key == "arguments":
            values[key] = check_arguments(value)
        elif key in ("run_async", "disabled"):
            values[key] = check_bool(value, key, False)
        elif key == "error_behavior":
            values[key] = normalise_error_behavior(value)
        else:
            raise Invalid(f"cannot update trigger field {key!r}")
    return dataclasses.replace(current, **values)
