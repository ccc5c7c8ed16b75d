"""Issue 18, item 11: tables are found from the parsed statement, never by searching or rewriting its text.

Through a real server: a string literal that reads like `from 'x'` comes back unchanged, a table whose
name holds a double quote (or a single quote) is listed and can be queried, and single-quoted table
names after FROM/JOIN keep working (plugins use them)."""

from __future__ import annotations

import pytest

from lakeflux.testing.chaos import post, query
from lakeflux.testing.process import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlnames")
    server = ServerProcess(root / "data", "--without-auth", "--wal-flush-interval", "10ms").start()
    body = "\n".join(['cpu,host=a usage=1.5 1', 'we"ird,host=b v=2i 2', "it's,host=c v=3i 3", "mem,host=a used=4i 4"])
    assert post(f"{server.url}/api/v3/write_lp?db=db", body.encode()).status == 204
    yield server
    server.stop()


def test_string_literals_are_not_rewritten(srv):
    rows = query(srv.url, "db", "SELECT concat('rows from ', 'cpu') AS x, 'join ''mem''' AS y")
    assert rows == [{"x": "rows from cpu", "y": "join 'mem'"}]
    rows = query(srv.url, "db", "SELECT host, 'from ''cpu'' here' AS note FROM cpu")
    assert rows == [{"host": "a", "note": "from 'cpu' here"}]


def test_table_names_with_quotes_are_queryable(srv):
    listed = {r["table_name"] for r in query(srv.url, "db", "SHOW TABLES") if r["table_schema"] == "iox"}
    assert {'we"ird', "it's"} <= listed
    assert query(srv.url, "db", 'SELECT host, v FROM "we""ird"') == [{"host": "b", "v": 2}]
    assert query(srv.url, "db", "SELECT host, v FROM \"it's\"") == [{"host": "c", "v": 3}]


def test_single_quoted_table_names_still_work(srv):
    assert query(srv.url, "db", "SELECT host FROM 'cpu'") == [{"host": "a"}]
    rows = query(srv.url, "db", "SELECT c.host, m.used FROM 'cpu' c JOIN 'mem' m ON c.host = m.host")
    assert rows == [{"host": "a", "used": 4}]
    assert query(srv.url, "db", "SELECT count(*) AS n FROM cpu WHERE host IN (SELECT host FROM 'mem')") == [{"n": 1}]


def test_only_referenced_tables_are_read(srv):
    # A table named in a string literal or a comment is not a reference; an unknown table is an error.
    assert query(srv.url, "db", "SELECT 'cpu' AS t -- FROM mem") == [{"t": "cpu"}]
    reply = post(f"{srv.url}/api/v3/query_sql", b'{"db": "db", "q": "SELECT * FROM nope"}',
                 {"Content-Type": "application/json"})
    assert reply.status == 400 and b"nope" in reply.body
