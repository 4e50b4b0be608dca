"""How full the database is, what takes the room, how fast it grows and when the plan runs out.

Everything comes from catalogs (``pg_class`` and the size functions on PostgreSQL; ``dbstat`` and
``sqlite_stat1`` on SQLite): measuring never scans a user table unless ``exact`` rows are asked for,
so it stays fast on a big database and cheap on a busy one.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ops.conf import ops_setting
from ops.errors import OpsConfigurationError, OpsError, redact
from ops.extras import require_extra

SIZE_SAMPLE_TABLE = "ops_size_sample"
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class TableSize:
    name: str
    # "app_label.ModelName" of the Django model stored in this table, if any.
    model: str | None
    total_bytes: int
    # None where the database cannot tell (SQLite without dbstat; TOAST on SQLite).
    heap_bytes: int | None
    index_bytes: int | None
    toast_bytes: int | None
    # An estimate from the planner's statistics unless ``rows_exact``; None: never analyzed.
    rows: int | None
    rows_exact: bool = False
    growth_bytes_per_day: float | None = None


@dataclass(frozen=True)
class Growth:
    samples: int
    first_at: dt.datetime
    last_at: dt.datetime
    bytes_per_day: float
    # When size reaches the plan limit at this rate; None: not growing.
    projected_full_at: dt.datetime | None


@dataclass(frozen=True)
class MediaUsage:
    """Cloudinary's usage report: each item {"usage": ..., "limit": ..., "used_percent": ...} as given."""

    plan: str | None
    storage: dict[str, Any]
    bandwidth: dict[str, Any]
    transformations: dict[str, Any]
    credits: dict[str, Any]
    objects: int | None
    last_updated: str | None


@dataclass(frozen=True)
class SizeReport:
    database: str
    vendor: str
    measured_at: dt.datetime
    size_bytes: int
    limit_bytes: int
    tables: list[TableSize]
    # How many tables there are in all (``tables`` may hold only the top N).
    table_count: int
    per_table: bool
    notes: list[str] = field(default_factory=list)
    growth: Growth | None = None
    media: MediaUsage | None = None
    # Set by ``evaluate``: "ok", "warning" or "failure" against the thresholds it was given.
    status: str = "ok"

    @property
    def used_percent(self) -> float:
        return 100.0 * self.size_bytes / self.limit_bytes if self.limit_bytes > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["used_percent"] = round(self.used_percent, 2)
        jsonable: dict[str, Any] = _jsonable(data)
        return jsonable


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def parse_size(value: object) -> int:
    """Bytes from an int or a string such as "1GiB", "512 MB", "1073741824"."""
    if isinstance(value, bool):
        raise OpsConfigurationError(f"{value!r} is not a size. Use bytes or a string such as '1GiB'.")
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE.match(str(value))
    unit = match.group("unit").lower() if match else ""
    if not match or unit not in _UNITS:
        raise OpsConfigurationError(
            f"{value!r} is not a size. Use bytes or a number with B, KB, MB, GB, KiB, MiB or GiB."
        )
    return int(float(match.group("number")) * _UNITS[unit])


def plan_limit_bytes() -> int:
    limit = parse_size(ops_setting("DB_SIZE_LIMIT"))
    if limit <= 0:
        raise OpsConfigurationError("OPS['DB_SIZE_LIMIT'] must be a positive size such as '1GiB'.")
    return limit


def model_labels() -> dict[str, str]:
    """Table name -> model label, for every installed model (auto-created m2m tables included)."""
    labels: dict[str, str] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or (not meta.managed and meta.db_table in labels):
            continue
        labels.setdefault(meta.db_table, meta.label)
    return labels


def database_size(database: str = DEFAULT_DB_ALIAS) -> int:
    """The database's size in bytes, and nothing else: what the health check needs, cheaply."""
    connection = connections[database]
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_database_size(current_database())")
                return int(cursor.fetchone()[0])
            if connection.vendor == "sqlite":
                return _sqlite_file_size(cursor)
    except DatabaseError as error:
        raise OpsError(f"Could not measure the database {database!r}: {redact(str(error))}") from None
    raise _unsupported(connection)


def _unsupported(connection: BaseDatabaseWrapper) -> OpsConfigurationError:
    return OpsConfigurationError(
        f"db_size supports PostgreSQL and SQLite; database {connection.alias!r} is {connection.vendor}."
    )


