"""Chaos harness: writers that keep a ledger of acknowledged batches, a checker that compares the ledger
with what a server returns, and a crash storm that SIGKILLs a real `lakeflux serve` at random moments.

Every batch holds unique points: tag `b` names the batch, every line has its own timestamp. After any
number of crashes or faults, for every batch the server returns:

- acknowledged (204) batches must be there exactly once: `count(*) == count(DISTINCT time) == lines`;
- unacknowledged batches may be absent or complete (a commit whose response was lost), never partial;
- no batch may have more rows than distinct times (a replayed segment counted twice).

    storm = CrashStorm(data_dir, serve_args, observer=FileStore(data_dir), seed=1)
    report = storm.run(kills=20)        # StormReport: kills, acked/lost/duplicate lines, kills by moment
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..store import paths
from ..store.base import ObjectStore
from .process import ServerProcess

BASE_NS = 1_700_000_000_000_000_000
DB = "chaos"
# Kill moments: any time, while a snapshot has staged files, right after asking for a new table.
MOMENTS = ("random", "snapshot", "catalog")


# --- HTTP --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What a client saw: an HTTP status, or None when the connection failed (outcome unknown)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def post(url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 60) -> Outcome:
    """POST and never raise: connection failures come back as Outcome(None)."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Outcome(r.status, dict(r.headers.items()), r.read())
    except urllib.error.HTTPError as e:
        return Outcome(e.code, dict(e.headers.items()), e.read())
    except Exception:  # noqa: BLE001 - reset, refused, timeout, truncated reply: all "unknown"
        return Outcome(None)


def query(url: str, db: str, sql: str, token: str | None = None) -> list[dict]:
    """Rows of a SQL query as JSON objects; raises AssertionError on any other status."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    out = post(f"{url}/api/v3/query_sql", json.dumps({"db": db, "q": sql, "format": "json"}).encode(), headers)
    if out.status != 200:
        raise AssertionError(f"query {sql!r} failed with {out.status}: {out.body[:500]!r}")
    return json.loads(out.body)


# --- batches and the ledger -------------------------------------------------------------------------
def batch_body(batch: int, table: str, lines: int, writer: int = 0) -> bytes:
    """Line protocol for one batch: `lines` unique points of series b=b<batch> at unique times."""
    base = BASE_NS + batch * lines
    return "\n".join(
        f"{table},b=b{batch},w=w{writer} n={i}i,v={i * 0.25} {base + i}" for i in range(lines)
    ).encode()


@dataclass
class Ledger:
    """What every writer sent and heard back, shared between writer threads."""

    lines_per_batch: int
    acked: dict[int, str] = field(default_factory=dict)  # batch -> table
    sent: dict[int, str] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # 4xx/5xx bodies that break the promise
    retried: set[int] = field(default_factory=set)  # batches sent again after a 503 or a lost connection
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=itertools.count)

    def next_batch(self, table: str) -> int:
        with self._lock:
            batch = next(self._ids)
            self.sent[batch] = table
            return batch

    def record(self, batch: int, out: Outcome) -> None:
        """Note a write's outcome: 204 acknowledges it, 503 + Retry-After and lost connections do not."""
        with self._lock:
            if out.status == 204:
                self.acked[batch] = self.sent[batch]
                self.statuses["204"] += 1
            elif out.status is None:
                self.statuses["connection lost"] += 1
            elif out.status == 503 and "Retry-After" in out.headers:
                self.statuses["503"] += 1
            else:
                self.statuses[str(out.status)] += 1
                self.unexpected.append(f"batch {batch}: {out.status} {out.body[:300]!r}")

    @property
    def acked_lines(self) -> int:
        return len(self.acked) * self.lines_per_batch

    def tables(self) -> set[str]:
        with self._lock:
            return set(self.sent.values())


@dataclass
class CheckResult:
    """The ledger compared with the server's rows."""

    acked_lines: int = 0
    lost_lines: int = 0
    duplicate_lines: int = 0
    partial_batches: list[int] = field(default_factory=list)
    visible_unacked_batches: int = 0
    # Extra rows of batches the client resent after a 503 whose commit had in fact landed: expected,
    # since identical points are not deduplicated; reported, not counted as duplicates.
    retried_duplicate_lines: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost_lines or self.duplicate_lines or self.partial_batches)


