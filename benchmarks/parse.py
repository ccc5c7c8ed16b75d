"""Lines per second of the fast and the exact line-protocol parsers on the mixed body.

Run: python benchmarks/parse.py [lines] — prints the median of several runs of each parser, then the fast
parser on the same lines cut into 5,000-line bodies, as the server sees them (per-body costs included).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lpgen import mixed_batches, mixed_body  # noqa: E402

from lakeflux.lineprotocol import parse, parse_exact  # noqa: E402
from lakeflux.model import Precision  # noqa: E402

BATCH_LINES = 5000


def _median_seconds(function, body: bytes, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of a parse (CPU time is what a loaded machine cannot inflate)."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        function(body, precision=Precision.NANOSECOND, default_time_ns=0)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _batched_cpu_seconds(batches: list[bytes], runs: int) -> float:
    """Median CPU seconds to parse every batch once."""
    cpu = []
    for _ in range(runs):
        started = time.process_time()
        for batch in batches:
            parse(batch, precision=Precision.NANOSECOND, default_time_ns=0)
        cpu.append(time.process_time() - started)
    return statistics.median(cpu)


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    body = mixed_body(lines)
    result = parse(body, precision=Precision.NANOSECOND, default_time_ns=0)
    print(f"body: {lines} lines, {len(body) / 1e6:.1f} MB, {result.row_count} rows, "
          f"{len(result.errors)} errors, tables {list(result.tables)}")
    fast, fast_cpu = _median_seconds(parse, body, runs=7)
    exact, exact_cpu = _median_seconds(parse_exact, body, runs=3)
    for name, wall, cpu in (("parse", fast, fast_cpu), ("parse_exact", exact, exact_cpu)):
        print(f"{name:<12}{lines / wall:>10,.0f} lines/s wall ({wall * 1000:.0f} ms), "
              f"{lines / cpu:>10,.0f} lines/s cpu ({cpu * 1000:.0f} ms)")
    print(f"exact / fast  {exact / fast:.1f}x")
    batches = list(mixed_batches(lines, BATCH_LINES))
    cpu = _batched_cpu_seconds(batches, runs=7)
    print(f"parse in {BATCH_LINES:,}-line bodies: {lines / cpu:,.0f} lines/s cpu, "
          f"{cpu / len(batches) * 1000:.2f} ms per body")


if __name__ == "__main__":
    main()
