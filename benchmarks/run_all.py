"""`make bench`: every benchmark in its own process, then benchmarks/results/latest.md and latest.json.

    python benchmarks/run_all.py            # the issues' sizes: 10M-row query and memory runs (~10 min, 2 cores)
    python benchmarks/run_all.py --quick    # smaller ingest, query and S3 runs (~5 min)
    python benchmarks/run_all.py --only ingest query

Peers are measured in the same run (InfluxDB 1.x when `influxd` is installed, DuckDB always); the table
quotes medians and lakeflux/peer ratios. A failing benchmark is reported in the table and the others
still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import NOISE_NOTE, InfluxDB1  # noqa: E402

RESULTS = HERE / "results"

QUICK = {"ingest_seconds": 5, "ingest_repeats": 1, "parse_lines": 50_000, "query_rows": 3_000_000, "query_repeats": 5,
         "engine_writes": 100, "engine_schedule_seconds": 60, "engine_calls": 2000, "memory_rows": 10_000_000,
         "s3_rows": 500_000, "engine_load_seconds": 10, "engine_load_repeats": 1, "engine_latency_writes": 10,
         "cluster_rows": 300_000, "cluster_lag_samples": 50, "cluster_idle_seconds": 20, "cluster_query_rows": 1_000_000}
FULL = {**QUICK, "ingest_seconds": 20, "parse_lines": 200_000, "query_rows": 10_000_000, "engine_schedule_seconds": 120,
        "s3_rows": 2_000_000, "engine_load_seconds": 30, "engine_load_repeats": 2, "engine_latency_writes": 30,
        "cluster_rows": 1_000_000, "cluster_lag_samples": 100, "cluster_idle_seconds": 30,
        "cluster_query_rows": 10_000_000}


def commands(sizes: dict[str, int]) -> dict[str, list[str]]:
    """Each benchmark's command line (its --json argument is added when it runs)."""
    return {
        "parse": ["parse.py", str(sizes["parse_lines"])],
        "ingest": ["ingest.py", "--seconds", str(sizes["ingest_seconds"]), "--bodies", "mixed", "telegraf",
                   "--connections", "2", "16", "--repeats", str(sizes["ingest_repeats"])],
        "query": ["query.py", "--rows", str(sizes["query_rows"]), "--repeats", str(sizes["query_repeats"])],
        "engine": ["engine.py", "--writes", str(sizes["engine_writes"]), "--schedule-seconds",
                   str(sizes["engine_schedule_seconds"]), "--calls", str(sizes["engine_calls"]),
                   "--load-seconds", str(sizes["engine_load_seconds"]), "--load-repeats",
                   str(sizes["engine_load_repeats"]), "--latency-writes", str(sizes["engine_latency_writes"])],
        "memory": ["ingest.py", "--memory-only", "--rows", str(sizes["memory_rows"])],
        "s3": ["s3.py", "--rows", str(sizes["s3_rows"])],
        "opentables": ["opentables.py", "--rows", str(sizes["query_rows"]), "--repeats", str(sizes["query_repeats"])],
        "cluster": ["cluster.py", "--rows", str(sizes["cluster_rows"]), "--lag-samples", str(sizes["cluster_lag_samples"]),
                    "--idle-seconds", str(sizes["cluster_idle_seconds"]), "--query-rows", str(sizes["cluster_query_rows"]),
                    "--repeats", str(sizes["query_repeats"])],
    }


