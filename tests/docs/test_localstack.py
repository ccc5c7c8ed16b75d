"""`localstack/moto.sh`, run as its README says: what it prints must be runnable, and a failure must say why."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lakeflux.testing.process import free_port

ROOT = Path(__file__).resolve().parents[2]
MOTO_SH = ROOT / "localstack" / "moto.sh"

pytestmark = [pytest.mark.slow, pytest.mark.s3]


def _env() -> dict[str, str]:
    # The venv of this test run stands in for the checkout's .venv.
    return {**os.environ, "PYTHON": sys.executable}


def test_moto_sh_prints_commands_that_run(tmp_path: Path) -> None:
    script = subprocess.Popen(["sh", str(MOTO_SH)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert script.stdout is not None
        printed = []
        for line in script.stdout:
            printed.append(line.rstrip("\n"))
            if " serve --object-store s3 " in line:
                break
        exports = dict(line.removeprefix("export ").split("=", 1) for line in printed if line.startswith("export "))
        serve = shlex.split(printed[-1])
        # The program it names runs as printed (no bare `lakeflux` that is not on PATH).
        assert Path(serve[0]).is_absolute() or (ROOT / serve[0]).exists(), serve[0]
        assert serve[0] != "lakeflux"
        port = free_port()
        server = subprocess.Popen([*serve, "--without-auth", "--data-dir", str(tmp_path / "data"),
                                   "--http-bind", f"127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            assert server.stdout is not None
            started = next(line for line in server.stdout if "serving HTTP and Flight" in line or "Error" in line)
            assert "serving HTTP and Flight" in started and "s3 store" in started
        finally:
            server.terminate()
            server.wait(timeout=60)
        assert exports["AWS_ENDPOINT"] in printed[-1]
    finally:
        script.send_signal(signal.SIGTERM)
        script.wait(timeout=30)


def test_moto_sh_says_why_moto_did_not_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(["sh", str(MOTO_SH), "--port", str(port)], cwd=ROOT, env=_env(),
                                capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert f"did not start on 127.0.0.1:{port}: " in result.stderr
    assert "in use" in result.stderr.lower()  # moto's own words, no longer thrown away
    assert "Traceback" not in result.stderr
