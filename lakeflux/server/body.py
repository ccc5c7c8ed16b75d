"""Reading request bodies: size limits, Content-Encoding, and JSON bodies."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from ..errors import Invalid, TooLarge, UnsupportedMediaType


async def read_body(request: web.Request, limit: int, hold: Callable[[int], None] | None = None) -> bytes:
    """The decoded body; 413 past `limit` bytes (before or after gzip), 400 for bad encodings.

    `hold(n)` is told of the body's bytes before they are kept (it may refuse them by raising): the
    declared Content-Length before anything is read, bytes beyond it as they arrive, and a gzip body's
    decoded bytes before they are returned."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"request body of {request.content_length} bytes exceeds the limit of {limit} bytes")
    held = 0
    if hold is not None and request.content_length:
        hold(request.content_length)
        held = request.content_length
    chunks = []
    size = 0
    # As the connection delivered them: iter_chunked would copy each into 64 KiB slices first.
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body exceeds the limit of {limit} bytes")
        if hold is not None and size > held:
            hold(size - held)
            held = size
        chunks.append(chunk)
    raw = b"".join(chunks)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise Invalid(f"unsupported Content-Encoding {encoding!r}: expected gzip or identity")
    decoded = gunzip(raw, limit)
    if hold is not None:
        hold(len(decoded))
    return decoded


def gunzip(raw: bytes, limit: int) -> bytes:
    """Every member of a gzip body, decoded as `gzip -d` does; TooLarge once the members together pass
    `limit` bytes (checked as they inflate, so a small bomb never grows past it), Invalid for a corrupt or
    truncated member or bytes after the last member that are not another member (nothing is dropped)."""
    if not raw:
        return b""  # an empty body stays empty whatever the header claims
    out = bytearray()
    data = raw
    members = 0
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(data, limit + 1 - len(out))
        except zlib.error as e:
            raise Invalid(f"error decoding gzip stream: {e}") from e
        if len(out) > limit:
            raise TooLarge(f"decompressed request body exceeds the limit of {limit} bytes")
        if not d.eof:
            raise Invalid("error decoding gzip stream: the stream is truncated")
        data = d.unused_data
        members += 1
        if not data:
            return bytes(out)
        if not data.startswith(b"\x1f\x8b"):
            raise Invalid(f"error decoding gzip stream: {len(data)} bytes after gzip member {members} are not "
                          "another gzip member")


def require_json_type(request: web.Request) -> None:
    ctype = request.headers.get("Content-Type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType("unacceptable content-type, expected: application/json")


async def read_json(request: web.Request, limit: int, *, check_type: bool = True) -> dict[str, Any]:
    """A JSON object body (415 for another Content-Type unless `check_type` is false)."""
    if check_type:
        require_json_type(request)
    raw = await read_body(request, limit)
    try:
        value = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as e:
        raise Invalid(f"invalid JSON body: {e}") from e
    if not isinstance(value, dict):
        raise Invalid("invalid JSON body: expected an object")
    return value


def parse_bool(value: str | None, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise Invalid(f"invalid value {value!r} for query parameter '{name}': expected true or false")
