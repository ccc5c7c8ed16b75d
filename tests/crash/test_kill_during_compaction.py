"""SIGKILL a real server at each step of a snapshot that compacts overlapping files; after a restart every
acknowledged row is there exactly once, late writes still win their points' fields, and the table's files
no longer overlap once a later snapshot ran (recovery completes or discards the half-done compaction).

Every batch writes new points and, in the same request, rewrites the points of the batch before it with
one more field (`late`): once the earlier batch is persisted, each snapshot compacts its files.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_kill_during_snapshot import SNAPSHOT_OFTEN, post, query, restart_after_kill

from lakeflux.testing.process import ServerProcess

ROWS = 300
T0 = 1_767_225_600 * 10**9
HOUR = 3_600 * 10**9
STEPS = ["staged", "trashed", "committed", "copying", "retiring", "swapped", "cleaned"]
BATCHES = 24


def time_of(b: int, i: int) -> int:
    return T0 + (b * ROWS + i) * HOUR // 5  # a batch spans 2.5 days: several files per snapshot


def batch(b: int) -> bytes:
    """Batch b's points, then batch b-1's points again with `late=b` (their `v` is kept)."""
    lines = [f"cpu,host=h{i % 3},batch=b{b} v={i}i {time_of(b, i)}" for i in range(ROWS)]
    if b > 0:
        lines += [f"cpu,host=h{i % 3},batch=b{b - 1} late={b}i {time_of(b - 1, i)}" for i in range(ROWS)]
    return "\n".join(lines).encode()


def check(url: str, acked: set[int]) -> set[int]:
    """Each visible batch whole and once, `v` intact, `late` from the next batch exactly when that one is
    visible (a batch and its late rewrite are one request: all or nothing)."""
    rows = query(url, "SELECT batch, count(*) AS n, count(DISTINCT time) AS d, count(v) AS v, "
                      "min(late) AS lo, max(late) AS hi, count(late) AS l FROM cpu GROUP BY batch")
    seen = {int(r["batch"][1:]): r for r in rows}
    assert acked <= set(seen), f"acknowledged batches missing: {sorted(acked - set(seen))}"
    for b, r in seen.items():
        assert r["n"] == r["d"] == r["v"] == ROWS, f"batch {b} not exactly once: {r}"
        if b + 1 in seen:
            assert (r["lo"], r["hi"], r["l"]) == (b + 1, b + 1, ROWS), f"batch {b} lost its late write: {r}"
        else:
            assert r["l"] == 0, f"batch {b} has a late write from an invisible batch: {r}"
    return set(seen)


def assert_files_do_not_overlap(url: str) -> None:
    files = query(url, "SELECT min_time, max_time FROM system.parquet_files WHERE table_name = 'cpu' "
                       "ORDER BY min_time")
    assert files
    for a, b in zip(files, files[1:], strict=False):
        assert a["max_time"] < b["min_time"], f"overlapping files after compaction: {a} {b}"


def write_batches(url: str, batches: range, make: Callable[[int], bytes] = batch) -> set[int]:
    acked = set()
    for b in batches:
        try:
            if post(f"{url}/api/v3/write_lp?db=snap", make(b)) == 204:
                acked.add(b)
        except OSError:
            break  # the failpoint killed the server
    return acked


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_sigkill_inside_compaction(tmp_path, step):
    data = tmp_path / "data"
    point = f"compaction.{step}"
    srv = ServerProcess(data, *SNAPSHOT_OFTEN, env={"LAKEFLUX_FAILPOINT": point}).start()
    try:
        acked = write_batches(srv.url, range(BATCHES))
        srv = restart_after_kill(srv, point, acked)
        visible = check(srv.url, acked)
        # Compaction keeps working after recovery (the next batch rewrites the last visible one), and a
        # second restart sees the same rows.
        last = max(visible)
        more = write_batches(srv.url, range(last + 1, last + 4))
        assert more == set(range(last + 1, last + 4))
        srv.stop()
        srv = ServerProcess(data, *SNAPSHOT_OFTEN, port=srv.port).start()
        assert check(srv.url, visible | more) == visible | more
        # One more write persists the replayed rows: the table's files are merged into disjoint ranges.
        assert write_batches(srv.url, range(last + 4, last + 5)) == {last + 4}
        srv.stop()
        srv = ServerProcess(data, *SNAPSHOT_OFTEN, port=srv.port).start()
        check(srv.url, visible | more | {last + 4})
        assert_files_do_not_overlap(srv.url)
    finally:
        srv.stop()
