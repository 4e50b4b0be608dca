"""backup -o: what it may write over (finding 5 of issue 14) and whether the file is encrypted (6)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from pyrage import x25519

from ops.archive.format import verify_archive
from ops.repository.backups import configured_repository
from ops.repository.encryption import is_age_encrypted
from ops.restore import run_restore
from tests.commands import failing_command, run_command
from tests.fidelity.data import fingerprint
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")


def with_a_user(scratch: ScratchDatabases) -> str:
    alias = scratch.postgres()
    User.objects.db_manager(alias).create_user("ada", "ada@example.org", "pw")
    return alias


def test_backup_output__existing_unrelated_file_is_refused_without_force(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    alias = with_a_user(scratch)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")

    error = failing_command("backup", database=alias, output=str(notes))

    assert error.returncode == 2
    assert f"{notes} already exists" in str(error)
    assert "--force" in str(error)
    assert notes.read_text() == "my notes"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_backup_output__force_replaces_a_regular_file_atomically(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    alias = with_a_user(scratch)
    target = tmp_path / "site.kidoo-backup"
    target.write_text("old")
    before = target.stat().st_ino

    out, _ = run_command("backup", database=alias, output=str(target), force=True)

    assert "Backup site.kidoo-backup" in out
    with target.open("rb") as handle:
        assert verify_archive(handle).holds_data
    # A rename of a new file, not a write into the old one.
    assert target.stat().st_ino != before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site.kidoo-backup"]


def test_backup_output__a_part_of_a_repository_backup_is_never_replaced(
    scratch: ScratchDatabases, backup_dir: Path
) -> None:
    alias = with_a_user(scratch)
    run_command("backup", database=alias)
    repository = configured_repository(alias)
    backup = repository.backups()[0]
    part = next(backup_dir.rglob("part-00000"))
    before = part.read_bytes()

    for force in (False, True):
        error = failing_command("backup", database=alias, output=str(part), force=force)
        assert error.returncode == 2
        assert "inside the backup repository's folder" in str(error)
    error = failing_command("backup", database=alias, output=f"{backup_dir}/", force=True)
    assert "inside the backup repository's folder" in str(error)

    assert part.read_bytes() == before
    assert repository.info(backup.name).complete


def test_backup_output__fifo_is_refused_even_with_force(scratch: ScratchDatabases, tmp_path: Path) -> None:
    alias = with_a_user(scratch)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    error = failing_command("backup", database=alias, output=str(fifo), force=True)

    assert error.returncode == 2
    assert "is a FIFO" in str(error)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_backup_output__symlink_is_refused_even_with_force(scratch: ScratchDatabases, tmp_path: Path) -> None:
    alias = with_a_user(scratch)
    real = tmp_path / "real.txt"
    real.write_text("keep me")
    link = tmp_path / "link.kidoo-backup"
    link.symlink_to(real)
    folder_link = tmp_path / "folder-link"
    folder_link.symlink_to(tmp_path)

    for path in (link, folder_link):
        error = failing_command("backup", database=alias, output=str(path), force=True)
        assert error.returncode == 2
        assert "symbolic link" in str(error)

    assert link.is_symlink()
    assert real.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_backup_output__device_node_is_refused_even_with_force(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    alias = with_a_user(scratch)
    # A private null device in the test's folder: never a real /dev file.
    device = tmp_path / "full"
    os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))

    error = failing_command("backup", database=alias, output=str(device), force=True)

    assert error.returncode == 2
    assert "is a device" in str(error)
    assert stat.S_ISCHR(device.lstat().st_mode)


def test_backup_output__missing_folder_with_trailing_slash_is_refused(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    alias = with_a_user(scratch)

    error = failing_command("backup", database=alias, output=f"{tmp_path}/missing-folder/")

    assert error.returncode == 2
    assert "missing-folder does not exist" in str(error)
    assert list(tmp_path.iterdir()) == []


def test_backup_output__existing_folder_gets_a_named_file(scratch: ScratchDatabases, tmp_path: Path) -> None:
    alias = with_a_user(scratch)

    out, _ = run_command("backup", database=alias, output=f"{tmp_path}/")

    [written] = list(tmp_path.iterdir())
    assert re.fullmatch(r"\d{8}T\d{6}Z-manual-[0-9a-f]{4}\.kidoo-backup", written.name)
    assert f"Backup {written.name}" in out


def test_backup_output__encrypted_to_the_configured_recipients(
    scratch: ScratchDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = with_a_user(scratch)
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))
    path = tmp_path / "site.kidoo-backup"

    out, _ = run_command("backup", database=alias, output=str(path))

    assert "encrypted to 1 age recipient(s)" in out
    assert is_age_encrypted(path.read_bytes()[:64])
    assert b"ada@example.org" not in path.read_bytes()
    target = scratch.postgres()
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    assert run_restore(target, str(path)).restored
    assert fingerprint(target) == fingerprint(alias)


def test_backup_output__no_encrypt_opts_out_and_says_so(
    scratch: ScratchDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = with_a_user(scratch)
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(x25519.Identity.generate().to_public()))
    path = tmp_path / "plain.kidoo-backup"

    out, _ = run_command("backup", database=alias, output=str(path), encrypt=False)

    assert "NOT encrypted (--no-encrypt)" in out
    with path.open("rb") as handle:
        assert verify_archive(handle).holds_data


def test_backup_output__without_recipients_the_summary_says_not_encrypted(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    alias = with_a_user(scratch)

    out, _ = run_command("backup", database=alias, output=str(tmp_path / "plain.kidoo-backup"))

    assert "NOT encrypted: no age recipients are configured (BACKUP_AGE_RECIPIENTS)" in out


def test_backup_output__no_encrypt_without_output_is_misuse(scratch: ScratchDatabases) -> None:
    error = failing_command("backup", database=with_a_user(scratch), encrypt=False)
    assert error.returncode == 2
