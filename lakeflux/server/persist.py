"""`POST /api/v3/persist`: snapshot now, so outside readers of the lake see every committed row (issue 14).

A snapshot covers every table (the manifest's WAL sequence is one for the whole node): `db` and `table`
(query or JSON body, optional) name which tables the reply reports and must exist.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import Invalid
from ..store import paths
from .body import read_json
from .services import SERVICES, Services


async def persist(request: web.Request) -> web.StreamResponse:
    """200 `{"snapshot": <manifest number or null>, "tables": [{db, table, files, rows, delta_version}]}`
    once the files, the manifest and the Delta commits are durable."""
    svc: Services = request.app[SERVICES]
    body = await read_json(request, svc.config.max_http_request_size, check_type=False) if request.can_read_body \
        else {}
    db, table = _name(request, body, "db"), _name(request, body, "table")
    if table is not None and db is None:
        raise Invalid("'table' needs 'db'")
    state = svc.catalog.state
    if db is not None:
        state.require_db(db)
        if table is not None:
            state.require_table(db, table)
    manifest = await svc.buffer.persist()
    persister = svc.buffer.persister
    assert persister is not None
    report: dict[tuple[str, str], dict[str, Any]] = {}
    for f in persister.manifest.files:
        if (db is None or f.db == db) and (table is None or f.table == table):
            entry = report.setdefault((f.db, f.table), {"db": f.db, "table": f.table, "files": 0, "rows": 0})
            entry["files"] += 1
            entry["rows"] += f.rows
    for (d, t), entry in report.items():
        entry["delta_version"] = persister.publisher.version_of(paths.table_prefix(persister.node, d, t))
    return web.json_response({"snapshot": None if manifest is None else manifest.seq,
                              "tables": [report[k] for k in sorted(report)]})


def _name(request: web.Request, body: dict[str, Any], key: str) -> str | None:
    value = request.query.get(key, body.get(key))
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid(f"'{key}' must be a string")
    return value
