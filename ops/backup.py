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
import hashlib
import os
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast

import django
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from pyrage import x25519

from ops.alerts import note_backup_skipped
from ops.archive.copy_text import encode_rows
from ops.archive.files import atomic_file, output_path
from ops.archive.format import ArchiveWriter, Column, Manifest, TableEntry, Writable
from ops.command import is_connection_error, unusable_database_text
from ops.conf import ops_setting
from ops.engines import pg_copy, pg_schema
from ops.engines.migration_state import squashed_applied
from ops.engines.pg_load import quote_ident
from ops.engines.tables import ModelTable, model_tables
from ops.errors import OpsConfigurationError, OpsError, redact
from ops.progress import ProgressCallback, TableProgress, no_progress
from ops.repository.backups import (
    FULL,
    PARTIAL,
    SAFETY,
    BackupRepository,
    configured_repository,
    local_backup_folder,
    new_backup_name,
)
from ops.repository.encryption import encrypting, encryption_keys_from_environment, prepare_encryption
from ops.repository.listing import human_size
from ops.repository.posture import repository_concerns
from ops.repository.signing import signing_key_from_environment

if TYPE_CHECKING:  # imported where used: a restore, or a backup to a file, needs no media code
    from ops.media.backup import MediaOptions

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
    # full, or partial (--include/--exclude): a partial backup restores only its own tables.
    kind: str = FULL
    signed: bool = False

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
            "kind": self.kind,
            "signed": self.signed,
            "warnings": list(self.warnings),
        }

    def summary_line(self) -> str:
        """What `backup` says when it is done (text format, verbosity 1+)."""
        from ops.media.backup import recorded_media_text

        media = f"; {recorded_media_text(self.media)}" if self.media and self.media["files"] else ""
        if self.kind == PARTIAL:
            media += "; partial: it restores only its own tables, and --latest never picks it"
        # -o: whether the file is encrypted, in the line people read (``run_backup`` says why).
        note = f"; {self.message}" if self.message else ""
        return (
            f"Backup {self.name}: {human_size(self.size)}, {self.tables} tables, "
            f"{self.rows:,} rows in {self.seconds:.1f} s ({self.location}){media}{note}."
        )


def check_backup_options(
    *,
    list_backups: bool,
    verify: str | None,
    prune_only: bool,
    output: str | None,
    dry_run: bool,
    prune: bool,
    with_media: bool,
    encrypt: bool,
    latest: bool,
    include_empty: bool,
) -> None:
    """Refuse the combinations of `backup`'s options that make no sense (exit 2), before any work."""
    chosen = {"--list": list_backups, "--verify": verify is not None, "--prune-only": prune_only}
    modes = [flag for flag, on in chosen.items() if on]
    if len(modes) > 1 or (modes and output is not None):
        taken = [*modes, "-o"] if output is not None else modes
        raise OpsConfigurationError(f"{' and '.join(taken)} cannot be combined: choose one.")
    if dry_run and not (prune or prune_only):
        raise OpsConfigurationError("--dry-run goes with --prune or --prune-only.")
    if prune and (modes or output is not None):
        raise OpsConfigurationError("--prune prunes the repository after a backup into it: drop -o.")
    if with_media and (modes or output is not None):
        raise OpsConfigurationError(
            "--with-media stores the files beside a backup in the repository: drop -o, --list, "
            "--verify and --prune-only."
        )
    if not encrypt and output is None:
        raise OpsConfigurationError("--no-encrypt goes with -o (repository backups follow its policy).")
    if latest and verify is None:
        raise OpsConfigurationError("--latest goes with --verify (restore --latest restores).")
    if include_empty and not latest:
        raise OpsConfigurationError("--include-empty goes with --verify --latest.")
    if verify is not None and bool(verify) == latest:
        raise OpsConfigurationError("Name the backup to verify, or use --latest, not both.")


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
        if is_connection_error(error):
            # The start command's first question: say which database cannot be reached, and why.
            raise OpsError(redact(unusable_database_text(error, database))) from None
        raise OpsError(f"Reading the database failed: {redact(str(error).strip())}") from None
    return False


class UnsafeWrite(OpsConfigurationError):
    """Writing this backup would break the repository's encryption policy."""


def check_write_policy(repository: BackupRepository, encrypted: bool, what: str = "This backup") -> None:
    """Refuse an unencrypted write into a repository that holds encrypted backups.

    Such a repository holds personal data only as ciphertext; one plaintext backup in it (a
    laptop's safety backup, a cron job that lost its variable) would undo that.
    """
    if encrypted:
        return
    held = repository.encrypted_backup()
    if held is not None:
        variable = ops_setting("ENCRYPTION_RECIPIENTS_ENV")
        raise UnsafeWrite(
            f"{what} would be written unencrypted into the {repository.description}, which holds "
            f"encrypted backups ({held}): {variable} is not set here. Set {variable} to the "
            "repository's age public key(s) (`age-keygen -y key.txt` prints yours), or use another "
            "repository (OPS['BACKUP_REPOSITORY'] / OPS['BACKUP_NAMESPACE']). Nothing was written."
        )


