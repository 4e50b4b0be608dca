"""Writes committed while a restore runs are never lost (finding 4 of issue 14).

Writer threads insert rows, one per transaction, all through a restore. Every committed row must
be in the restore's safety backup (committed before it took its snapshot) or in the restored
database (committed after the swap): the restore blocks writers from its snapshot to its swap.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from django.db import connections

from ops.archive.copy_text import decode_lines
from ops.archive.format import iter_tables, verify_archive
from ops.backup import run_backup
from ops.repository.backups import configured_repository
from ops.restore import run_restore
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")
WRITERS = 2


class Writers:
    """Threads inserting ``fidelity_tag`` rows named ``w<thread>-<n>``; remembers what committed."""

    def __init__(self, scratch: ScratchDatabases, alias: str) -> None:
        self.committed: set[str] = set()
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, args=(scratch, alias, number)) for number in range(WRITERS)
        ]

    def _write(self, scratch: ScratchDatabases, alias: str, number: int) -> None:
        connection = scratch.server.connect(scratch.names[alias])
        try:
            for count in range(10**9):
                if self._stop.is_set():
                    return
                name = f"w{number}-{count}"
                try:
                    with connection, connection.cursor() as cursor:
                        cursor.execute("INSERT INTO fidelity_tag (name) VALUES (%s)", [name])
                except psycopg2.Error:
                    with self._lock:
                        self.failed += 1
                    continue
                with self._lock:
                    self.committed.add(name)
        finally:
            connection.close()

    def count(self) -> int:
        with self._lock:
            return len(self.committed)

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


def tag_names_in_safety_backup(alias: str, name: str) -> set[str]:
    repository = configured_repository(alias)
    with repository.spooled(repository.info(name)) as archive:
        manifest = verify_archive(archive)
        archive.seek(0)
        for entry, data in iter_tables(archive, manifest):
            if entry.name == "fidelity_tag":
                index = [column.name for column in entry.columns].index("name")
                return {str(row[index]) for row in decode_lines(data, [False] * len(entry.columns))}
    raise AssertionError("the safety backup holds no fidelity_tag")


def tag_names(alias: str) -> set[str]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT name FROM fidelity_tag")
        return {str(row[0]) for row in cursor.fetchall()}


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

    with Writers(scratch, target) as writers:
        writers.wait_for(50)
        before = writers.count()
        result = run_restore(target, str(archive))
        during = writers.count() - before
        # Some rows after the swap too: they must land in the restored table.
        writers.wait_for(writers.count() + 50)

    assert result.restored
    assert result.safety_backup is not None
    in_safety = tag_names_in_safety_backup(target, result.safety_backup)
    in_result = tag_names(target)
    assert during > 0
    assert "from the backup" in in_result
    assert writers.committed - in_safety - in_result == set()
    # The safety backup is the state the restore replaced: nothing in it is also in the result.
    assert writers.committed & in_safety & in_result == set()
    assert in_safety - writers.committed == set()
    assert {name for name in in_result if name.startswith("w")} <= writers.committed
