"""`lakeflux write`: send line protocol in requests of bounded size, several at a time."""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from .client import Client, ClientError, ParamValue, describe_line_errors
from .options import DatabaseOpt, HostOpt, TlsCaOpt, TlsNoVerifyOpt, TokenOpt, connect, resolve_database
from .output import CliFailure, Progress, info

DEFAULT_MAX_REQUEST_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_CONCURRENT = 32
PRECISIONS = ("auto", "ns", "us", "ms", "s")


@dataclass
class SendResult:
    """How many chunks were sent and which failed."""

    sent: int = 0
    failures: list[CliFailure] = field(default_factory=list)


@dataclass(frozen=True)
class Chunk:
    """One request body: whole lines only; `first_line` = how many input lines come before it."""

    data: bytes
    first_line: int
    line_count: int


def split_lines(lines: Iterable[bytes], max_size: int) -> Iterator[Chunk]:
    """Group newline-terminated lines into chunks of at most `max_size` bytes, never splitting a line.

    A single line longer than `max_size` becomes a chunk of its own (the server then decides). Chunks
    holding only whitespace are skipped, but their lines still count, so line numbers stay exact.
    """
    pending: list[bytes] = []
    pending_size = 0
    first_line = 0
    for line in lines:
        if pending and pending_size + len(line) > max_size:
            yield from _chunk_if_content(pending, first_line)
            first_line += len(pending)
            pending, pending_size = [], 0
        pending.append(line)
        pending_size += len(line)
    if pending:
        yield from _chunk_if_content(pending, first_line)


def _chunk_if_content(lines: list[bytes], first_line: int) -> Iterator[Chunk]:
    data = b"".join(lines)
    if data.strip():
        yield Chunk(data, first_line, len(lines))


def write_params(database: str, precision: str, accept_partial: bool, no_sync: bool) -> dict[str, ParamValue]:
    """Query parameters of POST /api/v3/write_lp."""
    return {"db": database, "precision": precision, "accept_partial": accept_partial, "no_sync": no_sync}


def send_chunk(client: Client, chunk: Chunk, params: dict[str, ParamValue], compress: bool) -> None:
    """POST one chunk; raise `CliFailure` with line errors renumbered to the whole input."""
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    body = chunk.data
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    try:
        client.request("POST", "/api/v3/write_lp", params=params, data=body, headers=headers)
    except ClientError as exc:
        raise CliFailure(exc.message, details=describe_line_errors(exc.data, chunk.first_line)) from None


def send_all(
    client: Client,
    chunks: Iterable[Chunk],
    params: dict[str, ParamValue],
    *,
    compress: bool,
    max_concurrent: int,
    keep_going: bool,
    progress: Progress,
) -> SendResult:
    """Send chunks with at most `max_concurrent` in flight; return the count sent and the failures.

    Without `keep_going` no new chunk starts after the first failure (chunks in flight finish).
    """
    result = SendResult()
    failures = result.failures
    in_flight: dict[Future[None], Chunk] = {}

    def collect(done: Iterable[Future[None]]) -> None:
        for future in done:
            chunk = in_flight.pop(future)
            failure = future.exception()
            if failure is None:
                progress.advance(len(chunk.data))
            elif isinstance(failure, CliFailure):
                failures.append(failure)
            else:
                failures.append(CliFailure(str(failure)))

    with ThreadPoolExecutor(max_workers=max_concurrent) as pool:
        for chunk in chunks:
            if failures and not keep_going:
                break
            if len(in_flight) >= max_concurrent:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                collect(done)
                if failures and not keep_going:
                    break
            in_flight[pool.submit(send_chunk, client, chunk, params, compress)] = chunk
            result.sent += 1
        collect(wait(in_flight).done)
    return result


