"""Several lakeflux nodes on one store (issue 15): ingest on 2 nodes vs 1, replication lag to a query node, the
store requests an idle node costs, and a GROUP BY on a query node over compacted files vs one node over its own
files.

    python benchmarks/cluster.py [--rows 1000000] [--lag-samples 100] [--idle-seconds 30] [--query-rows 2000000]

Every node shares this machine's cores with the others (and the load generators, and moto), so the
figures are ratios against a peer measured in the same run, not what separate machines would do:

1. Ingest: `--rows` lines (`mixed` bodies, 2 connections per node, durable acks) into one ingest node,
   then the same lines split across two ingest nodes of one cluster, each fed by its own load generator
   process at the same time (file store). Reported: lines/s of each, and 2 nodes / 1 node.
2. Replication lag, S3 (moto): one ingest and one query node at default settings (`--replication-interval`
   250 ms); one line written at a time, then the query node polled every 5 ms until it answers it;
   lag = time from the 204 to the first query that sees it; p50 and p99 (target p99 ≤ 1 s).
3. Idle cost, S3 (moto): 2 ingest + 1 query + 1 process + 1 compact node in this process, each on its own
   counting wrapper of one S3 store; after a warm-up, store requests over `--idle-seconds` with no load, per
   node per second (target ≤ 5). The query and the process node each follow both ingest nodes.
4. Query: `--query-rows` rows of benchmarks/query.py's `cpu` table on one ingest node, snapshotted; and the
   same rows sent to two ingest nodes of another cluster (alternate batches), snapshotted and merged by its
   compactor, both nodes having retired what it absorbed. The same GROUP BY on the first node (its own
   files, one listing per table), on a query node following it (the files named by its manifest) and on a
   query node of the compacted cluster (the compacted files), interleaved, medians (file store).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import NOISE_NOTE, force_snapshot, http_json, percentile, send_batches  # noqa: E402
from lpgen import cpu_batches  # noqa: E402

from lakeflux.buffer.manifest import load_latest  # noqa: E402
from lakeflux.cluster import compaction  # noqa: E402
from lakeflux.config import Config, S3Settings  # noqa: E402
from lakeflux.store.file import FileStore  # noqa: E402
from lakeflux.testing.faulty import CountingStore  # noqa: E402
from lakeflux.testing.process import ServerProcess  # noqa: E402
from lakeflux.testing.s3server import MotoServer, S3Endpoint  # noqa: E402
from lakeflux.testing.server import InProcessServer  # noqa: E402

DB = "bench"
CLUSTER = ("--without-auth", "--cluster-id", "bench")
QUERY = "SELECT host, avg(usage_user) AS u, max(usage_system) AS s, count(*) AS n FROM cpu GROUP BY host ORDER BY host"


def node(data: Path, name: str, mode: str, *extra: str) -> ServerProcess:
    return ServerProcess(data, *CLUSTER, "--node-id", name, "--mode", mode, *extra,
                         log_path=data.parent / f"{name}.log").start(timeout=120)


def send_in_children(urls: list[str], rows_each: int, connections: int) -> float:
    """Send `rows_each` `mixed` lines to each URL at once, one load generator process per URL; wall seconds."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "common.py"), "send",
                               f"{url}/api/v3/write_lp?db={DB}", "--generator", "mixed", "--rows", str(rows_each),
                               "--connections", str(connections)], stdout=subprocess.DEVNULL)
             for url in urls]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"load generator failed with {proc.returncode}")
    return time.perf_counter() - started


