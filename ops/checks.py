"""System checks (``manage.py check``) for settings that would quietly lose or leak backups."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from ops.conf import moved_path, ops_setting
from ops.errors import OpsError
from ops.repository.encryption import encryption_keys_from_environment


def _production() -> bool:
    return not settings.DEBUG or bool(os.environ.get("RENDER"))


def _repository_choice() -> str:
    from ops.repository.backups import cloudinary_is_configured

    choice = ops_setting("BACKUP_REPOSITORY")
    return str(choice or ("cloudinary" if cloudinary_is_configured() else "local"))


@register(Tags.compatibility, deploy=True)
def check_backup_repository(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if not _production():
        return messages
    choice = _repository_choice()
    if choice == "local":
        messages.append(
            Warning(
                "Backups are written to this machine's local disk in production.",
                hint=(
                    "A container's disk (Render's, Heroku's) is gone at the next deploy. Set Cloudinary "
                    "credentials (CLOUDINARY_URL) or OPS['BACKUP_REPOSITORY'] = 'storage:<alias>'."
                ),
                id="ops.W001",
            )
        )
        return messages
    try:
        encrypted = encryption_keys_from_environment() is not None
    except OpsError as error:
        messages.append(Warning(f"Backup encryption is misconfigured: {error}", id="ops.W003"))
        return messages
    if not encrypted:
        messages.append(
            Warning(
                "Backups leave this machine unencrypted, with whatever personal data the database holds.",
                hint=(
                    "Create a key pair with `age-keygen -o key.txt`, keep key.txt off the server, and "
                    "set BACKUP_AGE_RECIPIENTS to the public key it prints (age1...)."
                ),
                id="ops.W002",
            )
        )
    return messages


@register(Tags.compatibility)
def check_moved_paths(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Settings naming a module of ops from before its wings: the site would fail to start."""
    messages: list[CheckMessage] = []
    health_check_paths = [
        entry if isinstance(entry, str) else entry[0] for entry in ops_setting("HEALTH_CHECKS")
    ]
    named = [("MIDDLEWARE", path) for path in getattr(settings, "MIDDLEWARE", [])]
    named += [("OPS['HEALTH_CHECKS']", path) for path in health_check_paths]
    named.append(("ROOT_URLCONF", getattr(settings, "ROOT_URLCONF", "")))
    for setting, path in named:
        new_path = moved_path(path)
        if new_path:
            messages.append(
                Error(
                    f"{setting} names {path!r}, which has moved.", hint=f"Write {new_path!r}.", id="ops.E010"
                )
            )
    return messages
