"""Where CLI output goes: results to stdout (or a file), progress and errors to stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO, TextIO

import typer


class CliFailure(Exception):
    """A command failed in a way the user can fix; printed as `Error: <message>` and exit `code`."""

    def __init__(self, message: str, *, code: int = 1, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or []


def error(message: str) -> None:
    """Print one error line to stderr."""
    typer.echo(f"Error: {message}", err=True)


def info(message: str) -> None:
    """Print a status line to stdout (what InfluxDB's CLI prints on success)."""
    typer.echo(message)


def warn(message: str) -> None:
    typer.echo(f"Warning: {message}", err=True)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def write_result(body: bytes, output: Path | None) -> None:
    """Write server bytes verbatim to `output`, or to stdout (text formats get a final newline on a TTY)."""
    if output is not None:
        try:
            output.write_bytes(body)
        except OSError as exc:
            raise CliFailure(f"cannot write {output}: {exc.strerror}") from None
        return
    stream: BinaryIO = sys.stdout.buffer
    stream.write(body)
    stream.flush()


class Progress:
    """A plain one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int | None, *, enabled: bool, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.width = width

    def advance(self, amount: int) -> None:
        self.done += amount
        if self.enabled:
            self.stream.write("\r" + self.render())
            self.stream.flush()

    def render(self) -> str:
        """The bar text, e.g. `[#########      ]  60%  6.0/10.0 MiB`."""
        done_mib = self.done / 1048576
        if not self.total:
            return f"{done_mib:.1f} MiB sent"
        fraction = min(1.0, self.done / self.total)
        filled = int(fraction * self.width)
        bar = "#" * filled + " " * (self.width - filled)
        return f"[{bar}] {fraction * 100:3.0f}%  {done_mib:.1f}/{self.total / 1048576:.1f} MiB"

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
