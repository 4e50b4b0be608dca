"""Bringing a database's schema to the exact migration state a backup recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from ops.errors import OpsError


class UnknownMigrations(OpsError):
    """The backup was taken by code with migrations this code does not have."""


def check_known(connection: BaseDatabaseWrapper, recorded: dict[str, list[str]]) -> None:
    loader = MigrationLoader(connection, ignore_no_migrations=True, load=True)
    known = set(loader.disk_migrations)
    unknown = [
        f"{app}.{name}" for app, names in recorded.items() for name in names if (app, name) not in known
    ]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise UnknownMigrations(
            f"The backup was taken by newer code: this code does not have the migrations {shown}. "
            "Deploy the code the backup was taken with (or newer), then restore."
        )


def _recorded_targets(graph: MigrationGraph, recorded: dict[str, list[str]]) -> list[tuple[str, str]]:
    """The newest recorded migration of each app (the ones no other recorded one depends on)."""
    targets = []
    for app, names in recorded.items():
        nodes = [(app, name) for name in names if (app, name) in graph.nodes]
        ancestors: set[tuple[str, str]] = set()
        for node in nodes:
            ancestors.update(graph.forwards_plan(node)[:-1])
        targets += [node for node in nodes if node not in ancestors]
    return targets


def recorded_state(connection: BaseDatabaseWrapper, recorded: dict[str, list[str]]) -> ProjectState:
    """The models (historical, as ``state.apps``) exactly as of the ``recorded`` migrations."""
    loader = MigrationLoader(connection, ignore_no_migrations=True, load=True)
    return loader.project_state(_recorded_targets(loader.graph, recorded), at_end=True)


class _OneAfterAnotherExecutor(MigrationExecutor):
    """Migrations inside one transaction, each one's deferred checks done before the next runs.

    Django's ``migrate`` commits after each migration, and PostgreSQL checks the deferred foreign
    keys of the rows a data migration wrote then. Inside the restore's one transaction each
    migration is a savepoint only: the checks would still be pending when a later migration alters
    the same table, which PostgreSQL refuses ("pending trigger events"). So they are run at the
    end of each migration, as Django does where it needs them done (``check_constraints``).
    """

    def apply_migration(
        self, state: Any, migration: Migration, fake: bool = False, fake_initial: bool = False
    ) -> Any:
        state = super().apply_migration(state, migration, fake=fake, fake_initial=fake_initial)
        if self.connection.in_atomic_block and self.connection.features.can_defer_constraint_checks:
            self.connection.check_constraints()
        return state


@contextlib.contextmanager
def standing_in(connection: BaseDatabaseWrapper) -> Iterator[BaseDatabaseWrapper]:
    """``connection`` is ``connections[connection.alias]`` in this thread while the block runs.

    A data migration that writes through the default connection (``Model.objects.create()``
    without ``using``) or names ``schema_editor.connection.alias`` then writes into the database
    being built (a private schema, a new SQLite file) and never into the live one. Django's
    ``connections`` is per thread, so other threads keep the live connection.
    """
    alias = connection.alias
    previous = connections[alias]
    if previous is connection:
        yield connection
        return
    connections[alias] = connection
    try:
        yield connection
    finally:
        connections[alias] = previous
        if apps.is_installed("django.contrib.contenttypes"):
            from django.contrib.contenttypes.models import ContentType

            # Ids cached from the database being built are not the live database's.
            ContentType.objects.clear_cache()


def migrate_to_recorded(connection: BaseDatabaseWrapper, recorded: dict[str, list[str]]) -> int:
    """Apply, from an empty schema, exactly the migrations ``recorded``; returns how many ran.

    Runs on ``connection`` as it is: inside the caller's transaction on PostgreSQL (transactional
    DDL), so a failure or a kill later rolls the schema back too. ``connection`` stands in for its
    alias meanwhile (``standing_in``). No post_migrate signal is sent: content types and
    permissions come from the archive like any other rows.
    """
    with standing_in(connection):
        executor = _OneAfterAnotherExecutor(connection)
        targets = _recorded_targets(executor.loader.graph, recorded)
        plan = executor.migration_plan(targets)
        if plan:
            executor.migrate(targets, plan=plan)
    return len(plan)
