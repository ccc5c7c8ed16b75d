"""Checking trigger definitions before they are committed (CONTRACT §2.2, §4.5).

Pure functions over the catalog state (apart from the plugin `resolve` callback). The engine runs
`validate_definition` twice: once before its lifecycle lock, with a resolver that downloads `gh:`
plugins (slow, so no lock is held), then under the lock against the then-current catalog with one
that reads the cached copy, and commits the catalog operation only after that second pass. Every
refusal is a lakeflux error whose kind gives the status: Invalid 400, NotFound 404, Conflict 409.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..catalog import INTERNAL_DB, CatalogState, TriggerDef
from ..errors import Conflict, Invalid, NotFound
from .execution import ERROR_BEHAVIORS
from .plugin import resolve_plugin_path
from .specs import PluginType, TriggerSpec, check_allowed

UPDATABLE_FIELDS = ("plugin_filename", "spec", "arguments", "run_async", "error_behavior", "disabled")


def check_trigger_name(name: Any) -> str:
    """A trigger name: a non-empty string without control characters or '/'."""
    if not isinstance(name, str) or not name.strip():
        raise Invalid("missing or invalid 'trigger_name': expected a non-empty string")
    if any(ord(c) < 32 for c in name) or "/" in name:
        raise Invalid(f"invalid trigger name {name!r}: control characters and '/' are not allowed")
    return name


def normalise_error_behavior(value: Any) -> str:
    """`log`, `retry` or `disable`; InfluxDB's JSON spells them `Log`, `Retry`, `Disable`."""
    if value is None:
        return "log"
    if not isinstance(value, str) or value.strip().lower() not in ERROR_BEHAVIORS:
        raise Invalid(f"invalid error_behavior {value!r}: expected log, retry or disable")
    return value.strip().lower()


def check_arguments(value: Any) -> dict[str, str] | None:
    """Trigger arguments: an object of string values; empty means none (the plugin gets `None`)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise Invalid("'trigger_arguments' must be an object of string keys and string values")
    arguments: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or not isinstance(item, str):
            raise Invalid(f"trigger argument {key!r} must have a non-empty string key and a string value")
        arguments[key] = item
    return arguments or None


def check_bool(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Invalid(f"'{name}' must be true or false, got {value!r}")


def request_path_owner(state: CatalogState, path: str, *, ignore: tuple[str, str] | None = None) -> str | None:
    """`db/trigger` of the trigger already serving `path`, if any (paths are unique per server)."""
    for db in state.databases.values():
        if db.deleted:
            continue
        for trigger in db.triggers.values():
            if ignore == (db.name, trigger.name):
                continue
            spec = _parse_quietly(trigger.spec)
            if spec is not None and spec.kind == "request" and spec.path == path:
                return f"{db.name}/{trigger.name}"
    return None


def _parse_quietly(text: str) -> TriggerSpec | None:
    try:
        return TriggerSpec.parse(text)
    except Invalid:
        return None


def validate_definition(
    state: CatalogState,
    definition: TriggerDef,
    *,
    plugin_dir: Path | None,
    allowed: frozenset[PluginType] | None,
    creating: bool,
    resolve: Callable[[str], Path] | None = None,
) -> TriggerSpec:
    """Check a trigger about to be created or replaced; returns its parsed spec.

    Order: internal db (400), spec parses (400), plugin type allowed (400), plugin readable (400/404),
    database exists (404), name free (409, create only), request path free (409).
    """
    if definition.database == INTERNAL_DB:
        raise Invalid("cannot modify internal db")
    spec = TriggerSpec.parse(definition.spec)
    check_allowed(spec, allowed)
    if resolve is not None:
        resolve(definition.plugin_filename)  # also fetches `gh:` plugins
    else:
        resolve_plugin_path(plugin_dir, definition.plugin_filename)
    db = state.require_db(definition.database)
    if creating and definition.name in db.triggers:
        raise Conflict(f"trigger {definition.name} already exists in database {definition.database}")
    if not creating and definition.name not in db.triggers:
        raise NotFound(f"trigger not found: {definition.name}")
    if spec.kind == "request":
        assert spec.path is not None
        owner = request_path_owner(state, spec.path, ignore=(definition.database, definition.name))
        if owner is not None:
            raise Conflict(f"request path {spec.path!r} is already served by trigger {owner}")
    return spec


def require_trigger(state: CatalogState, db: str, name: str) -> TriggerDef:
    """The committed definition; NotFound for an unknown database or trigger."""
    if db == INTERNAL_DB:
        raise Invalid("cannot modify internal db")
    trigger = state.require_db(db).triggers.get(name)
    if trigger is None:
        raise NotFound(f"trigger not found: {name}")
    return trigger
