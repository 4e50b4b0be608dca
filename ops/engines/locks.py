"""The one lock that keeps a restore and other whole-database writers (normalize_media_urls --apply) apart.

A repair that writes while a restore runs writes into tables the restore is about to replace: its
writes are lost or, worse, land in the old rows and come back half-applied. So both take the same
lock for as long as they write:

- PostgreSQL: the restore's session-level advisory lock (``pg_load.restore_lock``'s key, one per
  database name). The server drops it if the holder dies.
- SQLite: an exclusive ``flock`` on ``<database file>.ops-lock`` beside the database (the restore
  swaps the database file itself, so the lock cannot live in it). The kernel drops it if the
  holder dies.

A restore waits ``RESTORE_LOCK_TIMEOUT`` seconds and gives up (``pg_load.RestoreLocked``); a
repair waits as long as it takes, saying so first, or refuses at once (``wait=False``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.db.backends.base.base import BaseDatabaseWrapper

from ops.engines.pg_load import RestoreLocked, restore_lock_key
from ops.engines.sqlite_load import database_file
from ops.errors import OpsError


class DatabaseBusy(OpsError):
    """A restore (or another repair) holds the database's lock and the caller would not wait."""


def sqlite_lock_path(connection: BaseDatabaseWrapper) -> Path:
    target = database_file(connection)
    return target.with_name(f"{target.name}.ops-lock")


def _label(connection: BaseDatabaseWrapper) -> str:
    name = str(connection.settings_dict.get("NAME") or connection.alias)
    return Path(name).name if connection.vendor == "sqlite" else name


@contextlib.contextmanager
def exclusive_writer(
    connection: BaseDatabaseWrapper,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    what: str = "this command",
) -> Iterator[None]:
    """Hold the restore lock of ``connection``'s database while the block runs.

    Free: taken at once. Held: ``wait`` False raises DatabaseBusy; else ``on_wait`` gets one line
    saying what is awaited, and this blocks until the holder is done.
    """
    label = _label(connection)
    busy = f"A restore of database {label!r} is running (or another writer holds its lock)"
    if connection.vendor == "postgresql":
        key = restore_lock_key(connection)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            (taken,) = cursor.fetchone()
            if not taken:
                if not wait:
                    raise DatabaseBusy(f"{busy}. Nothing was written; run {what} again once it has finished.")
                if on_wait is not None:
                    on_wait(
                        f"{busy}; waiting for it to finish before writing (Ctrl-C stops, nothing written)."
                    )
                # Session level and without lock_timeout: a restore may take many minutes.
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            yield
        finally:
            with contextlib.suppress(Exception), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    if connection.vendor == "sqlite":
        with _flock(sqlite_lock_path(connection)) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise DatabaseBusy(
                        f"{busy}. Nothing was written; run {what} again once it has finished."
                    ) from None
                if on_wait is not None:
                    on_wait(
                        f"{busy}; waiting for it to finish before writing (Ctrl-C stops, nothing written)."
                    )
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        return
    # Engines the toolkit cannot restore into have no restore to keep apart from.
    yield


@contextlib.contextmanager
def sqlite_restore_lock(connection: BaseDatabaseWrapper, timeout: float) -> Iterator[None]:
    """The SQLite side of the restore lock: waited for ``timeout`` s, like PostgreSQL's."""
    deadline = time.monotonic() + timeout
    with _flock(sqlite_lock_path(connection)) as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RestoreLocked(
                        f"Another restore of database {_label(connection)!r} is running (or "
                        f"normalize_media_urls --apply is writing to it); this one waited {timeout:g} s "
                        "for it. Try again once it has finished."
                    ) from None
                time.sleep(0.2)
        yield


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[int]:
    # The lock is the open file's: closing it (or the process dying) releases it.
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        yield handle
    finally:
        os.close(handle)
