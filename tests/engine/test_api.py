"""The influxdb3_local object (CONTRACT §1.4, §1.6) against fake ports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pytest

from lakeflux.engine.api import (
    DryRunCapture,
    PluginApi,
    QueryError,
    discard_writes,
    flush_writes,
    pending_writes,
)
from lakeflux.errors import NotFound, Unavailable
from lakeflux.lineprotocol.builder import InvalidLineError, LineBuilder

PUBLIC = {"info", "warn", "error", "query", "write", "write_to_db", "write_sync", "write_sync_to_db", "cache"}


@dataclass
class FakeWriteSink:
    payloads: list[tuple[str, str, bool]] = field(default_factory=list)
    failing: dict[str, Exception] = field(default_factory=dict)

    def write_lines(self, db: str, lines: str, *, no_sync: bool) -> None:
        if db in self.failing:
            raise self.failing[db]
        self.payloads.append((db, lines, no_sync))


@dataclass
class FakeQueryRunner:
    result: pa.Table = field(default_factory=lambda: pa.table({"host": ["a"], "v": [1.5]}))
    calls: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    error: Exception | None = None

    def query(self, db: str, sql: str, params: dict[str, Any] | None) -> pa.Table:
        self.calls.append((db, sql, params))
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class ListLogSink:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def log(self, db: str, trigger: str, level: str, text: str) -> None:
        self.rows.append((db, trigger, level, text))


class DictCache:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None, use_global: bool | None = None) -> Any:
        return self.values.get(key, default)

    def put(self, key: str, value: Any, ttl: float | None = None, use_global: bool | None = None) -> None:
        self.values[key] = value

    def delete(self, key: str, use_global: bool | None = None) -> bool:
        return self.values.pop(key, None) is not None


class Lines:
    """Any object with build() works: here several lines with blanks between."""

    def __init__(self, text: str) -> None:
        self.text = text

    def build(self) -> str:
        return self.text


@dataclass
class Harness:
    writer: FakeWriteSink = field(default_factory=FakeWriteSink)
    queries: FakeQueryRunner = field(default_factory=FakeQueryRunner)
    logs: ListLogSink = field(default_factory=ListLogSink)
    cache: DictCache = field(default_factory=DictCache)

    def api(self, kind: str = "wal", dry_run: DryRunCapture | None = None) -> PluginApi:
        return PluginApi(
            database="db1",
            trigger_name="trig",
            kind=kind,  # type: ignore[arg-type]
            writer=self.writer,
            queries=self.queries,
            logs=self.logs,
            cache=self.cache,
            dry_run=dry_run,
            to_rows=lambda table: table.to_pylist(),
        )


@pytest.fixture
def harness() -> Harness:
    return Harness()


def test_public_names_are_exactly_the_nine(harness: Harness) -> None:
    api = harness.api()
    assert {name for name in dir(api) if not name.startswith("_")} == PUBLIC
    with pytest.raises(AttributeError):
        api.extra = 1  # type: ignore[attr-defined]


def test_logging_joins_str_of_args_and_writes_rows_and_server_log(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    api = harness.api()
    with caplog.at_level(logging.INFO, logger="lakeflux.engine"):
        api.info("count", 3, None)
        api.warn({"a": 1})
        api.error()
    assert harness.logs.rows == [
        ("db1", "trig", "INFO", "count 3 None"),
        ("db1", "trig", "WARN", "{'a': 1}"),
        ("db1", "trig", "ERROR", ""),
    ]
    assert [record.getMessage() for record in caplog.records] == [
        "processing engine: count 3 None",
        "processing engine: {'a': 1}",
        "processing engine: ",
    ]
    assert [record.levelno for record in caplog.records] == [logging.INFO, logging.WARNING, logging.ERROR]
    with pytest.raises(TypeError):
        api.info("x", sep="-")  # type: ignore[call-arg]


def test_buffered_writes_flush_as_one_payload_per_db_in_first_write_order(harness: Harness) -> None:
    api = harness.api()
    api.write(LineBuilder("cpu").int64_field("v", 1))
    api.write_to_db("other", Lines("m a=1\n\n  \nm a=2\n"))
    api.write(Lines("cpu v=2i 5"))
    assert harness.writer.payloads == []  # nothing leaves before the plugin returns
    assert pending_writes(api) == {"db1": ["cpu v=1i", "cpu v=2i 5"], "other": ["m a=1", "m a=2"]}
    flush_writes(api)
    assert harness.writer.payloads == [
        ("db1", "cpu v=1i\ncpu v=2i 5", False),
        ("other", "m a=1\nm a=2", False),
    ]
    flush_writes(api)  # a second flush has nothing left to send
    assert len(harness.writer.payloads) == 2


def test_build_errors_raise_at_write_time(harness: Harness) -> None:
    api = harness.api()
    with pytest.raises(InvalidLineError):
        api.write(LineBuilder("cpu"))
    with pytest.raises(TypeError):
        api.write_to_db("db1", Lines(b"bytes"))  # type: ignore[arg-type]
    assert pending_writes(api) == {}


def test_discard_drops_queued_writes(harness: Harness) -> None:
    api = harness.api()
    api.write(Lines("m v=1"))
    discard_writes(api)
    flush_writes(api)
    assert harness.writer.payloads == []


@pytest.mark.parametrize("kind", ["wal", "schedule", "request"])
def test_flush_failures_are_logged_not_raised(harness: Harness, kind: str) -> None:
    harness.writer.failing["broken"] = Unavailable("store down")
    api = harness.api(kind)
    api.write_to_db("broken", Lines("m v=1"))
    api.write_to_db("bad name!", Lines("m v=1"))
    api.write_to_db("_internal", Lines("m v=1"))
    api.write(Lines("m v=2"))
    flush_writes(api)
    assert harness.writer.payloads == [("db1", "m v=2", False)]
    errors = [text for _, _, level, text in harness.logs.rows if level == "ERROR"]
    prefix = f"error running {kind} plugin: error writing back lines to"
    assert errors[0] == f"{prefix} broken: store down"
    assert errors[1].startswith(f"{prefix} bad name!: invalid database name")
    assert errors[2] == f"{prefix} _internal: cannot modify internal db"


def test_write_sync_writes_now_with_no_sync_choice(harness: Harness) -> None:
    api = harness.api()
    api.write_sync(Lines("m v=1\nm v=2"))
    api.write_sync_to_db("other", LineBuilder("m").bool_field("b", True), True)
    api.write_sync_to_db("other", LineBuilder("m").bool_field("b", False), no_sync=True)
    assert harness.writer.payloads == [
        ("db1", "m v=1\nm v=2", False),
        ("other", "m b=t", True),
        ("other", "m b=f", True),
    ]
    assert pending_writes(api) == {}


def test_write_sync_failures_raise_plain_exception(harness: Harness) -> None:
    harness.writer.failing["db1"] = Unavailable("buffer full")
    api = harness.api()
    with pytest.raises(Exception, match=r"^error writing line protocol to db1: buffer full$") as info:
        api.write_sync(Lines("m v=1"))
    assert type(info.value) is Exception
    with pytest.raises(
        Exception, match="error writing line protocol to _internal: cannot modify internal db"
    ):
        api.write_sync_to_db("_internal", Lines("m v=1"))
    with pytest.raises(Exception, match="error writing line protocol to a/b/c: invalid database name"):
        api.write_sync_to_db("a/b/c", Lines("m v=1"))
    assert harness.writer.payloads == []


def test_query_binds_params_and_returns_rows(harness: Harness) -> None:
    api = harness.api()
    assert api.query("SELECT 1") == [{"host": "a", "v": 1.5}]
    api.query("SELECT $h", {"h": "a"})
    api.query("SELECT $n", params={"n": 3, "f": 1.5, "b": True}, database="other")
    assert harness.queries.calls == [
        ("db1", "SELECT 1", None),
        ("db1", "SELECT $h", {"h": "a"}),
        ("other", "SELECT $n", {"n": 3, "f": 1.5, "b": True}),
    ]


def test_query_arrow_opt_in_returns_the_table(harness: Harness) -> None:
    assert harness.api().query("SELECT 1", arrow=True) is harness.queries.result


def test_query_rejects_other_param_types(harness: Harness) -> None:
    api = harness.api()
    with pytest.raises(TypeError):
        api.query("SELECT $x", {"x": None})
    with pytest.raises(TypeError):
        api.query("SELECT $x", {"x": [1]})
    with pytest.raises(TypeError):
        api.query("SELECT $x", ["x"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        api.query("SELECT $x", {"x": "1"}, params={"x": "2"})
    assert harness.queries.calls == []


def test_query_errors_become_query_error(harness: Harness) -> None:
    harness.queries.error = NotFound("database not found: nope")
    api = harness.api()
    with pytest.raises(
        QueryError, match=r"^error: database not found: nope executing query on nope: SELECT 1$"
    ):
        api.query("SELECT 1", database="nope")
    with pytest.raises(QueryError, match=r"^invalid database name provided: bad db$"):
        api.query("SELECT 1", database="bad db")
    assert issubclass(QueryError, Exception)


def test_internal_db_is_readable(harness: Harness) -> None:
    harness.api().query("SELECT 1", database="_internal")
    assert harness.queries.calls[-1][0] == "_internal"


def test_default_conversion_uses_query_convert(harness: Harness) -> None:
    pytest.importorskip("lakeflux.query.convert")
    harness.queries.result = pa.table({"time": pa.array([1_500], pa.timestamp("us")), "v": [2]})
    api = PluginApi(
        database="db1",
        trigger_name="trig",
        kind="wal",
        writer=harness.writer,
        queries=harness.queries,
        logs=harness.logs,
        cache=harness.cache,
    )
    assert api.query("SELECT 1") == [{"time": 1_500_000, "v": 2}]


def test_cache_is_the_given_object(harness: Harness) -> None:
    api = harness.api()
    api.cache.put("k", [1], 30)
    assert api.cache is harness.cache
    assert api.cache.get("k") == [1]
    assert api.cache.delete("k") is True


def test_dry_run_captures_writes_and_logs(harness: Harness) -> None:
    capture = DryRunCapture()
    api = harness.api(dry_run=capture)
    api.info("hello", 1)
    api.write(Lines("m v=1"))
    api.write_to_db("other", Lines("m v=2"))
    api.write_sync_to_db("other", Lines("m v=3"))
    api.warn("careful")
    flush_writes(api)
    assert capture.database_writes == {"other": ["m v=3", "m v=2"], "db1": ["m v=1"]}
    assert capture.log_lines == ["INFO: hello 1", "WARN: careful"]
    assert harness.writer.payloads == []
    assert harness.logs.rows == []


def test_log_sink_failure_does_not_reach_the_plugin(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenLogs:
        def log(self, db: str, trigger: str, level: str, text: str) -> None:
            raise Unavailable("log store down")

    api = PluginApi(
        database="db1",
        trigger_name="trig",
        kind="wal",
        writer=harness.writer,
        queries=harness.queries,
        logs=BrokenLogs(),
        cache=harness.cache,
    )
    with caplog.at_level(logging.INFO, logger="lakeflux.engine"):
        api.info("still fine")
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "processing engine: still fine"
    assert "could not record plugin log row for trigger trig" in messages[1]
