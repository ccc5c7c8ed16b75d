"""Per-trigger plugin call counters, exported on `GET /metrics` (CONTRACT §4.7).

Every plugin call of a trigger goes through `execution.call_plugin`, which reports to the trigger's
`TriggerCounter`: one call started, then finished ok or failed (an exception, a timeout), and how
long it took. `EngineStats` holds one counter per (database, trigger, trigger type) and renders them
as Prometheus families in the shape `server/metrics.py` expects: (name, type, help, [(labels, value)]).

They are process counters: they survive disable/enable (the same counter is handed out again), are
never persisted, and vanish when the trigger or its database is deleted. An update that changes a
trigger's type starts a second series under the new `trigger_type` label, as Prometheus expects of a
new label set; both go when the trigger does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

# The family shape of server/metrics.py, restated here: the engine may not import the server.
Sample = tuple[dict[str, str], float]
Family = tuple[str, str, str, list[Sample]]

CALLS = "lakeflux_plugin_calls_total"
FAILURES = "lakeflux_plugin_call_failures_total"
SECONDS = "lakeflux_plugin_call_seconds_total"
BACKLOG = "lakeflux_plugin_wal_backlog_segments"
BACKLOG_ROWS = "lakeflux_plugin_wal_backlog_rows"
LAG_SECONDS = "lakeflux_plugin_wal_lag_seconds"
SKIPPED = "lakeflux_plugin_wal_skipped_segments_total"
ROWS_FINISHED = "lakeflux_plugin_wal_rows_total"


class WalLagSample(NamedTuple):
    """One running WAL trigger's lag, as /metrics shows it (see waltrigger.Lag)."""

    database: str
    trigger: str
    segments: int
    rows: int
    seconds: float
    skipped_segments: int
    rows_finished: int = 0


@dataclass(frozen=True)
class CountSnapshot:
    """A consistent copy of one counter, for rendering."""

    calls: int
    failures: int
    seconds: float


class TriggerCounter:
    """Calls, failures and call seconds of one trigger; safe to update from any thread."""

    def __init__(self, perf_counter: Callable[[], float]) -> None:
        self._perf_counter = perf_counter
        self._lock = threading.Lock()
        self._calls = 0
        self._failures = 0
        self._seconds = 0.0

    def started(self) -> float:
        """Count a call as started; returns the stamp to hand back to `finished`."""
        with self._lock:
            self._calls += 1
        return self._perf_counter()

    def finished(self, started: float, ok: bool) -> None:
        """Add the call's duration (since `started`), and count it as failed unless `ok`."""
        elapsed = max(0.0, self._perf_counter() - started)
        with self._lock:
            self._seconds += elapsed
            if not ok:
                self._failures += 1

    def snapshot(self) -> CountSnapshot:
        with self._lock:
            return CountSnapshot(self._calls, self._failures, self._seconds)


TriggerKey = tuple[str, str, str]  # (database, trigger, trigger type)


class EngineStats:
    """The engine's registry of trigger counters."""

    def __init__(self, perf_counter: Callable[[], float] = time.perf_counter) -> None:
        # Read when a counter is created: tests replace it before creating triggers.
        self.perf_counter = perf_counter
        self._lock = threading.Lock()
        self._counters: dict[TriggerKey, TriggerCounter] = {}

    def counter(self, database: str, trigger: str, trigger_type: str) -> TriggerCounter:
        """The trigger's counter, created on first use and the same one after a restart of the trigger."""
        key = (database, trigger, trigger_type)
        with self._lock:
            found = self._counters.get(key)
            if found is None:
                found = self._counters[key] = TriggerCounter(self.perf_counter)
            return found

    def forget_trigger(self, database: str, trigger: str) -> None:
        """Drop a deleted trigger's series (of every type it had)."""
        self._forget(lambda key: key[:2] == (database, trigger))

    def forget_database(self, database: str) -> None:
        """Drop the series of every trigger of a deleted database."""
        self._forget(lambda key: key[0] == database)

    def _forget(self, doomed: Callable[[TriggerKey], bool]) -> None:
        with self._lock:
            for key in [key for key in self._counters if doomed(key)]:
                del self._counters[key]

    def families(self, lags: Iterable[WalLagSample] = ()) -> list[Family]:
        """The counter families, plus the lag gauges of running WAL triggers."""
        with self._lock:
            counters = sorted(self._counters.items())
        calls: list[Sample] = []
        failures: list[Sample] = []
        seconds: list[Sample] = []
        for (database, trigger, trigger_type), counter in counters:
            labels = {"database": database, "trigger": trigger, "trigger_type": trigger_type}
            snap = counter.snapshot()
            calls.append((labels, snap.calls))
            failures.append((labels, snap.failures))
            seconds.append((labels, snap.seconds))
        ordered = sorted(lags)
        labelled = [({"database": lag.database, "trigger": lag.trigger}, lag) for lag in ordered]
        return [
            (CALLS, "counter", "Processing engine plugin calls started, by trigger", calls),
            (FAILURES, "counter", "Plugin calls that raised or timed out, by trigger", failures),
            (SECONDS, "counter", "Seconds spent in plugin calls (a WAL call ends when its function returns; "
             "schedule and request calls include their write-back), by trigger", seconds),
            (BACKLOG, "gauge", "Committed WAL segments a running WAL trigger has not finished",
             [(labels, lag.segments) for labels, lag in labelled]),
            (BACKLOG_ROWS, "gauge", "Rows of those segments, as far as known",
             [(labels, lag.rows) for labels, lag in labelled]),
            (LAG_SECONDS, "gauge", "Seconds since the oldest segment a WAL trigger has not finished was committed",
             [(labels, lag.seconds) for labels, lag in labelled]),
            (SKIPPED, "counter", "WAL segments a trigger gave up past --plugin-wal-backlog-limit since it started",
             [(labels, lag.skipped_segments) for labels, lag in labelled]),
            (ROWS_FINISHED, "counter", "Rows a WAL trigger finished (called with, write-backs committed) since it "
             "started", [(labels, lag.rows_finished) for labels, lag in labelled]),
        ]
