"""A PostgreSQL database's schema, recorded at backup time and rebuilt at restore time.

Recorded inside the backup's snapshot, from the server's own catalog functions (``format_type``,
``pg_get_expr``, ``pg_get_indexdef``, ``pg_get_constraintdef``, ``pg_get_viewdef``,
``pg_get_functiondef``, ``pg_get_triggerdef``), for every table of the project's schema
(``current_schema()``), whether or not a model describes it. It is stored in the manifest as
structured data, one object per entry: ``{"kind", "name", "table", "definition", ...}``.

A restore into PostgreSQL rebuilds it the way ``pg_restore`` would: extensions, sequences, tables
(columns, defaults, identity, generated columns), functions, views; then the rows; then indexes,
keys, checks, foreign keys and triggers; then the sequences' values. No migration runs for it.

The recorded schema is data, never a script: every definition is checked (ops/engines/pg_sql_check.py)
to be a single statement of its kind before anything is executed, and the names are quoted here,
not taken from a definition. A backup whose definitions fail the check is refused before any write.

Schemas this module cannot rebuild exactly (partitioned or inherited tables, materialized views,
types of the project's own, rules, row-level security, aggregates) are not recorded: such backups
restore by the migration path, as backups of the previous format do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ops.engines import pg_sql_check as check
from ops.engines.pg_sql_check import UnsafeDefinition
from ops.errors import OpsError

SCHEMA_FORMAT = 1

_INT = re.compile(r"-?[0-9]+")
_SEQUENCE_TYPES = {"smallint", "integer", "bigint"}


__all__ = ["RecordedSchema", "SchemaNotRecordable", "SchemaObject", "UnsafeDefinition", "plan", "record"]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SchemaNotRecordable(Exception):
    """The schema holds objects this module cannot rebuild exactly (the reason is the message)."""


@dataclass(frozen=True)
class SchemaObject:
    kind: str
    name: str
    table: str | None
    definition: Any
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "table": self.table,
            "definition": self.definition,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SchemaObject:
        known = {"kind", "name", "table", "definition"}
        table = data.get("table")
        return cls(
            kind=str(data["kind"]),
            name=str(data["name"]),
            table=None if table is None else str(table),
            definition=data.get("definition"),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class RecordedSchema:
    objects: tuple[SchemaObject, ...]

    def of_kind(self, kind: str) -> list[SchemaObject]:
        return [obj for obj in self.objects if obj.kind == kind]

    @property
    def tables(self) -> list[str]:
        return [obj.name for obj in self.of_kind("table")]

    def as_dict(self) -> dict[str, Any]:
        return {"format": SCHEMA_FORMAT, "objects": [obj.as_dict() for obj in self.objects]}

    @classmethod
    def from_manifest(cls, extra: dict[str, Any]) -> RecordedSchema | None:
        """The schema a manifest recorded (its optional ``schema`` field), or None."""
        data = extra.get("schema")
        if data is None:
            return None
        try:
            if int(data["format"]) != SCHEMA_FORMAT:
                raise OpsError(
                    f"The backup records its schema in format {data['format']}; this code reads format "
                    f"{SCHEMA_FORMAT}. Restore it with the code that wrote it."
                )
            return cls(tuple(SchemaObject.from_dict(obj) for obj in data["objects"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise check.UnsafeDefinition("The backup's recorded schema is damaged.") from None


# ---------------------------------------------------------------------------------------------
# Recording (inside the backup's snapshot)

_UNSUPPORTED = """
SELECT 'partitioned, inherited or typed table ' || c.relname FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace
   AND (c.relkind IN ('p', 'f') OR c.relispartition OR c.reloftype <> 0
        OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid))
UNION ALL
SELECT 'materialized view ' || c.relname FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'm'
UNION ALL
SELECT 'view with options ' || c.relname FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'v' AND c.reloptions IS NOT NULL
UNION ALL
SELECT 'table with storage options or row security ' || c.relname FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
   AND (c.reloptions IS NOT NULL OR c.relrowsecurity)
