"""ops.health.db_size and the db_size command, on real PostgreSQL and SQLite (and the Cloudinary emulator)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import cloudinary
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from ops.errors import OpsConfigurationError
from ops.health import db_size
from ops.models import SizeSample
from tests.scratch_databases import extra_database, sqlite_entry

pytestmark = pytest.mark.django_db


def _create_toasted_table(alias: str = "default") -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("CREATE TABLE scratch_notes (id serial PRIMARY KEY, body text)")
        cursor.execute("CREATE INDEX scratch_notes_body ON scratch_notes (left(body, 10))")
        # md5 chains do not compress: the values have to move out of line into TOAST.
        cursor.execute(
            "INSERT INTO scratch_notes (body) SELECT string_agg(md5(i::text || j::text), '') "
            "FROM generate_series(1, 50) i, generate_series(1, 200) j GROUP BY i"
        )
        cursor.execute("INSERT INTO scratch_notes (body) SELECT 'short' FROM generate_series(1, 950)")
        cursor.execute("ANALYZE scratch_notes")


def test_measure__postgresql_sizes_from_catalogs_with_model_labels() -> None:
    _create_toasted_table()

    report = db_size.measure()

    assert report.vendor == "postgresql"
    assert report.per_table
    assert report.size_bytes > 0
    tables = {table.name: table for table in report.tables}
    notes = tables["scratch_notes"]
    assert notes.model is None
    assert notes.toast_bytes is not None
    assert notes.toast_bytes > 0
    assert notes.index_bytes is not None
    assert notes.index_bytes > 0
    assert notes.heap_bytes is not None
    assert notes.heap_bytes > 0
    assert notes.total_bytes == notes.heap_bytes + notes.index_bytes + notes.toast_bytes
    assert notes.rows == 1000
    assert not notes.rows_exact
    assert tables["ops_size_sample"].model == "ops.SizeSample"
    assert tables["auth_user"].model == "auth.User"
    assert [t.total_bytes for t in report.tables] == sorted(
        (t.total_bytes for t in report.tables), reverse=True
    )
    assert report.limit_bytes == 1024**3


def test_measure__never_analyzed_table_has_unknown_rows_and_exact_counts_them() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE scratch_fresh (id int)")
        cursor.execute("INSERT INTO scratch_fresh SELECT generate_series(1, 42)")

    estimated = {t.name: t for t in db_size.measure().tables}["scratch_fresh"]
    exact = {t.name: t for t in db_size.measure(exact=True).tables}["scratch_fresh"]

    assert estimated.rows is None
    assert (exact.rows, exact.rows_exact) == (42, True)


def test_measure__top_keeps_the_largest_and_counts_the_rest() -> None:
    _create_toasted_table()

    report = db_size.measure(top=3)

    assert len(report.tables) == 3
    assert report.tables[0].name == "scratch_notes"
    assert report.table_count > 3


def test_measure__other_schemas_are_listed_qualified() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE SCHEMA scratch_reports")
        cursor.execute("CREATE TABLE scratch_reports.daily (id int)")

    report = db_size.measure(exact=True)

    daily = {t.name: t for t in report.tables}["scratch_reports.daily"]
    assert (daily.rows, daily.model) == (0, None)


@pytest.fixture
def scratch_sqlite(tmp_path: Path, django_db_blocker: Any) -> Iterator[str]:
    """A migrated SQLite database of its own (the suite's "sqlite" alias keeps its name for others)."""
    entry = sqlite_entry(tmp_path / "scratch.sqlite3")
    with extra_database("scratch_sqlite", entry) as alias, django_db_blocker.unblock():
        call_command("migrate", database=alias, verbosity=0)
        yield alias


def test_measure__sqlite_file_and_per_table_sizes_from_dbstat(scratch_sqlite: str) -> None:
    with connections[scratch_sqlite].cursor() as cursor:
        cursor.execute("CREATE TABLE scratch_blob (id integer PRIMARY KEY, body text)")
        cursor.execute("CREATE INDEX scratch_blob_body ON scratch_blob (body)")
        cursor.executemany("INSERT INTO scratch_blob (body) VALUES (?)", [("x" * 2000,) for _ in range(200)])
        cursor.execute("ANALYZE")

    report = db_size.measure(scratch_sqlite, exact=True)

    assert report.vendor == "sqlite"
    assert report.per_table
    assert not report.notes
    blob = report.tables[0]
    assert blob.name == "scratch_blob"
    assert blob.heap_bytes is not None
    assert blob.heap_bytes >= 200 * 2000
    assert blob.index_bytes is not None
    assert blob.index_bytes >= 200 * 2000
    assert blob.toast_bytes is None
    assert (blob.rows, blob.rows_exact) == (200, True)
    assert report.size_bytes >= blob.total_bytes
    assert {t.name: t.model for t in report.tables}["ops_size_sample"] == "ops.SizeSample"


def test_measure__five_hundred_tables_well_under_a_second(capsys: pytest.CaptureFixture[str]) -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "DO $$ BEGIN FOR i IN 1..500 LOOP "
            "EXECUTE format('CREATE TABLE scratch_t%s (id serial PRIMARY KEY, note text)', i); "
            "EXECUTE format('INSERT INTO scratch_t%s (note) VALUES (repeat(''x'', %s))', i, i); "
            "END LOOP; END $$"
        )

    started = time.perf_counter()
    report = db_size.measure(top=20)
    elapsed = time.perf_counter() - started

    assert report.table_count >= 500
    assert len(report.tables) == 20
    with capsys.disabled():
        print(f"\n[db_size] {report.table_count} tables measured in {elapsed * 1000:.0f} ms")


