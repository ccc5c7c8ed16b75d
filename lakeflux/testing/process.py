"""A real `lakeflux serve` process, for crash tests and benchmarks: started, probed, SIGKILLed."""

from __future__ import annotations

import atexit
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_running: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    """A test that failed or timed out between start and stop must not leave a server behind it."""
    for proc in list(_running):
        if proc.poll() is None:
            proc.kill()


class ServerProcess:
    """`lakeflux serve` in a child process; `args` are extra serve flags, `env` extra variables.

    `data_dir=None` passes no `--data-dir` (the server then uses ./data of `cwd`, as a user's would).
    """

    def __init__(self, data_dir: Path | None, *args: str, port: int | None = None, env: dict[str, str] | None = None,
                 log_path: Path | None = None, cwd: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = list(args)
        self.env = env or {}
        self.cwd = cwd
        log_dir = data_dir.parent if data_dir is not None else (cwd or Path.cwd())
        self.log_path = log_path or log_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ServerProcess:
        data = ["--data-dir", str(self.data_dir)] if self.data_dir is not None else []
        cmd = [sys.executable, "-m", "lakeflux", "serve", *data, "--http-bind", f"127.0.0.1:{self.port}", *self.args]
        env = {**os.environ, **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd)
        log.close()
        _running.add(self.proc)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as e:
                if e.code == 401:  # auth is on: the server is up and answering
                    return
            except (urllib.error.URLError, OSError, http.client.HTTPException):
                # Not up yet, or not an HTTP answer (BadStatusLine from whatever held the port a moment
                # ago): keep polling; a server of ours that could not bind exits, which the check above sees.
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server on {self.url} not ready after {timeout}s; log:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no flush, no cleanup — what a crash looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        _running.discard(self.proc)  # type: ignore[arg-type]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and wait: the graceful path."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        _running.discard(self.proc)  # type: ignore[arg-type]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
