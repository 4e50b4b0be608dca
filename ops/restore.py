"""Restores: verify the whole archive, then replace the database with it, all or nothing.

Order of work:

1. Find the archive (a backup in the repository by name, ``--latest``, a file, or ``-`` for
   stdin), bring it to a private seekable file (decrypting it if it is age-encrypted), and verify
   it entirely: format version, manifest, every checksum. Nothing is written before this passes.
2. Refuse a backup holding applied migrations of an installed app that this code neither has nor
   replaces (ops/engines/migration_state.py); name the apps not installed whose rows it carries.
   A recorded schema (ops/engines/pg_schema.py) has every definition checked here, before any write.
3. PostgreSQL, a backup with a recorded schema: take the advisory lock (one restore per database),
   rebuild that schema in a private schema and load it there on ``OPS["RESTORE_JOBS"]`` connections
   (ops/engines/pg_parallel.py ``build_recorded``: no migration replayed). Then in ONE transaction:
   check for user data (``--if-empty`` stops here), take a safety backup of the whole database, drop
   the tables the restore replaces (the backup's and the installed models'; any other is left alone
   and named), move the private schema's objects in, and migrate forward (step 4) in the same
   transaction when every migration to apply is atomic.
   PostgreSQL, a backup of the previous format, or across engines: the same, with the private
   schema built by migrations to the backup's recorded state; where the private schema cannot
   hold the backup, or with one job, that transaction does the whole load itself instead: migrate
   to exactly the recorded migrations, drop indexes and constraints, COPY every table in,
   re-create indexes and constraints, reset sequences.
   SQLite: build a new file beside the old one and swap it in (ops/engines/sqlite_load.py).
4. Migrate forward to the code's migrations (unless ``migrate=False``).

What is trusted (before step 1 reads any row): a backup in the repository must carry a valid
signature when ``BACKUP_SIGNING_KEY`` is set, and its data must be encrypted exactly when its
manifest says so (the checks of ``backup --verify``); with a decryption key configured, an
unencrypted archive is refused unless ``allow_unencrypted``. The safety backup obeys the
repository's encryption policy: when it cannot be written (plaintext into a repository of
encrypted backups), the restore stops before any change.

A partial backup (--include/--exclude) replaces only its own tables' rows
(ops/engines/partial_load.py); into a database without any table yet it restores as a full one.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from django.apps import apps
from django.core.management import call_command
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor

from ops.archive.format import Manifest, Readable, verify_archive
from ops.backup import (
    backup_source,
    backup_to_repository,
    check_supported,
    check_write_policy,
    tables_hold_user_data,
)
from ops.conf import ops_setting
from ops.engines import partial_load, pg_load, pg_parallel, pg_schema
from ops.engines.cross_engine import TableConverter, plan_conversion
from ops.engines.locks import sqlite_restore_lock
from ops.engines.migration_state import check_known, migrate_to_recorded
from ops.engines.sqlite_load import restore_sqlite
from ops.engines.tables import ModelTable, model_tables
from ops.errors import OpsConfigurationError, OpsError, redact
from ops.progress import ProgressCallback, TableProgress, no_progress
from ops.repository.backups import (
    PARTIAL,
    SAFETY,
    BackupNotFound,
    BackupRepository,
    CorruptBackup,
    configured_repository,
)
from ops.repository.encryption import (
    AGE_MAGIC,
    decrypting,
    decryption_configured,
    decryption_identities,
    encryption_keys_from_environment,
    is_age_encrypted,
)
from ops.repository.verify import check_authentic, check_encryption_claim

# Asked before replacing data: the database's name, and None for a full restore or the text
# saying which tables a partial one replaces (and that the others stay as they are).
Confirm = Callable[[str, str | None], bool]


class RestoreCancelled(OpsError):
    pass


@dataclass(frozen=True)
class RestoreResult:
    name: str
    database: str
    tables: int
    rows: int
    seconds: float
    # False: --if-empty found data and left the database alone.
    restored: bool
    message: str = ""
    safety_backup: str | None = None
    migrated_forward: int = 0
    # Connections that loaded it (OPS["RESTORE_JOBS"], or 1 where the load could not be parallel).
    jobs: int = 1
    # Not restored, and worth a look: --if-empty --latest found no backup to restore.
    warning: bool = False
    # A partial backup: which tables it replaced (every other table was left as it was).
    partial: str | None = None
    # Lines for the summary: tables left alone or kept, history of apps not installed.
    notes: tuple[str, ...] = ()

    def summary_line(self) -> str:
        """What `restore` says when it restored (text format, verbosity 1+)."""
        safety = f"; safety backup {self.safety_backup}" if self.safety_backup else ""
        partial = f" (partial backup: {self.partial})" if self.partial else ""
        return (
            f"Restored {self.name} into {self.database}: {self.tables} tables, "
            f"{self.rows:,} rows in {self.seconds:.1f} s{safety}{partial}."
        )

    # Said on stderr whatever the outcome: a damaged newer backup passed over by --latest.
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "database": self.database,
            "restored": self.restored,
            "tables": self.tables,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "safety_backup": self.safety_backup,
            "jobs": self.jobs,
            "message": self.message,
            "partial": self.partial,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


def check_restore_options(
    *,
    source: str | None,
    latest: bool,
    undo: bool,
    if_empty: bool,
    include_empty: bool,
    media: bool,
    media_only: bool,
    dry_run: bool,
) -> None:
    """Refuse the combinations of `restore`'s options that make no sense (exit 2), before any work."""
    chosen = [bool(source), latest, undo].count(True)
    if chosen == 0:
        raise OpsConfigurationError(
            "Name a backup (`backup --list` shows them), a file or - (stdin), or use --latest or --undo."
        )
    if chosen > 1:
        raise OpsConfigurationError("Name a backup (or a file, or -), or use --latest or --undo, not both.")
    if undo and (media_only or if_empty):
        raise OpsConfigurationError("--undo goes with neither --media-only nor --if-empty.")
    if include_empty and not latest:
        raise OpsConfigurationError("--include-empty goes with --latest.")
    if (media or media_only) and (source == "-" or (source and Path(source).is_file())):
        raise OpsConfigurationError(
            "--media and --media-only read a backup in the repository (its media manifest): "
            "name one, or use --latest."
        )
    if dry_run and not media_only:
        raise OpsConfigurationError("--dry-run goes with --media-only.")


