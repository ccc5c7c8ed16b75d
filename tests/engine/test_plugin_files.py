"""Plugin file routes (CONTRACT §4.5), system.plugin_files (§3), and the CLI commands that use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runtime_support import create_trigger
from typer.testing import CliRunner

from lakeflux.cli.main import app
from lakeflux.config import Config
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

FILES = "/api/v3/plugins/files"
DIRECTORY = "/api/v3/plugins/directory"


def answer(text: str) -> str:
    return (f"def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n"
            f"    return {{'answer': {text}}}\n")


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir()
    return directory


@pytest.fixture
def srv(tmp_path: Path, plugin_dir: Path):
    config = Config(plugin_dir=plugin_dir, object_store="memory", data_dir=tmp_path / "data",
                    wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(config, store=MemoryStore()) as server:
        assert server.write("db", "m v=1").status == 204
        yield server


def call(srv: InProcessServer, path: str) -> object:
    reply = srv.request("GET", f"/api/v3/engine/{path}")
    assert reply.status == 200, reply.body
    return reply.json()["answer"]


def test_post_creates_parents_and_put_replaces_a_trigger_file(srv, plugin_dir):
    assert srv.request("POST", FILES, {"plugin_name": "team/a/single.py", "content": answer("1")}).status == 200
    assert (plugin_dir / "team" / "a" / "single.py").read_text() == answer("1")
    assert create_trigger(srv, "db", "single", "team/a/single.py", "request:single").status == 200
    assert call(srv, "single") == 1
    assert srv.request("PUT", FILES, {"plugin_name": "single", "content": answer("2")}).status == 200
    assert call(srv, "single") == 2  # hot reload, no restart


@pytest.mark.parametrize("name", ["../escape.py", "/abs.py", "a/../../x.py", "C:/x.py", ""])
def test_post_refuses_paths_outside_the_plugin_dir(srv, plugin_dir, name):
    reply = srv.request("POST", FILES, {"plugin_name": name, "content": "x = 1\n"})
    assert reply.status == 400
    assert not (plugin_dir.parent / "escape.py").exists()


def test_put_for_unknown_trigger_is_404(srv):
    assert srv.request("PUT", FILES, {"plugin_name": "nope", "content": "x"}).status == 404
    assert srv.request("PUT", DIRECTORY, {"plugin_name": "nope", "files": []}).status == 404


def test_directory_swap_is_whole_and_refused_without_init(srv, plugin_dir):
    package = plugin_dir / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .impl import process_request\n")
    (package / "impl.py").write_text(answer("'old'"))
    (package / "stale.py").write_text("x = 1\n")
    assert create_trigger(srv, "db", "dir", "pkg", "request:dir").status == 200
    assert call(srv, "dir") == "old"
    files = [{"relative_path": "__init__.py", "content": "from .sub.impl import process_request\n"},
             {"relative_path": "sub/__init__.py", "content": ""},
             {"relative_path": "sub/impl.py", "content": answer("'new'")}]
    assert srv.request("PUT", DIRECTORY, {"plugin_name": "dir", "files": files}).status == 200
    assert call(srv, "dir") == "new"
    assert sorted(p.relative_to(package).as_posix() for p in package.rglob("*.py")) == [
        "__init__.py", "sub/__init__.py", "sub/impl.py"]
    refused = srv.request("PUT", DIRECTORY, {"plugin_name": "dir", "files": files[1:]})
    assert refused.status == 400
    escaping = [*files, {"relative_path": "../out.py", "content": ""}]
    assert srv.request("PUT", DIRECTORY, {"plugin_name": "dir", "files": escaping}).status == 400
    assert call(srv, "dir") == "new"
    assert not (plugin_dir / "out.py").exists()
    assert [p.name for p in plugin_dir.iterdir() if p.name.startswith(".pkg")] == []
    # PUT files on a directory trigger replaces its __init__.py.
    assert srv.request("PUT", FILES, {"plugin_name": "dir", "content": answer("'init'")}).status == 200
    assert call(srv, "dir") == "init"


def test_system_plugin_files(srv, plugin_dir):
    (plugin_dir / "one.py").write_text(answer("1"))
    package = plugin_dir / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text(answer("2"))
    (package / "__pycache__" / "junk.py").write_text("")
    assert create_trigger(srv, "db", "t1", "one.py", "request:one").status == 200
    assert create_trigger(srv, "db", "t2", "pkg", "request:two").status == 200
    rows = srv.query("db", "SELECT * FROM system.plugin_files ORDER BY plugin_name, file_name")
    assert [(r["plugin_name"], r["file_name"], r["size_bytes"]) for r in rows] == [
        ("t1", "one.py", len(answer("1"))), ("t2", "__init__.py", len(answer("2")))]
    assert rows[0]["file_path"] == str((plugin_dir / "one.py").resolve())
    assert rows[0]["last_modified"] == (plugin_dir / "one.py").stat().st_mtime_ns // 1_000_000
    assert len(srv.query("_internal", "SELECT * FROM system.plugin_files")) == 2


def test_cli_upload_update_and_dry_run_against_a_real_server(srv, plugin_dir, tmp_path):
    runner = CliRunner()
    local = tmp_path / "local"
    local.mkdir()
    (local / "mine.py").write_text(answer("10") + "\n\ndef process_writes(influxdb3_local, table_batches, args=None):\n"
                                   "    influxdb3_local.info('rows', len(table_batches[0]['rows']))\n")
    base = ["-H", srv.url]
    result = runner.invoke(app, ["create", "trigger", "up", "-d", "db", "--trigger-spec", "request:up",
                                 "--path", str(local / "mine.py"), "--upload", *base])
    assert result.exit_code == 0, result.output
    assert call(srv, "up") == 10
    (local / "mine.py").write_text(answer("11"))
    result = runner.invoke(app, ["update", "trigger", "-d", "db", "-t", "up", "-p", str(local / "mine.py"), *base])
    assert result.exit_code == 0, result.output
    assert call(srv, "up") == 11
    (plugin_dir / "walp.py").write_text("def process_writes(influxdb3_local, table_batches, args=None):\n"
                                        "    influxdb3_local.info('rows', len(table_batches[0]['rows']), args)\n")
    result = runner.invoke(app, ["test", "wal_plugin", "walp.py", "-d", "db", "--lp", "m v=1\nm v=2",
                                 "--input-arguments", "a=b", *base])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["log_lines"] == ["INFO: rows 2 {'a': 'b'}"]
