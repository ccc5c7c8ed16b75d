"""`--plugin-wal-backlog-limit` on a real server: a stuck WAL trigger may hold back only so much WAL. Past
the limit it gives up its oldest segments with an ERROR row naming them, the lag table counts them, a
snapshot then trims them from the object store, and once the plugin moves again it gets the segments it
kept — never the ones it gave up."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lakeflux.store import paths
from lakeflux.testing.process import ServerProcess

PLUGIN = '''
import json, os, time

def process_writes(influxdb3_local, table_batches, args=None):
    with open(args["calls"], "a") as out:
        out.write(json.dumps([row["n"] for batch in table_batches for row in batch["rows"]]) + "\\n")
    while os.path.exists(args["block"]):
        time.sleep(0.05)
'''


def post(url: str, path: str, body: bytes | dict) -> int:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json"} if isinstance(body, dict) else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def query(url: str, sql: str) -> list[dict]:
    req = urllib.request.Request(f"{url}/api/v3/query_sql", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"db": "db", "q": sql, "format": "json"}).encode())
    with urllib.request.urlopen(req, timeout=60) as reply:
        return json.loads(reply.read())


def wait_until(condition, what: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def calls(path: Path) -> list[list[int]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def wal_seqs(data: Path) -> set[int]:
    found = {paths.parse_seq(p.name) for p in (data / paths.wal_prefix("node0")).glob("*.parquet")}
    return {seq for seq in found if seq is not None}


def skip_error(url: str) -> str | None:
    rows = query(url, "SELECT log_text FROM system.processing_engine_logs WHERE log_level = 'ERROR'")
    return next((row["log_text"] for row in rows if "skipped WAL segments" in row["log_text"]), None)


@pytest.mark.slow
def test_a_stuck_trigger_gives_up_the_oldest_wal_past_the_limit(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "stuck.py").write_text(PLUGIN)
    record, block = tmp_path / "calls.jsonl", tmp_path / "block"
    data = tmp_path / "data"
    # One byte: the trigger keeps only the newest segment. A snapshot every two segments trims the WAL.
    server = ServerProcess(data, "--without-auth", "--plugin-dir", str(plugins), "--wal-flush-interval", "50ms",
                           "--plugin-wal-backlog-limit", "1", "--wal-snapshot-size", "2",
                           "--snapshotted-wal-files-to-keep", "0").start()
    try:
        assert post(server.url, "/api/v3/write_lp?db=db", b"cpu n=0i 1") == 204
        trigger = {"db": "db", "trigger_name": "stuck", "plugin_filename": "stuck.py",
                   "trigger_specification": "table:cpu",
                   "trigger_arguments": {"calls": str(record), "block": str(block)}}
        assert post(server.url, "/api/v3/configure/processing_engine_trigger", trigger) == 200
        block.write_text("")
        assert post(server.url, "/api/v3/write_lp?db=db", b"cpu n=1i 2") == 204
        wait_until(lambda: calls(record) == [[1]], "the call that gets stuck")
        for n in range(2, 11):
            assert post(server.url, "/api/v3/write_lp?db=db", f"cpu n={n}i {n + 1}".encode()) == 204

        text = wait_until(lambda: skip_error(server.url), "the ERROR row naming the skipped segments")
        found = re.search(r"skipped WAL segments (\d+) to (\d+) \((\d+) segments", text)
        assert found, text
        first, last, count = (int(group) for group in found.groups())
        assert "--plugin-wal-backlog-limit" in text
        assert count == last - first + 1 >= 9  # everything but the newest segment of the stuck trigger
        [lag] = query(server.url, "SELECT skipped_segments, position FROM system.processing_engine_wal_lag")
        assert lag == {"skipped_segments": count, "position": last}

        block.unlink()  # the plugin moves again: it gets the newest segment, which it kept
        wait_until(lambda: len(calls(record)) == 2, "the next call")
        assert calls(record)[1] == [10]
        wait_until(lambda: query(server.url, "SELECT segments_behind FROM system.processing_engine_wal_lag")
                   == [{"segments_behind": 0}], "the trigger to catch up")

        # Later snapshots trim the WAL below the trigger's position: the given-up segments go (the
        # persister keeps the segment at a trigger's position itself).
        for n in range(11, 15):
            assert post(server.url, "/api/v3/write_lp?db=db", f"other n={n}i {n + 1}".encode()) == 204
        wait_until(lambda: not wal_seqs(data) & set(range(first, last)), "the skipped segments to be trimmed")
        assert post(server.url, "/api/v3/write_lp?db=db", b"cpu n=20i 21") == 204
        wait_until(lambda: len(calls(record)) == 3, "the call for a new segment")
        assert calls(record)[2] == [20]
        [lag] = query(server.url, "SELECT skipped_segments FROM system.processing_engine_wal_lag")
        assert lag == {"skipped_segments": count}  # nothing more given up once it kept pace
    finally:
        server.stop()