def run_one(name: str, argv: list[str]) -> dict[str, Any]:
    """Run one benchmark script, echoing its output; its JSON results, or {"error": …}."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    print(f"\n=== {name}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:], "--json", str(out)], check=False)
    elapsed = time.monotonic() - started
    try:
        if proc.returncode != 0:
            return {"error": f"exited with {proc.returncode}", "wall_seconds": elapsed}
        return {**json.loads(out.read_text()), "wall_seconds": elapsed}
    finally:
        out.unlink(missing_ok=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except (OSError, IndexError, ValueError):
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": round(mem_gib, 1), "python": platform.python_version(),
            "kernel": platform.release(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "influxdb1": InfluxDB1.available()}


# --- the table ---------------------------------------------------------------------------------------
def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def _n(x: float) -> str:
    return f"{x:,.0f}"


def parse_rows(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for body in ("mixed", "telegraf"):
        p = r[body]
        rows.append([f"parser, {body} body, 1 thread (5,000-line bodies, lines per CPU second)",
                     _n(p["one_thread_lines_per_cpu_s"]), f"exact parser {_n(p['exact_lines_per_cpu_s'])}",
                     f"{p['one_thread_lines_per_cpu_s'] / p['exact_lines_per_cpu_s']:.1f}×",
                     "≥ 3M" if body == "mixed" else "—",
                     _verdict(p["one_thread_lines_per_cpu_s"] >= 3e6) if body == "mixed" else "—"])
        rows.append([f"parser, {body} body, 2 threads (aggregate lines/s; cores kept busy)",
                     f"{_n(p['two_threads_lines_per_wall_s'])} ({p['two_threads_cpu_per_wall']:.2f} cores)",
                     f"1 thread {_n(p['one_thread_lines_per_wall_s'])}", f"{p['two_threads_speedup']:.2f}×",
                     "≥ 1.7×", _verdict(p["two_threads_speedup"] >= 1.7)])
    return rows


def ingest_rows(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in r["runs"]:
        ours, peer = row["lakeflux"], row.get("influxdb1")
        rows.append([f"ingest, {row['body']} body, {row['connections']} connections ({r['seconds']:g} s per side, "
                     "durable lines/s)",
                     _n(ours["lines_per_s"]),
                     f"InfluxDB 1.x {_n(peer['lines_per_s'])}" if peer else row.get("influxdb1_error", "skipped"),
                     f"{row['ratio']:.2f}×" if peer else "—", "≥ 3×",
                     _verdict(row["ratio"] >= 3 if peer else None)])
    return rows


def query_rows(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for q in r["queries"]:
        label = f"query {q['query']} ({r['rows']:,} rows)"
        note = "" if q["answers_match"] else " (answers differ!)"
        rows.append([f"{label} vs DuckDB, ms", f"{q['lakeflux_s'] * 1e3:.1f}", f"DuckDB {q['duckdb_s'] * 1e3:.1f}",
                     f"{q['ratio_vs_duckdb']:.2f}×{note}", "≤ 1.2×", _verdict(q["ratio_vs_duckdb"] <= 1.2)])
        if "influxql_s" in q:
            note = "" if q.get("influxql_matches_sql", True) else " (answers differ!)"
            rows.append([f"{label} InfluxQL /query vs SQL, ms", f"{q['influxql_s'] * 1e3:.1f}",
                         f"SQL {q['lakeflux_s'] * 1e3:.1f}", f"{q['ratio_influxql_vs_sql']:.2f}×{note}", "≤ 1.2×",
                         _verdict(q["ratio_influxql_vs_sql"] <= 1.2)])
        if "influxdb1_s" in q:
            rows.append([f"{label} SQL vs InfluxDB 1.x InfluxQL, ms", f"{q['lakeflux_s'] * 1e3:.1f}",
                         f"InfluxDB 1.x {q['influxdb1_s'] * 1e3:.1f}", f"{q['ratio_vs_influxdb1']:.2f}×", "—", "—"])
        if "ratio_influxql_vs_influxdb1" in q:
            note = "" if q.get("influxql_matches_influxdb1", True) else " (answers differ!)"
            rows.append([f"{label} InfluxQL /query vs InfluxDB 1.x, ms", f"{q['influxql_s'] * 1e3:.1f}",
                         f"InfluxDB 1.x {q['influxdb1_s'] * 1e3:.1f}",
                         f"{q['ratio_influxql_vs_influxdb1']:.2f}×{note}", "≤ 0.2× (≥ 5× faster)",
                         _verdict(q["ratio_influxql_vs_influxdb1"] <= 0.2)])
    return rows


def engine_load_rows(r: dict[str, Any]) -> list[list[str]]:
    """Issue 13's figures: ingest with two WAL triggers on the busiest table, their pace, backlog, latency."""
    rows = []
    load = r.get("under_load")
    if load:
        w, n, table = load["with"], load["without"], load["table"]
        rows.append([f"engine: ingest with 2 sync WAL triggers on `{table}`, {load['connections']} connections, "
                     f"{load['seconds']:g} s (lines/s; peer: without triggers)", _n(w["lines_per_s"]),
                     f"no triggers {_n(n['lines_per_s'])}", f"{load['ratio']:.2f}×", "≥ 0.9×",
                     _verdict(load["ratio"] >= 0.9)])
        rows.append(["engine: server CPU µs per ingested line, with triggers (peer: without)",
                     f"{w['server_cpu_us_per_line']:.2f}", f"no triggers {n['server_cpu_us_per_line']:.2f}",
                     f"{w['server_cpu_us_per_line'] / n['server_cpu_us_per_line']:.2f}×", "—", "—"])
        if "with_reading" in load:
            rd = load["with_reading"]
            rows.append(["engine: same, the writing trigger reading every row (lines/s; rows are built only when "
                         "read)", _n(rd["lines_per_s"]), f"no triggers {_n(n['lines_per_s'])}",
                         f"{load['ratio_reading']:.2f}× (per CPU s {load['cpu_ratio_reading']:.2f}×)", "—", "—"])
        for name, t in w["triggers"].items():
            kind = "writes one line per call" if name == "writer" else "writes nothing"
            rows.append([f"engine: trigger that {kind}, rows/s finished during ingest (peer: rows/s into `{table}`)",
                         _n(t["rows_per_s"]), f"into table {_n(w['table_rows_per_s'])}",
                         f"{t['rows_per_s'] / w['table_rows_per_s']:.2f}×", "—", "—"])
            rows.append(["engine: its backlog 2 s after ingest stops (rows, seconds)",
                         f"{t['backlog_rows_after_2s']}, {t['backlog_seconds_after_2s']:.2f} s", "—", "—", "0",
                         _verdict(t["backlog_rows_after_2s"] == 0)])
        drained = w["drained_after_s"]
        rows.append(["engine: both triggers drained after ingest stopped, s",
                     "not within 60 s" if drained is None else f"{drained:.2f}", "—", "—", "≤ 2 s",
                     _verdict(drained is not None and drained <= 2)])
    latency = r.get("write_latency")
    if latency:
        hot, plain = latency["with_trigger"], latency["without_trigger"]
        rows.append([f"engine: single write p50 ms on a table with a writing trigger ({hot['samples']} writes; "
                     "peer: a table without)", f"{hot['p50_ms']:.1f}", f"no trigger {plain['p50_ms']:.1f}",
                     f"{latency['p50_added_ms']:+.1f} ms", "≤ +10 ms", _verdict(latency["p50_added_ms"] <= 10)])
        rows.append(["engine: single write p99 ms, same", f"{hot['p99_ms']:.1f}", f"no trigger {plain['p99_ms']:.1f}",
                     f"{hot['p99_ms'] - plain['p99_ms']:+.1f} ms", "—", "—"])
    return rows


