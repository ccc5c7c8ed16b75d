"""Where the time goes: py-spy on a real server during ingest or queries, summarised as top functions.

    python benchmarks/hotspots.py ingest [--rows 1000000] [--connections 2] [--svg ingest.svg]
    python benchmarks/hotspots.py query  [--rows 3000000] [--repeats 20] [--svg query.svg]

py-spy (a dev dependency) samples the server's Python threads at 100 Hz; the summary lists the functions
with the most samples on-CPU at the top of the stack ("self") and anywhere on the stack ("total"), as a
share of all samples. `query` also splits the query time: lakeflux over HTTP, DataFusion alone on the same
files (a bare SessionContext, no lakeflux code), DuckDB — so the gap is attributed either to lakeflux's own
path or to the engine underneath. Native threads (DataFusion's Rust workers) are not sampled; their time
shows up as Python threads waiting in `execute_stream`/`to_pyarrow`.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import http_json, send_batches  # noqa: E402
from lpgen import mixed_batches  # noqa: E402
from query import DB, build, parquet_glob, queries  # noqa: E402

from lakeflux.testing.process import ServerProcess  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"
_LINE = re.compile(r" \([^()]*:\d+\)$")


class Recorder:
    """`py-spy record` attached to `pid` until `stop()`; collapsed stacks (and optionally an SVG)."""

    def __init__(self, pid: int, out: Path, svg: Path | None = None) -> None:
        self.out, self.svg = out, svg
        self.procs = [self._spawn(pid, "raw", out)]
        if svg is not None:
            self.procs.append(self._spawn(pid, "flamegraph", svg))
        time.sleep(1.0)  # py-spy attaches asynchronously; samples before that would be lost

    @staticmethod
    def _spawn(pid: int, fmt: str, out: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--rate", "100", "--format", fmt,
                                 "--output", str(out), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for p in self.procs:
            p.wait(timeout=60)


def _function(frame: str) -> str:
    """`name (file.py:12)` → `name (file.py)`: one entry per function, not per line."""
    match = re.search(r"\(([^()]*):\d+\)$", frame)
    return _LINE.sub(f" ({match.group(1)})", frame) if match else frame


def summarise(collapsed: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Top functions by self and by total share of samples, from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    def share(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100 * k / max(samples, 1)) for name, k in c.most_common(top)]

    return {"samples": [("all", float(samples))], "self": share(own), "total": share(total)}


def print_summary(title: str, summary: dict[str, list[tuple[str, float]]]) -> None:
    print(f"\n{title}: {int(summary['samples'][0][1])} samples")
    for kind in ("self", "total"):
        print(f"  top by {kind}:")
        for name, pct in summary[kind]:
            print(f"    {pct:5.1f}%  {name}")


def profile_ingest(rows: int, connections: int, svg: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lakeflux-profile-"))
    batches = list(mixed_batches(rows))
    srv = ServerProcess(tmp / "data", "--without-auth", log_path=tmp / "server.log").start()
    try:
        assert srv.proc is not None
        rec = Recorder(srv.proc.pid, tmp / "ingest.txt", svg)
        seconds = send_batches(f"{srv.url}/api/v3/write_lp?db=bench", batches, connections)
        rec.stop()
        print(f"ingest under the profiler: {rows / seconds:,.0f} lines/s")
        print_summary("ingest (server process)", summarise(tmp / "ingest.txt"))
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def datafusion_alone(data_dir: Path, sql: str) -> float:
    """Median seconds of `sql` in a bare DataFusion SessionContext over the table's Parquet files."""
    from datafusion import SessionContext

    ctx = SessionContext()
    ctx.register_parquet("cpu", str(Path(parquet_glob(data_dir)).parent.parent) + "/", file_extension=".parquet")
    ctx.sql(sql).to_arrow_table()
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        ctx.sql(sql).to_arrow_table()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def profile_query(rows: int, repeats: int, svg: Path | None) -> None:
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix="lakeflux-profile-"))
    try:
        build(tmp / "data", rows, 2, tmp / "build.log")
        con = duckdb.connect()
        src = f"read_parquet('{parquet_glob(tmp / 'data')}', hive_partitioning = false)"
        srv = ServerProcess(tmp / "data", "--without-auth", log_path=tmp / "query.log").start()
        try:
            assert srv.proc is not None
            for q in queries(rows):
                ask = (lambda sql: lambda: http_json(f"{srv.url}/api/v3/query_sql",
                                                     {"db": DB, "q": sql, "format": "json"}))(q.sql)
                ask()
                samples = []
                for _ in range(5):
                    started = time.perf_counter()
                    ask()
                    samples.append(time.perf_counter() - started)
                duck = []
                for _ in range(5):
                    started = time.perf_counter()
                    con.execute(q.duckdb.format(src=src)).fetchall()
                    duck.append(time.perf_counter() - started)
                print(f"{q.name:<34} lakeflux {statistics.median(samples) * 1e3:7.1f} ms | DataFusion alone "
                      f"{datafusion_alone(tmp / 'data', q.sql) * 1e3:7.1f} ms | DuckDB "
                      f"{statistics.median(duck) * 1e3:7.1f} ms")
            first = queries(rows)[0]
            rec = Recorder(srv.proc.pid, tmp / "query.txt", svg)
            for _ in range(repeats):
                http_json(f"{srv.url}/api/v3/query_sql", {"db": DB, "q": first.sql, "format": "json"})
            rec.stop()
            print_summary(f"query {first.name!r} ×{repeats} (server process)", summarise(tmp / "query.txt"))
        finally:
            srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", choices=["ingest", "query"])
    ap.add_argument("--rows", type=int)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--svg", type=Path, help="also write a flame graph here")
    args = ap.parse_args()
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed (pip install py-spy)")
    if args.path == "ingest":
        profile_ingest(args.rows or 1_000_000, args.connections, args.svg)
    else:
        profile_query(args.rows or 3_000_000, args.repeats, args.svg)


if __name__ == "__main__":
    main()
