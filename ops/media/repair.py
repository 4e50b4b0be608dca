"""normalize_media_urls: find every stored media value that its storage cannot resolve, and repair it.

Scans every file field (FileField, ImageField, subclasses, the cloudinary SDK's CloudinaryField) of
every installed model, classifies each value with ``ops.media.refs`` (the parser the API's URL
helper uses too) and, with ``apply``, writes the canonical values back:

- rows are read in primary-key order, one page at a time (pk and file columns only, raw SQL so no
  model is ever built): memory stays flat however large the table;
- writes go in batches, each in its own transaction, as one conditional ``UPDATE ... FROM (VALUES
  ...)`` per column that only touches rows still holding the value that was read, so a concurrent
  edit is never lost (it is counted and reported instead);
- every write is recorded in an undo log (JSON lines of model, pk, field, old, new: media names
  only, no personal data) before its transaction commits; at the end of the run the log is stored
  in the backup repository (``ops.media.undo_logs``: compressed, encrypted like the backups), the local
  file staying only if that fails; ``undo_media_repair`` puts old values back where the current
  value is still the one written.

With ``check_remote`` the proposed and the existing names are looked up in the media storage first
(``ops.media.remote``: a few bulk Admin API calls), and nothing is rewritten into a name the
storage does not have: such values are reported as broken. ``upload_missing`` uploads a
FileSystemStorage-era file still in MEDIA_ROOT and stores its new name.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import zstandard
from django.apps import apps
from django.conf import settings
from django.core.files import File
from django.db import connections, models, transaction

from ops.conf import ops_setting
from ops.errors import OpsConfigurationError, OpsError, redact
from ops.media.refs import (
    MediaCategory,
    MediaContext,
    StorageKind,
    cloudinary_field_context,
    is_plain_canonical,
    media_context_for,
    parse_media_value,
    remote_keys,
)
from ops.media.remote import RemoteExistence, RemoteKey
from ops.media.undo_logs import store_undo_log, undo_log_lines
from ops.repository.backups import configured_repository

CANONICAL, FIXABLE, BROKEN, EXTERNAL, UNKNOWN, EMPTY = (
    "canonical",
    "fixable",
    "broken",
    "external",
    "unknown",
    "empty",
)
CATEGORIES = (CANONICAL, FIXABLE, BROKEN, EXTERNAL, UNKNOWN)
UNDO_LOG_KIND = "normalize_media_urls undo log"
# Rows per UPDATE ... FROM (VALUES ...) statement: 3 parameters each.
_VALUES_BATCH = 10_000


@dataclass(frozen=True)
class MediaColumn:
    """One file field of one model, with what its storage makes of a value."""

    model: type[models.Model]
    field_name: str
    column: str
    context: MediaContext
    max_length: int | None
    storage: Any = None

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.field_name}"


@dataclass(frozen=True)
class ReportRow:
    model: str
    pk: Any
    field: str
    old: str
    new: str
    category: str
    reason: str


@dataclass
class RepairResult:
    database: str
    applied: bool
    checked_remote: bool
    columns: list[str] = field(default_factory=list)
    rows_scanned: int = 0
    values_scanned: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*CATEGORIES, EMPTY), 0))
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    fixed: int = 0
    changed_concurrently: int = 0
    uploads: int = 0
    api_calls: int = 0
    # What --undo takes: the repository key of the stored log, else the local file's path.
    undo_log: str | None = None
    # The repository's description, or None while the log is only a local file.
    undo_log_stored_in: str | None = None
    warnings: list[str] = field(default_factory=list)
    report_file: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RepairOptions:
    database: str = "default"
    apps: Sequence[str] = ()
    models: Sequence[str] = ()
    apply: bool = False
    check_remote: bool = False
    upload_missing: bool = False
    report_path: Path | None = None
    resume_from: Path | None = None
    undo_dir: Path | None = None
    # False: keep the undo log only as the local file (no repository).
    store_undo_log: bool = True
    page_size: int | None = None
    batch_size: int | None = None
    examples: int = 3


# --- which columns --------------------------------------------------------------------------------


def _is_cloudinary_field(model_field: models.Field[Any, Any]) -> bool:
    return any(
        f"{cls.__module__}.{cls.__qualname__}" == "cloudinary.models.CloudinaryField"
        for cls in type(model_field).__mro__
    )


def discover_columns(app_labels: Sequence[str] = (), model_labels: Sequence[str] = ()) -> list[MediaColumn]:
    """The file columns of the installed models (narrowed to ``app_labels`` / ``model_labels``)."""
    for label in app_labels:
        try:
            apps.get_app_config(label)
        except LookupError:
            raise OpsConfigurationError(
                f"No installed app with label {label!r}. Use one of: "
                f"{', '.join(sorted(c.label for c in apps.get_app_configs()))}."
            ) from None
    wanted_models = set()
    for label in model_labels:
        try:
            wanted_models.add(apps.get_model(label)._meta.label_lower)
        except (LookupError, ValueError):
            raise OpsConfigurationError(
                f"No installed model {label!r}. Name it as app_label.ModelName (e.g. api.Program)."
            ) from None
    columns: list[MediaColumn] = []
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed or meta.swapped:
            continue
        if app_labels and meta.app_label not in app_labels:
            continue
        if wanted_models and meta.label_lower not in wanted_models:
            continue
        for model_field in meta.local_concrete_fields:
            if isinstance(model_field, models.FileField):
                storage = model_field.storage
                context = media_context_for(storage)
            elif _is_cloudinary_field(model_field):
                import cloudinary

                storage = None
                context = cloudinary_field_context(
                    getattr(model_field, "resource_type", "image"),
                    getattr(model_field, "type", "upload"),
                    sdk_config=cloudinary.config(),
                )
            else:
                continue
            columns.append(
                MediaColumn(
                    model, model_field.name, str(model_field.column), context, model_field.max_length, storage
                )
            )
    return columns


# --- reading --------------------------------------------------------------------------------------


def stream_rows(
    model: type[models.Model], columns: Sequence[str], database: str, page_size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Pages of ``(pk, *columns)`` in primary-key order (keyset pagination: no long-lived cursor)."""
    connection = connections[database]
    quote = connection.ops.quote_name
    pk = quote(str(model._meta.pk.column))
    quoted = ", ".join(quote(c) for c in columns)
    select = f"SELECT {pk}, {quoted} FROM {quote(model._meta.db_table)}"  # noqa: S608 (quoted identifiers)
    last: Any = None
    while True:
        with connection.cursor() as cursor:
            if last is None:
                cursor.execute(f"{select} ORDER BY {pk} LIMIT %s", [page_size])
            else:
                cursor.execute(f"{select} WHERE {pk} > %s ORDER BY {pk} LIMIT %s", [last, page_size])
            page = cursor.fetchall()
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        last = page[-1][0]


