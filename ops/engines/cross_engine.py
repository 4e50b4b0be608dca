"""Restoring a backup into the other engine: SQLite -> PostgreSQL and PostgreSQL -> SQLite.

An archive holds COPY text whatever the engine (ops/archive/copy_text.py), but the values in it are each
engine's own spelling of what Django stored. This module rewrites, column by column and line by
line, the values whose spelling differs, into exactly what Django itself would have stored in the
target engine (checked against both engines, see tests/test_cross_engine.py):

==================  ==================================  ==========================================
Django type         SQLite (as Django stores it)        PostgreSQL (COPY text output)
==================  ==================================  ==========================================
BooleanField        ``1`` / ``0``                       ``t`` / ``f``
DateTimeField       naive UTC ``2024-10-27 00:30:00.5`` ``2024-10-27 00:30:00.5+00`` (the session's
                    (``str(datetime)``: 6 digits)       zone, UTC under USE_TZ; zeros trimmed)
TimeField           ``12:00:00.500000``                 ``12:00:00.5``
DurationField       bigint microseconds                 interval ``-3 days +00:00:00.000001``
UUIDField           32 hex digits                       with dashes
JSONField           ``json.dumps`` (ASCII escapes,      jsonb (keys reordered, raw UTF-8)
                    keys in insertion order)
DecimalField        REAL: 15 significant digits         numeric, exact
FloatField          REAL (no NaN: NULL; no -0.0)        ``Infinity``, ``NaN``, ``-0``
==================  ==================================  ==========================================

Everything else both engines support (integers, text, dates, binary as ``\\x`` hex, IP addresses)
is spelled the same in both and passes through untouched; foreign keys take the type of the key
they point to, read from the migration state the backup recorded (a relation is any
``ForeignKey``, subclasses such as modelcluster's ``ParentalKey`` included). A type outside this
list (ArrayField, HStoreField, ranges, a custom ``db_type``), a column no model field describes, or
one whose field here is of another type than the backup's (a search column: text on SQLite,
``tsvector`` on PostgreSQL) is refused by ``plan_conversion`` before anything is written, each named
with its model and the option that leaves the model out.

Tables that hold only what can be rebuilt from the others in an engine's own form (search indexes,
SQLite FTS virtual tables: ``OPS["CROSS_ENGINE_SKIP"]``) are left out and named, with the command
that rebuilds them.

Same-engine restores never come here: the loaders get the archive's stream untouched.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from ops.archive.copy_text import NULL, decode_field
from ops.archive.format import Manifest, TableEntry
from ops.conf import ops_setting
from ops.engines.migration_state import recorded_state
from ops.errors import OpsError

ENGINES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}

# Spelled the same in both engines' COPY text: nothing to convert.
_SAME_SPELLING = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
        "CharField",
        "TextField",
        "SlugField",
        "FileField",
        "FilePathField",
        "GenericIPAddressField",
        "IPAddressField",
        "BinaryField",
        "DateField",
    }
)

ValueConverter = Callable[[str], str]
# A string: django.db.models.Field is generic only to the type checker (django-stubs).
AnyField: TypeAlias = "models.Field[Any, Any]"


class TableStream(Protocol):
    """What the loaders read a table's COPY text from (ops.archive.format.TableData, or its conversion)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def __iter__(self) -> Iterator[bytes]: ...


TableConverter = Callable[[TableEntry, TableStream], TableStream]


class UnsupportedColumns(OpsError):
    """The backup holds columns whose type the target engine cannot store like the source did."""


class ConversionFailed(OpsError):
    """A value in the backup is not what Django stores for its column's type."""


# --- values: SQLite -> PostgreSQL ---------------------------------------------------------------


def _naive_datetime_to_postgres(zone: dt.tzinfo | None) -> ValueConverter:
    if zone is None:
        # USE_TZ = False: PostgreSQL reads a naive value in the session's zone, as Django's own
        # INSERT would have been read.
        return lambda value: value
    if zone is dt.UTC or str(zone) == "UTC":
        return lambda value: value + "+00"

    def convert(value: str) -> str:
        return str(dt.datetime.fromisoformat(value).replace(tzinfo=zone))

    return convert


def _microseconds_to_interval(value: str) -> str:
    delta = dt.timedelta(microseconds=int(value))
    # What psycopg2 sends for a timedelta: PostgreSQL then stores (and prints) exactly what
    # Django's own INSERT would have stored (days and time apart, no 24-hour folding).
    return f"{delta.days} days {delta.seconds}.{delta.microseconds:06d} seconds"


