"""Durable ingest over HTTP: lakeflux started with its defaults vs InfluxDB 1.x (when installed).

    python benchmarks/ingest.py [--seconds 20] [--bodies mixed telegraf] [--connections 2 16] [--repeats 1]
                                [--json out.json]
    python benchmarks/ingest.py --memory-only --rows 10000000
    python benchmarks/ingest.py --ceilings [--bodies mixed] [--connections 2] [--repeats 3]

Each connection sends 5,000-line batches and waits for each acknowledgement (204) before its next, so the
figure is durable lines/s. Bodies (benchmarks/lpgen.py): `mixed` (cpu/mem/disk/net lines, 5% with escapes
or quoted strings) and `telegraf` (Telegraf's cpu input from 1,250 hosts × 4 cpus: 5,000 series, 5
full-precision floats, one timestamp per batch). Each side sends for --seconds (batches come from a pool
generated before the clock starts, timestamps rewritten so every point is new). Both servers start empty
with their default settings (file store for lakeflux); lakeflux and the peer alternate run by run, and with
--repeats N the median run is kept. Also prints the server's peak RSS (VmHWM); `--memory-only --rows
10000000` is the full-size memory run. Under each lakeflux figure, where its writes' time went (the
server's /metrics: per request, and per WAL commit its encode, store and apply). Wall-clock figures: on a
shared machine they move with its load.

`--ceilings` measures what bounds the durable figure, with the same client, interleaved run by run: lakeflux
durable, lakeflux with `no_sync=true` (acknowledged once buffered: no commit to wait for) and a bare aiohttp
server that only reads each body and answers 204 (the HTTP and client cost alone, no parse, no storage).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import InfluxDB1, peak_rss_kib, send_batches  # noqa: E402
from lpgen import endless_batches, mixed_batches  # noqa: E402

from lakeflux.testing.process import ServerProcess, free_port  # noqa: E402

TARGET_RATIO = 3.0
TARGET_RSS_MIB = 1024


def count_lines(batches: list[bytes]) -> int:
    return sum(b.count(b"\n") + 1 for b in batches)


class Timed:
    """Batches from `source` until `seconds` have passed since the first was taken, counting the lines."""

    def __init__(self, source: Iterator[bytes], seconds: float) -> None:
        self.source, self.seconds, self.lines = source, seconds, 0

    def __iter__(self) -> Iterator[bytes]:
        deadline = time.perf_counter() + self.seconds
        for body in self.source:
            if time.perf_counter() >= deadline:
                return
            self.lines += body.count(b"\n") + 1
            yield body


def bench_lakeflux_once(batches: Iterable[bytes], connections: int, lines: int | None = None,
                        query: str = "") -> dict:
    """One fresh server, every batch sent; lines/s and the server's peak RSS.

    `batches` may be a lazy iterator (then say how many `lines` it holds, or pass a `Timed`): the memory
    run streams 10M lines.
    """
    tmp = Path(tempfile.mkdtemp(prefix="lakeflux-bench-"))
    srv = ServerProcess(tmp / "data", "--without-auth", log_path=tmp / "server.log").start()
    try:
        try:
            seconds = send_batches(f"{srv.url}/api/v3/write_lp?db=bench{query}", batches, connections)
        except Exception:
            print(srv.log(), file=sys.stderr)
            raise
        rss = peak_rss_kib(srv.proc.pid) if srv.proc else 0
        stages = write_stages(srv.url)
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if lines is None:
        lines = batches.lines if isinstance(batches, Timed) else count_lines(batches)  # type: ignore[arg-type]
    return {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds, "peak_rss_mib": rss / 1024,
            "stages": stages}


def write_stages(url: str) -> dict:
    """Where a write's time went, from the server's /metrics: per request (ms: to the answer, and the parse
    on its own), per WAL commit (ms: encode, store, apply) and how many rows and requests a commit held."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as r:
        text = r.read().decode()
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        key = name if "stage=" in name else name.split("{", 1)[0]
        sums[key] = sums.get(key, 0.0) + float(value)
    requests = sums.get("lakeflux_write_duration_seconds_count", 0.0)
    commits = sums.get("lakeflux_wal_flushes_total", 0.0)
    if not requests or not commits:
        return {}
    stage = lambda s: 1000 * sums.get(f'lakeflux_wal_flush_stage_seconds_total{{stage="{s}"}}', 0.0) / commits  # noqa: E731
    return {"request_ms": 1000 * sums.get("lakeflux_write_duration_seconds_sum", 0.0) / requests,
            "parse_ms": 1000 * sums.get("lakeflux_write_parse_seconds_total", 0.0) / requests,
            "encode_ms": stage("encode"), "store_ms": stage("store"), "apply_ms": stage("apply"),
            "rows_per_commit": sums.get("lakeflux_wal_flush_rows_total", 0.0) / commits,
            "requests_per_commit": requests / commits}


