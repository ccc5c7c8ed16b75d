"""Test directory plugin: the entry point lives in a submodule."""

from .greeting import greet

instances = []


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    instances.append(1)
    return greet(query_parameters.get("name", "world"))
