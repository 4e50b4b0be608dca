"""PostgreSQL side of a restore: the lock, the wipe, and a pg_restore-style bulk load.

Everything here runs inside the restore's single transaction, so it is all or nothing: until
COMMIT, other sessions see the old database, and a failure or a SIGKILL leaves it as it was.
No superuser privilege is needed (managed databases such as Render's give none).

Loading like pg_restore: FOREIGN KEY, PRIMARY KEY and UNIQUE constraints and the other indexes of
the loaded tables are dropped, the data is COPYed in, then indexes and constraints are built once
(sorting a whole column is far cheaper than maintaining a B-tree and firing an FK trigger per row).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.management.color import no_style
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from ops.archive.format import CorruptArchive, Manifest, Readable, TableEntry, iter_tables
from ops.conf import ops_setting
from ops.engines import pg_copy
from ops.engines.cross_engine import TableConverter
from ops.engines.tables import model_tables
from ops.errors import OpsConfigurationError, OpsError
from ops.progress import ProgressCallback, TableProgress

_LOCK_NOT_AVAILABLE = "55P03"
# A setting's value written into a SET statement: a number, with a memory or time unit.
_SETTING_VALUE = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,6})?(?: ?(?:[kMGT]B|ms|s|min))?")


def set_setting(cursor: Any, name: str, value: str, *, local: bool) -> None:
    """``SET [LOCAL] name = 'value'``, on a Django or a raw driver cursor.

    Not ``SELECT set_config(...)``: a SELECT takes a REPEATABLE READ transaction's snapshot, and
    the snapshot of the transaction that swaps a restore in must be taken after its LOCK TABLE
    (``block_writers``); SET takes none. Nor a parameter: SET takes none under psycopg 3's
    server-side binding. So the value is checked to be a number with a unit and written into the
    statement.
    """
    if not _SETTING_VALUE.fullmatch(value):
        raise OpsConfigurationError(
            f"{value!r} is not a value for {name}: write a number with a unit, e.g. 128MB."
        )
    cursor.execute(f"SET {'LOCAL ' if local else ''}{name} = '{value}'")


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted whatever it holds (spaces, capitals, quotes, keywords)."""
    return '"' + name.replace('"', '""') + '"'


class RestoreLocked(OpsError):
    """Another restore of the same database holds the lock."""


def restore_lock_key(connection: BaseDatabaseWrapper) -> int:
    """The advisory lock key of a restore of this database (normalize_media_urls --apply takes it too)."""
    digest = hashlib.sha256(f"ops.restore:{connection.settings_dict['NAME']}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def restore_lock(connection: BaseDatabaseWrapper, timeout: float) -> Iterator[None]:
    """One restore at a time per database: a session-level advisory lock, waited for ``timeout`` s.

    Session level, taken before the restore's transaction begins, so that transaction's snapshot
    is taken after the previous restore committed. The server releases it if the process dies.
    """
    key = restore_lock_key(connection)
    with connection.cursor() as cursor:
        set_setting(cursor, "lock_timeout", f"{max(1, int(timeout * 1000))}ms", local=False)
        try:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        except OperationalError as error:
            if pg_copy.sqlstate(error.__cause__) == _LOCK_NOT_AVAILABLE:
                raise RestoreLocked(
                    f"Another restore of database {connection.settings_dict['NAME']!r} is running (or "
                    f"normalize_media_urls --apply is writing to it); this one waited {timeout:g} s for it. "
                    "Try again once it has finished."
                ) from None
            raise
        finally:
            cursor.execute("RESET lock_timeout")
    try:
        yield
    finally:
        with contextlib.suppress(Exception), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def drop_replaced_tables(connection: BaseDatabaseWrapper, replaced: set[str]) -> list[str]:
    """Drop the tables of the current schema that the restore replaces; returns the others, kept.

    ``replaced``: the backup's tables and the installed apps' model tables. Any other table (made by
    another tool, or by ``RunSQL`` after the backup) is not the backup's to give back: left alone.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema() "
            "ORDER BY tablename"
        )
        tables = [(str(name), str(quoted)) for name, quoted in cursor.fetchall()]
        dropped = [quoted for name, quoted in tables if name in replaced]
        if dropped:
            cursor.execute(f"DROP TABLE IF EXISTS {', '.join(dropped)} CASCADE")
    return [name for name, _ in tables if name not in replaced]


def live_tables(connection: BaseDatabaseWrapper) -> list[str]:
    """The tables of the current schema, schema-qualified and quoted (for ``block_writers``).

    Read before the restore's transaction begins: any SELECT inside it would fix its snapshot.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname = current_schema() ORDER BY tablename"
        )
        return [str(row[0]) for row in cursor.fetchall()]


