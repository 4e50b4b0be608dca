"""ops.backup and the backup command: destinations, selection, output, atomicity, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from ops import backup as backup_module
from ops.archive.format import verify_archive
from ops.backup import run_backup
from ops.repository.backups import configured_repository
from tests.fidelity import models as fm
from tests.ops_databases import ScratchDatabases
from tests.scratch_databases import extra_database

pytestmark = pytest.mark.usefixtures("backup_dir")


def small_data(alias: str) -> None:
    User.objects.db_manager(alias).create_user("ada", "ada@example.org", "pw")
    tag = fm.Tag.objects.using(alias).create(name="one")
    fm.Everything.objects.using(alias).create(text="x").tags.add(tag)


def test_backup__manifest_describes_the_database(scratch: ScratchDatabases, tmp_path: Path) -> None:
    alias = scratch.postgres()
    small_data(alias)
    path = tmp_path / "a.kidoo-backup"

    result = run_backup(alias, output=str(path))

    with path.open("rb") as handle:
        manifest = verify_archive(handle)
    tables = {t.name: t for t in manifest.tables}
    assert manifest.vendor == "postgresql"
    # The server's own version string (15.x or 16.x: the suite runs on both).
    with connections[alias].cursor() as cursor:
        cursor.execute("SHOW server_version")
        assert manifest.server_version == cursor.fetchone()[0]
    assert manifest.server_version.split(".")[0] in ("15", "16")
    assert manifest.holds_data is True
    assert "0001_initial" in manifest.migrations["auth"]
    assert tables["auth_user"].rows == 1
    assert tables["fidelity_everything_tags"].rows == 1  # auto-created M2M table
    assert tables["auth_user"].model == "auth.User"
    assert len(tables["auth_user"].sha256) == 64
    # A whole-database backup: the history's rows and the recorded schema (ops/engines/pg_schema.py).
    assert tables["django_migrations"].model is None
    assert tables["django_migrations"].rows == sum(len(names) for names in manifest.migrations.values())
    assert "schema" in manifest.extra
    assert (result.tables, result.rows) == (len(manifest.tables), manifest.rows)
    assert path.stat().st_mode & 0o777 == 0o600


def test_backup__freshly_migrated_database_holds_no_data(scratch: ScratchDatabases, tmp_path: Path) -> None:
    result = run_backup(scratch.postgres(), output=str(tmp_path))
    assert result.holds_data is False
    assert result.rows > 0  # content types and permissions


def test_backup__include_and_exclude_by_app_or_model(scratch: ScratchDatabases, tmp_path: Path) -> None:
    alias = scratch.postgres()
    only_auth = run_backup(alias, output=str(tmp_path / "a"), include=["auth"])
    no_users = run_backup(alias, output=str(tmp_path / "b"), exclude=["auth.User", "fidelity"])
    with (tmp_path / "a").open("rb") as a, (tmp_path / "b").open("rb") as b:
        included = {t.name for t in verify_archive(a).tables}
        excluded = {t.name for t in verify_archive(b).tables}
    assert included == {"auth_permission", "auth_group", "auth_group_permissions", "auth_user"} | {
        "auth_user_groups",
        "auth_user_user_permissions",
    }
    assert only_auth.tables == len(included)
    assert "auth_user" not in excluded
    assert "auth_user_groups" not in excluded
    assert not any(name.startswith("fidelity") for name in excluded)
    assert "auth_group" in excluded
    assert no_users.tables == len(excluded)


def test_backup__unknown_app_is_misuse_exit_2(scratch: ScratchDatabases) -> None:
    with pytest.raises(CommandError, match="names no installed app or model: nope") as raised:
        call_command("backup", database=scratch.postgres(), include=["nope"])
    assert raised.value.returncode == 2


def test_backup__command_prints_one_summary_line_and_lists_in_the_repository(
    scratch: ScratchDatabases,
) -> None:
    alias = scratch.postgres()
    small_data(alias)
    out = io.StringIO()

    call_command("backup", database=alias, reason="daily", stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Backup ")
    assert "-daily-" in lines[0]
    assert " tables, " in lines[0]
    assert " rows in " in lines[0]
    [listed] = configured_repository(alias).backups()
    assert listed.summary["holds_data"] is True
    assert listed.summary["reason"] == "daily"


def test_backup__verbosity_2_shows_tables_and_json_format_for_scripts(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()
    small_data(alias)
    verbose, as_json = io.StringIO(), io.StringIO()

    call_command("backup", database=alias, verbosity=2, stdout=verbose)
    call_command("backup", database=alias, format="json", stdout=as_json)

    assert "backup: 1/" in verbose.getvalue()
    report: dict[str, Any] = json.loads(as_json.getvalue())
    assert set(report) >= {"name", "size", "tables", "rows", "seconds"}


def test_backup__to_stdout_writes_only_the_archive_there(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()
    small_data(alias)
    stdout, stderr = io.BytesIO(), io.StringIO()

    call_command("backup", database=alias, output="-", stdout=stdout, stderr=stderr)

    manifest = verify_archive(io.BytesIO(stdout.getvalue()))
    assert manifest.holds_data
    assert "Backup " in stderr.getvalue()


def test_backup__interrupted_backup_leaves_nothing_that_lists(
    scratch: ScratchDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = scratch.postgres()
    small_data(alias)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(backup_module, "_report", fail)
    with pytest.raises(KeyboardInterrupt):
        run_backup(alias)
    with pytest.raises(KeyboardInterrupt):
        run_backup(alias, output=str(tmp_path / "file.kidoo-backup"))

    assert configured_repository(alias).backups(include_incomplete=True) == []
    assert list(tmp_path.glob("*.kidoo-backup")) == []


def test_backup__connection_error_names_no_password(scratch: ScratchDatabases) -> None:
    entry = {**scratch.server.database_settings("missing_db"), "PASSWORD": "s3cret-pw"}
    with extra_database("broken", entry), pytest.raises(CommandError) as raised:
        call_command("backup", database="broken")
    assert raised.value.returncode == 1
    assert "s3cret-pw" not in str(raised.value)
    assert "Traceback" not in str(raised.value)


def test_backup__sqlite_through_the_backup_api(scratch: ScratchDatabases, tmp_path: Path) -> None:
    alias = scratch.sqlite()
    small_data(alias)

    result = run_backup(alias, output=str(tmp_path / "s"))

    with (tmp_path / "s").open("rb") as handle:
        manifest = verify_archive(handle)
    assert manifest.vendor == "sqlite"
    assert result.holds_data
    assert "fidelity_pgonly" not in {t.name for t in manifest.tables}
