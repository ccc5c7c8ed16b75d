"""The lake as open tables (issue 14): a distributed engine over the published Delta table, and what publishing
the Delta commits costs a snapshot.

    python benchmarks/opentables.py [--rows 2000000] [--repeats 5] [--workers 2] [--json out.json]
    # the issue's size: --rows 10000000

1. Build: as benchmarks/query.py (a real server ingests the `cpu` rows, the rest is persisted); every snapshot
   also commits the table's Delta log.
2. Queries: benchmarks/query.py's GROUP BY questions through Sail (a local cluster: a driver and `--workers`
   workers in this process on 127.0.0.1, driven over Spark Connect) reading the Delta table, through lakeflux's
   SQL API (a server restarted on the data), and through DuckDB on the same Parquet files. One warm-up, then
   `--repeats` interleaved rounds; medians, and Sail/lakeflux and Sail/DuckDB as medians of pair-by-pair ratios.
   Answers are compared (numbers to 1e-6 relative).
3. Publishing cost: an in-process server on the file store and on S3 (moto), its store wrapped in a counting
   store, writes `--publish-rows` new rows and persists them, `--snapshots` times. Per snapshot: the object-store
   requests for the Delta log and the time the Delta commit took, against the snapshot's requests and time
   (targets: ≤ 2 extra requests and ≤ 10% of the snapshot's time). The first snapshot of a process also reads
   the table's log (once); it is reported apart from the steady state.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lpgen import cpu_batches, cpu_time_range  # noqa: E402
from query import DB, TABLE, build, duckdb_runner, interleaved, lakeflux_runner, parquet_glob, queries  # noqa: E402

from lakeflux.config import Config, S3Settings  # noqa: E402
from lakeflux.store import paths  # noqa: E402
from lakeflux.store.file import FileStore  # noqa: E402
from lakeflux.testing.faulty import CountingStore  # noqa: E402
from lakeflux.testing.process import ServerProcess  # noqa: E402
from lakeflux.testing.s3server import MotoServer  # noqa: E402
from lakeflux.testing.server import InProcessServer  # noqa: E402

TARGET_EXTRA_REQUESTS = 2
TARGET_PUBLISH_SHARE = 0.10
MINUTE_NS = 60 * 10**9


def sail_questions(rows: int) -> list[tuple[str, int]]:
    """query.py's questions in Spark SQL over the Delta table (`time` is a long of nanoseconds there), each with
    how many leading key columns it has."""
    first, last = cpu_time_range(rows)
    half = (first + (last - first) // 2) // 1_000_000_000 * 1_000_000_000
    return [
        ("SELECT host, avg(usage_user) AS u, max(usage_system) AS s, count(*) AS n FROM cpu GROUP BY host "
         "ORDER BY host", 1),
        (f"SELECT host, cpu, avg(usage_idle) AS idle FROM cpu WHERE time >= {half} GROUP BY host, cpu "
         "ORDER BY host, cpu", 2),
        (f"SELECT (time DIV {MINUTE_NS}) * {MINUTE_NS} AS minute, avg(usage_user) AS u, max(usage_iowait) AS w "
         "FROM cpu GROUP BY 1 ORDER BY 1", 1),
    ]


def same_answer(a: list[tuple], b: list[tuple], keys: int) -> bool:
    """Same rows: string keys equal (other keys, such as a minute as text or as nanoseconds, not compared),
    the values after the keys equal to 1e-6 relative."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        for p, q in zip(x[:keys], y[:keys], strict=True):
            if isinstance(p, str) and isinstance(q, str) and p != q:
                return False
        for p, q in zip(x[keys:], y[keys:], strict=True):
            if not math.isclose(float(p), float(q), rel_tol=1e-6, abs_tol=1e-9):
                return False
    return True


