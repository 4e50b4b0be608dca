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
import select
from collections.abc import Iterator
from typing import Any, cast

from django.db.backends.base.base import BaseDatabaseWrapper

from ops.archive.format import Readable, Writable

# Bytes per write into a COPY's sink, or asked of its source. Below glibc's 128 kB mmap threshold:
# blocks this size are recycled by malloc; a megabyte went to the OS and came back, page by page,
# each time (1x backup on psycopg 3: 85,000 page faults with 1 MB, 15,000 with 64 kB).
COPY_BUFFER = 64 * 1024


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
    with cursor.copy(statement):
        return _read_rows(cursor.connection, sink)


def _read_rows(connection: Any, sink: Writable) -> int:
    """psycopg 3's COPY TO rows read straight from libpq (``Connection.pgconn``); the row count.

    Iterating ``Copy`` goes through psycopg's generator-and-wait machinery once per row: it spent
    twice psycopg2's client CPU on the 2 M rows of one table (1.0 s vs 0.5 s, measured), and in a
    backup the client, not the server, set the pace. This is the loop psycopg runs
    (``generators.copy_from``) without the per-row machinery: rows while libpq has whole ones
    buffered, a wait on the socket when it has none. The COPY's final result is read here too, so
    psycopg's ``Copy`` has nothing left to do when its block exits; if the sink raises mid-way,
    that exit cancels the COPY and drains it, as it always does. Rows are gathered into writes of
    about COPY_BUFFER bytes (a compressor's write costs per call as well as per byte), so memory
    holds one buffer, never the table.
    """
    from psycopg import errors, pq

    pgconn = connection.pgconn
    poll = select.poll()
    poll.register(pgconn.socket, select.POLLIN)
    get_copy_data = pgconn.get_copy_data
    pending = bytearray()
    buffered = 0  # counted here: a len() per row was 5% of a backup's client time
    while True:
        size, data = get_copy_data(1)
        if size > 0:
            pending += data
            buffered += size
            if buffered >= COPY_BUFFER:
                sink.write(bytes(pending))
                pending.clear()
                buffered = 0
        elif size == 0:  # no whole row buffered: wait for the server
            poll.poll()
            pgconn.consume_input()
        else:  # -1: the rows ended (or an error came instead); -2: the connection failed
            break
    results = []
    while True:
        while pgconn.is_busy():
            poll.poll()
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        results.append(result)
    if not results:  # -2: no result to say why, libpq's message does
        message = pgconn.error_message.decode(connection.info.encoding, "replace").strip()
        raise errors.OperationalError(message or "the connection failed during COPY")
    final = results[-1]
    if final.status != pq.ExecStatus.COMMAND_OK:
        raise errors.error_from_result(final, encoding=connection.info.encoding)
    if pending:
        sink.write(bytes(pending))
    return int(final.command_tuples or 0)


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