def engine_rows(r: dict[str, Any]) -> list[list[str]]:
    c, s, o = r["commit_to_plugin"], r["schedule_lateness"], r["call_overhead"]
    return [*engine_load_rows(r),
        [f"engine: WAL commit → process_writes, median ms ({c['samples']} writes)", f"{c['median_ms']:.2f}", "—",
         "—", "≤ 10 ms", _verdict(c["median_ms"] <= 10)],
        [f"engine: every:1s lateness, p99 ms ({s['samples']} ticks)", f"{s['p99_ms']:.2f}", "—", "—", "≤ 10 ms",
         _verdict(s["p99_ms"] <= 10)],
        ["engine: no-op plugin call overhead, µs", f"{o['median_us']:.1f}", "—", "—", "≤ 200 µs",
         _verdict(o["median_us"] <= 200)],
    ]


def memory_rows(r: dict[str, Any]) -> list[list[str]]:
    return [[f"memory: peak RSS ingesting {r['lines']:,} lines, MiB", f"{r['peak_rss_mib']:.0f}", "—", "—",
             "≤ 1024 MiB", _verdict(r["peak_rss_mib"] <= 1024)]]


def s3_rows(r: dict[str, Any]) -> list[list[str]]:
    i, snap, q = r["ingest"], r["snapshot"], r["query"]
    return [
        [f"S3 (moto): ingest, {r['connections']} connections ({r['rows']:,} lines, durable lines/s)",
         _n(i["lines_per_s"]), "—", "—", "—", "—"],
        [f"S3 (moto): PUTs per WAL flush ({i['wal_flushes']} flushes, {i['bytes_per_flush'] / 1024:.0f} KiB each)",
         f"{i['puts_per_flush']:.2f}", "—", "—", "—", "—"],
        [f"S3 (moto): PUT/COPY requests of one snapshot ({snap['files']} files)", str(snap["puts"]), "—", "—", "—",
         "—"],
        ["S3 (moto): query GROUP BY host over the snapshot, ms", f"{q['median_s'] * 1e3:.1f}", "—", "—", "—", "—"],
    ]


def opentables_rows(r: dict[str, Any]) -> list[list[str]]:
    """Issue 14: Sail's local cluster over the published Delta table, and what publishing costs a snapshot."""
    rows = []
    for q in r["queries"]:
        label = f"Sail, {r['workers']} workers, Delta table: query {q['query']} ({r['rows']:,} rows), ms"
        note = "" if q["answers_match"] else " (answers differ!)"
        rows.append([f"{label} vs lakeflux SQL", f"{q['sail_s'] * 1e3:.1f}", f"lakeflux {q['lakeflux_s'] * 1e3:.1f}",
                     f"{q['sail_vs_lakeflux']:.2f}×{note}", "—", "—"])
        rows.append([f"{label} vs DuckDB (same files)", f"{q['sail_s'] * 1e3:.1f}", f"DuckDB {q['duckdb_s'] * 1e3:.1f}",
                     f"{q['sail_vs_duckdb']:.2f}×", "—", "—"])
    for p in r["publishing"]:
        rows.append([f"Delta publish, {p['store']} store: extra requests per snapshot ({p['rows_per_snapshot']:,} "
                     "rows; peer: all its requests)", f"{p['delta_requests']:g}", f"snapshot {p['snapshot_requests']:g}",
                     "—", "≤ 2", _verdict(p["delta_requests"] <= 2)])
        rows.append([f"Delta publish, {p['store']} store: time per snapshot, ms (peer: the whole snapshot)",
                     f"{p['publish_ms']:.1f}", f"snapshot {p['snapshot_ms']:.1f}", f"{p['publish_share']:.1%}", "≤ 10%",
                     _verdict(p["publish_share"] <= 0.10)])
    return rows


