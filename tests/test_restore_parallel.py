"""ops.engines.pg_parallel: a PostgreSQL restore loaded on several connections, swapped in all at once."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from hypothesis import given
from hypothesis import strategies as st

from ops.archive.format import CorruptArchive
from ops.backup import run_backup
from ops.engines import pg_copy, pg_load, pg_parallel
from ops.errors import OpsConfigurationError
from ops.restore import run_restore
from tests.fidelity import models as fm
from tests.fidelity.data import fingerprint, populate
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")


def schema_objects(alias: str) -> dict[str, list[tuple[str, ...]]]:
    """The live schema's shape: tables, indexes, constraints (with definitions), sequences."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT relname, relkind::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
            "ORDER BY 1"
        )
        relations = [tuple(map(str, row)) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2"
        )
        constraints = [tuple(map(str, row)) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = current_schema()::regnamespace "
            "ORDER BY 1"
        )
        indexes = [tuple(map(str, row)) for row in cursor.fetchall()]
    return {"relations": relations, "constraints": constraints, "indexes": indexes}


def shadow_schemas(alias: str) -> list[str]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ops\\_restore\\_%%'")
        return [str(row[0]) for row in cursor.fetchall()]


def populated_backup(scratch: ScratchDatabases, tmp_path: Path) -> tuple[str, Path]:
    """A database holding the fidelity app's data, and a backup of it in a file."""
    source = scratch.postgres()
    populate(source)
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))
    return source, archive


