"""Restore of a partial backup (--include/--exclude): its own tables' rows replaced, every other left.

A partial backup holds some tables only; replacing the whole database with it would empty every
table it left out (an ``--exclude api.Enquiry`` backup emptied every enquiry). So its tables'
rows are deleted and loaded again in the caller's transaction, and nothing else is touched: no
table dropped, no migration run. Foreign keys are deferred (Django creates them DEFERRABLE
INITIALLY DEFERRED on both engines) and checked at commit: if a row left in place refers to one
the backup does not hold, the commit fails and the database stays as it was.

DELETE, not TRUNCATE: PostgreSQL refuses to truncate a table that another table refers to unless
that one is truncated too, and the others must stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.backends.base.base import BaseDatabaseWrapper

from ops.archive.format import Manifest, Readable, iter_tables
from ops.engines import pg_load, sqlite_load
from ops.engines.cross_engine import TableConverter
from ops.errors import OpsError
from ops.progress import ProgressCallback, TableProgress


class PartialMismatch(OpsError):
    """The database's tables are not shaped as the partial backup's: it cannot be loaded in place."""


def _live_columns(connection: BaseDatabaseWrapper, table: str) -> list[str] | None:
    """The columns a backup of ``table`` would hold here (generated ones excluded); None: no table."""
    with connection.cursor() as cursor:
        if table not in connection.introspection.table_names(cursor):
            return None
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                [pg_load.quote_ident(table)],
            )
            return [str(row[0]) for row in cursor.fetchall()]
        cursor.execute(f"PRAGMA table_info({sqlite_load.quote(table)})")
        return [str(row[1]) for row in cursor.fetchall()]


def check_shape(connection: BaseDatabaseWrapper, manifest: Manifest) -> None:
    """Every table of the backup exists here with the same columns, else PartialMismatch naming them."""
    problems = []
    for entry in manifest.tables:
        live = _live_columns(connection, entry.name)
        if live is None:
            problems.append(f"{entry.name} (not in this database)")
        elif set(live) != {column.name for column in entry.columns}:
            problems.append(f"{entry.name} (other columns)")
    if problems:
        raise PartialMismatch(
            "This partial backup cannot be loaded into the tables of this database: "
            f"{', '.join(problems)}. Nothing was changed. Migrate the database to the backup's "
            "migrations first, or restore a full backup."
        )


def replace_tables(
    connection: BaseDatabaseWrapper,
    database: str,
    source: Readable,
    manifest: Manifest,
    progress: ProgressCallback,
    convert: TableConverter | None = None,
) -> int:
    """Inside the caller's transaction: the rows of the archive's tables replaced; returns the rows loaded."""
    names: Sequence[str] = [entry.name for entry in manifest.tables]
    total = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for name in names:
                cursor.execute(f"DELETE FROM {pg_load.quote_ident(name)}")  # noqa: S608 (quoted identifier)
            for index, (entry, data) in enumerate(iter_tables(source, manifest), start=1):
                stream = data if convert is None else convert(entry, data)
                with connection.wrap_database_errors:
                    pg_load.copy_in(
                        cursor.cursor, pg_load.quote_ident(entry.name), entry, stream, freeze=False
                    )
                total += entry.rows
                progress(TableProgress("load", entry.name, index, len(names), entry.rows))
            pg_load.reset_sequences(connection, database, manifest)
            return total
        for name in names:
            cursor.execute(f"DELETE FROM {sqlite_load.quote(name)}")  # noqa: S608 (quoted identifier)
        for index, (entry, data) in enumerate(iter_tables(source, manifest), start=1):
            loaded = sqlite_load.insert_rows(cursor, entry, data if convert is None else convert(entry, data))
            total += loaded
            progress(TableProgress("load", entry.name, index, len(names), loaded))
    return total
