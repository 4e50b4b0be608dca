"""ops.engines.pg_schema: a whole-database backup records the schema; a restore rebuilds it, and only it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from ops.archive.format import ArchiveWriter, Manifest, verify_archive
from ops.backup import run_backup, write_archive
from ops.engines import pg_parallel, pg_schema
from ops.engines.pg_sql_check import UnsafeDefinition
from ops.engines.tables import model_tables
from ops.errors import OpsError
from ops.restore import run_restore
from tests.commands import run_command
from tests.fidelity.data import fingerprint, populate
from tests.ops_databases import ScratchDatabases
from tests.postgres_server import client_bindir

pytestmark = pytest.mark.usefixtures("backup_dir")


# What a project has beside its models: made by RunSQL, another tool, or an app no longer installed.
EXTRA_SCHEMA = r"""
CREATE SEQUENCE invoice_number START 1000 INCREMENT 7;
CREATE TABLE legacy_log (
    id serial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    message text NOT NULL DEFAULT 'it''s; -- not a comment',
    level smallint CHECK (level BETWEEN 0 AND 50),
    code varchar(20) COLLATE "C",
    number integer DEFAULT nextval('invoice_number'),
    doubled integer GENERATED ALWAYS AS (level * 2) STORED,
    tags text[],
    CONSTRAINT legacy_log_code_key UNIQUE (code)
);
CREATE TABLE legacy_item (
    id bigint GENERATED ALWAYS AS IDENTITY (START WITH 50 INCREMENT BY 5),
    log_id integer REFERENCES legacy_log (id) DEFERRABLE INITIALLY DEFERRED,
    name text,
    PRIMARY KEY (id)
);
CREATE INDEX legacy_item_lower_name ON legacy_item (lower(name)) WHERE name IS NOT NULL;
CREATE FUNCTION legacy_touch() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    NEW.name := coalesce(NEW.name, 'unnamed; $x$');
    RETURN NEW;
END;
$body$;
CREATE TRIGGER legacy_item_touch BEFORE INSERT OR UPDATE OF name ON legacy_item
    FOR EACH ROW EXECUTE FUNCTION legacy_touch();
CREATE VIEW legacy_summary AS SELECT l.level, count(i.id) AS items FROM legacy_log l
    LEFT JOIN legacy_item i ON i.log_id = l.id GROUP BY l.level;
