"""The README's cluster on one machine, as written: its `lakeflux serve` lines start the nodes (ports swapped
for free ones), then its client commands run in bash, as a user would type them, until the query node
answers over both ingest nodes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakeflux.testing.process import ServerProcess, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
VENV_BIN = Path(sys.executable).parent


def blocks() -> list[str]:
    text = README.read_text()
    start = text.index("## Several nodes on one bucket\n")
    section = text[start:text.index("\n## ", start + 1)]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_the_readme_cluster_runs_as_written(tmp_path):
    serve_block, client_block = blocks()
    ports = {port: free_port() for port in re.findall(r"127\.0\.0\.1:(\d+)", serve_block)}

    def local(text: str) -> str:
        for old, new in ports.items():
            text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        return text

    servers: list[ServerProcess] = []
    try:
        for command in serve_block.replace("\\\n", " ").splitlines():
            if command.startswith("mkdir"):
                subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True)
                continue
            args = shlex.split(local(command).rstrip(" &"))
            assert args[:2] == ["lakeflux", "serve"], command
            port = int(args[args.index("--http-bind") + 1].rsplit(":", 1)[1])
            servers.append(ServerProcess(None, *args[2:], port=port, cwd=tmp_path,
                                         log_path=tmp_path / f"{port}.log").start(timeout=120))
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_AUTH_TOKEN", "_HOST_URL", "_DATABASE_NAME"))}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        deadline = time.monotonic() + 60
        while True:  # the writes are new lines each round: the query shows host a and b either way
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", local(client_block)], cwd=tmp_path,
                                    env=env, capture_output=True, text=True, timeout=120, check=False)
            lines = result.stdout.splitlines()
            if result.returncode == 0 and any(" a " in f" {line} " for line in lines) and any(
                    " b " in f" {line} " for line in lines):
                break
            assert time.monotonic() < deadline, result.stdout + result.stderr
            time.sleep(0.5)
        for node in ("ingest1", "ingest2", "query1", "process1", "compact1"):
            assert node in result.stdout, result.stdout
        assert (tmp_path / "lake" / "admin-token.demo").exists()
    finally:
        for srv in servers:
            srv.stop()
