"""Record InfluxDB 1.x's answers to the InfluxQL corpus, and compare lakeflux with them live.

    python tests/influxql/oracle.py              # start influxd, compare lakeflux with it, statement by statement
    python tests/influxql/oracle.py --record     # ... and rewrite tests/influxql/fixtures/influxdb1.json

Needs Debian's `influxdb` package (`apt-get install influxdb`); influxd runs on loopback with its data in a
temp dir (benchmarks/common.py starts it). CI compares against the committed fixtures without influxd.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(ROOT / "benchmarks"), str(ROOT)]

from common import InfluxDB1, influxd_binary  # noqa: E402
from influxql_compare import FIXTURE, compare, lakeflux_answer  # noqa: E402
from influxql_corpus import DB, Case, H, cases, dataset  # noqa: E402


def influxdb1_answer(url: str, case: Case) -> tuple[int, dict]:
    params = {"db": DB, "q": case.q}
    if case.epoch:
        params["epoch"] = case.epoch
    if case.params:
        params["params"] = json.dumps(case.params)
    req = urllib.request.Request(f"{url}/query?{urllib.parse.urlencode(params)}")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def write_all(url: str, lp: str) -> None:
    lines = lp.splitlines()
    for start in range(0, len(lines), 5000):
        body = ("\n".join(lines[start:start + 5000]) + "\n").encode()
        req = urllib.request.Request(f"{url}/write?db={DB}&precision=ns", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 204, r.status


def influxd_version() -> str:
    binary = influxd_binary()
    out = subprocess.run([binary, "version"], capture_output=True, text=True) if binary else None
    return out.stdout.strip() if out else "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", action="store_true", help="rewrite the fixtures with InfluxDB 1.x's answers")
    args = ap.parse_args()
    if not InfluxDB1.available():
        print("influxd is not installed (apt-get install influxdb): nothing to compare", file=sys.stderr)
        return 2
    base = (time.time_ns() // H) * H - 3 * H
    lp = dataset(base)
    corpus = cases(base)
    recorded = []
    with InfluxDB1(db=DB) as influx:
        write_all(influx.url, lp)
        for case in corpus:
            now = time.time_ns()
            status, body = influxdb1_answer(influx.url, case)
            recorded.append({"q": case.q, "epoch": case.epoch, "params": case.params, "now": now, "status": status,
                             "body": body})
    fixture = {"influxdb": influxd_version(), "base": base, "cases": recorded}
    failures = compare_with_lakeflux(fixture)
    print(f"{len(corpus)} statements, {len(failures)} differ from InfluxDB 1.x")
    for line in failures[:200]:
        print(line)
    if args.record:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(fixture_text(fixture))
        print(f"wrote {FIXTURE.relative_to(ROOT)}")
    return 1 if failures else 0


def fixture_text(fixture: dict) -> str:
    """The fixture as JSON with one case per line (small, and a re-recording diffs case by case)."""
    head = {k: v for k, v in fixture.items() if k != "cases"}
    lines = [json.dumps(c, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for c in fixture["cases"]]
    return (json.dumps(head, sort_keys=True)[:-1] + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n")


def compare_with_lakeflux(fixture: dict) -> list[str]:
    from lakeflux.config import Config
    from lakeflux.store.memory import MemoryStore
    from lakeflux.testing.server import InProcessServer

    base = fixture["base"]
    by_query = {(c.q, c.epoch, json.dumps(c.params, sort_keys=True)): c for c in cases(base)}
    failures = []
    config = Config(object_store="memory", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(config, store=MemoryStore()) as srv:
        reply = srv.request("POST", f"/api/v3/write_lp?db={DB}&precision=ns", dataset(base))
        assert reply.status == 204, reply.body
        assert srv.services is not None and srv.services.influxql is not None
        for rec in fixture["cases"]:
            case = by_query[(rec["q"], rec["epoch"], json.dumps(rec["params"], sort_keys=True))]
            actual = lakeflux_answer(srv.services.influxql, DB, case, rec["now"])
            problems = compare(case, rec["status"], rec["body"], actual)
            if problems:
                failures.append(f"--- {case.q}\n    " + "\n    ".join(problems[:6]))
    return failures


if __name__ == "__main__":
    sys.exit(main())
