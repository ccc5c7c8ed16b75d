"""Lines per second of the line-protocol parsers, on the mixed and the Telegraf-like bodies.

Run: python benchmarks/parse.py [lines] [--json out.json]

For each body, cut into 5,000-line bodies as the server sees them (per-body costs included):
- one thread: lines per CPU second of `parse`, and the exact parser's for scale. CPU time is what other
  processes on the machine inflate least, but not at all only on bare metal: on a virtual machine whose
  host is busy, a thread's CPU seconds stretch too (the same run measured 2.1M-3.6M mixed lines per CPU
  second minutes apart). So every figure is the best of `--runs` runs: noise only ever adds time;
- two threads parsing bodies at once: aggregate lines per wall second, its ratio to one thread's lines
  per wall second (the median over pairs of runs, one thread then two, so both see the same machine),
  and the CPU seconds the process used per wall second (how many cores the parse kept busy: a parse
  that holds the GIL cannot go past 1.0, whatever else runs on the machine);
- the share of one thread's CPU time spent holding the GIL (all but the native scan, which releases it;
  each body scanned alone right after its parse), and the two-thread speedup that share allows (Amdahl):
  a view of the same question that a busy machine moves less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lpgen import mixed_batches, telegraf_batches  # noqa: E402

from lakeflux.lineprotocol import _scanner, parse, parse_exact  # noqa: E402
from lakeflux.model import Precision  # noqa: E402

BATCH_LINES = 5000
TARGET_LINES_PER_CPU_S = 3_000_000
TARGET_TWO_THREADS = 1.7
BODIES = {"mixed": mixed_batches, "telegraf": telegraf_batches}


def _parse_all(batches: list[bytes], function=parse) -> None:
    for batch in batches:
        function(batch, precision=Precision.NANOSECOND, default_time_ns=0)


def one_thread(batches: list[bytes], runs: int) -> tuple[float, float, float]:
    """Least CPU and wall seconds to parse every batch once on this thread, over `runs` runs, and the
    share of the CPU time the native scan (no GIL) took. The share comes from each batch scanned alone
    right after its parse, summed over every run: the two halves see the same machine, however it
    changes meanwhile."""
    cpu, wall = [], []
    parse_cpu = scan_cpu = 0.0
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.thread_time()
        _parse_all(batches)
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        for batch in batches:
            at = time.thread_time()
            parse(batch, precision=Precision.NANOSECOND, default_time_ns=0)
            mid = time.thread_time()
            _scanner.scan(batch, 1, 0)
            parse_cpu += mid - at
            scan_cpu += time.thread_time() - mid
    return min(cpu), min(wall), scan_cpu / parse_cpu


def _wall(batches: list[bytes], count: int) -> tuple[float, float]:
    """Wall seconds for `count` threads each parsing every batch, and process CPU seconds per wall second."""
    workers = [threading.Thread(target=_parse_all, args=(batches,)) for _ in range(count)]
    started, started_cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return elapsed, (time.process_time() - started_cpu) / elapsed


def two_threads(batches: list[bytes], runs: int) -> tuple[float, float, float]:
    """Two threads each parsing every batch vs one thread, in pairs of runs one right after the other:
    the median ratio of the pairs' throughputs (what a drifting machine moves least), the best two-thread
    wall seconds and that run's process CPU seconds per wall second."""
    ratios, two = [], []
    for _ in range(runs):
        one_wall, _ = _wall(batches, 1)
        two_wall, busy = _wall(batches, 2)
        ratios.append(2 * one_wall / two_wall)
        two.append((two_wall, busy))
    best = min(two)
    return statistics.median(ratios), best[0], best[1]


def bench_body(name: str, lines: int, runs: int) -> dict:
    batches = list(BODIES[name](lines, BATCH_LINES))
    _parse_all(batches)  # warm: scratch memory, schema cache
    cpu, wall, native_share = one_thread(batches, runs)
    exact_started = time.thread_time()
    _parse_all(batches[: max(1, len(batches) // 10)], parse_exact)
    exact_lines = sum(b.count(b"\n") + 1 for b in batches[: max(1, len(batches) // 10)])
    exact_cpu = time.thread_time() - exact_started
    speedup, two_wall, two_busy = two_threads(batches, runs)
    gil_share = max(0.0, 1 - native_share)
    result = {
        "lines": lines, "batch": BATCH_LINES,
        "one_thread_lines_per_cpu_s": lines / cpu, "one_thread_lines_per_wall_s": lines / wall,
        "exact_lines_per_cpu_s": exact_lines / exact_cpu,
        "two_threads_lines_per_wall_s": 2 * lines / two_wall,
        "two_threads_speedup": speedup,
        "two_threads_cpu_per_wall": two_busy,
        "gil_share": gil_share, "two_threads_amdahl_bound": 2 / (1 + gil_share),
        "target_lines_per_cpu_s": TARGET_LINES_PER_CPU_S, "target_two_threads": TARGET_TWO_THREADS,
    }
    print(f"{name:<9} 1 thread: {result['one_thread_lines_per_cpu_s']:>11,.0f} lines/CPU-s "
          f"({cpu / len(batches) * 1000:.2f} ms CPU per {BATCH_LINES:,}-line body; exact parser "
          f"{result['exact_lines_per_cpu_s']:,.0f})")
    print(f"{name:<9} 2 threads: {result['two_threads_lines_per_wall_s']:>10,.0f} lines/s aggregate = "
          f"{result['two_threads_speedup']:.2f}x one thread (wall, median of paired runs), {two_busy:.2f} cores busy "
          f"(targets: {TARGET_LINES_PER_CPU_S / 1e6:g}M lines/CPU-s, {TARGET_TWO_THREADS}x)")
    print(f"{name:<9} GIL held {gil_share:.0%} of a parse's CPU time: two threads can reach at most "
          f"{result['two_threads_amdahl_bound']:.2f}x")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lines", type=int, nargs="?", default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {name: bench_body(name, args.lines, args.runs) for name in BODIES}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
