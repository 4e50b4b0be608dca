"""Restores across engines: a SQLite backup into PostgreSQL and a PostgreSQL backup into SQLite.

"Exactly as Django would have stored it" is tested literally: the restored database is compared,
raw row by raw row, with a database of the same engine into which the ORM itself saved the
source's objects (``native_copy``), and model instances are compared field by field with the
source's.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connections, models, transaction
from django.db.migrations.loader import MigrationLoader
from django.test import Client

from ops.archive.format import Column, Manifest, TableEntry
from ops.backup import run_backup
from ops.engines.cross_engine import (
    ConvertedTable,
    UnsupportedColumns,
    _datetime_to_sqlite,
    _interval_to_microseconds,
    _json_to_sqlite,
    _microseconds_to_interval,
    _real_to_numeric,
    _time_to_sqlite,
    plan_conversion,
)
from ops.errors import OpsError
from ops.restore import run_restore
from tests.fidelity import models as fm
from tests.fidelity.data import fingerprint, populate, sequences_next
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")


def fidelity_models(*aliases: str) -> list[type[models.Model]]:
    """Every fidelity model (M2M tables included) that exists on all of ``aliases``' engines."""
    postgres = all(connections[alias].vendor == "postgresql" for alias in aliases)
    return [
        model
        for model in apps.get_app_config("fidelity").get_models(include_auto_created=True)
        if postgres or model is not fm.PgOnly
    ]


def native_copy(source: str, target: str) -> None:
    """Save every fidelity object of ``source`` into ``target`` through the ORM (as loaddata does)."""
    with transaction.atomic(using=target):
        for model in fidelity_models(source, target):
            for instance in model._base_manager.using(source).order_by("pk"):
                instance.save_base(using=target, raw=True, force_insert=True)


def fidelity_fingerprint(alias: str) -> dict[str, tuple[int, str]]:
    return {table: value for table, value in fingerprint(alias).items() if table.startswith("fidelity_")}


def sqlite_decimal(value: decimal.Decimal, places: int, digits: int) -> decimal.Decimal:
    """What SQLite (REAL) gives back for a decimal: 15 significant digits, quantized to the field."""
    stored = decimal.Context(prec=15).create_decimal_from_float(float(value))
    return stored.quantize(decimal.Decimal(1).scaleb(-places), context=decimal.Context(prec=digits))


def assert_same_instances(original: str, restored: str) -> int:
    """Every fidelity object of ``restored`` equals ``original``'s, field by field; returns how many."""
    compared = 0
    into_sqlite = connections[restored].vendor == "sqlite"
    for model in fidelity_models(original, restored):
        before = list(model._base_manager.using(original).order_by("pk"))
        after = list(model._base_manager.using(restored).order_by("pk"))
        assert len(after) == len(before), model
        for old, new in zip(before, after, strict=True):
            for field in model._meta.concrete_fields:
                expected, actual = getattr(old, field.attname), getattr(new, field.attname)
                if into_sqlite and isinstance(field, models.DecimalField) and expected is not None:
                    # SQLite keeps 15 significant digits of a decimal, as Django itself stores it there.
                    expected = sqlite_decimal(expected, field.decimal_places, field.max_digits)
                if isinstance(expected, memoryview):
                    expected = bytes(expected)
                if isinstance(actual, memoryview):
                    actual = bytes(actual)
                assert actual == expected, (model.__name__, old.pk, field.name)
                assert type(actual) is type(expected), (model.__name__, old.pk, field.name)
            compared += 1
    return compared


