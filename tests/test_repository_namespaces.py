"""The local repository keeps a folder per database, like Cloudinary's (finding 8 of issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ops.health import checks as health_checks
from ops.health.runner import HealthFailure
from ops.repository.backups import configured_repository, default_namespace
from tests.commands import run_command
from tests.fidelity.data import fingerprint
from tests.ops_databases import ScratchDatabases
from tests.test_prune import KEEP_ONLY_THE_NEWEST, backups_of, with_data

pytestmark = pytest.mark.usefixtures("backup_dir")


def test_local_repository__sqlite_and_postgresql_backups_live_apart(
    scratch: ScratchDatabases, backup_dir: Path
) -> None:
    postgres, sqlite = with_data(scratch.postgres()), with_data(scratch.sqlite())

    run_command("backup", database=postgres, verbosity=0)
    run_command("backup", database=sqlite, verbosity=0)

    [in_postgres], [in_sqlite] = backups_of(postgres), backups_of(sqlite)
    assert in_postgres != in_sqlite
    assert (backup_dir / default_namespace(postgres) / in_postgres / "manifest.json").is_file()
    assert (backup_dir / default_namespace(sqlite) / in_sqlite / "manifest.json").is_file()
    assert configured_repository(postgres).info(in_postgres).summary["vendor"] == "postgresql"
    assert configured_repository(sqlite).info(in_sqlite).summary["vendor"] == "sqlite"


def test_prune__of_one_database_never_deletes_another_databases_backups(
    scratch: ScratchDatabases, settings: Any
) -> None:
    first, second = with_data(scratch.postgres()), with_data(scratch.postgres())
    for alias in (first, second, first, second):
        run_command("backup", database=alias, verbosity=0)
    seconds = backups_of(second)
    settings.OPS = {**settings.OPS, **KEEP_ONLY_THE_NEWEST}

    run_command("backup", database=first, prune_only=True, verbosity=0)

    assert len(backups_of(first)) == 1
    assert backups_of(second) == seconds
    assert len(seconds) == 2


def test_healthcheck__backup_age_is_of_this_databases_backups(scratch: ScratchDatabases) -> None:
    backed_up, never = with_data(scratch.postgres()), with_data(scratch.postgres())
    run_command("backup", database=backed_up, verbosity=0)

    assert health_checks.BackupAgeCheck(database=backed_up).run() == "newest complete backup is 0.0 hours old"
    with pytest.raises(HealthFailure, match="there is no complete backup"):
        health_checks.BackupAgeCheck(database=never).run()


def test_local_repository__flat_layout_backups_still_list_restore_and_are_left_by_prune(
    scratch: ScratchDatabases, backup_dir: Path, settings: Any
) -> None:
    # A backup as older versions wrote it: directly in BACKUP_DIR, shared by every database.
    source = with_data(scratch.postgres())
    run_command("backup", database=source, verbosity=0)
    [old] = backups_of(source)
    shutil.move(backup_dir / default_namespace(source) / old, backup_dir / old)
    target = with_data(with_data(scratch.postgres()))
    run_command("backup", database=target, verbosity=0)
    [own] = [name for name in backups_of(target) if name != old]

    assert backups_of(source) == [old]
    assert set(backups_of(target)) == {old, own}
    out, _ = run_command("backup", database=target, list=True)
    assert old in out

    settings.OPS = {**settings.OPS, "BACKUP_KEEP_LAST": 0, "BACKUP_KEEP_DAILY": 0, "BACKUP_KEEP_WEEKLY": 0}
    settings.OPS = {**settings.OPS, "BACKUP_KEEP_MONTHLY": 0}
    out, _ = run_command("backup", database=target, prune_only=True, verbosity=2)
    assert "flat layout shared by every database: left alone" in next(
        line for line in out.splitlines() if old in line
    )
    assert (backup_dir / old / "manifest.json").is_file()

    out, _ = run_command("restore", old, database=target, interactive=False)
    assert f"Restored {old} into" in out
    assert fingerprint(target) == fingerprint(source)


def test_local_repository__undo_logs_of_the_flat_layout_are_still_read_by_key(
    scratch: ScratchDatabases, backup_dir: Path
) -> None:
    alias = scratch.postgres()
    (backup_dir / "undo").mkdir(parents=True)
    (backup_dir / "undo" / "normalize_media_urls-default-x.jsonl.zst").write_bytes(b"an old undo log")
    store = configured_repository(alias).store

    assert store.get("undo/normalize_media_urls-default-x.jsonl.zst") == b"an old undo log"
    assert [obj.key for obj in store.list()] == []
