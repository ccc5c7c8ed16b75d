"""GROUP BY queries: lakeflux's SQL API vs DuckDB on the same Parquet files, the same questions in InfluxQL through
lakeflux's v1 `/query` vs the same SQL, and vs InfluxDB 1.x (InfluxQL).

    python benchmarks/query.py [--rows 2000000] [--repeats 5] [--json out.json]   # full size: --rows 10000000

1. Build: a fresh `lakeflux serve` (defaults, file store) ingests `--rows` rows of a regular `cpu` table
   (100 hosts × 8 cores, 4 float fields, 1 ms apart; benchmarks/lpgen.py) over HTTP, then stops.
2. Persist: every row still only in the WAL is snapshotted to Parquet (`common.force_snapshot`: serve has
   no flag or route that forces a snapshot), so the server's queries and DuckDB read exactly the same files
   and no buffered rows.
3. Query: the server restarts on that data dir; each query runs through POST /api/v3/query_sql (JSON
   answer) and through DuckDB (in this process, default threads) on `<table prefix>date=*/*.parquet`, one
   warm-up then `--repeats` timed runs each, interleaved; medians, and the ratio lakeflux/DuckDB as the
   median of the pair-by-pair ratios (target ≤ 1.2×). Answers are compared so a fast wrong answer cannot pass.
   The same questions in InfluxQL go through GET /query (epoch=ns) in the same interleaved rounds: the ratio
   InfluxQL/SQL is again the median of pair-by-pair ratios (target ≤ 1.2×), and its numbers must be the SQL's.
4. Peer: the same rows go into InfluxDB 1.x (when installed), and the same InfluxQL; lakeflux's InfluxQL time over
   InfluxDB 1.x's is the ratio (target ≤ 0.2×, i.e. ≥ 5× faster), and the answers are compared number by number.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import InfluxDB1, force_snapshot, http_json, peak_rss_kib, send_batches  # noqa: E402
from lpgen import cpu_batches, cpu_time_range  # noqa: E402

from lakeflux.store import paths  # noqa: E402
from lakeflux.testing.process import ServerProcess  # noqa: E402

DB, TABLE = "bench", "cpu"
TARGET_RATIO = 1.2
TARGET_INFLUXQL_VS_SQL = 1.2
TARGET_VS_INFLUXDB1 = 0.2  # ≥ 5× faster than InfluxDB 1.x


@dataclass(frozen=True)
class Query:
    name: str
    sql: str  # lakeflux (DataFusion)
    duckdb: str  # the same question in DuckDB's dialect; `{src}` is the Parquet glob
    influxql: str


def sql_ts(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def queries(rows: int) -> list[Query]:
    first, last = cpu_time_range(rows)
    half = (first + (last - first) // 2) // 1_000_000_000 * 1_000_000_000  # whole seconds: every dialect agrees
    return [
        Query("by host: avg, max, count",
              f"SELECT host, avg(usage_user) AS u, max(usage_system) AS s, count(*) AS n FROM {TABLE} "
              "GROUP BY host ORDER BY host",
              "SELECT host, avg(usage_user) AS u, max(usage_system) AS s, count(*) AS n FROM {src} "
              "GROUP BY host ORDER BY host",
              f"SELECT mean(usage_user), max(usage_system), count(usage_user) FROM {TABLE} GROUP BY host"),
        Query("by host, cpu over the last half",
              f"SELECT host, cpu, avg(usage_idle) AS idle FROM {TABLE} WHERE time >= TIMESTAMP '{sql_ts(half)}' "
              "GROUP BY host, cpu ORDER BY host, cpu",
              f"SELECT host, cpu, avg(usage_idle) AS idle FROM {{src}} WHERE time >= TIMESTAMP '{sql_ts(half)}' "
              "GROUP BY host, cpu ORDER BY host, cpu",
              f"SELECT mean(usage_idle) FROM {TABLE} WHERE time >= {half} GROUP BY host, cpu"),
        Query("1-minute buckets",
              f"SELECT date_bin(INTERVAL '1 minute', time) AS minute, avg(usage_user) AS u, "
              f"max(usage_iowait) AS w FROM {TABLE} GROUP BY 1 ORDER BY 1",
              "SELECT time_bucket(INTERVAL '1 minute', time::TIMESTAMP) AS minute, avg(usage_user) AS u, "
              "max(usage_iowait) AS w FROM {src} GROUP BY 1 ORDER BY 1",
              f"SELECT mean(usage_user), max(usage_iowait) FROM {TABLE} "
              f"WHERE time >= {first} AND time <= {last} GROUP BY time(1m)"),
    ]


# --- build -------------------------------------------------------------------------------------------
def build(data_dir: Path, rows: int, connections: int, log_path: Path) -> dict:
    """Ingest through a real server, stop it, and persist the rest: returns ingest figures."""
    srv = ServerProcess(data_dir, "--without-auth", log_path=log_path).start()
    try:
        seconds = send_batches(f"{srv.url}/api/v3/write_lp?db={DB}", cpu_batches(rows), connections)
        rss = peak_rss_kib(srv.proc.pid) if srv.proc else 0
    finally:
        srv.stop()
    started = time.perf_counter()
    files = force_snapshot(data_dir)
    return {"ingest_seconds": seconds, "ingest_lines_per_s": rows / seconds, "ingest_peak_rss_mib": rss / 1024,
            "final_snapshot_seconds": time.perf_counter() - started, "parquet_files": files}


def parquet_glob(data_dir: Path) -> str:
    return str(data_dir / paths.table_prefix("node0", DB, TABLE)) + "/date=*/*.parquet"


# --- running -----------------------------------------------------------------------------------------
def lakeflux_runner(url: str, sql: str) -> Any:
    return lambda: http_json(f"{url}/api/v3/query_sql", {"db": DB, "q": sql, "format": "json"})


def influxql_runner(url: str, influxql: str) -> Any:
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"db": DB, "q": influxql, "epoch": "ns"})

    def run() -> Any:
        with urllib.request.urlopen(f"{url}/query?{query}", timeout=600) as r:
            answer = json.loads(r.read())
        for result in answer.get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxQL {influxql!r} failed: {result['error']}")
        return answer
    return run


def influxql_numbers(answer: dict[str, Any]) -> list[tuple[float, ...]]:
    """The numbers of a v1 answer, one sorted tuple per row (time left out), rows sorted: what the SQL answer
    and InfluxDB 1.x's must hold too."""
    rows = []
    for result in answer.get("results", []):
        for series in result.get("series", []):
            for values in series["values"]:
                rows.append(tuple(round(float(v), 6) for v in values[1:] if isinstance(v, int | float)))
    return sorted(rows)