@dataclass(frozen=True)
class OpenedArchive:
    name: str
    manifest: Manifest
    file: BinaryIO


def _copy(source: Readable, target: IO[bytes]) -> None:
    while chunk := source.read(1024 * 1024):
        target.write(chunk)


class UnencryptedRefused(OpsConfigurationError):
    """A plaintext archive, where a decryption key says backups are encrypted."""


@contextlib.contextmanager
def _plaintext(
    handle: BinaryIO, wrapped_identity: bytes | None, name: str, allow_unencrypted: bool
) -> Iterator[BinaryIO]:
    """``handle`` itself, or a private temporary file holding its decryption."""
    head = handle.read(64)
    handle.seek(0)
    if not is_age_encrypted(head):
        if decryption_configured() and not allow_unencrypted:
            # This environment reads encrypted backups: a plaintext one was not written by it
            # (or not as configured). Anyone can write plaintext; only the recipients' owners can read.
            raise UnencryptedRefused(
                f"Backup {name} is not encrypted, and a decryption key is configured here: backups "
                "of this deployment are encrypted, so this one was written elsewhere or without "
                "its key. Nothing was changed. Pass --allow-unencrypted if you trust it."
            )
        yield handle
        return
    identities = decryption_identities(wrapped_identity)
    with tempfile.TemporaryFile(prefix="ops-restore-") as plain:
        with decrypting(handle, identities) as reader:
            _copy(reader, plain)
        plain.seek(0)
        yield cast(BinaryIO, plain)