def measure(
    database: str = DEFAULT_DB_ALIAS,
    *,
    top: int | None = None,
    exact: bool = False,
    now: dt.datetime | None = None,
) -> SizeReport:
    """Sizes of the database and of its tables (largest first; the ``top`` N if given)."""
    connection = connections[database]
    measured_at = now or dt.datetime.now(dt.UTC)
    notes: list[str] = []
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                size, tables = _postgresql_sizes(cursor), _postgresql_tables(cursor)
                per_table = True
            elif connection.vendor == "sqlite":
                size = _sqlite_file_size(cursor)
                tables, per_table = _sqlite_tables(cursor)
                if not per_table:
                    notes.append(
                        "Per-table sizes need SQLite's dbstat virtual table (SQLITE_ENABLE_DBSTAT_VTAB), "
                        "which this SQLite build lacks: tables are listed without sizes."
                    )
            else:
                raise _unsupported(connection)
            labels = model_labels()
            tables.sort(key=lambda table: (-table.total_bytes, table.name))
            table_count = len(tables)
            if top is not None:
                tables = tables[: max(top, 0)]
            tables = [_with_model(table, labels) for table in tables]
            if exact:
                tables = [_with_exact_rows(cursor, connection, table) for table in tables]
    except DatabaseError as error:
        raise OpsError(f"Could not measure the database {database!r}: {redact(str(error))}") from None
    return SizeReport(
        database=database,
        vendor=connection.vendor,
        measured_at=measured_at,
        size_bytes=size,
        limit_bytes=plan_limit_bytes(),
        tables=tables,
        table_count=table_count,
        per_table=per_table,
        notes=notes,
    )


def _with_model(table: TableSize, labels: dict[str, str]) -> TableSize:
    bare = table.name.removeprefix("public.")
    return TableSize(**{**asdict(table), "model": labels.get(bare) or labels.get(table.name)})


def _with_exact_rows(cursor: Any, connection: BaseDatabaseWrapper, table: TableSize) -> TableSize:
    quoted = ".".join(connection.ops.quote_name(part) for part in _name_parts(connection, table.name))
    cursor.execute(f"SELECT COUNT(*) FROM {quoted}")  # noqa: S608  (quoted catalog names)
    return TableSize(**{**asdict(table), "rows": int(cursor.fetchone()[0]), "rows_exact": True})


def _name_parts(connection: BaseDatabaseWrapper, name: str) -> list[str]:
    # Tables outside "public" are listed schema-qualified; SQLite names may hold dots themselves.
    if connection.vendor == "postgresql" and "." in name:
        schema, _, table = name.partition(".")
        return [schema, table]
    return [name]


