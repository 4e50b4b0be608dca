"""Retention applied to a repository: `backup --prune`, `--prune-only`, `--dry-run` (repository/prune.py)."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from ops.repository.backups import BackupRepository, configured_repository, default_namespace, new_backup_name
from ops.repository.prune import configured_policy, prune_repository
from ops.repository.retention import RetentionPolicy
from ops.repository.stores import LocalFolderStore, StoreError
from tests.commands import run_command
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")

KEEP_ONLY_THE_NEWEST = {
    "BACKUP_KEEP_LAST": 1,
    "BACKUP_KEEP_DAILY": 0,
    "BACKUP_KEEP_WEEKLY": 0,
    "BACKUP_KEEP_MONTHLY": 0,
}


def with_data(alias: str) -> str:
    User.objects.db_manager(alias).create_user(f"u{User.objects.using(alias).count()}", "u@example.org", "x")
    return alias


def backups_of(alias: str) -> list[str]:
    return [backup.name for backup in configured_repository(alias).backups()]


def line_of(output: str, name: str) -> str:
    [line] = [line for line in output.splitlines() if name in line]
    return line


def test_policy__from_the_ops_settings(settings: Any) -> None:
    assert configured_policy() == RetentionPolicy(3, 7, 4, 6)
    settings.OPS = {**settings.OPS, "BACKUP_KEEP_LAST": 5, "BACKUP_KEEP_MONTHLY": 12}
    assert configured_policy() == RetentionPolicy(5, 7, 4, 12)


def test_prune__dry_run_shows_reasons_and_deletes_nothing(scratch: ScratchDatabases, settings: Any) -> None:
    alias = with_data(scratch.postgres())
    for _ in range(3):
        run_command("backup", database=alias, verbosity=0)
    newest, *older = backups_of(alias)
    settings.OPS = {**settings.OPS, **KEEP_ONLY_THE_NEWEST}

    out, _ = run_command("backup", database=alias, prune_only=True, dry_run=True)

    assert "keep" in line_of(out, newest)
    assert "newest backup holding data, last" in line_of(out, newest)
    for name in older:
        assert "would delete" in line_of(out, name)
        assert "outside the retention policy" in line_of(out, name)
    assert out.splitlines()[-1].startswith("Dry run: would delete 2 and keep 1 backup(s)")
    assert "nothing was deleted" in out
    assert backups_of(alias) == [newest, *older]


def test_prune__after_a_backup_keeps_the_new_one_and_reports_in_json(
    scratch: ScratchDatabases, settings: Any
) -> None:
    alias = with_data(scratch.postgres())
    run_command("backup", database=alias, verbosity=0)
    run_command("backup", database=alias, verbosity=0)
    settings.OPS = {**settings.OPS, **KEEP_ONLY_THE_NEWEST}

    out, _ = run_command("backup", database=alias, prune=True, format="json")

    report = json.loads(out)
    assert backups_of(alias) == [report["name"]]
    assert report["prune"]["deleted"] == 2
    assert report["prune"]["failed"] == 0
    reasons = {entry["name"]: entry["reason"] for entry in report["prune"]["backups"]}
    assert reasons[report["name"]] == "newest backup holding data, last"


def test_prune__never_the_newest_with_data_nor_one_being_written_and_abandoned_parts_go(
    scratch: ScratchDatabases, settings: Any, backup_dir: Path
) -> None:
    alias = with_data(scratch.postgres())
    run_command("backup", database=alias, verbosity=0)
    [good] = backups_of(alias)
    # Later backups of the same database once it was emptied (forced: they would be skipped).
    User.objects.db_manager(alias).all().delete()
    run_command("backup", database=alias, force=True, verbosity=0)
    run_command("backup", database=alias, force=True, verbosity=0)
    folder = backup_dir / default_namespace(alias)
    store = LocalFolderStore(folder)
    now = dt.datetime.now(dt.UTC)
    # A backup another process is writing right now, one killed two days ago, and an object that
    # is not a backup at all.
    writing = new_backup_name("daily", now)
    abandoned = new_backup_name("daily", now - dt.timedelta(days=2))
    store.put(f"{writing}/part-00000", b"half a backup")
    store.put(f"{abandoned}/part-00000", b"what a killed backup left")
    store.put(f"{abandoned}/part-00001", b"more of it")
    store.put("notes/readme.txt", b"not ours")
    settings.OPS = {
        **settings.OPS,
        "BACKUP_KEEP_LAST": 0,
        "BACKUP_KEEP_DAILY": 0,
        "BACKUP_KEEP_WEEKLY": 0,
        "BACKUP_KEEP_MONTHLY": 0,
    }

    out, _ = run_command("backup", database=alias, prune_only=True, verbosity=2)

    assert backups_of(alias) == [good]
    assert "newest backup holding data" in line_of(out, good)
    assert "still being written" in line_of(out, writing)
    assert "deleted" in line_of(out, abandoned)
    assert "abandoned: never completed" in line_of(out, abandoned)
    assert (folder / writing / "part-00000").exists()
    assert not (folder / abandoned).exists()
    assert (folder / "notes" / "readme.txt").read_bytes() == b"not ours"
    assert "not a backup name: left alone" in line_of(out, "notes")
    assert out.splitlines()[-1].startswith("Pruned the local folder")


class OneStuckBackup(LocalFolderStore):
    """A folder where one backup's objects cannot be deleted (a permission problem, a stuck object)."""

    def __init__(self, root: Path, stuck: str) -> None:
        super().__init__(root)
        self.stuck = stuck

    def delete(self, keys: Sequence[str]) -> None:
        if any(key.startswith(f"{self.stuck}/") for key in keys):
            raise StoreError(f"Cannot delete {self.stuck} from the {self.description}.")
        super().delete(keys)