def _is_file(source: str) -> bool:
    """Whether ``source`` names a file; a clear error for a path that names none.

    Repository backup names (``20261128T031500Z-daily-3f9a``) never hold a '/' or a '.', so a
    source that does is a path the user meant: "no such file" says more than "not a valid
    backup object name".
    """
    try:
        if Path(source).is_file():
            return True
        exists = Path(source).exists()
    except OSError as error:  # ENAMETOOLONG and the like: no such file, and no backup either
        shown = source if len(source) <= 60 else f"{source[:40]}... ({len(source)} characters)"
        raise OpsConfigurationError(
            f"Cannot use {shown!r} as a backup ({error.strerror}). Name a backup from "
            "`backup --list`, an existing file, or - (stdin)."
        ) from None
    if "/" not in source and "." not in source and os.sep not in source:
        return False
    if exists:
        raise OpsConfigurationError(f"{source} is not a file. Name a backup file, or - (stdin).")
    raise OpsConfigurationError(
        f"No such file: {source}. Check the path; a backup in the repository is named like "
        "20261128T031500Z-daily-3f9a (`backup --list` shows them)."
    )


class _Tee:
    """Reads ``source`` and writes every byte read to ``copy``."""

    def __init__(self, source: Readable, copy: IO[bytes]) -> None:
        self._source = source
        self._copy = copy

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._copy.write(data)
        return data


class _Prefixed:
    """``head``, then the rest of ``source``: bytes peeked at are read again."""

    def __init__(self, head: bytes, source: Readable) -> None:
        self._head = head
        self._source = source

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            data = self._head if size < 0 or size >= len(self._head) else self._head[:size]
            self._head = self._head[len(data) :]
            return data
        return self._source.read(size)


@dataclass(frozen=True)
class _Spooled:
    manifest: Manifest
    file: BinaryIO


def _read_head(source: Readable, size: int) -> bytes:
    head = b""
    while len(head) < size and (chunk := source.read(size - len(head))):
        head += chunk
    return head


@contextlib.contextmanager
def _verified_stdin(source: Readable) -> Iterator[_Spooled]:
    """Standard input verified while it is spooled (decrypted first when it is an age file).

    Stdin cannot be read twice, so the load reads the spool; the verification reads the stream
    as it arrives and raises at the first byte that is not what the archive format allows.
    """
    what = "Backup standard input"
    head = _read_head(source, len(AGE_MAGIC))
    stream: Readable = _Prefixed(head, source)
    with tempfile.TemporaryFile(prefix="ops-restore-") as spool:
        if is_age_encrypted(head):
            with decrypting(stream, decryption_identities(None)) as plain:
                manifest = verify_archive(_Tee(plain, spool), what=what)
        else:
            manifest = verify_archive(_Tee(stream, spool), what=what)
        spool.flush()
        spool.seek(0)
        yield _Spooled(manifest, cast(BinaryIO, spool))


@contextlib.contextmanager
def open_archive(
    database: str,
    source: str | None,
    *,
    latest: bool = False,
    stdin: Readable | None = None,
    repository: BackupRepository | None = None,
    allow_unencrypted: bool = False,
) -> Iterator[OpenedArchive]:
    """The verified archive named by ``source`` (repository name, file path or "-"), or the latest."""
    with contextlib.ExitStack() as stack:
        wrapped = None
        if latest or (source is not None and source != "-" and not _is_file(source)):
            repository = repository or configured_repository(database)
            backup = repository.latest() if latest else repository.info(str(source))
            name = backup.name
            # Both before a byte of its data is trusted, as `backup --verify` checks them.
            check_authentic(backup)
            handle = cast(BinaryIO, stack.enter_context(repository.spooled(backup)))
            check_encryption_claim(backup, handle.read(64))
            handle.seek(0)
            wrapped = repository.wrapped_identity(backup)
        elif source == "-":
            # Verified as it is read and spooled: a foreign or damaged stream is refused at its
            # first bad byte, not after all of it was copied to disk.
            spool = stack.enter_context(_verified_stdin(stdin if stdin is not None else sys.stdin.buffer))
            yield OpenedArchive("standard input", spool.manifest, spool.file)
            return
        elif source is not None:
            name = Path(source).name
            try:
                handle = stack.enter_context(Path(source).open("rb"))
            except OSError as error:
                raise OpsConfigurationError(f"Cannot read {source} ({error.strerror}).") from None
        else:
            raise OpsConfigurationError("Name a backup, a file or - (stdin), or use --latest.")
        plain = stack.enter_context(_plaintext(handle, wrapped, name, allow_unencrypted))
        manifest = verify_archive(plain, what=f"Backup {name}")
        plain.seek(0)
        yield OpenedArchive(name, manifest, plain)


