"""Keeps the PostgreSQL-only fidelity models off SQLite databases."""

from typing import Any

from django.db import connections

POSTGRES_ONLY = {"pgonly"}


class PostgresOnlyModels:
    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if app_label == "fidelity" and model_name in POSTGRES_ONLY:
            return connections[db].vendor == "postgresql"
        return None
