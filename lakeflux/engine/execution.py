"""Running one plugin call: lifecycle log rows, write-back, and the error behaviours (CONTRACT §1.4, §2.6).

`call_plugin` makes the `influxdb3_local` object, logs "starting execution …", calls the entry point
with every exception caught (`BaseException`: `SystemExit` and `KeyboardInterrupt` too), sends the
buffered writes after a normal return (the call ends at their commit) or drops them after a raise, and
logs "finished execution in <duration>". `run_with_behaviour` wraps that for WAL and schedule
triggers: `log` records one ERROR row, `retry` makes up to `RETRY_ATTEMPTS` attempts with doubling
backoff, `disable` hands the trigger to a callback that persists `disabled=true`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .api import PluginApi, PluginKind, discard_writes, flush_writes, take_writes
from .cache import PluginCache
from .interrupt import CallGuard
from .plugin import PluginError
from .ports import LogSink, QueryRunner, WriteSink
from .stats import TriggerCounter

logger = logging.getLogger("lakeflux.engine")

RETRY_ATTEMPTS = 5
RETRY_FIRST_BACKOFF_S = 1.0
RETRY_MAX_BACKOFF_S = 60.0
ERROR_BEHAVIORS = ("log", "retry", "disable")

START_MESSAGES = {
    "wal": "starting execution of wal plugin.",
    "request": "starting execution of request plugin.",
}


@dataclass(frozen=True)
class Ports:
    """What a plugin call reaches: writes, queries and the log rows."""

    writer: WriteSink
    queries: QueryRunner
    logs: LogSink


@dataclass(frozen=True)
class CallTarget:
    """Who is being called: the trigger's names, its cache, and the guard that can interrupt it."""

    database: str
    trigger: str
    cache: PluginCache
    guard: CallGuard
    timeout_s: float | None = None  # `--plugin-timeout`: interrupt calls running longer
    counter: TriggerCounter | None = None  # the trigger's /metrics counters; None: not counted


@dataclass
class CallOutcome:
    ok: bool
    result: Any = None
    error: BaseException | None = None
    plugin_file: str | None = None
    # With `defer_writes`: the lines the call queued, per database, for the caller to send.
    writes: dict[str, list[str]] | None = None

    def describe(self) -> str:
        """The error as a plugin author can act on it: `Type: message (file, line N)`."""
        assert self.error is not None
        return describe_error(self.error, self.plugin_file)


def format_elapsed(seconds: float) -> str:
    """A duration as InfluxDB prints it in "finished execution in …": `412.5µs`, `3.2ms`, `1.5s`."""
    ns = max(0, round(seconds * 1e9))
    for unit, size in (("s", 1_000_000_000), ("ms", 1_000_000), ("µs", 1_000)):
        if ns >= size:
            text = f"{ns / size:.3f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return f"{ns}ns"


def describe_error(exc: BaseException, plugin_file: str | None = None) -> str:
    """`Type: message`, plus where in the plugin it was raised when the traceback passes through it."""
    if isinstance(exc, PluginError):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if plugin_file:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(plugin_file)]
        if frames:
            frame = frames[-1]
            text += f" ({os.path.basename(frame.filename)}, line {frame.lineno})"
    return text


def record(ports: Ports, target: CallTarget, level: str, text: str) -> None:
    """One log row for the trigger, also sent to the server log."""
    logger.log(logging.ERROR if level == "ERROR" else logging.INFO, "trigger %s/%s: %s",
               target.database, target.trigger, text)
    try:
        ports.logs.log(target.database, target.trigger, level, text)
    except Exception:
        logger.exception("could not record plugin log row for trigger %s", target.trigger)


def call_plugin(
    ports: Ports,
    target: CallTarget,
    kind: PluginKind,
    start_message: str,
    invoke: Callable[[PluginApi], Any],
    plugin_file: str | None = None,
    *,
    defer_writes: bool = False,
) -> CallOutcome:
    """Make one call; never raises. `invoke(api)` looks up the entry point and calls it.

    The writes the plugin queued are sent after a normal return and the call returns after their
    commit; with `defer_writes` they are returned in `CallOutcome.writes` instead, unsent (a WAL
    trigger sends them without waiting). Every plugin call of a trigger passes here, so this is
    where its /metrics counters are kept.
    """
    counter = target.counter
    if counter is None:
        return _call_plugin(ports, target, kind, start_message, invoke, plugin_file, defer_writes)
    started = counter.started()
    ok = False  # stays False if the call machinery itself raised
    try:
        outcome = _call_plugin(ports, target, kind, start_message, invoke, plugin_file, defer_writes)
        ok = outcome.ok
        return outcome
    finally:
        counter.finished(started, ok)


