"""The `lakeflux` CLI, run as a process, against a real `lakeflux serve` process: the user's door.

The fake server in cli_fakes.py answers what the contract says; these tests catch what it cannot: SQL the real
system tables refuse, token files of several servers on one machine, a port that is taken.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from lakeflux.localstate import read_token_file
from lakeflux.testing.process import ServerProcess, free_port

pytestmark = pytest.mark.slow

LOGGER_PLUGIN = '''
def process_writes(influxdb3_local, table_batches, args=None):
    for batch in table_batches:
        influxdb3_local.info("saw", len(batch["rows"]), "rows of", batch["table_name"])
'''


def lakeflux(*args: str, cwd: Path, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`lakeflux ARGS` in `cwd`, with this test's environment (see conftest.clean_env)."""
    return subprocess.run([sys.executable, "-m", "lakeflux", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=timeout, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def eventually(check: Callable[[], str | None], what: str, timeout: float = 60) -> str:
    """Poll `check` until it returns text (plugins run after the write is acknowledged)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never saw {what}")


def started(srv: ServerProcess) -> ServerProcess:
    srv.start()
    return srv


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_show_triggers_and_logs_against_a_real_server(tmp_path: Path, work: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "logger.py").write_text(LOGGER_PLUGIN)
    with ServerProcess(tmp_path / "data", "--plugin-dir", str(plugins), "--wal-flush-interval", "10ms") as srv:
        host = ["-H", srv.url]
        ok(lakeflux("write", *host, "-d", "db", "cpu,host=a usage=1", cwd=work))
        ok(lakeflux("create", "trigger", "logger", *host, "-d", "db", "--trigger-spec", "table:cpu",
                    "--path", "logger.py", cwd=work))
        triggers = json.loads(ok(lakeflux("show", "triggers", *host, "-d", "db", "--format", "json", cwd=work)))
        assert [(t["trigger_name"], t["trigger_specification"]) for t in triggers] == [("logger", "table:cpu")]
        assert "logger" in ok(lakeflux("show", "triggers", *host, "-d", "db", cwd=work))

        follow = subprocess.Popen([sys.executable, "-m", "lakeflux", "show", "logs", *host, "-d", "db", "--trigger",
                                   "logger", "--follow", "--interval", "0.1"], cwd=work, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            ok(lakeflux("write", *host, "-d", "db", "cpu,host=b usage=2", cwd=work))
            for args in (["--trigger", "logger"], []):
                line = eventually(lambda a=args: next((x for x in ok(lakeflux(
                    "show", "logs", *host, "-d", "db", *a, cwd=work)).splitlines() if "saw 1 rows of cpu" in x), None),
                    "the plugin's log line")
                assert "INFO logger: saw 1 rows of cpu" in line
            assert follow.stdout is not None
            assert "saw 1 rows of cpu" in next(x for x in follow.stdout if "saw" in x)
        finally:
            follow.terminate()
            follow.wait(timeout=30)


def test_each_servers_token_file_lives_with_its_state_and_the_cli_finds_it(
        tmp_path: Path, work: Path, s3_endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEFLUX_DB_DIR")  # the user's shell: nothing set, servers started in `work`
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    file_server = started(ServerProcess(None, port=port, cwd=work))
    try:
        file_token = read_token_file(work / "data" / "admin-token")
        assert file_token is not None and file_token in file_server.log()
        ok(lakeflux("write", "-H", file_server.url, "-d", "filedb", "m v=1", cwd=elsewhere))  # found via its note
    finally:
        file_server.stop()

    s3 = ["--object-store", "s3", "--bucket", s3_endpoint.bucket, "--aws-endpoint", s3_endpoint.endpoint_url,
          "--aws-allow-http", "--aws-access-key-id", s3_endpoint.access_key, "--aws-secret-access-key",
          s3_endpoint.secret, "--aws-default-region", s3_endpoint.region]
    with ServerProcess(None, *s3, port=port, cwd=work) as s3_server:
        assert read_token_file(work / "data" / "admin-token") == file_token  # the file store's file is untouched
        state = Path(os.environ["LAKEFLUX_STATE_DIR"])
        (s3_file,) = (state / "tokens").glob("s3-*/node0/admin-token")
        s3_token = read_token_file(s3_file)
        assert s3_token is not None and s3_token != file_token and str(s3_file) in s3_server.log()
        for cwd in (work, elsewhere):  # ./data/admin-token of the file server is in `work`: not the one to send
            ok(lakeflux("write", "-H", s3_server.url, "-d", "s3db", "m v=2", cwd=cwd))
        assert '"v":2' in ok(lakeflux("query", "-H", s3_server.url, "-d", "s3db", "--format", "json",
                                      "SELECT v FROM m", cwd=work)).replace(" ", "")

    with ServerProcess(None, "--object-store", "memory", port=port, cwd=work) as memory_server:
        assert read_token_file(work / "data" / "admin-token") == file_token
        ok(lakeflux("show", "databases", "-H", memory_server.url, cwd=work))

    with ServerProcess(None, port=port, cwd=work) as again:  # the file store's server is back: so is its token
        ok(lakeflux("query", "-H", again.url, "-d", "filedb", "SELECT v FROM m", cwd=elsewhere))


def test_a_server_never_overwrites_a_token_file_it_did_not_create(tmp_path: Path, work: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEFLUX_DB_DIR")
    data = work / "data"
    data.mkdir()
    (data / "admin-token").write_text("apiv3_another_servers_token\n")
    # A file store in ./data with no catalog yet (a wiped node, another node's leftovers): not its file.
    with ServerProcess(None, cwd=work) as srv:
        assert (data / "admin-token").read_text() == "apiv3_another_servers_token\n"
        assert "NOT saved" in srv.log()
        token = next(line for line in srv.log().splitlines() if line.startswith("apiv3_"))
        refused = lakeflux("show", "databases", "-H", srv.url, cwd=work)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "not authenticated" in refused.stderr and str(data / "admin-token") in refused.stderr
        assert "--token" in refused.stderr
        ok(lakeflux("show", "databases", "-H", srv.url, "--token", token, cwd=work))
        regenerated = ok(lakeflux("create", "token", "--admin", "--regenerate", "-H", srv.url, "--token", token,
                                  cwd=work))
        assert "apiv3_" in regenerated
        assert (data / "admin-token").read_text() == "apiv3_another_servers_token\n"


def test_regenerate_updates_the_servers_own_token_file(tmp_path: Path, work: Path) -> None:
    with ServerProcess(tmp_path / "data") as srv:
        before = read_token_file(tmp_path / "data" / "admin-token")
        out = ok(lakeflux("create", "token", "--admin", "--regenerate", "-H", srv.url, cwd=work))
        after = read_token_file(tmp_path / "data" / "admin-token")
        assert after is not None and after != before and after in out
        ok(lakeflux("show", "databases", "-H", srv.url, cwd=work))  # the CLI keeps working


def test_the_last_admin_token_cannot_be_deleted(tmp_path: Path, work: Path) -> None:
    with ServerProcess(tmp_path / "data") as srv:
        refused = lakeflux("delete", "token", "-y", "-H", srv.url, cwd=work)
        assert refused.returncode == 1 and "cannot delete operator token" in refused.stderr
        assert "Traceback" not in refused.stderr
        # Still authenticated, and nobody can create an admin token without credentials.
        ok(lakeflux("show", "tokens", "-H", srv.url, cwd=work))
        request = urllib.request.Request(srv.url + "/api/v3/configure/token/admin", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 401


def test_serve_on_a_taken_port_names_the_address(tmp_path: Path, work: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = lakeflux("serve", "--http-bind", address, "--data-dir", str(tmp_path / "data"), cwd=work)
    assert result.returncode != 0
    assert f"cannot listen on {address}" in result.stderr and "already in use" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_write_defaults_stdin_errors_and_json_output(tmp_path: Path, work: Path) -> None:
    with ServerProcess(tmp_path / "data", "--wal-flush-interval", "10ms") as srv:
        host = ["-H", srv.url, "-d", "db"]
        ok(lakeflux("write", *host, "home,room=a temp=21.5 1", cwd=work))
        # Partial writes are accepted by default, as on HTTP v3: the good line is written.
        partial = lakeflux("write", *host, "home,room=b temp=22.5 2\nhome,room=c temp=\"warm\" 3", cwd=work)
        assert partial.returncode == 1 and "partial write of line protocol occurred" in partial.stderr
        assert partial.stderr.count("line 2") == 1
        assert ("line 2: invalid column type for column 'temp', expected iox::column_type::field::float, "
                "got iox::column_type::field::string: home,room=c temp=\"warm\" 3") in partial.stderr
        rejected = lakeflux("write", *host, "--no-accept-partial", "home,room=d temp=1 4\nhome,room=e temp=\"x\" 5",
                            cwd=work)
        assert rejected.returncode == 1 and "line protocol parsing error" in rejected.stderr
        ok(lakeflux("write", *host, "-", stdin="home,room=f temp=23.5 6\nhome,room=g temp=24.5 7\n", cwd=work))
        out = ok(lakeflux("query", *host, "--format", "json", "SELECT room FROM home ORDER BY room", cwd=work))
        assert out.endswith("]\n")
        assert [row["room"] for row in json.loads(out)] == ["a", "b", "f", "g"]


def test_manual_admin_token_runs_cores_bootstrap(tmp_path: Path, work: Path) -> None:
    """InfluxDB 3 Core's client CI bootstrap, step by step: wait for 401 on /ping, create the admin token without
    credentials, ping with it (200 JSON), create a database (200)."""
    with ServerProcess(tmp_path / "data", "--manual-admin-token") as srv:
        assert "Admin token" not in srv.log()
        with pytest.raises(urllib.error.HTTPError) as unauthenticated:
            urllib.request.urlopen(srv.url + "/ping", timeout=30)
        assert unauthenticated.value.code == 401
        created = ok(lakeflux("create", "token", "--admin", "-H", srv.url, cwd=work))
        token = next(word for word in created.split() if word.startswith("apiv3_"))
        ping = urllib.request.Request(srv.url + "/ping", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(ping, timeout=30) as reply:
            assert reply.status == 200
            body = json.loads(reply.read())
        assert body["version"] and body["revision"]
        database = urllib.request.Request(srv.url + "/api/v3/configure/database", data=b'{"db": "my-db"}',
                                          method="POST", headers={"Authorization": f"Bearer {token}",
                                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(database, timeout=30) as reply:
            assert reply.status == 200
        second = lakeflux("create", "token", "--admin", "-H", srv.url, "--token", token, cwd=work)
        assert second.returncode == 1 and "409" in second.stderr
        assert read_token_file(tmp_path / "data" / "admin-token") == token  # the local CLI finds it from now on
        ok(lakeflux("show", "databases", "-H", srv.url, cwd=work))
