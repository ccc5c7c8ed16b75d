"""The differential corpus: lakeflux answers every statement as InfluxDB 1.x did (fixtures/influxdb1.json), value by
value, except where InfluxDB 3 differs on purpose and the case says so.

The data set is written through a real server (file store) in two halves with a snapshot between them, so the
answers come from persisted Parquet files and the buffer together. `now()` is the instant InfluxDB 1.x was asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from influxql_compare import compare, lakeflux_answer, load_fixture
from influxql_corpus import DB, DIFFERENCES, cases, dataset

from lakeflux.config import Config
from lakeflux.testing.server import InProcessServer

FIXTURE = load_fixture()
CASES = {(c.q, c.epoch, json.dumps(c.params, sort_keys=True)): c for c in cases(FIXTURE["base"])}
RECORDS = FIXTURE["cases"]


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory: pytest.TempPathFactory):
    config = Config(data_dir=tmp_path_factory.mktemp("corpus") / "data", object_store="file",
                    wal_flush_interval=0.02, without_auth=True)
    lines = dataset(FIXTURE["base"]).splitlines()
    middle = FIXTURE["base"] + 90 * 60 * 1_000_000_000
    older = [line for line in lines if int(line.rsplit(" ", 1)[1]) < middle]
    newer = [line for line in lines if int(line.rsplit(" ", 1)[1]) >= middle]
    with InProcessServer(config) as srv:
        _write(srv, older)
        srv.call(srv.services.buffer.snapshot())
        assert srv.services.buffer.persister.manifest.files, "the older half should be persisted"
        _write(srv, newer)
        yield srv


def _write(srv: InProcessServer, lines: list[str]) -> None:
    reply = srv.request("POST", f"/api/v3/write_lp?db={DB}&precision=ns", "\n".join(lines))
    assert reply.status == 204, reply.body


def test_the_fixtures_match_the_corpus():
    """Changing the corpus needs new answers from InfluxDB 1.x: `make influxql-oracle` records them."""
    recorded = {(r["q"], r["epoch"], json.dumps(r["params"], sort_keys=True)) for r in RECORDS}
    assert recorded == set(CASES), "the corpus changed: run `make influxql-oracle` where influxd is installed"
    assert len(RECORDS) >= 300


def test_every_declared_difference_is_documented():
    docs = " ".join((Path(__file__).resolve().parents[2] / "docs" / "influxql.md").read_text().split()).lower()
    for key in {c.differs for c in CASES.values() if c.differs}:
        assert DIFFERENCES[key].lower() in docs, f"docs/influxql.md does not list the difference {key!r}"


@pytest.mark.parametrize("index", range(len(RECORDS)), ids=[r["q"][:80] for r in RECORDS])
def test_statement_answers_like_influxdb(corpus_server, index: int):
    record = RECORDS[index]
    case = CASES[(record["q"], record["epoch"], json.dumps(record["params"], sort_keys=True))]
    actual = lakeflux_answer(corpus_server.services.influxql, DB, case, record["now"])
    problems = compare(case, record["status"], record["body"], actual)
    assert not problems, "\n".join(problems)