class WritersHoldTables(OpsError):
    """A writer's transaction kept the restore from locking the tables it replaces."""


def block_writers(connection: BaseDatabaseWrapper, tables: Sequence[str], timeout: float) -> None:
    """Lock ``tables`` against writes (readers go on) until the caller's transaction ends.

    Call it first in a REPEATABLE READ transaction, before any query: the snapshot the safety
    backup reads is then taken after every write to these tables committed, and no write can
    commit until the swap does. A write waiting on the lock goes, after the swap, into the
    restored table of the same name. Without this, rows committed between the snapshot and the
    drop were in neither the safety backup nor the restored database. EXCLUSIVE, not ACCESS
    EXCLUSIVE: SELECTs are not blocked by it.
    """
    if not tables:
        return
    with connection.cursor() as cursor:
        set_setting(cursor, "lock_timeout", f"{max(1, int(timeout * 1000))}ms", local=True)
        try:
            cursor.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
        except OperationalError as error:
            if getattr(error.__cause__, "pgcode", None) == _LOCK_NOT_AVAILABLE:
                raise WritersHoldTables(
                    f"Writers held the tables of database {connection.settings_dict['NAME']!r} for "
                    f"more than {timeout:g} s, so the restore could not take its safety backup; "
                    "nothing was changed. Try again when long transactions have finished."
                ) from None
            raise
        cursor.execute("SET LOCAL lock_timeout = 0")


@dataclass(frozen=True)
class Key:
    """A PRIMARY KEY or UNIQUE constraint dropped before the load."""

    table: str
    relname: str
    name: str
    definition: str
    # Its index, to build on its own (in parallel with the table's other indexes) and then attach.
    index_name: str
    index_definition: str
    primary: bool
    deferrable: str
    partitioned: bool

    def add(self) -> str:
        """Builds the index and adds the constraint in one statement (ACCESS EXCLUSIVE on the table)."""
        return f"ALTER TABLE {self.table} ADD CONSTRAINT {self.name} {self.definition}"

    def attach(self) -> str:
        """Once ``index_definition`` was built: the constraint on it, a change of the catalog only."""
        kind = "PRIMARY KEY" if self.primary else "UNIQUE"
        using = f"USING INDEX {self.index_name}{self.deferrable}"
        return f"ALTER TABLE {self.table} ADD CONSTRAINT {self.name} {kind} {using}"


@dataclass(frozen=True)
class DeferredDDL:
    """What was dropped before the load, and how to re-create it.

    On one connection: ``statements``. On several (ops/engines/pg_parallel.py): each table's ``builds`` (its
    indexes and its keys' indexes: any number may be built at once), then the ``attachments`` of
    the keys to their indexes, then the ``foreign`` keys, which need the keys they reference.
    """

    indexes: dict[str, tuple[str, ...]]
    keys: tuple[Key, ...]
    foreign: tuple[str, ...]

    @property
    def statements(self) -> tuple[str, ...]:
        """All of them in an order that works on one connection."""
        indexes = (statement for group in self.indexes.values() for statement in group)
        return (*indexes, *(key.add() for key in self.keys), *self.foreign)

    def builds(self, relname: str) -> tuple[str, ...]:
        own_keys = (k.index_definition for k in self.keys if k.relname == relname and not k.partitioned)
        return (*self.indexes.get(relname, ()), *own_keys)

    @property
    def attachments(self) -> tuple[str, ...]:
        # Partitioned tables take no ``USING INDEX``: their keys are added whole.
        return tuple(key.add() if key.partitioned else key.attach() for key in self.keys)


_TABLES = (
    "SELECT c.oid FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
    "AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)"
)


