"""Shared pieces of the benchmarks: the InfluxDB 1.x peer, the batch sender, medians, RSS, forced snapshots.

Run as a script it is the load generator for benchmarks whose server runs in the benchmark's own process
(S3): `python benchmarks/common.py send URL --rows N --connections C` prints `{"seconds": …}` as JSON,
so client and server never share one interpreter lock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lakeflux.testing.process import free_port  # noqa: E402

NOISE_NOTE = ("2-core machine shared with other engineers' test runs: figures are medians of repeated "
              "runs and ratios are against a peer measured in the same run; expect ±20% between runs.")


# --- statistics ------------------------------------------------------------------------------------
def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall seconds of `fn()` over `repeats` runs after `warmup` untimed ones; also every sample."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0–100) by nearest rank; values need not be sorted."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --- processes -------------------------------------------------------------------------------------
def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set) of a live process in KiB; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def influxd_binary() -> str | None:
    """The InfluxDB 1.x server binary (Debian's `influxdb` package), or None when not installed."""
    return shutil.which("influxd") or ("/usr/bin/influxd" if os.path.exists("/usr/bin/influxd") else None)


class InfluxDB1:
    """InfluxDB 1.x on loopback with its data in a temp dir, on its default engine settings.

    `InfluxDB1.available()` says whether it can run; use as a context manager.
    """

    def __init__(self, db: str = "bench") -> None:
        self.db = db
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="influx1-bench-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return influxd_binary() is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/write?db={self.db}&precision=ns"

    def __enter__(self) -> InfluxDB1:
        binary = influxd_binary()
        if binary is None:
            raise RuntimeError("influxd not installed (apt-get install influxdb)")
        conf = self.tmp / "influxdb.conf"
        # Only paths, ports and the self-monitoring store change; every engine setting stays default.
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{self.tmp}/meta"\n[data]\n  dir = "{self.tmp}/data"\n  wal-dir = "{self.tmp}/wal"\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            f"[monitor]\n  store-enabled = false\n"
        )
        self.proc = subprocess.Popen([binary, "-config", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.influxql(f"CREATE DATABASE {self.db}", method="POST")
                return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.__exit__()
                    raise
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def influxql(self, q: str, method: str = "GET") -> dict[str, Any]:
        """Run an InfluxQL statement and return the decoded JSON answer; raises on an error result."""
        params = urllib.parse.urlencode({"db": self.db, "q": q, "epoch": "ns"})
        req = urllib.request.Request(f"{self.url}/query?{params}", method=method)
        with urllib.request.urlopen(req, timeout=600) as r:
            answer = json.loads(r.read())
        for result in answer.get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxQL {q!r} failed: {result['error']}")
        return answer

    def rss_kib(self) -> int:
        return peak_rss_kib(self.proc.pid) if self.proc else 0


# --- load ------------------------------------------------------------------------------------------
async def _send(url: str, batches: Iterable[bytes], connections: int) -> float:
    """POST every batch; each connection waits for an acknowledgement before its next batch."""
    source: Iterator[bytes] = iter(batches)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def worker() -> None:
            for body in source:  # shared iterator: batches are generated lazily, never all in memory
                async with session.post(url, data=body) as r:
                    if r.status not in (200, 204):
                        raise RuntimeError(f"write failed with {r.status}: {(await r.text())[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return time.perf_counter() - started


async def _send_for(url: str, batches: Iterable[bytes], connections: int, seconds: float) -> tuple[int, float]:
    """POST batches for `seconds`; each connection waits for each acknowledgement. (lines acked, seconds)."""
    source: Iterator[bytes] = iter(batches)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    acked = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal acked
            for body in source:
                if time.perf_counter() >= deadline:
                    return
                async with session.post(url, data=body) as r:
                    if r.status not in (200, 204):
                        raise RuntimeError(f"write failed with {r.status}: {(await r.text())[:300]}")
                acked += body.count(b"\n") + 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        return acked, time.perf_counter() - started


def send_for(url: str, batches: Iterable[bytes], connections: int, seconds: float) -> tuple[int, float]:
    """Send batches over `connections` keep-alive connections for `seconds` (each waits for its 204);
    returns (lines acknowledged, wall seconds until the last acknowledgement)."""
    return asyncio.run(_send_for(url, batches, connections, seconds))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (0.0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def send_batches(url: str, batches: Iterable[bytes], connections: int) -> float:
    """Wall seconds to send every batch over `connections` keep-alive connections (durable acks)."""
    return asyncio.run(_send(url, batches, connections))


def send_in_child(url: str, generator: str, rows: int, connections: int, batch: int = 5000) -> float:
    """Like `send_batches`, from a child process (for servers running inside this process)."""
    out = subprocess.run([sys.executable, __file__, "send", url, "--generator", generator, "--rows", str(rows),
                          "--connections", str(connections), "--batch", str(batch)],
                         check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout)["seconds"])


def http_json(url: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
    """One JSON request; returns the decoded answer (None for an empty body); raises on HTTP errors."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


# --- lakeflux internals used from outside a server ---------------------------------------------------
def force_snapshot(data_dir: Path, node: str = "node0", **config: Any) -> int:
    """Persist every row still only in the WAL of a *stopped* server's data dir; returns the files listed.

    `lakeflux serve` has no flag or route that forces a snapshot, so this opens the data dir the way the
    server does (catalog, newest manifest, WAL replay) and runs the snapshot procedure once.
    """
    from lakeflux.config import Config
    from lakeflux.server.services import build_services

    services = build_services(Config(data_dir=data_dir, node_id=node, **config))
    persister = services.buffer.persister
    assert persister is not None
    if services.buffer.tables.rows:
        persister.snapshot(services.buffer.next_seq - 1)
    return len(persister.manifest.files)


def main() -> None:
    from lpgen import GENERATORS

    ap = argparse.ArgumentParser(description="send line-protocol batches (the load generator)")
    sub = ap.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send")
    send.add_argument("url")
    send.add_argument("--generator", default="mixed", choices=sorted(GENERATORS))
    send.add_argument("--rows", type=int, required=True)
    send.add_argument("--connections", type=int, default=2)
    send.add_argument("--batch", type=int, default=5000)
    args = ap.parse_args()
    seconds = send_batches(args.url, GENERATORS[args.generator](args.rows, args.batch), args.connections)
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
