"""At-least-once WAL delivery across a crash (CONTRACT §2.4): a real server is SIGKILLed after a segment
was committed and handed to a plugin but before the plugin finished; after the restart the plugin gets
that segment again."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from lakeflux.testing.process import ServerProcess

# Records every call (the rows it got) in a file, then blocks while the "block" file exists.
RECORDER = '''
import json, os, time

def process_writes(influxdb3_local, table_batches, args=None):
    rows = [[batch["table_name"], row] for batch in table_batches for row in batch["rows"]]
    with open(args["calls"], "a") as out:
        out.write(json.dumps(rows) + "\\n")
        out.flush()
        os.fsync(out.fileno())
    while os.path.exists(args["block"]):
        time.sleep(0.05)
'''


def request(url: str, method: str, path: str, body: bytes | dict | None = None) -> int:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"} if isinstance(body, dict) else {}
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def calls(path: Path) -> list[list]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_calls(path: Path, count: int, timeout: float = 60) -> list[list]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = calls(path)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} plugin calls, saw {calls(path)}")


def test_segment_is_redelivered_after_kill_between_commit_and_plugin_completion(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "recorder.py").write_text(RECORDER)
    record, block = tmp_path / "calls.jsonl", tmp_path / "block"
    flags = ("--object-store", "file", "--plugin-dir", str(plugin_dir), "--without-auth",
             "--wal-flush-interval", "50ms")
    server = ServerProcess(tmp_path / "data", *flags).start()
    try:
        assert request(server.url, "POST", "/api/v3/write_lp?db=db&precision=nanosecond", b"setup v=0 1") == 204
        trigger = {"db": "db", "trigger_name": "rec", "plugin_filename": "recorder.py",
                   "trigger_specification": "all_tables",
                   "trigger_arguments": {"calls": str(record), "block": str(block)}}
        assert request(server.url, "POST", "/api/v3/configure/processing_engine_trigger", trigger) == 200
        block.write_text("")
        assert request(server.url, "POST", "/api/v3/write_lp?db=db&precision=nanosecond", b"cpu,host=a usage=42i 1000") == 204
        first = wait_for_calls(record, 1)
        assert first == [[["cpu", {"host": "a", "usage": 42, "time": 1000}]]]
    finally:
        server.kill()  # the plugin is still inside its call: the cursor never passed this segment
    block.unlink()
    restarted = ServerProcess(tmp_path / "data", *flags, port=server.port).start()
    try:
        again = wait_for_calls(record, 2)
        assert again[1] == again[0]  # the same committed segment, delivered again
        assert request(restarted.url, "POST", "/api/v3/write_lp?db=db&precision=nanosecond", b"cpu,host=b usage=7i 2000") == 204
        later = wait_for_calls(record, 3)
        assert later[2] == [["cpu", {"host": "b", "usage": 7, "time": 2000}]]
        assert len(calls(record)) == 3  # the redelivered segment was finished; nothing else repeats
    finally:
        restarted.stop()
