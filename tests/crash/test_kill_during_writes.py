"""Done-when of the core issue: SIGKILL a real server mid-stream; every acknowledged line survives,
and no unacknowledged batch is half-visible. Runs on the file store and on S3 (moto's server)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from lakeflux.testing.process import ServerProcess

BATCH = 5_000
BATCHES = 40  # 200k lines
WRITERS = 2


def batch_body(b: int) -> bytes:
    base = 1_700_000_000_000_000_000 + b * BATCH
    return "\n".join(f"crash,batch=b{b} n={i}i,v={i * 0.5} {base + i}" for i in range(BATCH)).encode()


def post(url: str, body: bytes, timeout: float = 60) -> int:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def query(url: str, db: str, sql: str) -> list[dict]:
    req = urllib.request.Request(f"{url}/api/v3/query_sql", method="POST",
                                 data=json.dumps({"db": db, "q": sql, "format": "json"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def write_until_killed(srv: ServerProcess, kill_after: int) -> set[int]:
    """Writers send batches; after `kill_after` acks the server is SIGKILLed. Returns acked batch ids."""
    acked: set[int] = set()
    lock = threading.Lock()
    next_batch = iter(range(BATCHES))
    killed = threading.Event()

    def writer() -> None:
        while not killed.is_set():
            with lock:
                b = next(next_batch, None)
            if b is None:
                return
            try:
                status = post(f"{srv.url}/api/v3/write_lp?db=crashdb", batch_body(b))
            except OSError:
                return  # connection dropped by the kill: not acknowledged
            if status == 204:
                with lock:
                    acked.add(b)
                    if len(acked) >= kill_after and not killed.is_set():
                        killed.set()
                        srv.kill()

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    srv.kill()
    return acked


def check_after_restart(srv: ServerProcess, acked: set[int]) -> set[int]:
    """Every acked batch complete, no batch partial, no row twice; returns the visible batches."""
    rows = query(srv.url, "crashdb", "SELECT batch, count(*) AS n FROM crash GROUP BY batch")
    counts = {int(r["batch"][1:]): r["n"] for r in rows}
    for b in acked:
        assert counts.get(b) == BATCH, f"acknowledged batch {b} has {counts.get(b)} of {BATCH} rows"
    for b, n in counts.items():
        assert n == BATCH, f"batch {b} is half-visible: {n} of {BATCH} rows"
    dupes = query(srv.url, "crashdb", "SELECT count(*) AS n, count(DISTINCT time) AS d FROM crash")[0]
    assert dupes["n"] == dupes["d"], "a replayed segment duplicated rows"
    return set(counts)


def run_crash_scenario(tmp_path, *serve_args: str, env: dict[str, str] | None = None) -> None:
    data = tmp_path / "data"
    srv = ServerProcess(data, *serve_args, env=env).start()
    try:
        acked = write_until_killed(srv, kill_after=BATCHES // 2)
        assert len(acked) >= BATCHES // 2
        srv = ServerProcess(data, *serve_args, port=srv.port, env=env).start()
        visible = check_after_restart(srv, acked)
        # The restarted server keeps taking writes and keeps them after a second crash.
        more = {b for b in range(BATCHES) if b not in visible and post(
            f"{srv.url}/api/v3/write_lp?db=crashdb", batch_body(b)) == 204}
        srv.kill()
        srv = ServerProcess(data, *serve_args, port=srv.port, env=env).start()
        check_after_restart(srv, visible | more)
    finally:
        srv.stop()


@pytest.mark.slow
def test_sigkill_mid_stream_file_store(tmp_path):
    run_crash_scenario(tmp_path, "--object-store", "file", "--without-auth")


@pytest.mark.slow
@pytest.mark.s3
def test_sigkill_mid_stream_s3(tmp_path, s3_endpoint):
    run_crash_scenario(
        tmp_path, "--object-store", "s3", "--bucket", s3_endpoint.bucket, "--aws-endpoint",
        s3_endpoint.endpoint_url, "--aws-allow-http", "--aws-access-key-id", s3_endpoint.access_key,
        "--aws-secret-access-key", s3_endpoint.secret, "--aws-default-region", s3_endpoint.region,
        "--without-auth",
    )
