"""Reading a query's text for its calls of lpad, rpad, range and generate_series (query/guards.py): the checked
replacements have one signature each, so each function's calls must agree on their number of arguments."""

from __future__ import annotations

import pytest

from lakeflux.query.guards import sized_calls


@pytest.mark.parametrize(("sql", "calls"), [
    ("SELECT 1", {}),
    ("SELECT lpad(s, 3) FROM t", {"lpad": 2}),
    ("SELECT LPAD(s, 3, '0'), rpad(lpad(s, 2, 'x'), 9, ',') FROM t", {"lpad": 3, "rpad": 3}),
    ("SELECT range(3), generate_series(1, 3) FROM range(5)", {"range": 1, "generate_series": 2}),
    ("SELECT 'lpad(a)' AS \"rpad(\", t.lpad(1) -- range(1)\n /* range(1, 2) */ FROM t", {}),
    ("SELECT \"lpad\"('a', 3) FROM t", {"lpad": 2}),
    ("SELECT 'it''s', lpad(x, (1 + 2), concat('a', 'b')) FROM t", {"lpad": 3}),
    ("SELECT range()", {"range": 0}),
])
def test_calls_and_their_arguments(sql, calls):
    assert sized_calls(sql) == (sql, calls)


def test_calls_of_one_function_with_different_arguments_get_the_defaults_written_out():
    sql, calls = sized_calls("SELECT lpad(a, 3), lpad(b, 4, '0'), range( 5 ), range(1, 9) FROM range(2)")
    assert sql == "SELECT lpad(a, 3, ' '), lpad(b, 4, '0'), range(0,  5 , 1), range(1, 9, 1) FROM range(0, 2, 1)"
    assert calls == {"lpad": 3, "range": 3}
