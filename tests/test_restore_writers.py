"""Writes committed while a restore runs are never lost (finding 4 of issue 14).

Writer threads insert rows, one per transaction, all through a restore. Every committed row must
be in the restore's safety backup (committed before it took its snapshot) or in the restored
database (committed after the swap): the restore blocks writers from its snapshot to its swap.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from django.db import connections, transaction

from ops.archive.copy_text import decode_lines
from ops.archive.format import iter_tables, verify_archive
from ops.backup import run_backup
from ops.repository.backups import configured_repository
from ops.restore import run_restore
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")
WRITERS = 2


class Writers:
    """Threads inserting rows named ``w<thread>-<n>`` into ``table``; remembers what committed.

    ``connect`` opens a DB-API connection of the thread's own (psycopg2 or sqlite3).
    """

    def __init__(
        self, connect: Callable[[], Any], table: str, placeholder: str = "%s", pause: float = 0.0
    ) -> None:
        self._pause = pause
        self.committed: set[str] = set()
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._statement = f"INSERT INTO {table} (name) VALUES ({placeholder})"
        self._threads = [
            threading.Thread(target=self._write, args=(connect, number)) for number in range(WRITERS)
        ]

    def _write(self, connect: Callable[[], Any], number: int) -> None:
        connection = connect()
        try:
            for count in range(10**9):
                if self._stop.is_set():
                    return
                name = f"w{number}-{count}"
                try:
                    with connection:
                        connection.cursor().execute(self._statement, [name])
                except (psycopg2.Error, sqlite3.Error):
                    with self._lock:
                        self.failed += 1
                    continue
                with self._lock:
                    self.committed.add(name)
                if self._pause:
                    self._stop.wait(self._pause)
        finally:
            connection.close()

    def count(self) -> int:
        with self._lock:
            return len(self.committed)

    def attempts(self) -> int:
        with self._lock:
            return len(self.committed) + self.failed

    def wait_for_attempts(self, attempts: int) -> None:
        """Until the writers tried this many transactions in all, committed or not."""
        while self.attempts() < attempts and all(thread.is_alive() for thread in self._threads):
            self._stop.wait(0.01)

    def wait_for(self, rows: int) -> None:
        while self.count() < rows and all(thread.is_alive() for thread in self._threads):
            self._stop.wait(0.01)

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def names_in_safety_backup(alias: str, name: str, table: str = "fidelity_tag") -> set[str]:
    repository = configured_repository(alias)
    with repository.spooled(repository.info(name)) as archive:
        manifest = verify_archive(archive)
        archive.seek(0)
        for entry, data in iter_tables(archive, manifest):
            if entry.name == table:
                index = [column.name for column in entry.columns].index("name")
                return {str(row[index]) for row in decode_lines(data, [False] * len(entry.columns))}
    raise AssertionError(f"the safety backup holds no {table}")


def names_in(alias: str, table: str = "fidelity_tag") -> set[str]:
    connections[alias].close()  # SQLite: read the file as it is now
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT name FROM {table}")
        return {str(row[0]) for row in cursor.fetchall()}


def assert_none_lost(writers: Writers, in_safety: set[str], in_result: set[str]) -> None:
    assert writers.committed - in_safety - in_result == set()
    # The safety backup is the state the restore replaced: nothing in it is also in the result.
    assert writers.committed & in_safety & in_result == set()
    assert {name for name in in_safety if name.startswith("w")} <= writers.committed
    assert {name for name in in_result if name.startswith("w")} <= writers.committed


@pytest.mark.parametrize("jobs", [1, 2], ids=["one_connection", "parallel"])
def test_restore__rows_committed_during_the_restore_are_in_the_safety_backup_or_the_result(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any, jobs: int
) -> None:
    settings.OPS = {**settings.OPS, "RESTORE_JOBS": jobs}
    source = scratch.postgres()
    with connections[source].cursor() as cursor:
        cursor.execute("INSERT INTO fidelity_tag (name) VALUES ('from the backup')")
    archive = tmp_path / "source.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    with connections[target].cursor() as cursor:
        # Enough rows that the safety backup takes a while: the window the writers used to fall in.
        cursor.execute(
            "INSERT INTO fidelity_node (name) SELECT md5(i::text) FROM generate_series(1, 300000) i"
        )

    def connect() -> Any:
        return scratch.server.connect(scratch.names[target])

    with Writers(connect, "fidelity_tag") as writers:
        writers.wait_for(50)
        before = writers.count()
        result = run_restore(target, str(archive))
        during = writers.count() - before
        # Some writes after the swap too: what commits must land in the restored table.
        writers.wait_for_attempts(writers.attempts() + 50)

    assert result.restored
    assert result.safety_backup is not None
    in_safety = names_in_safety_backup(target, result.safety_backup)
    in_result = names_in(target)
    assert during > 0
    assert "from the backup" in in_result
    assert_none_lost(writers, in_safety, in_result)


def test_restore__sqlite_rows_committed_during_the_restore_are_in_the_safety_backup_or_the_result(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.sqlite()
    with connections[source].cursor() as cursor:
        cursor.execute("INSERT INTO auth_group (name) VALUES ('from the backup')")
    archive = tmp_path / "source.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.sqlite()
    with transaction.atomic(using=target), connections[target].cursor() as cursor:
        # Enough rows that the safety backup takes a while.
        cursor.executemany("INSERT INTO auth_group (name) VALUES (%s)", [[f"g{i}"] for i in range(100_000)])
    path = str(connections[target].settings_dict["NAME"])

    def connect() -> Any:
        # Open through the restore, as a site's connections are; waits for the restore's lock.
        return sqlite3.connect(path, timeout=60)

    # A pause between commits, as a site's requests have: SQLite lets one writer in at a time, and
    # writers at full speed would starve the restore's own reads (migrate) of the lock.
    with Writers(connect, "auth_group", placeholder="?", pause=0.005) as writers:
        writers.wait_for(50)
        before = writers.count()
        result = run_restore(target, str(archive))
        during = writers.count() - before
        writers.wait_for_attempts(writers.attempts() + 50)

    assert result.restored
    assert result.safety_backup is not None
    in_safety = names_in_safety_backup(target, result.safety_backup, "auth_group")
    in_result = names_in(target, "auth_group")
    assert during > 0
    assert "from the backup" in in_result
    assert "g1" not in in_result
    assert_none_lost(writers, in_safety, in_result)