UNION ALL
SELECT 'rule ' || r.rulename FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind <> 'v'
UNION ALL
SELECT 'type ' || t.typname FROM pg_type t
 WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype IN ('e', 'd', 'r', 'm', 'b', 'c')
   AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid)
   AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                   AND d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT 'aggregate or window function ' || p.proname FROM pg_proc p
 WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind IN ('a', 'w')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                   AND d.objid = p.oid AND d.deptype = 'e')
"""

_EXTENSIONS = "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY extname"

_TABLES = """
SELECT c.oid, c.relname, c.relpersistence FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY c.relname
"""

_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
       CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
            THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
 WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum
"""

_SEQUENCES = """
SELECT c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       s.seqcache, s.seqcycle,
       (SELECT t.relname || '.' || a.attname FROM pg_depend d
          JOIN pg_class t ON t.oid = d.refobjid
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
           AND d.refclassid = 'pg_class'::regclass LIMIT 1),
       (SELECT t.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
           AND d.refclassid = 'pg_class'::regclass LIMIT 1),
       (SELECT a.attname FROM pg_depend d
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
           AND d.refclassid = 'pg_class'::regclass LIMIT 1),
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
               AND d.deptype = 'i')
  FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'S'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY c.relname
"""

_CONSTRAINTS = """
SELECT con.conname, t.relname, con.contype::text, pg_get_constraintdef(con.oid),
       CASE WHEN con.conindid <> 0 AND con.contype IN ('p', 'u') THEN pg_get_indexdef(con.conindid) END,
       CASE WHEN con.conindid <> 0 AND con.contype IN ('p', 'u')
            THEN (SELECT relname FROM pg_class WHERE oid = con.conindid) END,
       con.condeferrable, con.condeferred
  FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
 WHERE con.conrelid = ANY(%s) AND con.contype IN ('p', 'u', 'f', 'c', 'x')
 ORDER BY t.relname, con.conname
"""

_INDEXES = """
SELECT ic.relname, t.relname, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
 WHERE i.indrelid = ANY(%s)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
                   AND con.contype IN ('p', 'u', 'x'))
 ORDER BY t.relname, ic.relname
"""

_VIEWS = """
SELECT c.oid, c.relname, pg_get_viewdef(c.oid),
       ARRAY(SELECT DISTINCT d.refobjid FROM pg_rewrite r JOIN pg_depend d
               ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
             WHERE r.ev_class = c.oid AND d.refobjid <> c.oid AND d.refclassid = 'pg_class'::regclass)
  FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'v'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY c.oid
"""

_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
  FROM pg_proc p
 WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind IN ('f', 'p')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                   AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY p.oid
"""

_TRIGGERS = """
SELECT tg.tgname, t.relname, pg_get_triggerdef(tg.oid)
  FROM pg_trigger tg JOIN pg_class t ON t.oid = tg.tgrelid
 WHERE tg.tgrelid = ANY(%s) AND NOT tg.tgisinternal
 ORDER BY t.relname, tg.tgname
