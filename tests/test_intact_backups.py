"""A damaged newest backup is never trusted, and never keeps the site down (finding 9 of issue 14).

Intact: the manifest and every object it lists are in the store at their recorded sizes, as one
listing tells (no download). `--latest` by hand refuses a damaged newest backup and names the
newest intact one; the start command restores that one and says so; `--list` marks the damaged
one and `healthcheck` warns about it while the age it reports is the intact one's.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from pyrage import x25519

from ops.health import checks as health_checks
from ops.health.runner import HealthFailure, HealthWarning
from ops.repository.backups import configured_repository
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.commands import failing_command, run_command
from tests.fidelity.data import fingerprint
from tests.ops_databases import ScratchDatabases


def with_data(alias: str) -> str:
    User.objects.db_manager(alias).create_user(f"u{User.objects.using(alias).count()}", "u@example.org", "x")
    return alias


def intact_then_damaged(alias: str) -> tuple[str, str, dict[str, Any]]:
    """Two backups of ``alias``; the newer one loses its first part. Names, and the state backed up."""
    run_command("backup", database=alias, verbosity=0)
    expected = fingerprint(alias)
    with_data(alias)
    run_command("backup", database=alias, verbosity=0)
    repository = configured_repository(alias)
    damaged, intact = (backup.name for backup in repository.backups())
    repository.store.delete([f"{damaged}/part-00000"])
    return intact, damaged, expected


@pytest.mark.usefixtures("backup_dir")
def test_restore__latest_by_hand_refuses_a_damaged_newest_and_names_the_intact_one(
    scratch: ScratchDatabases,
) -> None:
    alias = with_data(scratch.postgres())
    intact, damaged, _ = intact_then_damaged(alias)
    before = fingerprint(alias)

    error = failing_command("restore", database=alias, latest=True, interactive=False)

    assert error.returncode == 1
    assert f"The newest backup {damaged} is damaged (its part {damaged}/part-00000 is missing)" in str(error)
    assert f"The newest intact one is {intact}" in str(error)
    assert fingerprint(alias) == before


@pytest.mark.usefixtures("backup_dir")
def test_start_command__falls_back_to_the_newest_intact_backup_loudly(scratch: ScratchDatabases) -> None:
    alias = with_data(scratch.postgres())
    intact, damaged, expected = intact_then_damaged(alias)
    User.objects.using(alias).all().delete()  # the database was emptied

    out, err = run_command("restore", database=alias, latest=True, if_empty=True, interactive=False)

    assert f"Restored {intact} into" in out
    assert f"The newer backup {damaged} is damaged (its part {damaged}/part-00000 is missing)" in err
    assert f"using {intact}, the newest intact one" in err
    assert fingerprint(alias) == expected


@pytest.mark.usefixtures("backup_dir")
def test_start_command__every_backup_damaged_is_a_clear_failure(scratch: ScratchDatabases) -> None:
    alias = with_data(scratch.postgres())
    intact, damaged, _ = intact_then_damaged(alias)
    configured_repository(alias).store.delete([f"{intact}/part-00000"])
    User.objects.using(alias).all().delete()

    _, err = run_command("restore", database=alias, latest=True, if_empty=True, interactive=False)

    assert "Every backup in the local folder" in err
    assert f"{damaged}: its part {damaged}/part-00000 is missing" in err


@pytest.mark.usefixtures("backup_dir")
def test_backup_list__marks_a_damaged_backup(scratch: ScratchDatabases) -> None:
    alias = with_data(scratch.postgres())
    run_command("backup", database=alias, verbosity=0)
    [backup] = configured_repository(alias).backups()
    part = configured_repository(alias).store
    data = part.get(f"{backup.name}/part-00000")
    part.put(f"{backup.name}/part-00000", data[: len(data) // 2])  # truncated

    out, err = run_command("backup", database=alias, list=True)

    [line] = [line for line in out.splitlines() if backup.name in line]
    assert line.split()[-1] == "DAMAGED"
    assert f"{backup.name} is DAMAGED: its part {backup.name}/part-00000 holds {len(data) // 2} bytes" in err


@pytest.mark.usefixtures("backup_dir")
def test_healthcheck__backup_age_is_the_newest_intact_one_and_a_damaged_newer_one_warns(
    scratch: ScratchDatabases,
) -> None:
    alias = with_data(scratch.postgres())
    intact, damaged, _ = intact_then_damaged(alias)

    with pytest.raises(HealthWarning) as warned:
        health_checks.BackupAgeCheck(database=alias).run()

    assert str(warned.value).startswith("newest complete backup is 0.0 hours old; ")
    assert f"newer backup {damaged} is DAMAGED (its part {damaged}/part-00000 is missing)" in str(
        warned.value
    )
    configured_repository(alias).store.delete([f"{intact}/part-00000"])
    with pytest.raises(HealthFailure, match=f"there is no intact backup: newer backup {damaged}"):
        health_checks.BackupAgeCheck(database=alias).run()


def test_start_command__falls_back_on_cloudinary_too(
    scratch: ScratchDatabases,
    settings: Any,
    cloudinary_emulator: CloudinaryEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    settings.OPS = {**settings.OPS, "BACKUP_REPOSITORY": "cloudinary"}
    alias = with_data(scratch.postgres())
    intact, damaged, expected = intact_then_damaged(alias)
    User.objects.using(alias).all().delete()

    out, err = run_command("restore", database=alias, latest=True, if_empty=True, interactive=False)

    assert f"Restored {intact} into" in out
    assert f"The newer backup {damaged} is damaged" in err
    assert fingerprint(alias) == expected
