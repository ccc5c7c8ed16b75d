"""The catalog: what databases, tables, columns, triggers and tokens exist, persisted in the store."""

from .catalog import Catalog
from .names import INTERNAL_DB, check_db_name, check_table_name, check_writable
from .state import CatalogState, DatabaseDef, TableDef, TokenDef, TriggerDef

__all__ = [
    "Catalog",
    "CatalogState",
    "DatabaseDef",
    "TableDef",
    "TokenDef",
    "TriggerDef",
    "INTERNAL_DB",
    "check_db_name",
    "check_table_name",
    "check_writable",
]
