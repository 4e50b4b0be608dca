"""Extra DATABASES aliases for one test: a scratch SQLite file, a stoppable or hung PostgreSQL.

Added to (and removed from) Django's connection handler directly: DATABASES cannot be overridden
with override_settings, and the suite's own "sqlite" alias must keep its name for other tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from django.db import connections


@contextlib.contextmanager
def extra_database(alias: str, entry: dict[str, object]) -> Iterator[str]:
    configured = connections.configure_settings(
        {"default": dict(connections.settings["default"]), alias: entry}
    )
    connections.settings[alias] = configured[alias]
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def sqlite_entry(path: Path) -> dict[str, object]:
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