def test_parse_size__bytes_and_units() -> None:
    assert db_size.parse_size(1024) == 1024
    assert db_size.parse_size("1GiB") == 1024**3
    assert db_size.parse_size("256 MB") == 256_000_000
    with pytest.raises(OpsConfigurationError):
        db_size.parse_size("lots")


def _sample(days: float, size: int, tables: dict[str, int] | None = None) -> db_size.Sample:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return db_size.Sample(start + dt.timedelta(days=days), size, tables or {})


def test_fit_growth__projects_the_date_the_plan_is_full() -> None:
    mib = 1024**2
    samples = [_sample(day, 100 * mib + day * 10 * mib) for day in range(10)]

    growth = db_size.fit_growth(samples, limit_bytes=200 * mib, current_size=190 * mib)

    assert growth is not None
    assert growth.bytes_per_day == pytest.approx(10 * mib)
    assert growth.projected_full_at == samples[-1].taken_at + dt.timedelta(days=1)


def test_fit_growth__shrinking_or_too_few_samples_project_nothing() -> None:
    shrinking = [_sample(0, 500), _sample(1, 400), _sample(2, 300)]
    assert db_size.fit_growth(shrinking, 1000, 300).projected_full_at is None  # type: ignore[union-attr]
    assert db_size.fit_growth([_sample(0, 1)], 1000, 1) is None
    assert db_size.fit_growth([_sample(0, 1), _sample(0.01, 2)], 1000, 2) is None


def test_report__growth_from_recorded_samples(settings: Any) -> None:
    settings.OPS = {"DB_SIZE_LIMIT": "2GiB"}
    size = db_size.database_size()
    now = dt.datetime.now(dt.UTC)
    per_day = 5 * 1024**2
    for days_ago in range(10, 0, -1):
        SizeSample.objects.create(
            taken_at=now - dt.timedelta(days=days_ago),
            size_bytes=size - days_ago * per_day,
            tables={"auth_user": 1000 * (10 - days_ago)},
        )

    report = db_size.report()

    assert report.growth is not None
    assert report.growth.samples == 11
    assert report.growth.bytes_per_day == pytest.approx(per_day, rel=0.01)
    expected = report.measured_at + dt.timedelta(days=(2 * 1024**3 - size) / per_day)
    assert report.growth.projected_full_at is not None
    assert abs(report.growth.projected_full_at - expected) < dt.timedelta(hours=3)
    auth_user = {t.name: t for t in report.tables}["auth_user"]
    assert auth_user.growth_bytes_per_day is not None


