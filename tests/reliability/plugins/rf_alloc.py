"""Reliability plugin: asks for a terabyte; the allocation fails at once with MemoryError (no real use)."""


def _allocate():
    return bytearray(10**12)


def process_writes(influxdb3_local, table_batches, args=None):
    _allocate()


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"size": len(_allocate())}
