"""What each table costs: memory, table-creating writes, restarts, with many databases and tables.

    python benchmarks/tables.py --dbs 5 --tables 2000            # 10,000 tables
    python benchmarks/tables.py --dbs 30 --tables 4000 --json out.json

A real `lakeflux serve` process on the file store. Every database gets its tables from writes that each
create `--per-write` new tables (one line each); then, with every table in place, it times a write
creating one more table, a write creating `--per-write` more, and a write to existing tables only; reads
the server's resident memory (RSS) before and after (per table: the difference over the table count);
times a restart after SIGKILL (every WAL segment replayed), persisting every buffered row (POST
/api/v3/persist: one file per table), a clean stop and a restart after it (nothing to replay), each
restart until /health answers, with the RSS after each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import NOISE_NOTE  # noqa: E402

from lakeflux.testing.process import ServerProcess  # noqa: E402

T0 = 1_700_000_000_000_000_000


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def post(url: str, body: bytes) -> float:
    """Seconds until the server answered 204."""
    req = urllib.request.Request(url, data=body, method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        assert r.status == 204, r.status
    return time.perf_counter() - started


def body(names: list[str], at: int) -> bytes:
    return "\n".join(f"{n},host=h{i % 7} usage={i}.5,count={i}i {T0 + at + i}" for i, n in enumerate(names)).encode()


def start(data: Path, args: list[str]) -> tuple[ServerProcess, float]:
    started = time.perf_counter()
    srv = ServerProcess(data, *args).start(timeout=1800)
    return srv, time.perf_counter() - started


def run(dbs: int, tables: int, per_write: int, root: Path) -> dict[str, Any]:
    data = root / "data"
    # A short flush interval: a write's time is its own cost, not the wait for the next commit.
    args = ["--without-auth", "--wal-flush-interval", "10ms", "--shutdown-grace-period", "1h"]
    srv, first_start = start(data, args)
    assert srv.proc is not None
    write = f"{srv.url}/api/v3/write_lp?db="
    post(write + "warmup", body(["warm"], 0))
    base_rss = rss_kib(srv.proc.pid)
    creating: list[float] = []
    started = time.perf_counter()
    for d in range(dbs):
        for first in range(0, tables, per_write):
            names = [f"t{i}" for i in range(first, min(first + per_write, tables))]
            creating.append(post(f"{write}db{d}", body(names, first)))
    fill_s = time.perf_counter() - started
    total = dbs * tables
    full_rss = rss_kib(srv.proc.pid)
    # With every table in place: one more table, a batch of new tables, existing tables only.
    one_new = [post(f"{write}db0", body([f"x{k}"], k)) for k in range(5)]
    batch_new = [post(f"{write}db1", body([f"y{k}_{i}" for i in range(per_write)], k)) for k in range(3)]
    existing = [post(f"{write}db0", body([f"t{i}" for i in range(per_write)], 10**6 + k)) for k in range(5)]
    # A crash: the restart replays every WAL segment (each table's rows are still only in the WAL).
    srv.kill()
    srv, kill_restart = start(data, args)
    assert srv.proc is not None
    kill_rss = rss_kib(srv.proc.pid)
    started = time.perf_counter()
    req = urllib.request.Request(f"{srv.url}/api/v3/persist", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=3600) as r:
        assert r.status == 200, r.status
    persist_s = time.perf_counter() - started
    persisted_rss = rss_kib(srv.proc.pid)
    started = time.perf_counter()
    srv.stop(timeout=1800)
    stop_s = time.perf_counter() - started
    # A clean restart: nothing to replay, every table persisted.
    srv, clean_restart = start(data, args)
    assert srv.proc is not None
    clean_rss = rss_kib(srv.proc.pid)
    srv.stop(timeout=1800)
    quarter = max(1, len(creating) // 4)
    return {
        "databases": dbs, "tables_per_db": tables, "tables": total, "new_tables_per_write": per_write,
        "first_start_s": round(first_start, 2),
        "fill_s": round(fill_s, 1),
        "creating_write_first_quarter_median_s": round(statistics.median(creating[:quarter]), 4),
        "creating_write_last_quarter_median_s": round(statistics.median(creating[-quarter:]), 4),
        "one_new_table_write_median_s": round(statistics.median(one_new), 4),
        f"{per_write}_new_tables_write_median_s": round(statistics.median(batch_new), 4),
        "existing_tables_write_median_s": round(statistics.median(existing), 4),
        "rss_base_mib": round(base_rss / 1024, 1),
        "rss_full_mib": round(full_rss / 1024, 1),
        "rss_per_table_kib": round((full_rss - base_rss) / total, 2),
        "restart_after_kill_s": round(kill_restart, 2),
        "rss_after_kill_restart_mib": round(kill_rss / 1024, 1),
        "persist_all_s": round(persist_s, 1),
        "rss_after_persist_mib": round(persisted_rss / 1024, 1),
        "stop_s": round(stop_s, 1),
        "restart_after_stop_s": round(clean_restart, 2),
        "rss_after_stop_restart_mib": round(clean_rss / 1024, 1),
        "rss_after_stop_restart_per_table_kib": round((clean_rss - base_rss) / total, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", type=int, default=5)
    parser.add_argument("--tables", type=int, default=2000, help="tables per database")
    parser.add_argument("--per-write", type=int, default=100, help="new tables per table-creating write")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lakeflux-tables-") as tmp:
        result = run(args.dbs, args.tables, args.per_write, Path(tmp))
    result["note"] = NOISE_NOTE
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
