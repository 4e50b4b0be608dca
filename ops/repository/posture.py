"""Whether backups would be lost or leaked as configured: ops.W001-W003, decided in one place.

``check --deploy`` (ops/checks.py) reports them as system checks, but nothing on Render runs it.
So ``backup`` prints them beside its summary and the ``backup_repository`` health check
(ops/health/checks.py) warns with them: the same verdicts, from this one function.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings

from ops.conf import ops_setting
from ops.errors import OpsError
from ops.repository.encryption import encryption_keys_from_environment


@dataclass(frozen=True)
class RepositoryConcern:
    """One way backups would be lost or leaked: a system check's id, message and hint."""

    id: str
    message: str
    hint: str | None = None

    def text(self) -> str:
        """One line for people: the message, the hint, the id (to look up or silence)."""
        hint = f" {self.hint}" if self.hint else ""
        return f"{self.message}{hint} ({self.id})"


def in_production() -> bool:
    return not settings.DEBUG or bool(os.environ.get("RENDER"))


def repository_choice() -> str:
    from ops.repository.backups import cloudinary_is_configured

    choice = ops_setting("BACKUP_REPOSITORY")
    return str(choice or ("cloudinary" if cloudinary_is_configured() else "local"))


def repository_concerns(*, honour_silenced: bool = True) -> list[RepositoryConcern]:
    """What is wrong with where and how backups are written, in production (empty: nothing).

    ``honour_silenced``: leave out the ids in SILENCED_SYSTEM_CHECKS, as ``check`` does (a site
    with a persistent disk silences ops.W001 once, everywhere).
    """
    concerns = _concerns() if in_production() else []
    if honour_silenced:
        silenced = set(getattr(settings, "SILENCED_SYSTEM_CHECKS", []))
        concerns = [concern for concern in concerns if concern.id not in silenced]
    return concerns


def _concerns() -> list[RepositoryConcern]:
    if repository_choice() == "local":
        return [
            RepositoryConcern(
                "ops.W001",
                "Backups are written to this machine's local disk in production.",
                "A container's disk (Render's, Heroku's) is gone at the next deploy. Set Cloudinary "
                "credentials (CLOUDINARY_URL) or OPS['BACKUP_REPOSITORY'] = 'storage:<alias>'.",
            )
        ]
    try:
        encrypted = encryption_keys_from_environment() is not None
    except OpsError as error:
        return [RepositoryConcern("ops.W003", f"Backup encryption is misconfigured: {error}")]
    if encrypted:
        return []
    return [
        RepositoryConcern(
            "ops.W002",
            "Backups leave this machine unencrypted, with whatever personal data the database holds.",
            "Create a key pair with `age-keygen -o key.txt`, keep key.txt off the server, and "
            "set BACKUP_AGE_RECIPIENTS to the public key it prints (age1...).",
        )
    ]
