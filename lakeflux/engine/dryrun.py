"""Dry runs of WAL and schedule plugins (CONTRACT §4.6): run once, capture writes and logs, apply nothing.

`DryRunner.run_wal` parses the given line protocol (nanoseconds) and checks it against a *copy* of the
catalog, so the database and tables need not exist and nothing is created; the accepted rows become the
`table_batches` of one `process_writes` call over all tables. `DryRunner.run_schedule` needs an existing
database and calls `process_scheduled_call` once with `call_time` = the next match of the schedule.

Queries are real. Writes (`write*` and `write_sync*`) and log calls are captured by `DryRunCapture`; no
logs-table row is written. The cache is the test namespace named by `cache_name`. Captured lines are then
validated like a real write would be (parse, then column types against the catalog copy, which earlier
captured writes extend), and every problem becomes a string in `errors`. A plugin exception is an error
too; the log lines it produced before raising are kept.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..buffer.validate import check_write
from ..catalog import CatalogState
from ..catalog.state import apply_op
from ..errors import Invalid, LakefluxError
from ..lineprotocol import parse
from ..model import SYSTEM_CLOCK, Clock, Precision
from .api import DryRunCapture, PluginApi, PluginKind, discard_writes, flush_writes
from .cache import CacheStore
from .execution import describe_error
from .plugin import LoadedPlugin
from .ports import QueryRunner, SegmentTable
from .rows import table_batches
from .schedule import call_time, dry_run_fire_ns, format_rfc3339

DRY_RUN_TRIGGER = "dry_run"
_run_numbers = itertools.count(1)


@dataclass
class DryRunResult:
    """What a dry run reports: the JSON body of `/api/v3/plugin_test/*`."""

    log_lines: list[str] = field(default_factory=list)
    database_writes: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    trigger_time: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "log_lines": self.log_lines,
            "database_writes": self.database_writes,
            "errors": self.errors,
        }
        if self.trigger_time is not None:
            body["trigger_time"] = self.trigger_time
        return body


class _RefuseWrites:
    """WriteSink of a dry run: every write is captured before it could get here."""

    def write_lines(self, db: str, lines: str, *, no_sync: bool) -> None:
        raise RuntimeError("a dry run never writes")


class _NoLogRows:
    """LogSink of a dry run: log calls become `log_lines`, never rows."""

    def log(self, db: str, trigger: str, level: str, text: str) -> None:
        pass


def check_arguments(value: Any) -> dict[str, str] | None:
    """`input_arguments`: an object of strings (None or empty → the plugin gets `args=None`)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in value.items()):
        raise Invalid("'input_arguments' must be an object of string keys and string values")
    return dict(value) or None


class DryRunner:
    """Runs plugins once for `test wal_plugin` / `test schedule_plugin`. Blocking: call off the event loop."""

    def __init__(
        self,
        *,
        state: Callable[[], CatalogState],
        queries: QueryRunner,
        caches: CacheStore,
        resolve: Callable[[str], Path],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`state()` returns the current catalog state (copied per run); `resolve(filename)` finds the plugin."""
        self._state = state
        self._queries = queries
        self._caches = caches
        self._resolve = resolve
        self._clock = clock

    def run_wal(
        self,
        *,
        filename: str,
        database: str,
        input_lp: str,
        input_arguments: Any = None,
        cache_name: str | None = None,
    ) -> DryRunResult:
        """Call `process_writes` once with the rows of `input_lp`. Raises Invalid/NotFound for bad requests."""
        args = check_arguments(input_arguments)
        path = self._resolve(filename)
        catalog = copy.deepcopy(self._state())
        result = DryRunResult()
        tables, problems = segment_from_lp(catalog, database, input_lp, self._clock.now_ns())
        result.errors.extend(problems)

        def invoke(plugin: LoadedPlugin, api: PluginApi) -> Any:
            return plugin.entry_point("process_writes")(api, table_batches(tables), args)

        self._run(path, database, "wal", cache_name, invoke, result)
        validate_writes(catalog, result, self._clock.now_ns())
        return result

    def run_schedule(
        self,
        *,
        filename: str,
        database: str,
        schedule: str | None = None,
        input_arguments: Any = None,
        cache_name: str | None = None,
    ) -> DryRunResult:
        """Call `process_scheduled_call` once now, `call_time` = next match of `schedule` (default every second)."""
        args = check_arguments(input_arguments)
        path = self._resolve(filename)
        catalog = copy.deepcopy(self._state())
        catalog.require_db(database)
        fire_ns = dry_run_fire_ns(schedule, self._clock.now_ns())
        result = DryRunResult(trigger_time=format_rfc3339(fire_ns))
        when = call_time(fire_ns)

        def invoke(plugin: LoadedPlugin, api: PluginApi) -> Any:
            return plugin.entry_point("process_scheduled_call")(api, when, args)

        self._run(path, database, "schedule", cache_name, invoke, result)
        validate_writes(catalog, result, self._clock.now_ns())
        return result

    def _run(
        self,
        path: Path,
        database: str,
        kind: PluginKind,
        cache_name: str | None,
        invoke: Callable[[LoadedPlugin, PluginApi], Any],
        result: DryRunResult,
    ) -> None:
        capture = DryRunCapture(log_lines=result.log_lines, database_writes=result.database_writes)
        api = PluginApi(database=database, trigger_name=DRY_RUN_TRIGGER, kind=kind, writer=_RefuseWrites(),
                        queries=self._queries, logs=_NoLogRows(), cache=self._caches.test_cache(cache_name),
                        dry_run=capture)
        # A fresh module per run: a dry run always sees the file as it is now and leaves no globals behind.
        plugin = LoadedPlugin(path, f"dry_run/{next(_run_numbers)}")
        try:
            invoke(plugin, api)
        except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from plugins are errors too
            discard_writes(api)
            result.errors.append(describe_error(exc, str(path)))
        else:
            flush_writes(api)
        finally:
            plugin.close()


def _apply(catalog: CatalogState, ops: list[dict[str, Any]]) -> None:
    for op in ops:
        apply_op(catalog, op)


def segment_from_lp(catalog: CatalogState, database: str, lp: str, now_ns: int) -> tuple[list[SegmentTable], list[str]]:
    """The rows a WAL trigger would get for `lp` (ns; lines without time get `now_ns`), and the bad lines.

    Checked against `catalog`, which gains the tables and columns the lines create (pass a copy).
    """
    body = lp.encode("utf-8")
    parsed = parse(body, precision=Precision.NANOSECOND, default_time_ns=now_ns)
    checked = check_write(catalog, database, parsed, body)
    _apply(catalog, checked.ops)
    problems = [f"line {e.line_number}: {e.error_message}" for e in checked.errors]
    return [SegmentTable(t.name, t.data, t.tags) for t in checked.tables], problems


def validate_writes(catalog: CatalogState, result: DryRunResult, now_ns: int) -> None:
    """Check captured lines like the write path would; each problem → one string in `result.errors`.

    `catalog` (a copy) gains the tables and columns the accepted lines create."""
    for db, lines in result.database_writes.items():
        body = "\n".join(lines).encode("utf-8")
        try:
            parsed = parse(body, precision=Precision.NANOSECOND, default_time_ns=now_ns)
            checked = check_write(catalog, db, parsed, body)
            _apply(catalog, checked.ops)
        except LakefluxError as exc:
            result.errors.append(f"invalid write to database {db}: {exc.message}")
            continue
        for error in checked.errors:
            result.errors.append(
                f"invalid line in write to database {db}: line {error.line_number}: {error.error_message}"
                f" ({error.original_line})")