def _call_plugin(
    ports: Ports,
    target: CallTarget,
    kind: PluginKind,
    start_message: str,
    invoke: Callable[[PluginApi], Any],
    plugin_file: str | None,
    defer_writes: bool = False,
) -> CallOutcome:
    api = PluginApi(database=target.database, trigger_name=target.trigger, kind=kind, writer=ports.writer,
                    queries=ports.queries, logs=ports.logs, cache=target.cache)
    record(ports, target, "INFO", start_message)
    started = time.perf_counter()
    watchdog = _start_watchdog(target)
    try:
        with target.guard.calling():
            result = invoke(api)
    except BaseException as exc:  # noqa: BLE001 - plugins may raise SystemExit/KeyboardInterrupt
        discard_writes(api)
        error: BaseException = exc
        if watchdog is not None and watchdog.fired.is_set():
            error = TimeoutError(f"plugin call timed out after {target.timeout_s:g} s")
        return CallOutcome(ok=False, error=error, plugin_file=plugin_file)
    finally:
        if watchdog is not None:
            watchdog.cancel()
    writes = take_writes(api) if defer_writes else None
    if writes is None:
        flush_writes(api)
    record(ports, target, "INFO", f"finished execution in {format_elapsed(time.perf_counter() - started)}")
    return CallOutcome(ok=True, result=result, plugin_file=plugin_file, writes=writes)


class _Watchdog(threading.Timer):
    def __init__(self, seconds: float, guard: CallGuard, thread_id: int) -> None:
        super().__init__(seconds, self._fire)
        self.daemon = True
        self.fired = threading.Event()
        self._guard = guard
        self._thread_id = thread_id

    def _fire(self) -> None:
        self.fired.set()
        if not self._guard.interrupt_thread(self._thread_id):
            self.fired.clear()  # the call ended first


def _start_watchdog(target: CallTarget) -> _Watchdog | None:
    if not target.timeout_s:
        return None
    watchdog = _Watchdog(target.timeout_s, target.guard, threading.get_ident())
    watchdog.start()
    return watchdog


def backoff_seconds(attempt: int) -> float:
    """Wait after failed attempt `attempt` (1-based): 1 s, 2 s, 4 s … capped at 60 s."""
    return min(RETRY_MAX_BACKOFF_S, RETRY_FIRST_BACKOFF_S * 2 ** (attempt - 1))


def run_with_behaviour(
    ports: Ports,
    target: CallTarget,
    kind: PluginKind,
    error_behavior: str,
    make_call: Callable[[], CallOutcome],
    *,
    sleep: Callable[[float], Any],
    stopped: threading.Event,
    on_disable: Callable[[str], None],
) -> bool:
    """Run a WAL or schedule call under the trigger's error behaviour; True if an attempt succeeded.

    `sleep(seconds)` waits between retries (injected in tests); `on_disable(error_text)` persists the
    disabled state. A trigger being stopped makes no further attempts.
    """
    attempts = RETRY_ATTEMPTS if error_behavior == "retry" else 1
    for attempt in range(1, attempts + 1):
        outcome = make_call()
        if outcome.ok:
            return True
        error = outcome.describe()
        if error_behavior == "disable" and not stopped.is_set():
            record(ports, target, "ERROR", f"trigger disabled after error: {error}")
            on_disable(error)
            return False
        suffix = f" (attempt {attempt}/{attempts})" if error_behavior == "retry" else ""
        record(ports, target, "ERROR", f"error executing {kind} plugin: {error}{suffix}")
        if attempt == attempts or stopped.is_set():
            return False
        sleep(backoff_seconds(attempt))
        if stopped.is_set():
            return False
    return False
