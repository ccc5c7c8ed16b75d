"""Parsing of the small value languages in CLI flags: `k=v,...` lists, `name:type` field lists, comma
lists, trigger specs (via `lakeflux.engine.specs`), durations and hard-delete times.

Each parser raises `UsageError` with a readable message; the CLI prints it and exits 2, sending nothing.
"""

from __future__ import annotations

from datetime import datetime

from lakeflux.engine.durations import parse_duration
from lakeflux.engine.specs import TriggerSpec
from lakeflux.errors import Invalid


class UsageError(ValueError):
    """A flag value is malformed; the CLI prints the message and exits 2 without calling the server."""


FIELD_TYPES: dict[str, str] = {
    "utf8": "utf8", "string": "utf8", "str": "utf8",
    "int64": "int64", "int": "int64", "integer": "int64",
    "uint64": "uint64", "uint": "uint64",
    "float64": "float64", "float": "float64", "double": "float64",
    "bool": "bool", "boolean": "bool",
}

ERROR_BEHAVIORS = ("log", "retry", "disable")


def parse_kv_list(text: str | None, flag: str = "--trigger-arguments") -> dict[str, str]:
    """Split `k=v,k2=v2` on `,`, then each item on its first `=` (values may contain `=`, never `,`)."""
    if text is None or text.strip() == "":
        return {}
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key.strip() == "":
            raise UsageError(f"invalid {flag} item {item!r}: expected key=value")
        pairs[key.strip()] = value
    return pairs


def parse_name_list(text: str | None) -> list[str]:
    """Split `a,b,c` into names, dropping blanks and surrounding spaces."""
    if text is None:
        return []
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_fields(text: str | None) -> list[dict[str, str]]:
    """Parse `name:type,...` into the `[{name, type}]` body of POST /api/v3/configure/table."""
    fields: list[dict[str, str]] = []
    for item in parse_name_list(text):
        name, sep, kind = item.rpartition(":")
        canonical = FIELD_TYPES.get(kind.strip().lower())
        if not sep or not name.strip() or canonical is None:
            raise UsageError(
                f"invalid field {item!r}: expected name:type with type one of utf8, int64, uint64, float64, bool"
            )
        fields.append({"name": name.strip(), "type": canonical})
    return fields


def parse_error_behavior(text: str) -> str:
    """Normalise `--error-behavior` to log | retry | disable."""
    value = text.strip().lower()
    if value not in ERROR_BEHAVIORS:
        raise UsageError(f"invalid --error-behavior {text!r}: expected one of log, retry, disable")
    return value


def parse_hard_delete(text: str | None) -> str | None:
    """Check `--hard-delete`: never | now | default | an RFC 3339 time; None means the server default."""
    if text is None:
        return None
    value = text.strip()
    if value in ("never", "now", "default"):
        return value
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"invalid --hard-delete {text!r}: expected never, now, default or an RFC 3339 time"
        ) from None
    return value


def parse_retention(text: str) -> str:
    """Check a retention period (`30d`, `1w`, or `none` to clear it) and return it as typed."""
    value = text.strip()
    if value.lower() == "none":
        return "none"
    try:
        parse_duration(value)
    except Invalid as exc:
        raise UsageError(f"invalid retention period {text!r}: {exc.message}") from None
    return value


def validate_trigger_spec(spec: str) -> str:
    """Check a trigger spec with the engine's parser (CONTRACT §2.1) before any request is sent."""
    try:
        TriggerSpec.parse(spec)
    except Invalid as exc:
        raise UsageError(exc.message) from None
    return spec