def _existing_model_tables(connection: BaseDatabaseWrapper, database: str) -> list[ModelTable]:
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
    return [table for table in model_tables(database) if table.name in existing]


def holds_user_data(database: str) -> bool:
    """Whether any table holds rows other than what ``migrate`` creates by itself.

    A database that cannot be read is an OpsError naming the failure (the start command's first
    question: a clean exit 1 in the deploy log, not a traceback).
    """
    return tables_hold_user_data(database, model_tables(database))


def _describe(connection: BaseDatabaseWrapper) -> str:
    name = str(connection.settings_dict.get("NAME") or connection.alias)
    return Path(name).name if connection.vendor == "sqlite" else name


def _safety_backup(database: str, in_transaction: bool) -> str:
    """The whole database as it is (every table of its schema, and the schema), before it is replaced:
    a ``safety`` backup (never --latest; ``restore --undo``)."""
    repository = configured_repository(database)
    name, _, _ = backup_to_repository(
        database,
        repository,
        _existing_model_tables(connections[database], database),
        reason="pre-restore",
        in_transaction=in_transaction,
        kind=SAFETY,
        whole=True,
    )
    return name


def check_safety_backup_allowed(database: str) -> None:
    """Before any change: the safety backup could be written (the repository's encryption policy)."""
    check_write_policy(
        configured_repository(database),
        encryption_keys_from_environment() is not None,
        "The safety backup of this restore",
    )


def describe_partial(manifest: Manifest) -> str:
    """Which tables a partial backup replaces, by model (apps when there are many)."""
    labels = [entry.model or entry.name for entry in manifest.tables]
    if len(labels) > 8:
        apps_named = sorted({label.split(".")[0] for label in labels})
        what = f"the {len(labels)} tables of {', '.join(apps_named)}"
    else:
        what = f"{len(labels)} table(s): {', '.join(labels)}"
    return f"only {what}; every other table is left as it is"


def _restore_partial(
    database: str,
    archive: OpenedArchive,
    *,
    has_data: bool,
    if_empty: bool,
    progress: ProgressCallback,
    convert: TableConverter | None,
) -> tuple[bool, str | None, int]:
    """The partial backup's tables replaced in one transaction, after a safety backup of everything.

    Returns whether it restored (``if_empty`` and data found under the lock: not), the safety
    backup's name and the rows loaded.
    """
    connection = connections[database]
    partial_load.check_shape(connection, archive.manifest)
    lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if connection.vendor == "postgresql":
        lock = pg_load.restore_lock(connection, float(ops_setting("RESTORE_LOCK_TIMEOUT")))
    with lock:
        if connection.vendor == "postgresql":
            pg_parallel.drop_leftovers(connection)  # whatever the path: a killed restore's schema
        safety = None
        if has_data and connection.vendor == "sqlite":
            safety = _safety_backup(database, in_transaction=False)
        # Read before the transaction: a SELECT in it would fix its snapshot before the lock.
        live = pg_load.live_tables(connection) if connection.vendor == "postgresql" else []
        with transaction.atomic(using=database):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                # Writers wait from before the snapshot the safety backup reads to COMMIT.
                pg_load.block_writers(connection, live, float(ops_setting("RESTORE_LOCK_TIMEOUT")))
                # Under the lock, in the snapshot the safety backup reads.
                if holds_user_data(database):
                    if if_empty:
                        return False, None, 0
                    safety = _safety_backup(database, in_transaction=True)
            rows = partial_load.replace_tables(
                connection, database, archive.file, archive.manifest, progress, convert
            )
    return True, safety, rows


@dataclass(frozen=True)
class _Loaded:
    restored: bool
    safety: str | None = None
    rows: int = 0
    jobs: int = 1
    # Live tables neither in the backup nor of an installed app's models: left alone.
    kept: tuple[str, ...] = ()
    # Migrations applied forward inside the restore's transaction (None: not done there).
    migrated: int | None = None


