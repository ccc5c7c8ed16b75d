"""Lines per second of the fast and the exact line-protocol parsers on the mixed body.

Run: python benchmarks/parse.py [lines] — prints the median of several runs of each parser.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lpgen import mixed_body  # noqa: E402

from lakeflux.lineprotocol import parse, parse_exact  # noqa: E402
from lakeflux.model import Precision  # noqa: E402


def _median_seconds(function, body: bytes, runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        function(body, precision=Precision.NANOSECOND, default_time_ns=0)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    body = mixed_body(lines)
    result = parse(body, precision=Precision.NANOSECOND, default_time_ns=0)
    print(f"body: {lines} lines, {len(body) / 1e6:.1f} MB, {result.row_count} rows, "
          f"{len(result.errors)} errors, tables {list(result.tables)}")
    fast = _median_seconds(parse, body, runs=7)
    exact = _median_seconds(parse_exact, body, runs=3)
    print(f"parse       {lines / fast:>12,.0f} lines/s  ({fast * 1000:.0f} ms)")
    print(f"parse_exact {lines / exact:>12,.0f} lines/s  ({exact * 1000:.0f} ms)")
    print(f"ratio        {exact / fast:.1f}x")


if __name__ == "__main__":
    main()
