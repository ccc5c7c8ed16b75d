"""Catalog state and the operations that change it, as plain data (no I/O).

An operation is a JSON-able dict with an "op" key. `apply_op` validates one against the current
state and mutates it; the same function replays the log at startup, so a committed log entry
always re-applies cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..errors import Conflict, Invalid, LimitExceeded, NotFound
from ..model import ColumnKind
from .names import INTERNAL_DB, check_db_name, check_table_name

MAX_DATABASES = 100
MAX_TABLES_PER_DB = 4000
MAX_COLUMNS_PER_TABLE = 500
T = TypeVar("T")


@dataclass(slots=True)
class TableDef:
    name: str
    columns: dict[str, ColumnKind] = field(default_factory=dict)  # first-seen order, "time" included
    deleted: bool = False
    version: int = 0  # bumped whenever columns change, so cached conformed data can be reused safely
    # WAL segments before this one hold rows of an earlier table of the same name (deleted since):
    # replay must not give them to this one.
    since_wal_seq: int = 0
    # The node whose WAL `since_wal_seq` counts in (None: a version before clusters, i.e. the single node).
    since_node: str | None = None
    # The catalog sequence that created this table: its identity across re-creations under one name, the
    # same on every node of a cluster. WAL rows carry the identity of the table they were written to, so a
    # re-created table never takes an earlier one's rows from any node's WAL (0: created by a version that
    # did not record it).
    created_seq: int = 0

    @property
    def tags(self) -> list[str]:
        return [c for c, k in self.columns.items() if k is ColumnKind.TAG]


@dataclass
class TriggerDef:
    name: str
    database: str
    plugin_filename: str
    spec: str
    arguments: dict[str, str] | None = None
    run_async: bool = False
    error_behavior: str = "log"
    disabled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "database": self.database,
            "plugin_filename": self.plugin_filename,
            "spec": self.spec,
            "arguments": self.arguments,
            "run_async": self.run_async,
            "error_behavior": self.error_behavior,
            "disabled": self.disabled,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TriggerDef:
        return cls(**d)


@dataclass
class DatabaseDef:
    name: str
    retention_ns: int | None = None
    deleted: bool = False
    tables: dict[str, TableDef] = field(default_factory=dict)
    triggers: dict[str, TriggerDef] = field(default_factory=dict)


@dataclass
class TokenDef:
    name: str
    hash: str
    admin: bool = True
    created_ns: int = 0
    expiry_ns: int | None = None


@dataclass
class CatalogState:
    databases: dict[str, DatabaseDef] = field(default_factory=dict)
    tokens: dict[str, TokenDef] = field(default_factory=dict)
    seq: int = 0  # sequence of the last applied log entry
    # Which databases and tables operations may change in place: those this state made or copied since
    # `changing()` (ids); None: every one (a state nobody else sees yet, e.g. one being loaded).
    _own: set[int] | None = field(default=None, repr=False, compare=False)

    def changing(self) -> CatalogState:
        """A state to apply a change to, leaving this one as it is: it shares every database, table and
        trigger with this state and copies one only when an operation modifies it, so a commit costs what
        it touches, not the size of the catalog (a deep copy of 40,000 tables took about 2 s)."""
        return CatalogState(databases=dict(self.databases), tokens=dict(self.tokens), seq=self.seq, _own=set())

    def frozen(self) -> CatalogState:
        """This state, from now on changed only through `changing()` copies (it is published to readers)."""
        self._own = set()
        return self

    def _owns(self, obj: object) -> bool:
        return self._own is None or id(obj) in self._own

    def _adopt(self, obj: T) -> T:
        if self._own is not None:
            self._own.add(id(obj))
        return obj

    def own_db(self, key: str) -> DatabaseDef:
        """The database under `key`, copied first (with its own table and trigger maps) if shared."""
        db = self.databases[key]
        if self._owns(db):
            return db
        db = self.databases[key] = self._adopt(replace(db, tables=dict(db.tables), triggers=dict(db.triggers)))
        return db

    def own_table(self, db: DatabaseDef, name: str) -> TableDef:
        """Table `name` of an owned database, copied first (with its own column map) if shared."""
        table = db.tables[name]
        if self._owns(table):
            return table
        table = db.tables[name] = self._adopt(replace(table, columns=dict(table.columns)))
        return table

    def live_db(self, name: str) -> DatabaseDef | None:
        db = self.databases.get(name)
        return db if db is not None and not db.deleted else None

    def max_table_wal_seq(self, node: str | None = None) -> int:
        """The highest WAL sequence a table was stamped with at creation in `node`'s WAL (0 when none); stamps
        of versions before clusters count for every node."""
        return max((t.since_wal_seq for db in self.databases.values() for t in db.tables.values()
                    if t.since_node is None or t.since_node == node), default=0)

    def require_db(self, name: str) -> DatabaseDef:
        db = self.live_db(name)
        if db is None:
            raise NotFound(f"database not found: {name}")
        return db

    def require_table(self, db: str, table: str) -> TableDef:
        t = self.require_db(db).tables.get(table)
        if t is None or t.deleted:
            raise NotFound(f"table not found: {table} in database {db}")
        return t


# --- applying operations -------------------------------------------------------------------------


def apply_op(state: CatalogState, op: dict[str, Any]) -> None:
    """Validate `op` against `state` and apply it; raises a lakeflux error and leaves state unchanged."""
    handler = _HANDLERS.get(op.get("op", ""))
    if handler is None:
        raise Invalid(f"unknown catalog operation {op.get('op')!r}")
    handler(state, op)


def _create_database(state: CatalogState, op: dict[str, Any]) -> None:
    name = check_db_name(op["db"]) if op["db"] != INTERNAL_DB else op["db"]
    if state.live_db(name) is not None:
        raise Conflict(f"database already exists: {name}")
    if sum(1 for d in state.databases.values() if not d.deleted) >= MAX_DATABASES:
        raise LimitExceeded(f"Adding a new database would exceed limit of {MAX_DATABASES} databases")
    state.databases[name] = state._adopt(DatabaseDef(name=name, retention_ns=op.get("retention_ns")))


def _update_database(state: CatalogState, op: dict[str, Any]) -> None:
    state.own_db(state.require_db(op["db"]).name).retention_ns = op.get("retention_ns")


def _delete_database(state: CatalogState, op: dict[str, Any]) -> None:
    db = state.own_db(state.require_db(op["db"]).name)
    db.deleted = True
    # A deleted name is free for reuse: keep the old definition under a tombstone key.
    del state.databases[db.name]
    state.databases[f"{db.name}\x00deleted\x00{state.seq}"] = db


def _create_table(state: CatalogState, op: dict[str, Any]) -> None:
    db = state.require_db(op["db"])
    name = check_table_name(op["table"])
    existing = db.tables.get(name)
    if existing is not None and not existing.deleted:
        raise Conflict(f"table already exists: {name}")
    # A database's map holds live tables only (a deleted one is removed from it).
    if len(db.tables) >= MAX_TABLES_PER_DB:
        raise LimitExceeded(
            f"Update to schema would exceed number of tables allowed per database ({MAX_TABLES_PER_DB})"
        )
    table = TableDef(name=name, since_wal_seq=int(op.get("wal_seq", 0)), since_node=op.get("wal_node"),
                     created_seq=state.seq + 1)
    _add_columns(table, op["columns"])
    state.own_db(db.name).tables[name] = state._adopt(table)


def _add_columns_op(state: CatalogState, op: dict[str, Any]) -> None:
    state.require_table(op["db"], op["table"])
    _add_columns(state.own_table(state.own_db(op["db"]), op["table"]), op["columns"])


def _add_columns(table: TableDef, columns: list[list[str]]) -> None:
    new = [(c, ColumnKind(k)) for c, k in columns if c not in table.columns]
    for name, kind_text in columns:
        have = table.columns.get(name)
        if have is not None and have.value != kind_text:
            raise Conflict(f"column {name!r} of table {table.name!r} is {have.value}, not {kind_text}")
    if len(table.columns) + len(new) > MAX_COLUMNS_PER_TABLE:
        raise LimitExceeded(
            f"Update to schema would exceed number of columns per table ({MAX_COLUMNS_PER_TABLE}) "
            f"for table {table.name!r}"
        )
    for c, k in new:
        table.columns[c] = k
    if "time" not in table.columns:
        table.columns["time"] = ColumnKind.TIME
    if new:
        table.version += 1


def _delete_table(state: CatalogState, op: dict[str, Any]) -> None:
    name = state.require_table(op["db"], op["table"]).name
    db = state.own_db(op["db"])
    t = state.own_table(db, name)
    del db.tables[name]
    t.deleted = True


def _create_trigger(state: CatalogState, op: dict[str, Any]) -> None:
    t = TriggerDef.from_json(op["trigger"])
    db = state.require_db(t.database)
    if t.name in db.triggers:
        raise Conflict(f"trigger already exists: {t.name}")
    state.own_db(db.name).triggers[t.name] = t


def _update_trigger(state: CatalogState, op: dict[str, Any]) -> None:
    t = TriggerDef.from_json(op["trigger"])
    db = state.require_db(t.database)
    if t.name not in db.triggers:
        raise NotFound(f"trigger not found: {t.name}")
    state.own_db(db.name).triggers[t.name] = t


def _delete_trigger(state: CatalogState, op: dict[str, Any]) -> None:
    db = state.require_db(op["db"])
    if op["trigger"] not in db.triggers:
        raise NotFound(f"trigger not found: {op['trigger']}")
    del state.own_db(db.name).triggers[op["trigger"]]


def _create_token(state: CatalogState, op: dict[str, Any]) -> None:
    tok = TokenDef(**op["token"])
    if tok.name in state.tokens and not op.get("replace"):
        raise Conflict(f"token already exists: {tok.name}")
    state.tokens[tok.name] = tok


def _delete_token(state: CatalogState, op: dict[str, Any]) -> None:
    if op["name"] not in state.tokens:
        raise NotFound(f"token not found: {op['name']}")
    del state.tokens[op["name"]]


_HANDLERS = {
    "create_database": _create_database,
    "update_database": _update_database,
    "delete_database": _delete_database,
    "create_table": _create_table,
    "add_columns": _add_columns_op,
    "delete_table": _delete_table,
    "create_trigger": _create_trigger,
    "update_trigger": _update_trigger,
    "delete_trigger": _delete_trigger,
    "create_token": _create_token,
    "delete_token": _delete_token,
}


# --- (de)serialising the whole state for checkpoints ---------------------------------------------


def state_to_json(state: CatalogState) -> dict[str, Any]:
    return {
        "seq": state.seq,
        "databases": [
            {
                "key": key,
                "name": db.name,
                "retention_ns": db.retention_ns,
                "deleted": db.deleted,
                "tables": [
                    {"name": t.name, "columns": [[c, k.value] for c, k in t.columns.items()], "version": t.version,
                     "since_wal_seq": t.since_wal_seq, "since_node": t.since_node, "created_seq": t.created_seq}
                    for t in db.tables.values()
                ],
                "triggers": [t.to_json() for t in db.triggers.values()],
            }
            for key, db in state.databases.items()
        ],
        "tokens": [vars(t) for t in state.tokens.values()],
    }


def state_from_json(d: dict[str, Any]) -> CatalogState:
    state = CatalogState(seq=d["seq"])
    for dbj in d["databases"]:
        db = DatabaseDef(name=dbj["name"], retention_ns=dbj["retention_ns"], deleted=dbj["deleted"])
        for tj in dbj["tables"]:
            db.tables[tj["name"]] = TableDef(
                name=tj["name"], columns={c: ColumnKind(k) for c, k in tj["columns"]}, version=tj["version"],
                since_wal_seq=tj.get("since_wal_seq", 0), since_node=tj.get("since_node"),
                created_seq=tj.get("created_seq", 0),
            )
        for trj in dbj["triggers"]:
            db.triggers[trj["name"]] = TriggerDef.from_json(trj)
        state.databases[dbj["key"]] = db
    for tj in d["tokens"]:
        state.tokens[tj["name"]] = TokenDef(**tj)
    return state
