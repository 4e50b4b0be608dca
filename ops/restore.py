"""Restores: verify the whole archive, then replace the database with it, all or nothing.

Order of work:

1. Find the archive (a backup in the repository by name, ``--latest``, a file, or ``-`` for
   stdin), bring it to a private seekable file (decrypting it if it is age-encrypted), and verify
   it entirely: format version, manifest, every checksum. Nothing is written before this passes.
2. Refuse a backup naming migrations this code does not have.
3. PostgreSQL: take the advisory lock (one restore per database). With ``OPS["RESTORE_JOBS"]``
   above 1, build the backup's database in a private schema on that many connections
   (ops/engines/pg_parallel.py: migrations to the backup's recorded state, COPY, indexes, constraints,
   sequences). Then in ONE transaction: check for user data (``--if-empty`` stops here), take a
   safety backup of what is there, drop every table, and move the private schema's tables in.
   Where the private schema cannot hold the backup, or with one job, that transaction does the
   whole load itself instead: migrate to exactly the recorded migrations, drop indexes and
   constraints, COPY every table in, re-create indexes and constraints, reset sequences.
   SQLite: build a new file beside the old one and swap it in (ops/engines/sqlite_load.py).
4. Migrate forward to the code's migrations (unless ``migrate=False``).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from django.apps import apps
from django.core.management import call_command
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ops.archive.format import Manifest, Readable, verify_archive
from ops.backup import backup_to_repository, check_supported, tables_hold_user_data
from ops.conf import ops_setting
from ops.engines import pg_load, pg_parallel
from ops.engines.cross_engine import TableConverter, plan_conversion
from ops.engines.migration_state import check_known, migrate_to_recorded
from ops.engines.sqlite_load import restore_sqlite
from ops.engines.tables import ModelTable, model_tables
from ops.errors import OpsConfigurationError, OpsError, redact
from ops.progress import ProgressCallback, TableProgress, no_progress
from ops.repository.backups import BackupNotFound, BackupRepository, CorruptBackup, configured_repository
from ops.repository.encryption import AGE_MAGIC, decrypting, decryption_identities, is_age_encrypted

Confirm = Callable[[str], bool]


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
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class OpenedArchive:
    name: str
    manifest: Manifest
    file: BinaryIO


def _copy(source: Readable, target: IO[bytes]) -> None:
    while chunk := source.read(1024 * 1024):
        target.write(chunk)


@contextlib.contextmanager
def _plaintext(handle: BinaryIO, wrapped_identity: bytes | None) -> Iterator[BinaryIO]:
    """``handle`` itself, or a private temporary file holding its decryption."""
    head = handle.read(64)
    handle.seek(0)
    if not is_age_encrypted(head):
        yield handle
        return
    identities = decryption_identities(wrapped_identity)
    with tempfile.TemporaryFile(prefix="ops-restore-") as plain:
        with decrypting(handle, identities) as reader:
            _copy(reader, plain)
        plain.seek(0)
        yield cast(BinaryIO, plain)


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
) -> Iterator[OpenedArchive]:
    """The verified archive named by ``source`` (repository name, file path or "-"), or the latest."""
    with contextlib.ExitStack() as stack:
        wrapped = None
        if latest or (source is not None and source != "-" and not Path(source).is_file()):
            repository = repository or configured_repository(database)
            backup = repository.latest() if latest else repository.info(str(source))
            name = backup.name
            handle = cast(BinaryIO, stack.enter_context(repository.spooled(backup)))
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
        plain = stack.enter_context(_plaintext(handle, wrapped))
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
    repository = configured_repository(database)
    name, _, _ = backup_to_repository(
        database,
        repository,
        _existing_model_tables(connections[database], database),
        reason="pre-restore",
        in_transaction=in_transaction,
    )
    return name


def _restore_postgres(
    database: str,
    archive: OpenedArchive,
    *,
    if_empty: bool,
    progress: ProgressCallback,
    convert: TableConverter | None = None,
) -> tuple[bool, str | None, int, int]:
    """Returns whether it restored, the safety backup's name, the rows, and the connections loading."""
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
            with connection.cursor() as cursor:
                # One snapshot for the emptiness check and the safety backup, taken after the lock.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("SET LOCAL synchronous_commit = off")
                cursor.execute("SET LOCAL maintenance_work_mem = %s", [pg_load.maintenance_work_mem()])
            # Before the snapshot, held to COMMIT: what the safety backup holds is exactly what the
            # swap replaces; writes wait and land in the restored tables.
            pg_load.block_writers(connection, live, float(ops_setting("RESTORE_LOCK_TIMEOUT")))
            has_data = holds_user_data(database)
            if if_empty and has_data:
                return False, None, 0, jobs
            safety = _safety_backup(database, in_transaction=True) if has_data else None
            pg_load.drop_all_tables(connection)
            if shadow is not None:
                pg_parallel.swap_in(connection, shadow)
                return True, safety, rows, jobs
            migrate_to_recorded(connection, manifest.migrations)
            tables = [entry.name for entry in manifest.tables]
            pg_load.check_tables_present(connection, tables)
            deferred = pg_load.drop_indexes_and_constraints(connection, tables)
            rows = pg_load.copy_tables(connection, archive.file, manifest, progress, convert)
            pg_load.recreate(connection, deferred, progress)
            pg_load.reset_sequences(connection, database, manifest)
    return True, safety, rows, jobs


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
) -> RestoreResult:
    """Restore ``database`` from an archive. ``confirm`` asks before replacing data (None: don't ask).

    ``latest`` picks the newest backup that holds data (``include_empty``: the newest at all).
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
    with open_archive(database, source, latest=latest, stdin=stdin, repository=repository) as archive:
        manifest = archive.manifest
        for index, entry in enumerate(manifest.tables, start=1):
            progress(TableProgress("verify", entry.name, index, len(manifest.tables), entry.rows))
        check_known(connection, manifest.migrations)
        # Across engines (SQLite <-> PostgreSQL): refuses unsupported column types before any write.
        conversion = plan_conversion(manifest, connection)
        convert = conversion.convert if conversion is not None else None
        label = _describe(connection)
        try:
            has_data = holds_user_data(database)
            if if_empty and has_data:
                return RestoreResult(
                    archive.name,
                    label,
                    0,
                    0,
                    time.monotonic() - started,
                    restored=False,
                    message=f"Database {label} already holds data: nothing restored.",
                )
            if has_data and confirm is not None and not confirm(label):
                raise RestoreCancelled("Restore cancelled: nothing was changed.")
            jobs = 1
            if connection.vendor == "postgresql":
                restored, safety, rows, jobs = _restore_postgres(
                    database, archive, if_empty=if_empty, progress=progress, convert=convert
                )
                if not restored:
                    return RestoreResult(
                        archive.name,
                        label,
                        0,
                        0,
                        time.monotonic() - started,
                        restored=False,
                        message=f"Database {label} already holds data: nothing restored.",
                    )
            else:
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

                loaded = restore_sqlite(
                    connection,
                    archive.file,
                    manifest,
                    progress,
                    convert,
                    under_lock=under_lock,
                    lock_timeout=float(ops_setting("RESTORE_LOCK_TIMEOUT")),
                )
                if loaded is None:
                    return RestoreResult(
                        archive.name,
                        label,
                        0,
                        0,
                        time.monotonic() - started,
                        restored=False,
                        message=f"Database {label} already holds data: nothing restored.",
                    )
                rows, safety = loaded, (safety_names[0] if safety_names else None)
        except DatabaseError as error:
            raise OpsError(
                f"Restoring into {label} failed and nothing was changed: {redact(str(error).strip())}"
            ) from None
    if apps.is_installed("django.contrib.contenttypes"):
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()
    migrated = 0
    if migrate:
        out = io.StringIO()
        try:
            call_command("migrate", database=database, interactive=False, verbosity=1, stdout=out)
        except Exception as error:
            raise OpsError(
                f"The backup was restored, but migrating it forward failed: {redact(str(error))}. "
                "Fix the migration and run `python manage.py migrate`."
            ) from None
        migrated = out.getvalue().count("  Applying ")
    return RestoreResult(
        name=archive.name,
        database=label,
        tables=len(manifest.tables),
        rows=rows,
        seconds=time.monotonic() - started,
        restored=True,
        safety_backup=safety,
        migrated_forward=migrated,
        jobs=jobs,
        warnings=warnings,
    )
