"""Parsing of the small value languages in CLI flags: `k=v,...` lists, `name:type` field lists,
comma lists, trigger specs and hard-delete times. Each raises `UsageError` with a readable message."""

from __future__ import annotations

from datetime import datetime

from .durations import DurationError, parse_duration


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
    except DurationError as exc:
        raise UsageError(f"invalid retention period: {exc}") from None
    return value


_SPEC_FORMS = (
    "expect one of the following forms: 'table:<TABLE_NAME>', 'all_tables', 'cron:<CRON_EXPRESSION>', "
    "'every:<DURATION>', or 'request:<PATH>'"
)


def check_trigger_spec(spec: str) -> str:
    """Client-side trigger-spec check (CONTRACT §2.1), used until `lakeflux.engine.specs` exists.

    Checks the prefix and that the part after it is present; `every:` durations are parsed. The server
    does the full check (cron syntax, limits) and remains the authority.
    """
    def fail(context: str) -> UsageError:
        return UsageError(f"failed to parse trigger from {spec}: {context}")

    if spec == "all_tables":
        return spec
    prefix, sep, rest = spec.partition(":")
    if not sep or prefix not in ("table", "every", "cron", "request", "path"):
        raise fail(_SPEC_FORMS)
    if rest.strip() == "":
        raise fail({"table": "table name is empty", "every": "couldn't parse to duration",
                    "cron": "cron expression is empty"}.get(prefix, "request path is empty"))
    if prefix == "every":
        try:
            seconds = parse_duration(rest)
        except DurationError:
            raise fail("couldn't parse to duration") from None
        if seconds > 365.25 * 86400:
            raise fail("don't support every schedules of over 1 year")
        if seconds < 0.001:
            raise fail("every duration must be at least 1ms")
    return spec


def validate_trigger_spec(spec: str) -> str:
    """Validate a spec with the engine's parser when it is installed, else with `check_trigger_spec`."""
    try:
        from lakeflux.engine.specs import TriggerSpec  # type: ignore[import-not-found]
    except ImportError:
        return check_trigger_spec(spec)
    try:
        TriggerSpec.parse(spec)
    except Exception as exc:  # the engine raises lakeflux.errors.Invalid; its message is the contract text
        raise UsageError(str(exc)) from None
    return spec