class Sail:
    """A Sail local cluster in this process on 127.0.0.1 and a Spark Connect session to it."""

    def __init__(self, workers: int) -> None:
        os.environ.update(SAIL_MODE="local-cluster", SAIL_CLUSTER__WORKER_INITIAL_COUNT=str(workers),
                          SAIL_CLUSTER__WORKER_MAX_COUNT=str(workers), RUST_LOG=os.environ.get("RUST_LOG", "error"))
        from pysail.spark import SparkConnectServer
        from pyspark.sql import SparkSession

        self.server = SparkConnectServer("127.0.0.1", 0)
        self.server.start(background=True)
        host, port = self.server.listening_address
        self.spark = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()

    def runner(self, sql: str) -> Callable[[], list[tuple]]:
        return lambda: [tuple(r) for r in self.spark.sql(sql).collect()]

    def close(self) -> None:
        self.spark.stop()
        self.server.stop()


def bench_queries(data_dir: Path, rows: int, repeats: int, workers: int, log_path: Path) -> list[dict]:
    import duckdb

    con = duckdb.connect()
    src = f"read_parquet('{parquet_glob(data_dir)}', hive_partitioning = false)"
    sail = Sail(workers)
    srv = ServerProcess(data_dir, "--without-auth", log_path=log_path).start()
    out = []
    try:
        sail.spark.read.format("delta").load(str(data_dir / paths.table_prefix("node0", DB, TABLE))) \
            .createOrReplaceTempView("cpu")
        (count,) = sail.runner("SELECT count(*) FROM cpu")()[0]
        if count != rows:
            raise RuntimeError(f"Sail counts {count} rows in the Delta table, {rows} were written")
        for q, (sail_sql, keys) in zip(queries(rows), sail_questions(rows), strict=True):
            theirs, ours = sail.runner(sail_sql), lakeflux_runner(srv.url, q.sql)
            duck = duckdb_runner(con, q.duckdb.format(src=src))
            (sail_answer, lake_answer, duck_answer), (sail_t, lake_t, duck_t) = interleaved([theirs, ours, duck],
                                                                                          repeats)
            row = {"query": q.name, "sail_s": statistics.median(sail_t), "lakeflux_s": statistics.median(lake_t),
                   "duckdb_s": statistics.median(duck_t), "sail_runs": sail_t, "lakeflux_runs": lake_t,
                   "duckdb_runs": duck_t,
                   "sail_vs_lakeflux": statistics.median(a / b for a, b in zip(sail_t, lake_t, strict=True)),
                   "sail_vs_duckdb": statistics.median(a / b for a, b in zip(sail_t, duck_t, strict=True)),
                   "answers_match": same_answer(sail_answer, [tuple(r.values()) for r in lake_answer], keys)
                   and same_answer(sail_answer, duck_answer, keys)}
            out.append(row)
            print(f"  {q.name:<34} sail {row['sail_s'] * 1e3:8.1f} ms   lakeflux {row['lakeflux_s'] * 1e3:8.1f} ms"
                  f"   duckdb {row['duckdb_s'] * 1e3:8.1f} ms   sail/lakeflux {row['sail_vs_lakeflux']:.2f}×"
                  f"   sail/duckdb {row['sail_vs_duckdb']:.2f}×{'' if row['answers_match'] else '   ANSWERS DIFFER'}")
    finally:
        srv.stop()
        sail.close()
    return out


# --- publishing cost -------------------------------------------------------------------------------------
def rounds(rows_per_round: int, n: int) -> Iterator[list[str]]:
    """`n` rounds of new `cpu` rows as 5,000-line bodies, each round later than the one before (no compaction)."""
    batches = cpu_batches(rows_per_round * n)
    per_round = math.ceil(rows_per_round / 5000)
    for _ in range(n):
        yield [next(batches).decode() for _ in range(per_round)]


