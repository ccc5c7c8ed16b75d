"""Reliability plugin: never returns by itself (a pure-bytecode busy loop), in every entry point."""


def _spin():
    n = 0
    while True:
        n += 1


def process_writes(influxdb3_local, table_batches, args=None):
    _spin()


def process_scheduled_call(influxdb3_local, call_time, args=None):
    _spin()


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    _spin()
