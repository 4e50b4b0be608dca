"""The empty-database trap: Render recreates an expired database, and what follows must not hurt.

A backup of a database without user data is skipped (exit 0, a warning) unless forced; `restore
--latest` skips backups of an empty database unless --include-empty; `restore --if-empty --latest`
on a brand-new database with no backups at all lets the start command go on. And one test replays
the whole story.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connections
from pyrage import x25519

from ops.backup import EmptyDatabase, backup_to_repository
from ops.engines.tables import model_tables
from ops.repository.backups import configured_repository
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.commands import failing_command, run_command
from tests.fidelity import models as fm
from tests.fidelity.data import fingerprint
from tests.ops_databases import ScratchDatabases

SKIPPED = "holds no user data: backup skipped"


def with_data(alias: str) -> str:
    User.objects.db_manager(alias).create_user("ada", "ada@example.org", "pw")
    tag = fm.Tag.objects.using(alias).create(name="one")
    fm.Awkward.objects.using(alias).create(select="s", user_name="u", camel=1, order=tag)
    return alias


def backups_of(alias: str) -> list[str]:
    return [backup.name for backup in configured_repository(alias).backups()]


@pytest.mark.usefixtures("backup_dir")
def test_backup__empty_database_is_skipped_with_a_warning_and_exit_0(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()

    out, err = run_command("backup", database=alias, reason="pre-deploy")
    as_json, _ = run_command("backup", database=alias, format="json")

    assert out == ""
    assert SKIPPED in err
    assert "--force" in err
    assert json.loads(as_json)["skipped"] is True
    assert configured_repository(alias).backups(include_incomplete=True) == []


@pytest.mark.usefixtures("backup_dir")
def test_backup__force_takes_it_and_it_is_marked_empty(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()

    out, err = run_command("backup", database=alias, force=True)

    assert out.startswith("Backup ")
    assert err == ""
    [backup] = configured_repository(alias).backups()
    assert backup.holds_data is False


@pytest.mark.usefixtures("backup_dir")
def test_backup__the_snapshot_itself_decides_and_leaves_nothing_behind(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()
    repository = configured_repository(alias)
    with pytest.raises(EmptyDatabase):
        backup_to_repository(alias, repository, model_tables(alias), reason="daily", require_data=True)
    assert repository.backups(include_incomplete=True) == []


@pytest.mark.usefixtures("backup_dir")
def test_restore__if_empty_latest_without_any_backup_lets_the_start_command_go_on(
    scratch: ScratchDatabases,
) -> None:
    alias = scratch.postgres(migrated=False)

    out, err = run_command("restore", database=alias, latest=True, if_empty=True, interactive=False)
    error = failing_command("restore", database=alias, latest=True, interactive=False)

    assert out == ""
    assert "is empty and nothing was restored: There is no complete backup in the local folder" in err
    assert error.returncode == 1
    assert "There is no complete backup in the local folder" in str(error)


@pytest.mark.usefixtures("backup_dir")
def test_restore__latest_skips_empty_backups_unless_include_empty(
    scratch: ScratchDatabases, settings: Any
) -> None:
    # Another database's backups: shared through one namespace (each database has its own by default).
    settings.OPS = {**settings.OPS, "BACKUP_NAMESPACE": "shared"}
    source = scratch.postgres()
    run_command("backup", database=source, force=True, verbosity=0)
    [empty] = backups_of(source)
    target = with_data(scratch.postgres())

    error = failing_command("restore", database=target, latest=True, interactive=False)
    out, _ = run_command("restore", database=target, latest=True, include_empty=True, interactive=False)
    misuse = failing_command("restore", empty, database=target, include_empty=True, interactive=False)

    assert error.returncode == 1
    assert "all of an empty database" in str(error)
    assert "--include-empty" in str(error)
    assert f"Restored {empty} into" in out
    assert not User.objects.using(target).exists()
    assert misuse.returncode == 2


@pytest.fixture
def age_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))


@pytest.mark.usefixtures("age_keys")
def test_expiry_story__the_recreated_empty_database_gets_its_data_back(
    scratch: ScratchDatabases, settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    settings.OPS = {**settings.OPS, "BACKUP_REPOSITORY": "cloudinary"}
    alias = with_data(scratch.postgres())
    expected = fingerprint(alias)
    # The daily cron job, while all is well.
    run_command("backup", database=alias, reason="daily", prune=True, verbosity=0)
    [good] = backups_of(alias)

    # 30 days on: Render deletes the expired database and creates an empty one of the same name.
    name = scratch.names[alias]
    connections[alias].close()
    scratch.server.drop_database(name)
    scratch.server.create_database(name)

    # Pre-deploy: `backup --reason pre-deploy && migrate` must not fail the deploy.
    out, err = run_command("backup", database=alias, reason="pre-deploy")
    assert (out, SKIPPED in err) == ("", True)
    call_command("migrate", database=alias, verbosity=0)
    # Someone forces a backup of the empty database by hand, and the cron job runs a few times.
    run_command("backup", database=alias, reason="pre-deploy", force=True, verbosity=0)
    for _ in range(4):
        _, err = run_command("backup", database=alias, reason="daily", prune=True)
        assert SKIPPED in err
    forced, listed_good = configured_repository(alias).backups()
    assert (listed_good.name, listed_good.holds_data, forced.holds_data) == (good, True, False)
    settings.OPS = {**settings.OPS, "BACKUP_KEEP_LAST": 0, "BACKUP_KEEP_DAILY": 0, "BACKUP_KEEP_WEEKLY": 0}
    out, _ = run_command("backup", database=alias, prune_only=True, verbosity=2)
    assert good in backups_of(alias)
    [line] = [line for line in out.splitlines() if good in line]
    assert line.split()[0] == "keep"
    assert "newest backup holding data" in line

    # Start: `restore --if-empty --latest --no-input && gunicorn ...`
    out, _ = run_command("restore", database=alias, latest=True, if_empty=True, interactive=False)

    assert f"Restored {good} into {name}" in out
    assert fingerprint(alias) == expected
    # Every later start finds the data and costs one query: no listing, no download.
    calls = cloudinary_emulator.calls
    out, _ = run_command("restore", database=alias, latest=True, if_empty=True, interactive=False)
    assert out.strip() == f"Database {name} already holds data: nothing restored."
    assert cloudinary_emulator.calls == calls


@pytest.mark.usefixtures("backup_dir")
def test_restore__if_empty_on_an_unreachable_database_is_a_clean_error(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()
    connection = connections[alias]
    connection.close()
    real_name = connection.settings_dict["NAME"]
    connection.settings_dict["NAME"] = "ops_no_such_database"
    try:
        error = failing_command("restore", database=alias, latest=True, if_empty=True, interactive=False)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = real_name

    # The start command's deploy log shows what is wrong, not a traceback.
    assert error.returncode == 1
    assert str(error).startswith(f"Cannot use database {alias!r}")
    assert "ops_no_such_database" in str(error)
    assert "does not exist" in str(error)