def test_parallel_restore__same_rows_and_schema_as_a_migrated_database(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source, archive = populated_backup(scratch, tmp_path)
    # A database that has never seen the fidelity app's hstore extension: the migrations install
    # it in the private schema and the swap moves it into the live one.
    target = scratch.postgres(migrated=False)

    result = run_restore(target, str(archive))

    assert (result.restored, result.jobs) == (True, 2)
    assert fingerprint(target) == fingerprint(source)
    assert schema_objects(target) == schema_objects(source)
    assert shadow_schemas(target) == []
    # Sequences continue after the restored ids, and the foreign keys hold.
    assert fm.Node.objects.using(target).create(name="after").pk > fm.Node.objects.using(source).count()
    with connections[target].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated")
        assert cursor.fetchone()[0] == 0


def test_parallel_restore__over_data_takes_a_safety_backup_and_replaces_what_the_backup_holds(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    User.objects.db_manager(source).create_user("ada", "ada@example.org", "pw")
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    User.objects.db_manager(target).create_user("other", "o@example.org", "pw")
    with connections[target].cursor() as cursor:
        cursor.execute("CREATE TABLE created_later (id int)")

    result = run_restore(target, str(archive))

    assert result.jobs == 2
    assert result.safety_backup is not None
    # A table the backup does not hold and no installed app owns is left alone, and named.
    assert fingerprint(target) == {**fingerprint(source), "created_later": (0, "")}
    assert "Left alone, not in the backup and of no installed app: created_later." in result.notes


def test_parallel_restore__a_private_schema_left_by_a_killed_restore_is_dropped(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    with connections[target].cursor() as cursor:
        cursor.execute("CREATE SCHEMA ops_restore_0123456789ab")
        cursor.execute("CREATE TABLE ops_restore_0123456789ab.auth_user (id int)")
        cursor.execute("CREATE SCHEMA kept_by_someone")

    run_restore(target, str(archive))

    assert shadow_schemas(target) == []
    with connections[target].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'kept_by_someone'")
        assert cursor.fetchone()[0] == 1


def test_parallel_restore__one_job_is_one_transaction_on_one_connection(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any
) -> None:
    source, archive = populated_backup(scratch, tmp_path)
    target = scratch.postgres()
    settings.OPS = {**settings.OPS, "RESTORE_JOBS": 1}

    result = run_restore(target, str(archive))

    assert result.jobs == 1
    assert fingerprint(target) == fingerprint(source)
    assert schema_objects(target) == schema_objects(source)


@pytest.mark.parametrize(
    ("statement", "movable"),
    [
        ("CREATE TABLE t (id serial PRIMARY KEY, tags text[])", True),
        ("CREATE EXTENSION hstore SCHEMA {schema}", True),
        ("CREATE VIEW v AS SELECT 1 AS one", False),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", False),
        ("CREATE TYPE mood AS ENUM ('happy', 'sad')", False),
        ("CREATE SEQUENCE loose", False),
    ],
)
def test_parallel_restore__only_what_moves_with_the_tables_may_be_built_privately(
    scratch: ScratchDatabases, statement: str, movable: bool
) -> None:
    alias = scratch.postgres(migrated=False)
    with pg_parallel.shadow_schema(alias) as shadow, shadow.connection.cursor() as cursor:
        cursor.execute(statement.format(schema=shadow.schema))
        cursor.execute(pg_parallel._FOREIGN_OBJECTS)
        foreign = cursor.fetchone()[0]
    assert (foreign == 0) == movable
    assert shadow_schemas(alias) == []


def test_parallel_restore__a_table_with_most_rows_is_loaded_by_several_streams(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    populate(source, big=False)
    with connections[source].cursor() as cursor:
        # Above _SPLIT_MIN_ROWS and most of the rows: dealt to RESTORE_JOBS COPY streams.
        cursor.execute(
            "INSERT INTO fidelity_node (name) SELECT 'node ' || i || E'\\ttab\\nline' "
            "FROM generate_series(1, 150000) i"
        )
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    User.objects.db_manager(target).create_user("replaced", "r@example.org", "pw")

    result = run_restore(target, str(archive))

    with connections[source].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations")  # the history is rows of the backup too
        (history,) = cursor.fetchone()
    assert (result.jobs, result.rows) == (
        2,
        sum(count for count, _ in fingerprint(source).values()) + history,
    )
    assert fingerprint(target) == fingerprint(source)
    assert schema_objects(target) == schema_objects(source)
    assert fm.Node.objects.using(target).create(name="after").pk > 150000


def _pieces(chunks: list[bytes], streams: int) -> list[list[bytes]]:
    """What each of ``streams`` reader threads gets from a splitter fed ``chunks``."""
    splitter = pg_parallel._RowSplitter(iter(chunks), streams)
    got: list[list[bytes]] = [[] for _ in range(streams)]

    def read(into: list[bytes]) -> None:
        while piece := splitter.read():
            into.append(piece)

    threads = [threading.Thread(target=read, args=(into,)) for into in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    splitter.join()
    return got


@hypothesis.settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.text(alphabet="ab\\\t", max_size=20), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    streams=st.integers(min_value=1, max_value=4),
)
def test_row_splitter__deals_whole_rows_each_exactly_once(
    rows: list[str], cuts: list[int], streams: int
) -> None:
    text = "".join(f"{row}\n" for row in rows).encode()
    bounds = sorted({min(cut, len(text)) for cut in cuts} | {0, len(text)})
    chunks = [text[start:end] for start, end in itertools.pairwise(bounds) if end > start]

    got = _pieces(chunks, streams)

    pieces = [piece for stream in got for piece in stream]
    assert all(piece.endswith(b"\n") for piece in pieces)
    dealt = sorted(line for piece in pieces for line in piece.decode().splitlines())
    assert dealt == sorted(rows)


def test_row_splitter__a_failing_source_stops_every_stream_with_its_error() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"one\n"
        raise CorruptArchive("damaged in table t")

    splitter = pg_parallel._RowSplitter(chunks(), 2)

    def drain() -> None:
        while splitter.read():
            pass

    with pytest.raises(CorruptArchive, match="damaged in table t"):
        drain()
    splitter.join()


def test_row_splitter__stopped_streams_raise_and_the_dealer_ends() -> None:
    endless = iter(lambda: b"row\n" * 1000, None)
    splitter = pg_parallel._RowSplitter(endless, 2)
    assert splitter.read().startswith(b"row\n")

    splitter.stop()

    with pytest.raises(pg_parallel._Aborted):
        splitter.read()
    splitter.join()


def test_parallel_restore__falls_back_to_one_transaction_when_the_private_schema_cannot_hold_it(
    scratch: ScratchDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = scratch.postgres()
    populate(source)
    archive = tmp_path / "a.kidoo-backup"
    # A backup that records no schema (part of the database): restored by the migration path.
    run_backup(source, output=str(archive), exclude=["ops"])
    target = scratch.postgres()
    User.objects.db_manager(target).create_user("replaced", "r@example.org", "pw")
    # As if the migrations had created a view there (the catalog check's verdict; the rest is real).
    monkeypatch.setattr(pg_parallel, "_FOREIGN_OBJECTS", "SELECT 1")

    result = run_restore(target, str(archive))

    assert (result.restored, result.jobs) == (True, 1)
    assert result.safety_backup is not None
    assert fingerprint(target) == fingerprint(source)
    assert schema_objects(target) == schema_objects(source)
    assert shadow_schemas(target) == []


@pytest.mark.skipif(
    pg_copy.driver() != "psycopg", reason="server_side_binding is an option of psycopg 3 only"
)
@pytest.mark.parametrize("jobs", [1, 2])
def test_restore__with_psycopgs_server_side_binding_backs_up_and_restores_over_data(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any, jobs: int
) -> None:
    # OPTIONS = {"server_side_binding": True}: every query with parameters is a prepared statement,
    # where SET cannot take one ("SET lock_timeout = $1" is a syntax error): pg_load.set_setting
    # writes its checked value into the statement.
    settings.OPS = {**settings.OPS, "RESTORE_JOBS": jobs}
    source, target = scratch.postgres(), scratch.postgres()
    for alias in (source, target):
        connections[alias].close()
        connections[alias].settings_dict["OPTIONS"] = {
            **connections[alias].settings_dict.get("OPTIONS", {}),
            "server_side_binding": True,
        }
    populate(source)
    User.objects.db_manager(target).create_user("other", "o@example.org", "pw")
    archive = tmp_path / "a.kidoo-backup"
    run_backup(source, output=str(archive))

    result = run_restore(target, str(archive))

    assert (result.restored, result.jobs) == (True, jobs)
    assert result.safety_backup is not None
    assert fingerprint(target) == fingerprint(source)
    with connections[target].cursor() as cursor:
        assert type(cursor.cursor).__name__ == "ServerBindingCursor"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("value", ["64MB'; RESET ALL; --", "64MB; SELECT 1", "", "1e9", "64 MB'"])
def test_set_setting__only_a_number_with_a_unit_is_written_into_the_statement(value: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        with pytest.raises(OpsConfigurationError, match="maintenance_work_mem"):
            pg_load.set_setting(cursor, "maintenance_work_mem", value, local=True)
        pg_load.set_setting(cursor, "maintenance_work_mem", "64MB", local=True)
        cursor.execute("SHOW maintenance_work_mem")
        assert cursor.fetchone()[0] == "64MB"
