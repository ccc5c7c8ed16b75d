"""A pytest-friendly harness for plugin authors: run a plugin's entry points without a server to deploy to.

    from lakeflux.testing.plugins import PluginTestKit

    def test_doubles_temperature():
        with PluginTestKit("plugins/double.py", lp="temperature,room=a value=20 1000") as kit:
            run = kit.run_writes("temperature,room=a value=21.5 2000", args={"factor": "2"})
            assert run.writes["test"] == ["doubled,room=a value=43"]
            assert "INFO: done" in run.log_lines

Each run calls the plugin's real entry point with a real `influxdb3_local`: `LineBuilder` and the plugin
exceptions are in builtins, `query` is answered by an in-process lakeflux (memory store) holding the line
protocol given as `lp=` / `kit.load(...)`, `cache` is a real cache that lives as long as the kit (TTLs follow
the injected clock), and writes and log calls are captured, never applied. Captured lines are validated like
a real write (`run.errors`). The plugin file is reloaded when it changes, like on a server.

An exception from the plugin propagates (pytest shows its traceback); pass `catch=True` to get it in
`run.error` together with the log lines written before it.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..engine.api import DryRunCapture, PluginApi, PluginKind, discard_writes, flush_writes
from ..engine.cache import CacheStore, PluginCache
from ..engine.dryrun import DryRunResult, segment_from_lp, validate_writes
from ..engine.plugin import LoadedPlugin, prepare_plugin_environment
from ..engine.rows import table_batches
from ..model import SYSTEM_CLOCK, Clock
from ..server.engine_ports import EngineQueryRunner
from ..store.memory import MemoryStore
from .server import InProcessServer

_kits = itertools.count(1)


@dataclass
class PluginRun:
    """What one call did: its return value, log lines ("INFO: …"), captured writes per database, problems."""

    result: Any = None
    log_lines: list[str] = field(default_factory=list)
    writes: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # bad input lines and captured lines a server would refuse
    error: BaseException | None = None  # the plugin's exception (only with catch=True)

    def logs(self, level: str) -> list[str]:
        """The texts logged at `level` (INFO, WARN or ERROR)."""
        prefix = f"{level}: "
        return [line[len(prefix):] for line in self.log_lines if line.startswith(prefix)]


class PluginTestKit:
    """Runs one plugin file (or package directory) against an in-process lakeflux. Use as a context manager."""

    def __init__(
        self,
        plugin: str | Path,
        *,
        database: str = "test",
        lp: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        trigger_name: str = "test_trigger",
    ) -> None:
        """`plugin`: path of the `.py` file or package; `lp`: line protocol loaded into `database` first."""
        self.plugin_path = Path(plugin).resolve()
        if not self.plugin_path.exists():
            raise FileNotFoundError(f"plugin not found: {plugin}")
        self.database = database
        self.trigger_name = trigger_name
        self.clock = clock
        self.caches = CacheStore(clock)
        self._plugin = LoadedPlugin(self.plugin_path, f"testkit/{next(_kits)}")
        self._data_dir = tempfile.TemporaryDirectory(prefix="lakeflux-testkit-")
        # The plugin's own directory is the plugin dir, so PLUGIN_DIR-relative config files resolve.
        plugin_dir = self.plugin_path.parent
        config = Config(object_store="memory", without_auth=True, data_dir=Path(self._data_dir.name),
                        wal_flush_interval=0.01, plugin_dir=plugin_dir)
        self.server = InProcessServer(config, store=MemoryStore())
        self.server.start()
        prepare_plugin_environment(plugin_dir)
        assert self.server.services is not None
        self._queries = EngineQueryRunner(self.server.services.query)
        if lp:
            self.load(lp)

    def __enter__(self) -> PluginTestKit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the in-process server and forget the plugin module."""
        self._plugin.close()
        self.server.stop()
        self._data_dir.cleanup()

    # -- data --------------------------------------------------------------------------------------

    def load(self, lp: str, database: str | None = None, precision: str = "nanosecond") -> None:
        """Write line protocol into the in-process server; queries see it once this returns."""
        reply = self.server.write(database or self.database, lp, precision=precision)
        if reply.status != 204:
            raise AssertionError(f"loading line protocol failed ({reply.status}): {reply.body.decode(errors='replace')}")

    def apply(self, run: PluginRun) -> None:
        """Write a run's captured lines for real, so later queries (and runs) see the plugin's output."""
        for database, lines in run.writes.items():
            self.load("\n".join(lines), database)

    def query(self, sql: str, database: str | None = None) -> list[dict[str, Any]]:
        """SQL against the in-process server, rows as dicts (what `influxdb3_local.query` returns)."""
        return self.server.query(database or self.database, sql)

    @property
    def cache(self) -> PluginCache:
        """The cache the plugin sees (shared by every run of this kit)."""
        return self.caches.trigger_cache(self.database, self.trigger_name)

    # -- runs --------------------------------------------------------------------------------------

    def run_writes(self, lp: str = "", *, args: Mapping[str, str] | None = None, table: str | None = None,
                   catch: bool = False) -> PluginRun:
        """`process_writes(influxdb3_local, table_batches, args)` with the rows of `lp` (not written).

        `table` filters the batches like a `table:<name>` trigger. Lines without a timestamp get the clock's time.
        """
        catalog = copy.deepcopy(self._state())
        tables, problems = segment_from_lp(catalog, self.database, lp, self.clock.now_ns())
        batches = table_batches(tables, table)
        run = self._run("wal", "process_writes", lambda fn, api: fn(api, batches, _args(args)), catch, catalog)
        run.errors[:0] = problems
        return run

    def run_schedule(self, call_time: dt.datetime | None = None, *, args: Mapping[str, str] | None = None,
                     catch: bool = False) -> PluginRun:
        """`process_scheduled_call(influxdb3_local, call_time, args)`; `call_time` defaults to now (naive UTC)."""
        when = call_time or dt.datetime.fromtimestamp(self.clock.now_ns() // 1_000_000_000, dt.UTC).replace(tzinfo=None)
        return self._run("schedule", "process_scheduled_call", lambda fn, api: fn(api, when, _args(args)), catch)

    def run_request(self, *, query_parameters: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None, body: bytes | str = b"",
                    args: Mapping[str, str] | None = None, catch: bool = False) -> PluginRun:
        """`process_request(...)`; `run.result` is what the plugin returned (before HTTP mapping)."""
        raw = body.encode() if isinstance(body, str) else body
        params, head = dict(query_parameters or {}), dict(headers or {})
        return self._run("request", "process_request",
                         lambda fn, api: fn(api, params, head, raw, _args(args)), catch)

    def _state(self) -> Any:
        assert self.server.services is not None
        return self.server.services.catalog.state

    def _run(self, kind: PluginKind, entry: str, call: Callable[[Any, PluginApi], Any], catch: bool,
             catalog: Any = None) -> PluginRun:
        captured = DryRunResult()
        api = PluginApi(database=self.database, trigger_name=self.trigger_name, kind=kind, writer=_NoWrites(),
                        queries=self._queries, logs=_NoLogRows(), cache=self.cache,
                        dry_run=DryRunCapture(log_lines=captured.log_lines, database_writes=captured.database_writes))
        run = PluginRun(log_lines=captured.log_lines, writes=captured.database_writes, errors=captured.errors)
        try:
            run.result = call(self._plugin.entry_point(entry), api)
        except BaseException as exc:
            discard_writes(api)
            if not catch:
                raise
            run.error = exc
        else:
            flush_writes(api)
        validate_writes(catalog if catalog is not None else copy.deepcopy(self._state()), captured,
                        self.clock.now_ns())
        return run


def _args(args: Mapping[str, str] | None) -> dict[str, str] | None:
    return dict(args) if args else None


class _NoWrites:
    def write_lines(self, db: str, lines: str, *, no_sync: bool) -> None:
        raise RuntimeError("the plugin test kit captures writes; nothing is written")


class _NoLogRows:
    def log(self, db: str, trigger: str, level: str, text: str) -> None:
        pass
