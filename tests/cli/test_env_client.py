"""Env precedence (flag > LAKEFLUX_ > INFLUXDB3_ > default), token sources, and client error handling."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cli_fakes import FakeServer, Reply
from typer.testing import CliRunner

from lakeflux.cli.client import Client, ClientError, encode_params, error_from_response
from lakeflux.cli.main import app
from lakeflux.cli.options import DEFAULT_HOST, read_token_file, resolve_host, resolve_token


def test_host_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_host(None) == DEFAULT_HOST
    monkeypatch.setenv("INFLUXDB3_HOST_URL", "http://influx:1")
    assert resolve_host(None) == "http://influx:1"
    monkeypatch.setenv("LAKEFLUX_HOST_URL", "http://lake:2")
    assert resolve_host(None) == "http://lake:2"
    assert resolve_host("http://flag:3") == "http://flag:3"
    assert resolve_host("flag:3") == "http://flag:3"


def test_env_supplies_host_database_and_token(runner: CliRunner, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.on("POST", "/api/v3/write_lp", Reply(204))
    monkeypatch.setenv("INFLUXDB3_HOST_URL", server.url)
    monkeypatch.setenv("INFLUXDB3_DATABASE_NAME", "from_influx")
    monkeypatch.setenv("LAKEFLUX_DATABASE_NAME", "from_lake")
    monkeypatch.setenv("INFLUXDB3_AUTH_TOKEN", "tok-influx")
    result = runner.invoke(app, ["write", "cpu v=1"])
    assert result.exit_code == 0, result.output
    assert server.last.params["db"] == "from_lake"
    assert server.last.headers["authorization"] == "Bearer tok-influx"
    flagged = runner.invoke(app, ["write", "-d", "from_flag", "--token", "tok-flag", "cpu v=1"])
    assert flagged.exit_code == 0, flagged.output
    assert server.last.params["db"] == "from_flag"
    assert server.last.headers["authorization"] == "Bearer tok-flag"


def test_token_file_used_for_local_host_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    assert resolve_token(None, "http://127.0.0.1:8181") is None  # no file yet: quietly no token
    data.mkdir()
    (data / "admin-token").write_text("apiv3_local\n")
    assert resolve_token(None, "http://127.0.0.1:8181") == "apiv3_local"
    assert resolve_token(None, "http://localhost:8181") == "apiv3_local"
    assert resolve_token(None, "https://db.example.com") is None
    monkeypatch.setenv("LAKEFLUX_AUTH_TOKEN", "env")
    assert resolve_token(None, "http://127.0.0.1:8181") == "env"
    assert resolve_token("flag", "http://127.0.0.1:8181") == "flag"


def test_token_file_json_form(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    path.write_text('{"token": "apiv3_x", "name": "_admin"}')
    assert read_token_file(path) == "apiv3_x"
    assert read_token_file(tmp_path / "missing") is None


def test_cli_sends_token_file_to_local_server(runner: CliRunner, server: FakeServer, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin-token").write_text("apiv3_file")
    server.on("POST", "/api/v3/configure/database", Reply())
    result = runner.invoke(app, ["create", "database", "x", "-H", server.url])
    assert result.exit_code == 0, result.output
    assert server.last.headers["authorization"] == "Bearer apiv3_file"


def test_unauthenticated_error_message_says_where_the_cli_looked(runner: CliRunner, server: FakeServer,
                                                                  tmp_path: Path) -> None:
    server.on("POST", "/api/v3/configure/database", Reply.json({"error": "the request was not authenticated"}, 401))
    result = runner.invoke(app, ["create", "database", "x", "-H", server.url])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the request was not authenticated (HTTP 401); no token found (looked at ")
    assert str(tmp_path / "data" / "admin-token") in result.stderr and "--token" in result.stderr
    flagged = runner.invoke(app, ["create", "database", "x", "-H", server.url, "--token", "apiv3_wrong"])
    assert "sent the token from --token" in flagged.stderr


def test_connection_refused_names_host(runner: CliRunner) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = f"http://127.0.0.1:{port}"
    result = runner.invoke(app, ["create", "database", "x", "-H", host])
    assert result.exit_code == 1
    assert f"could not connect to {host}: connection refused" in result.stderr
    assert "Traceback" not in result.output


def test_error_from_response_shapes() -> None:
    v2 = error_from_response(400, "Bad Request", b'{"code": "invalid", "message": "bucket missing"}')
    assert v2.message == "bucket missing (HTTP 400)"
    text = error_from_response(502, "Bad Gateway", b"upstream down")
    assert text.message == "upstream down (HTTP 502)"
    empty = error_from_response(503, "Service Unavailable", b"")
    assert empty.message == "Service Unavailable (HTTP 503)"


def test_encode_params_drops_none_and_spells_booleans() -> None:
    assert encode_params({"db": "a b", "x": None, "f": False, "t": True, "n": 3}) == "db=a+b&f=false&t=true&n=3"


def test_client_returns_body_and_raises_client_error(server: FakeServer) -> None:
    server.on("GET", "/health", Reply(200, b"OK", "text/plain"))
    client = Client(server.url, token="t")
    response = client.request("GET", "/health")
    assert (response.status, response.text, response.headers["content-type"]) == (200, "OK", "text/plain")
    with pytest.raises(ClientError) as caught:
        client.request("GET", "/nope")
    assert caught.value.status == 404
    assert caught.value.message == "not found (HTTP 404)"
