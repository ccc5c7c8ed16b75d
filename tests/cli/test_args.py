"""Flag value languages: k=v lists, field lists, trigger specs, hard-delete times, retention."""

from __future__ import annotations

import pytest

from lakeflux.cli.args import (
    UsageError,
    parse_error_behavior,
    parse_fields,
    parse_hard_delete,
    parse_kv_list,
    parse_name_list,
    parse_retention,
    validate_trigger_spec,
)


def test_kv_list_splits_on_comma_then_first_equals() -> None:
    assert parse_kv_list("a=1,b=x=y,c=") == {"a": "1", "b": "x=y", "c": ""}
    assert parse_kv_list(None) == {}
    assert parse_kv_list("") == {}


@pytest.mark.parametrize("text", ["novalue", "a=1,,b=2", "=v"])
def test_kv_list_rejects_items_without_key(text: str) -> None:
    with pytest.raises(UsageError, match="expected key=value"):
        parse_kv_list(text)


def test_name_list_and_fields() -> None:
    assert parse_name_list(" a, b ,,c") == ["a", "b", "c"]
    assert parse_fields("v:float,n:INT64,s:string") == [
        {"name": "v", "type": "float64"}, {"name": "n", "type": "int64"}, {"name": "s", "type": "utf8"}]
    with pytest.raises(UsageError):
        parse_fields("v")


@pytest.mark.parametrize("spec", ["table:cpu", "all_tables", "every:1h 30m", "cron:0 0 * * * *",
                                  "request:hook", "path:hook"])
def test_valid_trigger_specs(spec: str) -> None:
    assert validate_trigger_spec(spec) == spec


@pytest.mark.parametrize(("spec", "message"), [
    ("table:", "failed to parse trigger from table:: table name is empty"),
    ("every:soon", "failed to parse trigger from every:soon"),
    ("every:2y", "failed to parse trigger from every:2y"),
    ("tables:cpu", "expect one of the following forms"),
])
def test_invalid_trigger_specs(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_trigger_spec(spec)


def test_hard_delete_values() -> None:
    assert parse_hard_delete(None) is None
    for value in ("never", "now", "default", "2030-01-01T00:00:00Z", "2030-01-01T00:00:00+02:00"):
        assert parse_hard_delete(value) == value
    with pytest.raises(UsageError):
        parse_hard_delete("later")


def test_retention_and_error_behavior() -> None:
    assert parse_retention("30d") == "30d"
    assert parse_retention("None") == "none"
    with pytest.raises(UsageError):
        parse_retention("forever")
    assert parse_error_behavior("Retry") == "retry"
    with pytest.raises(UsageError):
        parse_error_behavior("ignore")
