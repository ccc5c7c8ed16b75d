"""Durable ingest over HTTP: lakeflux started with its defaults vs InfluxDB 1.x (when installed).

    python benchmarks/ingest.py [--rows 200000] [--connections 2] [--batch 5000] [--json out.json]

Each connection sends 5,000-line batches and waits for each acknowledgement (204) before the
next, so the figure is durable lines/s. Also prints the line-protocol parser alone on the mixed
100k-line body, and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lpgen import mixed_body  # noqa: E402

from lakeflux.lineprotocol import parse  # noqa: E402
from lakeflux.model import Precision  # noqa: E402
from lakeflux.testing.process import ServerProcess, free_port  # noqa: E402


def make_batches(rows: int, batch: int) -> list[bytes]:
    """Batches of the mixed body; later rounds shift timestamps so no point repeats."""
    lines = mixed_body(100_000).split(b"\n")
    lines = [ln for ln in lines if ln]
    out: list[bytes] = []
    round_ = 0
    while len(out) * batch < rows:
        shifted = lines if round_ == 0 else [_shift(ln, round_) for ln in lines]
        for i in range(0, len(shifted), batch):
            if len(out) * batch >= rows:
                break
            out.append(b"\n".join(shifted[i:i + batch]))
        round_ += 1
    return out


def _shift(line: bytes, round_: int) -> bytes:
    head, _, ts = line.rpartition(b" ")
    return head + b" " + str(int(ts) + round_ * 1_000_000_007).encode()


async def send_all(url: str, batches: list[bytes], connections: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(url, data=body) as r:
                    if r.status not in (200, 204):
                        raise RuntimeError(f"write failed with {r.status}: {(await r.text())[:300]}")
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return time.perf_counter() - start


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def bench_lakeflux(batches: list[bytes], connections: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="lakeflux-bench-"))
    srv = ServerProcess(tmp / "data", "--without-auth", log_path=tmp / "server.log").start()
    try:
        url = f"{srv.url}/api/v3/write_lp?db=bench"
        try:
            seconds = asyncio.run(send_all(url, batches, connections))
        except Exception:
            print(srv.log(), file=sys.stderr)
            raise
        rss = peak_rss_kib(srv.proc.pid) if srv.proc else 0
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = sum(b.count(b"\n") + 1 for b in batches)
    return {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds, "peak_rss_mib": rss / 1024}


_UNSIGNED = re.compile(rb"(?<=[0-9])u(?=[, ]|$)", re.MULTILINE)


def for_influxdb1(batches: list[bytes]) -> list[bytes]:
    """InfluxDB 1.x predates unsigned fields (`u`): send those values as integers, same bytes otherwise."""
    return [_UNSIGNED.sub(b"i", b) for b in batches]


def bench_influxdb1(batches: list[bytes], connections: int) -> dict | None:
    """InfluxDB 1.x from Debian's `influxdb` package on loopback with its data in a temp dir."""
    binary = shutil.which("influxd") or ("/usr/bin/influxd" if os.path.exists("/usr/bin/influxd") else None)
    if binary is None:
        print("peer skipped: influxd not installed (apt-get install influxdb)", file=sys.stderr)
        return None
    tmp = Path(tempfile.mkdtemp(prefix="influx1-bench-"))
    port = free_port()
    conf = tmp / "influxdb.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{free_port()}"\n'
        f'[meta]\n  dir = "{tmp}/meta"\n[data]\n  dir = "{tmp}/data"\n  wal-dir = "{tmp}/wal"\n'
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        f'[monitor]\n  store-enabled = false\n'
    )
    proc = subprocess.Popen([binary, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                import urllib.request
                urllib.request.urlopen(urllib.request.Request(f"{base}/query?q=CREATE+DATABASE+bench",
                                                              method="POST"), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        seconds = asyncio.run(send_all(f"{base}/write?db=bench&precision=ns", batches, connections))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    lines = sum(b.count(b"\n") + 1 for b in batches)
    return {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds}


def bench_parser(repeats: int = 5) -> dict:
    body = mixed_body(100_000)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        parse(body, precision=Precision.NANOSECOND, default_time_ns=0)
        times.append(time.perf_counter() - start)
    return {"lines": 100_000, "median_seconds": statistics.median(times),
            "lines_per_s": 100_000 / statistics.median(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--connections", type=int, nargs="+", default=[2])
    ap.add_argument("--no-peer", action="store_true", help="skip InfluxDB 1.x")
    ap.add_argument("--json", type=Path, help="write results here")
    args = ap.parse_args()
    results: dict = {"parser": bench_parser()}
    print(f"parser alone: {results['parser']['lines_per_s']:,.0f} lines/s (mixed 100k-line body, median)")
    batches = make_batches(args.rows, args.batch)
    for c in args.connections:
        ours = bench_lakeflux(batches, c)
        row = {"lakeflux": ours}
        print(f"lakeflux  {c:>2} conn: {ours['lines_per_s']:>10,.0f} durable lines/s "
              f"({ours['lines']:,} lines in {ours['seconds']:.2f}s, peak RSS {ours['peak_rss_mib']:.0f} MiB)")
        peer = None if args.no_peer else bench_influxdb1(for_influxdb1(batches), c)
        if peer:
            row["influxdb1"] = peer
            row["ratio"] = ours["lines_per_s"] / peer["lines_per_s"]
            print(f"influxdb1 {c:>2} conn: {peer['lines_per_s']:>10,.0f} lines/s  → lakeflux/peer = "
                  f"{row['ratio']:.2f}×")
        results[f"connections_{c}"] = row
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
