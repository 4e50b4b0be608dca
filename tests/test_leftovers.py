"""Leftovers of killed work are swept (finding 10 of issue 14): private schemas, stdin spooling."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections
from pyrage import x25519

from ops.archive.format import CorruptArchive
from ops.backup import run_backup
from ops.repository.backups import configured_repository, default_namespace
from ops.restore import run_restore
from tests.commands import run_command
from tests.fidelity.data import fingerprint
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")


def leave_a_private_schema(alias: str) -> None:
    """What a restore killed mid-load leaves: its private schema with a loaded table."""
    with connections[alias].cursor() as cursor:
        cursor.execute("CREATE SCHEMA ops_restore_0123456789ab")
        cursor.execute("CREATE TABLE ops_restore_0123456789ab.fidelity_tag (id int)")


def private_schemas(alias: str) -> list[str]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ops\\_restore\\_%%'")
        return [str(row[0]) for row in cursor.fetchall()]


def test_restore__one_connection_drops_a_stale_private_schema(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any
) -> None:
    settings.OPS = {**settings.OPS, "RESTORE_JOBS": 1}
    source = scratch.postgres()
    User.objects.db_manager(source).create_user("ada", "a@example.org", "pw")
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    leave_a_private_schema(target)

    result = run_restore(target, str(archive))

    assert (result.restored, result.jobs) == (True, 1)
    assert private_schemas(target) == []
    assert fingerprint(target) == fingerprint(source)


def test_restore__cross_engine_drops_a_stale_private_schema(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.sqlite()
    User.objects.db_manager(source).create_user("ada", "a@example.org", "pw")
    archive = tmp_path / "s.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    leave_a_private_schema(target)

    assert run_restore(target, str(archive)).restored

    assert private_schemas(target) == []
    assert User.objects.using(target).get().username == "ada"


class Zeros:
    """A stream of ``size`` zero bytes that counts what was read from it."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_bytes = 0

    def read(self, size: int = -1, /) -> bytes:
        count = self.left if size < 0 else min(size, self.left)
        self.left -= count
        self.read_bytes += count
        return bytes(count)


def test_restore__stdin_is_refused_at_its_first_bad_byte_not_spooled(scratch: ScratchDatabases) -> None:
    target = scratch.postgres()
    zeros = Zeros(64 * 1024 * 1024)

    with pytest.raises(CorruptArchive, match="not a backup archive"):
        run_restore(target, "-", stdin=zeros)

    assert zeros.read_bytes < 1024 * 1024


def test_restore__stdin_truncated_archive_is_refused_and_nothing_changes(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    User.objects.db_manager(source).create_user("ada", "a@example.org", "pw")
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    User.objects.db_manager(target).create_user("bob", "b@example.org", "pw")
    before = fingerprint(target)
    with archive.open("rb") as handle:
        data = handle.read()

    class Half:
        def __init__(self) -> None:
            self.data = data[: len(data) // 2]

        def read(self, size: int = -1, /) -> bytes:
            piece, self.data = (self.data, b"") if size < 0 else (self.data[:size], self.data[size:])
            return piece

    with pytest.raises(CorruptArchive, match="truncated"):
        run_restore(target, "-", stdin=Half())

    assert fingerprint(target) == before


def test_restore__stdin_encrypted_archive_is_verified_while_decrypted(
    scratch: ScratchDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))
    source = scratch.postgres()
    User.objects.db_manager(source).create_user("ada", "a@example.org", "pw")
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    target = scratch.postgres()

    with archive.open("rb") as stdin:
        assert run_restore(target, "-", stdin=stdin).restored

    assert fingerprint(target) == fingerprint(source)


def test_prune__removes_tmp_parts_over_an_hour_old_and_list_v2_shows_them(
    scratch: ScratchDatabases, backup_dir: Path
) -> None:
    alias = scratch.postgres()
    User.objects.db_manager(alias).create_user("ada", "a@example.org", "pw")
    run_command("backup", database=alias, verbosity=0)
    [backup] = configured_repository(alias).backups()
    folder = backup_dir / default_namespace(alias) / backup.name
    # What a backup killed mid-part leaves (LocalFolderStore.put), two hours ago and just now.
    old, fresh = folder / ".tmp-killed", folder / ".tmp-writing"
    old.write_bytes(bytes(8 * 1024 * 1024))
    fresh.write_bytes(b"a part being written")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))

    listed, _ = run_command("backup", database=alias, list=True, verbosity=2)
    terse, _ = run_command("backup", database=alias, list=True)
    pruned, _ = run_command("backup", database=alias, prune_only=True, verbosity=2)

    assert f"leftover {backup.name}/.tmp-killed: 8.0 MB, 2.0 h old" in listed
    assert f"leftover {backup.name}/.tmp-writing: 20 B, 0.0 h old" in listed
    assert "leftover" not in terse
    assert f"deleted       {backup.name}/.tmp-killed  leftover of a killed write" in pruned
    assert not old.exists()
    assert fresh.exists()
    assert configured_repository(alias).backups()[0].name == backup.name