def bench_publishing(kind: str, rows_per_snapshot: int, snapshots: int, tmp: Path) -> dict:
    moto = MotoServer().start() if kind == "s3" else None
    try:
        if moto is not None:
            e = moto.endpoint("lakeflux-publish-bench")
            inner: Any = e.store()
            cfg = Config(object_store="s3", without_auth=True, s3=S3Settings(
                bucket=e.bucket, endpoint=e.endpoint_url, region=e.region, access_key_id=e.access_key,
                secret_access_key=e.secret, allow_http=True))
        else:
            inner = FileStore(tmp / f"publish-{kind}")
            cfg = Config(data_dir=tmp / f"publish-{kind}", object_store="file", without_auth=True)
        store = CountingStore(inner, record_keys=True)
        with InProcessServer(cfg, store=store) as srv:
            persister = srv.services.buffer.persister
            assert persister is not None
            publish_seconds: list[float] = []
            original = persister.publisher.publish

            def publish(*args: Any, **kwargs: Any) -> int:
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    publish_seconds.append(time.perf_counter() - started)

            persister.publisher.publish = publish  # type: ignore[method-assign]
            per_snapshot = []
            for bodies in rounds(rows_per_snapshot, snapshots):
                for body in bodies:
                    reply = srv.write(DB, body)
                    assert reply.status == 204, reply.body
                store.reset()
                publish_seconds.clear()
                started = time.perf_counter()
                srv.call(srv.services.buffer.persist(), timeout=600)
                seconds = time.perf_counter() - started
                delta = [(op, key) for op, key in store.requests if "/_delta_log/" in key]
                per_snapshot.append({"seconds": seconds, "publish_seconds": sum(publish_seconds),
                                     "requests": len(store.requests), "delta_requests": len(delta),
                                     "delta_ops": sorted(op for op, _ in delta)})
    finally:
        if moto is not None:
            moto.stop()
    steady = per_snapshot[1:] or per_snapshot
    result = {
        "store": kind, "rows_per_snapshot": rows_per_snapshot, "snapshots": per_snapshot,
        "first_delta_requests": per_snapshot[0]["delta_requests"],
        "delta_requests": statistics.median(s["delta_requests"] for s in steady),
        "snapshot_requests": statistics.median(s["requests"] for s in steady),
        "publish_ms": statistics.median(s["publish_seconds"] for s in steady) * 1e3,
        "snapshot_ms": statistics.median(s["seconds"] for s in steady) * 1e3,
        "publish_share": statistics.median(s["publish_seconds"] / s["seconds"] for s in steady),
    }
    print(f"  {kind}: {rows_per_snapshot:,} rows per snapshot: Delta commit {result['publish_ms']:.1f} ms of "
          f"{result['snapshot_ms']:.1f} ms ({result['publish_share']:.1%}, target ≤ {TARGET_PUBLISH_SHARE:.0%}); "
          f"{result['delta_requests']:g} extra requests of {result['snapshot_requests']:g} (target ≤ "
          f"{TARGET_EXTRA_REQUESTS}; the process's first snapshot: {result['first_delta_requests']})")
    return result


def run(rows: int, repeats: int, workers: int, publish_rows: int, snapshots: int, s3: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="lakeflux-opentables-bench-"))
    try:
        data = tmp / "data"
        print(f"building {rows:,} rows through lakeflux …")
        built = build(data, rows, 2, tmp / "build.log")
        print(f"  ingested at {built['ingest_lines_per_s']:,.0f} lines/s; {built['parquet_files']} Parquet files")
        results: dict[str, Any] = {"rows": rows, "repeats": repeats, "workers": workers, "build": built}
        print(f"queries: Sail local cluster ({workers} workers) on the Delta table vs lakeflux SQL vs DuckDB")
        results["queries"] = bench_queries(data, rows, repeats, workers, tmp / "query.log")
        print("publishing cost per snapshot")
        results["publishing"] = [bench_publishing(kind, publish_rows, snapshots, tmp)
                                 for kind in (["file", "s3"] if s3 else ["file"])]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratios = [q["sail_vs_lakeflux"] for q in results["queries"]]
    results["geomean_sail_vs_lakeflux"] = math.exp(statistics.fmean(math.log(r) for r in ratios))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="Sail workers (each in this process)")
    ap.add_argument("--publish-rows", type=int, default=200_000, help="new rows per measured snapshot")
    ap.add_argument("--snapshots", type=int, default=6)
    ap.add_argument("--no-s3", action="store_true", help="measure publishing on the file store only")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = run(args.rows, args.repeats, args.workers, args.publish_rows, args.snapshots, not args.no_s3)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
