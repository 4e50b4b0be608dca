"""Backups under concurrent writes see one snapshot; restores take turns; a killed restore changes nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from ops.archive.format import verify_archive
from ops.backup import run_backup
from ops.engines.pg_load import restore_lock_key
from ops.restore import run_restore
from tests.fidelity import models as fm
from tests.fidelity.data import fingerprint
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")
ACCOUNTS = 20
START_BALANCE = 1000


def _column_sums(path: Path) -> dict[str, int]:
    """Sum of the balance columns of the two account tables, read back from the archive."""
    from ops.archive.copy_text import decode_lines
    from ops.archive.format import iter_tables

    wanted = {"fidelity_everything": "big", "Awkward Table": "camelCase"}
    sums: dict[str, int] = {}
    with path.open("rb") as handle:
        manifest = verify_archive(handle)
        handle.seek(0)
        for entry, data in iter_tables(handle, manifest):
            if entry.name in wanted:
                index = [c.name for c in entry.columns].index(wanted[entry.name])
                rows = decode_lines(data, [False] * len(entry.columns))
                sums[entry.name] = sum(int(row[index]) for row in rows)
    return sums


def test_backup__concurrent_transfers_between_tables_see_one_snapshot(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    alias = scratch.postgres()
    tag = fm.Tag.objects.using(alias).create(name="t")
    for _ in range(ACCOUNTS):
        fm.Everything.objects.using(alias).create(big=START_BALANCE)
        fm.Awkward.objects.using(alias).create(select="", user_name="", camel=START_BALANCE, order=tag)
    stop = threading.Event()
    transfers = [0]

    def move_money() -> None:
        conn = scratch.server.connect(scratch.names[alias])
        rng = random.Random()
        try:
            while not stop.is_set():
                with conn, conn.cursor() as cur:
                    amount = rng.randint(1, 50)
                    # Debit one table, credit the other: only a snapshot sees the total intact.
                    cur.execute(
                        "UPDATE fidelity_everything SET big = big - %s WHERE id = "
                        "(SELECT min(id) + %s FROM fidelity_everything)",
                        [amount, rng.randrange(ACCOUNTS)],
                    )
                    cur.execute(
                        'UPDATE "Awkward Table" SET "camelCase" = "camelCase" + %s WHERE id = '
                        '(SELECT min(id) + %s FROM "Awkward Table")',
                        [amount, rng.randrange(ACCOUNTS)],
                    )
                transfers[0] += 1
        finally:
            conn.close()

    workers = [threading.Thread(target=move_money) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        archives = []
        for number in range(4):
            path = tmp_path / f"{number}.kidoo-backup"
            run_backup(alias, output=str(path))
            archives.append(path)
    finally:
        stop.set()
        for worker in workers:
            worker.join()

    assert transfers[0] > 20
    for path in archives:
        assert sum(_column_sums(path).values()) == 2 * ACCOUNTS * START_BALANCE


def test_restore__waits_for_another_restore_then_fails_cleanly(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any
) -> None:
    alias = scratch.postgres()
    archive = tmp_path / "a.kidoo-backup"
    run_backup(alias, output=str(archive))
    settings.OPS = {**settings.OPS, "RESTORE_LOCK_TIMEOUT": 1}
    holder = scratch.server.connect(scratch.names[alias])
    holder.autocommit = True
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [restore_lock_key(connections[alias])])
    try:
        started = time.monotonic()
        with pytest.raises(CommandError, match=r"Another restore of database .* is running") as raised:
            call_command("restore", str(archive), database=alias, interactive=False)
        waited = time.monotonic() - started
    finally:
        holder.close()

    assert raised.value.returncode == 1
    assert waited >= 1
    assert run_restore(alias, str(archive)).restored


def test_restore__two_concurrent_restores_take_turns(scratch: ScratchDatabases, tmp_path: Path) -> None:
    source = scratch.postgres()
    User.objects.db_manager(source).create_user("ada", "a@example.org", "pw")
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    User.objects.db_manager(target).create_user("other", "o@example.org", "pw")
    outcomes: list[object] = []

    def restore() -> None:
        try:
            outcomes.append(run_restore(target, str(archive)).restored)
        except Exception as error:
            outcomes.append(error)
        finally:
            connections[target].close()

    threads = [threading.Thread(target=restore) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == [True, True]
    assert fingerprint(target) == fingerprint(source)


@pytest.mark.slow
def test_restore__sigkill_mid_load_leaves_the_database_unchanged(
    scratch: ScratchDatabases, tmp_path: Path, backup_dir: Path
) -> None:
    source = scratch.postgres()
    with connections[source].cursor() as cursor:
        # Enough rows that the COPY phase lasts long enough to be caught.
        cursor.execute(
            "INSERT INTO fidelity_node (name) SELECT md5(i::text) FROM generate_series(1, 600000) i"
        )
    archive = tmp_path / "big.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    User.objects.db_manager(target).create_user("precious", "p@example.org", "pw")
    before = fingerprint(target)
    connections[target].close()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "KIDOO_TEST_DATABASE_URL": scratch.url(target),
        "KIDOO_TEST_BACKUP_DIR": str(backup_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "restore", str(archive), "--no-input"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watcher = scratch.server.connect()
    watcher.autocommit = True
    try:
        deadline = time.monotonic() + 60
        copying = False
        while time.monotonic() < deadline and process.poll() is None:
            with watcher.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND query LIKE 'COPY %%FROM STDIN%%'",
                    [scratch.names[target]],
                )
                copying = cursor.fetchone()[0] > 0
            if copying:
                break
            time.sleep(0.02)
        assert copying, process.communicate()
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        watcher.close()
        if process.poll() is None:
            process.kill()

    assert process.returncode == -signal.SIGKILL
    assert fingerprint(target) == before
    # The lock died with the process: the next restore goes through, and drops the private schema
    # the killed one was loading (ops/engines/pg_parallel.py).
    assert run_restore(target, str(archive)).restored
    with connections[target].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ops\\_restore\\_%'")
        assert cursor.fetchone()[0] == 0
