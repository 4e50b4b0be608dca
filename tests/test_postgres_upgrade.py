"""A backup taken on PostgreSQL 15 restores into PostgreSQL 16 (a major upgrade, as when moving to a
new Render database, which runs 16): every row of every table identical."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from ops.archive.format import verify_archive
from ops.backup import run_backup
from ops.restore import run_restore
from tests.fidelity.data import fingerprint, populate, sequences_next
from tests.postgres_server import ThrowawayPostgresServer, throwaway_cluster
from tests.scratch_databases import extra_database

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("backup_dir")]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ThrowawayPostgresServer, ThrowawayPostgresServer]]:
    """Both servers, started for this module whatever server the rest of the suite runs on."""
    with throwaway_cluster("15") as old, throwaway_cluster("16") as new:
        yield old, new


def server_version(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int")
        return int(cursor.fetchone()[0])


def test_upgrade__backup_on_postgresql_15_restored_into_16_is_identical(
    servers: tuple[ThrowawayPostgresServer, ThrowawayPostgresServer], tmp_path: Path, django_db_blocker: Any
) -> None:
    old, new = servers
    name = f"ops_{secrets.token_hex(4)}"
    old.create_database(name)
    new.create_database(name)
    archive = tmp_path / "on-15.kidoo-backup"
    with (
        django_db_blocker.unblock(),
        extra_database("pg15", old.database_settings(name)) as source,
        extra_database("pg16", new.database_settings(name)) as target,
    ):
        assert server_version(source) // 10000 == 15
        assert server_version(target) // 10000 == 16
        call_command("migrate", database=source, verbosity=0)
        populate(source)
        before = fingerprint(source)
        run_backup(source, output=str(archive))

        result = run_restore(target, str(archive))

        assert result.restored
        assert fingerprint(target) == before
        assert before["fidelity_everything"][0] == 11
        assert before["fidelity_pgonly"][0] == 2
        assert sequences_next(target) == sequences_next(source)
    with archive.open("rb") as handle:
        assert verify_archive(handle).server_version.startswith("15.")
