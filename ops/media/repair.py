"""normalize_media_urls: find every stored media value that its storage cannot resolve, and repair it.

Scans every file field (FileField, ImageField, subclasses, the cloudinary SDK's CloudinaryField) of
every installed model, classifies each value with ``ops.media.refs`` (the parser the API's URL
helper uses too) and, with ``apply``, writes repairs back:

- rows are read in primary-key order, one page at a time (pk and file columns only, raw SQL so no
  model is ever built), and each page is settled before the next is read: memory holds one page,
  its lookups and their answers, however large the table;
- **a repair is written only if its target exists** in the field's storage (the default; ``verify``
  False is ``--no-verify``, shapes only). A value may have several readings (``refs.candidate_names``:
  a doubled prefix collapsed once or fully, MEDIA_URL's folder kept or not): the first whose file
  exists wins; none does: the value is *broken*, reported with the names looked for, never written.
  A value that is no storage shape at all (a path on the uploader's computer) is *unknown* unless
  one of the parser's guesses exists. Lookups per page: local disk through a directory listing per
  folder (``FolderListings``), other Django storages through ``exists``, Cloudinary through
  ``ops.media.remote`` (``resources_by_ids``, 100 names a call, or a folder listing where denser; its
  rate-limit budget and resumable state). Names already canonical are looked up too on local disk
  (free); on Cloudinary only with ``check_remote`` (each 100 names cost one of a few hundred calls an
  hour);
- writes go in batches, each in its own transaction, as one conditional ``UPDATE ... FROM (VALUES
  ...)`` per column that only touches rows still holding the value that was read, so a concurrent
  edit is never lost (it is counted and reported instead);
- ``apply`` holds the restore's lock (``ops.engines.locks``) from the first read to the last write: it
  waits for a running restore (or refuses, ``wait`` False), and a restore waits for it;
- every write is recorded in an undo log (JSON lines of model, pk, field, old, new: media names
  only, no personal data) before its transaction commits; at the end of the run the log is stored
  in the backup repository (``ops.media.undo_logs``: compressed, encrypted like the backups), the local
  file staying only if that fails; ``undo_media_repair`` puts old values back where the current
  value is still the one written.

``upload_missing`` uploads a FileSystemStorage-era file still in MEDIA_ROOT that the column's
Cloudinary lacks and stores its new value: the storage's name for a django-cloudinary-storage field,
``<resource_type>/<type>/v<version>/<public_id>.<format>`` for a ``CloudinaryField``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from ops.engines.locks import exclusive_writer
from ops.errors import OpsConfigurationError, OpsError, redact
from ops.media.refs import (
    MediaCategory,
    MediaContext,
    MediaValue,
    StorageKind,
    candidate_names,
    cloudinary_field_context,
    is_plain_canonical,
    media_context_for,
    parse_media_value,
    remote_keys,
)
from ops.media.remote import RateLimitReached, RemoteExistence, RemoteKey
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
    # False: --no-verify, repairs written by their shape alone.
    verified: bool = True
    # Names looked up in the media storages (repairs' targets, and existing names where checked).
    looked_up: int = 0
    # --apply found a restore of the database running and waited for it.
    waited_for_restore: bool = False
    # --resume-from: where the scan started ("app.Model after pk N").
    resumed_from: str | None = None
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
    # Write a repair only if its target exists in the field's storage (False: --no-verify).
    verify: bool = True
    # Also look up names that are already canonical on Cloudinary and other remote storages
    # (local disk: always).
    check_remote: bool = False
    upload_missing: bool = False
    # --apply during a restore: wait for it (False: refuse at once, --no-wait).
    wait: bool = True
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
    model: type[models.Model], columns: Sequence[str], database: str, page_size: int, after: Any = None
) -> Iterator[list[tuple[Any, ...]]]:
    """Pages of ``(pk, *columns)`` in primary-key order (keyset pagination: no long-lived cursor),
    from the row after pk ``after`` (None: the first)."""
    connection = connections[database]
    quote = connection.ops.quote_name
    pk = quote(str(model._meta.pk.column))
    quoted = ", ".join(quote(c) for c in columns)
    select = f"SELECT {pk}, {quoted} FROM {quote(model._meta.db_table)}"  # noqa: S608 (quoted identifiers)
    last: Any = after
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


# --- existence ------------------------------------------------------------------------------------

# Names of folder listings kept for FileSystemStorage checks (about 15 MB at most).
LISTING_CAP = 200_000
# Fewer names than this wanted in one folder: a stat each is cheaper than listing the folder.
MIN_NAMES_TO_LIST = 8


class FolderListings:
    """``exists`` for FileSystemStorage names, batched: one directory listing per folder.

    A page of references mostly points into a few folders (``upload_to``), so listing each folder
    once and keeping its names (up to ``LISTING_CAP`` names in all, least recently used dropped
    first) replaces a stat per name. A folder larger than the cap, or asked about for a name or
    two, is checked name by name (``os.path.lexists``, what FileSystemStorage.exists does).
    """

    def __init__(self, location: str, cap: int = LISTING_CAP) -> None:
        self.location = location
        self.cap = cap
        self._listings: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._kept = 0
        self._too_large: set[str] = set()
        self.listed = 0
        self.stats = 0

    def exists(self, names: Iterable[str]) -> dict[str, bool]:
        by_folder: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for name in names:
            folder, _, base = name.rpartition("/")
            by_folder[folder].append((name, base))
        answers: dict[str, bool] = {}
        for folder, folder_names in by_folder.items():
            listing = self._listing(folder, len(folder_names))
            if listing is None:
                for name, _ in folder_names:
                    self.stats += 1
                    answers[name] = os.path.lexists(os.path.join(self.location, name))
            else:
                for name, base in folder_names:
                    answers[name] = base in listing
        return answers

    def _listing(self, folder: str, wanted: int) -> frozenset[str] | None:
        listing = self._listings.get(folder)
        if listing is not None:
            self._listings.move_to_end(folder)
            return listing
        if folder in self._too_large or wanted < MIN_NAMES_TO_LIST:
            return None
        entries: list[str] = []
        try:
            with os.scandir(os.path.join(self.location, folder)) as scan:
                for entry in scan:
                    entries.append(entry.name)
                    if len(entries) > self.cap // 2:
                        self._too_large.add(folder)
                        return None
        except (FileNotFoundError, NotADirectoryError):
            pass  # no such folder: none of its names exist
        except OSError:
            return None
        self.listed += 1
        listing = frozenset(entries)
        while self._listings and self._kept + len(listing) > self.cap:
            _, dropped = self._listings.popitem(last=False)
            self._kept -= len(dropped)
        self._listings[folder] = listing
        self._kept += len(listing)
        return listing


@dataclass
class _Verifier:
    """Answers "is there a file at this name?" for one page of one model's columns at a time."""

    remote: RemoteExistence | None
    listings: dict[str, FolderListings] = field(default_factory=dict)
    looked_up: int = 0

    def answers(
        self, columns: Sequence[MediaColumn], wanted: Sequence[set[str]]
    ) -> list[dict[str, bool | None]]:
        result: list[dict[str, bool | None]] = [{} for _ in columns]
        remote_wanted: list[tuple[int, str, tuple[RemoteKey, ...]]] = []
        for index, (column, names) in enumerate(zip(columns, wanted, strict=True)):
            if not names:
                continue
            self.looked_up += len(names)
            kind = column.context.kind
            if kind in (StorageKind.CLOUDINARY_STORAGE, StorageKind.CLOUDINARY_FIELD):
                if self.remote is None or not column.context.cloud_name:
                    result[index].update(dict.fromkeys(names))
                    continue
                remote_wanted.extend((index, n, remote_keys(n, column.context)) for n in names)
            elif kind is StorageKind.FILESYSTEM:
                location = str(column.storage.location)
                listings = self.listings.get(location)
                if listings is None:
                    listings = self.listings[location] = FolderListings(location)
                result[index].update(listings.exists(names))
            else:
                for name in names:
                    try:
                        result[index][name] = bool(column.storage.exists(name))
                    except Exception:
                        # A storage that cannot answer: the value is not rewritten.
                        result[index][name] = None
        if remote_wanted and self.remote is not None:
            remote = self.remote
            remote.check(key for _, _, keys in remote_wanted for key in keys)
            for index, name, keys in remote_wanted:
                found = [remote.known.get(key) for key in keys]
                result[index][name] = True if any(found) else (None if None in found else False)
        return result


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


