"""Checks and helpers shared by every backend: key validation, range validation, read-back comparison."""

from __future__ import annotations

from ..errors import Invalid, NotFound
from .base import ObjectStore
from .paths import is_temp


def check_key(key: str) -> str:
    """Return `key` if it is a valid object key, else raise Invalid.

    A key is relative and '/'-separated with no empty, '.' or '..' segment, so it maps to exactly
    one path under any backend's root and can never escape it.
    """
    if not isinstance(key, str) or not key:
        raise Invalid(f"invalid object key {key!r}: empty")
    if key.startswith("/") or key.endswith("/"):
        raise Invalid(f"invalid object key {key!r}: must not start or end with '/'")
    if "\x00" in key or "\\" in key:
        raise Invalid(f"invalid object key {key!r}: NUL and backslash are not allowed")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise Invalid(f"invalid object key {key!r}: empty, '.' or '..' segment")
    return key


def check_write_key(key: str) -> str:
    """Like check_key, and also refuse temp-object names: listings hide them, so a write would vanish."""
    check_key(key)
    if is_temp(key):
        raise Invalid(f"invalid object key {key!r}: the temp suffix is reserved for in-flight writes")
    return key


def check_prefix(prefix: str) -> str:
    """Return `prefix` if it can be listed: '' (everything) or a relative string not starting with '/'."""
    if not isinstance(prefix, str) or prefix.startswith("/") or "\x00" in prefix:
        raise Invalid(f"invalid list prefix {prefix!r}")
    return prefix


def check_range(start: int, end: int) -> None:
    """Raise Invalid unless 0 <= start <= end."""
    if start < 0 or end < start:
        raise Invalid(f"invalid byte range [{start}, {end}): need 0 <= start <= end")


def compare_stored(store: ObjectStore, key: str, data: bytes) -> bool | None:
    """Resolve an unknown put outcome: True if `key` holds exactly `data`, False if other bytes, None if absent.

    Callers that got Unavailable from put_if_absent and retried (getting False) use this to learn whether
    their first attempt landed. Byte equality is the identity test, so payloads should carry a writer id.
    """
    try:
        return store.get(key) == data
    except NotFound:
        return None
