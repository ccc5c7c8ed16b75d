"""`lakeflux write`: request splitting, parameters, compression, concurrency limits and error reporting."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import pytest
from cli_fakes import FakeServer, Recorded, Reply
from typer.testing import CliRunner

from lakeflux.cli.main import app
from lakeflux.cli.output import CliFailure, Progress
from lakeflux.cli.write import parse_size, send_all, split_lines


def lines(*texts: str) -> list[bytes]:
    return [text.encode() for text in texts]


def test_split_keeps_requests_under_the_limit_and_lines_whole() -> None:
    data = b"".join(f"cpu,host=h{i} v={i}i\n".encode() for i in range(1000))
    chunks = list(split_lines(data.splitlines(keepends=True), 100))
    assert all(len(chunk.data) <= 100 for chunk in chunks)
    assert all(chunk.data.endswith(b"\n") for chunk in chunks)
    assert b"".join(chunk.data for chunk in chunks) == data
    assert sum(chunk.line_count for chunk in chunks) == 1000


def test_split_first_line_offsets_count_preceding_lines() -> None:
    chunks = list(split_lines(lines("a v=1\n", "b v=2\n", "c v=3\n"), 12))
    assert [(c.data, c.first_line, c.line_count) for c in chunks] == [
        (b"a v=1\nb v=2\n", 0, 2),
        (b"c v=3\n", 2, 1),
    ]


def test_split_oversized_line_travels_alone() -> None:
    big = "x v=" + "1" * 50 + "\n"
    chunks = list(split_lines(lines("a v=1\n", big, "b v=2\n"), 20))
    assert [c.data.decode() for c in chunks] == ["a v=1\n", big, "b v=2\n"]


def test_split_exact_fit_and_missing_final_newline() -> None:
    chunks = list(split_lines(lines("a v=1\n", "b v=2"), 11))
    assert [c.data for c in chunks] == [b"a v=1\nb v=2"]


def test_split_skips_blank_chunks_but_keeps_numbering() -> None:
    chunks = list(split_lines(lines("\n", "\n", "a v=1\n"), 2))
    assert [(c.data, c.first_line) for c in chunks] == [(b"a v=1\n", 2)]


def test_parse_size() -> None:
    assert parse_size("10MiB") == 10 * 1024 * 1024
    assert parse_size("512KiB") == 512 * 1024
    assert parse_size("1000") == 1000
    assert parse_size("1MB") == 1_000_000
    with pytest.raises(CliFailure):
        parse_size("ten")


def test_write_argument_sends_contract_params(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/write_lp", Reply(204))
    result = runner.invoke(app, ["write", "-d", "db1", "-H", server.url, "cpu v=1 1700000000"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "success"
    request = server.last
    # Partial writes by default, as on HTTP v3 and in InfluxDB 3 Core's CLI.
    assert request.params == {"db": "db1", "precision": "auto", "accept_partial": "true", "no_sync": "false"}
    assert request.body == b"cpu v=1 1700000000"
    assert request.headers["content-type"] == "text/plain; charset=utf-8"
    assert "content-encoding" not in request.headers


def test_write_file_split_gzip_flags(runner: CliRunner, server: FakeServer, tmp_path: Path) -> None:
    server.on("POST", "/api/v3/write_lp", Reply(204))
    source = tmp_path / "data.lp"
    source.write_bytes(b"".join(f"m v={i}i\n".encode() for i in range(100)))
    result = runner.invoke(app, ["w", "-d", "db1", "-H", server.url, "-f", str(source), "--max-request-size", "64",
                                 "-p", "ms", "--accept-partial", "--no-sync", "--gzip", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert len(server.requests) > 10
    bodies = [gzip.decompress(r.body) for r in server.requests]
    assert all(len(body) <= 64 for body in bodies)
    assert sorted(line for body in bodies for line in body.splitlines()) == sorted(source.read_bytes().splitlines())
    assert {r.headers["content-encoding"] for r in server.requests} == {"gzip"}
    assert server.last.params == {"db": "db1", "precision": "ms", "accept_partial": "true", "no_sync": "true"}


def test_write_reads_stdin(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/write_lp", Reply(204))
    result = runner.invoke(app, ["write", "-d", "db1", "-H", server.url], input="a v=1\nb v=2\n")
    assert result.exit_code == 0, result.output
    assert server.last.body == b"a v=1\nb v=2\n"


def test_write_empty_input_is_refused(runner: CliRunner, server: FakeServer) -> None:
    result = runner.invoke(app, ["write", "-d", "db1", "-H", server.url], input="\n\n")
    assert result.exit_code == 2
    assert "input is empty" in result.stderr
    assert server.requests == []


def test_write_partial_error_renumbers_lines_across_requests(runner: CliRunner, server: FakeServer) -> None:
    def reply(request: Recorded) -> Reply:
        if b"bad" not in request.body:
            return Reply(204)
        line = request.body.splitlines().index(b"bad line") + 1
        return Reply.json({"error": "partial write of line protocol occurred", "data": [
            {"error_message": "No fields were provided", "line_number": line, "original_line": "bad line"}]}, 400)

    server.on("POST", "/api/v3/write_lp", reply)
    text = "a v=1\nb v=2\nc v=3\nbad line\n"
    result = runner.invoke(app, ["write", "-d", "db1", "-H", server.url, "--max-request-size", "13",
                                 "--accept-partial", "--max-concurrent-requests", "1", text])
    assert result.exit_code == 1
    assert "Error: partial write of line protocol occurred (HTTP 400)" in result.stderr
    assert "line 4: No fields were provided: bad line" in result.stderr
    assert [r.body for r in server.requests] == [b"a v=1\nb v=2\n", b"c v=3\n", b"bad line\n"]


def test_write_parse_error_single_object_data(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/write_lp", Reply.json({"error": "line protocol parsing error", "data": {
        "error_message": "invalid field value", "line_number": 1, "original_line": "cpu v=x"}}, 400))
    result = runner.invoke(app, ["write", "-d", "db1", "-H", server.url, "cpu v=x"])
    assert result.exit_code == 1
    assert "line 1: invalid field value: cpu v=x" in result.stderr


def test_write_needs_database(runner: CliRunner, server: FakeServer) -> None:
    result = runner.invoke(app, ["write", "-H", server.url, "cpu v=1"])
    assert result.exit_code == 2
    assert "-d/--database" in result.stderr


def test_write_bad_precision(runner: CliRunner, server: FakeServer) -> None:
    result = runner.invoke(app, ["write", "-d", "db1", "-H", server.url, "-p", "minutes", "cpu v=1"])
    assert result.exit_code == 2
    assert "invalid --precision" in result.stderr


class CountingClient:
    """Stands in for Client: records bodies and the peak number of requests in flight.

    With `group` set, requests wait for each other in groups of that size (a barrier), so the test
    proves that many really run at once, without timing anything.
    """

    def __init__(self, fail_on: bytes | None = None, group: int | None = None) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.sent: list[bytes] = []
        self.fail_on = fail_on
        self.barrier = threading.Barrier(group, timeout=10) if group else None

    def request(self, method: str, path: str, *, params: object, data: bytes, headers: object) -> None:
        from lakeflux.cli.client import ClientError

        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.sent.append(data)
        try:
            if self.barrier is not None:
                self.barrier.wait()
            if self.fail_on is not None and self.fail_on in data:
                raise ClientError("boom (HTTP 500)", status=500)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_send_all_bounds_concurrency_and_sends_everything() -> None:
    client = CountingClient(group=3)
    chunks = list(split_lines(lines(*(f"m v={i}\n" for i in range(48))), 8))
    result = send_all(client, chunks, {}, compress=False, max_concurrent=3, keep_going=False,  # type: ignore[arg-type]
                      progress=Progress(None, enabled=False))
    assert result.failures == []
    assert result.sent == len(chunks) == 48
    assert client.peak == 3
    assert sorted(client.sent) == sorted(c.data for c in chunks)


def test_send_all_stops_after_first_failure_unless_keep_going() -> None:
    chunks = list(split_lines(lines(*(f"m v={i}\n" for i in range(20))), 8))
    stopping = CountingClient(fail_on=b"v=0\n")
    result = send_all(stopping, chunks, {}, compress=False, max_concurrent=1, keep_going=False,  # type: ignore[arg-type]
                      progress=Progress(None, enabled=False))
    assert len(result.failures) == 1
    assert stopping.sent == [b"m v=0\n"]
    going = CountingClient(fail_on=b"v=0\n")
    result = send_all(going, chunks, {}, compress=False, max_concurrent=1, keep_going=True,  # type: ignore[arg-type]
                      progress=Progress(None, enabled=False))
    assert len(result.failures) == 1
    assert len(going.sent) == 20


def test_progress_bar_text() -> None:
    import io

    stream = io.StringIO()
    progress = Progress(4 * 1048576, enabled=True, stream=stream, width=10)
    progress.advance(1048576)
    progress.finish()
    assert stream.getvalue() == "\r[##        ]  25%  1.0/4.0 MiB\n"
    assert Progress(None, enabled=False).render() == "0.0 MiB sent"