# --- the run --------------------------------------------------------------------------------------

# One classified value before its existence is known: category, the value to write, the reason, and
# the names to look up (empty: decided without a lookup).
_Pass = tuple[str, str | None, str, tuple[str, ...]]


def _checks_every_name(column: MediaColumn, options: RepairOptions) -> bool:
    """Whether names already canonical are looked up too (not only the repairs' targets).

    Free on local disk, so always; on Cloudinary each 100 names cost an Admin API call of a few
    hundred an hour, so only when asked (--check-remote, --upload-missing).
    """
    if not options.verify:
        return False
    return column.context.kind is StorageKind.FILESYSTEM or options.check_remote or options.upload_missing


_NO_FILE: _Pass = (EMPTY, None, "no file", ())


def _first_pass(old: str | None, column: MediaColumn, options: RepairOptions, every_name: bool) -> _Pass:
    if not old:
        return _NO_FILE
    context = column.context
    max_length = column.max_length
    if is_plain_canonical(old, context) and (max_length is None or len(old) <= max_length):
        # The bulk of a scan, decided without building a MediaValue (a fifth of a dry run's time).
        if not every_name:
            return CANONICAL, None, "storage name", ()
        if context.kind is StorageKind.FILESYSTEM and old.startswith(context.storage_prefix):
            names = candidate_names(MediaValue(MediaCategory.CANONICAL, old), context)
            return CANONICAL, None, "storage name", _fitting(names, max_length)
        return CANONICAL, None, "storage name", (old,)
    parsed = parse_media_value(old, context)
    category = parsed.category
    if category is MediaCategory.EMPTY:
        return EMPTY, None, parsed.reason, ()
    if category is MediaCategory.EXTERNAL:
        return EXTERNAL, None, parsed.reason, ()
    if category is MediaCategory.UNKNOWN:
        guesses = _fitting(parsed.guesses, max_length) if options.verify else ()
        return UNKNOWN, None, parsed.reason, guesses
    name = parsed.canonical_name
    assert name is not None
    if max_length is not None and len(name) > max_length:
        return UNKNOWN, None, f"canonical name longer than the field's max_length {max_length}", ()
    if category is MediaCategory.CANONICAL:
        if not every_name:
            return CANONICAL, None, parsed.reason, ()
        return CANONICAL, None, parsed.reason, _fitting(candidate_names(parsed, context), max_length)
    if not options.verify:
        return FIXABLE, name, parsed.reason, ()
    return FIXABLE, None, parsed.reason, _fitting(candidate_names(parsed, context), max_length)