def _real_to_numeric(field: AnyField | None) -> ValueConverter:
    # Django reads a SQLite decimal with 15 significant digits then quantizes it to the field
    # (operations.get_decimalfield_converter); the stored REAL's longer repr must not leak through.
    create = decimal.Context(prec=15).create_decimal_from_float
    places = getattr(field, "decimal_places", None)
    digits = getattr(field, "max_digits", None)

    def convert(value: str) -> str:
        number = create(float(value)) if any(c in value for c in ".eEin") else decimal.Decimal(value)
        if isinstance(places, int) and isinstance(digits, int):
            number = number.quantize(decimal.Decimal(1).scaleb(-places), context=decimal.Context(prec=digits))
        return format(number, "f")

    return convert


# --- values: PostgreSQL -> SQLite ---------------------------------------------------------------


_BOOLEANS = {"t": "1", "f": "0"}


def _boolean_to_sqlite(value: str) -> str:
    return _BOOLEANS[value]


def _six_digit_fraction(value: str) -> str:
    """``12:00:00.5`` -> ``12:00:00.500000``: PostgreSQL trims zeros, ``str(time)`` does not."""
    head, dot, fraction = value.partition(".")
    return head + dot + fraction.ljust(6, "0") if dot else value


def _datetime_to_sqlite(zone: dt.tzinfo) -> ValueConverter:
    utc = zone is dt.UTC or str(zone) == "UTC"

    def convert(value: str) -> str:
        if utc and value.endswith("+00") and len(value) >= 22 and value[4] == "-":
            return _six_digit_fraction(value[:-3])
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a timestamp without a time zone")
        return str(moment.astimezone(zone).replace(tzinfo=None))

    return convert


def _time_to_sqlite(value: str) -> str:
    return str(dt.time.fromisoformat(value))


def _date_to_sqlite(value: str) -> str:
    # PostgreSQL prints dates in the session's DateStyle; only ISO is what Django stores.
    return dt.date.fromisoformat(value).isoformat()


_INTERVAL = re.compile(
    r"(?:(?P<years>[+-]?\d+) years? ?)?(?:(?P<months>[+-]?\d+) mons? ?)?(?:(?P<days>[+-]?\d+) days? ?)?"
    r"(?:(?P<sign>[+-])?(?P<hours>\d+):(?P<minutes>\d\d):(?P<seconds>\d\d)(?:\.(?P<fraction>\d{1,6}))?)?"
)


def _interval_to_microseconds(value: str) -> str:
    match = _INTERVAL.fullmatch(value)
    if not match or not value:
        raise ValueError("not an interval in PostgreSQL's IntervalStyle 'postgres'")
    part = match.groupdict()
    # Years and months as psycopg2 reads them (365 and 30 days): the timedelta Django would see.
    days = int(part["years"] or 0) * 365 + int(part["months"] or 0) * 30 + int(part["days"] or 0)
    clock = (int(part["hours"] or 0) * 60 + int(part["minutes"] or 0)) * 60 + int(part["seconds"] or 0)
    micro = clock * 1_000_000 + int((part["fraction"] or "").ljust(6, "0"))
    if part["sign"] == "-":
        micro = -micro
    return str(days * 86_400_000_000 + micro)


def _uuid_to_sqlite(value: str) -> str:
    if len(value) != 36:
        raise ValueError("not a UUID")
    return value.replace("-", "")


def _json_to_sqlite(value: str) -> str:
    # What Django's JSONField writes on SQLite for the value it would read from PostgreSQL.
    text = str(decode_field(value)) if "\\" in value else value
    # json.dumps escapes every control character itself: only its backslashes need COPY escaping.
    return json.dumps(json.loads(text)).replace("\\", "\\\\")


_FLOAT_WORDS = {"Infinity": "1e999", "-Infinity": "-1e999", "NaN": NULL}


def _float_to_sqlite(value: str) -> str:
    # SQLite's REAL reads 1e999 as infinity and stores NaN as NULL, as it does Django's floats.
    return _FLOAT_WORDS.get(value, value)


# --- planning -----------------------------------------------------------------------------------


def _to_postgresql(kind: str, field: AnyField | None) -> ValueConverter | None:
    if kind == "DateTimeField":
        # Naive SQLite datetimes are UTC under USE_TZ (Django's default database zone).
        return _naive_datetime_to_postgres(dt.UTC if settings.USE_TZ else None)
    if kind == "DurationField":
        return _microseconds_to_interval
    if kind == "DecimalField":
        return _real_to_numeric(field)
    # Booleans (PostgreSQL reads 1/0), UUIDs (it reads 32 hex digits), JSON (jsonb parses it),
    # floats (it reads inf), times: read as they are.
    return None


