"""Small JSON objects stored with a format version (manifests, node records, relay entries)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from .errors import Corrupt

T = TypeVar("T")


def decode_versioned(data: bytes, version: int, what: str, key: str, build: Callable[[dict[str, Any]], T]) -> T:
    """`build` of the JSON object in `data` (its "version" field removed) when it is of format `version`.

    Raises Corrupt naming `what` and `key` when `data` is not such an object or `build` cannot read it
    (a missing field, a value of the wrong type): a reader skips or reports it, never half-reads it."""
    try:
        d = orjson.loads(data)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        found = d.pop("version", None)
        if found != version:
            raise ValueError(f"unsupported version {found}")
        return build(d)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise Corrupt(f"{what} {key} is unreadable: {e}") from e
