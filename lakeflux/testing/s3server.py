"""A real S3 HTTP server on loopback for tests and for people without Docker: moto's server, run as a
separate process on a free port, with one bucket created.

    with moto_s3() as s3:            # S3Endpoint(endpoint_url, bucket, access_key, secret, region)
        store = s3.store(prefix="t1")

    python -m lakeflux.testing.s3server [--port 9000] [--bucket lakeflux]   # foreground, prints env vars

moto's server checks `If-None-Match: *` on PutObject (412 when the key exists), which is what
put_if_absent relies on; tests/store checks that a 16-way race has exactly one winner through it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from ..errors import Unavailable
from ..store.s3 import S3Store

LOOPBACK = "127.0.0.1"
# moto accepts any credentials; these make the signature code paths run as they would on AWS.
TEST_ACCESS_KEY = "lakeflux-test-key"
TEST_SECRET = "lakeflux-test-secret"
TEST_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    """Where a test S3 server listens, and the bucket and credentials to use with it."""

    endpoint_url: str
    bucket: str
    access_key: str = TEST_ACCESS_KEY
    secret: str = TEST_SECRET
    region: str = TEST_REGION

    def store(self, prefix: str = "", **kwargs: object) -> S3Store:
        """An S3Store on this endpoint's bucket under `prefix`."""
        return S3Store(
            bucket=self.bucket,
            prefix=prefix,
            endpoint=self.endpoint_url,
            region=self.region,
            key=self.access_key,
            secret=self.secret,
            allow_http=self.endpoint_url.startswith("http://"),
            **kwargs,  # type: ignore[arg-type]
        )

    def env(self) -> dict[str, str]:
        """The AWS_* environment variables that point an S3 client (or `lakeflux serve`) here."""
        return {
            "AWS_ENDPOINT": self.endpoint_url,  # InfluxDB 3's name
            "AWS_ENDPOINT_URL": self.endpoint_url,  # the AWS SDKs' name
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
        }

    def serve_args(self) -> list[str]:
        """The `lakeflux serve` flags that use this server."""
        return ["--object-store", "s3", "--bucket", self.bucket, "--aws-endpoint", self.endpoint_url,
                "--aws-allow-http", "--aws-access-key-id", self.access_key, "--aws-secret-access-key", self.secret,
                "--aws-default-region", self.region]

    def serve_command(self, program: str = "lakeflux") -> str:
        """The `lakeflux serve` invocation that uses this server (`program`: how to run lakeflux)."""
        return " ".join([program, "serve", *self.serve_args()])


def lakeflux_program() -> str:
    """How to run the `lakeflux` of this Python: its script beside the interpreter (e.g. .venv/bin/lakeflux,
    which need not be on PATH), else `python -m lakeflux`."""
    script = Path(os.path.normpath(Path(sys.executable).parent / "lakeflux"))  # no symlinks followed
    if script.exists():
        return str(_relative_to_cwd(script))
    return f"{sys.executable} -m lakeflux"