def open_input(text: str | None, file: Path | None) -> tuple[Iterable[bytes], int | None]:
    """The input lines and their total size if known: the argument, `-f FILE`, or stdin (piped, or named
    `-` as the argument or the file)."""
    if text is not None and file is not None:
        raise CliFailure("give line protocol either as an argument or with -f/--file, not both", code=2)
    if text == "-" or str(file) == "-":
        return sys.stdin.buffer, None
    if text is not None:
        data = text.encode("utf-8")
        return data.splitlines(keepends=True), len(data)
    if file is not None:
        try:
            handle: BinaryIO = open(file, "rb")  # noqa: SIM115 - closed when the iterator is exhausted
        except OSError as exc:
            raise CliFailure(f"cannot read {file}: {exc.strerror}") from None
        return _lines_then_close(handle), os.fstat(handle.fileno()).st_size
    if sys.stdin.isatty():
        raise CliFailure("no line protocol given: pass it as an argument, with -f FILE, or on stdin", code=2)
    return sys.stdin.buffer, None


def _lines_then_close(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        yield from handle


def parse_size(text: str) -> int:
    """A byte size: `10485760`, `10MiB`, `512KiB`, `1MB`, `2GiB`."""
    units = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 1024**2, "gb": 10**9, "gib": 1024**3}
    stripped = text.strip().lower()
    number = stripped.rstrip("kmgib")
    unit = stripped[len(number):]
    if not number.isdigit() or unit not in units or int(number) * units[unit] <= 0:
        raise CliFailure(f"invalid size {text!r}: expected bytes, or a number with KiB/MiB/GiB", code=2)
    return int(number) * units[unit]


def write_command(
    line_protocol: Annotated[str | None, typer.Argument(
        help="Line protocol to write; `-` (or nothing, when piped) reads stdin; else -f FILE")] = None,
    database: DatabaseOpt = None,
    file: Annotated[Path | None, typer.Option("-f", "--file", help="Read line protocol from this file")] = None,
    precision: Annotated[str, typer.Option("-p", "--precision", help="auto | ns | us | ms | s")] = "auto",
    accept_partial: Annotated[bool, typer.Option(
        "--accept-partial/--no-accept-partial",
        help="Write the good lines of a batch and report the bad ones (as HTTP v3 and InfluxDB 3 Core's CLI do); "
             "--no-accept-partial rejects a batch with any bad line")] = True,
    no_sync: Annotated[bool, typer.Option("--no-sync", help="Acknowledge before the WAL commit")] = False,
    compress: Annotated[bool, typer.Option("--gzip", help="Gzip request bodies")] = False,
    max_request_size: Annotated[
        str, typer.Option("--max-request-size", help="Largest request body (whole lines), e.g. 10MiB")
    ] = "10MiB",
    max_concurrent_requests: Annotated[
        int, typer.Option("--max-concurrent-requests", min=1, help="Requests in flight at once")
    ] = DEFAULT_MAX_CONCURRENT,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing on success")] = False,
    host: HostOpt = None,
    write_host: Annotated[str | None, typer.Option("--write-host", help="Server URL for writes (overrides -H)")] = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Write line protocol to a database."""
    if precision not in PRECISIONS:
        raise CliFailure(f"invalid --precision {precision!r}: expected one of {', '.join(PRECISIONS)}", code=2)
    db = resolve_database(database)
    limit = parse_size(max_request_size)
    client = connect(write_host or host, token, tls_ca, tls_no_verify)
    lines, total = open_input(line_protocol, file)
    progress = Progress(total, enabled=not quiet and sys.stderr.isatty() and (total or 0) > limit)
    result = send_all(
        client,
        split_lines(lines, limit),
        write_params(db, precision, accept_partial, no_sync),
        compress=compress,
        max_concurrent=max_concurrent_requests,
        keep_going=accept_partial,
        progress=progress,
    )
    progress.finish()
    failures = result.failures
    if result.sent == 0:
        raise CliFailure("no line protocol to write: the input is empty", code=2)
    if failures:
        details = [line for failure in failures[1:] for line in [failure.message, *failure.details]]
        raise CliFailure(failures[0].message, details=failures[0].details + details)
    if not quiet:
        info("success")
