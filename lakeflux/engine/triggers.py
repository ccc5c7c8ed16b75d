"""Running triggers: one object per enabled trigger, owning its thread and plugin copy.

- `RunningTrigger`: what every kind shares (plugin, cache, stop flag, call guard, error behaviour).
- `WalTrigger` lives in waltrigger.py: batched, pipelined delivery of committed segments.
- `ScheduleTrigger`: a thread that waits for the next fire time on the injected `Timer`; a sync
  overrun makes missed ticks fire back-to-back, each with its own `call_time` (§2.3).
- `RequestTrigger`: called on the engine's request pool, which other triggers cannot exhaust, so a
  plugin that calls this server over HTTP and waits never deadlocks (§1.1).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..catalog import TriggerDef
from .api import PluginApi, PluginKind
from .cache import CacheStore
from .cursors import CursorStore
from .execution import START_MESSAGES, CallOutcome, CallTarget, Ports, call_plugin, record, run_with_behaviour
from .interrupt import CallGuard
from .plugin import LoadedPlugin, resolve_plugin_path
from .ports import SegmentInfo, SegmentTable
from .request_args import query_parameters, request_headers
from .response import HttpReply, exception_reply, to_http_response
from .schedule import call_time
from .specs import TriggerSpec
from .stats import EngineStats
from .timer import Timer

if TYPE_CHECKING:
    from .waltrigger import DeliveryLimits

log = logging.getLogger("lakeflux.engine")

# How long stopping a trigger waits for its thread after interrupting the running call.
STOP_WAIT_S = 5.0


class SegmentSource(Protocol):
    """Reads committed WAL segments for catch-up after a restart (the server implements it over the Wal)."""

    def head(self) -> int:
        """The sequence of the newest segment handed to the WAL (-1 if none)."""
        ...

    def list_after(self, seq: int) -> list[SegmentInfo]:
        """Committed segments after `seq`, ascending by sequence. Raises Unavailable."""
        ...

    def read(self, seq: int, db: str, table: str | None) -> list[SegmentTable]:
        """`db`'s tables in segment `seq` (only `table` when given). Raises NotFound/Corrupt."""
        ...


@dataclass
class TriggerServices:
    """What every running trigger shares; built once by the engine."""

    ports: Ports
    caches: CacheStore
    plugin_dir: Path | None
    timer: Timer
    cursors: CursorStore
    segments: SegmentSource
    async_pool: Executor
    retry_sleep: Callable[[float], Any] | None
    plugin_timeout_s: float | None
    on_error_disable: Callable[[TriggerDef, str], None]
    # plugin_filename -> local path (local files and cached `gh:` plugins); None: plugin-dir files only.
    resolve_plugin: Callable[[str], Path] | None = None
    # Per-trigger call counters for /metrics; None: calls are not counted.
    stats: EngineStats | None = None
    # WAL triggers' per-call and memory limits (waltrigger.DeliveryLimits); None: the defaults.
    delivery: DeliveryLimits | None = None


