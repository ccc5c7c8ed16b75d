"""Durable ingest over HTTP: lakeflux started with its defaults vs InfluxDB 1.x (when installed).

    python benchmarks/ingest.py [--rows 200000] [--connections 2 16] [--repeats 1] [--json out.json]

Each connection sends 5,000-line batches of the mixed body (benchmarks/lpgen.py) and waits for each
acknowledgement (204) before its next, so the figure is durable lines/s. Both servers start empty with
their default settings (file store for lakeflux); batches are generated before the clock starts. With
--repeats N each server is started N times and the median is kept. Also prints the parser alone and the
server's peak RSS (VmHWM), the memory target's figure: `--rows 10000000` is the full-size memory run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import InfluxDB1, peak_rss_kib, send_batches  # noqa: E402
from lpgen import mixed_batches, mixed_body  # noqa: E402

from lakeflux.lineprotocol import parse  # noqa: E402
from lakeflux.model import Precision  # noqa: E402
from lakeflux.testing.process import ServerProcess  # noqa: E402

TARGET_RATIO = 3.0
TARGET_RSS_MIB = 1024


def count_lines(batches: list[bytes]) -> int:
    return sum(b.count(b"\n") + 1 for b in batches)


def bench_lakeflux_once(batches: Iterable[bytes], connections: int, lines: int | None = None) -> dict:
    """One fresh server, every batch sent; lines/s and the server's peak RSS.

    `batches` may be a lazy iterator (then say how many `lines` it holds): the memory run streams 10M lines.
    """
    tmp = Path(tempfile.mkdtemp(prefix="lakeflux-bench-"))
    srv = ServerProcess(tmp / "data", "--without-auth", log_path=tmp / "server.log").start()
    try:
        try:
            seconds = send_batches(f"{srv.url}/api/v3/write_lp?db=bench", batches, connections)
        except Exception:
            print(srv.log(), file=sys.stderr)
            raise
        rss = peak_rss_kib(srv.proc.pid) if srv.proc else 0
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = count_lines(batches) if lines is None else lines  # type: ignore[arg-type]
    return {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds, "peak_rss_mib": rss / 1024}


def bench_memory(rows: int, connections: int = 2) -> dict:
    """Peak RSS of a fresh server ingesting `rows` mixed lines, generated while sending (target ≤ 1 GiB)."""
    result = bench_lakeflux_once(mixed_batches(rows), connections, lines=rows)
    result["target_mib"] = TARGET_RSS_MIB
    print(f"memory: peak RSS {result['peak_rss_mib']:.0f} MiB after {rows:,} lines "
          f"(target ≤ {TARGET_RSS_MIB} MiB; {result['lines_per_s']:,.0f} lines/s with the generator in the loop)")
    return result


_UNSIGNED = re.compile(rb"(?<=[0-9])u(?=[, ]|$)", re.MULTILINE)


def for_influxdb1(batches: list[bytes]) -> list[bytes]:
    """InfluxDB 1.x predates unsigned fields (`u`): send those values as integers, same bytes otherwise."""
    return [_UNSIGNED.sub(b"i", b) for b in batches]


def bench_influxdb1_once(batches: list[bytes], connections: int) -> dict:
    with InfluxDB1() as peer:
        seconds = send_batches(peer.write_url, batches, connections)
        rss = peer.rss_kib()
    lines = count_lines(batches)
    return {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds, "peak_rss_mib": rss / 1024}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median lines/s, plus every run's figure."""
    ordered = sorted(runs, key=lambda r: r["lines_per_s"])
    best = dict(ordered[len(ordered) // 2])
    best["runs_lines_per_s"] = [r["lines_per_s"] for r in runs]
    return best


def bench_connections(batches: list[bytes], connections: int, repeats: int, peer: bool) -> dict:
    """lakeflux and (when installed) InfluxDB 1.x, interleaved run by run so drift hits both alike."""
    ours, theirs = [], []
    peer_batches = for_influxdb1(batches) if peer else []
    for _ in range(repeats):
        ours.append(bench_lakeflux_once(batches, connections))
        if peer:
            theirs.append(bench_influxdb1_once(peer_batches, connections))
    row: dict = {"connections": connections, "lakeflux": _median_run(ours)}
    if theirs:
        row["influxdb1"] = _median_run(theirs)
        row["ratio"] = row["lakeflux"]["lines_per_s"] / row["influxdb1"]["lines_per_s"]
        row["target_ratio"] = TARGET_RATIO
    return row


def bench_parser(repeats: int = 5) -> dict:
    body = mixed_body(100_000)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        parse(body, precision=Precision.NANOSECOND, default_time_ns=0)
        times.append(time.perf_counter() - start)
    return {"lines": 100_000, "median_seconds": statistics.median(times),
            "lines_per_s": 100_000 / statistics.median(times)}


def run(rows: int, connections: list[int], repeats: int, peer: bool, batch: int = 5000) -> dict:
    """The whole ingest benchmark; prints as it goes and returns the results."""
    results: dict = {"rows": rows, "batch": batch, "parser": bench_parser()}
    print(f"parser alone: {results['parser']['lines_per_s']:,.0f} lines/s (mixed 100k-line body, median)")
    if peer and not InfluxDB1.available():
        print("peer skipped: influxd not installed (apt-get install influxdb)", file=sys.stderr)
        peer = False
    batches = list(mixed_batches(rows, batch))
    for c in connections:
        row = bench_connections(batches, c, repeats, peer)
        ours = row["lakeflux"]
        print(f"lakeflux  {c:>2} conn: {ours['lines_per_s']:>10,.0f} durable lines/s "
              f"({ours['lines']:,} lines in {ours['seconds']:.2f}s, peak RSS {ours['peak_rss_mib']:.0f} MiB)")
        if "influxdb1" in row:
            print(f"influxdb1 {c:>2} conn: {row['influxdb1']['lines_per_s']:>10,.0f} lines/s  "
                  f"→ lakeflux/peer = {row['ratio']:.2f}× (target ≥ {TARGET_RATIO:g}×)")
        results[f"connections_{c}"] = row
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--connections", type=int, nargs="+", default=[2])
    ap.add_argument("--repeats", type=int, default=1, help="fresh servers per side; the median run is kept")
    ap.add_argument("--no-peer", action="store_true", help="skip InfluxDB 1.x")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the peak-RSS run: stream --rows lines into one server (no peer)")
    ap.add_argument("--json", type=Path, help="write results here")
    args = ap.parse_args()
    if args.memory_only:
        results = bench_memory(args.rows, args.connections[0])
    else:
        results = run(args.rows, args.connections, args.repeats, not args.no_peer, args.batch)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