def _fitting(names: tuple[str, ...], max_length: int | None) -> tuple[str, ...]:
    if max_length is None:
        return names
    if len(names) == 1:
        return names if len(names[0]) <= max_length else ()
    return tuple([n for n in names if len(n) <= max_length])


def _decide(
    first: _Pass, old: str, column: MediaColumn, answers: dict[str, bool | None], options: RepairOptions
) -> tuple[str, str | None, str]:
    """The verdict once the candidates' existence is known: the first candidate with a file wins."""
    category, _, reason, names = first
    found: str | None = None
    unanswered = False
    for name in names:
        answer = answers.get(name)
        if answer:
            found = name
            break
        if answer is None:
            unanswered = True
    if found is not None:
        if category == CANONICAL and found == old:
            return CANONICAL, None, reason
        if category == CANONICAL:
            return FIXABLE, found, f"no file at {old}; the file is at {found} (verified)"
        return FIXABLE, found, f"{reason} (verified)"
    looked = ", ".join(names)
    if unanswered:
        return BROKEN, None, f"existence could not be checked ({looked}): not rewritten"
    if category == UNKNOWN:
        return UNKNOWN, None, f"{reason}; no file at {looked}"
    if options.upload_missing and column.context.kind in (
        StorageKind.CLOUDINARY_STORAGE,
        StorageKind.CLOUDINARY_FIELD,
    ):
        original = _local_original(old, column)
        if original is not None:
            relative = original.relative_to(Path(str(settings.MEDIA_ROOT)).resolve()).as_posix()
            return FIXABLE, f"upload:{relative}", "missing in the media storage; uploaded from MEDIA_ROOT"
    return BROKEN, None, f"no file at {looked}"