def batch_counts(url: str, table: str, token: str | None = None) -> dict[int, tuple[int, int]]:
    """batch -> (rows, distinct times) of one table; empty when the table does not exist."""
    try:
        rows = query(url, DB, f'SELECT b, count(*) AS n, count(DISTINCT time) AS d FROM "{table}" GROUP BY b',
                     token)
    except AssertionError as e:
        if "not found" in str(e).lower() or "404" in str(e):
            return {}
        raise
    return {int(r["b"][1:]): (r["n"], r["d"]) for r in rows}


def check(url: str, ledger: Ledger, token: str | None = None) -> CheckResult:
    """Compare every table the ledger wrote with the server: lost, duplicated and half-visible batches."""
    result = CheckResult(acked_lines=ledger.acked_lines)
    lines = ledger.lines_per_batch
    seen: dict[int, tuple[int, int]] = {}
    for table in sorted(ledger.tables()):
        seen.update(batch_counts(url, table, token))
    for batch, (n, d) in seen.items():
        if batch in ledger.retried and n % lines == 0 and d == lines:
            result.retried_duplicate_lines += n - d
        else:
            result.duplicate_lines += n - d
        if d != lines:
            result.partial_batches.append(batch)
            result.problems.append(f"batch {batch} is half-visible: {d} of {lines} points")
        if batch not in ledger.acked:
            result.visible_unacked_batches += 1
    for batch in ledger.acked:
        n, d = seen.get(batch, (0, 0))
        if d < lines:
            result.lost_lines += lines - d
            result.problems.append(f"acknowledged batch {batch} has {d} of {lines} points")
    return result


# --- writers --------------------------------------------------------------------------------------
class Writers:
    """Threads that write batches until stopped, to a few tables, sometimes to a brand-new one.

    `url_of()` is asked before every request, so a restarted server on another port is followed.
    A refused connection (server down) makes a writer pause briefly before its next, new batch:
    unacknowledged batches are abandoned, never resent, so a batch is never written twice.
    """

    def __init__(self, url_of: Callable[[], str], ledger: Ledger, *, writers: int = 3, new_table_every: int = 40,
                 seed: int = 0, token: str | None = None, query_params: str = "", retries: int = 0,
                 max_batches: int | None = None) -> None:
        self.url_of = url_of
        self.retries = retries
        self.max_batches = max_batches
        self.ledger = ledger
        self.count = writers
        self.new_table_every = new_table_every
        self.token = token
        self.query_params = query_params
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tables = ["t0"]
        self._table_ids = itertools.count(1)
        self._lock = threading.RLock()  # pick_table may call new_table

    def pick_table(self) -> str:
        """Mostly an existing table; every `new_table_every` draws a new one (a catalog change)."""
        with self._lock:
            if self.new_table_every and self._random.randrange(self.new_table_every) == 0:
                return self.new_table()
            return self._random.choice(self._tables)

    def new_table(self) -> str:
        with self._lock:
            name = f"t{next(self._table_ids)}"
            self._tables.append(name)
            return name

    def write_one(self, table: str, writer: int = 0) -> Outcome:
        """Write one new batch to `table`, resending the identical body up to `retries` times after a
        503 or a lost connection, as Telegraf would; records every outcome."""
        batch = self.ledger.next_batch(table)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = batch_body(batch, table, self.ledger.lines_per_batch, writer)
        for attempt in range(self.retries + 1):
            if attempt:
                self.ledger.retried.add(batch)
            url = f"{self.url_of()}/api/v3/write_lp?db={DB}{self.query_params}"
            out = post(url, body, headers)
            self.ledger.record(batch, out)
            if out.status is not None and out.status != 503:
                break
        return out

    def _run(self, writer: int) -> None:
        while not self._stop.is_set():
            if self.max_batches is not None and len(self.ledger.sent) >= self.max_batches:
                return
            out = self.write_one(self.pick_table(), writer)
            if out.status is None or out.status == 503:
                self._stop.wait(0.02)  # server down or backing off: pause, as a client would

    def join(self, timeout: float = 300) -> None:
        """Wait for writers that stop by themselves (`max_batches`)."""
        for t in self._threads:
            t.join(timeout=timeout)

    def start(self) -> Writers:
        self._threads = [threading.Thread(target=self._run, args=(i,), name=f"chaos-writer-{i}", daemon=True)
                         for i in range(self.count)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)