def test_db_size_command__record_stores_a_sample_of_every_table() -> None:
    out = StringIO()
    call_command("db_size", "--record", "--top", "2", stdout=out)

    sample = SizeSample.objects.get()
    assert sample.size_bytes > 0
    assert "auth_user" in sample.tables
    assert len(sample.tables) > 2
    assert "Database default (postgresql):" in out.getvalue()


def test_db_size_command__text_shows_tables_and_plan_percentage(settings: Any) -> None:
    settings.OPS = {"DB_SIZE_LIMIT": "100MB"}
    out = StringIO()

    call_command("db_size", "--top", "5", stdout=out)

    lines = out.getvalue().splitlines()
    assert "of 95.4 MiB plan limit" in lines[0]
    header = next(line for line in lines if line.startswith("Table"))
    assert header.split() == ["Table", "Model", "Total", "Heap", "Indexes", "TOAST", "Rows", "Growth/day"]
    assert lines[-1].startswith("... and ")


def test_db_size_command__fail_at_exits_1_for_cron(settings: Any) -> None:
    settings.OPS = {"DB_SIZE_LIMIT": 1024}
    with pytest.raises(CommandError) as raised:
        call_command("db_size", "--fail-at", "90", stdout=StringIO())
    assert raised.value.returncode == 1
    assert str(raised.value).startswith("failure: the database uses")


def test_db_size_command__warn_at_exits_1_and_json_says_warning(settings: Any) -> None:
    settings.OPS = {"DB_SIZE_LIMIT": "1GiB"}
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("db_size", "--warn-at", "0", "--fail-at", "99", "--format", "json", stdout=out)
    assert raised.value.returncode == 1
    data = json.loads(out.getvalue())
    assert data["status"] == "warning"
    assert data["used_percent"] < 99


def test_db_size_command__below_thresholds_exits_0_with_json() -> None:
    out = StringIO()
    call_command("db_size", "--warn-at", "80", "--fail-at", "95", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["status"] == "ok"
    assert data["vendor"] == "postgresql"
    assert data["limit_bytes"] == 1024**3


def test_db_size_command__bad_top_is_misuse() -> None:
    with pytest.raises(CommandError) as raised:
        call_command("db_size", "--top", "0", stdout=StringIO())
    assert raised.value.returncode == 2


def test_db_size_command__media_reports_cloudinary_usage(cloudinary_emulator: Any) -> None:
    cloudinary_emulator.seed_resource("media/photo", b"x" * 5000)
    out = StringIO()

    call_command("db_size", "--media", "--top", "1", "--format", "json", stdout=out)

    media = json.loads(out.getvalue())["media"]
    assert media["storage"]["usage"] == 5000
    assert media["credits"]["limit"] == 25.0
    assert media["objects"] == 1
    assert cloudinary_emulator.calls["admin"] == 1


def test_db_size_command__media_with_bad_credentials_fails(cloudinary_emulator: Any) -> None:
    cloudinary.config(api_secret="not-the-secret")
    with pytest.raises(CommandError) as raised:
        call_command("db_size", "--media", stdout=StringIO())
    assert raised.value.returncode == 1
    assert "not-the-secret" not in str(raised.value)


def test_db_size_command__media_without_cloudinary_is_misuse() -> None:
    saved = dict(cloudinary.config().__dict__)
    cloudinary.config(cloud_name=None, api_key=None, api_secret=None)
    try:
        with pytest.raises(CommandError) as raised:
            call_command("db_size", "--media", stdout=StringIO())
    finally:
        cloudinary.config().__dict__.update(saved)
    assert raised.value.returncode == 2
