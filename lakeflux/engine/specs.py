"""Trigger specifications (CONTRACT §2.1): parse the `--trigger-spec` text, store it canonically.

| spec                          | kind         | plugin type |
|-------------------------------|--------------|-------------|
| `table:<name>`                | `table`      | `wal`       |
| `all_tables`                  | `all_tables` | `wal`       |
| `every:<duration>`            | `every`      | `schedule`  |
| `cron:<expression>`           | `cron`       | `schedule`  |
| `request:<path>`, `path:<p>`  | `request`    | `request`   |

The whole spec and the part after the prefix are trimmed; prefixes are case-sensitive. Errors are
`Invalid("failed to parse trigger from <spec>[: <context>]")`, the spec being the trimmed text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import Invalid
from .durations import NS_PER_MS, NS_PER_YEAR, format_duration, parse_duration
from .schedule import CronSchedule, EverySchedule, Schedule

TriggerKind = Literal["table", "all_tables", "every", "cron", "request"]
PluginType = Literal["wal", "schedule", "request"]

UNKNOWN_FORM_CONTEXT = (
    "expect one of the following forms: 'table:<TABLE_NAME>', 'all_tables', "
    "'cron:<CRON_EXPRESSION>', 'every:<DURATION>', or 'request:<PATH>'"
)
MIN_EVERY_NS = NS_PER_MS
MAX_EVERY_NS = NS_PER_YEAR

_PLUGIN_TYPES: dict[str, PluginType] = {
    "table": "wal", "all_tables": "wal", "every": "schedule", "cron": "schedule", "request": "request",
}
# How the refusal names a plugin type (the `--restrict-plugin-triggers-to` value, capitalised).
_PLUGIN_TYPE_NAMES: dict[PluginType, str] = {"wal": "Wal", "schedule": "Schedule", "request": "Request"}


def _fail(spec: str, context: str | None = None) -> Invalid:
    suffix = f": {context}" if context else ""
    return Invalid(f"failed to parse trigger from {spec}{suffix}")


@dataclass(frozen=True)
class TriggerSpec:
    """One parsed trigger spec; exactly the field of its kind is set."""

    kind: TriggerKind
    table: str | None = None
    duration_ns: int | None = None
    cron: str | None = None
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> TriggerSpec:
        """Parse a trigger spec; raises Invalid with InfluxDB's "failed to parse trigger from …" text."""
        spec = text.strip()
        if spec.startswith("table:"):
            table = spec[len("table:"):].strip()
            if not table:
                raise _fail(spec, "table name is empty")
            return cls(kind="table", table=table)
        if spec == "all_tables":
            return cls(kind="all_tables")
        if spec.startswith("every:"):
            return cls(kind="every", duration_ns=_parse_every(spec, spec[len("every:"):].strip()))
        if spec.startswith("cron:"):
            try:
                schedule = CronSchedule.parse(spec[len("cron:"):])
            except Invalid as exc:
                raise _fail(spec, exc.message) from exc
            return cls(kind="cron", cron=schedule.expression)
        for prefix in ("request:", "path:"):
            if spec.startswith(prefix):
                # Δ A leading "/" is dropped: `request:/x` is served at /api/v3/engine/x, as meant.
                path = spec[len(prefix):].strip().lstrip("/").strip()
                if not path:
                    raise _fail(spec, "request path is empty")
                return cls(kind="request", path=path)
        raise _fail(spec, UNKNOWN_FORM_CONTEXT)

    def canonical(self) -> str:
        """The stored form: `every:` humantime-rendered, `path:` as `request:`; parses back to itself."""
        if self.kind == "table":
            return f"table:{self.table}"
        if self.kind == "all_tables":
            return "all_tables"
        if self.kind == "every":
            assert self.duration_ns is not None
            return f"every:{format_duration(self.duration_ns)}"
        if self.kind == "cron":
            return f"cron:{self.cron}"
        return f"request:{self.path}"

    def __str__(self) -> str:
        return self.canonical()

    @property
    def plugin_type(self) -> PluginType:
        """Which entry point the trigger calls: `wal` (process_writes), `schedule`, `request`."""
        return _PLUGIN_TYPES[self.kind]

    def schedule(self) -> Schedule:
        """The fire-time calculator of an `every:` or `cron:` spec; ValueError for other kinds."""
        if self.kind == "every":
            assert self.duration_ns is not None
            return EverySchedule(self.duration_ns)
        if self.kind == "cron":
            assert self.cron is not None
            return CronSchedule.parse(self.cron)
        raise ValueError(f"{self.canonical()} is not a schedule trigger")


def _parse_every(spec: str, duration_text: str) -> int:
    try:
        duration_ns = parse_duration(duration_text)
    except Invalid as exc:
        raise _fail(spec, "couldn't parse to duration") from exc
    if duration_ns > MAX_EVERY_NS:
        raise _fail(spec, "don't support every schedules of over 1 year")
    if duration_ns < MIN_EVERY_NS:
        # Δ InfluxDB accepts these and its scheduler then fails; refuse them up front.
        raise _fail(spec, "every duration must be at least 1ms")
    return duration_ns


def parse_plugin_types(text: str) -> frozenset[PluginType]:
    """Parse `--restrict-plugin-triggers-to wal,schedule,request`; raises Invalid for unknown names."""
    allowed: set[PluginType] = set()
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in ("wal", "schedule", "request"):
            raise Invalid(f"unknown plugin trigger type {raw.strip()!r}: expected wal, schedule or request")
        allowed.add(name)  # type: ignore[arg-type]
    return frozenset(allowed)


def check_allowed(spec: TriggerSpec, allowed: frozenset[PluginType] | None) -> None:
    """Refuse a spec whose plugin type the server was told to reject (None = everything allowed)."""
    if allowed is not None and spec.plugin_type not in allowed:
        name = _PLUGIN_TYPE_NAMES[spec.plugin_type]
        raise Invalid(f"server is configured to reject {name} plugin triggers")