def backup_source(database: str) -> dict[str, Any]:
    """Where a backup is taken: engine, database name and a fingerprint of the server and database.

    The fingerprint is a hash of the engine, host, port and name (SQLite: this machine's name and
    the file's path): no user, no password, nothing that opens the database. It tells one
    database's safety backups from another's that share a repository.
    """
    connection = connections[database]
    settings = connection.settings_dict
    name = str(settings.get("NAME") or database)
    if connection.vendor == "sqlite":
        where = [socket.gethostname(), os.path.abspath(name)]
        label = os.path.basename(name)
    else:
        where = [str(settings.get("HOST") or "local"), str(settings.get("PORT") or ""), name]
        label = name
    digest = hashlib.sha256("\0".join([connection.vendor, *where]).encode()).hexdigest()[:16]
    return {"engine": connection.vendor, "database": label, "fingerprint": digest}


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


@dataclass(frozen=True)
class _Snapshot:
    migrations: dict[str, list[str]]
    version: str
    # The recorded schema (whole-database PostgreSQL backups), None otherwise.
    schema: pg_schema.RecordedSchema | None = None


def _postgres_tables(
    connection: BaseDatabaseWrapper,
    writer: ArchiveWriter,
    tables: Sequence[ModelTable],
    progress: ProgressCallback,
    whole: bool,
) -> _Snapshot:
    with connection.cursor() as cursor:
        raw = cursor.cursor
        cursor.execute("SHOW server_version")
        version = str(cursor.fetchone()[0])
        existing = set(connection.introspection.table_names(cursor))
        migrations = _applied_migrations(cursor, existing)
        present: list[tuple[str, ModelTable | None]] = [(t.name, t) for t in tables if t.name in existing]
        schema = None
        if whole:
            try:
                schema = pg_schema.record(cursor)
            except pg_schema.SchemaNotRecordable:
                # Restored by the migration path, as a backup of the previous format: model tables only.
                schema = None
            else:
                # Every table of the schema, not only the models': RunSQL's, uninstalled apps',
                # django_migrations (rows of apps this code may no longer have).
                held = {name for name, _ in present}
                present += [(name, None) for name in schema.tables if name not in held]
        for index, (name, table) in enumerate(present, start=1):
            quoted = quote_ident(name)
            # Generated columns are computed by the server: they can be neither copied in nor out.
            cursor.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                [quoted],
            )
            names = [str(row[0]) for row in cursor.fetchall()]
            columns = _columns(table, names) if table is not None else tuple(Column(n) for n in names)
            section = writer.begin_table(name, columns, table.label if table is not None else None)
            column_list = ", ".join(quote_ident(name) for name in names)
            # The raw driver cursor: its errors become Django's (DatabaseError) only through this.
            with connection.wrap_database_errors:
                rows = pg_copy.copy_to(raw, f"COPY {quoted} ({column_list}) TO STDOUT", section.data)
            _report(progress, index, len(present), section.end(rows))
    return _Snapshot(migrations, version, schema)


