"""The system checks that warn before backups are lost or leaked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519

from ops.checks import check_backup_repository, check_moved_paths
from tests.cloudinary_emulator import CloudinaryEmulator


def ids(settings: Any) -> list[str]:
    return [message.id for message in check_backup_repository()]


def test_check__local_backups_in_production_warn(settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = False
    settings.OPS = {"BACKUP_REPOSITORY": "local", "BACKUP_DIR": str(tmp_path)}
    (message,) = check_backup_repository()
    assert message.id == "ops.W001"
    assert "gone at the next deploy" in message.hint


def test_check__local_backups_in_development_are_fine(settings: Any) -> None:
    settings.DEBUG = True
    settings.OPS = {"BACKUP_REPOSITORY": "local"}
    assert check_backup_repository() == []


def test_check__unencrypted_offsite_backups_warn_until_recipients_are_set(
    settings: Any, cloudinary_emulator: CloudinaryEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = False
    settings.OPS = {}
    monkeypatch.delenv("BACKUP_AGE_RECIPIENTS", raising=False)
    monkeypatch.delenv("BACKUP_AGE_PASSPHRASE", raising=False)
    assert ids(settings) == ["ops.W002"]
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(x25519.Identity.generate().to_public()))
    assert ids(settings) == []
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", "age1garbage")
    assert ids(settings) == ["ops.W003"]


def test_check__settings_naming_a_moved_module_say_where_it_went(settings: Any) -> None:
    settings.MIDDLEWARE = ["ops.middleware.HealthzMiddleware", *settings.MIDDLEWARE]
    settings.OPS = {
        "HEALTH_CHECKS": ["ops.health_checks.DatabaseCheck", ("ops.health.checks.MemoryCheck", {})]
    }
    messages = check_moved_paths()
    assert [(message.id, message.hint) for message in messages] == [
        ("ops.E010", "Write 'ops.health.middleware.HealthzMiddleware'."),
        ("ops.E010", "Write 'ops.health.checks.DatabaseCheck'."),
    ]


def test_check__todays_paths_pass(settings: Any) -> None:
    assert check_moved_paths() == []


@pytest.mark.django_db
def test_ops_commands__run_the_checks_of_models_and_ops_settings_not_of_views() -> None:
    # In an incident, a broken view or template setting must not keep a backup or a restore from
    # running; a broken model or ops setting must stop them, as it stops `migrate`.
    from django.core import checks
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    def failing(tag: str) -> Any:
        def check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
            return [checks.Error(f"broken {tag}", id=f"tests.E{len(tag)}")]

        checks.register(check, tag)
        return check

    for tag, blocks in [
        (checks.Tags.urls, False),
        (checks.Tags.templates, False),
        (checks.Tags.models, True),
    ]:
        check = failing(tag)
        try:
            if blocks:
                with pytest.raises(SystemCheckError, match=f"broken {tag}"):
                    call_command("db_size", skip_checks=False, verbosity=0)
            else:
                call_command("db_size", skip_checks=False, verbosity=0)
        finally:
            checks.registry.registry.registered_checks.discard(check)