CREATE VIEW legacy_top AS SELECT * FROM legacy_summary WHERE items > 0;
INSERT INTO legacy_log (message, level, code, tags) VALUES ('one', 1, 'a', '{x,y}'), ('two', 2, 'b', NULL);
INSERT INTO legacy_item (log_id, name) VALUES (1, 'first'), (2, NULL), (1, 'third');
SELECT nextval('invoice_number');
"""


def execute(alias: str, sql: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)


def rows(alias: str, sql: str) -> list[tuple[Any, ...]]:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]


def schema_dump(scratch: ScratchDatabases, alias: str) -> str:
    """``pg_dump --schema-only``, normalised only for the schema name (none differs here)."""
    (major,) = rows(alias, "SELECT current_setting('server_version_num')::int / 10000")[0]
    pg_dump = str(client_bindir(int(major)) / "pg_dump")
    # Releases since August 2025 print a random \restrict key unless given one; older ones have none.
    help_text = subprocess.run([pg_dump, "--help"], check=True, capture_output=True, text=True).stdout
    restrict = ["--restrict-key=ops"] if "--restrict-key" in help_text else []
    output = subprocess.run(
        [pg_dump, "--schema-only", "--no-owner", *restrict, "-d", scratch.url(alias)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return re.sub(r"ops_restore_[0-9a-f]+", "public", output)


def whole_backup(scratch: ScratchDatabases, tmp_path: Path) -> tuple[str, Path]:
    source = scratch.postgres()
    populate(source)
    execute(source, EXTRA_SCHEMA)
    archive = tmp_path / "whole.kidoo-backup"
    run_backup(source, output=str(archive))
    return source, archive


def read_manifest(archive: Path) -> Manifest:
    with archive.open("rb") as handle:
        return verify_archive(handle)


def test_backup__records_schema_and_every_table(scratch: ScratchDatabases, tmp_path: Path) -> None:
    _, archive = whole_backup(scratch, tmp_path)
    manifest = read_manifest(archive)

    tables = [entry.name for entry in manifest.tables]
    assert {"legacy_log", "legacy_item", "django_migrations"} <= set(tables)
    schema = pg_schema.RecordedSchema.from_manifest(manifest.extra)
    assert schema is not None
    kinds = {(obj.kind, obj.name) for obj in schema.objects}
    assert {
        ("sequence", "invoice_number"),
        ("view", "legacy_summary"),
        ("view", "legacy_top"),
        ("function", "legacy_touch"),
        ("trigger", "legacy_item_touch"),
        ("index", "legacy_item_lower_name"),
        ("extension", "hstore"),
    } <= kinds
    # Views come after the views they read.
    views = [obj.name for obj in schema.of_kind("view")]
    assert views.index("legacy_summary") < views.index("legacy_top")


@pytest.mark.parametrize("jobs", [1, 2])
def test_restore__schema_equals_the_source_pg_dump(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any, jobs: int
) -> None:
    settings.OPS = {**settings.OPS, "RESTORE_JOBS": jobs}
    source, archive = whole_backup(scratch, tmp_path)
    empty = scratch.postgres(migrated=False)
    over_data = scratch.postgres()
    populate(over_data)

    # The last: over the views, functions and sequences the first restore made.
    for target in (empty, over_data, empty):
        result = run_restore(target, str(archive))

        assert result.restored
        assert result.migrated_forward == 0
        assert schema_dump(scratch, target) == schema_dump(scratch, source)
        assert fingerprint(target) == fingerprint(source)
        for table in ("legacy_log", "legacy_item", "django_migrations"):
            query = f"SELECT * FROM {table} ORDER BY 1"
            assert rows(target, query) == rows(source, query)
        assert "Tables kept, no installed app owns them: " in "\n".join(result.notes)
        # Sequences go on where the source's were; the trigger and the checks work.
        for sequence in ("invoice_number", "legacy_log_id_seq", "legacy_item_id_seq", "fidelity_tag_id_seq"):
            query = f"SELECT last_value, is_called FROM {sequence}"
            assert rows(target, query) == rows(source, query)
        execute(target, "INSERT INTO legacy_item (log_id) VALUES (2)")
        assert rows(target, "SELECT id, name FROM legacy_item ORDER BY id DESC LIMIT 1") == [
            (65, "unnamed; $x$")
        ]
        assert rows(target, "SELECT level, items FROM legacy_top ORDER BY 1") == [(1, 2), (2, 2)]
        with pytest.raises(Exception, match="check"):
            execute(target, "INSERT INTO legacy_log (level) VALUES (99)")


def test_restore__tables_not_in_the_backup_are_left_alone_and_named(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    _, archive = whole_backup(scratch, tmp_path)
    target = scratch.postgres()
    populate(target)
    execute(target, "CREATE TABLE made_later (id int); INSERT INTO made_later VALUES (7)")

    result = run_restore(target, str(archive))

    assert rows(target, "SELECT id FROM made_later") == [(7,)]
    assert "Left alone, not in the backup and of no installed app: made_later." in result.notes
    # The safety backup holds everything the restore replaced: the whole database as it was.
    safety = read_safety(target, result.safety_backup)
    assert "made_later" in [entry.name for entry in safety.tables]


def read_safety(database: str, name: str | None) -> Manifest:
    from ops.repository.backups import configured_repository

    assert name is not None
    # The local repository keeps a folder per database: the restored one's holds its safety backup.
    repository = configured_repository(database)
    with repository.spooled(repository.info(name)) as handle:
        return verify_archive(handle)


def crafted(archive: Path, tmp_path: Path, change: Any) -> Path:
    """A copy of ``archive`` whose manifest's recorded schema went through ``change`` (re-signed)."""
    return rewritten(archive, tmp_path, change_schema=change)


def rewritten(
    archive: Path,
    tmp_path: Path,
    *,
    change_schema: Any = None,
    table: str | None = None,
    change_row: Any = None,
) -> Path:
    """A copy of ``archive``, written again (its checksums hold), whose recorded schema's objects
    went through ``change_schema`` and the COPY text lines of ``table`` through ``change_row``."""
    from ops.archive.format import iter_tables

    with archive.open("rb") as handle:
        manifest = verify_archive(handle)
        handle.seek(0)
        out = tmp_path / "rewritten.kidoo-backup"
        with out.open("wb") as sink:
            writer = ArchiveWriter(sink)
            for entry, data in iter_tables(handle, manifest):
                section = writer.begin_table(entry.name, entry.columns, entry.model)
                text = b"".join(data)
                if entry.name == table:
                    text = b"".join(change_row(line) for line in text.splitlines(keepends=True))
                section.data.write(text)
                section.end(entry.rows)
            extra = dict(manifest.extra)
            if change_schema is not None:
                change_schema(extra["schema"]["objects"])
            writer.finish(dataclasses.replace(manifest, tables=writer.tables, extra=extra))
    return out