def cluster_rows(r: dict[str, Any]) -> list[list[str]]:
    """Issue 15: nodes of one cluster sharing this machine's cores (ratios, not what separate machines do)."""
    i, lag, idle, q = r["ingest"], r["lag"], r["idle"], r["query"]
    return [
        [f"cluster: ingest on 2 ingest nodes vs 1 ({i['rows']:,} lines, {i['connections_per_node']} connections per "
         "node; one machine's cores shared, lines/s)", _n(i["2_nodes"]["lines_per_s"]),
         f"1 node {_n(i['1_nodes']['lines_per_s'])}", f"{i['ratio']:.2f}×", "—", "—"],
        [f"cluster: replication lag, ack → visible on the query node, S3 (moto), p50 ms ({lag['samples']} writes)",
         f"{lag['p50_ms']:.0f}", "—", "—", "—", "—"],
        ["cluster: replication lag, p99 ms", f"{lag['p99_ms']:.0f}", "—", "—", "≤ 1000 ms",
         _verdict(lag["p99_ms"] <= 1000)],
        *[[f"cluster: idle store requests/s, node {name} (2 ingest, 1 query, 1 process, 1 compact; S3, moto)",
           f"{v:.2f}", "—", "—", "≤ 5", _verdict(v <= 5)] for name, v in idle["requests_per_s"].items()],
        [f"cluster: GROUP BY host on a query node over compacted files vs one node over its own files "
         f"({q['rows']:,} rows; {q['compacted_files']} compacted files from 2 ingest nodes, {q['files']} own files), "
         "ms", f"{q['compacted_query_node_s'] * 1e3:.1f}", f"own files {q['own_node_s'] * 1e3:.1f}",
         f"{q['compacted_ratio']:.2f}×" + ("" if q["answers_match"] else " (answers differ!)"), "—", "—"],
        [f"cluster: the same GROUP BY on a query node following that one node ({q['files']} files), ms",
         f"{q['query_node_s'] * 1e3:.1f}", f"own files {q['own_node_s'] * 1e3:.1f}", f"{q['ratio']:.2f}×", "—", "—"],
    ]


FORMATTERS: dict[str, Callable[[dict[str, Any]], list[list[str]]]] = {
    "parse": parse_rows, "ingest": ingest_rows, "query": query_rows, "engine": engine_rows, "memory": memory_rows,
    "s3": s3_rows, "opentables": opentables_rows, "cluster": cluster_rows}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"Run {m['date']} on {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB RAM, Python {m['python']}, "
             f"Linux {m['kernel']}; sizes: {results['sizes_name']}.", "",
             "lakeflux/peer compares lines/s for ingest (higher is better) and milliseconds for queries "
             "(lower is better).", "",
             "| benchmark | lakeflux | peer (same run) | lakeflux/peer | target | met |",
             "|---|---:|---:|---:|---|---|"]
    for name, formatter in FORMATTERS.items():
        r = results["benchmarks"].get(name)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | |")
            continue
        lines.extend("| " + " | ".join(cells) + " |" for cells in formatter(r))
    lines += ["", NOISE_NOTE]
    if not m["influxdb1"]:
        lines.append("InfluxDB 1.x was not installed: its columns are skipped.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (3M-row query; about 5 minutes)")
    ap.add_argument("--only", nargs="+", choices=sorted(FORMATTERS), help="run only these benchmarks")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--table-only", action="store_true", help="rewrite latest.md from latest.json, run nothing")
    args = ap.parse_args()
    if args.table_only:
        (args.out / "latest.md").write_text(markdown(json.loads((args.out / "latest.json").read_text())))
        return
    sizes = QUICK if args.quick else FULL
    if not InfluxDB1.available():
        print("InfluxDB 1.x (influxd) not installed: peer columns will be skipped", file=sys.stderr)
    results: dict[str, Any] = {"machine": machine(), "sizes_name": "quick" if args.quick else "full",
                               "sizes": sizes, "benchmarks": {}}
    for name, argv in commands(sizes).items():
        if args.only and name not in args.only:
            continue
        results["benchmarks"][name] = run_one(name, argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "latest.md").write_text(table)
    print("\n" + table)
    failed = [n for n, r in results["benchmarks"].items() if "error" in r]
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
