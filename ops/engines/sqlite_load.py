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

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ops.archive.copy_text import decode_lines
from ops.archive.format import CorruptArchive, Manifest, Readable, iter_tables
from ops.engines.cross_engine import TableConverter
from ops.engines.migration_state import migrate_to_recorded
from ops.errors import OpsConfigurationError, OpsError
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
    *,
    under_lock: Callable[[], bool] = lambda: True,
    lock_timeout: float = 60.0,
) -> int | None:
    """Restore into ``connection``'s file; the rows loaded, or None when ``under_lock`` said stop.

    ``under_lock`` runs once writers are locked out and before anything is replaced (the safety
    backup, the emptiness check); the lock is held until the swap commits.
    """
    target = database_file(connection)
    temporary = target.with_name(f".{target.name}.restore-{secrets.token_hex(4)}")
    alias = f"ops-restore-{secrets.token_hex(4)}"
    connections.settings[alias] = {**connection.settings_dict, "NAME": str(temporary)}
    try:
        scratch = connections[alias]
        migrate_to_recorded(scratch, manifest.migrations)
        scratch.ensure_connection()
        scratch.connection.execute("PRAGMA foreign_keys = OFF")
        total = 0
        with transaction.atomic(using=alias), scratch.cursor() as cursor:
            for entry in manifest.tables:
                cursor.execute(f"DELETE FROM {_quote(entry.name)}")  # noqa: S608 (quoted identifier)
            for index, (entry, data) in enumerate(iter_tables(source, manifest), start=1):
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
                    raise CorruptArchive(
                        f"Table {entry.name} holds {loaded} rows, the archive lists {entry.rows}."
                    )
                total += loaded
                progress(TableProgress("load", entry.name, index, len(manifest.tables), loaded))
        scratch.close()
        if not _swap_in(target, temporary, under_lock, lock_timeout):
            return None
        connection.close()
        return total
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]
        temporary.unlink(missing_ok=True)


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
        # Indexes and triggers go with their tables.
        locker.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} main.{_quote(name)}")
    new = locker.execute(
        "SELECT type, name, sql FROM restored.sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END"
    ).fetchall()
    tables = [str(name) for kind, name, _ in new if kind == "table"]
    for kind, _, sql in new:
        if kind == "table":
            locker.execute(str(sql))  # unqualified: created in main
    for name in tables:
        quoted = _quote(name)
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
