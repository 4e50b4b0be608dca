"""System checks (``manage.py check``) for settings that would quietly lose or leak backups."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from ops.conf import moved_path, ops_setting
from ops.repository.posture import repository_concerns


@register(Tags.compatibility, deploy=True)
def check_backup_repository(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # The verdicts are shared with `backup`'s output and the backup_repository health check;
    # the check framework applies SILENCED_SYSTEM_CHECKS itself.
    return [
        Warning(concern.message, hint=concern.hint, id=concern.id)
        for concern in repository_concerns(honour_silenced=False)
    ]


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
