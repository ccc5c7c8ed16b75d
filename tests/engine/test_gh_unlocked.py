"""A `gh:` download runs before the engine's lifecycle lock: a stalled repository blocks no other trigger."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import TRIGGER_ROUTE, create_trigger
from test_gh_plugins import HELLO, Repo, call, config

from lakeflux.testing.server import InProcessServer

WAIT_S = 30.0  # only a bound for a broken run; nothing waits this long when the test passes


class GatedFiles(dict[str, str]):
    """Repository files whose lookup of `gated` holds the HTTP answer until the test opens `gate`."""

    def __init__(self, gated: str) -> None:
        super().__init__()
        self.gated = gated
        self.asked = threading.Event()
        self.gate = threading.Event()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key == self.gated:
            self.asked.set()
            self.gate.wait(WAIT_S)
        return super().get(key, default)


@pytest.fixture
def gated_repo():
    repo = Repo()
    files = GatedFiles("slow.py")
    files["slow.py"] = HELLO % "slow"
    repo.files = files
    yield repo, files
    files.gate.set()  # never leave the handler thread waiting
    repo.close()


class StalledCreate:
    """A server on which creating trigger `name` from `gh:slow.py` is under way, its download held at the gate."""

    def __init__(self, srv: InProcessServer, files: GatedFiles, name: str) -> None:
        self.srv = srv
        self.files = files
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=lambda: self.result.update(
            reply=create_trigger(srv, "db", name, "gh:slow.py", "request:slow")))
        self.thread.start()
        assert files.asked.wait(WAIT_S), "the download never reached the repository"

    def release(self) -> Any:
        """Open the gate and return the create's reply."""
        self.files.gate.set()
        self.thread.join(WAIT_S)
        return self.result["reply"]


@contextlib.contextmanager
def stalled_create(tmp_path: Path, gated_repo: tuple[Repo, GatedFiles], name: str) -> Iterator[StalledCreate]:
    repo, files = gated_repo
    cfg = config(tmp_path, repo.url)
    (cfg.plugin_dir / "local.py").write_text(HELLO % "local")
    with InProcessServer(cfg) as srv:
        assert srv.write("db", "m v=1").status == 204
        yield StalledCreate(srv, files, name)


def test_other_trigger_operations_complete_while_a_download_is_stalled(tmp_path, gated_repo):
    with stalled_create(tmp_path, gated_repo, "slow") as stalled:
        srv = stalled.srv
        # The download is stalled: create, disable, enable and delete of other triggers still complete.
        assert create_trigger(srv, "db", "local", "local.py", "request:local").status == 200
        assert call(srv, "local") == {"says": "local"}
        for action in ("disable", "enable", "disable"):
            reply = srv.request("POST", f"{TRIGGER_ROUTE}/{action}", {"db": "db", "trigger_name": "local"})
            assert reply.status == 200, (action, reply.body)
        assert srv.request("DELETE", f"{TRIGGER_ROUTE}?db=db&trigger_name=local").status == 200
        assert "reply" not in stalled.result  # still waiting for the repository

        reply = stalled.release()
        assert reply.status == 200, reply.body
        assert call(srv, "slow") == {"says": "slow"}


def test_the_name_is_checked_again_after_the_download(tmp_path, gated_repo):
    with stalled_create(tmp_path, gated_repo, "t") as stalled:
        srv = stalled.srv
        # The name was free when the gh: create started; another create takes it meanwhile.
        assert create_trigger(srv, "db", "t", "local.py", "request:local").status == 200
        reply = stalled.release()
        assert reply.status == 409, reply.body
        assert call(srv, "local") == {"says": "local"}
        assert srv.request("GET", "/api/v3/engine/slow").status == 404
        assert srv.query("db", "SELECT trigger_name, plugin_filename FROM system.processing_engine_triggers") == [
            {"trigger_name": "t", "plugin_filename": "local.py"}]
