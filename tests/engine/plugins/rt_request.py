"""Runtime test plugin: process_request returns the shape query_parameters["mode"] names."""

import asyncio
import json


class FlaskLike:
    def __flask_response__(self):
        return True

    status_code = 201
    headers = {"X-Flask": "yes"}

    def get_data(self):
        return b"flask body"


async def _double(value):
    await asyncio.sleep(0)
    return value * 2


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    mode = query_parameters.get("mode", "dict")
    if mode == "dict":
        return {"params": query_parameters, "headers": request_headers, "args": args}
    if mode == "echo":
        return {"body": request_body.decode(), "method_body_type": type(request_body).__name__}
    if mode == "tuple":
        return ({"created": True}, 201, {"X-Plugin": "on"})
    if mode == "text":
        return "<p>hello</p>"
    if mode == "bytes":
        return b"\x00\x01"
    if mode == "none":
        return None
    if mode == "flask":
        return FlaskLike()
    if mode == "asyncio":
        # Plugins may run their own event loop: the call thread has none running.
        return {"value": asyncio.run(_double(21))}
    if mode == "write":
        influxdb3_local.write_sync_to_db("reqout", LineBuilder("hit").int64_field("n", 1))  # noqa: F821
        return json.dumps({"written": True})
    raise ValueError(f"unknown mode {mode}")
