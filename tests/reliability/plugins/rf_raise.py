"""Reliability plugin: raises from every entry point, with different exception kinds."""


def process_writes(influxdb3_local, table_batches, args=None):
    raise RuntimeError("raised in process_writes")


def process_scheduled_call(influxdb3_local, call_time, args=None):
    raise ZeroDivisionError("raised in process_scheduled_call")


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    raise RecursionError("raised in process_request")
