"""Migration history as Django reads it: squashed migrations, apps no longer installed, their tables.

``tests/squashapp`` has two histories: ``migrations`` (0001-0003, the last a data migration) and
``migrations_squashed`` (what ``squashmigrations squashapp 0003`` wrote, the replaced files then
deleted, and a 0004 written after it). Each test switches the code between them with
MIGRATION_MODULES, as a deploy would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from ops.backup import run_backup
from ops.engines.migration_state import UnknownMigrations
from ops.errors import OpsError
from ops.restore import run_restore
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")

UNSQUASHED = "tests.squashapp.migrations"
SQUASHED = "tests.squashapp.migrations_squashed"
REPLACED = {
    ("squashapp", "0001_initial"),
    ("squashapp", "0002_widget_size"),
    ("squashapp", "0003_seed_widget"),
}
SQUASH = ("squashapp", "0001_squashed_0003_seed_widget")


@contextlib.contextmanager
def code(history: str | None) -> Iterator[None]:
    """The code as deployed: squashapp installed with ``history``, or (None) not installed at all."""
    if history is None:
        yield
        return
    with override_settings(
        INSTALLED_APPS=[*settings.INSTALLED_APPS, "tests.squashapp"],
        MIGRATION_MODULES={"squashapp": history},
    ):
        yield


def rows(alias: str, sql: str) -> list[tuple[Any, ...]]:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]


def history(alias: str) -> set[tuple[str, str]]:
    return {(str(a), str(n)) for a, n in rows(alias, "SELECT app, name FROM django_migrations")}


def widgets(alias: str) -> list[tuple[Any, ...]]:
    return rows(alias, "SELECT id, name, size FROM squashapp_widget ORDER BY id")


def new_database(scratch: ScratchDatabases, engine: str) -> str:
    return scratch.postgres() if engine == "postgresql" else scratch.sqlite()


def source_with_widgets(
    scratch: ScratchDatabases, engine: str, tmp_path: Path, history_: str
) -> tuple[str, Path]:
    """A database migrated by code with ``history_``, holding widgets; and a backup of it in a file."""
    source = new_database(scratch, engine)
    with code(history_):
        call_command("migrate", database=source, verbosity=0)
        with connections[source].cursor() as cursor:
            cursor.execute(
                "INSERT INTO squashapp_widget (name, size, colour) VALUES ('made by hand', 5, '')"
                if history_ == SQUASHED
                else "INSERT INTO squashapp_widget (name, size) VALUES ('made by hand', 5)"
            )
        archive = tmp_path / f"{engine}-{history_.rsplit('.', 1)[-1]}.kidoo-backup"
        run_backup(source, output=str(archive))
    return source, archive


def pending(alias: str) -> list[Any]:
    executor = MigrationExecutor(connections[alias])
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


ENGINES = ["postgresql", "sqlite"]


@pytest.mark.parametrize("engine", ENGINES)
def test_restore__backup_before_squash_into_squashed_code(
    scratch: ScratchDatabases, tmp_path: Path, engine: str
) -> None:
    source, archive = source_with_widgets(scratch, engine, tmp_path, UNSQUASHED)
    assert history(source) >= REPLACED
    assert SQUASH not in history(source)

    with code(SQUASHED):
        target = new_database(scratch, engine)
        result = run_restore(target, str(archive))

        assert result.restored
        # The squash stands for what the backup applied; 0004, written after it, is migrated forward.
        assert result.migrated_forward == 1
        assert widgets(target) == widgets(source)
        assert history(target) >= REPLACED
        assert pending(target) == []
        assert rows(target, "SELECT colour FROM squashapp_widget") == [("",), ("",)]


@pytest.mark.parametrize("engine", ENGINES)
def test_restore__backup_after_squash_into_unsquashed_code(
    scratch: ScratchDatabases, tmp_path: Path, engine: str
) -> None:
    source, archive = source_with_widgets(scratch, engine, tmp_path, SQUASHED)
    # Django records the replaced migrations and, once all are, the squash itself.
    assert REPLACED | {SQUASH} <= history(source)
    with connections[source].cursor() as cursor:
        # Back to the squashed history as of the squash: this older code has no 0004.
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'squashapp' AND name = '0004_widget_colour'"
        )
        cursor.execute("ALTER TABLE squashapp_widget DROP COLUMN colour")
    with code(SQUASHED):
        # Replaces the archive source_with_widgets wrote (as `backup -o --force` would).
        run_backup(source, output=str(archive), overwrite=True)

    with code(UNSQUASHED):
        target = new_database(scratch, engine)
        result = run_restore(target, str(archive))

        assert result.restored
        assert result.migrated_forward == 0
        assert widgets(target) == widgets(source)
        # The squash's row is carried: code that has the squash again reads the same history.
        assert history(target) == history(source)
        assert pending(target) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_restore__squashed_history_restored_into_the_same_squashed_code(
    scratch: ScratchDatabases, tmp_path: Path, engine: str
) -> None:
    source, archive = source_with_widgets(scratch, engine, tmp_path, SQUASHED)
    with code(SQUASHED):
        target = new_database(scratch, engine)
        result = run_restore(target, str(archive))

        assert (result.restored, result.migrated_forward) == (True, 0)
        assert history(target) == history(source)
        assert pending(target) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_restore__backup_of_newer_code_is_refused_naming_the_migrations(
    scratch: ScratchDatabases, tmp_path: Path, engine: str
) -> None:
    source, _ = source_with_widgets(scratch, engine, tmp_path, UNSQUASHED)
    with connections[source].cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
            ["squashapp", "0009_from_the_future", "2026-01-01 00:00:00"],
        )
    archive = tmp_path / "newer.kidoo-backup"
    with code(UNSQUASHED):
        run_backup(source, output=str(archive))
        target = new_database(scratch, engine)
        with pytest.raises(UnknownMigrations, match=r"squashapp\.0009_from_the_future"):
            run_restore(target, str(archive))


@pytest.mark.parametrize("engine", ENGINES)
def test_restore__history_of_an_app_not_installed_is_carried_never_blocking(
    scratch: ScratchDatabases, tmp_path: Path, engine: str
) -> None:
    source, archive = source_with_widgets(scratch, engine, tmp_path, UNSQUASHED)
    with connections[source].cursor() as cursor:
        # A plugin removed long ago left a row and a table.
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('oldplugin', '0001_initial', %s)",
            ["2020-01-01 00:00:00"],
        )
    with code(UNSQUASHED):
        run_backup(source, output=str(archive), overwrite=True)

    # This code installs neither squashapp nor oldplugin.
    target = new_database(scratch, engine)
    result = run_restore(target, str(archive))

    assert result.restored
    assert (
        "Migration history of apps not installed here, restored as rows: oldplugin, squashapp."
        in result.notes
    )
    assert {("oldplugin", "0001_initial")} | REPLACED <= history(target)
    if engine == "postgresql":
        # A whole-database backup holds the table; it comes back as it was.
        assert "Tables kept, no installed app owns them: squashapp_widget." in result.notes
        assert widgets(target) == widgets(source)
    else:
        # SQLite backups hold model tables, and a SQLite target is built by migrations: named, not loaded.
        assert "Not restored, no installed app owns them (restore into PostgreSQL): squashapp_widget." in (
            result.notes
        )


def test_restore__uninstalled_apps_table_is_kept_over_an_existing_database(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source, archive = source_with_widgets(scratch, "postgresql", tmp_path, UNSQUASHED)
    target = scratch.postgres()

    result = run_restore(target, str(archive))

    assert widgets(target) == widgets(source)
    assert "Tables kept, no installed app owns them: squashapp_widget." in result.notes


def test_restore__failing_forward_migration_leaves_the_database_as_it_was(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source, archive = source_with_widgets(scratch, "postgresql", tmp_path, UNSQUASHED)
    with code(UNSQUASHED):
        target = scratch.postgres()
        call_command("migrate", database=target, verbosity=0)
    before = widgets(target)
    before_history = history(target)

    with code("tests.squashapp.migrations_failing"), pytest.raises(OpsError, match="nothing was changed"):
        run_restore(target, str(archive))

    assert widgets(target) == before
    assert history(target) == before_history
    assert widgets(source) != before


@pytest.mark.parametrize("history_", [UNSQUASHED, SQUASHED, None])
def test_check_known__reads_the_migrations_on_disk_as_djangos_loader_does(
    history_: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db.migrations.loader import MigrationLoader

    from ops.engines import migration_state

    with code(history_):
        loader = MigrationLoader(None, ignore_no_migrations=True, load=True)
        on_disk = set(loader.disk_migrations)
        assert migration_state._names_on_disk() == on_disk

        def recorded(keys: set[tuple[str, str]]) -> dict[str, list[str]]:
            by_app: dict[str, list[str]] = {}
            for app, name in sorted(keys):
                by_app.setdefault(app, []).append(name)
            return by_app

        some = sorted(on_disk)
        cases = {
            "this code's": on_disk,
            "older code's": on_disk - {max(some)},
            "with an app not installed": on_disk | {("gone_app", "0001_initial")},
            "newer code's": on_disk | {("auth", "9999_newer")},
        }
        for label, keys in cases.items():
            outcomes = []
            for fast in (True, False):
                if not fast:  # Django's loader, as before the shortcut
                    monkeypatch.setattr(migration_state, "_names_on_disk", lambda: None)
                try:
                    outcomes.append(migration_state.check_known(connections["default"], recorded(keys)))
                except UnknownMigrations as error:
                    outcomes.append(str(error))
                monkeypatch.undo()
            fast_result, loader_result = outcomes
            assert getattr(fast_result, "uninstalled_apps", fast_result) == getattr(
                loader_result, "uninstalled_apps", loader_result
            ), label
            # Only a backup of exactly this code's migrations skips planning the ones to apply.
            assert getattr(fast_result, "matches_code", False) is (
                label in ("this code's", "with an app not installed")
            ), label