"""


def record(cursor: Any) -> RecordedSchema:
    """The schema of ``current_schema()``, read on ``cursor`` (in the backup's snapshot).

    Names in the project's schema are printed unqualified: the search path is narrowed to it
    while reading (and put back), so that the definitions resolve in whichever schema a restore
    builds them in. Raises SchemaNotRecordable for schemas this module cannot rebuild exactly.
    """
    cursor.execute("SELECT current_setting('search_path'), quote_ident(current_schema())")
    saved, schema = cursor.fetchone()
    if schema is None:
        raise SchemaNotRecordable("no current schema")
    cursor.execute("SELECT set_config('search_path', %s, true)", [schema])
    try:
        return _record(cursor)
    finally:
        cursor.execute("SELECT set_config('search_path', %s, true)", [saved])


def _record(cursor: Any) -> RecordedSchema:
    cursor.execute(_UNSUPPORTED)
    unsupported = [str(row[0]) for row in cursor.fetchall()]
    if unsupported:
        raise SchemaNotRecordable(", ".join(unsupported[:5]))
    objects: list[SchemaObject] = []
    cursor.execute(_EXTENSIONS)
    objects += [SchemaObject("extension", str(row[0]), None, None) for row in cursor.fetchall()]

    cursor.execute(_TABLES)
    tables = [(int(oid), str(name), str(persistence)) for oid, name, persistence in cursor.fetchall()]
    oids = [oid for oid, _, _ in tables]
    cursor.execute(_SEQUENCES)
    sequences = cursor.fetchall()
    identity_sequences: dict[tuple[str, str], dict[str, Any]] = {}
    for (
        name,
        type_,
        start,
        increment,
        minimum,
        maximum,
        cache,
        cycle,
        owner,
        table,
        column,
        identity,
    ) in sequences:
        quoted = quote_ident(str(name))
        cursor.execute(f"SELECT last_value, is_called FROM {quoted}")  # noqa: S608 (quoted identifier)
        last_value, is_called = cursor.fetchone()
        options = {
            "type": str(type_),
            "start": int(start),
            "increment": int(increment),
            "min": int(minimum),
            "max": int(maximum),
            "cache": int(cache),
            "cycle": bool(cycle),
            "last_value": int(last_value),
            "is_called": bool(is_called),
        }
        if identity:
            identity_sequences[(str(table), str(column))] = {"name": str(name), **options}
            continue
        owned: dict[str, Any] = {"owned_by": [str(table), str(column)]} if owner else {}
        objects.append(SchemaObject("sequence", str(name), None, options, owned))

    cursor.execute(_COLUMNS, [oids])
    columns: dict[int, list[dict[str, Any]]] = {}
    names = {oid: name for oid, name, _ in tables}
    for relid, name, type_, not_null, default, identity, generated, collation in cursor.fetchall():
        entry: dict[str, Any] = {"name": str(name), "type": str(type_), "not_null": bool(not_null)}
        if generated:
            entry["generated"] = str(default)
        elif default is not None:
            entry["default"] = str(default)
        if identity:
            entry["identity"] = "always" if identity == "a" else "by default"
            entry["sequence"] = identity_sequences.get((names[int(relid)], str(name)))
        if collation:
            entry["collation"] = str(collation)
        columns.setdefault(int(relid), []).append(entry)
    for oid, name, persistence in tables:
        flags: dict[str, Any] = {"unlogged": True} if persistence == "u" else {}
        objects.append(SchemaObject("table", name, name, {"columns": columns.get(oid, [])}, flags))

    cursor.execute(_FUNCTIONS)
    for name, arguments, definition in cursor.fetchall():
        objects.append(
            SchemaObject("function", str(name), None, str(definition), {"arguments": str(arguments)})
        )

    cursor.execute(_VIEWS)
    views = [
        (int(oid), str(name), str(definition), [int(d) for d in deps])
        for oid, name, definition, deps in cursor.fetchall()
    ]
    for _, name, definition in _dependency_order(views):
        objects.append(SchemaObject("view", name, None, definition))

    cursor.execute(_CONSTRAINTS, [oids])
    for name, table, kind, definition, index, index_name, deferrable, deferred in cursor.fetchall():
        details: dict[str, Any] = {
            "type": str(kind),
            "deferrable": bool(deferrable),
            "deferred": bool(deferred),
        }
        if index is not None:
            details |= {"index": str(index), "index_name": str(index_name)}
        objects.append(SchemaObject("constraint", str(name), str(table), str(definition), details))
    cursor.execute(_INDEXES, [oids])
    objects += [SchemaObject("index", str(n), str(t), str(d)) for n, t, d in cursor.fetchall()]
    cursor.execute(_TRIGGERS, [oids])
    objects += [SchemaObject("trigger", str(n), str(t), str(d)) for n, t, d in cursor.fetchall()]
    return RecordedSchema(tuple(objects))


def _dependency_order(views: list[tuple[int, str, str, list[int]]]) -> list[tuple[int, str, str]]:
    """Views after the views they read (oids are not an order: CREATE OR REPLACE keeps the old one)."""
    by_oid = {oid: (oid, name, definition) for oid, name, definition, _ in views}
    needs = {oid: [d for d in deps if d in by_oid] for oid, _, _, deps in views}
    done: list[tuple[int, str, str]] = []
    placed: set[int] = set()

    def place(oid: int, path: set[int]) -> None:
        if oid in placed or oid in path:
            return
        for dependency in needs[oid]:
            place(dependency, path | {oid})
        placed.add(oid)
        done.append(by_oid[oid])

    for oid in by_oid:
        place(oid, set())
    return done


# ---------------------------------------------------------------------------------------------
# Rebuilding (in the restore's private schema)


@dataclass(frozen=True)
class Constraint:
    """A CHECK or FOREIGN KEY constraint of ``table``, added once the rows are in.

    ``add`` adds it as the backup had it: checking the rows, unless it was NOT VALID there. On
    big tables it goes in two steps instead: ``unvalidated`` (a catalog change) then ``validate``
    (None if it was not valid in the backup). ``waits_for``: the tables whose rows and keys must
    be in place first: its own, and the one a foreign key references; every table of the schema
    when that one is not known (a table outside it, or a definition this module does not read).
    """

    table: str
    waits_for: frozenset[str]
    add: str
    validate: str | None

    @property
    def unvalidated(self) -> str:
        return f"{self.add} NOT VALID" if self.validate is not None else self.add


@dataclass(frozen=True)
class Plan:
    """The statements that rebuild a recorded schema in ``target``, in the order they must run.

    ``before_load``: extensions, sequences, tables, functions, defaults, sequence owners, views.
    ``indexes``: per table, its indexes and the indexes of its keys (any number built at once).
    ``keys``: per table, its keys attached to their indexes. ``after``: checks, exclusions,
    foreign keys, triggers. ``sequence_values``: (qualified sequence, value, is_called) for ``setval``.
    """

    before_load: tuple[str, ...]
    indexes: dict[str, tuple[str, ...]]
    keys: dict[str, tuple[str, ...]]
    after: tuple[str, ...]
    sequence_values: tuple[tuple[str, int, bool], ...]
    # For several connections (ops/engines/pg_parallel.py), ``after`` split in two: the checks and
    # foreign keys, each added NOT VALID then validated as soon as its tables are ready (any
    # number at once: VALIDATE locks the referenced table only in ROW SHARE mode), then the rest
    # (exclusions, triggers), last.
    constraints: tuple[Constraint, ...] = ()
    rest: tuple[str, ...] = ()

    @property
    def attach(self) -> tuple[str, ...]:
        return tuple(statement for group in self.keys.values() for statement in group)

    @property
    def after_load(self) -> tuple[str, ...]:
        """On one connection: every statement that follows the load."""
        builds = (statement for group in self.indexes.values() for statement in group)
        return (*builds, *self.attach, *self.after)


# The table a foreign key's definition references, as pg_get_constraintdef prints it.
_REFERENCES = re.compile(
    rf"FOREIGN KEY \({check.NAME_PART}(?:, {check.NAME_PART})*\) REFERENCES ({check.QUALIFIED_NAME})\("
)


def _referenced_table(definition: str) -> str | None:
    """The referenced table's name if unqualified (so in the recorded schema), else None."""
    match = _REFERENCES.match(definition)
    if match is None:
        return None
    name = match.group(1)
    if re.fullmatch(check.NAME_PART, name) is None:  # schema-qualified: another schema's table
        return None
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise check.UnsafeDefinition(f"{what}: {value!r} is not an integer.")
    return value


def _sequence_options(options: Any, what: str) -> str:
    if not isinstance(options, dict):
        raise check.UnsafeDefinition(f"{what}: its options are not recorded.")
    type_ = options.get("type")
    if type_ not in _SEQUENCE_TYPES:
        raise check.UnsafeDefinition(f"{what}: {type_!r} is not a sequence type.")
    parts = [
        f"AS {type_}",
        f"START WITH {_int(options.get('start'), what)}",
        f"INCREMENT BY {_int(options.get('increment'), what)}",
        f"MINVALUE {_int(options.get('min'), what)}",
        f"MAXVALUE {_int(options.get('max'), what)}",
        f"CACHE {_int(options.get('cache'), what)}",
        "CYCLE" if options.get("cycle") is True else "NO CYCLE",
    ]
    return " ".join(parts)


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise check.UnsafeDefinition(f"{what}: is not recorded as text.")
    return value


def plan(schema: RecordedSchema, target: str) -> Plan:
    """Check every recorded definition and build the statements for schema ``target`` (quoted).

    Raises UnsafeDefinition, naming the object, before anything is executed.
    """
    before: list[str] = []
    defaults: list[str] = []
    owners: list[str] = []
    values: list[tuple[str, int, bool]] = []
    indexes: dict[str, list[str]] = {}
    keys: dict[str, list[str]] = {}
    checks: list[str] = []
    foreign: list[str] = []
    triggers: list[str] = []
    constraints: list[Constraint] = []
    others: list[str] = []
    tables = set(schema.tables)

    def qualified(name: str) -> str:
        return f"{target}.{quote_ident(name)}"

    for obj in schema.objects:
        what = f"The backup's {obj.kind} {obj.name!r}" + (f" of table {obj.table!r}" if obj.table else "")
        if obj.kind == "extension":
            before.append(f"CREATE EXTENSION IF NOT EXISTS {quote_ident(obj.name)} SCHEMA {target}")
        elif obj.kind == "sequence":
            before.append(f"CREATE SEQUENCE {qualified(obj.name)} {_sequence_options(obj.definition, what)}")
            values.append(
                (
                    qualified(obj.name),
                    _int(obj.definition["last_value"], what),
                    obj.definition.get("is_called") is True,
                )
            )
            owned_by = obj.extra.get("owned_by")
            if owned_by is not None:
                if not (isinstance(owned_by, list) and len(owned_by) == 2 and owned_by[0] in tables):
                    raise check.UnsafeDefinition(f"{what}: is owned by no recorded table.")
                table, column = (_string(part, what) for part in owned_by)
                owners.append(
                    f"ALTER SEQUENCE {qualified(obj.name)} OWNED BY {qualified(table)}.{quote_ident(column)}"
                )
        elif obj.kind == "table":
            statement, table_defaults, identity_values = _table(obj, qualified, what)
            before.append(statement)
            defaults += table_defaults
            values += identity_values
        elif obj.kind == "function":
            kind, rest = check.function_definition(_string(obj.definition, what), what)
            before.append(f"CREATE {kind} {qualified(obj.name)}{rest}")
        elif obj.kind == "view":
            body = check.view_definition(_string(obj.definition, what), what)
            # After the functions and defaults: they are appended below, in this order.
            defaults.append(f"CREATE VIEW {qualified(obj.name)} AS {body}")
        elif obj.kind in ("index", "constraint", "trigger"):
            if obj.table not in tables:
                raise check.UnsafeDefinition(f"{what}: belongs to no recorded table.")
            assert obj.table is not None
            on = qualified(obj.table)
            if obj.kind == "index":
                indexes.setdefault(obj.table, []).append(_index(obj.name, obj.definition, on, what))
            elif obj.kind == "trigger":
                constraint, when, events, rest = check.trigger_definition(_string(obj.definition, what), what)
                triggers.append(
                    f"CREATE {constraint}TRIGGER {quote_ident(obj.name)} {when} {events} ON {on} {rest}"
                )
            else:
                kind = _string(obj.extra.get("type"), what)
                definition = check.constraint_definition(_string(obj.definition, what), kind, what)
                add = f"ALTER TABLE {on} ADD CONSTRAINT {quote_ident(obj.name)} {definition}"
                if kind in ("p", "u") and obj.extra.get("index") is not None:
                    index_name = _string(obj.extra.get("index_name"), what)
                    index = _index(index_name, obj.extra["index"], on, what)
                    indexes.setdefault(obj.table, []).append(index)
                    deferrable = ""
                    if obj.extra.get("deferrable") is True:
                        deferrable = " DEFERRABLE" + (
                            " INITIALLY DEFERRED" if obj.extra.get("deferred") else ""
                        )
                    primary = "PRIMARY KEY" if kind == "p" else "UNIQUE"
                    keys.setdefault(obj.table, []).append(
                        f"ALTER TABLE {on} ADD CONSTRAINT {quote_ident(obj.name)} {primary} "
                        f"USING INDEX {quote_ident(index_name)}{deferrable}"
                    )
                elif kind in ("f", "c"):
                    (foreign if kind == "f" else checks).append(add)
                    waits_for = frozenset({obj.table})
                    if kind == "f":
                        referenced = _referenced_table(definition)
                        if referenced is None or referenced not in tables:
                            waits_for = frozenset(tables)
                        else:
                            waits_for = frozenset({obj.table, referenced})
                    if definition.endswith(" NOT VALID"):  # as in the backup: nothing to validate
                        constraints.append(Constraint(obj.table, waits_for, add, None))
                    else:
                        validate = f"ALTER TABLE {on} VALIDATE CONSTRAINT {quote_ident(obj.name)}"
                        constraints.append(Constraint(obj.table, waits_for, add, validate))
                else:
                    checks.append(add)
                    others.append(add)
        else:
            raise check.UnsafeDefinition(f"{what}: this code does not know objects of that kind.")
    return Plan(
        before_load=(*before, *owners, *defaults),
        indexes={table: tuple(group) for table, group in indexes.items()},
        keys={table: tuple(group) for table, group in keys.items()},
        after=(*checks, *foreign, *triggers),
        sequence_values=tuple(values),
        constraints=tuple(constraints),
        rest=(*others, *triggers),
    )


def _index(name: str, definition: Any, on: str, what: str) -> str:
    unique, only, method, body = check.index_definition(_string(definition, what), what)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", method):
        raise check.UnsafeDefinition(f"{what}: {method!r} is not an index access method.")
    return (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX {quote_ident(name)} ON {'ONLY ' if only else ''}{on} "
        f"USING {method} {body}"
    )


def _table(
    obj: SchemaObject, qualified: Any, what: str
) -> tuple[str, list[str], list[tuple[str, int, bool]]]:
    definition = obj.definition
    if not isinstance(definition, dict) or not isinstance(definition.get("columns"), list):
        raise check.UnsafeDefinition(f"{what}: its columns are not recorded.")
    parts: list[str] = []
    defaults: list[str] = []
    values: list[tuple[str, int, bool]] = []
    for column in definition["columns"]:
        if not isinstance(column, dict):
            raise check.UnsafeDefinition(f"{what}: a column is not recorded.")
        name = _string(column.get("name"), what)
        where = f"{what}, column {name!r}"
        part = f"{quote_ident(name)} {check.type_name(_string(column.get('type'), where), where)}"
        if column.get("collation") is not None:
            part += f" COLLATE {check.collation_name(_string(column['collation'], where), where)}"
        if column.get("generated") is not None:
            expression = check.expression(_string(column["generated"], where), where)
            part += f" GENERATED ALWAYS AS ({expression}) STORED"
        if column.get("identity") is not None:
            kind = {"always": "ALWAYS", "by default": "BY DEFAULT"}.get(column["identity"])
            sequence = column.get("sequence")
            if kind is None or not isinstance(sequence, dict):
                raise check.UnsafeDefinition(f"{where}: its identity is not recorded.")
            sequence_name = qualified(_string(sequence.get("name"), where))
            options = _sequence_options(sequence, where).removeprefix(f"AS {sequence['type']} ")
            part += f" GENERATED {kind} AS IDENTITY (SEQUENCE NAME {sequence_name} {options})"
            values.append(
                (sequence_name, _int(sequence.get("last_value"), where), sequence.get("is_called") is True)
            )
        if column.get("not_null") is True:
            part += " NOT NULL"
        parts.append(part)
        if column.get("default") is not None:
            expression = check.expression(_string(column["default"], where), where)
            defaults.append(
                f"ALTER TABLE {qualified(obj.name)} ALTER COLUMN {quote_ident(name)} SET DEFAULT {expression}"
            )
    unlogged = "UNLOGGED " if obj.extra.get("unlogged") is True else ""
    return f"CREATE {unlogged}TABLE {qualified(obj.name)} ({', '.join(parts)})", defaults, values


def drop_existing(cursor: Any, schema: RecordedSchema) -> None:
    """In the current schema: drop the views, functions and free sequences the record creates again.

    For a rebuild in place (no private schema); the caller's transaction dropped the tables first.
    Functions are matched on name and arguments, and dropped by the signature the catalog prints.
    """
    for obj in schema.of_kind("view"):
        cursor.execute(f"DROP VIEW IF EXISTS {quote_ident(obj.name)} CASCADE")
    for obj in schema.of_kind("sequence"):
        cursor.execute(f"DROP SEQUENCE IF EXISTS {quote_ident(obj.name)} CASCADE")
    for obj in schema.of_kind("function"):
        cursor.execute(
            "SELECT CASE prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, oid::regprocedure::text "
            "FROM pg_proc WHERE pronamespace = current_schema()::regnamespace AND proname = %s "
            "AND pg_get_function_identity_arguments(oid) = %s",
            [obj.name, str(obj.extra.get("arguments", ""))],
        )
        for kind, signature in cursor.fetchall():
            cursor.execute(f"DROP {kind} IF EXISTS {signature} CASCADE")


def set_sequences(cursor: Any, plan_: Plan) -> None:
    """Each sequence's recorded value, many per round trip (a Wagtail site has 56 sequences)."""
    values = plan_.sequence_values
    for start in range(0, len(values), _STATEMENTS_PER_TRIP):
        batch = values[start : start + _STATEMENTS_PER_TRIP]
        calls = ", ".join(["setval(%s::regclass, %s, %s)"] * len(batch))
        cursor.execute(f"SELECT {calls}", [item for row in batch for item in row])


# Statements sent per round trip by ``execute``.
_STATEMENTS_PER_TRIP = 200


def execute(cursor: Any, statements: Sequence[str]) -> None:
    """Run ``statements`` (a plan's, each checked to be one statement) in order, a batch per trip.

    One query string holding several statements runs them in order, as separate statements would
    (inside the caller's transaction; both drivers send a query without parameters as a simple
    query). Each was checked to be exactly one statement, with no comment nor unterminated quote,
    so joining them cannot merge two into one; the newline before each ``;`` is for the reader of
    a server log. Hundreds of small DDL statements (a Wagtail site's schema) took a round trip and
    a pass through Django's cursor each.
    """
    for start in range(0, len(statements), _STATEMENTS_PER_TRIP):
        cursor.execute("\n;\n".join(statements[start : start + _STATEMENTS_PER_TRIP]))


def prepare_session(cursor: Any) -> None:
    """Settings the checks above rely on, and pg_restore's for bodies that name later objects."""
    cursor.execute("SET standard_conforming_strings = on")
    cursor.execute("SET check_function_bodies = off")
