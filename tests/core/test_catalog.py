import re

import pytest

from lakeflux.catalog import INTERNAL_DB, Catalog, check_db_name, check_table_name
from lakeflux.catalog.catalog import CHECKPOINT_EVERY
from lakeflux.catalog.state import state_to_json
from lakeflux.errors import Conflict, Invalid, NotFound
from lakeflux.model import ColumnKind
from lakeflux.store import paths
from lakeflux.store.memory import MemoryStore


def make_catalog(store=None, node="n"):
    store = store or MemoryStore()
    cat = Catalog(store, node)
    cat.load()
    return cat, store


def test_internal_db_always_exists():
    cat, _ = make_catalog()
    assert cat.state.live_db(INTERNAL_DB) is not None


def test_changes_survive_reload():
    cat, store = make_catalog()
    cat.commit([{"op": "create_database", "db": "db1", "retention_ns": 10}])
    cat.commit([{"op": "create_table", "db": "db1", "table": "cpu", "columns": [["host", "tag"], ["v", "float64"]]}])
    cat.commit([{"op": "add_columns", "db": "db1", "table": "cpu", "columns": [["n", "int64"]]}])
    again, _ = make_catalog(store)
    table = again.state.require_table("db1", "cpu")
    assert table.columns == {"host": ColumnKind.TAG, "v": ColumnKind.FLOAT64, "time": ColumnKind.TIME,
                             "n": ColumnKind.INT64}
    assert again.state.require_db("db1").retention_ns == 10


def test_checkpoint_then_log_reload():
    cat, store = make_catalog()
    for i in range(CHECKPOINT_EVERY + 5):
        cat.commit([{"op": "create_table", "db": INTERNAL_DB if False else "d", "table": f"t{i}", "columns": []}]
                   if i else [{"op": "create_database", "db": "d"}])
    assert store.exists(paths.catalog_checkpoint("n"))
    again, _ = make_catalog(store)
    assert len(again.state.require_db("d").tables) == CHECKPOINT_EVERY + 4


def test_invalid_op_commits_nothing():
    cat, store = make_catalog()
    before = cat.state.seq
    with pytest.raises(NotFound):
        cat.commit([{"op": "create_database", "db": "ok"}, {"op": "create_table", "db": "nope", "table": "t",
                                                            "columns": []}])
    assert cat.state.seq == before
    assert cat.state.live_db("ok") is None
    again, _ = make_catalog(store)
    assert again.state.live_db("ok") is None


def test_duplicate_database_conflicts():
    cat, _ = make_catalog()
    cat.commit([{"op": "create_database", "db": "a"}])
    with pytest.raises(Conflict):
        cat.commit([{"op": "create_database", "db": "a"}])


def test_deleted_database_name_can_be_reused():
    cat, store = make_catalog()
    cat.commit([{"op": "create_database", "db": "a"}])
    cat.commit([{"op": "delete_database", "db": "a"}])
    cat.commit([{"op": "create_database", "db": "a"}])
    again, _ = make_catalog(store)
    assert again.state.live_db("a") is not None
    assert sum(1 for d in again.state.databases.values() if d.name == "a") == 2


def test_column_type_change_conflicts():
    cat, _ = make_catalog()
    cat.commit([{"op": "create_database", "db": "a"},
                {"op": "create_table", "db": "a", "table": "t", "columns": [["v", "float64"]]}])
    with pytest.raises(Conflict):
        cat.commit([{"op": "add_columns", "db": "a", "table": "t", "columns": [["v", "int64"]]}])


def test_second_writer_catches_up_and_commits_after():
    """Two writers of one catalog (nodes of a cluster): the one that finds its slot taken applies the other's
    entry and commits at the next slot (tests/cluster covers the races)."""
    store = MemoryStore()
    a, _ = make_catalog(store)
    b, _ = make_catalog(store)
    a.commit([{"op": "create_database", "db": "from_a"}])
    b.commit([{"op": "create_database", "db": "from_b"}])
    assert {"from_a", "from_b"} <= set(b.state.databases)
    assert a.sync() == 1 and {"from_a", "from_b"} <= set(a.state.databases)


@pytest.mark.parametrize("name", ["db", "a1", "my-db_2", "org/bucket", "A", "1/-", "1/_", "x" * 65, "x" * 511])
def test_valid_db_names(name):
    assert check_db_name(name) == name


@pytest.mark.parametrize(("name", "message"), [
    ("", "db name cannot be empty"),
    ("x" * 512, "db name too long: max 511"),
    ("é" * 256, "db name too long: max 511"),  # bytes, as Core counts
    ("_x", "db name did not start with a number or letter"),
    ("-a", "db name did not start with a number or letter"),
    (".", "db name did not start with a number or letter"),
    ("é", "invalid character in database or rp name"),
    ("a b", "invalid character in database or rp name"),
    ("a.b", "invalid character in database or rp name"),
    ("a/b/c", "db name with invalid retention policy"),
    ("a/", "db name with invalid retention policy"),
])
def test_invalid_db_names_get_cores_messages(name, message):
    with pytest.raises(Invalid, match=f"^{re.escape(message)}"):
        check_db_name(name)


@pytest.mark.parametrize("name", [".", "..", "x" * 300, "中" * 30, "a\x01b", "a/b"])
def test_any_measurement_is_a_table_name(name):
    assert check_table_name(name) == name


def test_commits_leave_the_state_readers_hold_untouched():
    cat, _ = make_catalog()
    cols = [["host", "tag"], ["v", "int64"]]
    cat.commit([{"op": "create_database", "db": "a"}, {"op": "create_database", "db": "b"}])
    cat.commit([{"op": "create_table", "db": "a", "table": f"t{i}", "columns": cols} for i in range(3)]
               + [{"op": "create_table", "db": "b", "table": "u", "columns": cols}])
    before = cat.state
    snapshot = state_to_json(before)
    cat.commit([{"op": "add_columns", "db": "a", "table": "t1", "columns": [["w", "float64"]]},
                {"op": "delete_table", "db": "a", "table": "t2"},
                {"op": "update_database", "db": "b", "retention_ns": 5}])
    cat.commit([{"op": "delete_database", "db": "b"}])
    with pytest.raises(Conflict):  # the first op applies to the copy, the second fails: nothing changes
        cat.commit([{"op": "create_table", "db": "a", "table": "x", "columns": cols},
                    {"op": "create_table", "db": "a", "table": "t0", "columns": cols}])
    assert state_to_json(before) == snapshot
    after = cat.state
    assert "w" in after.databases["a"].tables["t1"].columns and "t2" not in after.databases["a"].tables
    assert "x" not in after.databases["a"].tables and after.live_db("b") is None
    assert after.databases["a"].tables["t0"] is before.databases["a"].tables["t0"]
    again, _ = make_catalog(cat._store)
    assert state_to_json(again.state) == state_to_json(after)