def _to_sqlite(kind: str, field: AnyField | None, zone: dt.tzinfo) -> ValueConverter | None:
    if kind == "DateTimeField":
        return _datetime_to_sqlite(zone)
    return {
        "BooleanField": _boolean_to_sqlite,
        "TimeField": _time_to_sqlite,
        "DateField": _date_to_sqlite,
        "DurationField": _interval_to_microseconds,
        "UUIDField": _uuid_to_sqlite,
        "JSONField": _json_to_sqlite,
        "FloatField": _float_to_sqlite,
    }.get(kind)


_CONVERTED = frozenset(
    {"BooleanField", "DateTimeField", "TimeField", "DurationField", "UUIDField", "JSONField"}
    | {"DecimalField", "FloatField"}
)
SUPPORTED_TYPES = _SAME_SPELLING | _CONVERTED


def _database_zone(connection: BaseDatabaseWrapper | None) -> dt.tzinfo:
    """The zone Django stores naive SQLite datetimes in (UTC unless DATABASES sets TIME_ZONE)."""
    if connection is not None and connection.timezone is not None:
        return connection.timezone
    if settings.USE_TZ:
        return dt.UTC
    return ZoneInfo(settings.TIME_ZONE)


def _historical_fields(
    connection: BaseDatabaseWrapper, manifest: Manifest
) -> dict[tuple[str, str], AnyField]:
    """(table, column) -> the model field stored there, as of the backup's migrations."""
    state = recorded_state(connection, manifest.migrations)
    fields: dict[tuple[str, str], AnyField] = {}
    for model in state.apps.get_models(include_auto_created=True):
        for field in model._meta.local_concrete_fields:
            fields[(model._meta.db_table, str(field.column))] = field
    return fields


def _key_type(field: AnyField) -> AnyField:
    """The field a foreign key's column really holds: the key it points to (through chains)."""
    for _ in range(20):  # a chain of one-to-one keys; bounded against a cycle in broken state
        if not isinstance(field, models.ForeignKey):
            break
        field = field.target_field
    return field


@dataclass(frozen=True)
class LeftOut:
    """A table a cross-engine restore does not load, and how to rebuild it afterwards."""

    table: str
    model: str
    rebuild: str

    def __str__(self) -> str:
        return f"{self.table} ({self.model}: rebuild it with `{self.rebuild}`)"


@dataclass(frozen=True)
class ConversionPlan:
    """Per table, which columns (by position) get which value converter; the tables left out."""

    source: str
    target: str
    columns: dict[str, tuple[tuple[int, ValueConverter], ...]]
    left_out: tuple[LeftOut, ...] = ()

    @property
    def skipped(self) -> frozenset[str]:
        return frozenset(item.table for item in self.left_out)

    def warning(self) -> str:
        """What the restore says about the tables it left out ("" if none)."""
        if not self.left_out:
            return ""
        return (
            f"Left out of this {ENGINES[self.source]} -> {ENGINES[self.target]} restore, as they are "
            f"built in a form only one engine has: {', '.join(map(str, self.left_out))}."
        )

    def convert(self, entry: TableEntry, data: TableStream) -> TableStream:
        converters = self.columns.get(entry.name, ())
        if not converters:
            return data
        return ConvertedTable(data, entry, converters, self.target)