def _replaced_tables(database: str, manifest: Manifest) -> set[str]:
    """What a restore replaces: the backup's tables and every installed model's (and the history)."""
    return (
        {entry.name for entry in manifest.tables}
        | {table.name for table in model_tables(database)}
        | {"django_migrations"}
    )


def _open_swap(database: str, live: Sequence[str], *, if_empty: bool) -> tuple[bool, str | None]:
    """First thing in the transaction that swaps a PostgreSQL restore in; (go on?, safety backup).

    Writers are locked out of the ``live`` tables (read before the transaction: a SELECT in it
    would fix its snapshot) from before the snapshot to COMMIT, so the safety backup holds exactly
    what the swap replaces, and writes wait and land in the restored tables. The emptiness check
    of ``--if-empty`` and the safety backup read that one snapshot.
    """
    connection = connections[database]
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SET LOCAL synchronous_commit = off")
        pg_load.set_setting(cursor, "maintenance_work_mem", pg_load.maintenance_work_mem(), local=True)
    pg_load.block_writers(connection, live, float(ops_setting("RESTORE_LOCK_TIMEOUT")))
    has_data = holds_user_data(database)
    if if_empty and has_data:
        return False, None
    return True, (_safety_backup(database, in_transaction=True) if has_data else None)


def _migrate_forward(database: str) -> int:
    out = io.StringIO()
    call_command("migrate", database=database, interactive=False, verbosity=1, stdout=out)
    return out.getvalue().count("  Applying ")


def _restore_recorded(
    database: str,
    archive: OpenedArchive,
    schema: pg_schema.RecordedSchema,
    *,
    if_empty: bool,
    progress: ProgressCallback,
    migrate: bool,
) -> _Loaded:
    """Same engine, recorded schema: rebuild it (no migration replayed), load, swap, migrate forward.

    All in the one transaction that swaps: the migrations the code has beyond the backup run there
    too, so a failing one leaves the database as it was.
    """
    connection = connections[database]
    manifest = archive.manifest
    jobs = max(1, int(ops_setting("RESTORE_JOBS")))
    lock = pg_load.restore_lock(connection, float(ops_setting("RESTORE_LOCK_TIMEOUT")))
    with lock, contextlib.ExitStack() as stack:
        shadow, rows = None, 0
        pg_parallel.drop_leftovers(connection)
        try:
            shadow = stack.enter_context(pg_parallel.shadow_schema(database))
        except pg_parallel.ShadowUnsupported:
            shadow, jobs = None, 1
        if shadow is not None:
            rows = pg_parallel.build_recorded(shadow, archive.file, manifest, schema, jobs, progress)
        live = pg_load.live_tables(connection)
        with transaction.atomic(using=database):
            go_on, safety = _open_swap(database, live, if_empty=if_empty)
            if not go_on:
                return _Loaded(False, jobs=jobs)
            replaced = _replaced_tables(database, manifest)
            if shadow is not None:
                kept = pg_load.drop_replaced_tables(
                    connection, replaced | pg_parallel.shadow_tables(connection, shadow)
                )
                pg_parallel.drop_replaced_objects(connection, shadow)
                pg_parallel.swap_in(connection, shadow)
            else:
                kept = pg_load.drop_replaced_tables(connection, replaced | set(schema.tables))
                with connection.cursor() as cursor:
                    cursor.execute("SELECT quote_ident(current_schema())")
                    row = cursor.fetchone()
                    assert row is not None
                    plan = pg_schema.plan(schema, str(row[0]))
                    pg_schema.drop_existing(cursor, schema)
                    pg_schema.prepare_session(cursor)
                    pg_schema.execute(cursor, plan.before_load)
                rows = pg_load.copy_tables(connection, archive.file, manifest, progress)
                with connection.cursor() as cursor:
                    pg_schema.execute(cursor, plan.after_load)
                    pg_schema.set_sequences(cursor, plan)
            migrated = None
            forward = _forward_plan(connection) if migrate else []
            if not forward:
                # The code's migrations are the backup's: nothing to run (nor post_migrate's queries:
                # content types and permissions are rows of the backup).
                migrated = 0
            elif all(migration.atomic for migration, _ in forward):
                try:
                    migrated = _migrate_forward(database)
                except Exception as error:
                    raise OpsError(
                        f"Migrating the restored backup forward failed, so nothing was changed: "
                        f"{redact(str(error))}. Fix the migration, or restore with --no-migrate."
                    ) from None
    return _Loaded(True, safety, rows, jobs, tuple(kept), migrated)