class RunningTrigger:
    """Common part: the plugin copy, cache, stop flag and the call guard of one trigger."""

    def __init__(self, definition: TriggerDef, spec: TriggerSpec, services: TriggerServices) -> None:
        self.definition = definition
        self.spec = spec
        self.services = services
        if services.resolve_plugin is not None:
            path = services.resolve_plugin(definition.plugin_filename)
        else:
            path = resolve_plugin_path(services.plugin_dir, definition.plugin_filename)
        self.plugin = LoadedPlugin(path, f"{definition.database}/{definition.name}")
        self.plugin_file = str(path)
        self.stopped = threading.Event()
        self.guard = CallGuard()
        self.target = CallTarget(
            database=definition.database,
            trigger=definition.name,
            cache=services.caches.trigger_cache(definition.database, definition.name),
            guard=self.guard,
            timeout_s=services.plugin_timeout_s,
            counter=(services.stats.counter(definition.database, definition.name, spec.plugin_type)
                     if services.stats is not None else None),
        )
        self._thread: threading.Thread | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.definition.database, self.definition.name)

    def args(self) -> dict[str, str] | None:
        """A fresh copy of the trigger arguments per call, or None when it has none."""
        arguments = self.definition.arguments
        return dict(arguments) if arguments else None

    def start(self) -> None:
        """Start the trigger's own thread, if it has one."""

    def _start_thread(self, target: Callable[[], None], kind: str) -> None:
        name = f"lakeflux-{kind}-{self.definition.database}/{self.definition.name}"
        self._thread = threading.Thread(target=self._guarded(target), name=name, daemon=True)
        self._thread.start()

    def _guarded(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # noqa: BLE001 - an interrupt landing outside a call ends the thread
                if not self.stopped.is_set():
                    log.exception("trigger %s/%s stopped unexpectedly", *self.key)
                    record(self.services.ports, self.target, "ERROR", f"trigger stopped unexpectedly: {exc!r}")

        return run

    def stop(self, *, interrupt: bool = True) -> None:
        """Stop: no new calls, interrupt the running one (KeyboardInterrupt), drop the cache.

        Returns once the trigger's thread ended (or after STOP_WAIT_S if the plugin is stuck in C code).
        """
        self.stopped.set()
        self._wake()
        if interrupt:
            self.guard.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT_S)
        self.plugin.close()
        self.services.caches.drop_namespace(self.definition.database, self.definition.name)

    def _wake(self) -> None:
        """Wake the trigger's thread so it notices the stop."""

    def _call(self, kind: PluginKind, start_message: str, invoke: Callable[[PluginApi], Any]) -> CallOutcome:
        return call_plugin(self.services.ports, self.target, kind, start_message, invoke, self.plugin_file)

    def _run_with_behaviour(self, kind: PluginKind, make_call: Callable[[], CallOutcome]) -> bool:
        sleep = self.services.retry_sleep or self.stopped.wait
        return run_with_behaviour(
            self.services.ports, self.target, kind, self.definition.error_behavior, make_call,
            sleep=sleep, stopped=self.stopped,
            on_disable=lambda error: self.services.on_error_disable(self.definition, error),
        )


class ScheduleTrigger(RunningTrigger):
    """`every:` / `cron:`: `process_scheduled_call` at each fire time."""

    def start(self) -> None:
        self._start_thread(self._run, "schedule")

    def _wake(self) -> None:
        pass  # the timer waits on the stop event itself

    def _run(self) -> None:
        schedule = self.spec.schedule()
        timer = self.services.timer
        fire = schedule.next_after(timer.now_ns())
        while not self.stopped.is_set():
            if fire is None:
                record(self.services.ports, self.target, "INFO",
                       "schedule has no further fire times; the trigger stopped")
                return
            if not timer.wait_until(fire, self.stopped):
                return
            if self.definition.run_async:
                self.services.async_pool.submit(self._fire, fire)
            else:
                self._fire(fire)
            fire = schedule.next_after(fire)

    def _fire(self, fire_ns: int) -> None:
        when = call_time(fire_ns)
        message = f"starting execution with scheduled time {when:%Y-%m-%d %H:%M:%S} UTC"

        def invoke(api: PluginApi) -> Any:
            function = self.plugin.entry_point("process_scheduled_call")
            return function(api, when, self.args())

        self._run_with_behaviour("schedule", lambda: self._call("schedule", message, invoke))


class RequestTrigger(RunningTrigger):
    """`request:<path>`: `process_request` per HTTP request, on the engine's request pool."""

    def __init__(self, definition: TriggerDef, spec: TriggerSpec, services: TriggerServices) -> None:
        super().__init__(definition, spec, services)
        self._sync_lock = threading.Lock()

    @property
    def path(self) -> str:
        assert self.spec.path is not None
        return self.spec.path

    def handle(self, raw_query: str, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> HttpReply:
        """Call the plugin for one request and map its return value; blocking, never raises."""
        if self.definition.run_async:
            return self._handle(raw_query, raw_headers, body)
        with self._sync_lock:  # sync request triggers also run one call at a time, in arrival order
            return self._handle(raw_query, raw_headers, body)

    def _handle(self, raw_query: str, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> HttpReply:
        params = query_parameters(raw_query)
        headers = request_headers(raw_headers)

        def invoke(api: PluginApi) -> HttpReply:
            function = self.plugin.entry_point("process_request")
            return to_http_response(function(api, params, headers, body, self.args()))

        outcome = self._call("request", START_MESSAGES["request"], invoke)
        if not outcome.ok:
            assert outcome.error is not None
            record(self.services.ports, self.target, "ERROR", f"error running request plugin: {outcome.describe()}")
            return exception_reply(outcome.error)
        reply: HttpReply = outcome.result
        if reply.error is not None:
            record(self.services.ports, self.target, "ERROR", f"error running request plugin: {reply.error}")
        return reply