_CONSTRAINTS = (
    "SELECT con.conrelid::regclass::text, quote_ident(con.conname), pg_get_constraintdef(con.oid), "  # noqa: S608
    "con.contype, c.relname, coalesce(con.conindid::regclass::text, ''), "
    "CASE WHEN con.conindid = 0 THEN '' ELSE pg_get_indexdef(con.conindid) END, "
    "CASE WHEN con.condeferred THEN ' DEFERRABLE INITIALLY DEFERRED' "
    "WHEN con.condeferrable THEN ' DEFERRABLE' ELSE '' END, c.relkind = 'p' "
    "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid WHERE con.contype IN ('f', 'p', 'u') "
    f"AND (con.conrelid IN ({_TABLES}) OR (con.contype = 'f' AND con.confrelid IN ({_TABLES})))"
)
# Indexes that do not back a PRIMARY KEY, UNIQUE or EXCLUDE constraint (those go with the constraint).
_INDEXES = (
    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), "  # noqa: S608
    "(SELECT relname FROM pg_class WHERE oid = i.indrelid) FROM pg_index i "
    f"WHERE i.indrelid IN ({_TABLES}) AND NOT EXISTS (SELECT 1 FROM pg_constraint con "
    "WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x'))"
)
_PRESENT = f"SELECT relname FROM pg_class c WHERE c.oid IN ({_TABLES})"  # noqa: S608
# Plain tables: COPY FREEZE refuses partitioned ones.
_PLAIN = f"SELECT relname FROM pg_class c WHERE c.oid IN ({_TABLES}) AND c.relkind = 'r'"  # noqa: S608


def drop_indexes_and_constraints(connection: BaseDatabaseWrapper, tables: Sequence[str]) -> DeferredDDL:
    with connection.cursor() as cursor:
        cursor.execute(_CONSTRAINTS, [list(tables), list(tables)])
        constraints = cursor.fetchall()
        cursor.execute(_INDEXES, [list(tables)])
        indexes = [(str(n), str(d), str(r)) for n, d, r in cursor.fetchall()]
        foreign = [(str(row[0]), str(row[1]), str(row[2])) for row in constraints if row[3] == "f"]
        keys = [
            Key(
                str(t),
                str(r),
                str(n),
                str(d),
                str(i),
                str(idef),
                k == "p",
                str(deferrable),
                bool(partitioned),
            )
            for t, n, d, k, r, i, idef, deferrable, partitioned in constraints
            if k != "f"
        ]
        # Foreign keys depend on the unique indexes they reference: drop them first.
        for table, name in [(t, n) for t, n, _ in foreign] + [(key.table, key.name) for key in keys]:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        if indexes:
            cursor.execute(f"DROP INDEX {', '.join(name for name, *_ in indexes)}")
    per_table: dict[str, list[str]] = {}
    for _, definition, relname in indexes:
        per_table.setdefault(relname, []).append(definition)
    return DeferredDDL(
        {relname: tuple(group) for relname, group in per_table.items()},
        tuple(keys),
        tuple(f"ALTER TABLE {t} ADD CONSTRAINT {n} {d}" for t, n, d in foreign),
    )


def plain_tables(connection: BaseDatabaseWrapper, tables: Sequence[str]) -> set[str]:
    """The ``tables`` that are plain (not partitioned): COPY FREEZE takes only those."""
    with connection.cursor() as cursor:
        cursor.execute(_PLAIN, [list(tables)])
        return {str(row[0]) for row in cursor.fetchall()}


def maintenance_work_mem() -> str:
    """For the index builds of a restore (``SET LOCAL``: no superuser needed)."""
    return str(ops_setting("RESTORE_MAINTENANCE_WORK_MEM"))


def reset_sequences(connection: BaseDatabaseWrapper, database: str, manifest: Manifest) -> None:
    """Sequences of the loaded tables continue after their highest restored ids."""
    loaded = {entry.name for entry in manifest.tables}
    models = [table.model for table in model_tables(database) if table.name in loaded]
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(statement)


def check_rows(entry: TableEntry, loaded: int) -> None:
    if loaded != entry.rows:
        raise CorruptArchive(
            f"Table {entry.name} loaded {loaded} rows, the archive lists {entry.rows}. "
            "Nothing was changed. Restore another backup."
        )


def copy_in(
    cursor: Any, table: str, entry: TableEntry, stream: Readable, *, freeze: bool, whole: bool = True
) -> int:
    """COPY ``stream`` into ``table`` (quoted; qualified if need be) on a raw driver cursor.

    ``whole``: the stream holds all of the table's rows, and their count must be the archive's.
    Returns the rows loaded.
    """
    columns = ", ".join(quote_ident(column.name) for column in entry.columns)
    option = " WITH (FREEZE)" if freeze else ""
    loaded = pg_copy.copy_from(cursor, f"COPY {table} ({columns}) FROM STDIN{option}", stream)
    if whole:
        check_rows(entry, loaded)
    return loaded