def _forward_plan(connection: BaseDatabaseWrapper) -> list[tuple[Any, bool]]:
    """The migrations still to apply after the swap.

    The restore's transaction runs them if every one is atomic; one declared ``atomic = False``
    (``CREATE INDEX CONCURRENTLY`` ...) cannot run in a transaction: then they all run after the
    commit, as on the migration path.
    """
    executor = MigrationExecutor(connection)
    return list(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def _restore_postgres(
    database: str,
    archive: OpenedArchive,
    *,
    if_empty: bool,
    progress: ProgressCallback,
    convert: TableConverter | None = None,
    skip: frozenset[str] = frozenset(),
) -> _Loaded:
    """The migration path: the backup's schema from migrations, then the load (see the module doc)."""
    connection = connections[database]
    manifest = archive.manifest
    jobs = int(ops_setting("RESTORE_JOBS")) if convert is None else 1
    lock = pg_load.restore_lock(connection, float(ops_setting("RESTORE_LOCK_TIMEOUT")))
    with lock, contextlib.ExitStack() as stack:
        shadow, rows = None, 0
        # Whatever this restore's path: a private schema a killed restore left is dropped.
        pg_parallel.drop_leftovers(connection)
        if jobs > 1:
            try:
                shadow = stack.enter_context(pg_parallel.shadow_schema(database))
                rows = pg_parallel.build(shadow, database, archive.file, manifest, jobs, progress)
            except pg_parallel.ShadowUnsupported:
                # Built on one connection instead, as below; the private schema is already gone.
                stack.close()
                shadow, jobs = None, 1
        live = pg_load.live_tables(connection)
        with transaction.atomic(using=database):
            go_on, safety = _open_swap(database, live, if_empty=if_empty)
            if not go_on:
                return _Loaded(False, jobs=jobs)
            replaced = _replaced_tables(database, manifest)
            if shadow is not None:
                replaced |= pg_parallel.shadow_tables(connection, shadow)
            kept = tuple(pg_load.drop_replaced_tables(connection, replaced))
            if shadow is not None:
                pg_parallel.swap_in(connection, shadow)
                return _Loaded(True, safety, rows, jobs, kept)
            migrate_to_recorded(connection, manifest.migrations)
            tables = [entry.name for entry in manifest.tables if entry.name not in skip]
            pg_load.check_tables_present(connection, tables)
            deferred = pg_load.drop_indexes_and_constraints(connection, tables)
            rows = pg_load.copy_tables(connection, archive.file, manifest, progress, convert, skip)
            pg_load.recreate(connection, deferred, progress)
            pg_load.reset_sequences(connection, database, manifest)
    return _Loaded(True, safety, rows, jobs, kept)


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _return_large_blocks_to_the_os() -> None:
    """Keep a restore's memory flat: a fixed 1 MB mmap threshold for glibc's malloc.

    glibc raises its threshold (up to 32 MB) each time a large block is freed; from then on the
    8 MB parts of a download and the multi-megabyte chunks the load workers decompress come from
    arenas that keep what they grew to. Measured on a restore through the repository: peak RSS
    79 MB at 1x and 92 MB at 2x without it, 79 and 80 MB with it. Elsewhere (musl, macOS) nothing
    is done.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)


def _holds_data_already(name: str, label: str, started: float) -> RestoreResult:
    """``--if-empty`` found data (under the lock, before any change): nothing restored, exit 0."""
    return RestoreResult(
        name,
        label,
        0,
        0,
        time.monotonic() - started,
        restored=False,
        message=f"Database {label} already holds data: nothing restored.",
    )


def run_restore(
    database: str = "default",
    source: str | None = None,
    *,
    latest: bool = False,
    confirm: Confirm | None = None,
    if_empty: bool = False,
    migrate: bool = True,
    stdin: Readable | None = None,
    progress: ProgressCallback = no_progress,
    include_empty: bool = False,
    undo: bool = False,
    allow_unencrypted: bool = False,
) -> RestoreResult:
    """Restore ``database`` from an archive. ``confirm`` asks before replacing data (None: don't ask).

    ``latest`` picks the newest full backup that holds data (``include_empty``: the newest full
    one at all); ``undo`` the newest safety backup of this very database (the last restore's).
    """
    started = time.monotonic()
    _return_large_blocks_to_the_os()
    connection = connections[database]
    check_supported(connection)
    if connection.in_atomic_block:
        raise OpsConfigurationError("A restore cannot run inside a transaction: it manages its own.")
    repository = None
    if if_empty and holds_user_data(database):
        # Render's start command runs this on every start: a database with data costs one query,
        # not a download of the newest backup. (Checked again under the lock before any write.)
        label = _describe(connection)
        message = f"Database {label} already holds data: nothing restored."
        return RestoreResult(source or "latest", label, 0, 0, 0.0, restored=False, message=message)
    warnings: tuple[str, ...] = ()
    if undo:
        repository = configured_repository(database)
        source = repository.last_safety_backup(str(backup_source(database)["fingerprint"])).name
    if latest:
        repository = configured_repository(database)
        try:
            choice = repository.newest_intact(with_data=not include_empty)
        except BackupNotFound as error:
            if not if_empty:
                raise
            # The first deploy ever (or a brand-new database): nothing to bring back is not a failure
            # of the start command; the site starts empty and says why.
            label = _describe(connection)
            message = f"Database {label} is empty and nothing was restored: {error}"
            return RestoreResult("", label, 0, 0, 0.0, restored=False, message=message, warning=True)
        if choice.damaged and not if_empty:
            # By hand, a person decides: the damaged newest is named, and the intact one to use.
            newest = choice.damaged[0]
            raise CorruptBackup(
                f"The newest backup {newest.name} is damaged ({newest.damage}). The newest intact one "
                f"is {choice.backup.name}: restore it by name, or take a new backup."
            )
        # The start command goes on with the newest intact backup, loudly: a site that does not
        # start is worse than a restore of the backup before.
        source, latest, warnings = choice.backup.name, False, tuple(choice.warnings())
    with open_archive(
        database,
        source,
        latest=latest,
        stdin=stdin,
        repository=repository,
        allow_unencrypted=allow_unencrypted,
    ) as archive:
        manifest = archive.manifest
        for index, entry in enumerate(manifest.tables, start=1):
            progress(TableProgress("verify", entry.name, index, len(manifest.tables), entry.rows))
        migrations = check_known(connection, manifest.migrations, manifest.extra.get("squashed"))
        notes = [migrations.note] if migrations.note else []
        schema = None
        if connection.vendor == "postgresql" and manifest.vendor == "postgresql":
            schema = pg_schema.RecordedSchema.from_manifest(manifest.extra)
            if schema is not None:
                # Every recorded definition is checked before anything is written (a crafted backup).
                pg_schema.plan(schema, pg_load.quote_ident("ops_check"))
        # Tables of installed models, wherever the routers send them: the others no app owns.
        owned = {model._meta.db_table for model in apps.get_models(include_auto_created=True)}
        unowned = [e.name for e in manifest.tables if e.name not in owned and e.name != "django_migrations"]
        if schema is None and any(e.name not in owned for e in manifest.tables):
            # The migration path creates model tables only: the others cannot be loaded here. The
            # history is not loaded as a table either: migrating to the recorded state writes
            # every recorded row of it (apps not installed included).
            archive = replace(
                archive,
                manifest=replace(manifest, tables=tuple(e for e in manifest.tables if e.name in owned)),
            )
            manifest = archive.manifest
            if unowned:
                names = ", ".join(unowned)
                notes.append(f"Not restored, no installed app owns them (restore into PostgreSQL): {names}.")
        elif unowned:
            notes.append(f"Tables kept, no installed app owns them: {', '.join(unowned)}.")
        # Across engines (SQLite <-> PostgreSQL): refuses unsupported column types before any write.
        conversion = plan_conversion(manifest, connection)
        convert = conversion.convert if conversion is not None else None
        skip = conversion.skipped if conversion is not None else frozenset()
        label = _describe(connection)
        try:
            has_data = holds_user_data(database)
            if if_empty and has_data:
                return _holds_data_already(archive.name, label, started)
            # Into a database without tables yet, a partial backup has nothing to leave alone.
            partial = manifest.extra.get("kind") == PARTIAL and bool(
                _existing_model_tables(connection, database)
            )
            scope = describe_partial(manifest) if partial else None
            if has_data:
                check_safety_backup_allowed(database)
            if has_data and confirm is not None and not confirm(label, scope):
                raise RestoreCancelled("Restore cancelled: nothing was changed.")
            loaded = _Loaded(True)
            if partial or connection.vendor == "postgresql":
                if partial:
                    restored, safety, rows = _restore_partial(
                        database,
                        archive,
                        has_data=has_data,
                        if_empty=if_empty,
                        progress=progress,
                        convert=convert,
                    )
                    loaded = _Loaded(restored, safety, rows)
                elif schema is not None:
                    # The backup's migrations being the code's, none is left to apply after the swap.
                    forward = migrate and not migrations.matches_code
                    loaded = _restore_recorded(
                        database, archive, schema, if_empty=if_empty, progress=progress, migrate=forward
                    )
                else:
                    loaded = _restore_postgres(
                        database, archive, if_empty=if_empty, progress=progress, convert=convert, skip=skip
                    )
                if not loaded.restored:
                    return _holds_data_already(archive.name, label, started)
            else:
                # The file lock normalize_media_urls --apply takes too: one writer of the whole file.
                with sqlite_restore_lock(connection, float(ops_setting("RESTORE_LOCK_TIMEOUT"))):
                    safety_names: list[str] = []

                    def under_lock() -> bool:
                        # Writers are locked out: the emptiness check and the safety backup see what
                        # the swap replaces.
                        holds = holds_user_data(database)
                        if if_empty and holds:
                            return False
                        if holds:
                            safety_names.append(_safety_backup(database, in_transaction=False))
                        return True

                    sqlite_rows = restore_sqlite(
                        connection,
                        archive.file,
                        manifest,
                        progress,
                        convert,
                        skip,
                        under_lock=under_lock,
                        lock_timeout=float(ops_setting("RESTORE_LOCK_TIMEOUT")),
                    )
                    if sqlite_rows is None:
                        return _holds_data_already(archive.name, label, started)
                    safety = safety_names[0] if safety_names else None
                    loaded = _Loaded(True, safety, sqlite_rows)
        except DatabaseError as error:
            raise OpsError(
                f"Restoring into {label} failed and nothing was changed: {redact(str(error).strip())}"
            ) from None
    if loaded.kept:
        notes.append(f"Left alone, not in the backup and of no installed app: {', '.join(loaded.kept)}.")
    if apps.is_installed("django.contrib.contenttypes"):
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()
    migrated = loaded.migrated or 0
    if migrate and loaded.migrated is None:
        try:
            migrated = _migrate_forward(database)
        except Exception as error:
            raise OpsError(
                f"The backup was restored, but migrating it forward failed: {redact(str(error))}. "
                "Fix the migration and run `python manage.py migrate`."
            ) from None
    return RestoreResult(
        name=archive.name,
        database=label,
        tables=len(manifest.tables) - len(skip),
        rows=loaded.rows,
        seconds=time.monotonic() - started,
        restored=True,
        safety_backup=loaded.safety,
        migrated_forward=migrated,
        jobs=loaded.jobs,
        partial=scope,
        notes=tuple(notes),
        # Restored, with tables left out (a cross-engine restore's search indexes): said, not failed.
        message=conversion.warning() if conversion is not None else "",
        warning=bool(conversion is not None and conversion.left_out),
        warnings=warnings,
    )