# --- writing --------------------------------------------------------------------------------------


def conditional_update(
    model: type[models.Model], column: str, changes: Sequence[tuple[Any, str, str]], database: str
) -> set[Any]:
    """Set ``column`` to new where the row's pk matches and its value is still old; the pks updated.

    ``changes`` are ``(pk, old, new)``. Runs inside the caller's transaction.
    """
    if not changes:
        return set()
    connection = connections[database]
    quote = connection.ops.quote_name
    table, col = quote(model._meta.db_table), quote(column)
    pk = quote(str(model._meta.pk.column))
    updated: set[Any] = set()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement per batch of rows (VALUES list), through Django's cursor: the same on
            # psycopg 3 and psycopg2. Batches stay under the 65,535 parameters a server-side
            # bound statement may carry (psycopg 3 with OPTIONS["server_side_binding"]).
            pk_type = model._meta.pk.cast_db_type(connection)
            for start in range(0, len(changes), _VALUES_BATCH):
                batch = changes[start : start + _VALUES_BATCH]
                values = ", ".join([f"(%s::{pk_type}, %s, %s)"] * len(batch))
                cursor.execute(
                    # Quoted identifiers only; the values travel as parameters.
                    f"UPDATE {table} AS t SET {col} = v.new FROM (VALUES {values}) AS v(pk, old, new) "  # noqa: S608
                    f"WHERE t.{pk} = v.pk AND t.{col} = v.old RETURNING t.{pk}",
                    [value for change in batch for value in change],
                )
                updated.update(row[0] for row in cursor.fetchall())
            return updated
        for key, old, new in changes:
            cursor.execute(
                f"UPDATE {table} SET {col} = %s WHERE {pk} = %s AND {col} = %s",  # noqa: S608 (quoted)
                [new, key, old],
            )
            if cursor.rowcount:
                updated.add(key)
        return updated


