"""Configure routes for databases and tables (CONTRACT §4.5)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from aiohttp import web

from ..buffer.manifest import PersistedFile
from ..catalog import check_db_name, check_table_name, check_writable
from ..engine.durations import parse_duration
from ..errors import Invalid
from ..query.formats import negotiate, render
from .body import read_json
from .services import SERVICES, Services

_FIELD_TYPES = {"utf8": "utf8", "string": "utf8", "int64": "int64", "uint64": "uint64", "float64": "float64",
                "bool": "bool", "boolean": "bool"}


def _svc(request: web.Request) -> Services:
    return request.app[SERVICES]  # type: ignore[no-any-return]


async def list_databases(request: web.Request) -> web.StreamResponse:
    fmt_param = request.query.get("format")
    if not fmt_param:
        raise Invalid("missing query parameter 'format'")
    show_deleted = request.query.get("show_deleted", "false").lower() == "true"
    state = _svc(request).catalog.state
    rows = [(d.name, d.deleted) for d in state.databases.values() if show_deleted or not d.deleted]
    rows.sort()
    columns: dict[str, Any] = {"iox::database": [r[0] for r in rows]}
    if show_deleted:
        columns["deleted"] = [r[1] for r in rows]
    table = pa.table(columns) if rows else pa.table({k: pa.array([], pa.string()) for k in columns})
    fmt = negotiate(fmt_param, None)
    body = b"".join(render(table.to_batches(), table.schema, fmt))
    return web.Response(body=body, content_type=fmt.content_type.split(";")[0])


async def create_database(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    body = await read_json(request, svc.config.max_http_request_size)
    db = _required(body, "db")
    check_db_name(db)
    check_writable(db)
    op = {"op": "create_database", "db": db, "retention_ns": _retention(body.get("retention_period"))}
    await svc.run_blocking(svc.catalog.commit, [op])
    return web.Response(status=200)


async def update_database(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    body = await read_json(request, svc.config.max_http_request_size)
    db = _required(body, "db")
    check_writable(db)
    op = {"op": "update_database", "db": db, "retention_ns": _retention(body.get("retention_period"))}
    await svc.run_blocking(svc.catalog.commit, [op])
    return web.Response(status=200)


async def delete_database(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    db = _query_or_json(request, "db")
    check_writable(db)
    purge_at = _purge_at(request.query.get("hard_delete_at"), svc)
    await svc.run_blocking(svc.catalog.commit, [{"op": "delete_database", "db": db, **_purge_op(purge_at)}])
    svc.buffer.tables.drop_database(db)
    await _delete_files(svc, lambda f: f.db == db, purge_at)
    return web.Response(status=200)


async def create_table(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    body = await read_json(request, svc.config.max_http_request_size)
    db = _required(body, "db")
    table = check_table_name(_required(body, "table"))
    check_db_name(db)
    check_writable(db)
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise Invalid("'tags' must be a list of non-empty strings")
    columns = [[t, "tag"] for t in tags]
    for f in body.get("fields") or []:
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise Invalid("each entry of 'fields' must be an object with 'name' and 'type'")
        kind = _FIELD_TYPES.get(str(f.get("type", "")).lower())
        if kind is None:
            raise Invalid(f"invalid type {f.get('type')!r} for field {f['name']!r}: expected one of "
                          "utf8, int64, uint64, float64, bool")
        columns.append([f["name"], kind])
    names = [c for c, _ in columns]
    if len(set(names)) != len(names) or "time" in names:
        raise Invalid("column names must be unique and must not be 'time'")
    ops: list[dict[str, Any]] = []
    if svc.catalog.state.live_db(db) is None:
        ops.append({"op": "create_database", "db": db})
    ops.append({"op": "create_table", "db": db, "table": table, "columns": columns})
    await svc.run_blocking(svc.catalog.commit, svc.buffer.stamp_new_tables(ops))
    return web.Response(status=200)


async def delete_table(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    db = _query_or_json(request, "db")
    table = _query_or_json(request, "table")
    check_writable(db)
    purge_at = _purge_at(request.query.get("hard_delete_at"), svc)
    await svc.run_blocking(svc.catalog.commit, [{"op": "delete_table", "db": db, "table": table,
                                                  **_purge_op(purge_at)}])
    svc.buffer.tables.drop_table(db, table)
    await _delete_files(svc, lambda f: f.db == db and f.table == table, purge_at)
    return web.Response(status=200)


def _required(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise Invalid(f"missing or invalid '{key}' in the request body")
    return value


def _query_or_json(request: web.Request, key: str) -> str:
    value = request.query.get(key)
    if not value:
        raise Invalid(f"missing query parameter '{key}'")
    return value


def _retention(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if not isinstance(value, str):
        raise Invalid("'retention_period' must be a duration string such as '30d', or 'none'")
    ns = parse_duration(value)
    if ns <= 0:
        raise Invalid(f"invalid retention_period {value!r}: must be positive")
    return ns


_NEVER = -1


def _purge_at(value: str | None, svc: Services) -> int:
    """When a deleted database's or table's files are removed for good (ns; _NEVER to keep them)."""
    now = time.time_ns()
    if value is None or value == "default":
        return now + int(svc.config.hard_delete_default_duration * 1e9)
    if value == "never":
        return _NEVER
    if value == "now":
        return now
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise Invalid(f"invalid hard_delete_at {value!r}: expected never, now, default or an RFC3339 time") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1e9)


def _purge_op(purge_at: int) -> dict[str, int | None]:
    """When the deleted files go, in the catalog op: the other nodes of a cluster remove theirs likewise."""
    return {"purge_at_ns": None if purge_at == _NEVER else purge_at}


async def _delete_files(svc: Services, doomed: Callable[[PersistedFile], bool], purge_at: int) -> None:
    """Soft delete moves persisted files out of sight until `purge_at`; `now` deletes them at once."""
    persister = svc.buffer.persister
    if persister is None:
        return
    if purge_at != _NEVER and purge_at <= time.time_ns():
        await svc.run_blocking(persister.remove_files, doomed)
    else:
        await svc.run_blocking(persister.move_to_trash, doomed, None if purge_at == _NEVER else purge_at)
