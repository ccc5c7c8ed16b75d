"""lakeflux on S3 (moto's server on loopback): durable ingest, object PUTs per WAL flush, snapshot, query.

    python benchmarks/s3.py [--rows 500000] [--connections 2] [--repeats 5] [--json out.json]

The server runs in this process (`InProcessServer`) on an S3 store wrapped in `CountingStore`, which counts
every object write; the load comes from a child process (`common.py send`) so client and server do not
share one interpreter lock. Rows are the `cpu` table of benchmarks/query.py. Reported: durable lines/s,
PUTs and bytes per WAL flush (a flush is one group commit = one WAL segment), the PUTs of a snapshot of
everything ingested, and the median time of a GROUP BY over the persisted files (DataFusion reading S3).
moto keeps objects in memory, so this measures request counts and lakeflux's own overhead, not S3 latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import send_in_child  # noqa: E402

from lakeflux.config import Config, S3Settings  # noqa: E402
from lakeflux.testing.faulty import CountingStore  # noqa: E402
from lakeflux.testing.s3server import MotoServer  # noqa: E402
from lakeflux.testing.server import InProcessServer  # noqa: E402

DB = "bench"
QUERY = "SELECT host, avg(usage_user) AS u, max(usage_system) AS s, count(*) AS n FROM cpu GROUP BY host ORDER BY host"


def run(rows: int, connections: int, repeats: int) -> dict:
    """Ingest, count, snapshot, query; prints as it goes and returns the results."""
    moto = MotoServer().start()
    try:
        endpoint = moto.endpoint("lakeflux-bench")
        store = CountingStore(endpoint.store())
        config = Config(object_store="s3", without_auth=True, s3=S3Settings(
            bucket=endpoint.bucket, endpoint=endpoint.endpoint_url, region=endpoint.region,
            access_key_id=endpoint.access_key, secret_access_key=endpoint.secret, allow_http=True))
        with InProcessServer(config, store=store) as srv:
            assert srv.services is not None
            stats = srv.services.buffer.stats
            store.reset()
            segments_before = stats.segments
            seconds = send_in_child(f"{srv.url}/api/v3/write_lp?db={DB}", "cpu", rows, connections)
            flushes = stats.segments - segments_before
            ingest = {"lines_per_s": rows / seconds, "seconds": seconds, "wal_flushes": flushes,
                      "puts": store.puts, "puts_per_flush": store.puts / max(flushes, 1),
                      "bytes_per_flush": store.bytes_written / max(flushes, 1), "calls": dict(store.calls)}
            print(f"S3 ingest: {ingest['lines_per_s']:,.0f} durable lines/s; {flushes} WAL flushes, "
                  f"{ingest['puts_per_flush']:.2f} PUTs and {ingest['bytes_per_flush'] / 1024:.0f} KiB per flush "
                  f"(all object calls during ingest: {dict(store.calls)})")
            store.reset()
            started = time.perf_counter()
            srv.call(srv.services.buffer.snapshot(), timeout=600)
            # A copy is a CopyObject request, which S3 bills as a PUT.
            snapshot = {"seconds": time.perf_counter() - started, "puts": store.puts + store.calls["copy"],
                        "calls": dict(store.calls),
                        "files": len(srv.services.buffer.persister.manifest.files)  # type: ignore[union-attr]
                        if srv.services.buffer.persister else 0}
            print(f"S3 snapshot of everything: {snapshot['seconds']:.2f}s, {snapshot['puts']} PUTs, "
                  f"{snapshot['files']} Parquet files")
            answer = srv.query(DB, QUERY)
            if sum(r["n"] for r in answer) != rows:
                raise RuntimeError(f"query counts {sum(r['n'] for r in answer)} rows, {rows} were written")
            samples = []
            for _ in range(repeats):
                started = time.perf_counter()
                srv.query(DB, QUERY)
                samples.append(time.perf_counter() - started)
            query = {"sql": QUERY, "median_s": statistics.median(samples), "runs": samples}
            print(f"S3 query (GROUP BY host over {rows:,} persisted rows): median {query['median_s'] * 1e3:.1f} ms")
    finally:
        moto.stop()
    return {"rows": rows, "connections": connections, "ingest": ingest, "snapshot": snapshot, "query": query}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = run(args.rows, args.connections, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