# --- 1. ingest ---------------------------------------------------------------------------------------------
def bench_ingest(rows: int, connections: int) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "connections_per_node": connections}
    for count in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            nodes = [node(data, f"i{k}", "ingest") for k in range(count)]
            try:
                seconds = send_in_children([n.url for n in nodes], rows // count, connections)
            finally:
                for n in nodes:
                    n.stop()
        out[f"{count}_nodes"] = {"seconds": seconds, "lines_per_s": rows / seconds}
        print(f"ingest, {count} node(s): {rows / seconds:,.0f} lines/s", flush=True)
    out["ratio"] = out["2_nodes"]["lines_per_s"] / out["1_nodes"]["lines_per_s"]
    return out


# --- 2. replication lag ------------------------------------------------------------------------------------
def _sees(url: str, i: int) -> bool:
    try:
        rows = http_json(f"{url}/api/v3/query_sql", {"db": DB, "q": f"SELECT count(*) AS n FROM lag WHERE i = {i}",
                                                     "format": "json"})
    except urllib.error.HTTPError as e:
        if e.code in (400, 404):  # the database or table is not known there yet
            return False
        raise
    return bool(rows) and rows[0]["n"] == 1


def bench_lag(endpoint: S3Endpoint, samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        i1 = node(data, "i1", "ingest", *endpoint.serve_args())
        q1 = node(data, "q1", "query", *endpoint.serve_args())
        try:
            write = f"{i1.url}/api/v3/write_lp?db={DB}"
            urllib.request.urlopen(urllib.request.Request(write, data=b"lag,k=a i=-1i", method="POST")).close()
            deadline = time.monotonic() + 60
            while not _sees(q1.url, -1):  # the query node knows the table before the timing starts
                if time.monotonic() > deadline:
                    raise RuntimeError("the query node never saw the first line")
                time.sleep(0.05)
            lags = []
            for i in range(samples):
                urllib.request.urlopen(urllib.request.Request(write, data=f"lag,k=a i={i}i".encode(),
                                                              method="POST")).close()
                acked = time.perf_counter()
                while not _sees(q1.url, i):
                    time.sleep(0.005)
                lags.append(time.perf_counter() - acked)
        finally:
            q1.stop()
            i1.stop()
    out = {"samples": samples, "p50_ms": percentile(lags, 50) * 1e3, "p99_ms": percentile(lags, 99) * 1e3,
           "max_ms": max(lags) * 1e3}
    print(f"replication lag: p50 {out['p50_ms']:.0f} ms, p99 {out['p99_ms']:.0f} ms", flush=True)
    return out


# --- 3. idle cost ------------------------------------------------------------------------------------------
def bench_idle(endpoint: S3Endpoint, seconds: float) -> dict[str, Any]:
    s3 = S3Settings(bucket=endpoint.bucket, endpoint=endpoint.endpoint_url, region=endpoint.region,
                    access_key_id=endpoint.access_key, secret_access_key=endpoint.secret, allow_http=True)
    roles = {"i1": ("ingest",), "i2": ("ingest",), "q1": ("query",), "p1": ("process",), "c1": ("compact",)}
    stores = {name: CountingStore(endpoint.store()) for name in roles}
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name, modes in roles.items():  # defaults: sync 1 s, replication 250 ms, heartbeat 10 s
                config = Config(node_id=name, cluster_id="idle", modes=modes, object_store="s3", s3=s3,
                                data_dir=Path(tmp) / name, without_auth=True)
                srv = InProcessServer(config, store=stores[name])
                srv.start()
                servers.append(srv)
            assert servers[0].write(DB, "t,k=a v=1i 1").status == 204
            time.sleep(15)  # followers started, first heartbeats and syncs done
            for store in stores.values():
                store.reset()
            time.sleep(seconds)
            counts = {name: dict(store.calls) for name, store in stores.items()}
        finally:
            for srv in servers:
                srv.stop()
    per_node = {name: sum(c.values()) / seconds for name, c in counts.items()}
    out = {"seconds": seconds, "requests_per_s": per_node, "by_operation": counts,
           "max_per_node_per_s": max(per_node.values())}
    print("idle store requests per second: " + ", ".join(f"{n} {v:.2f}" for n, v in per_node.items()), flush=True)
    return out


# --- 4. query ----------------------------------------------------------------------------------------------
def compacted_cluster(data: Path, rows: int, row_limit: int | None) -> tuple[list[ServerProcess], ServerProcess, int]:
    """`rows` cpu rows through two ingest nodes of a cluster with a compactor, snapshotted, compacted and retired;
    returns every node started, its query node, and the compacted files."""
    limit = ("--compaction-row-limit", str(row_limit)) if row_limit else ()
    nodes = [node(data, "c1", "compact", "--compaction-check-interval", "1s", *limit)]
    try:
        ingest = [node(data, name, "ingest") for name in ("i1", "i2")]
        for k, srv in enumerate(ingest):  # alternate batches to each node: the same rows as the single node's
            send_batches(f"{srv.url}/api/v3/write_lp?db={DB}", itertools.islice(cpu_batches(rows), k, None, 2), 2)
        for srv in ingest:
            srv.stop()
        for name in ("i1", "i2"):  # sealed: the registry names a compact-mode node
            force_snapshot(data, node=name, cluster_id="bench", modes=("ingest",))
        nodes += [node(data, name, "ingest") for name in ("i1", "i2")]  # they retire what the compactor absorbs
        store = FileStore(data)
        deadline = time.monotonic() + 1800
        while True:
            newest = compaction.load_newest(store, "bench")
            if sum(f.rows for f in newest.files) == rows and not any(
                    load_latest(store, n)[0].files for n in ("i1", "i2")):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the compactor did not absorb every row")
            time.sleep(1)
        q1 = node(data, "q1", "query")
        nodes.append(q1)
        return nodes, q1, len(newest.files)
    except BaseException:
        for srv in reversed(nodes):
            srv.stop()
        raise


def bench_query(rows: int, repeats: int, row_limit: int | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp2:
        data = Path(tmp) / "data"
        i1 = node(data, "i1", "ingest")
        try:
            send_batches(f"{i1.url}/api/v3/write_lp?db={DB}", cpu_batches(rows), 2)
        finally:
            i1.stop()
        files = force_snapshot(data, node="i1", cluster_id="bench", modes=("ingest",))
        started = time.perf_counter()
        compacted, q2, compacted_files = compacted_cluster(Path(tmp2) / "data", rows, row_limit)
        compaction_s = time.perf_counter() - started
        i1 = node(data, "i1", "ingest,query")
        q1 = node(data, "q1", "query")
        try:
            ask = [lambda u=u: http_json(f"{u}/api/v3/query_sql", {"db": DB, "q": QUERY, "format": "json"})
                   for u in (i1.url, q1.url, q2.url)]
            answers = [a() for a in ask]  # warm-up, and the answers must agree
            seconds: list[list[float]] = [[], [], []]
            for _ in range(repeats):
                for k, a in enumerate(ask):
                    started = time.perf_counter()
                    a()
                    seconds[k].append(time.perf_counter() - started)
        finally:
            for srv in (q1, i1, *reversed(compacted)):
                srv.stop()
    own, follower, over_compacted = (statistics.median(s) for s in seconds)
    out = {"rows": rows, "files": files, "own_node_s": own, "query_node_s": follower, "ratio": follower / own,
           "compacted_files": compacted_files, "compacted_query_node_s": over_compacted,
           "compacted_ratio": over_compacted / own, "two_nodes_to_compacted_s": compaction_s,
           "answers_match": same(answers[0], answers[1]) and same(answers[0], answers[2])}
    print(f"GROUP BY: ingest node over its own files {own * 1e3:.0f} ms, query node following it "
          f"{follower * 1e3:.0f} ms, query node over compacted files {over_compacted * 1e3:.0f} ms", flush=True)
    return out


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Same rows, numbers equal to 1e-9 relative (an average's last digits depend on the summation order)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x.keys() != y.keys():
            return False
        for k in x:
            if isinstance(x[k], float) or isinstance(y[k], float):
                if not math.isclose(x[k], y[k], rel_tol=1e-9):
                    return False
            elif x[k] != y[k]:
                return False
    return True


def run(rows: int, connections: int, lag_samples: int, idle_seconds: float, query_rows: int,
        repeats: int, row_limit: int | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {"note": NOISE_NOTE}
    results["ingest"] = bench_ingest(rows, connections)
    moto = MotoServer().start()
    try:
        results["lag"] = bench_lag(moto.endpoint("cluster-lag"), lag_samples)
        results["idle"] = bench_idle(moto.endpoint("cluster-idle"), idle_seconds)
    finally:
        moto.stop()
    results["query"] = bench_query(query_rows, repeats, row_limit)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--lag-samples", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--query-rows", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compaction-row-limit", type=int, help="the compactor's --compaction-row-limit [default: "
                                                               "the server's]")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = run(args.rows, args.connections, args.lag_samples, args.idle_seconds, args.query_rows, args.repeats,
                  args.compaction_row_limit)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
