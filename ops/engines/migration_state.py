"""Bringing a database's schema to the exact migration state a backup recorded."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
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


def migrate_to_recorded(connection: BaseDatabaseWrapper, recorded: dict[str, list[str]]) -> int:
    """Apply, from an empty schema, exactly the migrations ``recorded``; returns how many ran.

    Runs on ``connection`` as it is: inside the caller's transaction on PostgreSQL (transactional
    DDL), so a failure or a kill later rolls the schema back too. No post_migrate signal is sent:
    content types and permissions come from the archive like any other rows.
    """
    executor = MigrationExecutor(connection)
    targets = _recorded_targets(executor.loader.graph, recorded)
    plan = executor.migration_plan(targets)
    if plan:
        executor.migrate(targets, plan=plan)
    return len(plan)
