"""The write path: validate against the catalog, buffer, group-commit to the WAL, make queryable."""

from .tables import BufferedTables
from .validate import CheckedWrite, check_write
from .writebuffer import Prechecked, WriteBuffer, WriteStats

__all__ = ["BufferedTables", "CheckedWrite", "Prechecked", "WriteBuffer", "WriteStats", "check_write"]
