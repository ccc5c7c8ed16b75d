"""The InfluxQL parser: statements, clauses, expressions, literals, and errors worded like InfluxDB 3's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lakeflux.influxql import ast as A
from lakeflux.influxql.parser import ParseError, parse, parse_one


def select(text: str) -> A.SelectStatement:
    stmt = parse_one(text)
    assert isinstance(stmt, A.SelectStatement)
    return stmt


def test_a_grafana_time_series_query():
    stmt = select('SELECT mean("value") FROM "cpu" WHERE ("host" =~ /^a$/) AND time >= 1700000000000ms and '
                  "time <= 1700003600000ms GROUP BY time(10s), \"host\" fill(null)")
    assert stmt.fields == (A.Field(A.Call("mean", (A.VarRef("value"),))),)
    assert stmt.sources == (A.Measurement(name="cpu"),)
    assert stmt.dimensions == (A.TimeDimension(10_000_000_000), A.TagDimension("host"))
    assert stmt.fill == A.Fill("null") and stmt.fill_given
    cond = stmt.condition
    assert isinstance(cond, A.Binary) and cond.op == "AND"
    assert cond.rhs == A.Binary("<=", A.VarRef("time"), A.DurationLit(1_700_003_600_000_000_000, "1700003600000ms"))


def test_every_clause():
    stmt = select("SELECT a AS x, b FROM m WHERE c = 'd' GROUP BY time(5m, -1m), t fill(linear) ORDER BY time DESC "
                  "LIMIT 10 OFFSET 2 SLIMIT 3 SOFFSET 1 tz('Europe/Paris')")
    assert [f.alias for f in stmt.fields] == ["x", None]
    assert stmt.dimensions[0] == A.TimeDimension(300_000_000_000, -60_000_000_000)
    assert (stmt.fill.mode, stmt.descending, stmt.limit, stmt.offset, stmt.slimit, stmt.soffset) == \
        ("linear", True, 10, 2, 3, 1)
    assert stmt.timezone == "Europe/Paris"
    assert select("SELECT a FROM m GROUP BY time(1h, now())").dimensions[0].offset_now
    assert select("SELECT mean(a) FROM m GROUP BY time(1m) fill(-2.5)").fill == A.Fill("value", -2.5)
    assert select("SELECT a FROM m ORDER BY DESC").descending


def test_regex_or_division_is_decided_by_position():
    stmt = select(r"SELECT a / b, /c\/d/ FROM /e.*/ WHERE f =~ /x\/y/ AND g !~ /z/ GROUP BY /h/")
    assert stmt.fields[0].expr == A.Binary("/", A.VarRef("a"), A.VarRef("b"))
    assert stmt.fields[1].expr == A.RegexLit("c/d")
    assert stmt.sources == (A.Measurement(regex=A.RegexLit("e.*")),)
    assert stmt.dimensions == (A.RegexDimension(A.RegexLit("h")),)
    cond = stmt.condition
    assert isinstance(cond, A.Binary) and cond.lhs == A.Binary("=~", A.VarRef("f"), A.RegexLit("x/y"))


def test_operator_precedence_and_parentheses():
    stmt = select("SELECT a + b * c - d FROM m WHERE x = 1 OR y = 2 AND z = 3")
    assert stmt.fields[0].expr == A.Binary("-", A.Binary("+", A.VarRef("a"), A.Binary("*", A.VarRef("b"),
                                                                                        A.VarRef("c"))), A.VarRef("d"))
    cond = stmt.condition
    assert isinstance(cond, A.Binary) and cond.op == "OR" and isinstance(cond.rhs, A.Binary) and cond.rhs.op == "AND"
    paren = select("SELECT (a + b) * c FROM m").fields[0].expr
    assert paren == A.Binary("*", A.Paren(A.Binary("+", A.VarRef("a"), A.VarRef("b"))), A.VarRef("c"))


def test_literals():
    fields = select("SELECT 1, -2, 3.5, .5, 1e3, 'it\\'s', true, FALSE, 1h30m, 10u, 5µ, 2w, $p FROM m").fields
    assert [f.expr for f in fields] == [
        A.IntegerLit(1), A.IntegerLit(-2), A.NumberLit(3.5), A.NumberLit(0.5), A.NumberLit(1000.0),
        A.StringLit("it's"), A.BoolLit(True), A.BoolLit(False), A.DurationLit(5_400_000_000_000, "1h30m"),
        A.DurationLit(10_000, "10u"), A.DurationLit(5_000, "5µ"), A.DurationLit(1_209_600_000_000_000, "2w"),
        A.BoundParam("p")]


def test_identifiers_quoted_qualified_and_typed():
    stmt = select('SELECT "my field"::float, "a\\"b", host::tag, *::field FROM "db"."rp"."my m", db..n, rp.o')
    assert [f.expr for f in stmt.fields] == [A.VarRef("my field", "float"), A.VarRef('a"b'), A.VarRef("host", "tag"),
                                             A.Wildcard("field")]
    assert stmt.sources == (A.Measurement(name="my m", database="db", retention_policy="rp"),
                            A.Measurement(name="n", database="db"), A.Measurement(name="o", retention_policy="rp"))
    assert select('SELECT * FROM "autogen"."cpu" GROUP BY "host"::tag').dimensions == (A.TagDimension("host"),)


def test_distinct_forms_and_subqueries():
    assert select("SELECT DISTINCT v FROM m").fields[0].expr == A.Call("distinct", (A.VarRef("v"),))
    assert select("SELECT count(distinct(v)) FROM m").fields[0].expr == \
        A.Call("count", (A.Call("distinct", (A.VarRef("v"),)),))
    outer = select("SELECT max(m) FROM (SELECT mean(v) AS m FROM cpu GROUP BY time(1m)) WHERE time > now() - 1h")
    inner = outer.sources[0]
    assert isinstance(inner, A.SubQuery) and inner.statement.dimensions == (A.TimeDimension(60_000_000_000),)


def test_several_statements_comments_and_semicolons_in_quotes():
    statements = parse("SELECT a FROM m WHERE s = ';' -- a comment; not a statement\n;;"
                       "/* block; comment */ SHOW DATABASES;")
    assert len(statements) == 2 and isinstance(statements[1], A.ShowDatabases)
    assert parse("  ;  ") == []


def test_show_statements():
    assert parse_one("SHOW RETENTION POLICIES ON mydb") == A.ShowRetentionPolicies("mydb")
    assert parse_one("SHOW MEASUREMENTS WITH MEASUREMENT =~ /(?i)cpu/ LIMIT 100") == \
        A.ShowMeasurements(name=A.Measurement(regex=A.RegexLit("(?i)cpu")), name_op="=~", limit=100)
    tv = parse_one('SHOW TAG VALUES ON db FROM "cpu" WITH KEY IN ("host", region) WHERE a = \'b\' LIMIT 2 OFFSET 1')
    assert isinstance(tv, A.ShowTagValues)
    assert (tv.database, tv.key_op, tv.keys, tv.limit, tv.offset) == ("db", "IN", ("host", "region"), 2, 1)
    assert parse_one("SHOW TAG VALUES WITH KEY =~ /h.*/").key_regex == A.RegexLit("h.*")  # type: ignore[union-attr]
    assert parse_one("SHOW TAG VALUES WITH KEY != host").key_op == "!="  # type: ignore[union-attr]
    assert parse_one("SHOW FIELD KEYS FROM /c.*/ LIMIT 1") == \
        A.ShowFieldKeys(sources=(A.Measurement(regex=A.RegexLit("c.*")),), limit=1)
    assert parse_one("SHOW TAG KEYS FROM cpu WHERE time > now() - 1h").condition is not None  # type: ignore[union-attr]


def test_database_statements():
    assert parse_one("CREATE DATABASE telegraf") == A.CreateDatabase("telegraf")
    assert parse_one("CREATE DATABASE x WITH DURATION 30d REPLICATION 1 SHARD DURATION 1d NAME r") == \
        A.CreateDatabase("x", 30 * 86_400_000_000_000)
    assert parse_one('DROP DATABASE "my db"') == A.DropDatabase("my db")
    assert parse_one("DROP MEASUREMENT cpu") == A.NotImplementedStatement("DROP MEASUREMENT")
    assert parse_one("DELETE FROM cpu WHERE time < now()") == A.NotImplementedStatement("DELETE")


@pytest.mark.parametrize("text, message, pos", [
    ("SHOW SERIES", "invalid SHOW statement, expected DATABASES, FIELD KEYS, MEASUREMENTS, TAG KEYS, TAG VALUES, "
                    "or RETENTION POLICIES following SHOW", 5),
    ("SELECT mean(v) INTO other FROM m", "SELECT INTO is not supported", 15),
    ("CREATE USER bob WITH PASSWORD 'x'", "Invalid CREATE statement, expected DATABASE following CREATE", 7),
    ("GRANT ALL TO bob", "invalid InfluxQL statement", 0),
    ("SELECT FROM m", "invalid SELECT statement, expected field", 7),
    ("SELECT * FROM", "invalid FROM clause", 13),
    ("SELECT * FROM m WHERE", "invalid expression", 21),
    ("SELECT * FROM m LIMIT x", "invalid LIMIT clause, expected unsigned integer", 22),
    ("SELECT * FROM m GROUP BY time()", "invalid TIME call, expected a duration", 30),
    ("SELECT * FROM m fill(sideways)", "invalid FILL option", 21),
    ("SELECT 'open FROM m", "unterminated quoted string", 7),
    ("SELECT a FROM /open", "unterminated regular expression", 14),
    ("SELECT a FROM m tz(UTC)", "invalid TZ clause, expected string", 19),
    ("SELECT select FROM m", "unexpected keyword", 7),
])
def test_errors_name_the_problem_and_its_position(text, message, pos):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.pos == pos
    assert str(info.value).endswith(f"at pos {pos}")


_NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20)


@given(field=_NAMES, measurement=_NAMES, value=st.text(max_size=20))
def test_any_name_or_string_survives_quoting(field: str, measurement: str, value: str):
    def ident(name: str) -> str:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def string(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"

    stmt = select(f"SELECT {ident(field)} FROM {ident(measurement)} WHERE {ident(field)} = {string(value)}")
    assert stmt.fields[0].expr == A.VarRef(field)
    assert stmt.sources == (A.Measurement(name=measurement),)
    assert stmt.condition == A.Binary("=", A.VarRef(field), A.StringLit(value))