def sql_numbers(rows: list[dict[str, Any]]) -> list[tuple[float, ...]]:
    return sorted(tuple(round(float(v), 6) for v in row.values() if isinstance(v, int | float) and
                        not isinstance(v, bool)) for row in rows)


def same_numbers(a: list[tuple[float, ...]], b: list[tuple[float, ...]]) -> bool:
    return len(a) == len(b) and all(len(x) == len(y) and all(math.isclose(p, q, rel_tol=1e-6, abs_tol=1e-6)
                                                             for p, q in zip(x, y, strict=True))
                                    for x, y in zip(a, b, strict=True))


def duckdb_runner(con: Any, sql: str) -> Any:
    return lambda: con.execute(sql).fetchall()


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = fn()
    return time.perf_counter() - started, answer


def interleaved(runners: list[Any], repeats: int) -> tuple[list[Any], list[list[float]]]:
    """One warm-up run of each runner (their answers are returned, to be compared), then `repeats` rounds
    running each once in turn, so background load hits every side alike; the seconds per runner."""
    answers = [timed(run)[1] for run in runners]
    seconds: list[list[float]] = [[] for _ in runners]
    for _ in range(repeats):
        for i, run in enumerate(runners):
            seconds[i].append(timed(run)[0])
    return answers, seconds


def compare(lake: list[dict[str, Any]], duck: list[tuple]) -> bool:
    """Same number of rows and the same numbers (floats to 1e-6 relative); keys are compared as text."""
    if len(lake) != len(duck):
        return False
    for a, b in zip(lake, duck, strict=True):
        for x, y in zip(a.values(), b, strict=True):
            if isinstance(y, float) and isinstance(x, int | float):
                if not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9):
                    return False
            elif isinstance(y, str | int) and not isinstance(y, bool) and x != y:
                return False
    return True


def bench_lakeflux_vs_duckdb(data_dir: Path, rows: int, repeats: int, log_path: Path) -> list[dict]:
    import duckdb

    con = duckdb.connect()
    src = f"read_parquet('{parquet_glob(data_dir)}', hive_partitioning = false)"
    out = []
    srv = ServerProcess(data_dir, "--without-auth", log_path=log_path).start()
    try:
        count = http_json(f"{srv.url}/api/v3/query_sql", {"db": DB, "q": f"SELECT count(*) AS n FROM {TABLE}",
                                                          "format": "json"})[0]["n"]
        if count != rows:
            raise RuntimeError(f"lakeflux counts {count} rows, {rows} were written")
        for q in queries(rows):
            ours, theirs = lakeflux_runner(srv.url, q.sql), duckdb_runner(con, q.duckdb.format(src=src))
            influxql = influxql_runner(srv.url, q.influxql)
            (lake_answer, ql_answer, duck_answer), (lake_t, ql_t, duck_t) = interleaved([ours, influxql, theirs],
                                                                                      repeats)
            row = {"query": q.name, "lakeflux_s": statistics.median(lake_t), "duckdb_s": statistics.median(duck_t),
                   "influxql_s": statistics.median(ql_t), "lakeflux_runs": lake_t, "duckdb_runs": duck_t,
                   "influxql_runs": ql_t, "answers_match": compare(lake_answer, duck_answer),
                   "influxql_matches_sql": same_numbers(influxql_numbers(ql_answer), sql_numbers(lake_answer)),
                   "influxql_numbers": influxql_numbers(ql_answer), "result_rows": len(duck_answer)}
            # The median of pair-by-pair ratios: a slow spell on the shared machine hits one pair, not the figure.
            row["ratio_vs_duckdb"] = statistics.median(a / b for a, b in zip(lake_t, duck_t, strict=True))
            row["ratio_influxql_vs_sql"] = statistics.median(a / b for a, b in zip(ql_t, lake_t, strict=True))
            out.append(row)
            print(f"  {q.name:<34} lakeflux {row['lakeflux_s'] * 1e3:8.1f} ms   duckdb {row['duckdb_s'] * 1e3:8.1f} ms"
                  f"   ratio {row['ratio_vs_duckdb']:.2f}× (target ≤ {TARGET_RATIO:g}×)"
                  f"{'' if row['answers_match'] else '   ANSWERS DIFFER'}")
            print(f"  {'':<34} influxql {row['influxql_s'] * 1e3:8.1f} ms   vs SQL {row['ratio_influxql_vs_sql']:.2f}× "
                  f"(target ≤ {TARGET_INFLUXQL_VS_SQL:g}×){'' if row['influxql_matches_sql'] else '   ANSWERS DIFFER'}")
    finally:
        srv.stop()
    return out