def _sqlite_tables(
    snapshot: sqlite3.Connection,
    writer: ArchiveWriter,
    tables: Sequence[ModelTable],
    progress: ProgressCallback,
) -> _Snapshot:
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
    return _Snapshot(migrations, sqlite3.sqlite_version)


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
    kind: str = FULL,
    whole: bool = False,
) -> Manifest:
    """Write the archive of ``tables`` of ``database`` to ``sink`` and return its manifest.

    ``in_transaction``: the caller already holds the snapshot to read (a restore's safety backup
    reads inside its own REPEATABLE READ transaction). ``kind``: recorded in the archive's
    manifest, so that a partial archive restores as one from a file too.
    ``whole``: on PostgreSQL, also record the schema (ops/engines/pg_schema.py) and back up every
    table of it, whether a model describes it or not.
    """
    connection = connections[database]
    check_supported(connection)
    writer = ArchiveWriter(sink, level=int(ops_setting("BACKUP_COMPRESSION_LEVEL")))
    created_at = dt.datetime.now(dt.UTC)
    try:
        if connection.vendor == "sqlite":
            with _sqlite_snapshot(connection) as snapshot:
                snap = _sqlite_tables(snapshot, writer, tables, progress)
        elif in_transaction or connection.in_atomic_block:
            snap = _postgres_tables(connection, writer, tables, progress, whole)
        else:
            with transaction.atomic(using=database):
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                snap = _postgres_tables(connection, writer, tables, progress, whole)
    except (DatabaseError, sqlite3.Error) as error:
        raise OpsError(f"Reading the database failed: {redact(str(error).strip())}") from None
    by_name = {table.name: table for table in tables}
    extra: dict[str, Any] = {}
    if snap.schema is not None:
        extra["schema"] = snap.schema.as_dict()
    squashed = squashed_applied(connection, snap.migrations)
    if squashed:
        extra["squashed"] = squashed
    manifest = Manifest(
        created_at=created_at,
        vendor=connection.vendor,
        server_version=snap.version,
        django_version=django.get_version(),
        migrations=snap.migrations,
        # Tables no model describes are not counted: a fresh ``migrate`` fills django_migrations.
        holds_data=any(
            entry.rows and entry.name in by_name and by_name[entry.name].holds_user_data
            for entry in writer.tables
        ),
        tables=writer.tables,
        extra={**extra, "kind": kind},
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
    kind: str = FULL,
    whole: bool = False,
) -> tuple[str, Manifest, bool]:
    """A named backup in ``repository`` (encrypted when keys are configured): name, manifest, encrypted.

    ``require_data``: if the snapshot turns out to hold no user data, raise EmptyDatabase and leave
    nothing in the repository (the verdict of the snapshot itself, not of an earlier look).
    ``media``: also record the media files the database references (ops/media/backup.py).
    ``kind``: full, partial or safety, recorded with the backup's source in its manifest, which is
    signed when a signing key is configured. An unencrypted write into a repository holding
    encrypted backups is refused (UnsafeWrite) before anything is written.
    """
    from ops.media.backup import recording_media

    name = new_backup_name(reason)
    keys = encryption_keys_from_environment()
    signing_key = signing_key_from_environment()
    check_write_policy(repository, keys is not None, "The safety backup" if kind == SAFETY else "This backup")
    prepared = prepare_encryption(keys) if keys is not None else None
    encryption = (
        None if prepared is None else ("age-passphrase" if prepared.wrapped_identity else "age-x25519")
    )
    wrapped = prepared.wrapped_identity if prepared is not None else None
    recipients = prepared.recipients if prepared is not None else None
    with (
        repository.create(
            name,
            encryption=encryption,
            wrapped_identity=wrapped,
            kind=kind,
            source=backup_source(database),
            signing_key=signing_key,
        ) as backup,
        recording_media(database, repository, backup, name, recipients, media),
    ):
        # The seam for encryption: archive bytes -> (age) -> repository parts.
        if prepared is None:
            manifest = write_archive(
                database,
                backup,
                tables,
                progress=progress,
                in_transaction=in_transaction,
                kind=kind,
                whole=whole,
            )
        else:
            with encrypting(cast(IO[bytes], backup), prepared.recipients) as encrypted:
                manifest = write_archive(
                    database,
                    encrypted,
                    tables,
                    progress=progress,
                    in_transaction=in_transaction,
                    kind=kind,
                    whole=whole,
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
    # Any selection makes a partial backup, even one that happens to leave nothing out today: the
    # next model added would be missing from it.
    kind = PARTIAL if include or exclude else FULL
    # A backup of part of the database (--include/--exclude) holds model tables only.
    whole = not include and not exclude
    to_repository = output is None and stream is None
    # A cheap look first (one LIMIT 1 query per table), so an empty database costs no upload.
    warnings = tuple(concern.text() for concern in repository_concerns()) if to_repository else ()
    if skip_empty and to_repository and not tables_hold_user_data(database, tables):
        return dataclasses.replace(_skipped(database, started), warnings=warnings)
    media: dict[str, Any] | None = None
    signed = False
    message = ""
    if output == "-" or stream is not None:
        if stream is None:
            raise OpsConfigurationError("-o - needs a stream to write to.")
        recipients, message = _file_encryption(encrypt)
        counter = _CountingWriter(stream)
        name = new_backup_name(reason)
        manifest = _write_file(database, counter, tables, recipients, progress, kind=kind, whole=whole)
        location, size, encrypted = "standard output", counter.size, recipients is not None
    elif output is not None:
        recipients, message = _file_encryption(encrypt)
        name = new_backup_name(reason)
        path = output_path(output, name, replace=overwrite, forbidden=(local_backup_folder(),))
        with atomic_file(path, replace=overwrite) as handle:
            counter = _CountingWriter(handle)
            manifest = _write_file(database, counter, tables, recipients, progress, kind=kind, whole=whole)
        location, size, encrypted, name = str(path), counter.size, recipients is not None, path.name
    else:
        from ops.media.backup import MediaOptions

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
                kind=kind,
                whole=whole,
            )
        except EmptyDatabase:
            # Emptied between the look and the snapshot: the snapshot's verdict stands.
            return dataclasses.replace(_skipped(database, started), warnings=warnings)
        info = repository.info(name)
        location, size, media = repository.description, info.size, info.summary.get("media")
        signed = info.signed
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
        kind=kind,
        signed=signed,
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
    *,
    kind: str,
    whole: bool,
) -> Manifest:
    if recipients is None:
        return write_archive(database, sink, tables, progress=progress, kind=kind, whole=whole)
    with encrypting(cast(IO[bytes], sink), recipients) as encrypted:
        return write_archive(database, encrypted, tables, progress=progress, kind=kind, whole=whole)


def _skipped(database: str, started: float) -> BackupResult:
    note_backup_skipped()  # no backup, so no heartbeat for the alert URL's dead man's switch
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
