"""Name rules for databases (CONTRACT §4.2) and the reserved internal database."""

from __future__ import annotations

import re

from ..errors import Invalid

INTERNAL_DB = "_internal"
MAX_DB_NAME = 64
_DB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*(/[A-Za-z0-9_\-]+)?$")


def check_db_name(name: str) -> str:
    """Return `name` if it is a valid database name, else raise Invalid saying what is wrong."""
    if not name:
        raise Invalid("invalid database name: the name is empty")
    if len(name) > MAX_DB_NAME:
        raise Invalid(f"invalid database name {name!r}: longer than {MAX_DB_NAME} characters")
    if not _DB_RE.match(name):
        raise Invalid(
            f"invalid database name {name!r}: must start with an ASCII letter or digit and contain only "
            "ASCII letters, digits, '_', '-' and at most one '/'"
        )
    return name


def check_table_name(name: str) -> str:
    """Table names are any line-protocol measurement; only empty and control characters are refused."""
    if not name:
        raise Invalid("invalid table name: the name is empty")
    if any(ord(c) < 32 for c in name):
        raise Invalid(f"invalid table name {name!r}: control characters are not allowed")
    return name


def check_writable(db: str) -> None:
    """Refuse changes to the reserved internal database."""
    if db == INTERNAL_DB:
        raise Invalid("cannot modify internal db")