def first(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and (name is None or o["name"] == name))


def set_default(objects: list[dict[str, Any]]) -> None:
    table = first(objects, "table", "legacy_log")
    table["definition"]["columns"][2]["default"] = "0); DROP TABLE fidelity_tag; --"


def second_index_statement(objects: list[dict[str, Any]]) -> None:
    index = first(objects, "index", "legacy_item_lower_name")
    index["definition"] += "; DROP TABLE fidelity_tag"


def escaping_function(objects: list[dict[str, Any]]) -> None:
    function = first(objects, "function", "legacy_touch")
    function["definition"] = function["definition"].rstrip() + "; DROP TABLE fidelity_tag; SELECT $body$x"


def escape_string_quote(objects: list[dict[str, Any]]) -> None:
    table = first(objects, "table", "legacy_log")
    table["definition"]["columns"][2]["default"] = "E'\\'' ); DROP TABLE fidelity_tag; SELECT ('"


def type_injection(objects: list[dict[str, Any]]) -> None:
    table = first(objects, "table", "legacy_log")
    table["definition"]["columns"][1]["type"] = "text, evil text"


def constraint_injection(objects: list[dict[str, Any]]) -> None:
    constraint = first(objects, "constraint", "legacy_log_level_check")
    constraint["definition"] = "CHECK (true)) ; DROP TABLE fidelity_tag; --"


def view_with_second_statement(objects: list[dict[str, Any]]) -> None:
    view = first(objects, "view", "legacy_top")
    view["definition"] = "SELECT 1; DROP TABLE fidelity_tag;"


def trigger_other_statement(objects: list[dict[str, Any]]) -> None:
    trigger = first(objects, "trigger", "legacy_item_touch")
    trigger["definition"] = "DROP TABLE fidelity_tag"


def index_on_other_command(objects: list[dict[str, Any]]) -> None:
    index = first(objects, "index", "legacy_item_lower_name")
    index["definition"] = "CREATE INDEX x ON public.legacy_item USING btree ((pg_sleep(0))) /* */"


def sequence_option_injection(objects: list[dict[str, Any]]) -> None:
    sequence = first(objects, "sequence", "invoice_number")
    sequence["definition"]["start"] = "1; DROP TABLE fidelity_tag"


def constraint_with_another_subcommand(objects: list[dict[str, Any]]) -> None:
    constraint = first(objects, "constraint", "legacy_log_level_check")
    constraint["definition"] = "CHECK (true), ADD COLUMN evil integer"


def function_in_c(objects: list[dict[str, Any]]) -> None:
    function = first(objects, "function", "legacy_touch")
    function["definition"] = (
        "CREATE OR REPLACE FUNCTION public.legacy_touch()\n RETURNS trigger\n LANGUAGE c\n"
        "AS $x$libc.so.6$x$, $y$system$y$\n"
    )


def dollar_inside_identifier(objects: list[dict[str, Any]]) -> None:
    table = first(objects, "table", "legacy_log")
    table["definition"]["columns"][2]["default"] = "a$x$ ; DROP TABLE fidelity_tag; SELECT $x$"


