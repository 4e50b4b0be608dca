"""ops.W001-W003 are seen where people look (finding 11 of issue 14): `backup`'s output and healthcheck.

The suite silences ops.W001 and ops.W002 (tests/settings.py); these tests un-silence them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from pyrage import x25519

from ops.checks import check_backup_repository
from ops.health import checks as health_checks
from ops.health.runner import HealthWarning
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.commands import run_command
from tests.ops_databases import ScratchDatabases


@pytest.fixture
def production(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.DEBUG = False
    settings.SILENCED_SYSTEM_CHECKS = []
    for variable in ("BACKUP_AGE_RECIPIENTS", "BACKUP_AGE_PASSPHRASE", "BACKUP_AGE_RECIPIENTS_FILE"):
        monkeypatch.delenv(variable, raising=False)
    return settings


def test_backup__warns_w001_when_backups_stay_on_this_machine(
    scratch: ScratchDatabases, production: Any, backup_dir: Path
) -> None:
    alias = scratch.postgres()
    User.objects.db_manager(alias).create_user("ada", "a@example.org", "pw")

    out, err = run_command("backup", database=alias)

    assert out.startswith("Backup ")
    assert "Backups are written to this machine's local disk in production." in err
    assert "(ops.W001)" in err


def test_backup__warns_w002_when_backups_leave_unencrypted(
    scratch: ScratchDatabases, production: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    production.OPS = {**production.OPS, "BACKUP_REPOSITORY": "cloudinary"}
    alias = scratch.postgres()
    User.objects.db_manager(alias).create_user("ada", "a@example.org", "pw")

    _, err = run_command("backup", database=alias)

    assert "Backups leave this machine unencrypted" in err
    assert "(ops.W002)" in err


def test_health__backup_repository_check_says_the_same_as_the_system_check(
    production: Any, cloudinary_emulator: CloudinaryEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    production.OPS = {**production.OPS, "BACKUP_REPOSITORY": "cloudinary"}
    check = health_checks.BackupRepositoryCheck()

    with pytest.raises(HealthWarning, match=r"unencrypted.*\(ops\.W002\)"):
        check.run()
    [system_check] = check_backup_repository()
    assert system_check.id == "ops.W002"

    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", "age1garbage")
    with pytest.raises(HealthWarning, match=r"misconfigured.*\(ops\.W003\)"):
        check.run()

    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(x25519.Identity.generate().to_public()))
    assert check.run() == "backups are configured to be kept off this machine and encrypted"
    assert check_backup_repository() == []


def test_health__backup_repository_check_warns_w001_unless_silenced(production: Any, tmp_path: Path) -> None:
    production.OPS = {"BACKUP_REPOSITORY": "local", "BACKUP_DIR": str(tmp_path)}
    with pytest.raises(HealthWarning, match=r"local disk.*\(ops\.W001\)"):
        health_checks.BackupRepositoryCheck().run()

    production.SILENCED_SYSTEM_CHECKS = ["ops.W001"]
    assert health_checks.BackupRepositoryCheck().run().startswith("backups are configured")


def test_healthcheck_command__backup_repository_is_a_default_check_at_warning_level(
    production: Any, tmp_path: Path
) -> None:
    production.OPS = {"BACKUP_REPOSITORY": "local", "BACKUP_DIR": str(tmp_path)}

    out, _ = run_command("healthcheck", "--check", "backup_repository")

    assert "backup_repository" in out
    assert "WARNING" in out
    assert "ops.W001" in out