def _relative_to_cwd(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when its parent dies, so a killed test run leaves no server.

    Linux ties this to the thread that started the child: start servers from a long-lived thread.
    """
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago (the server binds it right after; a clash is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class MotoServer:
    """moto's S3 server in a child process; `start()` returns once it answers HTTP."""

    def __init__(self, host: str = LOOPBACK, port: int | None = None, *, quiet: bool = True) -> None:
        self.host = host
        self.port = port
        self.quiet = quiet
        self.process: subprocess.Popen[bytes] | None = None
        # A quiet server's stderr goes here, so a failed start can say what moto said.
        self._stderr: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        """Start the server (picking a free port unless one was given) and wait until it answers."""
        fixed = self.port
        said = ""
        # A free port can be taken between our probe and the server's bind: then try another one.
        for _ in range(1 if fixed is not None else 3):
            self.port = fixed if fixed is not None else free_port(self.host)
            self.process = self._spawn(self.port)
            if self._wait_ready(timeout):
                return self
            said = self._what_moto_said()
            self.stop()
        raise Unavailable(f"moto S3 server did not start on {self.host}:{self.port}" + (f": {said}" if said else ""))

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        if self.quiet:
            self._stderr = tempfile.TemporaryFile()
        return subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(port)],
            stdout=subprocess.DEVNULL if self.quiet else None,
            stderr=self._stderr if self.quiet else None,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def _what_moto_said(self) -> str:
        """The last line moto wrote to stderr (a quiet server's): why it could not start, as it said it."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1].strip() if lines else ""

    def _wait_ready(self, timeout: float) -> bool:
        """Poll until the server answers or its process exits (e.g. the port was taken meanwhile)."""
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True  # it answered, just not with 200
            except OSError:
                time.sleep(0.05)  # startup wait for a child process, not test timing
        return False

    def stop(self) -> None:
        """Terminate the server process (ours only) and wait for it."""
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def endpoint(self, bucket: str) -> S3Endpoint:
        """Create `bucket` (if missing) and describe how to reach it."""
        endpoint = S3Endpoint(endpoint_url=self.endpoint_url, bucket=bucket)
        endpoint.store().ensure_bucket()
        return endpoint


class LossyProxy:
    """A loopback TCP proxy in front of an S3 server that can lose PUTs on the wire, for real faults.

    `lose_put_responses(n)`: the next n PUT requests reach the server, but the client's connection is
    reset instead of getting the response (the write happened; the writer cannot know). `fail_puts(n)`:
    the next n PUT requests are cut off before reaching the server (nothing happened). Everything else
    is forwarded untouched. Requests are told apart by the first bytes a client sends after the previous
    response began, which holds for HTTP/1.1 clients that do not pipeline (botocore does not).
    """

    def __init__(self, upstream_url: str, host: str = LOOPBACK) -> None:
        target = urlsplit(upstream_url)
        self.upstream = (target.hostname or LOOPBACK, target.port or 80)
        self._listener = socket.create_server((host, 0))
        self.url = f"http://{host}:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._to_lose = 0
        self._to_fail = 0
        self.lost = 0
        self.failed = 0
        self._closed = False
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept_loop, name="lossy-proxy", daemon=True).start()

    def lose_put_responses(self, n: int = 1) -> None:
        with self._lock:
            self._to_lose += n

    def fail_puts(self, n: int = 1) -> None:
        with self._lock:
            self._to_fail += n

    def _take(self, which: str) -> bool:
        with self._lock:
            if which == "lose" and self._to_lose:
                self._to_lose -= 1
                self.lost += 1
                return True
            if which == "fail" and self._to_fail:
                self._to_fail -= 1
                self.failed += 1
                return True
            return False

    def close(self) -> None:
        """Stop accepting and reset every open connection."""
        self._closed = True
        _reset(self._listener)  # shutdown() wakes the accept() blocked in our thread; close() alone does not
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _reset(sock)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            state = {"new_request": True, "method": b""}
            threading.Thread(target=self._requests, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._responses, args=(client, upstream, state), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        """Client to server: note each request's method; cut off PUTs we were told to fail."""
        try:
            while data := client.recv(65536):
                if state["new_request"]:
                    state["new_request"] = False
                    state["method"] = data.split(b" ", 1)[0]
                    if state["method"] == b"PUT" and self._take("fail"):
                        break
                upstream.sendall(data)
        except OSError:
            pass
        _reset(client)
        _reset(upstream)

    def _responses(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        """Server to client: reset the client instead of delivering a PUT response we were told to lose."""
        try:
            while data := upstream.recv(65536):
                starts_response = data.startswith(b"HTTP/") and not data.startswith(b"HTTP/1.1 100")
                if starts_response and state["method"] == b"PUT" and self._take("lose"):
                    break
                if starts_response:
                    state["new_request"] = True
                client.sendall(data)
        except OSError:
            pass
        _reset(client)
        _reset(upstream)


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0), the way a dropped connection looks to the peer.

    shutdown() first: close() alone leaves the connection open while our other thread is blocked in recv.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


@contextlib.contextmanager
def moto_s3(bucket: str = "lakeflux-test") -> Iterator[S3Endpoint]:
    """Run moto's S3 server on a free loopback port with `bucket` created; stop it on exit."""
    server = MotoServer().start()
    try:
        yield server.endpoint(bucket)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground, printing the environment to use, until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description="Run moto's S3 server on loopback for lakeflux.")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--bucket", default="lakeflux")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("moto") is None:
        print(f"moto is not installed for {sys.executable}: it comes with lakeflux's test extras "
              "(`make test` sets up .venv with them, or `pip install -e '.[test]'`)", file=sys.stderr)
        return 2
    try:
        server = MotoServer(args.host, args.port or None, quiet=True).start()
    except Unavailable as e:
        print(e.message, file=sys.stderr)
        return 1
    # SIGTERM should stop the child too, exactly like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        endpoint = server.endpoint(args.bucket)
        print(f"moto S3 server on {endpoint.endpoint_url}, bucket {endpoint.bucket!r} (pid {os.getpid()})")
        print("# environment for S3 clients:")
        for name, value in endpoint.env().items():
            print(f"export {name}={value}")
        program = lakeflux_program()
        print(f"# and for lakeflux ({program} is this Python's lakeflux):")
        print(endpoint.serve_command(program))
        sys.stdout.flush()
        assert server.process is not None
        server.process.wait()
        return 1  # the server exited on its own
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