@pytest.mark.parametrize(
    "change",
    [
        set_default,
        second_index_statement,
        escaping_function,
        escape_string_quote,
        type_injection,
        constraint_injection,
        view_with_second_statement,
        trigger_other_statement,
        index_on_other_command,
        sequence_option_injection,
        dollar_inside_identifier,
        function_in_c,
        constraint_with_another_subcommand,
    ],
)
def test_restore__crafted_schema_is_refused_before_any_write(
    scratch: ScratchDatabases, tmp_path: Path, change: Any
) -> None:
    _, archive = whole_backup(scratch, tmp_path)
    bad = crafted(archive, tmp_path, change)
    target = scratch.postgres()
    populate(target)
    before = fingerprint(target)

    with pytest.raises(UnsafeDefinition):
        run_restore(target, str(bad))

    assert fingerprint(target) == before
    assert rows(target, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ops\\_restore\\_%%'") == [(0,)]


def test_restore__old_format_backup_uses_the_migration_path(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    populate(source)
    archive = tmp_path / "old.kidoo-backup"
    # A backup as the previous format wrote it: every model table, no recorded schema, no history rows.
    with archive.open("wb") as sink:
        write_archive(source, sink, model_tables(source))
    manifest = read_manifest(archive)
    assert "django_migrations" not in [entry.name for entry in manifest.tables]
    assert "schema" not in manifest.extra
    target = scratch.postgres(migrated=False)

    result = run_restore(target, str(archive))

    assert result.restored
    assert fingerprint(target) == fingerprint(source)


def test_restore__newer_migrations_are_applied_in_the_same_unit(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    populate(source)
    # The backup's code was one migration behind this code's.
    call_command("migrate", "api", "0001", database=source, verbosity=0)
    archive = tmp_path / "behind.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres(migrated=False)

    result = run_restore(target, str(archive))

    assert result.restored
    assert result.migrated_forward == 1
    assert ("api", "0002_announcement_attachment_document_storage") in rows(
        target, "SELECT app, name FROM django_migrations"
    )


def test_plan__refuses_unknown_kind() -> None:
    schema = pg_schema.RecordedSchema((pg_schema.SchemaObject("rule", "r", None, "DROP TABLE x"),))
    with pytest.raises(OpsError, match="does not know"):
        pg_schema.plan(schema, '"s"')


def test_restore__recorded_schema_in_one_transaction_when_no_private_schema(
    scratch: ScratchDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, archive = whole_backup(scratch, tmp_path)
    target = scratch.postgres()
    populate(target, big=False)

    def no_schema_right(database: str) -> Any:
        raise pg_parallel.ShadowUnsupported("cannot create a schema (permission denied)")

    # As if the role had no right to create a schema (the verdict forced; the rest is real).
    monkeypatch.setattr(pg_parallel, "shadow_schema", no_schema_right)

    for _ in range(2):  # the second time over the views, functions and sequences of the first
        result = run_restore(target, str(archive))

        assert (result.restored, result.jobs) == (True, 1)
        assert result.safety_backup is not None
        assert schema_dump(scratch, target) == schema_dump(scratch, source)
        assert fingerprint(target) == fingerprint(source)


def test_restore_command__names_tables_kept_and_left_alone(scratch: ScratchDatabases, tmp_path: Path) -> None:
    _, archive = whole_backup(scratch, tmp_path)
    target = scratch.postgres()
    execute(target, "CREATE TABLE made_later (id int)")

    out, _ = run_command("restore", str(archive), database=target, interactive=False)

    lines = out.splitlines()
    assert lines[0].startswith(f"Restored {archive.name} into ")
    assert "Tables kept, no installed app owns them: django_migrations" not in out
    assert "Tables kept, no installed app owns them: legacy_item, legacy_log." in lines
    assert "Left alone, not in the backup and of no installed app: made_later." in lines


# Keys and constraints in every direction, on tables big enough to be loaded by tasks of their own
# (ops/engines/pg_parallel.py's _BATCH_MAX_ROWS) and on a small one.
CONSTRAINT_GRAPH = r'''
CREATE TABLE graph_a (
    id integer PRIMARY KEY,
    b_id integer,
    parent_id integer REFERENCES graph_a (id),
    amount integer CHECK (amount >= 0)
);
CREATE TABLE graph_b (id integer PRIMARY KEY, a_id integer NOT NULL REFERENCES graph_a (id));
ALTER TABLE graph_a ADD CONSTRAINT graph_a_b FOREIGN KEY (b_id) REFERENCES graph_b (id)
    DEFERRABLE INITIALLY DEFERRED;
CREATE TABLE "Graph ""quoted""" (id integer PRIMARY KEY, a_id integer REFERENCES graph_a (id));
CREATE TABLE graph_small (id integer PRIMARY KEY, b_id integer REFERENCES graph_b (id) ON DELETE CASCADE);
BEGIN;
SET CONSTRAINTS graph_a_b DEFERRED;
INSERT INTO graph_a SELECT i, i, NULLIF(i - 1, 0), i FROM generate_series(1, 12000) i;
INSERT INTO graph_b SELECT i, 12001 - i FROM generate_series(1, 12000) i;
COMMIT;
INSERT INTO "Graph ""quoted""" SELECT i, i FROM generate_series(1, 11000) i;
INSERT INTO graph_small SELECT i, i FROM generate_series(1, 50) i;
-- Not valid in the source (rows break it): restored as it was, not validated.
ALTER TABLE graph_b ADD CONSTRAINT graph_b_low CHECK (a_id < 100) NOT VALID;
'''
_VALIDATED = "SELECT conname, convalidated FROM pg_constraint WHERE conname LIKE 'graph%%' ORDER BY 1"


@pytest.mark.parametrize("jobs", [2, 3])
def test_restore__keys_and_constraints_between_tables_in_any_direction_on_several_connections(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any, jobs: int
) -> None:
    # Each foreign key is added and validated as soon as its two tables are keyed, beside the
    # load of others: two tables referencing each other, a table referencing itself, a quoted
    # name, a small table loaded in a batch, a constraint left NOT VALID.
    settings.OPS = {**settings.OPS, "RESTORE_JOBS": jobs}
    source = scratch.postgres()
    execute(source, CONSTRAINT_GRAPH)
    archive = tmp_path / "graph.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres()

    result = run_restore(target, str(archive))

    assert (result.restored, result.jobs) == (True, jobs)
    assert schema_dump(scratch, target) == schema_dump(scratch, source)
    assert rows(target, _VALIDATED) == rows(source, _VALIDATED)
    assert ("graph_b_low", False) in rows(target, _VALIDATED)
    for table in ("graph_a", "graph_b", '"Graph ""quoted"""', "graph_small"):
        query = f"SELECT * FROM {table} ORDER BY 1"
        assert rows(target, query) == rows(source, query)
    with pytest.raises(Exception, match="graph_a_parent_id_fkey"):
        execute(target, "INSERT INTO graph_a (id, parent_id) VALUES (20000, 19999)")


def test_restore__rows_breaking_a_foreign_key_fail_it_and_change_nothing(
    scratch: ScratchDatabases, tmp_path: Path, settings: Any
) -> None:
    settings.OPS = {**settings.OPS, "RESTORE_JOBS": 2}
    source = scratch.postgres()
    execute(source, CONSTRAINT_GRAPH)
    archive = tmp_path / "graph.kidoo-backup"
    run_backup(source, output=str(archive))
    # A re-written backup whose graph_b rows reference graph_a rows that do not exist.
    bad = rewritten(archive, tmp_path, table="graph_b", change_row=lambda row: row.replace(b"\t", b"\t9", 1))
    target = scratch.postgres()
    execute(target, CONSTRAINT_GRAPH)
    before = rows(target, "SELECT count(*), sum(a_id) FROM graph_b")

    with pytest.raises(OpsError, match="graph_b_a_id_fkey"):
        run_restore(target, str(bad))

    assert rows(target, "SELECT count(*), sum(a_id) FROM graph_b") == before
    assert rows(target, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ops\\_restore\\_%%'") == [(0,)]


def _table_object(name: str) -> pg_schema.SchemaObject:
    columns = [{"name": "id", "type": "integer", "not_null": True}, {"name": "ref", "type": "integer"}]
    return pg_schema.SchemaObject("table", name, name, {"columns": columns})


@pytest.mark.parametrize(
    ("definition", "waits_for"),
    [
        ("FOREIGN KEY (ref) REFERENCES parent(id)", {"child", "parent"}),
        ("FOREIGN KEY (ref) REFERENCES child(id) DEFERRABLE INITIALLY DEFERRED", {"child"}),
        ('FOREIGN KEY (ref) REFERENCES "Odd ""name"""(id)', {"child", 'Odd "name"'}),
        ("FOREIGN KEY (ref, id) REFERENCES parent(id, ref) NOT VALID", {"child", "parent"}),
        # Another schema's table, or one the record does not hold: after every table of it.
        ("FOREIGN KEY (ref) REFERENCES other.parent(id)", {"child", "parent", 'Odd "name"'}),
        ("FOREIGN KEY (ref) REFERENCES elsewhere(id)", {"child", "parent", 'Odd "name"'}),
        ("CHECK ((ref > 0))", {"child"}),
    ],
)
def test_plan__a_constraint_waits_for_its_table_and_the_one_it_references(
    definition: str, waits_for: set[str]
) -> None:
    kind = "c" if definition.startswith("CHECK") else "f"
    schema = pg_schema.RecordedSchema(
        (
            _table_object("child"),
            _table_object("parent"),
            _table_object('Odd "name"'),
            pg_schema.SchemaObject("constraint", "c1", "child", definition, {"type": kind}),
        )
    )

    (constraint,) = pg_schema.plan(schema, '"s"').constraints

    assert constraint.table == "child"
    assert constraint.waits_for == waits_for
    assert (constraint.validate is None) == definition.endswith("NOT VALID")
