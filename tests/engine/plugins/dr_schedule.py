"""Dry-run test plugin for schedules: reports its call_time and writes one line."""
# LineBuilder is a builtin the engine installs for plugins.
# ruff: noqa: F821


def process_scheduled_call(influxdb3_local, call_time, args=None):
    influxdb3_local.info("called at", call_time.isoformat(), "tz", call_time.tzinfo)
    influxdb3_local.write(LineBuilder("tick").string_field("at", call_time.isoformat()))
