"""Name rules for databases and tables (CONTRACT §4.2) and the reserved internal database.

The rules and messages are InfluxDB 3 Core's: a database name is checked character by character as its
HTTP API does (the messages are its texts, which clients show as they are); a table name is any
line-protocol measurement, as in Core. No name is refused for what it would look like as an object key:
`store/paths.py` maps every accepted name to a valid key of bounded length.
"""

from __future__ import annotations

from ..errors import Invalid

INTERNAL_DB = "_internal"
# InfluxDB v1 allowed 255 bytes of database and 255 of retention policy name, joined by '/'.
MAX_DB_NAME = 511
_RP_SEPARATOR = "/"

DB_NAME_EMPTY = "db name cannot be empty"
DB_NAME_TOO_LONG = f"db name too long: max {MAX_DB_NAME}"
DB_NAME_BAD_START = "db name did not start with a number or letter"
DB_NAME_BAD_CHAR = (
    "invalid character in database or rp name: must be ASCII, containing only letters, numbers, underscores, "
    "or hyphens"
)
DB_NAME_BAD_RP = (
    "db name with invalid retention policy, if providing a retention policy name, must be of form "
    "'<db_name>/<rp_name>'"
)


def _ascii_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def check_db_name(name: str) -> str:
    """Return `name` if it is a valid database name, else raise Invalid with Core's text for the first
    problem: empty, longer than 511 bytes, a first character that is not an ASCII letter or digit, a
    character other than those, '_', '-' and one '/' (separating a v1 retention policy), or a trailing '/'."""
    if not name:
        raise Invalid(DB_NAME_EMPTY)
    if len(name.encode("utf-8", "surrogatepass")) > MAX_DB_NAME:
        raise Invalid(DB_NAME_TOO_LONG)
    if not _ascii_alnum(name[0]):
        raise Invalid(DB_NAME_BAD_CHAR if not name[0].isascii() else DB_NAME_BAD_START)
    separator_seen = False
    for c in name[1:]:
        if c == _RP_SEPARATOR:
            if separator_seen:
                raise Invalid(DB_NAME_BAD_RP)
            separator_seen = True
        elif not (_ascii_alnum(c) or c in "_-"):
            raise Invalid(DB_NAME_BAD_CHAR)
    if name.endswith(_RP_SEPARATOR):
        raise Invalid(DB_NAME_BAD_RP)
    return name


def check_table_name(name: str) -> str:
    """Table names are any line-protocol measurement (Core keeps no other rule): only empty is refused."""
    if not name:
        raise Invalid("invalid table name: the name is empty")
    return name


def check_writable(db: str) -> None:
    """Refuse changes to the reserved internal database."""
    if db == INTERNAL_DB:
        raise Invalid("cannot modify internal db")
