"""System checks (``manage.py check``) for settings that would quietly lose or leak backups."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from ops.conf import ops_setting
from ops.encryption import encryption_keys_from_environment
from ops.errors import OpsError


def _production() -> bool:
    return not settings.DEBUG or bool(os.environ.get("RENDER"))


def _repository_choice() -> str:
    from ops.repository import cloudinary_is_configured

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
                    "An instance's disk is gone at the next deploy on Render. Set Cloudinary "
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
                "Backups leave this machine unencrypted; they hold children's and parents' personal data.",
                hint=(
                    "Create a key pair with `age-keygen -o key.txt`, keep key.txt off the server, and "
                    "set BACKUP_AGE_RECIPIENTS to the public key it prints (age1...)."
                ),
                id="ops.W002",
            )
        )
    return messages