def describe_stages(s: dict) -> str:
    if not s:
        return "no write stages"
    return (f"per request {s['request_ms']:.1f} ms (parse {s['parse_ms']:.1f}); per WAL commit encode "
            f"{s['encode_ms']:.1f} + store {s['store_ms']:.1f} + apply {s['apply_ms']:.1f} ms for "
            f"{s['rows_per_commit']:,.0f} rows ({s['requests_per_commit']:.1f} requests)")


def bench_memory(rows: int, connections: int = 2) -> dict:
    """Peak RSS of a fresh server ingesting `rows` mixed lines, generated while sending (target ≤ 1 GiB)."""
    result = bench_lakeflux_once(mixed_batches(rows), connections, lines=rows)
    result["target_mib"] = TARGET_RSS_MIB
    print(f"memory: peak RSS {result['peak_rss_mib']:.0f} MiB after {rows:,} lines "
          f"(target ≤ {TARGET_RSS_MIB} MiB; {result['lines_per_s']:,.0f} lines/s with the generator in the loop)")
    return result


_UNSIGNED = re.compile(rb"(?<=[0-9])u(?=[, ]|$)", re.MULTILINE)


def for_influxdb1(body: bytes) -> bytes:
    """InfluxDB 1.x predates unsigned fields (`u`): send those values as integers, same bytes otherwise."""
    return _UNSIGNED.sub(b"i", body)


def bench_influxdb1_once(batches: Timed, connections: int) -> dict:
    with InfluxDB1() as peer:
        seconds = send_batches(peer.write_url, batches, connections)
        rss = peer.rss_kib()
    return {"lines": batches.lines, "seconds": seconds, "lines_per_s": batches.lines / seconds,
            "peak_rss_mib": rss / 1024}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median lines/s, plus every run's figure."""
    ordered = sorted(runs, key=lambda r: r["lines_per_s"])
    best = dict(ordered[len(ordered) // 2])
    best["runs_lines_per_s"] = [r["lines_per_s"] for r in runs]
    return best


def bench_connections(body: str, connections: int, seconds: float, repeats: int, peer: bool) -> dict:
    """lakeflux and (when installed) InfluxDB 1.x, interleaved run by run so drift hits both alike."""
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(bench_lakeflux_once(Timed(endless_batches(body), seconds), connections))
        if peer:
            source = endless_batches(body, transform=for_influxdb1)
            try:
                theirs.append(bench_influxdb1_once(Timed(source, seconds), connections))
            except RuntimeError as e:  # an overloaded influxd answers 500 {"error":"timeout"}: report, go on
                print(f"{body} influxdb1 {connections} conn failed: {e}", file=sys.stderr)
    row: dict = {"body": body, "connections": connections, "lakeflux": _median_run(ours)}
    if peer and not theirs:
        row["influxdb1_error"] = "every run failed (see the log)"
    if theirs:
        row["influxdb1"] = _median_run(theirs)
        row["ratio"] = row["lakeflux"]["lines_per_s"] / row["influxdb1"]["lines_per_s"]
        row["target_ratio"] = TARGET_RATIO
    return row


def run(bodies: list[str], connections: list[int], seconds: float, repeats: int, peer: bool) -> dict:
    """The whole ingest benchmark; prints as it goes and returns the results."""
    results: dict = {"seconds": seconds, "batch": 5000, "runs": []}
    if peer and not InfluxDB1.available():
        print("peer skipped: influxd not installed (apt-get install influxdb)", file=sys.stderr)
        peer = False
    for body in bodies:
        for c in connections:
            row = bench_connections(body, c, seconds, repeats, peer)
            ours = row["lakeflux"]
            print(f"{body:<8} lakeflux  {c:>2} conn: {ours['lines_per_s']:>10,.0f} durable lines/s "
                  f"({ours['lines']:,} lines in {ours['seconds']:.1f}s, peak RSS {ours['peak_rss_mib']:.0f} MiB)")
            print(f"{'':<8}             {describe_stages(ours.get('stages', {}))}")
            if "influxdb1" in row:
                print(f"{body:<8} influxdb1 {c:>2} conn: {row['influxdb1']['lines_per_s']:>10,.0f} lines/s  "
                      f"→ lakeflux/peer = {row['ratio']:.2f}× (target ≥ {TARGET_RATIO:g}×)", flush=True)
            results["runs"].append(row)
    return results


BARE_SERVER = """
import sys
from aiohttp import web
async def write(request):
    await request.read()
    return web.Response(status=204)
app = web.Application(client_max_size=64 << 20)
app.router.add_post("/write", write)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def bench_bare_once(batches: Timed, connections: int) -> dict:
    """The same client against an aiohttp server that reads each body and answers 204: nothing else."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/write", data=b"x"), timeout=1)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the bare HTTP server did not start") from None
                time.sleep(0.1)
        seconds = send_batches(f"http://127.0.0.1:{port}/write", batches, connections)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"lines": batches.lines, "seconds": seconds, "lines_per_s": batches.lines / seconds}


