"""`gh:` plugins from a loopback plugin repository (CONTRACT §1.2): fetch, cache, offline restart, refresh."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
from runtime_support import TRIGGER_ROUTE, create_trigger

from lakeflux.config import Config
from lakeflux.testing.process import free_port
from lakeflux.testing.server import InProcessServer

HELLO = '''
def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"says": "%s"}
'''


class Repo:
    """A loopback HTTP server answering GET <path> from `files`; records every path asked for."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.requests: list[str] = []
        repo = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                repo.requests.append(self.path)
                body = repo.files.get(self.path.lstrip("/").removeprefix("repo/"))
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/repo"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def repo():
    server = Repo()
    yield server
    server.close()


def config(tmp_path: Path, repo_url: str) -> Config:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    return Config(plugin_dir=plugin_dir, plugin_repo=repo_url, object_store="file", data_dir=tmp_path / "data",
                  without_auth=True,
                  wal_flush_interval=0.02)


def call(srv: InProcessServer, path: str = "hello") -> object:
    reply = srv.request("GET", f"/api/v3/engine/{path}")
    assert reply.status == 200, reply.body
    return reply.json()


def test_fetch_cache_offline_restart_and_refresh_on_update(tmp_path, repo):
    repo.files["examples/hello.py"] = HELLO % "v1"
    cfg = config(tmp_path, repo.url)
    with InProcessServer(cfg) as srv:
        assert srv.write("db", "m v=1").status == 204
        assert create_trigger(srv, "db", "t", "gh:examples/hello.py", "request:hello").status == 200
        assert call(srv) == {"says": "v1"}
        assert repo.requests == ["/repo/examples/hello.py"]
        cached = cfg.plugin_dir / ".gh_cache" / "examples" / "hello.py"
        assert cached.read_text() == HELLO % "v1"
        assert (cached.parent / "hello.py.sha256").is_file()
    repo.close()  # the repository is gone: the restart must use the cached copy
    with InProcessServer(cfg) as srv:
        assert call(srv) == {"says": "v1"}
    repo2 = Repo()
    try:
        repo2.files["examples/hello.py"] = HELLO % "v2"
        with InProcessServer(cfg.with_changes(plugin_repo=repo2.url)) as srv:
            assert call(srv) == {"says": "v1"}  # boot does not re-download
            reply = srv.request("PUT", TRIGGER_ROUTE, {"db": "db", "trigger_name": "t",
                                                       "trigger_arguments": {"x": "1"}})
            assert reply.status == 200, reply.body
            assert call(srv) == {"says": "v2"}  # update re-fetched it
            assert repo2.requests == ["/repo/examples/hello.py"]
    finally:
        repo2.close()


def test_damaged_cache_is_downloaded_again_at_boot(tmp_path, repo):
    repo.files["p.py"] = HELLO % "good"
    cfg = config(tmp_path, repo.url)
    with InProcessServer(cfg) as srv:
        assert srv.write("db", "m v=1").status == 204
        assert create_trigger(srv, "db", "t", "gh:p.py", "request:hello").status == 200
    (cfg.plugin_dir / ".gh_cache" / "p.py").write_text(HELLO % "tampered")
    with InProcessServer(cfg) as srv:
        assert call(srv) == {"says": "good"}
    assert len(repo.requests) == 2


def test_missing_path_and_unreachable_repo_are_502_and_nothing_is_created(tmp_path, repo):
    with InProcessServer(config(tmp_path, repo.url)) as srv:
        assert srv.write("db", "m v=1").status == 204
        reply = create_trigger(srv, "db", "t", "gh:nope/missing.py", "request:hello")
        assert reply.status == 502
        assert reply.json()["error"] == f"error fetching plugin from repository: 404 {repo.url}/nope/missing.py"
        assert srv.query("db", "SELECT * FROM system.processing_engine_triggers") == []
    dead = f"http://127.0.0.1:{free_port()}/"
    with InProcessServer(config(tmp_path / "b", dead)) as srv:
        assert srv.write("db", "m v=1").status == 204
        reply = create_trigger(srv, "db", "t", "gh:p.py", "request:hello")
        assert reply.status == 502
        assert reply.json()["error"].startswith(f"error fetching plugin from repository: {dead}p.py")


@pytest.mark.parametrize("name", ["gh:../etc/passwd", "gh:/abs.py", "gh:"])
def test_bad_gh_paths_are_refused(tmp_path, repo, name):
    with InProcessServer(config(tmp_path, repo.url)) as srv:
        assert srv.write("db", "m v=1").status == 204
        reply = create_trigger(srv, "db", "t", name, "request:hello")
        assert reply.status == 400
        assert repo.requests == []