_INTEGERS = frozenset(
    {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField"}
    | {"PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField"}
)
_TEXTS = frozenset({"CharField", "TextField", "SlugField", "FileField", "FilePathField"})


def _loads_as(recorded: str, here: str) -> bool:
    """Whether a column the backup recorded as ``recorded`` loads into a field ``here`` as it is.

    Integers into integers and text into text (an auto-created key that is an AutoField in one
    project's state and a BigAutoField in the other's); anything else only into its own type.
    """
    return recorded == here or any(recorded in family and here in family for family in (_INTEGERS, _TEXTS))


def _skip_setting() -> dict[str, str]:
    return {str(label).lower(): str(rebuild) for label, rebuild in ops_setting("CROSS_ENGINE_SKIP").items()}


def _option(label: str) -> str:
    return (
        f"leave it out with `backup --exclude {label}` when backing up, or at restore with "
        f'OPS["CROSS_ENGINE_SKIP"]["{label}"] = "<the command that rebuilds it>"'
    )


def plan_conversion(manifest: Manifest, connection: BaseDatabaseWrapper) -> ConversionPlan | None:
    """How to load ``manifest``'s tables into ``connection``: None when the engines match.

    Raises UnsupportedColumns, naming every table.column, its type, its model and the option that
    leaves the model out, when any column cannot be carried across; nothing has been written at
    that point.
    """
    source, target = manifest.vendor, connection.vendor
    if source == target:
        return None
    if source not in ENGINES or target not in ENGINES:
        raise UnsupportedColumns(
            f"A backup of a {source} database cannot be restored into {target}: "
            "restores across engines go between PostgreSQL and SQLite."
        )
    fields = _historical_fields(connection, manifest)
    zone = _database_zone(connection if target == "sqlite" else None)
    skip = _skip_setting()
    tables_here = {table for table, _ in fields}
    problems: dict[str, list[str]] = {}
    left_out: list[LeftOut] = []
    plan: dict[str, tuple[tuple[int, ValueConverter], ...]] = {}
    for entry in manifest.tables:
        label = entry.model or entry.name
        if label.lower() in skip:
            left_out.append(LeftOut(entry.name, label, skip[label.lower()]))
            continue
        if entry.name not in tables_here:
            # A model only one engine's migrations create (Wagtail's SQLite FTS table): caught here,
            # before anything is written, rather than by the load finding no table.
            problems.setdefault(label, []).append(
                f"{entry.name} (a table this code's migrations do not create on {ENGINES[target]})"
            )
            continue
        converters = []
        for index, column in enumerate(entry.columns):
            kind = column.type
            field = fields.get((entry.name, column.name))
            where = f"{entry.name}.{column.name}"
            if isinstance(field, models.ForeignKey):
                # By class, not name: subclasses (ParentalKey...) hold the key they point to too.
                field = _key_type(field)
                kind = field.get_internal_type()
            elif field is not None and kind is not None and not _loads_as(kind, field.get_internal_type()):
                problems.setdefault(label, []).append(
                    f"{where} ({kind} in the backup, {field.get_internal_type()} in {ENGINES[target]} here)"
                )
                continue
            elif kind in {"ForeignKey", "OneToOneField"} and field is None:
                problems.setdefault(label, []).append(f"{where} ({kind} to a key this code cannot find)")
                continue
            if kind is None:
                problems.setdefault(label, []).append(f"{where} (no model field: its type is unknown)")
                continue
            if kind not in SUPPORTED_TYPES:
                problems.setdefault(label, []).append(f"{where} ({kind})")
                continue
            converter = (
                _to_postgresql(kind, field) if target == "postgresql" else _to_sqlite(kind, field, zone)
            )
            if converter is not None:
                converters.append((index, converter))
        if converters:
            plan[entry.name] = tuple(converters)
    if problems:
        described = [
            f"{', '.join(columns)} of model {label}: {_option(label)}" for label, columns in problems.items()
        ]
        shown = "; ".join(described[:10]) + (
            f"; and {len(described) - 10} more models" if len(described) > 10 else ""
        )
        raise UnsupportedColumns(
            f"This {ENGINES[source]} backup cannot be restored into {ENGINES[target]}: it holds columns "
            f"of types {ENGINES[target]} does not support: {shown}. Nothing was changed. Restore it into "
            f"a {ENGINES[source]} database, or leave those models out."
        )
    return ConversionPlan(source, target, plan, tuple(left_out))


class ConvertedTable:
    """A table's COPY text with some columns rewritten, read line by line (never a whole table)."""

    def __init__(
        self,
        data: TableStream,
        entry: TableEntry,
        converters: tuple[tuple[int, ValueConverter], ...],
        target: str,
    ) -> None:
        self._data = data
        self._entry = entry
        self._converters = converters
        self._target = target
        self._pending = b""
        self._done = False
        self._row = 0

    def read(self, size: int = -1, /) -> bytes:
        while not self._done:
            chunk = self._data.read()
            if not chunk:
                self._done = True
                if self._pending:
                    # The format ends every row with a newline; be lenient like decode_lines.
                    return self._lines(self._pending + b"\n")
                return b""
            end = chunk.rfind(b"\n")
            if end < 0:
                self._pending += chunk
                continue
            block = self._pending + chunk[: end + 1]
            self._pending = chunk[end + 1 :]
            return self._lines(block)
        return b""

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def _lines(self, block: bytes) -> bytes:
        lines = block.decode().split("\n")
        lines.pop()  # after the last newline
        for position, line in enumerate(lines):
            self._row += 1
            fields = line.split("\t")
            try:
                for index, converter in self._converters:
                    value = fields[index]
                    if value != NULL:
                        fields[index] = converter(value)
            except (ValueError, KeyError, IndexError, ArithmeticError) as error:
                self._fail(index, error)
            lines[position] = "\t".join(fields)
        lines.append("")
        return "\n".join(lines).encode()

    def _fail(self, index: int, error: Exception) -> None:
        column = self._entry.columns[index] if index < len(self._entry.columns) else None
        where = f"{self._entry.name}.{column.name if column else index}"
        kind = column.type if column else "?"
        # The value itself may be personal data: the message names its place, never the value.
        reason = type(error).__name__ if not isinstance(error, ValueError) else str(error).split(":")[0]
        raise ConversionFailed(
            f"Row {self._row} of the backup's {where} ({kind}) is not a value Django stores "
            f"({reason}), so it cannot be carried into {ENGINES[self._target]}. Nothing was changed."
        )
