"""Test plugin: counts its calls in a module global and builds a line at import time."""

# LineBuilder and QueryError come from builtins, as in InfluxDB plugins.
IMPORT_LINE = LineBuilder("loaded").string_field("name", __name__).build()  # noqa: F821
CAUGHT = QueryError  # noqa: F821

calls = 0


def process_writes(influxdb3_local, table_batches, args=None):
    global calls
    calls += 1
    return calls


def process_scheduled_call(influxdb3_local, call_time, args=None):
    return ("scheduled", call_time, args)


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"calls": calls}
