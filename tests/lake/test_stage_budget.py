"""A snapshot stages tables in parallel only within a budget of buffered bytes (persist.STAGE_BYTES_IN_FLIGHT):
staging several large tables at once held several times their bytes and pushed the 10M-line ingest past
1 GiB of RSS. Checked on the budget itself with real threads: what is held at once never exceeds the limit,
except one item larger than the limit, which proceeds alone; every item finishes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from lakeflux.buffer.persist import _ByteBudget


def test_items_held_at_once_stay_within_the_budget():
    budget = _ByteBudget(100)
    lock = threading.Lock()
    held: list[int] = []
    seen: list[list[int]] = []

    def work(n: int) -> int:
        with budget.hold(n):
            with lock:
                held.append(n)
                seen.append(list(held))
            time.sleep(0.005)  # give the other threads a chance to enter (nothing here measures time)
            with lock:
                held.remove(n)
        return n

    weights = [60, 60, 30, 150, 10, 10, 40, 5, 5, 5, 90, 200]
    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(work, weights)) == sorted(weights)
    for at_once in seen:
        assert sum(at_once) <= 100 or len(at_once) == 1, at_once


def test_items_that_fit_together_are_held_together():
    budget = _ByteBudget(100)
    both_in = threading.Barrier(2, timeout=30)  # broken (an error) if the budget made one wait for the other

    def work(n: int) -> None:
        with budget.hold(n):
            both_in.wait()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(work, [30, 70]))