def bench_influxdb1(rows: int, repeats: int, connections: int) -> dict | None:
    if not InfluxDB1.available():
        print("peer skipped: influxd not installed (apt-get install influxdb)", file=sys.stderr)
        return None
    with InfluxDB1(DB) as peer:
        seconds = send_batches(peer.write_url, cpu_batches(rows), connections)
        timings, numbers = {}, {}
        for q in queries(rows):
            run = (lambda text: lambda: peer.influxql(text))(q.influxql)
            numbers[q.name] = influxql_numbers(run())
            timings[q.name] = statistics.median(timed(run)[0] for _ in range(repeats))
            print(f"  {q.name:<34} influxdb1 {timings[q.name] * 1e3:8.1f} ms")
    return {"ingest_lines_per_s": rows / seconds, "query_s": timings, "numbers": numbers}


def run(rows: int, repeats: int, connections: int = 2, peer: bool = True, data_dir: Path | None = None) -> dict:
    """Build, query both ways, then the InfluxDB 1.x peer; prints as it goes and returns the results.

    With `data_dir`, a directory built by an earlier run with the same `rows` is queried again (and a
    missing one is built and kept), so changes to the query path can be compared without re-ingesting."""
    tmp = Path(tempfile.mkdtemp(prefix="lakeflux-query-bench-"))
    data = data_dir or tmp / "data"
    try:
        if data_dir is not None and (data_dir / "built.json").exists():
            built = json.loads((data_dir / "built.json").read_text())
            if built.get("rows") != rows:
                raise SystemExit(f"{data_dir} holds {built.get('rows')} rows, not {rows}")
            print(f"reusing {rows:,} rows built in {data_dir}")
        else:
            print(f"building {rows:,} rows through lakeflux …")
            built = {"rows": rows, **build(data, rows, connections, tmp / "build.log")}
            if data_dir is not None:
                (data_dir / "built.json").write_text(json.dumps(built))
        print(f"  ingested at {built['ingest_lines_per_s']:,.0f} lines/s; {built['parquet_files']} Parquet files")
        results: dict = {"rows": rows, "repeats": repeats, "build": built,
                         "queries": bench_lakeflux_vs_duckdb(data, rows, repeats, tmp / "query.log")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if peer:
        results["influxdb1"] = bench_influxdb1(rows, repeats, connections)
        if results["influxdb1"]:
            for row in results["queries"]:
                theirs = results["influxdb1"]["query_s"][row["query"]]
                row["influxdb1_s"] = theirs
                row["ratio_vs_influxdb1"] = row["lakeflux_s"] / theirs
                row["ratio_influxql_vs_influxdb1"] = row["influxql_s"] / theirs
                row["influxql_matches_influxdb1"] = same_numbers(row["influxql_numbers"],
                                                                 results["influxdb1"]["numbers"][row["query"]])
                print(f"  {row['query']:<34} influxql {row['influxql_s'] * 1e3:8.1f} ms vs InfluxDB 1.x "
                      f"{theirs * 1e3:8.1f} ms: {row['ratio_influxql_vs_influxdb1']:.2f}× (target ≤ "
                      f"{TARGET_VS_INFLUXDB1:g}×){'' if row['influxql_matches_influxdb1'] else '   ANSWERS DIFFER'}")
        for row in results["queries"]:
            row.pop("influxql_numbers", None)
        results["influxdb1"].pop("numbers", None)
    ratios = [r["ratio_vs_duckdb"] for r in results["queries"]]
    results["geomean_ratio_vs_duckdb"] = math.exp(statistics.fmean(math.log(r) for r in ratios))
    print(f"geometric mean lakeflux/DuckDB: {results['geomean_ratio_vs_duckdb']:.2f}×")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--connections", type=int, default=2, help="for building the data")
    ap.add_argument("--no-peer", action="store_true", help="skip InfluxDB 1.x")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data-dir", type=Path, help="keep the built data here and reuse it on later runs")
    args = ap.parse_args()
    results = run(args.rows, args.repeats, args.connections, not args.no_peer, args.data_dir)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
