"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from tests.postgres_server import PostgresServer, test_postgres_server

pytest_plugins = ["tests.cloudinary_emulator.fixtures", "tests.ops_databases"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The real PostgreSQL server the suite runs against (throwaway, or TEST_DATABASE_URL)."""
    with test_postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def django_db_modify_db_settings(pg_server: PostgresServer) -> None:
    # In place: Django's connection handler holds these very dicts.
    default: dict[str, Any] = django_settings.DATABASES["default"]
    default.update(pg_server.database_settings(str(default["NAME"])))


@pytest.fixture(autouse=True)
def _isolated_media_root(settings: Any, tmp_path: Path) -> None:
    """Each test gets its own MEDIA_ROOT, so files never leak between tests."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