def test_prune__one_failing_delete_is_reported_and_the_rest_is_pruned(tmp_path: Path) -> None:
    names = []
    repository = BackupRepository(LocalFolderStore(tmp_path))
    for day in range(4):
        name = new_backup_name("daily", dt.datetime.now(dt.UTC) - dt.timedelta(days=day))
        with repository.create(name) as backup:
            backup.write(b"archive")
            backup.summary.update(holds_data=True)
        names.append(name)
    stuck = repository.backups()[2].name
    policy = RetentionPolicy(1, 0, 0, 0)

    result = prune_repository(BackupRepository(OneStuckBackup(tmp_path, stuck)), policy)

    assert [entry.name for entry in result.failed] == [stuck]
    assert f"Cannot delete {stuck}" in str(result.failed[0].error)
    assert len(result.deleted) == 2
    assert len(repository.backups()) == 2


def test_prune__a_failed_delete_exits_1_after_pruning_the_rest(
    scratch: ScratchDatabases, settings: Any, backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = with_data(scratch.postgres())
    for _ in range(3):
        run_command("backup", database=alias, verbosity=0)
    oldest = backups_of(alias)[-1]
    settings.OPS = {**settings.OPS, **KEEP_ONLY_THE_NEWEST}
    stuck = BackupRepository(OneStuckBackup(backup_dir / default_namespace(alias), oldest))
    monkeypatch.setattr("ops.management.commands.backup.configured_repository", lambda database: stuck)

    err = io.StringIO()
    with pytest.raises(CommandError, match=f"could not delete {oldest}") as raised:
        call_command("backup", database=alias, prune_only=True, stdout=io.StringIO(), stderr=err)

    assert raised.value.returncode == 1
    assert f"Could not delete {oldest}: Cannot delete {oldest}" in err.getvalue()
    assert backups_of(alias)[1:] == [oldest]


def test_prune__options_that_do_not_go_together_are_misuse(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()
    for args in (
        ["--dry-run"],
        ["--prune-only", "--list"],
        ["--prune-only", "-o", "-"],
        ["--prune", "-o", "x"],
    ):
        with pytest.raises(CommandError) as raised:
            call_command("backup", *args, database=alias, stdout=io.StringIO())
        assert raised.value.returncode == 2


def test_prune__leaves_a_backup_whose_manifest_it_cannot_read(tmp_path: Path) -> None:
    # A rollback to older code (or a damaged manifest.json) must not turn every newer backup into
    # "abandoned parts": the daily prune would delete them all, the newest with data included.
    repository = BackupRepository(LocalFolderStore(tmp_path))
    names = []
    for day in (30, 20, 10):
        name = new_backup_name("daily", dt.datetime.now(dt.UTC) - dt.timedelta(days=day))
        with repository.create(name) as backup:
            backup.write(b"archive")
            backup.summary.update(holds_data=True)
        names.append(name)
    newer_format = tmp_path / names[-1] / "manifest.json"
    manifest = json.loads(newer_format.read_text())
    newer_format.write_text(json.dumps({**manifest, "version": manifest["version"] + 1}))

    result = prune_repository(repository, RetentionPolicy(1, 0, 0, 0))

    [entry] = [entry for entry in result.entries if entry.name == names[-1]]
    assert (entry.action, entry.reason, entry.deleted) == ("keep", "unreadable manifest: left alone", False)
    assert newer_format.is_file()
    assert [backup.name for backup in repository.backups()] == [names[1]]