# PostgreSQL: one catalog query. heap = the table with its free-space and visibility maps;
# TOAST = the toast table with its index; pg_total_relation_size = heap + TOAST + indexes.
# reltuples is -1 for a table never vacuumed or analyzed (PostgreSQL 14+): unknown, not empty.
_POSTGRESQL_TABLES = """
SELECT n.nspname, c.relname,
       pg_total_relation_size(c.oid),
       pg_indexes_size(c.oid),
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0),
       pg_table_size(c.oid),
       c.reltuples
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""


def _postgresql_sizes(cursor: Any) -> int:
    cursor.execute("SELECT pg_database_size(current_database())")
    return int(cursor.fetchone()[0])


def _postgresql_tables(cursor: Any) -> list[TableSize]:
    cursor.execute(_POSTGRESQL_TABLES)
    tables = []
    for schema, name, total, indexes, toast, table_size, reltuples in cursor.fetchall():
        tables.append(
            TableSize(
                name=name if schema == "public" else f"{schema}.{name}",
                model=None,
                total_bytes=int(total),
                heap_bytes=int(table_size) - int(toast),
                index_bytes=int(indexes),
                toast_bytes=int(toast),
                rows=None if reltuples is None or reltuples < 0 else int(reltuples),
            )
        )
    return tables


def _sqlite_file_size(cursor: Any) -> int:
    # page_count * page_size is the main file's size, and also works for in-memory databases.
    cursor.execute("PRAGMA page_count")
    pages = int(cursor.fetchone()[0])
    cursor.execute("PRAGMA page_size")
    return pages * int(cursor.fetchone()[0])


def _sqlite_tables(cursor: Any) -> tuple[list[TableSize], bool]:
    cursor.execute("SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")
    owner: dict[str, str] = {}
    table_names: list[str] = []
    for kind, name, table in cursor.fetchall():
        if kind == "table":
            table_names.append(name)
        owner[name] = table
    rows = _sqlite_row_estimates(cursor)
    try:
        # aggregate=1: one row per b-tree, summed by SQLite, instead of one row per page.
        cursor.execute("SELECT name, pgsize FROM dbstat WHERE aggregate = 1")
        pages = cursor.fetchall()
    except DatabaseError:
        return [
            TableSize(name, None, 0, None, None, None, rows.get(name))
            for name in table_names
            if not name.startswith("sqlite_")
        ], False
    heap: dict[str, int] = {}
    indexes: dict[str, int] = {}
    for btree, size in pages:
        table = owner.get(btree, btree)
        target = heap if btree == table else indexes
        target[table] = target.get(table, 0) + int(size)
    tables = []
    for name in table_names:
        if name.startswith("sqlite_"):
            continue
        own, index = heap.get(name, 0), indexes.get(name, 0)
        tables.append(TableSize(name, None, own + index, own, index, None, rows.get(name)))
    return tables, True


def _sqlite_row_estimates(cursor: Any) -> dict[str, int]:
    """Row counts ANALYZE left in sqlite_stat1 (the first number of each table's entry)."""
    try:
        cursor.execute("SELECT tbl, stat FROM sqlite_stat1")
    except DatabaseError:
        return {}
    estimates: dict[str, int] = {}
    for table, stat in cursor.fetchall():
        first = str(stat or "").split(" ", 1)[0]
        if first.isdigit():
            estimates[table] = max(estimates.get(table, 0), int(first))
    return estimates


# Growth


def record_sample(report: SizeReport) -> None:
    """Store ``report``'s sizes as one sample in the measured database's ``ops_size_sample``."""
    from ops.models import SizeSample

    if not _sample_table_exists(report.database):
        raise OpsConfigurationError(
            f"The table {SIZE_SAMPLE_TABLE} does not exist in database {report.database!r}. "
            "Run `python manage.py migrate ops` first."
        )
    SizeSample.objects.using(report.database).create(
        taken_at=report.measured_at,
        size_bytes=report.size_bytes,
        tables={table.name: table.total_bytes for table in report.tables},
    )


def _sample_table_exists(database: str) -> bool:
    connection = connections[database]
    with connection.cursor() as cursor:
        return SIZE_SAMPLE_TABLE in connection.introspection.table_names(cursor)


@dataclass(frozen=True)
class Sample:
    taken_at: dt.datetime
    size_bytes: int
    tables: dict[str, int]


def recorded_samples(database: str, since: dt.datetime) -> list[Sample]:
    from ops.models import SizeSample

    if not _sample_table_exists(database):
        return []
    return [
        Sample(sample.taken_at, sample.size_bytes, dict(sample.tables or {}))
        for sample in SizeSample.objects.using(database).filter(taken_at__gte=since).order_by("taken_at")
    ]


def fit_growth(samples: Sequence[Sample], limit_bytes: int, current_size: int) -> Growth | None:
    """Least-squares bytes per day over the samples; the date ``current_size`` reaches the limit.

    A fitted line, not first-to-last: one odd sample (a VACUUM FULL, a bulk import then delete)
    moves it less. At least two samples an hour apart are needed to speak of a rate.
    """
    if len(samples) < 2:
        return None
    first, last = samples[0].taken_at, samples[-1].taken_at
    if (last - first) < dt.timedelta(hours=1):
        return None
    days = [(sample.taken_at - first).total_seconds() / 86400 for sample in samples]
    sizes = [float(sample.size_bytes) for sample in samples]
    slope = _slope(days, sizes)
    projected: dt.datetime | None = None
    if slope > 0:
        remaining_days = (limit_bytes - current_size) / slope
        projected = last + dt.timedelta(days=max(remaining_days, 0.0))
    return Growth(len(samples), first, last, slope, projected)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0 or math.isclose(spread, 0.0):
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def table_growth(samples: Sequence[Sample], name: str) -> float | None:
    """Bytes per day of one table between its first and last sample (None: seen in fewer than two)."""
    seen = [(sample.taken_at, sample.tables[name]) for sample in samples if name in sample.tables]
    if len(seen) < 2 or seen[-1][0] - seen[0][0] < dt.timedelta(hours=1):
        return None
    (first_at, first_size), (last_at, last_size) = seen[0], seen[-1]
    return (last_size - first_size) / ((last_at - first_at).total_seconds() / 86400)


def with_growth(report: SizeReport) -> SizeReport:
    """``report`` with growth fitted to the recorded samples (the report itself counts as the last)."""
    days = int(ops_setting("DB_SIZE_GROWTH_DAYS"))
    samples = recorded_samples(report.database, report.measured_at - dt.timedelta(days=days))
    current = Sample(report.measured_at, report.size_bytes, {t.name: t.total_bytes for t in report.tables})
    if not samples or samples[-1].taken_at < report.measured_at:
        samples.append(current)
    growth = fit_growth(samples, report.limit_bytes, report.size_bytes)
    if growth is None:
        notes = [*report.notes, "Growth needs samples at least an hour apart: record them with --record."]
        return _replace(report, notes=notes)
    tables = [
        TableSize(**{**asdict(table), "growth_bytes_per_day": table_growth(samples, table.name)})
        for table in report.tables
    ]
    return _replace(report, growth=growth, tables=tables)


def _replace(report: SizeReport, **changes: Any) -> SizeReport:
    import dataclasses

    return dataclasses.replace(report, **changes)


def evaluate(report: SizeReport, warn_at: float | None, fail_at: float | None) -> SizeReport:
    """``report`` with ``status`` set from the used percentage and the thresholds (percent)."""
    used = report.used_percent
    status = "ok"
    if fail_at is not None and used >= fail_at:
        status = "failure"
    elif warn_at is not None and used >= warn_at:
        status = "warning"
    return _replace(report, status=status)


# Media (Cloudinary)


def over_threshold(report: SizeReport, warn_at: float | None, fail_at: float | None) -> OpsError | None:
    """The error `db_size --warn-at/--fail-at` exits with (1) when ``evaluate`` found it over."""
    if report.status == "ok":
        return None
    threshold = fail_at if report.status == "failure" else warn_at
    return OpsError(
        f"{report.status}: the database uses {report.used_percent:.1f}% of its plan limit "
        f"(threshold {threshold:g}%). Free space or move to a bigger plan."
    )


def media_usage() -> MediaUsage:
    """Cloudinary's usage report for the configured account: one Admin API call."""
    require_extra("cloudinary", "cloudinary", "db_size --media (Cloudinary usage)")
    import cloudinary
    import cloudinary.api
    import cloudinary.exceptions

    config = cloudinary.config()
    if not (config.cloud_name and config.api_key and config.api_secret):
        raise OpsConfigurationError(
            "--media reports Cloudinary usage, and no Cloudinary credentials are set. "
            "Set CLOUDINARY_URL (or CLOUDINARY_CLOUD_NAME, _API_KEY and _API_SECRET)."
        )
    try:
        usage = dict(cloudinary.api.usage())
    except cloudinary.exceptions.Error as error:
        raise OpsError(f"Cloudinary's usage report failed: {redact(str(error))}") from None
    except OSError as error:
        raise OpsError(f"Cloudinary could not be reached ({type(error).__name__}).") from None

    def item(key: str) -> dict[str, Any]:
        value = usage.get(key)
        return dict(value) if isinstance(value, dict) else {}

    objects = item("objects").get("usage", usage.get("resources"))
    return MediaUsage(
        plan=usage.get("plan"),
        storage=item("storage"),
        bandwidth=item("bandwidth"),
        transformations=item("transformations"),
        credits=item("credits"),
        objects=int(objects) if isinstance(objects, int | float) else None,
        last_updated=usage.get("last_updated"),
    )


def report(
    database: str = DEFAULT_DB_ALIAS,
    *,
    top: int | None = None,
    exact: bool = False,
    record: bool = False,
    media: bool = False,
    warn_at: float | None = None,
    fail_at: float | None = None,
) -> SizeReport:
    """What the db_size command shows: measure, optionally record, fit growth, add media usage."""
    for name, value in (("--warn-at", warn_at), ("--fail-at", fail_at)):
        if value is not None and not 0 <= value <= 1000:
            raise OpsConfigurationError(f"{name} is a percentage of the plan limit, such as 80.")
    if top is not None and top < 1:
        raise OpsConfigurationError("--top must be at least 1.")
    # Samples keep every table, whatever --top shows, so later reports can show any table's growth.
    measured = measure(database, exact=False)
    if record:
        record_sample(measured)
    shown = measure_top(measured, top)
    if exact:
        shown = _exact_rows(database, shown)
    shown = with_growth(shown)
    if media:
        shown = _replace(shown, media=media_usage())
    return evaluate(shown, warn_at, fail_at)


def measure_top(report: SizeReport, top: int | None) -> SizeReport:
    return report if top is None else _replace(report, tables=report.tables[:top])


def _exact_rows(database: str, report: SizeReport) -> SizeReport:
    connection = connections[database]
    try:
        with connection.cursor() as cursor:
            tables = [_with_exact_rows(cursor, connection, table) for table in report.tables]
    except DatabaseError as error:
        raise OpsError(f"Counting rows failed: {redact(str(error))}") from None
    return _replace(report, tables=tables)


def format_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def recorded_line(report: SizeReport) -> str:
    """The confirmation of ``--record``: a cron job's log shows the sample was taken."""
    return (
        f"Recorded a size sample of database {report.database} ({format_bytes(report.size_bytes)}, "
        f"{report.table_count} tables) for growth projections."
    )


def text_lines(report: SizeReport, *, verbosity: int = 1) -> Iterable[str]:
    """The report for people: a summary, growth, the tables, media usage."""
    yield (
        f"Database {report.database} ({report.vendor}): {format_bytes(report.size_bytes)} of "
        f"{format_bytes(report.limit_bytes)} plan limit ({report.used_percent:.1f}% used)"
    )
    growth = report.growth
    if growth is not None:
        projection = (
            f"plan limit reached around {growth.projected_full_at:%Y-%m-%d}"
            if growth.projected_full_at is not None
            else "not growing"
        )
        yield (
            f"Growth: {format_bytes(growth.bytes_per_day)}/day over {growth.samples} samples "
            f"since {growth.first_at:%Y-%m-%d}; {projection}"
        )
    for note in report.notes:
        yield f"Note: {note}"
    if verbosity >= 1 and report.tables:
        yield from _table_lines(report)
    if report.media is not None:
        yield from _media_lines(report.media)


def _table_lines(report: SizeReport) -> Iterable[str]:
    header = ("Table", "Model", "Total", "Heap", "Indexes", "TOAST", "Rows", "Growth/day")
    rows = [
        (
            table.name,
            table.model or "",
            format_bytes(table.total_bytes) if report.per_table else "-",
            format_bytes(table.heap_bytes),
            format_bytes(table.index_bytes),
            format_bytes(table.toast_bytes),
            "?" if table.rows is None else (f"{table.rows}" if table.rows_exact else f"~{table.rows}"),
            format_bytes(table.growth_bytes_per_day),
        )
        for table in report.tables
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            str(cell).ljust(widths[i]) if i < 2 else str(cell).rjust(widths[i]) for i, cell in enumerate(row)
        ]
        yield "  ".join(cells).rstrip()
    hidden = report.table_count - len(report.tables)
    if hidden > 0:
        yield f"... and {hidden} more tables"


def _media_lines(media: MediaUsage) -> Iterable[str]:
    yield f"Cloudinary ({media.plan or 'plan unknown'}, as of {media.last_updated or 'unknown'}):"
    for label, item, as_bytes in (
        ("storage", media.storage, True),
        ("bandwidth", media.bandwidth, True),
        ("transformations", media.transformations, False),
        ("credits", media.credits, False),
    ):
        usage = item.get("usage")
        shown = format_bytes(usage) if as_bytes and isinstance(usage, int | float) else str(usage)
        limit = item.get("limit")
        if limit:
            limit_shown = format_bytes(limit) if as_bytes else str(limit)
            percent = item.get("used_percent")
            shown += f" of {limit_shown}" + (f" ({percent}%)" if percent is not None else "")
        yield f"  {label}: {shown}"
    if media.objects is not None:
        yield f"  objects: {media.objects}"