def ceilings(bodies: list[str], connections: list[int], seconds: float, repeats: int) -> dict:
    """Durable vs no_sync vs bare HTTP with the same client (module docstring), interleaved run by run."""
    results: dict = {"seconds": seconds, "runs": []}
    for body in bodies:
        for c in connections:
            runs: dict[str, list[dict]] = {"durable": [], "no_sync": [], "bare_http": []}
            for _ in range(repeats):
                runs["durable"].append(bench_lakeflux_once(Timed(endless_batches(body), seconds), c))
                runs["no_sync"].append(bench_lakeflux_once(Timed(endless_batches(body), seconds), c,
                                                           query="&no_sync=true"))
                runs["bare_http"].append(bench_bare_once(Timed(endless_batches(body), seconds), c))
            row = {"body": body, "connections": c, **{k: _median_run(v) for k, v in runs.items()}}
            bare = row["bare_http"]["lines_per_s"]
            print(f"{body:<8} {c:>2} conn: durable {row['durable']['lines_per_s']:>10,.0f}  no_sync "
                  f"{row['no_sync']['lines_per_s']:>10,.0f}  bare HTTP {bare:>10,.0f} lines/s "
                  f"(durable = {row['durable']['lines_per_s'] / bare:.0%} of bare HTTP)", flush=True)
            results["runs"].append(row)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="sending time per side and run")
    ap.add_argument("--bodies", nargs="+", default=["mixed", "telegraf"], choices=["mixed", "telegraf"])
    ap.add_argument("--rows", type=int, default=10_000_000, help="lines of the --memory-only run")
    ap.add_argument("--connections", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--repeats", type=int, default=1, help="fresh servers per side; the median run is kept")
    ap.add_argument("--no-peer", action="store_true", help="skip InfluxDB 1.x")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the peak-RSS run: stream --rows lines into one server (no peer)")
    ap.add_argument("--ceilings", action="store_true",
                    help="durable vs no_sync vs a bare HTTP server, same client (no peer)")
    ap.add_argument("--json", type=Path, help="write results here")
    args = ap.parse_args()
    if args.memory_only:
        results = bench_memory(args.rows, args.connections[0])
    elif args.ceilings:
        results = ceilings(args.bodies, args.connections, args.seconds, args.repeats)
    else:
        results = run(args.bodies, args.connections, args.seconds, args.repeats, not args.no_peer)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