def copy_tables(
    connection: BaseDatabaseWrapper,
    source: Readable,
    manifest: Manifest,
    progress: ProgressCallback,
    convert: TableConverter | None = None,
    skip: frozenset[str] = frozenset(),
) -> int:
    """COPY every table of the (verified) archive in; returns the rows loaded.

    ``convert``: rewrites a table's stream for another engine's backup (ops/engines/cross_engine.py);
    ``skip``: the tables such a restore leaves out (read past, not loaded).
    """
    total = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor
        names = [quote_ident(entry.name) for entry in manifest.tables if entry.name not in skip]
        if names:
            # Data migrations may have created rows; the archive's rows replace them.
            cursor.execute(f"TRUNCATE {', '.join(names)}")
        # Truncated in this (sub)transaction, so the rows can be loaded frozen, as VACUUM FREEZE
        # would leave them: the first reads after the restore need not set a hint bit on (and
        # so rewrite) every page, nor an anti-wraparound vacuum rewrite the whole database later
        # (bench, 2 M rows: first full scan 92 -> 56 ms, VACUUM 151 -> 34 ms; the restore itself
        # takes as long). Other sessions see no more than TRUNCATE already shows them: nothing
        # of these tables until COMMIT, behind its ACCESS EXCLUSIVE lock.
        plain = plain_tables(connection, [entry.name for entry in manifest.tables])
        for index, (entry, data) in enumerate(iter_tables(source, manifest), start=1):
            if entry.name in skip:
                continue
            stream = data if convert is None else convert(entry, data)
            # The raw driver cursor: its errors become Django's (DatabaseError) only through this.
            with connection.wrap_database_errors:
                copy_in(raw, quote_ident(entry.name), entry, stream, freeze=entry.name in plain)
            total += entry.rows
            progress(TableProgress("load", entry.name, index, len(manifest.tables), entry.rows))
    return total


def recreate(connection: BaseDatabaseWrapper, deferred: DeferredDDL, progress: ProgressCallback) -> None:
    with connection.cursor() as cursor:
        for index, statement in enumerate(deferred.statements, start=1):
            cursor.execute(statement)
            progress(TableProgress("indexes", describe_ddl(statement), index, len(deferred.statements), None))


# A possibly schema-qualified identifier, each part bare or "double-quoted" (with "" inside).
_PART = r'(?:"(?:[^"]|"")+"|[^\s".(]+)'
_NAME = rf"(?:{_PART}\.)?{_PART}"
_INDEX_DDL = re.compile(
    rf"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})"
    rf"\s+ON\s+(?:ONLY\s+)?(?P<table>{_NAME})",
    re.IGNORECASE,
)
_CONSTRAINT_DDL = re.compile(
    rf"ALTER\s+TABLE\s+(?:ONLY\s+)?(?P<table>{_NAME})\s+ADD\s+CONSTRAINT\s+(?P<name>{_PART})"
    r"(?:\s+(?P<kind>PRIMARY\s+KEY|UNIQUE|FOREIGN\s+KEY|CHECK|EXCLUDE))?",
    re.IGNORECASE,
)


def _unqualified(name: str) -> str:
    """The last part of ``name``, quoted only if it is not a plain identifier."""
    last = re.findall(_PART, name)[-1]
    plain = last[1:-1].replace('""', '"') if last.startswith('"') else last
    return plain if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", plain) else f'"{plain}"'


def describe_ddl(statement: str) -> str:
    """What a deferred statement builds, for progress lines: ``index X on T``, not cut-off SQL."""
    index = _INDEX_DDL.match(statement.strip())
    if index:
        return f"index {_unqualified(index['name'])} on {_unqualified(index['table'])}"
    constraint = _CONSTRAINT_DDL.match(statement.strip())
    if constraint:
        kind = " ".join((constraint["kind"] or "constraint").lower().split())
        return f"{kind} {_unqualified(constraint['name'])} on {_unqualified(constraint['table'])}"
    first = " ".join(statement.split())
    return first if len(first) <= 80 else first[:79] + "…"


def check_tables_present(connection: BaseDatabaseWrapper, tables: Sequence[str]) -> None:
    """After the migrations: every table of the backup must exist, else it cannot be restored here."""
    with connection.cursor() as cursor:
        cursor.execute(_PRESENT, [list(tables)])
        present = {str(row[0]) for row in cursor.fetchall()}
    missing = [table for table in tables if table not in present]
    if missing:
        raise OpsError(
            f"The backup holds tables its migrations do not create here: {', '.join(missing)}. "
            "Restore it with the code (installed apps) it was taken with."
        )
