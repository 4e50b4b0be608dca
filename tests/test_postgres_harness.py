"""The suite really runs on PostgreSQL, and on a server the suite controls."""

import pytest
from django.db import connection

from tests.postgres_server import PostgresServer


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
