"""Scratch PostgreSQL databases for backup/restore tests: copies of one migrated template.

Restores drop tables, run migrations and commit, so they cannot run inside a test's transaction:
each test gets real databases of its own (CREATE DATABASE ... TEMPLATE is a file copy, fast).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from tests.postgres_server import PostgresServer
from tests.scratch_databases import extra_database, sqlite_entry


class ScratchDatabases:
    def __init__(self, server: PostgresServer, template: str, stack: contextlib.ExitStack, tmp: Path) -> None:
        self.server = server
        self.template = template
        self._stack = stack
        self._tmp = tmp
        self.names: dict[str, str] = {}

    def postgres(self, *, migrated: bool = True) -> str:
        """A new database (migrated, or empty), registered as a Django alias; returns the alias."""
        name = f"ops_{secrets.token_hex(4)}"
        self.server.create_database(name, template=self.template if migrated else "template0")
        self._stack.callback(self.server.drop_database, name)
        alias = self._stack.enter_context(extra_database(name, self.server.database_settings(name)))
        self.names[alias] = name
        return alias

    def sqlite(self, *, migrated: bool = True) -> str:
        alias = f"sqlite_{secrets.token_hex(4)}"
        path = self._tmp / f"{alias}.sqlite3"
        self._stack.enter_context(extra_database(alias, sqlite_entry(path)))
        if migrated:
            call_command("migrate", database=alias, verbosity=0)
        return alias

    def url(self, alias: str) -> str:
        return self.server.url(self.names[alias])


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer, django_db_blocker: Any) -> Iterator[str]:
    name = f"ops_template_{os.getpid()}"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    with django_db_blocker.unblock(), extra_database(name, pg_server.database_settings(name)) as alias:
        call_command("migrate", database=alias, verbosity=0)
        connections[alias].close()
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def scratch(
    pg_server: PostgresServer, pg_template: str, django_db_blocker: Any, tmp_path: Path
) -> Iterator[ScratchDatabases]:
    with contextlib.ExitStack() as stack, django_db_blocker.unblock():
        yield ScratchDatabases(pg_server, pg_template, stack, tmp_path)


@pytest.fixture
def backup_dir(settings: Any, tmp_path: Path) -> Path:
    """Backups (and restores' safety backups) go to a folder of this test."""
    folder = tmp_path / "backups"
    settings.OPS = {**getattr(settings, "OPS", {}), "BACKUP_DIR": str(folder), "BACKUP_REPOSITORY": "local"}
    return folder