def _json_pk(value: Any) -> Any:
    return value if isinstance(value, int | str) else str(value)


class UndoLog:
    """An append-only JSON-lines file, written and fsynced before each batch commits."""

    def __init__(self, path: Path, database: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] = path.open("x", encoding="utf-8")
        header = {"kind": UNDO_LOG_KIND, "database": database, "created": datetime.now(UTC).isoformat()}
        self._file.write(json.dumps(header) + "\n")

    def record(self, model: str, field_name: str, pk: Any, old: str, new: str) -> None:
        entry = {"model": model, "pk": _json_pk(pk), "field": field_name, "old": old, "new": new}
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.sync()
        self._file.close()


def default_undo_dir() -> Path:
    configured = ops_setting("MEDIA_UNDO_DIR")
    directory = Path(str(configured)) if configured else Path(str(ops_setting("BACKUP_DIR"))) / "undo"
    if not directory.is_absolute():
        directory = Path(getattr(settings, "BASE_DIR", Path.cwd())) / directory
    return directory


class _Report:
    def __init__(self, path: Path) -> None:
        self._file = path.open("w", encoding="utf-8", newline="")
        self._json = path.suffix in (".json", ".jsonl")
        self._csv = csv.writer(self._file)
        if not self._json:
            self._csv.writerow(["model", "pk", "field", "old", "new", "category", "reason"])

    def write(self, row: ReportRow) -> None:
        if self._json:
            self._file.write(json.dumps({**asdict(row), "pk": _json_pk(row.pk)}, ensure_ascii=False) + "\n")
        else:
            self._csv.writerow([row.model, row.pk, row.field, row.old, row.new, row.category, row.reason])

    def close(self) -> None:
        self._file.close()


# --- the run --------------------------------------------------------------------------------------


@dataclass
class _Existence:
    """Does a canonical name exist in its column's storage (None: not asked)."""

    remote: RemoteExistence | None
    local_cache: dict[tuple[int, str], bool] = field(default_factory=dict)

    def exists(self, column: MediaColumn, name: str) -> bool | None:
        if column.context.kind in (StorageKind.CLOUDINARY_STORAGE, StorageKind.CLOUDINARY_FIELD):
            if self.remote is None:
                return None
            answers = [self.remote.known.get(key) for key in remote_keys(name, column.context)]
            if any(answers):
                return True
            return None if None in answers else False
        key = (id(column), name)
        if key not in self.local_cache:
            try:
                self.local_cache[key] = bool(column.storage.exists(name))
            except Exception:
                # A storage that cannot answer: the value is not rewritten.
                return None
        return self.local_cache[key]


def _local_original(value: str, column: MediaColumn) -> Path | None:
    """The FileSystemStorage-era file a value names, if it is still in MEDIA_ROOT."""
    root = Path(str(settings.MEDIA_ROOT))
    disk = MediaContext(StorageKind.FILESYSTEM, media_url=str(settings.MEDIA_URL), media_root=str(root))
    candidates = []
    parsed = parse_media_value(value, disk)
    if parsed.canonical_name:
        candidates.append(parsed.canonical_name)
        if column.context.name_prefix:
            candidates.append(parsed.canonical_name.removeprefix(column.context.name_prefix))
    for name in candidates:
        path = (root / name).resolve()
        if path.is_relative_to(root.resolve()) and path.is_file():
            return path
    return None


