"""`GET /metrics`: counters in the Prometheus text format (CONTRACT §4.7).

The HTTP middleware counts write and query requests; Flight counts its own queries through the same
`Metrics`; WAL numbers come from `WriteBuffer.stats`. The processing engine adds its per-trigger
call counters (engine/stats.py) with `add_collector`, registered by the app factory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from .errors import Handler
from .services import SERVICES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WRITE_PATHS = ("/api/v3/write_lp", "/api/v2/write", "/write")
QUERY_PATHS = ("/api/v3/query_sql", "/query", "/api/v3/query_influxql")
# Seconds; a query slower than the last bucket only lands in +Inf.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# A collector returns (name, type, help, [(labels, value)]) families.
Sample = tuple[dict[str, str], float]
Family = tuple[str, str, str, list[Sample]]
Collector = Callable[[], Iterable[Family]]


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.n += 1
        self.total += seconds
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[i] += 1
                break

    def samples(self, labels: dict[str, str]) -> list[tuple[str, dict[str, str], float]]:
        """(suffix, labels, value) rows: cumulative buckets, +Inf, sum and count."""
        rows: list[tuple[str, dict[str, str], float]] = []
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            rows.append(("_bucket", {**labels, "le": _number(bound)}, running))
        rows.append(("_bucket", {**labels, "le": "+Inf"}, self.n))
        rows.append(("_sum", labels, self.total))
        rows.append(("_count", labels, self.n))
        return rows


class Metrics:
    """Process-wide counters; safe to update from Flight's threads and the event loop alike."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: dict[str, int] = {}
        self.write_errors: dict[str, int] = {}
        self.write_lines = 0
        self.write_bytes = 0
        self.write_parse_seconds = 0.0
        self.queries: dict[str, int] = {}
        self.query_errors: dict[str, int] = {}
        self.latency: dict[str, Histogram] = {}
        self.write_latency: dict[str, Histogram] = {}
        self.collectors: list[Collector] = []

    def count_write(self, route: str, ok: bool, lines: int, size: int, seconds: float = 0.0,
                    parse_seconds: float = 0.0) -> None:
        with self._lock:
            self.writes[route] = self.writes.get(route, 0) + 1
            if not ok:
                self.write_errors[route] = self.write_errors.get(route, 0) + 1
            self.write_lines += lines
            self.write_bytes += size
            self.write_parse_seconds += parse_seconds
            self.write_latency.setdefault(route, Histogram()).observe(seconds)

    def count_query(self, protocol: str, ok: bool, seconds: float) -> None:
        with self._lock:
            self.queries[protocol] = self.queries.get(protocol, 0) + 1
            if not ok:
                self.query_errors[protocol] = self.query_errors.get(protocol, 0) + 1
            self.latency.setdefault(protocol, Histogram()).observe(seconds)

    def add_collector(self, collector: Collector) -> None:
        """Register a function whose families are appended to every scrape."""
        self.collectors.append(collector)

    def families(self) -> list[Family]:
        with self._lock:
            fams: list[Family] = [
                ("lakeflux_write_requests_total", "counter", "Write requests by route",
                 _labelled("route", self.writes)),
                ("lakeflux_write_errors_total", "counter", "Write requests answered with an error, by route",
                 _labelled("route", self.write_errors)),
                ("lakeflux_write_lines_total", "counter", "Line protocol lines received", [({}, self.write_lines)]),
                ("lakeflux_write_bytes_total", "counter", "Write request body bytes received (as sent)",
                 [({}, self.write_bytes)]),
                ("lakeflux_write_parse_seconds_total", "counter", "Seconds spent parsing write bodies (parse threads)",
                 [({}, self.write_parse_seconds)]),
                ("lakeflux_query_requests_total", "counter", "Queries by protocol", _labelled("protocol", self.queries)),
                ("lakeflux_query_errors_total", "counter", "Queries that failed, by protocol",
                 _labelled("protocol", self.query_errors)),
            ]
        for collector in self.collectors:
            fams.extend(collector())
        return fams

    def render(self, extra: Iterable[Family] = ()) -> str:
        """The whole exposition, `# EOF`-terminated."""
        out: list[str] = []
        for name, kind, help_text, samples in [*self.families(), *extra]:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)
        out.extend(self._latency_lines())
        out.append("# EOF")
        return "\n".join(out) + "\n"

    def _latency_lines(self) -> list[str]:
        lines = []
        with self._lock:
            for name, what, label, hists in (
                    ("lakeflux_query_duration_seconds", "Query latency by protocol", "protocol", self.latency),
                    ("lakeflux_write_duration_seconds", "Write request latency (to the answer) by route", "route",
                     self.write_latency)):
                lines += [f"# HELP {name} {what}", f"# TYPE {name} histogram"]
                for key, hist in sorted(hists.items()):
                    for suffix, labels, value in hist.samples({label: key}):
                        lines.append(f"{name}{suffix}{_labels(labels)} {_number(value)}")
        return lines


def _labelled(label: str, counts: dict[str, int]) -> list[Sample]:
    return [({label: key}, value) for key, value in sorted(counts.items())]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
               for k, v in labels.items())
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
# Set by the write routes: how many lines the body held.
LP_LINES: web.RequestKey[int] = web.RequestKey("lp_lines", int)
# Set by the write routes: seconds the body's parse took.
LP_PARSE_SECONDS: web.RequestKey[float] = web.RequestKey("lp_parse_seconds", float)


def wal_families(stats: object, wal: object = None) -> list[Family]:
    """WAL flush counters from a `WriteStats` and the `Wal` it commits to."""
    get = lambda name: getattr(stats, name, 0)  # noqa: E731 - tiny accessor
    stages = [("encode", getattr(wal, "encode_seconds", 0.0)), ("store", getattr(wal, "store_seconds", 0.0)),
              ("apply", get("apply_seconds"))]
    return [
        ("lakeflux_wal_flushes_total", "counter", "WAL segments committed", [({}, get("segments"))]),
        ("lakeflux_wal_flush_rows_total", "counter", "Rows in committed WAL segments", [({}, get("rows"))]),
        ("lakeflux_wal_flush_bytes_total", "counter", "Bytes of committed WAL segments", [({}, get("bytes"))]),
        ("lakeflux_wal_flush_failures_total", "counter", "WAL commits that failed", [({}, get("failures"))]),
        ("lakeflux_wal_last_flush_seconds", "gauge", "Duration of the last WAL commit",
         [({}, get("last_flush_seconds"))]),
        ("lakeflux_wal_flush_stage_seconds_total", "counter",
         "Seconds WAL commits spent encoding segments, storing them (retries included), applying their rows",
         [({"stage": stage}, seconds) for stage, seconds in stages]),
    ]


async def metrics_route(request: web.Request) -> web.StreamResponse:
    """GET /metrics."""
    buffer = request.app[SERVICES].buffer
    text = request.app[METRICS].render(wal_families(buffer.stats, buffer.wal))
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count write and query requests by their final status (errors already turned into responses)."""
    path = request.path
    if path not in WRITE_PATHS and path not in QUERY_PATHS:
        return await handler(request)
    started = time.perf_counter()
    response = await handler(request)
    ok = response.status < 400
    metrics = request.app[METRICS]
    if path in WRITE_PATHS:
        metrics.count_write(path, ok, request.get(LP_LINES, 0), request.content.total_bytes,
                            time.perf_counter() - started, request.get(LP_PARSE_SECONDS, 0.0))
    else:
        metrics.count_query("http", ok, time.perf_counter() - started)
    return response
