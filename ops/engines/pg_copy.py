"""The PostgreSQL driver layer: COPY, private connections and error codes, on psycopg 3 and psycopg2.

Django's postgresql backend uses psycopg 3 when it is importable and psycopg2 otherwise
(``django.db.backends.postgresql.psycopg_any.is_psycopg3``); ops follows whichever it chose. The
two drivers differ exactly where a backup and a restore go below Django's cursor:

- COPY: psycopg2 streams a file-like object (``copy_expert``); psycopg 3 has ``cursor.copy(...)``,
  written to with ``write()`` (COPY FROM) or iterated (COPY TO). Both stream here: memory holds
  one buffer of a table, never the table.
- ``with connection:`` commits (psycopg2) or *closes* the connection (psycopg 3): ``transaction``.
- an error's SQLSTATE is ``pgcode`` (psycopg2) or ``sqlstate`` (psycopg 3).

Nothing else in ops touches these; other modules go through Django's cursor or this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

from django.db.backends.base.base import BaseDatabaseWrapper

from ops.archive.format import Readable, Writable

COPY_BUFFER = 1024 * 1024


def driver() -> str:
    """The driver Django's postgresql backend uses in this process: "psycopg" or "psycopg2"."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return "psycopg" if is_psycopg3 else "psycopg2"


def copy_from(cursor: Any, statement: str, stream: Readable) -> int:
    """Run ``COPY ... FROM STDIN`` on a raw driver cursor, fed from ``stream``; the rows loaded."""
    if hasattr(cursor, "copy_expert"):  # psycopg2
        cursor.copy_expert(statement, stream, COPY_BUFFER)
    else:
        with cursor.copy(statement) as copy:
            while chunk := stream.read(COPY_BUFFER):
                copy.write(chunk)
    return int(cursor.rowcount)


def copy_to(cursor: Any, statement: str, sink: Writable) -> int:
    """Run ``COPY ... TO STDOUT`` on a raw driver cursor into ``sink``; the rows written."""
    if hasattr(cursor, "copy_expert"):  # psycopg2
        cursor.copy_expert(statement, sink, COPY_BUFFER)
        return int(cursor.rowcount)
    # psycopg 3 yields one row at a time: gathered into writes of about COPY_BUFFER bytes (a
    # compressor's write costs per call as well as per byte), so memory still holds one buffer.
    pending = bytearray()
    with cursor.copy(statement) as copy:
        for data in copy:
            pending += data
            if len(pending) >= COPY_BUFFER:
                sink.write(bytes(pending))
                pending.clear()
    if pending:
        sink.write(bytes(pending))
    return int(cursor.rowcount)


def connect(wrapper: BaseDatabaseWrapper, **overrides: Any) -> Any:
    """A new raw driver connection to ``wrapper``'s database (its settings, OPTIONS included).

    Not Django's: it is never shared with Django's own connection, nor taken from a pool. Not in
    autocommit mode: statements run in a transaction until ``commit`` (see ``transaction``).
    """
    params = {**wrapper.get_connection_params(), **overrides}
    # The driver module of Django's postgresql backend (psycopg or psycopg2).
    return cast(Any, wrapper).Database.connect(**params)


@contextlib.contextmanager
def transaction(connection: Any) -> Iterator[Any]:
    """One transaction on a raw connection: committed if the block succeeds, else rolled back.

    What ``with connection:`` does on psycopg2; on psycopg 3 that closes the connection instead.
    """
    try:
        yield connection
    except BaseException:
        with contextlib.suppress(Exception):
            connection.rollback()
        raise
    connection.commit()


def sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE of a driver error (e.g. Django's ``DatabaseError.__cause__``), if it has one."""
    if error is None:
        return None
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return str(code) if code else None