def repair_media(
    options: RepairOptions,
    *,
    confirm: Callable[[str], bool] | None = None,
    on_row: Callable[[ReportRow], None] | None = None,
) -> RepairResult:
    """Scan (and with ``options.apply``, repair) every file column; see the module docstring."""
    started = time.monotonic()
    database = options.database
    # Uploading what is missing needs to know what is missing.
    check_remote = options.check_remote or options.upload_missing
    columns = discover_columns(options.apps, options.models)
    result = RepairResult(database, options.apply, check_remote, columns=[c.label for c in columns])
    if options.apply and confirm is not None and not confirm(database):
        raise OpsError("Cancelled: nothing was written.")
    page_size = int(options.page_size or ops_setting("MEDIA_REPAIR_PAGE_SIZE"))
    batch_size = int(options.batch_size or ops_setting("MEDIA_REPAIR_BATCH_SIZE"))
    by_model: dict[type[models.Model], list[MediaColumn]] = defaultdict(list)
    for column in columns:
        by_model[column.model].append(column)

    remote: RemoteExistence | None = None
    if check_remote and any(
        c.context.kind in (StorageKind.CLOUDINARY_STORAGE, StorageKind.CLOUDINARY_FIELD) for c in columns
    ):
        remote = _check_remote(by_model, options, page_size)
        result.api_calls = remote.calls
    existence = _Existence(remote) if check_remote else None

    undo: UndoLog | None = None
    report = _Report(options.report_path) if options.report_path else None
    result.report_file = str(options.report_path) if options.report_path else None
    seen_examples: Counter[str] = Counter()
    counts = result.counts
    examples = options.examples
    quiet_canonical = report is None
    try:
        for model, model_columns in by_model.items():
            names = [c.column for c in model_columns]
            pending: dict[int, list[tuple[Any, str, str]]] = defaultdict(list)
            pending_count = 0
            for page in stream_rows(model, names, database, page_size):
                result.rows_scanned += len(page)
                for row in page:
                    pk = row[0]
                    for index, column in enumerate(model_columns):
                        old = row[index + 1]
                        category, new, reason = _classify(old, column, existence, options)
                        counts[category] += 1
                        if category == EMPTY:
                            continue
                        if category == CANONICAL and quiet_canonical and seen_examples[CANONICAL] >= examples:
                            continue  # the bulk of a scan: counted, nothing else to do
                        if category == FIXABLE and new is not None and new.startswith("upload:"):
                            new = _upload(new.removeprefix("upload:"), column) if options.apply else new
                            result.uploads += 1
                        report_row = ReportRow(
                            model._meta.label, pk, column.field_name, old, new or "", category, reason
                        )
                        if seen_examples[category] < options.examples:
                            seen_examples[category] += 1
                            result.examples[category].append({**asdict(report_row), "pk": _json_pk(pk)})
                        if report is not None:
                            report.write(report_row)
                        if on_row is not None and category != CANONICAL:
                            on_row(report_row)
                        if category == FIXABLE and options.apply:
                            assert new is not None
                            pending[index].append((pk, old, new))
                            pending_count += 1
                if pending_count >= batch_size:
                    undo = undo or _open_undo(options, result)
                    _flush(model, model_columns, pending, database, undo, result)
                    pending, pending_count = defaultdict(list), 0
            if pending_count:
                undo = undo or _open_undo(options, result)
                _flush(model, model_columns, pending, database, undo, result)
    finally:
        result.values_scanned = sum(counts[c] for c in CATEGORIES)
        if undo is not None:
            undo.close()
        if report is not None:
            report.close()
    if undo is not None and options.store_undo_log:
        _store_undo_log(undo.path, database, result)
    result.seconds = time.monotonic() - started
    return result


def _store_undo_log(path: Path, database: str, result: RepairResult) -> None:
    """The finished log into the backup repository; on failure the local file stays, with a warning.

    Only a run that finished is stored: one that failed keeps its write-ahead log where it is.
    """
    where = "the backup repository"
    try:
        repository = configured_repository(database)
        where = repository.description
        stored = store_undo_log(path, repository)
    except Exception as error:
        detail = redact(str(error)) if isinstance(error, OpsError | OSError) else type(error).__name__
        result.warnings.append(
            f"The undo log could not be stored in the {where} ({detail}). It is kept at {path}: "
            "copy it somewhere safe before this instance's disk goes (a deploy replaces it)."
        )
        return
    result.undo_log, result.undo_log_stored_in = stored.key, stored.location
    path.unlink()


