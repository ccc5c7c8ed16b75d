"""Creating and dropping databases on behalf of InfluxQL's CREATE DATABASE / DROP DATABASE (v1 clients and
Telegraf create their database this way before writing)."""

from __future__ import annotations

import time

from ..catalog import check_db_name, check_writable
from .services import Services


class ServerDatabases:
    """Blocking; called from the worker pool. Each method returns once the catalog change is committed."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def create_database(self, name: str, retention_ns: int | None) -> None:
        """Creates `name` unless it exists (InfluxDB 1.x answers an existing database with success too)."""
        check_db_name(name)
        check_writable(name)
        # Derived from the newest state: another node of the cluster may create it at the same moment.
        self._services.catalog.commit(lambda state: [] if state.live_db(name) is not None else [
            {"op": "create_database", "db": name, "retention_ns": retention_ns}])

    def drop_database(self, name: str) -> None:
        """Soft-deletes `name` like `DELETE /api/v3/configure/database`: hidden at once, its files removed
        after `--hard-delete-default-duration`. Returns once the deletion and the file move are durable."""
        check_writable(name)
        svc = self._services
        svc.catalog.commit([{"op": "delete_database", "db": name}])
        svc.buffer.tables.drop_database(name)
        persister = svc.buffer.persister
        if persister is not None:
            purge_at = time.time_ns() + int(svc.config.hard_delete_default_duration * 1e9)
            persister.move_to_trash(lambda f: f.db == name, purge_at)
