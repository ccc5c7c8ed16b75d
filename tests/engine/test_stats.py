"""engine/stats.py: per-trigger plugin call counters and their /metrics families."""

from __future__ import annotations

import itertools
import threading

from lakeflux.engine.stats import (
    BACKLOG,
    BACKLOG_ROWS,
    CALLS,
    FAILURES,
    LAG_SECONDS,
    ROWS_FINISHED,
    SECONDS,
    SKIPPED,
    EngineStats,
    WalLagSample,
)


def ticking(step: float):
    """A perf counter that moves `step` seconds on every read: each call lasts exactly `step`."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def samples(stats: EngineStats, backlogs=()) -> dict[str, list]:
    return {name: values for name, _, _, values in stats.families(backlogs)}


def test_counts_calls_failures_and_seconds():
    stats = EngineStats(ticking(0.25))
    counter = stats.counter("db", "t", "request")
    counter.finished(counter.started(), ok=True)
    counter.finished(counter.started(), ok=False)
    in_flight = counter.started()  # started, not yet finished: counted as a call, no seconds yet
    labels = {"database": "db", "trigger": "t", "trigger_type": "request"}
    assert samples(stats) == {
        CALLS: [(labels, 3)], FAILURES: [(labels, 1)], SECONDS: [(labels, 0.5)], BACKLOG: [], BACKLOG_ROWS: [],
        LAG_SECONDS: [], SKIPPED: [], ROWS_FINISHED: [],
    }
    counter.finished(in_flight, ok=True)
    assert samples(stats)[SECONDS] == [(labels, 0.75)]


def test_families_are_typed_sorted_and_carry_the_wal_lag():
    stats = EngineStats(ticking(1.0))
    stats.counter("db", "w", "wal")
    stats.counter("a", "s", "schedule")
    families = stats.families([WalLagSample("db", "w", 3, 120, 2.5, 7, 900), WalLagSample("a", "v", 0, 0, 0.0, 0, 0)])
    assert [(name, kind) for name, kind, _, _ in families] == [
        (CALLS, "counter"), (FAILURES, "counter"), (SECONDS, "counter"), (BACKLOG, "gauge"),
        (BACKLOG_ROWS, "gauge"), (LAG_SECONDS, "gauge"), (SKIPPED, "counter"), (ROWS_FINISHED, "counter")]
    assert [labels["trigger"] for labels, _ in samples(stats)[CALLS]] == ["s", "w"]
    a, w = {"database": "a", "trigger": "v"}, {"database": "db", "trigger": "w"}
    assert [values for _, _, _, values in families[3:]] == [
        [(a, 0), (w, 3)], [(a, 0), (w, 120)], [(a, 0.0), (w, 2.5)], [(a, 0), (w, 7)], [(a, 0), (w, 900)]]


def test_the_same_counter_comes_back_until_the_trigger_is_deleted():
    stats = EngineStats(ticking(1.0))
    first = stats.counter("db", "t", "request")
    first.finished(first.started(), ok=True)
    assert stats.counter("db", "t", "request") is first  # disable/enable keeps the counts
    stats.counter("db", "t", "wal")  # an update that changed the type: a second series
    stats.counter("db", "other", "wal")
    stats.counter("db2", "t", "wal")
    stats.forget_trigger("db", "t")
    assert [labels for labels, _ in samples(stats)[CALLS]] == [
        {"database": "db", "trigger": "other", "trigger_type": "wal"},
        {"database": "db2", "trigger": "t", "trigger_type": "wal"},
    ]
    stats.forget_database("db")
    assert [labels["database"] for labels, _ in samples(stats)[CALLS]] == ["db2"]
    assert stats.counter("db", "t", "request") is not first  # a re-created trigger starts from zero


def test_counting_from_many_threads_loses_nothing():
    stats = EngineStats(lambda: 0.0)
    counter = stats.counter("db", "t", "wal")
    per_thread, threads = 2000, 8

    def work() -> None:
        for i in range(per_thread):
            counter.finished(counter.started(), ok=i % 2 == 0)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    snap = counter.snapshot()
    assert (snap.calls, snap.failures) == (per_thread * threads, per_thread * threads // 2)