def _open_undo(options: RepairOptions, result: RepairResult) -> UndoLog:
    directory = options.undo_dir or default_undo_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    log = UndoLog(directory / f"normalize_media_urls-{options.database}-{stamp}.jsonl", options.database)
    result.undo_log = str(log.path)
    return log


def _flush(
    model: type[models.Model],
    model_columns: Sequence[MediaColumn],
    pending: dict[int, list[tuple[Any, str, str]]],
    database: str,
    undo: UndoLog,
    result: RepairResult,
) -> None:
    with transaction.atomic(using=database):
        for index, changes in pending.items():
            column = model_columns[index]
            updated = conditional_update(model, column.column, changes, database)
            for pk, old, new in changes:
                if pk in updated:
                    undo.record(model._meta.label, column.field_name, pk, old, new)
            result.fixed += len(updated)
            result.changed_concurrently += len(changes) - len(updated)
        # Logged before the commit: an entry whose write did not commit is harmless to an undo.
        undo.sync()


def _classify(
    old: str | None, column: MediaColumn, existence: _Existence | None, options: RepairOptions
) -> tuple[str, str | None, str]:
    if (
        existence is None
        and old is not None
        and is_plain_canonical(old, column.context)
        and (column.max_length is None or len(old) <= column.max_length)
    ):
        # The bulk of a scan, decided without building a MediaValue (a fifth of a dry run's time).
        return CANONICAL, None, "storage name"
    parsed = parse_media_value(old, column.context)
    category = parsed.category
    if category is MediaCategory.EMPTY:
        return EMPTY, None, parsed.reason
    if category is MediaCategory.EXTERNAL:
        return EXTERNAL, None, parsed.reason
    if category is MediaCategory.UNKNOWN:
        return UNKNOWN, None, parsed.reason
    name = parsed.canonical_name
    assert name is not None
    assert old is not None
    if column.max_length is not None and len(name) > column.max_length:
        return UNKNOWN, None, f"canonical name longer than the field's max_length {column.max_length}"
    if existence is None:
        return (
            (CANONICAL, None, parsed.reason)
            if category is MediaCategory.CANONICAL
            else (FIXABLE, name, parsed.reason)
        )
    found = existence.exists(column, name)
    if found:
        return (
            (CANONICAL, None, parsed.reason)
            if category is MediaCategory.CANONICAL
            else (FIXABLE, name, parsed.reason)
        )
    if found is None:
        return BROKEN, None, "existence could not be checked: not rewritten"
    if options.upload_missing and column.context.kind is StorageKind.CLOUDINARY_STORAGE:
        original = _local_original(old, column)
        if original is not None:
            relative = original.relative_to(Path(str(settings.MEDIA_ROOT)).resolve()).as_posix()
            return FIXABLE, f"upload:{relative}", "missing in the media storage; uploaded from MEDIA_ROOT"
    return BROKEN, None, f"{name!r} does not exist in the media storage"


def _upload(relative: str, column: MediaColumn) -> str:
    path = Path(str(settings.MEDIA_ROOT)) / relative
    with path.open("rb") as handle:
        return str(column.storage.save(relative, File(handle, name=relative)))


def _check_remote(
    by_model: dict[type[models.Model], list[MediaColumn]], options: RepairOptions, page_size: int
) -> RemoteExistence:
    """Pass one: every Cloudinary name the scan will need, settled in bulk before anything is written."""
    reserve = int(ops_setting("MEDIA_REMOTE_RESERVE_CALLS"))
    state_file = default_undo_dir() / f"normalize_media_urls-{options.database}-remote-check.json"
    if options.resume_from is not None:
        remote = RemoteExistence.resume(options.resume_from, reserve_calls=reserve)
    else:
        remote = RemoteExistence(reserve_calls=reserve, state_file=state_file)
    wanted: set[RemoteKey] = set()
    for model, model_columns in by_model.items():
        cloud = [(i, c) for i, c in enumerate(model_columns) if c.context.kind is not StorageKind.FILESYSTEM]
        if not cloud:
            continue
        for page in stream_rows(model, [c.column for c in model_columns], options.database, page_size):
            for row in page:
                for index, column in cloud:
                    parsed = parse_media_value(row[index + 1], column.context)
                    if parsed.canonical_name is not None and column.context.cloud_name:
                        wanted.update(remote_keys(parsed.canonical_name, column.context))
    remote.check(wanted)
    if remote.state_file is not None and remote.state_file.exists() and options.resume_from is None:
        remote.state_file.unlink()
    return remote