def repair_media(
    options: RepairOptions,
    *,
    confirm: Callable[[str], bool] | None = None,
    on_row: Callable[[ReportRow], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> RepairResult:
    """Scan (and with ``options.apply``, repair) every file column; see the module docstring.

    ``on_wait`` hears, once, that ``--apply`` waits for a restore of the database to finish.
    """
    started = time.monotonic()
    database = options.database
    if not options.verify and (options.check_remote or options.upload_missing or options.resume_from):
        raise OpsConfigurationError(
            "--no-verify cannot go with --check-remote, --upload-missing or --resume-from: "
            "each of them looks files up."
        )
    columns = discover_columns(options.apps, options.models)
    result = RepairResult(
        database,
        options.apply,
        options.check_remote or options.upload_missing,
        columns=[c.label for c in columns],
    )
    result.verified = options.verify
    if options.apply and confirm is not None and not confirm(database):
        raise OpsError("Cancelled: nothing was written.")
    by_model: dict[type[models.Model], list[MediaColumn]] = defaultdict(list)
    for column in columns:
        by_model[column.model].append(column)
    remote: RemoteExistence | None = None
    if options.verify and any(
        c.context.kind in (StorageKind.CLOUDINARY_STORAGE, StorageKind.CLOUDINARY_FIELD) for c in columns
    ):
        remote = _remote_existence(options)
    verifier = _Verifier(remote)

    def waiting(message: str) -> None:
        result.waited_for_restore = True
        if on_wait is not None:
            on_wait(message)

    lock = (
        exclusive_writer(
            connections[database], wait=options.wait, on_wait=waiting, what="normalize_media_urls --apply"
        )
        if options.apply
        else contextlib.nullcontext()
    )
    run = _Run(options, result, verifier, on_row)
    try:
        with lock:
            run.scan(by_model, remote)
    except RateLimitReached as error:
        if result.fixed:
            where = f" (undo log: {result.undo_log})" if result.undo_log else ""
            raise error.after_writes(
                f"The {result.fixed:,} repairs verified before the stop were written{where}."
            ) from None
        raise
    finally:
        run.close()
        result.values_scanned = sum(result.counts[c] for c in CATEGORIES)
        result.api_calls = remote.calls if remote is not None else 0
        result.looked_up = verifier.looked_up
    if run.undo is not None and options.store_undo_log:
        _store_undo_log(run.undo.path, database, result)
    if remote is not None and remote.state_file is not None and remote.state_file.exists():
        remote.state_file.unlink()
    result.seconds = time.monotonic() - started
    return result


def _remote_existence(options: RepairOptions) -> RemoteExistence:
    reserve = int(ops_setting("MEDIA_REMOTE_RESERVE_CALLS"))
    if options.resume_from is not None:
        return RemoteExistence.resume(options.resume_from, reserve_calls=reserve)
    state_file = default_undo_dir() / f"normalize_media_urls-{options.database}-remote-check.json"
    return RemoteExistence(reserve_calls=reserve, state_file=state_file)


class _Run:
    """One scan: pages in, verdicts out (counts, examples, report, batches of writes)."""

    def __init__(
        self,
        options: RepairOptions,
        result: RepairResult,
        verifier: _Verifier,
        on_row: Callable[[ReportRow], None] | None,
    ) -> None:
        self.options = options
        self.result = result
        self.verifier = verifier
        self.on_row = on_row
        self.undo: UndoLog | None = None
        self.report = _Report(options.report_path) if options.report_path else None
        result.report_file = str(options.report_path) if options.report_path else None
        self.seen_examples: Counter[str] = Counter()
        self.page_size = int(options.page_size or ops_setting("MEDIA_REPAIR_PAGE_SIZE"))
        self.batch_size = int(options.batch_size or ops_setting("MEDIA_REPAIR_BATCH_SIZE"))

    def close(self) -> None:
        if self.undo is not None:
            self.undo.close()
        if self.report is not None:
            self.report.close()

    def scan(
        self, by_model: dict[type[models.Model], list[MediaColumn]], remote: RemoteExistence | None
    ) -> None:
        start = dict(remote.position) if remote is not None and remote.position else None
        if start is not None:
            labels = [model._meta.label for model in by_model]
            if start.get("model") not in labels:
                raise OpsConfigurationError(
                    f"The remote check state names {start.get('model')!r}, which this run does not scan. "
                    "Run with the same --app/--model options, or without --resume-from."
                )
            self.result.resumed_from = f"{start['model']} after pk {start.get('after')}"
        for model, model_columns in by_model.items():
            after: Any = None
            if start is not None:
                if model._meta.label != start["model"]:
                    continue  # scanned before the stop
                after, start = start.get("after"), None
            self._scan_model(model, model_columns, after, remote)

    def _scan_model(
        self,
        model: type[models.Model],
        model_columns: list[MediaColumn],
        after: Any,
        remote: RemoteExistence | None,
    ) -> None:
        options, result = self.options, self.result
        every = [_checks_every_name(c, options) for c in model_columns]
        pending: dict[int, list[tuple[Any, str, str]]] = defaultdict(list)
        pending_count = 0
        label = model._meta.label
        quiet_canonical = self.report is None
        counts = result.counts
        examples = options.examples
        done = after
        for page in stream_rows(
            model, [c.column for c in model_columns], options.database, self.page_size, after
        ):
            result.rows_scanned += len(page)
            items: list[tuple[Any, int, Any, _Pass]] = []
            wanted: list[set[str]] = [set() for _ in model_columns]
            for row in page:
                pk = row[0]
                for index, column in enumerate(model_columns):
                    old = row[index + 1]
                    first = _first_pass(old, column, options, every[index])
                    if first[3]:
                        wanted[index].update(first[3])
                    elif (
                        first[0] == CANONICAL
                        and quiet_canonical
                        and self.seen_examples[CANONICAL] >= examples
                    ):
                        counts[CANONICAL] += 1  # the bulk of a scan: counted, nothing else to do
                        continue
                    items.append((pk, index, old, first))
            answers: list[dict[str, bool | None]] = []
            if any(wanted):
                if remote is not None:
                    # A stop here resumes with this page: the pages before are done (and written).
                    remote.position = {"model": label, "after": _json_pk(done) if done is not None else None}
                try:
                    answers = self.verifier.answers(model_columns, wanted)
                except RateLimitReached:
                    if pending_count:
                        self._flush(model, model_columns, pending)
                    raise
            for pk, index, old, first in items:
                column = model_columns[index]
                names = first[3]
                if not names:
                    category, new, reason = first[0], first[1], first[2]
                elif first[0] == CANONICAL and names[0] == old and answers[index].get(old):
                    # The bulk of a verifying scan: a canonical name whose file is there.
                    category, new, reason = CANONICAL, None, first[2]
                else:
                    category, new, reason = _decide(first, old, column, answers[index], options)
                counts[category] += 1
                if category == EMPTY:
                    continue
                if category == CANONICAL and quiet_canonical and self.seen_examples[CANONICAL] >= examples:
                    continue
                if category == FIXABLE and new is not None and new.startswith("upload:"):
                    new = _upload(new.removeprefix("upload:"), column) if options.apply else new
                    result.uploads += 1
                row_out = ReportRow(label, pk, column.field_name, old, new or "", category, reason)
                if self.seen_examples[category] < examples:
                    self.seen_examples[category] += 1
                    result.examples[category].append({**asdict(row_out), "pk": _json_pk(pk)})
                if self.report is not None:
                    self.report.write(row_out)
                if self.on_row is not None and category != CANONICAL:
                    self.on_row(row_out)
                if category == FIXABLE and options.apply:
                    assert new is not None
                    pending[index].append((pk, old, new))
                    pending_count += 1
            if remote is not None:
                remote.forget()
            done = page[-1][0]
            if pending_count >= self.batch_size:
                self._flush(model, model_columns, pending)
                pending, pending_count = defaultdict(list), 0
        if pending_count:
            self._flush(model, model_columns, pending)

    def _flush(
        self,
        model: type[models.Model],
        model_columns: list[MediaColumn],
        pending: dict[int, list[tuple[Any, str, str]]],
    ) -> None:
        self.undo = self.undo or _open_undo(self.options, self.result)
        _flush(model, model_columns, pending, self.options.database, self.undo, self.result)


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


def _upload(relative: str, column: MediaColumn) -> str:
    """Upload a MEDIA_ROOT file into the column's storage; the value to store for it."""
    path = Path(str(settings.MEDIA_ROOT)) / relative
    if column.context.kind is StorageKind.CLOUDINARY_FIELD:
        return _upload_for_cloudinary_field(path, relative, column.context)
    with path.open("rb") as handle:
        return str(column.storage.save(relative, File(handle, name=relative)))


def _upload_for_cloudinary_field(path: Path, relative: str, context: MediaContext) -> str:
    """Through the SDK, as the field would: its value is ``<type>/<delivery>/v<version>/<id>.<format>``."""
    import cloudinary.exceptions
    import cloudinary.uploader

    raw = context.resource_type == "raw"
    # Images and videos keep their extension as the format, not in the public_id (as the field does).
    public_id = relative if raw or "." not in relative.rsplit("/", 1)[-1] else relative.rsplit(".", 1)[0]
    try:
        uploaded = cloudinary.uploader.upload(
            str(path),
            public_id=public_id,
            resource_type=context.resource_type,
            type=context.delivery_type,
            overwrite=False,
        )
    except cloudinary.exceptions.Error as error:
        raise OpsError(
            f"Uploading {relative} to Cloudinary failed ({type(error).__name__}: {redact(str(error))}). "
            "Check the credentials and the service status, then run the command again."
        ) from None
    value = f"{uploaded['resource_type']}/{uploaded['type']}/v{uploaded['version']}/{uploaded['public_id']}"
    fmt = uploaded.get("format")
    return value + (f".{fmt}" if fmt and not raw else "")


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
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> UndoResult:
    """Put back the old values of an undo log where the current value is still the one written.

    ``log``: the local file's path, or the key the log was stored under in the backup repository.
    With ``apply`` it holds the restore's lock like a repair does (``wait``, ``on_wait``).
    """
    started = time.monotonic()
    result = UndoResult(database, apply)
    size = int(batch_size or ops_setting("MEDIA_REPAIR_BATCH_SIZE"))
    if apply and confirm is not None and not confirm(database):
        raise OpsError("Cancelled: nothing was written.")
    batch: dict[tuple[str, str], list[tuple[Any, str, str]]] = defaultdict(list)

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

    lock = (
        exclusive_writer(
            connections[database], wait=wait, on_wait=on_wait, what="normalize_media_urls --undo"
        )
        if apply
        else contextlib.nullcontext()
    )
    with lock:
        _undo_entries(str(log), database, size, batch, flush, result)
    result.seconds = time.monotonic() - started
    return result


def _undo_entries(
    log: str,
    database: str,
    size: int,
    batch: dict[tuple[str, str], list[tuple[Any, str, str]]],
    flush: Callable[[], None],
    result: UndoResult,
) -> None:
    count = 0
    installed: set[tuple[str, str]] = set()
    for entry in _read_undo_log(log, database):
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
            batch.clear()
            count = 0
    if count:
        flush()


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