# --- crash storm ----------------------------------------------------------------------------------
@dataclass
class StormReport:
    kills: int = 0
    moments: Counter[str] = field(default_factory=Counter)
    snapshots_interrupted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    check: CheckResult = field(default_factory=CheckResult)
    unexpected: list[str] = field(default_factory=list)
    seconds: float = 0.0


# Snapshot often and commit early: a 200-line batch flushes at once (flush size 100), and a snapshot
# is due every 10 segments (gen1 1m / flush interval 6s), so most kills land near one.
STORM_SERVE_ARGS = ("--without-auth", "--wal-flush-interval", "6s", "--wal-flush-size", "100",
                    "--gen1-duration", "1m")


class CrashStorm:
    """Start a real server, write continuously, SIGKILL it at random moments, restart, check the ledger.

    `observer` is a store opened on the same data (in this process) used to see snapshot staging;
    `serve_args` are the `serve` flags (store selection included).
    """

    def __init__(self, data_dir: Path, serve_args: Iterable[str], *, observer: ObjectStore, node: str = "node0",
                 seed: int = 0, writers: int = 3, lines_per_batch: int = 200, max_delay: float = 1.5,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.serve_args = (*STORM_SERVE_ARGS, *serve_args)
        self.observer = observer
        self.node = node
        self.random = random.Random(seed)
        self.ledger = Ledger(lines_per_batch)
        self.max_delay = max_delay
        self.env = env
        self.server: ServerProcess | None = None
        self.writers = Writers(lambda: self.server.url if self.server else "http://127.0.0.1:9",
                               self.ledger, writers=writers, seed=seed)

    def _start(self, port: int | None = None) -> ServerProcess:
        return ServerProcess(self.data_dir, *self.serve_args, port=port, env=self.env).start(timeout=120)

    def _staging(self) -> bool:
        try:
            return bool(self.observer.list(paths.staging_prefix(self.node)))
        except Exception:  # noqa: BLE001 - a listing racing a delete: just look again
            return False

    def _wait_for_acks(self, count: int, timeout: float = 60) -> None:
        """Let the restarted server acknowledge a few batches before the next kill (progress each round)."""
        target = len(self.ledger.acked) + count
        deadline = time.monotonic() + timeout
        while len(self.ledger.acked) < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def _kill_at(self, moment: str, report: StormReport) -> None:
        assert self.server is not None
        if moment == "snapshot":
            deadline = time.monotonic() + 10
            while not self._staging() and time.monotonic() < deadline:
                time.sleep(0.002)
            if self._staging():
                report.snapshots_interrupted += 1
            time.sleep(self.random.uniform(0, 0.03))
        elif moment == "catalog":
            # A write to a new table commits a catalog change before its WAL segment: kill during it.
            threading.Thread(target=self.writers.write_one, args=(self.writers.new_table(),), daemon=True).start()
            time.sleep(self.random.uniform(0, 0.02))
        else:
            time.sleep(self.random.uniform(0, self.max_delay))
        self.server.kill()
        report.kills += 1
        report.moments[moment] += 1

    def run(self, kills: int, *, acks_between: int = 3) -> StormReport:
        """Kill the server `kills` times, restart after each, then check every acknowledged batch."""
        report = StormReport()
        started = time.monotonic()
        self.server = self._start()
        self.writers.start()
        try:
            for _ in range(kills):
                self._wait_for_acks(acks_between)
                self._kill_at(self.random.choice(MOMENTS), report)
                self.server = self._start(port=self.server.port)
        except BaseException:
            self.server.kill()  # a failed restart or a test timeout must not leave a server running
            raise
        finally:
            self.writers.stop()
        try:
            self.server.kill()  # the last one too, with nothing in flight
            report.kills += 1
            report.moments["idle"] += 1
            self.server = self._start(port=self.server.port)
            report.check = check(self.server.url, self.ledger)
        finally:
            self.server.stop()
        report.statuses = self.ledger.statuses
        report.unexpected = list(self.ledger.unexpected)
        report.seconds = time.monotonic() - started
        return report


def summary_table(rows: list[tuple[str, dict[str, object]]]) -> str:
    """A plain-text table: one row per scenario, columns in the order of the first row's keys."""
    if not rows:
        return ""
    columns = ["scenario", *rows[0][1].keys()]
    cells = [[name, *(str(v) for v in values.values())] for name, values in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