# --- undo -----------------------------------------------------------------------------------------


@dataclass
class UndoResult:
    database: str
    applied: bool
    entries: int = 0
    restored: int = 0
    # Changed again since the repair: left as they are.
    skipped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_undo_log(name: str, database: str) -> Iterator[dict[str, Any]]:
    try:
        lines = undo_log_lines(name, database)
        header = json.loads(next(lines, "") or "{}")
    except OSError as error:
        raise OpsConfigurationError(
            f"Cannot open the undo log {name}: {error.strerror}. Check the path."
        ) from None
    except (ValueError, zstandard.ZstdError):
        header = {}
    if header.get("kind") != UNDO_LOG_KIND:
        raise OpsConfigurationError(f"{name} is not an undo log of normalize_media_urls. Check the name.")
    for line in lines:
        if line.strip():
            yield json.loads(line)


def undo_media_repair(
    log: Path | str,
    database: str = "default",
    *,
    apply: bool = False,
    batch_size: int | None = None,
    confirm: Callable[[str], bool] | None = None,
) -> UndoResult:
    """Put back the old values of an undo log where the current value is still the one written.

    ``log``: the local file's path, or the key the log was stored under in the backup repository.
    """
    started = time.monotonic()
    result = UndoResult(database, apply)
    size = int(batch_size or ops_setting("MEDIA_REPAIR_BATCH_SIZE"))
    if apply and confirm is not None and not confirm(database):
        raise OpsError("Cancelled: nothing was written.")
    batch: dict[tuple[str, str], list[tuple[Any, str, str]]] = defaultdict(list)
    count = 0

    def flush() -> None:
        with transaction.atomic(using=database):
            for (label, field_name), changes in batch.items():
                model = apps.get_model(label)
                column = str(model._meta.get_field(field_name).column)
                if apply:
                    restored = conditional_update(model, column, changes, database)
                else:
                    restored = _still_current(model, column, changes, database)
                result.restored += len(restored)
                result.skipped += len(changes) - len(restored)

    installed: set[tuple[str, str]] = set()
    for entry in _read_undo_log(str(log), database):
        result.entries += 1
        try:
            if (entry["model"], entry["field"]) not in installed:
                apps.get_model(entry["model"])._meta.get_field(entry["field"])
                installed.add((entry["model"], entry["field"]))
        except (LookupError, KeyError):
            raise OpsConfigurationError(
                f"The undo log names {entry.get('model')}.{entry.get('field')}, which is not installed. "
                "Run the undo in the project that wrote the log."
            ) from None
        # (pk, the value to find, the value to put back)
        batch[(entry["model"], entry["field"])].append((entry["pk"], entry["new"], entry["old"]))
        count += 1
        if count >= size:
            flush()
            batch, count = defaultdict(list), 0
    if count:
        flush()
    result.seconds = time.monotonic() - started
    return result


def _still_current(
    model: type[models.Model], column: str, changes: Sequence[tuple[Any, str, str]], database: str
) -> set[Any]:
    connection = connections[database]
    quote = connection.ops.quote_name
    pk_column = quote(str(model._meta.pk.column))
    expected = {str(pk): (pk, current) for pk, current, _ in changes}
    placeholders = ", ".join(["%s"] * len(changes))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {pk_column}, {quote(column)} FROM {quote(model._meta.db_table)} "  # noqa: S608
            f"WHERE {pk_column} IN ({placeholders})",
            [
                model._meta.pk.get_db_prep_value(model._meta.pk.to_python(pk), connection)
                for pk, _, _ in changes
            ],
        )
        rows = cursor.fetchall()
    return {
        expected[str(pk)][0] for pk, value in rows if str(pk) in expected and expected[str(pk)][1] == value
    }