def test_cross_engine__sqlite_backup_restores_into_postgresql_as_django_would_store_it(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.sqlite()
    populate(source)
    archive = tmp_path / "sqlite.kidoo-backup"
    run_backup(source, output=str(archive))
    native = scratch.postgres()
    native_copy(source, native)
    target = scratch.postgres(migrated=False)

    result = run_restore(target, str(archive))

    assert result.restored
    assert fidelity_fingerprint(target) == fidelity_fingerprint(native)
    assert assert_same_instances(source, target) > 40
    assert fm.Everything.objects.using(target).count() == 11
    # Sequences continue after the restored ids.
    assert sequences_next(target) == sequences_next(source)


def test_cross_engine__postgresql_backup_restores_into_sqlite_as_django_would_store_it(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    populate(source)
    archive = tmp_path / "postgresql.kidoo-backup"
    # PgOnly holds PostgreSQL-only types: a backup for SQLite leaves it out.
    run_backup(source, output=str(archive), exclude=["fidelity.PgOnly"])
    native = scratch.sqlite()
    native_copy(source, native)
    target = scratch.sqlite(migrated=False)

    result = run_restore(target, str(archive))

    assert result.restored
    assert fidelity_fingerprint(target) == fidelity_fingerprint(native)
    assert assert_same_instances(source, target) > 40
    assert sequences_next(target) == sequences_next(source)


def test_cross_engine__both_ways_and_back_keeps_every_value(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    """SQLite -> PostgreSQL -> SQLite ends where it started, raw row for raw row."""
    source = scratch.sqlite()
    populate(source, big=False)
    before = fidelity_fingerprint(source)
    first, second = tmp_path / "first", tmp_path / "second"
    run_backup(source, output=str(first))
    middle = scratch.postgres(migrated=False)
    run_restore(middle, str(first))
    run_backup(middle, output=str(second), exclude=["fidelity.PgOnly"])
    target = scratch.sqlite(migrated=False)

    run_restore(target, str(second))

    after = fidelity_fingerprint(target)
    # JSON is the one column whose text changes: jsonb keeps keys in its own order.
    json_tables = {"fidelity_everything"}
    assert {k: v for k, v in after.items() if k not in json_tables} == {
        k: v for k, v in before.items() if k not in json_tables
    }
    assert assert_same_instances(source, target) > 40


def test_cross_engine__unsupported_types_are_named_before_anything_is_written(
    scratch: ScratchDatabases, tmp_path: Path, backup_dir: Path
) -> None:
    source = scratch.postgres()
    populate(source, big=False)
    archive = tmp_path / "with-arrays.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.sqlite()
    fm.Tag.objects.using(target).create(name="already here")
    path = Path(str(connections[target].settings_dict["NAME"]))
    connections[target].close()
    before = path.read_bytes()

    with pytest.raises(UnsupportedColumns) as raised:
        run_restore(target, str(archive))

    message = str(raised.value)
    assert "fidelity_pgonly.numbers (ArrayField)" in message
    assert "fidelity_pgonly.store (HStoreField)" in message
    assert "fidelity_pgonly.moments (DateTimeRangeField)" in message
    assert "Nothing was changed" in message
    assert "backup --exclude" in message
    assert path.read_bytes() == before
    assert not backup_dir.exists() or not any(backup_dir.iterdir())  # no safety backup either


def test_cross_engine__a_column_no_model_describes_is_named(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    fm.Tag.objects.using(source).create(name="t")
    with connections[source].cursor() as cursor:
        cursor.execute("ALTER TABLE fidelity_tag ADD COLUMN added_by_hand integer")
    archive = tmp_path / "extra-column.kidoo-backup"
    run_backup(source, output=str(archive), include=["fidelity.Tag"])
    target = scratch.sqlite(migrated=False)

    with pytest.raises(UnsupportedColumns, match=r"fidelity_tag\.added_by_hand \(no model field"):
        run_restore(target, str(archive))


def test_cross_engine__a_damaged_value_fails_the_restore_and_changes_nothing(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.sqlite()
    fm.Everything.objects.using(source).create(duration=dt.timedelta(seconds=1))
    with connections[source].cursor() as cursor:
        cursor.execute("UPDATE fidelity_everything SET duration = 'secret text'")
    archive = tmp_path / "damaged.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()
    fm.Tag.objects.using(target).create(name="kept")

    # Raised inside PostgreSQL's COPY, so it arrives wrapped in the restore's "nothing was changed".
    with pytest.raises(OpsError) as raised:
        run_restore(target, str(archive))

    assert "fidelity_everything.duration (DurationField)" in str(raised.value)
    assert "secret" not in str(raised.value)
    assert list(fm.Tag.objects.using(target).values_list("name", flat=True)) == ["kept"]


def test_cross_engine__restore_command_pulls_a_postgresql_backup_into_sqlite(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    fm.Tag.objects.using(source).create(name="from production é")
    archive = tmp_path / "production.kidoo-backup"
    run_backup(source, output=str(archive), exclude=["fidelity.PgOnly"])
    target = scratch.sqlite()
    out = io.StringIO()

    call_command("restore", str(archive), database=target, interactive=False, stdout=out)

    assert list(fm.Tag.objects.using(target).values_list("name", flat=True)) == ["from production é"]
    assert "Restored" in out.getvalue()


def test_cross_engine__restore_help_says_a_backup_restores_into_the_other_engine() -> None:
    from ops.management.commands.restore import Command

    text = " ".join(Command().create_parser("manage.py", "restore").format_help().split())

    assert "a PostgreSQL backup restores into SQLite (pull production into local development)" in text


class OneDatabase:
    """Sends every query to one alias: the API and seed_demo, pointed at a scratch database."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return self.alias

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return self.alias


API_PATHS = [
    "/api/programs/",
    "/api/teachers/",
    "/api/gallery/",
    "/api/events/",
    "/api/announcements/",
    "/api/testimonials/",
]


def api_answers(client: Client) -> dict[str, Any]:
    answers = {}
    for path in API_PATHS:
        response = client.get(path)
        assert response.status_code == 200, path
        answers[path] = response.json()
        for item in answers[path]["results"][:2]:
            if "slug" in item and path != "/api/events/":
                answers[path + item["slug"]] = client.get(f"{path}{item['slug']}/").json()
            if "public_id" in item:
                answers[path + item["public_id"]] = client.get(f"{path}{item['public_id']}/").json()
    return answers


@pytest.mark.django_db
def test_cross_engine__demo_data_moves_from_sqlite_to_postgresql_and_the_api_serves_it(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any, client: Client
) -> None:
    from api.demo_data import seed_demo_data
    from api.models import Enquiry, Event, Program

    routers = list(settings.DATABASE_ROUTERS)
    source = scratch.sqlite()
    settings.DATABASE_ROUTERS = [OneDatabase(source), *routers]
    seed_demo_data()
    served = api_answers(client)
    enquiries = list(Enquiry.objects.order_by("pk").values())
    archive = tmp_path / "demo.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres(migrated=False)

    run_restore(target, str(archive))

    settings.DATABASE_ROUTERS = [OneDatabase(target), *routers]
    assert api_answers(client) == served
    assert list(Enquiry.objects.order_by("pk").values()) == enquiries
    assert Program.objects.count() > 0
    assert Event.objects.count() > 0
    # A new row after the restore gets a fresh id (sequences were reset).
    assert (
        Program.objects.order_by("-pk")[0].pk
        < Program.objects.create(
            name="New", slug="new", age_min_years=1, age_max_years=2, monthly_fee="1.00"
        ).pk
    )


# --- the value conversions on their own ---------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "microseconds"),
    [
        ("00:00:00", 0),
        ("-3 days +00:00:00.000001", -3 * 86_400_000_000 + 1),
        ("10000 days 00:00:01", 10000 * 86_400_000_000 + 1_000_000),
        ("1 day", 86_400_000_000),
        ("-00:00:00.5", -500_000),
        ("-1 days -00:00:01", -86_400_000_000 - 1_000_000),
        ("-2562047788:00:54.775807", -(2**63) + 1),
        ("1 year 2 mons", (365 + 60) * 86_400_000_000),
    ],
)
def test_interval__reads_postgresql_text_as_django_microseconds(interval: str, microseconds: int) -> None:
    assert _interval_to_microseconds(interval) == str(microseconds)


@pytest.mark.parametrize("microseconds", [0, 1, -1, -259199999999, 864000001000000, 2**63 - 1, -(2**63) + 1])
def test_interval__round_trips_through_postgresql_text(microseconds: int) -> None:
    text = _microseconds_to_interval(str(microseconds))
    assert text.endswith(" seconds")
    delta = dt.timedelta(microseconds=microseconds)
    assert text == f"{delta.days} days {delta.seconds}.{delta.microseconds:06d} seconds"


def test_interval__other_styles_are_refused() -> None:
    with pytest.raises(ValueError, match="IntervalStyle"):
        _interval_to_microseconds("P1DT2H")


def test_datetime__utc_fast_path_matches_the_full_parse() -> None:
    convert = _datetime_to_sqlite(dt.UTC)
    for text in ["2024-10-27 00:30:00.1+00", "0001-01-01 12:00:00+00", "9999-12-31 23:59:59.999999+00"]:
        expected = str(dt.datetime.fromisoformat(text).astimezone(dt.UTC).replace(tzinfo=None))
        assert convert(text) == expected
    assert convert("2024-01-01 00:30:00+05:30") == "2023-12-31 19:00:00"
    with pytest.raises(ValueError, match="isoformat"):
        convert("0044-03-15 12:00:00+00 BC")


def test_time_and_json_and_decimal__spelled_as_django_stores_them() -> None:
    assert _time_to_sqlite("12:00:00.5") == "12:00:00.500000"
    assert _time_to_sqlite("00:00:00") == "00:00:00"
    # jsonb's raw UTF-8 and escaped COPY text -> Django's json.dumps, COPY-escaped.
    assert _json_to_sqlite('{"a": "é\\\\t"}') == '{"a": "\\\\u00e9\\\\t"}'
    field = models.DecimalField(max_digits=8, decimal_places=2)
    assert _real_to_numeric(field)("1234.5") == "1234.50"
    assert _real_to_numeric(None)("1.2345678901234567e+19") == "12345678901234600000"
    assert _real_to_numeric(None)("0") == "0"


class Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    def read(self, size: int = -1, /) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def __iter__(self) -> Any:
        while chunk := self.read():
            yield chunk


def test_converted_table__lines_split_across_chunks_are_converted_whole() -> None:
    entry = TableEntry("t", (Column("id", "IntegerField"), Column("flag", "BooleanField")), 3, 0, "")
    stream = Chunks(b"1\tt\n2", b"\t", b"f\n3\t\\N", b"\n")
    converted = ConvertedTable(stream, entry, ((1, {"t": "1", "f": "0"}.__getitem__),), "sqlite")

    assert b"".join(converted) == b"1\t1\n2\t0\n3\t\\N\n"


def test_cross_engine__a_backup_at_older_migrations_is_loaded_there_then_migrated_forward(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    from api.models import Program

    source = scratch.sqlite()
    call_command("migrate", "api", "0001", database=source, verbosity=0)
    Program.objects.using(source).create(
        name="Older", slug="older", age_min_years=2, age_max_years=4, monthly_fee="12.50", schedule={"a": [1]}
    )
    archive = tmp_path / "older.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres(migrated=False)

    result = run_restore(target, str(archive))

    assert result.migrated_forward == 1
    program = Program.objects.using(target).get()
    assert (program.slug, str(program.monthly_fee), program.schedule) == ("older", "12.50", {"a": [1]})
    with connections[target].cursor() as cursor:
        cursor.execute("SELECT name FROM django_migrations WHERE app = 'api' ORDER BY name")
        assert [row[0] for row in cursor.fetchall()][-1].startswith("0002")


@pytest.mark.parametrize(
    "value",
    [{"tab\t": "new\nline\r\\N \\ é😀\x01"}, [], {}, "\\", None, 2**70, [1.5, {"b": [[]]}], '"quoted"'],
)
def test_json__any_value_in_copy_text_becomes_what_django_writes_on_sqlite(value: Any) -> None:
    from ops.archive.copy_text import decode_field, encode_value

    as_postgresql_prints_it = encode_value(json.dumps(value, ensure_ascii=False))

    assert decode_field(_json_to_sqlite(as_postgresql_prints_it)) == json.dumps(value)


def _manifest(vendor: str, *tables: TableEntry) -> Manifest:
    """A manifest recording every migration this code has, holding ``tables``."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    migrations: dict[str, list[str]] = {}
    for app, name in graph.leaf_nodes():
        migrations.setdefault(app, []).append(name)
    return Manifest(
        created_at=dt.datetime.now(dt.UTC),
        vendor=vendor,
        server_version="0",
        django_version="5.2",
        migrations=migrations,
        holds_data=True,
        tables=tables,
    )


def _everything(kind_of_integer: str) -> TableEntry:
    columns = (Column("id", "BigAutoField"), Column("integer", kind_of_integer), Column("text", "TextField"))
    return TableEntry("fidelity_everything", columns, 1, 0, "", "fidelity.Everything")


def test_cross_engine__a_column_of_another_type_here_is_named_with_its_model_and_the_option(
    scratch: ScratchDatabases,
) -> None:
    target = connections[scratch.sqlite()]

    with pytest.raises(UnsupportedColumns) as raised:
        plan_conversion(_manifest("postgresql", _everything("SearchVectorField")), target)

    message = str(raised.value)
    assert (
        "fidelity_everything.integer (SearchVectorField in the backup, IntegerField in SQLite here)"
        in message
    )
    assert "of model fidelity.Everything" in message
    assert "`backup --exclude fidelity.Everything`" in message
    assert 'OPS["CROSS_ENGINE_SKIP"]["fidelity.Everything"]' in message
    assert "Nothing was changed" in message


def test_cross_engine__derived_tables_are_left_out_and_named_with_how_to_rebuild_them(
    scratch: ScratchDatabases, settings: Any
) -> None:
    settings.OPS = {"CROSS_ENGINE_SKIP": {"fidelity.Everything": "python manage.py rebuild_everything"}}
    target = connections[scratch.sqlite()]
    tag = TableEntry(
        "fidelity_tag", (Column("id", "BigAutoField"), Column("name", "CharField")), 1, 0, "", "fidelity.Tag"
    )

    plan = plan_conversion(_manifest("postgresql", _everything("SearchVectorField"), tag), target)

    assert plan is not None
    assert plan.skipped == {"fidelity_everything"}
    assert plan.warning() == (
        "Left out of this PostgreSQL -> SQLite restore, as they are built in a form only one engine has: "
        "fidelity_everything (fidelity.Everything: rebuild it with `python manage.py rebuild_everything`)."
    )


def test_cross_engine__a_key_is_a_relation_by_its_class_whatever_its_recorded_name(
    scratch: ScratchDatabases,
) -> None:
    """modelcluster's ParentalKey subclasses ForeignKey: the field's class decides, not a name."""
    target = connections[scratch.sqlite()]
    columns = (Column("id", "BigAutoField"), Column("name", "CharField"), Column("parent_id", "ParentalKey"))
    entry = TableEntry("fidelity_node", columns, 1, 0, "", "fidelity.Node")

    plan = plan_conversion(_manifest("postgresql", entry), target)

    assert plan is not None
    assert plan.skipped == frozenset()


def test_cross_engine__a_table_only_the_other_engine_has_is_named_before_anything_is_written(
    scratch: ScratchDatabases,
) -> None:
    target = connections[scratch.sqlite()]
    fts = TableEntry(
        "fidelity_search_fts", (Column("rowid", "OneToOneField"),), 1, 0, "", "fidelity.SearchFTS"
    )

    with pytest.raises(UnsupportedColumns) as raised:
        plan_conversion(_manifest("postgresql", fts), target)

    message = str(raised.value)
    assert "fidelity_search_fts (a table this code's migrations do not create on SQLite)" in message
    assert "`backup --exclude fidelity.SearchFTS`" in message
