"""SQLite side of a restore: build the restored database beside the old one, then swap the files.

The new file is migrated to the backup's state and loaded (prepared INSERTs in one transaction,
foreign-key checks off while loading), then renamed over the old file: readers see either the old
database or the new one, never a half-restored one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from ops.archive.copy_text import decode_lines
from ops.archive.format import CorruptArchive, Manifest, Readable, iter_tables
from ops.engines.cross_engine import TableConverter
from ops.engines.migration_state import migrate_to_recorded, standing_in
from ops.errors import OpsConfigurationError
from ops.progress import ProgressCallback, TableProgress

_BATCH = 2000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_file(connection: BaseDatabaseWrapper) -> Path:
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or "mode=memory" in name:
        raise OpsConfigurationError(
            f"Database {connection.alias!r} is in memory: there is no file to restore into."
        )
    return Path(name)


def restore_sqlite(
    connection: BaseDatabaseWrapper,
    source: Readable,
    manifest: Manifest,
    progress: ProgressCallback,
    convert: TableConverter | None = None,
    skip: frozenset[str] = frozenset(),
) -> int:
    """``skip``: tables a cross-engine restore leaves out (ops/engines/cross_engine.py)."""
    target = database_file(connection)
    temporary = target.with_name(f".{target.name}.restore-{secrets.token_hex(4)}")
    settings = {**connection.settings_dict, "NAME": str(temporary)}
    # The new file's connection stands in for the live alias while it is built: data migrations
    # writing through the default connection write into it, not into the live file.
    scratch = load_backend(str(settings["ENGINE"])).DatabaseWrapper(settings, connection.alias)
    try:
        with standing_in(scratch):
            total = _build(scratch, source, manifest, progress, convert, skip)
        scratch.close()
        connection.close()
        os.replace(temporary, target)
        return total
    finally:
        scratch.close()
        temporary.unlink(missing_ok=True)


def _build(
    scratch: BaseDatabaseWrapper,
    source: Readable,
    manifest: Manifest,
    progress: ProgressCallback,
    convert: TableConverter | None,
    skip: frozenset[str],
) -> int:
    migrate_to_recorded(scratch, manifest.migrations)
    scratch.ensure_connection()
    scratch.connection.execute("PRAGMA foreign_keys = OFF")
    with transaction.atomic(using=scratch.alias), scratch.cursor() as cursor:
        # The rows a trigger would write are in the backup already (a search index's FTS table,
        # filled by triggers on its base table): loading with the triggers in place would write
        # them twice. SQLite cannot disable a trigger, so they are dropped and re-created around
        # the load, in its transaction (pg_restore's --disable-triggers).
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL")
        triggers = [(str(name), str(sql)) for name, sql in cursor.fetchall()]
        for name, _ in triggers:
            cursor.execute(f"DROP TRIGGER {_quote(name)}")
        total = _load(cursor, source, manifest, progress, convert, skip)
        for _, sql in triggers:
            cursor.execute(sql)
    return total


def _load(
    cursor: Any,
    source: Readable,
    manifest: Manifest,
    progress: ProgressCallback,
    convert: TableConverter | None,
    skip: frozenset[str],
) -> int:
    total = 0
    for entry in manifest.tables:
        if entry.name not in skip:
            cursor.execute(f"DELETE FROM {_quote(entry.name)}")  # noqa: S608 (quoted identifier)
    for index, (entry, data) in enumerate(iter_tables(source, manifest), start=1):
        if entry.name in skip:
            continue
        binary = [column.type == "BinaryField" for column in entry.columns]
        columns = ", ".join(_quote(column.name) for column in entry.columns)
        marks = ", ".join("?" for _ in entry.columns)
        statement = f"INSERT INTO {_quote(entry.name)} ({columns}) VALUES ({marks})"  # noqa: S608
        rows = decode_lines(data if convert is None else convert(entry, data), binary)
        loaded = 0
        while True:
            batch = [row for _, row in zip(range(_BATCH), rows, strict=False)]
            if not batch:
                break
            cursor.connection.executemany(statement, batch)
            loaded += len(batch)
        if loaded != entry.rows:
            raise CorruptArchive(f"Table {entry.name} holds {loaded} rows, the archive lists {entry.rows}.")
        total += loaded
        progress(TableProgress("load", entry.name, index, len(manifest.tables), loaded))
    return total
