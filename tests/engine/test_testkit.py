"""The plugin test kit (lakeflux.testing.plugins): real LineBuilder, captured writes/logs, cache, queries."""

from __future__ import annotations

import datetime as dt

import pytest
from runtime_support import PLUGINS, ManualTimer

from lakeflux.testing.plugins import PluginTestKit

EXAMPLE = PLUGINS / "kit_example.py"
HISTORY = "temperature,room=kitchen value=20 1000\ntemperature,room=kitchen value=22 2000"


@pytest.fixture
def kit():
    with PluginTestKit(EXAMPLE, lp=HISTORY) as test_kit:
        yield test_kit


def test_run_writes_captures_lines_logs_and_answers_queries(kit):
    run = kit.run_writes("temperature,room=kitchen value=35 3000\nhumidity,room=kitchen value=50 3000",
                         args={"limit": "30"})
    assert run.error is None and run.errors == []
    # The input lines are not written: the baseline is the average of the loaded history only.
    assert run.writes == {"test": ["hot_rooms,room=kitchen value=35.0,baseline=21.0,alerts=1i 3000"]}
    assert run.logs("INFO") == ["checked 2 tables"]
    assert kit.query("SELECT count(*) AS n FROM temperature")[0]["n"] == 2


def test_cache_lives_across_runs_and_follows_the_clock(tmp_path):
    timer = ManualTimer(1_000 * 10**9)
    with PluginTestKit(EXAMPLE, lp=HISTORY, clock=timer) as kit:
        kit.run_writes("temperature,room=kitchen value=40 3000")
        second = kit.run_writes("temperature,room=kitchen value=41 4000")
        assert second.writes["test"][0].endswith("alerts=2i 4000")
        assert kit.run_request(query_parameters={"room": "kitchen"}).result == {"room": "kitchen", "alerts": 2}
        timer.advance(61)  # the plugin put alerts with ttl=60
        assert kit.cache.get("alerts") is None


def test_apply_writes_output_for_later_queries(kit):
    run = kit.run_writes("temperature,room=kitchen value=99 3000")
    kit.apply(run)
    assert kit.query("SELECT room, value FROM hot_rooms") == [{"room": "kitchen", "value": 99.0}]


def test_table_filter_schedule_and_exceptions(kit):
    filtered = kit.run_writes("temperature,room=a value=1 1\nhumidity,room=a value=2 1", table="humidity")
    assert filtered.logs("INFO") == ["checked 1 tables"]
    tick = kit.run_schedule(dt.datetime(2026, 1, 1))
    assert tick.log_lines == ["INFO: tick 2026-01-01T00:00:00"]
    with pytest.raises(ValueError, match="room is required"):
        kit.run_request()
    caught = kit.run_request(catch=True)
    assert isinstance(caught.error, ValueError)


def test_invalid_captured_lines_are_reported(tmp_path):
    plugin = tmp_path / "clash.py"
    plugin.write_text("def process_writes(influxdb3_local, table_batches, args=None):\n"
                      "    influxdb3_local.write(LineBuilder('temperature').tag('room', 'x').string_field('value', 'hot'))\n")
    with PluginTestKit(plugin, lp=HISTORY) as kit:
        run = kit.run_writes()
        assert len(run.errors) == 1 and "value" in run.errors[0]
