"""The suite really runs on PostgreSQL, and on a server the suite controls."""

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.db import connection

from tests import postgres_server
from tests.postgres_server import PostgresServer, throwaway_cluster


@pytest.mark.django_db
def test_default_database__is_a_real_postgresql_server() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int")
        (version,) = cursor.fetchone()
    assert version >= 120000


def test_pg_server__creates_and_drops_databases(pg_server: PostgresServer) -> None:
    pg_server.create_database("harness_scratch")
    try:
        with pg_server.connect("harness_scratch") as conn, conn.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone() == ("harness_scratch",)
        conn.close()
    finally:
        pg_server.drop_database("harness_scratch")
    with pg_server.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = 'harness_scratch'")
        assert cursor.fetchone() == (0,)
    conn.close()


@pytest.mark.django_db
def test_default_database__runs_the_chosen_server_version() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int")
        (version,) = cursor.fetchone()
    chosen = os.environ.get("TEST_POSTGRES_VERSION")
    if chosen and not os.environ.get("TEST_DATABASE_URL"):
        assert version // 10000 == int(chosen)
    assert version // 10000 in (15, 16)


@pytest.mark.slow
def test_throwaway_cluster__runs_binaries_only_root_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pgserver's PostgreSQL 16 installed in a folder the cluster's unprivileged user cannot enter,
    # as in a virtualenv under /root: the harness runs a copy every user can read.
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None, "pgserver (tests/requirements.txt)"
    assert spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    private = tmp_path / "private"  # a site-packages folder, as the wheel lays it out
    private.mkdir(mode=0o700)
    shutil.copytree(package / "pginstall", private / "pgserver" / "pginstall", symlinks=True)
    shutil.copytree(package.parent / "pgserver.libs", private / "pgserver.libs", symlinks=True)
    cache = Path(tempfile.mkdtemp(prefix="kidoo-pg-cache-"))
    cache.chmod(0o755)
    monkeypatch.setattr(postgres_server, "_CACHE", cache)
    monkeypatch.setenv("TEST_POSTGRES_BINDIR", str(private / "pgserver" / "pginstall" / "bin"))
    try:
        with throwaway_cluster() as server:
            conn = server.connect()
            with conn.cursor() as cursor:
                cursor.execute("SELECT current_setting('server_version_num')::int")
                (version,) = cursor.fetchone()
            conn.close()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert version // 10000 == 16
