"""SQLite side of a restore: build the restored database beside the old one, then swap it in.

The new file is migrated to the backup's state and loaded (prepared INSERTs in one transaction,
foreign-key checks off while loading). Then one write transaction on the live file locks writers
out (readers go on), lets the caller take the safety backup, and replaces the live schema and rows
with the new file's: readers see either the old database or the new one, never a half-restored
one, and no committed write falls between the safety backup and the swap.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from ops.archive.copy_text import decode_lines
from ops.archive.format import CorruptArchive, Manifest, Readable, TableEntry, iter_tables
from ops.engines.cross_engine import TableConverter, TableStream
from ops.engines.migration_state import migrate_to_recorded, standing_in
from ops.errors import OpsConfigurationError, OpsError
from ops.progress import ProgressCallback, TableProgress

_BATCH = 2000


def quote(name: str) -> str:
    """An SQLite identifier, quoted."""
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
    *,
    under_lock: Callable[[], bool] = lambda: True,
    lock_timeout: float = 60.0,
) -> int | None:
    """Restore into ``connection``'s file; the rows loaded, or None when ``under_lock`` said stop.

    ``skip``: tables a cross-engine restore leaves out (ops/engines/cross_engine.py).
    ``under_lock`` runs once writers are locked out and before anything is replaced (the safety
    backup, the emptiness check); the lock is held until the swap commits.
    """
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
        if not _swap_in(target, temporary, under_lock, lock_timeout):
            return None
        connection.close()
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
            cursor.execute(f"DROP TRIGGER {quote(name)}")
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
            cursor.execute(f"DELETE FROM {quote(entry.name)}")  # noqa: S608 (quoted identifier)
    for index, (entry, data) in enumerate(iter_tables(source, manifest), start=1):
        if entry.name in skip:
            continue
        loaded = insert_rows(cursor, entry, data if convert is None else convert(entry, data))
        total += loaded
        progress(TableProgress("load", entry.name, index, len(manifest.tables), loaded))
    return total


def insert_rows(cursor: Any, entry: TableEntry, data: TableStream) -> int:
    """INSERT the COPY text ``data`` into ``entry``'s table, in batches; its row count checked."""
    binary = [column.type == "BinaryField" for column in entry.columns]
    columns = ", ".join(quote(column.name) for column in entry.columns)
    marks = ", ".join("?" for _ in entry.columns)
    statement = f"INSERT INTO {quote(entry.name)} ({columns}) VALUES ({marks})"  # noqa: S608
    rows = decode_lines(data, binary)
    loaded = 0
    while batch := [row for _, row in zip(range(_BATCH), rows, strict=False)]:
        cursor.connection.executemany(statement, batch)
        loaded += len(batch)
    if loaded != entry.rows:
        raise CorruptArchive(f"Table {entry.name} holds {loaded} rows, the archive lists {entry.rows}.")
    return loaded


def _swap_in(target: Path, built: Path, under_lock: Callable[[], bool], lock_timeout: float) -> bool:
    """Replace the contents of ``target`` with those of ``built``, in one write transaction on it.

    Not a rename of the file: connections the site holds open would go on writing into the old,
    unlinked file, and every row they committed after the swap would be lost. One transaction on
    the file itself, begun (IMMEDIATE: writers wait, readers go on) before ``under_lock`` takes
    the safety backup and committed once the new contents are in, leaves no write behind.
    """
    locker = sqlite3.connect(str(target), isolation_level=None, timeout=lock_timeout)
    try:
        # Attached before the transaction (ATTACH is refused inside one); fully built already.
        locker.execute("ATTACH DATABASE ? AS restored", [str(built)])
        try:
            locker.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise OpsError(
                f"Writers held database {target.name} for more than {lock_timeout:g} s, so the restore "
                f"could not take its safety backup; nothing was changed ({error})."
            ) from None
        try:
            if not under_lock():
                locker.execute("ROLLBACK")
                return False
            _replace_schema_and_rows(locker)
            locker.execute("COMMIT")
        except BaseException:
            if locker.in_transaction:
                locker.execute("ROLLBACK")
            raise
        locker.execute("DETACH DATABASE restored")
        return True
    finally:
        locker.close()


def _replace_schema_and_rows(locker: sqlite3.Connection) -> None:
    old = locker.execute(
        "SELECT type, name FROM main.sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' AND type IN ('view', 'table')"
    ).fetchall()
    for kind, name in old:
        # Indexes and triggers go with their tables; a virtual table (FTS) takes its shadow tables
        # with it, so those may be gone already when their turn comes.
        locker.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} IF EXISTS main.{quote(name)}")
    new = locker.execute(
        "SELECT type, name, sql FROM restored.sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END"
    ).fetchall()
    tables = [(str(name), str(sql)) for kind, name, sql in new if kind == "table"]
    virtual = {name for name, sql in tables if sql.upper().startswith("CREATE VIRTUAL TABLE")}
    # Virtual tables first: creating one creates its shadow tables, whose rows (the index itself)
    # are then copied like any table's; the virtual table's own rows live in those.
    for name, sql in sorted(tables, key=lambda table: table[0] not in virtual):
        found = locker.execute("SELECT count(*) FROM main.sqlite_master WHERE name = ?", [name])
        if found.fetchone()[0]:
            locker.execute(f"DELETE FROM main.{quote(name)}")  # noqa: S608 (quoted identifier)
        else:
            locker.execute(sql)  # unqualified: created in main
    for name, _ in tables:
        if name not in virtual:
            quoted = quote(name)
            locker.execute(f"INSERT INTO main.{quoted} SELECT * FROM restored.{quoted}")  # noqa: S608
    for kind, _, sql in new:
        if kind != "table":
            locker.execute(str(sql))
    has_sequence = locker.execute(
        "SELECT count(*) FROM restored.sqlite_master WHERE name = 'sqlite_sequence'"
    ).fetchone()[0]
    if has_sequence:
        locker.execute("DELETE FROM main.sqlite_sequence")
        locker.execute("INSERT INTO main.sqlite_sequence SELECT * FROM restored.sqlite_sequence")
