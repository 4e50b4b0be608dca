"""Both PostgreSQL drivers: the suite runs on the one OPS_TEST_DRIVER names (tests/pg_driver.py),
and ops/engines/pg_copy.py streams COPY on whichever Django's backend uses."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import DataError, connection, transaction

from ops.engines import pg_copy
from tests import pg_driver
from tests.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
_REPORT = (
    "import django; django.setup(); from django.db import connection; from ops.engines import pg_copy; "
    "connection.ensure_connection(); print(pg_copy.driver(), type(connection.connection).__module__)"
)


def expected_driver() -> str:
    # Unset: Django's own choice, psycopg 3 whenever it is importable.
    return pg_driver.wanted() or ("psycopg" if importlib.util.find_spec("psycopg") else "psycopg2")


@pytest.mark.django_db
def test_driver__the_selected_one_is_the_one_django_uses() -> None:
    connection.ensure_connection()

    assert pg_copy.driver() == expected_driver()
    assert type(connection.connection).__module__.split(".")[0] == expected_driver()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("settings_module", "url_variable"),
    [("tests.settings", "KIDOO_TEST_DATABASE_URL"), ("bench.settings", "BENCH_DATABASE_URL")],
)
def test_driver__a_spawned_process_uses_the_same_one(
    pg_server: PostgresServer, settings_module: str, url_variable: str
) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        url_variable: pg_server.url(str(connection.settings_dict["NAME"])),
    }

    result = subprocess.run(
        [sys.executable, "-c", _REPORT], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr[-3000:]
    name, module = result.stdout.split()
    assert name == expected_driver()
    assert module.split(".")[0] == expected_driver()


class _RecordingSink:
    def __init__(self) -> None:
        self.writes: list[int] = []
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.writes.append(len(data))
        self.data += data
        return len(data)


class _RowSource:
    """COPY text made as it is read: records every size asked for."""

    def __init__(self, rows: int) -> None:
        self._rows = iter(range(1, rows + 1))
        self.asked: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        chunk = bytearray()
        for number in self._rows:
            chunk += f"{number}\t{'y' * 100}\n".encode()
            if len(chunk) >= size - 200:
                break
        return bytes(chunk)


@pytest.mark.django_db
def test_pg_copy__copy_to_streams_a_table_several_times_its_buffer() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE ops_copy_out AS "
            "SELECT i, repeat('x', 100) AS t FROM generate_series(1, 60000) i"
        )
        sink = _RecordingSink()
        rows = pg_copy.copy_to(cursor.cursor, "COPY ops_copy_out (i, t) TO STDOUT", sink)

    assert rows == 60_000
    lines = bytes(sink.data).split(b"\n")
    assert lines[0] == b"1\t" + b"x" * 100
    assert lines[-2] == b"60000\t" + b"x" * 100
    assert len(lines) == 60_001
    # Streamed: many writes (6 MB of rows), none much larger than one buffer.
    assert len(sink.writes) >= 5
    assert max(sink.writes) <= pg_copy.COPY_BUFFER + 200


class _FailingSink(_RecordingSink):
    def write(self, data: bytes) -> int:
        if self.writes:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.django_db(transaction=True)
def test_pg_copy__copy_to_a_server_error_mid_copy_is_the_drivers_error_and_the_connection_lives_on() -> None:
    # The error comes after rows were sent: row 50,000 divides by zero.
    statement = "COPY (SELECT i, 1 / (i - 50000) FROM generate_series(1, 60000) i) TO STDOUT"
    raw = pg_copy.connect(connection)
    try:
        with (
            pytest.raises(Exception, match="division by zero") as raised,
            pg_copy.transaction(raw),
            raw.cursor() as cursor,
        ):
            pg_copy.copy_to(cursor, statement, _RecordingSink())
        assert pg_copy.sqlstate(raised.value) == "22012"  # division_by_zero
        with pg_copy.transaction(raw), raw.cursor() as cursor:
            cursor.execute("SELECT 41 + 1")
            assert cursor.fetchone()[0] == 42
    finally:
        raw.close()


@pytest.mark.django_db(transaction=True)
def test_pg_copy__copy_to_a_sink_failing_mid_copy_stops_it_and_the_connection_lives_on() -> None:
    statement = "COPY (SELECT i, repeat('x', 100) FROM generate_series(1, 200000) i) TO STDOUT"
    raw = pg_copy.connect(connection)
    try:
        sink = _FailingSink()
        with pytest.raises(OSError, match="No space left"), pg_copy.transaction(raw), raw.cursor() as cursor:
            pg_copy.copy_to(cursor, statement, sink)
        assert len(sink.writes) == 1  # one buffer written, the next refused
        with pg_copy.transaction(raw), raw.cursor() as cursor:
            cursor.execute("SELECT 41 + 1")
            assert cursor.fetchone()[0] == 42
            # And COPY works again on it, whole.
            rows = pg_copy.copy_to(
                cursor, "COPY (SELECT i FROM generate_series(1, 1000) i) TO STDOUT", sink2 := _RecordingSink()
            )
        assert rows == 1000
        assert bytes(sink2.data).count(b"\n") == 1000
    finally:
        raw.close()


@pytest.mark.django_db
def test_pg_copy__copy_from_reads_the_stream_a_buffer_at_a_time() -> None:
    source = _RowSource(60_000)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE ops_copy_in (i integer, t text)")
        rows = pg_copy.copy_from(cursor.cursor, "COPY ops_copy_in (i, t) FROM STDIN", source)
        cursor.execute("SELECT count(*), sum(i), min(length(t)) FROM ops_copy_in")
        stored = cursor.fetchone()

    assert rows == 60_000
    assert tuple(stored) == (60_000, 60_000 * 60_001 // 2, 100)
    # Never "everything at once": each read asks for one buffer.
    assert len(source.asked) >= 5
    assert set(source.asked) == {pg_copy.COPY_BUFFER}


def create_then_fail(raw: Any) -> None:
    with pg_copy.transaction(raw), raw.cursor() as cursor:
        cursor.execute("CREATE TABLE ops_tx_undone (i integer)")
        _ = 1 / 0


@pytest.mark.django_db(transaction=True)
def test_pg_copy__transaction_commits_or_rolls_back_and_keeps_the_connection_open() -> None:
    raw = pg_copy.connect(connection)
    try:
        with pg_copy.transaction(raw), raw.cursor() as cursor:
            cursor.execute("CREATE TABLE ops_tx_kept (i integer)")
        with pytest.raises(ZeroDivisionError):
            create_then_fail(raw)
        with pg_copy.transaction(raw), raw.cursor() as cursor:
            cursor.execute(
                "SELECT to_regclass('ops_tx_kept') IS NOT NULL, to_regclass('ops_tx_undone') IS NULL"
            )
            assert tuple(cursor.fetchone()) == (True, True)
            cursor.execute("DROP TABLE ops_tx_kept")
    finally:
        raw.close()


@pytest.mark.django_db
def test_pg_copy__sqlstate_of_a_driver_error() -> None:
    with pytest.raises(DataError) as raised, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")

    assert pg_copy.sqlstate(raised.value.__cause__) == "22012"
    assert pg_copy.sqlstate(None) is None
