"""Backups: one consistent snapshot of the database, streamed into an archive (ops/archive/format.py).

PostgreSQL: one ``REPEATABLE READ, READ ONLY`` transaction (what pg_dump uses) sees every table
at one instant; each table is streamed with ``COPY ... TO STDOUT`` straight into the zstd
compressor, so memory does not grow with the database. No pg_dump binary is involved.

SQLite: the sqlite3 online-backup API copies the database into a private temporary file first,
and the tables are read from that copy (a consistent snapshot even while the site writes); rows
are encoded to PostgreSQL's COPY text in Python (ops/archive/copy_text.py), so both engines write one
format.

Where it goes: the configured repository (ops/repository/backups.py, parts + manifest written last, age-
encrypted when keys are configured), one file (``-o PATH``, temp file + fsync + rename), or a
stream (``-o -``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

import django
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from pyrage import x25519

from ops.archive.copy_text import encode_rows
from ops.archive.files import atomic_file, output_path
from ops.archive.format import ArchiveWriter, Column, Manifest, TableEntry, Writable
from ops.conf import ops_setting
from ops.engines.pg_load import quote_ident
from ops.engines.tables import ModelTable, model_tables
from ops.errors import OpsConfigurationError, OpsError, redact
from ops.media.backup import MediaOptions, recording_media
from ops.progress import ProgressCallback, TableProgress, no_progress
from ops.repository.backups import (
    BackupRepository,
    configured_repository,
    local_backup_folder,
    new_backup_name,
)
from ops.repository.encryption import encrypting, encryption_keys_from_environment, prepare_encryption
from ops.repository.posture import repository_concerns

_COPY_BUFFER = 1024 * 1024
_SQLITE_BATCH = 2000


@dataclass(frozen=True)
class BackupResult:
    name: str
    location: str
    size: int
    tables: int
    rows: int
    seconds: float
    holds_data: bool
    encrypted: bool
    # True: the database held no user data and nothing was written (``skip_empty``); see message.
    skipped: bool = False
    message: str = ""
    # Repository backups: how they would be lost or leaked as configured (ops.W001-W003).
    warnings: tuple[str, ...] = ()
    # Repository backups: the media manifest's counts (ops/media/backup.py), None otherwise.
    media: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "size": self.size,
            "tables": self.tables,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "holds_data": self.holds_data,
            "encrypted": self.encrypted,
            "skipped": self.skipped,
            "message": self.message,
            "media": self.media,
            "warnings": list(self.warnings),
        }


class EmptyDatabase(OpsError):
    """The database holds no user data, and the backup was asked to hold some."""


def tables_hold_user_data(database: str, tables: Sequence[ModelTable]) -> bool:
    """Whether any of ``tables`` that counts as user data has a row: one ``LIMIT 1`` query each."""
    connection = connections[database]
    try:
        with connection.cursor() as cursor:
            existing = set(connection.introspection.table_names(cursor))
            for table in tables:
                if table.name in existing and table.holds_user_data:
                    quoted = connection.ops.quote_name(table.name)
                    cursor.execute(f"SELECT 1 FROM {quoted} LIMIT 1")  # noqa: S608 (quoted identifier)
                    if cursor.fetchone():
                        return True
    except (DatabaseError, sqlite3.Error) as error:
        raise OpsError(f"Reading the database failed: {redact(str(error).strip())}") from None
    return False


def check_supported(connection: BaseDatabaseWrapper) -> None:
    if connection.vendor not in ("postgresql", "sqlite"):
        raise OpsConfigurationError(
            f"Backups support PostgreSQL and SQLite; database {connection.alias!r} is {connection.vendor}."
        )


def _applied_migrations(cursor: Any, existing: set[str]) -> dict[str, list[str]]:
    if "django_migrations" not in existing:
        return {}
    cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
    applied: dict[str, list[str]] = {}
    for app, name in cursor.fetchall():
        applied.setdefault(str(app), []).append(str(name))
    return applied


def _columns(table: ModelTable, names: Sequence[str]) -> tuple[Column, ...]:
    types = table.field_types()
    return tuple(Column(name, types.get(name)) for name in names)


def _report(progress: ProgressCallback, index: int, total: int, entry: TableEntry) -> None:
    progress(TableProgress("backup", entry.name, index, total, entry.rows))


def _postgres_tables(
    connection: BaseDatabaseWrapper,
    writer: ArchiveWriter,
    tables: Sequence[ModelTable],
    progress: ProgressCallback,
) -> tuple[dict[str, list[str]], str]:
    with connection.cursor() as cursor:
        raw = cursor.cursor
        cursor.execute("SHOW server_version")
        version = str(cursor.fetchone()[0])
        existing = set(connection.introspection.table_names(cursor))
        migrations = _applied_migrations(cursor, existing)
        present = [table for table in tables if table.name in existing]
        for index, table in enumerate(present, start=1):
            quoted = quote_ident(table.name)
            # Generated columns are computed by the server: they can be neither copied in nor out.
            cursor.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                [quoted],
            )
            names = [str(row[0]) for row in cursor.fetchall()]
            section = writer.begin_table(table.name, _columns(table, names), table.label)
            column_list = ", ".join(quote_ident(name) for name in names)
            raw.copy_expert(f"COPY {quoted} ({column_list}) TO STDOUT", section.data, _COPY_BUFFER)
            _report(progress, index, len(present), section.end(raw.rowcount))
    return migrations, version


def _sqlite_tables(
    snapshot: sqlite3.Connection,
    writer: ArchiveWriter,
    tables: Sequence[ModelTable],
    progress: ProgressCallback,
) -> tuple[dict[str, list[str]], str]:
    cursor = snapshot.cursor()
    existing = {str(row[0]) for row in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    migrations = _applied_migrations(cursor, existing)
    present = [table for table in tables if table.name in existing]
    for index, table in enumerate(present, start=1):
        quoted = '"' + table.name.replace('"', '""') + '"'
        names = [str(row[1]) for row in cursor.execute(f"PRAGMA table_info({quoted})")]
        section = writer.begin_table(table.name, _columns(table, names), table.label)
        column_list = ", ".join('"' + name.replace('"', '""') + '"' for name in names)
        rows = 0
        cursor.execute(f"SELECT {column_list} FROM {quoted}")  # noqa: S608 (quoted identifiers)
        while batch := cursor.fetchmany(_SQLITE_BATCH):
            section.data.write(encode_rows(batch))
            rows += len(batch)
        _report(progress, index, len(present), section.end(rows))
    return migrations, sqlite3.sqlite_version


@contextlib.contextmanager
def _sqlite_snapshot(connection: BaseDatabaseWrapper) -> Iterator[sqlite3.Connection]:
    connection.ensure_connection()
    with tempfile.TemporaryDirectory(prefix="ops-backup-") as folder:
        snapshot = sqlite3.connect(os.path.join(folder, "snapshot.sqlite3"))
        try:
            connection.connection.backup(snapshot)
            yield snapshot
        finally:
            snapshot.close()


def write_archive(
    database: str,
    sink: Writable,
    tables: Sequence[ModelTable],
    *,
    progress: ProgressCallback = no_progress,
    in_transaction: bool = False,
) -> Manifest:
    """Write the archive of ``tables`` of ``database`` to ``sink`` and return its manifest.

    ``in_transaction``: the caller already holds the snapshot to read (a restore's safety backup
    reads inside its own REPEATABLE READ transaction).
    """
    connection = connections[database]
    check_supported(connection)
    writer = ArchiveWriter(sink, level=int(ops_setting("BACKUP_COMPRESSION_LEVEL")))
    created_at = dt.datetime.now(dt.UTC)
    try:
        if connection.vendor == "sqlite":
            with _sqlite_snapshot(connection) as snapshot:
                migrations, version = _sqlite_tables(snapshot, writer, tables, progress)
        elif in_transaction or connection.in_atomic_block:
            migrations, version = _postgres_tables(connection, writer, tables, progress)
        else:
            with transaction.atomic(using=database):
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                migrations, version = _postgres_tables(connection, writer, tables, progress)
    except (DatabaseError, sqlite3.Error) as error:
        raise OpsError(f"Reading the database failed: {redact(str(error).strip())}") from None
    by_name = {table.name: table for table in tables}
    manifest = Manifest(
        created_at=created_at,
        vendor=connection.vendor,
        server_version=version,
        django_version=django.get_version(),
        migrations=migrations,
        holds_data=any(entry.rows and by_name[entry.name].holds_user_data for entry in writer.tables),
        tables=writer.tables,
    )
    writer.finish(manifest)
    return manifest


class _CountingWriter:
    def __init__(self, sink: Writable) -> None:
        self._sink = sink
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.size += len(data)
        return len(data)


def backup_to_repository(
    database: str,
    repository: BackupRepository,
    tables: Sequence[ModelTable],
    *,
    reason: str,
    progress: ProgressCallback = no_progress,
    in_transaction: bool = False,
    require_data: bool = False,
    media: MediaOptions | None = None,
) -> tuple[str, Manifest, bool]:
    """A named backup in ``repository`` (encrypted when keys are configured): name, manifest, encrypted.

    ``require_data``: if the snapshot turns out to hold no user data, raise EmptyDatabase and leave
    nothing in the repository (the verdict of the snapshot itself, not of an earlier look).
    ``media``: also record the media files the database references (ops/media/backup.py).
    """
    name = new_backup_name(reason)
    keys = encryption_keys_from_environment()
    prepared = prepare_encryption(keys) if keys is not None else None
    encryption = (
        None if prepared is None else ("age-passphrase" if prepared.wrapped_identity else "age-x25519")
    )
    wrapped = prepared.wrapped_identity if prepared is not None else None
    recipients = prepared.recipients if prepared is not None else None
    with (
        repository.create(name, encryption=encryption, wrapped_identity=wrapped) as backup,
        recording_media(database, repository, backup, name, recipients, media),
    ):
        # The seam for encryption: archive bytes -> (age) -> repository parts.
        if prepared is None:
            manifest = write_archive(
                database, backup, tables, progress=progress, in_transaction=in_transaction
            )
        else:
            with encrypting(cast(IO[bytes], backup), prepared.recipients) as encrypted:
                manifest = write_archive(
                    database, encrypted, tables, progress=progress, in_transaction=in_transaction
                )
        if require_data and not manifest.holds_data:
            # Raised inside the block: the repository removes the parts already written.
            raise EmptyDatabase(f"The snapshot of database {database!r} holds no user data.")
        backup.summary.update(manifest.summary(), reason=reason)
    return name, manifest, prepared is not None


def run_backup(
    database: str = "default",
    *,
    output: str | None = None,
    stream: Writable | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    reason: str = "manual",
    progress: ProgressCallback = no_progress,
    skip_empty: bool = False,
    with_media: bool = False,
    overwrite: bool = False,
    encrypt: bool = True,
) -> BackupResult:
    """Back up ``database``: to the configured repository, to file ``output``, or to ``stream`` (``-o -``).

    ``skip_empty``: when the database holds no user data, write nothing to the repository and
    return a result with ``skipped`` set. When Render recreates an expired database, the next
    backups are of an empty database; they must not become what ``restore --latest`` finds nor
    take retention slots. Files and streams (``-o``) are always written: the caller chose them.
    Repository backups also record the media files referenced; ``with_media`` stores them too.
    ``overwrite``: ``-o PATH`` may replace an existing regular file (ops/archive/files.py).
    ``encrypt``: files and streams are encrypted when age recipients are configured (False: never);
    ``message`` then says whether the file is encrypted.
    """
    started = time.monotonic()
    check_supported(connections[database])
    tables = model_tables(database, include=include, exclude=exclude)
    to_repository = output is None and stream is None
    # A cheap look first (one LIMIT 1 query per table), so an empty database costs no upload.
    warnings = tuple(concern.text() for concern in repository_concerns()) if to_repository else ()
    if skip_empty and to_repository and not tables_hold_user_data(database, tables):
        return dataclasses.replace(_skipped(database, started), warnings=warnings)
    media: dict[str, Any] | None = None
    message = ""
    if output == "-" or stream is not None:
        if stream is None:
            raise OpsConfigurationError("-o - needs a stream to write to.")
        recipients, message = _file_encryption(encrypt)
        counter = _CountingWriter(stream)
        name = new_backup_name(reason)
        manifest = _write_file(database, counter, tables, recipients, progress)
        location, size, encrypted = "standard output", counter.size, recipients is not None
    elif output is not None:
        recipients, message = _file_encryption(encrypt)
        name = new_backup_name(reason)
        path = output_path(output, name, replace=overwrite, forbidden=(local_backup_folder(),))
        with atomic_file(path, replace=overwrite) as handle:
            counter = _CountingWriter(handle)
            manifest = _write_file(database, counter, tables, recipients, progress)
        location, size, encrypted, name = str(path), counter.size, recipients is not None, path.name
    else:
        repository = configured_repository(database)
        try:
            name, manifest, encrypted = backup_to_repository(
                database,
                repository,
                tables,
                reason=reason,
                progress=progress,
                require_data=skip_empty,
                media=MediaOptions(with_files=with_media),
            )
        except EmptyDatabase:
            # Emptied between the look and the snapshot: the snapshot's verdict stands.
            return dataclasses.replace(_skipped(database, started), warnings=warnings)
        info = repository.info(name)
        location, size, media = repository.description, info.size, info.summary.get("media")
    return BackupResult(
        name=name,
        location=location,
        size=size,
        tables=len(manifest.tables),
        rows=manifest.rows,
        seconds=time.monotonic() - started,
        holds_data=manifest.holds_data,
        encrypted=encrypted,
        media=media,
        message=message,
        warnings=warnings,
    )


def _file_encryption(encrypt: bool) -> tuple[tuple[x25519.Recipient, ...] | None, str]:
    """The recipients a file or stream (``-o``) is encrypted to, or None and why it is not.

    Files leave the repository's protection as easily as backups leave the server: with recipients
    configured they are encrypted too, unless the caller opts out (``--no-encrypt``) explicitly.
    """
    if not encrypt:
        return None, "NOT encrypted (--no-encrypt)"
    keys = encryption_keys_from_environment()
    if keys is None:
        return None, (
            f"NOT encrypted: no age recipients are configured ({ops_setting('ENCRYPTION_RECIPIENTS_ENV')})"
        )
    if not keys.recipients:
        # Passphrase mode stores each backup's key beside it; a single file has no "beside".
        raise OpsConfigurationError(
            "Backups are encrypted with a passphrase, which a single file (-o) cannot carry. "
            f"Set age recipients ({ops_setting('ENCRYPTION_RECIPIENTS_ENV')}), back up into the "
            "repository, or pass --no-encrypt to write the file in plaintext."
        )
    return keys.recipients, f"encrypted to {len(keys.recipients)} age recipient(s)"


def _write_file(
    database: str,
    sink: _CountingWriter,
    tables: Sequence[ModelTable],
    recipients: tuple[x25519.Recipient, ...] | None,
    progress: ProgressCallback,
) -> Manifest:
    if recipients is None:
        return write_archive(database, sink, tables, progress=progress)
    with encrypting(cast(IO[bytes], sink), recipients) as encrypted:
        return write_archive(database, encrypted, tables, progress=progress)


def _skipped(database: str, started: float) -> BackupResult:
    connection = connections[database]
    label = str(connection.settings_dict.get("NAME") or database)
    if connection.vendor == "sqlite":
        label = os.path.basename(label)
    message = (
        f"Database {label} holds no user data: backup skipped, so that a backup of an empty "
        "database never becomes what `restore --latest` picks (a recreated database?). "
        "Use --force to back it up anyway."
    )
    return BackupResult(
        name="",
        location="",
        size=0,
        tables=0,
        rows=0,
        seconds=time.monotonic() - started,
        holds_data=False,
        encrypted=False,
        skipped=True,
        message=message,
    )
