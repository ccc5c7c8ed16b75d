"""Issue 18, item 1: a WAL trigger with a long name saves its cursor (a 300-character name could never).

Through a real server process on the file store: triggers named with 300 ASCII characters and with 30 CJK
characters (270 bytes escaped), on a table named `..`, each record their cursor after delivering a segment;
after a restart they go on from it, so every row reaches each plugin exactly once."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import orjson
import pytest

from lakeflux.testing.chaos import post, query
from lakeflux.testing.process import ServerProcess

pytestmark = pytest.mark.slow

PLUGIN = '''
def process_writes(influxdb3_local, table_batches, args=None):
    rows = sum(len(batch["rows"]) for batch in table_batches)
    influxdb3_local.write(LineBuilder("seen").tag("trigger", args["who"]).int64_field("rows", rows))
'''
TRIGGERS = {"long": "t" * 300, "cjk": "触" * 30}
T0 = 1_700_000_000_000_000_000


def write(url: str, body: str) -> None:
    assert post(f"{url}/api/v3/write_lp?db=db", body.encode()).status == 204


def seen(url: str) -> dict[str, int]:
    try:
        rows = query(url, "db", "SELECT trigger, sum(rows) AS n FROM seen GROUP BY trigger")
    except AssertionError:
        return {}  # no write-back yet
    return {r["trigger"]: r["n"] for r in rows}


def wait_seen(url: str, want: int) -> None:
    deadline = time.monotonic() + 60
    while seen(url) != dict.fromkeys(TRIGGERS, want):
        assert time.monotonic() < deadline, f"plugins saw {seen(url)}, expected {want} rows each"
        time.sleep(0.1)


def cursor_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "node0" / "cursors").rglob("*.json"))


def test_long_trigger_names_save_their_cursors(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "count.py").write_text(PLUGIN)
    data = tmp_path / "data"
    args = ("--without-auth", "--plugin-dir", str(plugins), "--wal-flush-interval", "10ms")
    srv = ServerProcess(data, *args).start()
    try:
        write(srv.url, f"..,k=a v=0i {T0}")
        for who, name in TRIGGERS.items():
            body = {"db": "db", "trigger_name": name, "plugin_filename": "count.py",
                    "trigger_specification": "table:..", "trigger_arguments": {"who": who}}
            reply = post(f"{srv.url}/api/v3/configure/processing_engine_trigger", json.dumps(body).encode(),
                         {"Content-Type": "application/json"})
            assert reply.status == 200, reply.body
        for i in range(1, 4):
            write(srv.url, f"..,k=a v={i}i {T0 + i}")
        wait_seen(srv.url, 3)
        deadline = time.monotonic() + 60
        while len(cursor_files(data)) < len(TRIGGERS):
            assert time.monotonic() < deadline, f"cursors saved: {cursor_files(data)}; log:\n{srv.log()}"
            time.sleep(0.1)
        assert "could not save cursor" not in srv.log()
        for path in cursor_files(data):
            assert len(path.name.encode()) <= 255
            assert orjson.loads(path.read_bytes())["seq"] >= 0
    finally:
        srv.stop()

    again = ServerProcess(data, *args).start()
    try:
        write(again.url, f"..,k=a v=4i {T0 + 4}")
        wait_seen(again.url, 4)  # the restart delivered only the new segment: nothing twice, nothing lost
        listed = {r["trigger_name"] for r in query(
            again.url, "db", "SELECT trigger_name FROM system.processing_engine_triggers")}
        assert listed == set(TRIGGERS.values())
        reply = post(f"{again.url}/api/v3/configure/processing_engine_trigger/disable?db=db&trigger_name="
                     f"{urllib.parse.quote(TRIGGERS['long'])}", b"")
        assert reply.status == 200, reply.body
    finally:
        again.stop()
