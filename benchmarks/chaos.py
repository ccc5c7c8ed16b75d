"""Long chaos run (issue 7): crash storms on the file store and on S3 (moto's server), and a fault storm
over FaultyStore(file); prints one summary table (kills, faults injected, acknowledged lines, lines lost,
duplicates). Exit status 1 if any acknowledged line was lost or duplicated.

    python benchmarks/chaos.py [--kills 100] [--fault-batches 2000] [--seed 1] [--no-s3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

from lakeflux.config import Config
from lakeflux.store.file import FileStore
from lakeflux.testing.chaos import CrashStorm, Ledger, StormReport, Writers, check, summary_table
from lakeflux.testing.faulty import FaultyStore
from lakeflux.testing.s3server import MotoServer
from lakeflux.testing.server import InProcessServer


def storm_row(report: StormReport) -> dict[str, object]:
    return {"kills": report.kills, "faults injected": 0, "acked lines": report.check.acked_lines,
            "lines lost": report.check.lost_lines, "duplicates": report.check.duplicate_lines,
            "half-visible batches": len(report.check.partial_batches),
            "snapshots interrupted": report.snapshots_interrupted, "seconds": round(report.seconds)}


def file_storm(root: Path, kills: int, seed: int) -> dict[str, object]:
    data = root / "file-storm"
    data.mkdir()
    return storm_row(CrashStorm(data, ["--object-store", "file"], observer=FileStore(data), seed=seed).run(kills))


def s3_storm(root: Path, kills: int, seed: int) -> dict[str, object]:
    moto = MotoServer().start()
    try:
        s3 = moto.endpoint("chaos")
        return storm_row(CrashStorm(root / "s3-storm", s3.serve_args(), observer=s3.store(), seed=seed).run(kills))
    finally:
        moto.stop()


def fault_storm(root: Path, batches: int, seed: int) -> dict[str, object]:
    """10% fail-before, 10% lost replies, 10% latency on every store call; snapshots forced meanwhile."""
    store = FaultyStore(FileStore(root / "fault-storm"), seed=seed)
    ledger = Ledger(100)
    config = Config(object_store="file", wal_flush_interval=0.01, without_auth=True, data_dir=root / "unused")
    with InProcessServer(config, store=store) as srv:
        for fault in (store.fail_before, store.lose_response):
            fault(probability=0.1)
        store.add_latency(0.001, probability=0.1)
        stop = threading.Event()

        def snapshots() -> None:
            while not stop.is_set():
                srv.call(srv.services.buffer.snapshot(), timeout=300)  # type: ignore[union-attr]
                stop.wait(0.05)

        snapper = threading.Thread(target=snapshots)
        snapper.start()
        Writers(lambda: srv.url, ledger, writers=4, new_table_every=20, seed=seed, retries=3,
                max_batches=batches).start().join(timeout=3600)
        stop.set()
        snapper.join()
        store.clear()
        srv.call(srv.services.buffer.snapshot(), timeout=300)  # type: ignore[union-attr]
        result = check(srv.url, ledger)
    with InProcessServer(config, store=store.inner) as again:
        after_restart = check(again.url, ledger)
    return {"kills": 0, "faults injected": store.injected_total(), "acked lines": result.acked_lines,
            "lines lost": max(result.lost_lines, after_restart.lost_lines),
            "duplicates": max(result.duplicate_lines, after_restart.duplicate_lines),
            "half-visible batches": len(result.partial_batches) + len(after_restart.partial_batches),
            "snapshots interrupted": 0,
            "seconds": "-", "503s": ledger.statuses["503"],
            "resent dup lines": after_restart.retried_duplicate_lines}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--fault-batches", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args(argv)
    rows: list[tuple[str, dict[str, object]]] = []
    with tempfile.TemporaryDirectory(prefix="lakeflux-chaos-") as tmp:
        root = Path(tmp)
        rows.append(("crash storm, file", file_storm(root, args.kills, args.seed)))
        if not args.no_s3:
            rows.append(("crash storm, s3 (moto)", s3_storm(root, args.kills, args.seed + 1)))
        rows.append(("fault storm, file (10% each)", fault_storm(root, args.fault_batches, args.seed + 2)))
    keys = rows[-1][1].keys()
    print(summary_table([(name, {k: row.get(k, "-") for k in keys}) for name, row in rows]))
    bad = any(row["lines lost"] or row["duplicates"] or row["half-visible batches"] for _, row in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
