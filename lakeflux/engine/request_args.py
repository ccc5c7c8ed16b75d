"""The arguments `process_request` receives, built from plain request data (CONTRACT §1.10).

Pure functions, no HTTP framework: the server passes the raw query string (or already-decoded pairs),
the raw header pairs and the body bytes.

- `query_parameters`: `dict[str, str]`, form-decoded (`+` is a space, `%XX` escapes, invalid UTF-8
  replaced), a name without `=` maps to `""`, the last repeat wins.
- `request_headers`: `dict[str, str]`, names lower-cased, `Authorization` removed (the server checked
  it; plugins never see tokens), the last repeat wins, values that are not UTF-8 decoded with U+FFFD
  replacement (Δ InfluxDB panics).
- `decode_body`: the body as `bytes`, gzip (or deflate) undone, refused with TooLarge past the limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from urllib.parse import parse_qsl

from ..errors import Invalid, TooLarge

StrOrBytes = str | bytes

# Read a compressed body in slices of this size, so a small "zip bomb" never inflates past the limit.
_INFLATE_CHUNK = 64 * 1024


def query_parameters(source: str | bytes | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Build `query_parameters` from a raw query string (`a=1&b=x+y`) or from decoded (name, value) pairs.

    Give the *raw* query string (aiohttp: `request.rel_url.raw_query_string`), not a percent-decoded one,
    or pairs that are already decoded (aiohttp: `request.query.items()`).
    """
    if isinstance(source, bytes):
        source = source.decode("latin-1")  # percent escapes carry the real bytes; the rest is ASCII
    if isinstance(source, str):
        pairs: Iterable[tuple[str, str]] = parse_qsl(
            source.lstrip("?"), keep_blank_values=True, encoding="utf-8", errors="replace"
        )
    else:
        pairs = source
    params: dict[str, str] = {}
    for name, value in pairs:
        params[name] = value
    return params


def _text(value: StrOrBytes) -> str:
    """Header text as UTF-8 with replacement (aiohttp hands out surrogate-escaped str for raw bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def request_headers(pairs: Iterable[tuple[StrOrBytes, StrOrBytes]]) -> dict[str, str]:
    """Build `request_headers` from raw (name, value) pairs (aiohttp: `request.raw_headers`)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = _text(raw_name).lower()
        if name == "authorization":
            continue
        headers[name] = _text(raw_value)
    return headers


def decode_body(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The request body with its Content-Encoding undone, at most `limit` bytes after decoding.

    Supports identity, gzip / x-gzip (several members too) and deflate (zlib or raw). Raises TooLarge past
    `limit` (before or after decoding), Invalid for an unknown encoding or a corrupt compressed body.
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        if len(raw) > limit:
            raise _too_large(limit)
        return raw
    if encoding in ("gzip", "x-gzip"):
        return _inflate(raw, limit, gzip=True)
    if encoding == "deflate":
        return _inflate(raw, limit, gzip=False)
    raise Invalid(f"unsupported Content-Encoding {content_encoding!r}: expected gzip, deflate or identity")


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"max request size ({limit} bytes) exceeded", data={"limit": limit})


def _inflate(raw: bytes, limit: int, *, gzip: bool) -> bytes:
    if not raw:
        return b""  # an empty body stays empty whatever the header claims
    out = bytearray()
    data = raw
    first = True
    while first or data:
        first = False
        decompressor = _decompressor(data, gzip=gzip)
        try:
            chunk = decompressor.decompress(data, _INFLATE_CHUNK)
            while True:
                out += chunk
                if len(out) > limit:
                    raise _too_large(limit)
                if not decompressor.unconsumed_tail:
                    break
                chunk = decompressor.decompress(decompressor.unconsumed_tail, _INFLATE_CHUNK)
            out += decompressor.flush()
        except zlib.error as exc:
            raise Invalid(f"request body is not valid {'gzip' if gzip else 'deflate'} data: {exc}") from exc
        if len(out) > limit:
            raise _too_large(limit)
        if not decompressor.eof:
            raise Invalid(f"request body is truncated {'gzip' if gzip else 'deflate'} data")
        # gzip allows several members back to back; anything after the last one must be another member.
        data = decompressor.unused_data if gzip else b""
    return bytes(out)


def _decompressor(data: bytes, *, gzip: bool) -> zlib._Decompress:
    if gzip:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    # "deflate" is zlib-wrapped per RFC 9110, but some clients send a raw deflate stream.
    looks_zlib = len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
    return zlib.decompressobj(zlib.MAX_WBITS if looks_zlib else -zlib.MAX_WBITS)
