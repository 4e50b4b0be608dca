"""Media in backups: a manifest of every media file the database references, optionally the files.

A database backup restores rows whose file fields name media files; the files live elsewhere (a
Cloudinary account, MEDIA_ROOT) and can be lost on their own: a deleted Cloudinary folder, a new
account, a free instance's disk. So each backup in the repository also records:

- the media manifest: one entry per file referenced (model, field, stored name; the stored value
  too when it is a legacy shape such as a full URL) with what the media storage said of it at
  backup time: ``present`` / ``missing`` / ``unchecked``; on Cloudinary the public_id, resource
  type, delivery type, version, format and bytes, on FileSystemStorage the size;
- with ``--with-media``, the referenced files' bytes.

Both travel in one more stream of the backup, ``NAME/media-part-00000``..., cut into parts below
the store's limit and checksummed exactly like the archive, age-encrypted to the same recipients
when the backup is (a separate age file, so ``cat NAME/media-part-* | age -d`` opens it). Stored
names may be personal-ish ("photos/ada-lovelace.jpg"), so they never appear in ``manifest.json``:
it carries counts only (``summary["media"]``). Format of the stream (integers big-endian)::

    b"KIDOOMED" + u16 version + b"\\r\\n\\x1a\\n"
    frames: kind (1 byte) + u32 payload length + payload
      b"I"  the index: zstd-compressed JSON {"format", "version", "created_at", "files": [...]}
      then per stored file: b"F" JSON {"n"} (index position), b"D" data (<= 1 MiB) ...,
      b"E" JSON {"n", "bytes", "sha256"} or {"n", "error"} (a file that failed mid-read)
      b"Z" JSON {"stored", "bytes", "failed"}: the end (its absence means truncated)

Why the index comes first: a restore must know what is missing before it reads any file, and it
reads the stream once, sequentially, keeping one file at a time in a temporary file (verified by
its SHA-256 before upload). Memory stays flat: one chunk in flight, one part buffered.

Decisions:

- Consistency: on PostgreSQL the references are read in the archive's own REPEATABLE READ
  snapshot, so the manifest names exactly the files the archived rows reference. SQLite's archive
  reads a private copy; the references are read from the live file just after (a row written in
  between may be missing from the manifest; such a file is not lost, only not listed).
- Cost on Cloudinary: existence and details come from ``ops.media.remote.RemoteExistence``:
  folder listings (500 a call) and ``resources_by_ids`` (100 a call), never a call per file; the
  number spent is in the summary. Downloads use signed private download URLs (not Admin API calls).
- FileSystemStorage: the size from ``stat``; the SHA-256 only where it is free (the stored files'
  E frames): hashing every file just for the manifest would read the whole media folder.
- Failures never cost the database backup: Cloudinary unreachable or rate-limited -> the entries
  are recorded ``unchecked`` and a warning says so; a file that cannot be downloaded is listed but
  not stored (counted, warned); after 3 files in a row fail, downloads stop (an unreachable
  service must not add minutes of retries per file). Only a failure of the repository itself (or
  of the database) fails the backup, as it would without media.
- Restore (``restore_media``): the files the manifest lists are looked up in the *current* media
  storage of each model field (so a new Cloudinary account or a move from disk to Cloudinary
  works: names, not URLs, are stored), and each missing one is uploaded under the same name or
  public_id, from the backup's stored files, else from MEDIA_ROOT. Present files are never
  touched, so a second run uploads nothing. Values stored as full URLs of an old account still
  point there: ``normalize_media_urls --apply`` rewrites them into names first.
- Backups written to a file or stdout (``-o``) and restores' safety backups carry no media
  manifest: there is no repository object to keep it in, and a restore must not call Cloudinary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import struct
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any, cast

import zstandard
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.db import connections, models, transaction

from ops.conf import ops_setting
from ops.errors import OpsConfigurationError, OpsError, redact
from ops.media.refs import StorageKind, parse_media_value, remote_keys
from ops.media.remote import RateLimitReached, RemoteExistence, RemoteKey
from ops.media.repair import MediaColumn, _local_original, discover_columns, stream_rows
from ops.repository.backups import (
    BackupInfo,
    BackupRepository,
    BackupUnderConstruction,
    CorruptBackup,
    PartInfo,
    PartsReader,
    PartWriter,
    configured_repository,
    fetch_part,
)
from ops.repository.encryption import ByteReader, decrypting, decryption_identities, encrypting
from ops.repository.listing import human_size
from ops.repository.stores import RetryPolicy, _is_transient
from ops.repository.verify import check_authentic

MEDIA_PART_PREFIX = "media-part"
MEDIA_FORMAT = "kidoo-ops-media"
FORMAT_VERSION = 1
MAGIC = b"KIDOOMED"
HEADER = MAGIC + struct.pack(">H", FORMAT_VERSION) + b"\r\n\x1a\n"
_FRAME = struct.Struct(">cI")
_CHUNK = 1024 * 1024
_MAX_FRAME = 512 * 1024 * 1024
# Downloads stop after this many files in a row could not be fetched (the service is down).
MAX_CONSECUTIVE_FAILURES = 3

PRESENT, MISSING, UNCHECKED = "present", "missing", "unchecked"
_CLOUDINARY = (StorageKind.CLOUDINARY_STORAGE, StorageKind.CLOUDINARY_FIELD)

Sleep = Callable[[float], None]


@dataclass
class MediaEntry:
    """One media file the database references, as the media manifest records it."""

    model: str
    field: str
    name: str
    storage: str
    status: str = UNCHECKED
    bytes: int | None = None
    # Cloudinary only: where the file was found.
    public_id: str | None = None
    resource_type: str | None = None
    type: str | None = None
    version: int | None = None
    format: str | None = None
    # The value stored in the field, when it is not the name itself (a full URL, a doubled prefix).
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaEntry:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def label(self) -> str:
        return f"{self.model}.{self.field}"


@dataclass
class MediaBackupSummary:
    """What ``manifest.json`` says of a backup's media: counts, never names."""

    files: int = 0
    bytes: int = 0
    present: int = 0
    missing: int = 0
    unchecked: int = 0
    # Values that name no file of a media storage (external URLs, unparseable): not in the manifest.
    external: int = 0
    unknown: int = 0
    with_files: bool = False
    stored_files: int = 0
    stored_bytes: int = 0
    not_stored: int = 0
    api_calls: int = 0
    encrypted: bool = False
    size: int = 0
    parts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MediaOptions:
    """How a backup records media (None in ``backup_to_repository``: not at all)."""

    with_files: bool = False
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3))
    sleep: Sleep = time.sleep


# --- which files ----------------------------------------------------------------------------------


def _columns_with_tables(database: str) -> list[MediaColumn]:
    connection = connections[database]
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
    return [column for column in discover_columns() if column.model._meta.db_table in existing]


def collect_references(
    database: str, *, page_size: int | None = None
) -> tuple[list[MediaEntry], Counter[str]]:
    """Every file the file columns of ``database`` reference, once per field, in a stable order.

    Also returns how many values named no file of a storage (``external``, ``unknown``).
    """
    size = int(page_size or ops_setting("MEDIA_REPAIR_PAGE_SIZE"))
    by_model: dict[type[models.Model], list[MediaColumn]] = defaultdict(list)
    for column in _columns_with_tables(database):
        by_model[column.model].append(column)
    entries: dict[tuple[str, str], MediaEntry] = {}
    skipped: Counter[str] = Counter()
    for model, columns in by_model.items():
        for page in stream_rows(model, [c.column for c in columns], database, size):
            for row in page:
                for index, column in enumerate(columns):
                    value = row[index + 1]
                    parsed = parse_media_value(value, column.context)
                    name = parsed.canonical_name
                    if name is None:
                        if parsed.category.value in ("external", "unknown"):
                            skipped[parsed.category.value] += 1
                        continue
                    key = (column.label, name)
                    if key not in entries:
                        entries[key] = MediaEntry(
                            model=column.model._meta.label,
                            field=column.field_name,
                            name=name,
                            storage=column.context.kind.value,
                            value=None if value == name else str(value),
                        )
    return sorted(entries.values(), key=lambda e: (e.model, e.field, e.name)), skipped


# --- what the storage says ------------------------------------------------------------------------


def _check_cloudinary(
    wanted: set[RemoteKey], options: MediaOptions, summary: MediaBackupSummary | None
) -> RemoteExistence:
    """Existence and details in bulk; transient failures retried (answers already settled are kept)."""
    remote = RemoteExistence(reserve_calls=int(ops_setting("MEDIA_REMOTE_RESERVE_CALLS")))
    delays = options.retry.delays()
    while True:
        try:
            remote.check(wanted)
            return remote
        except RateLimitReached:
            if summary is None:
                raise
            summary.warnings.append(
                f"Cloudinary's Admin API allowance ran out after {remote.calls} calls: "
                "media files it did not answer for are recorded unchecked."
            )
            return remote
        except OpsError as error:
            remote.calls += 1  # a failed call is spent all the same
            delay = next(delays, None)
            if delay is None:
                if summary is None:
                    raise
                summary.warnings.append(
                    f"Cloudinary's Admin API could not be reached ({redact(_short(error))}): media files "
                    "are recorded unchecked. The database backup is complete."
                )
                return remote
            options.sleep(delay)


def _short(error: BaseException) -> str:
    # The SDK's messages may quote a public_id (a name): only the kind of failure is kept.
    text = str(error)
    if "(" in text and ":" in text:
        text = text.split("(", 1)[1].split(":", 1)[0]
    return text[:60] or type(error).__name__


def _enrich(
    entries: Sequence[MediaEntry],
    columns: dict[str, MediaColumn],
    options: MediaOptions,
    summary: MediaBackupSummary,
) -> None:
    cloud = [e for e in entries if columns[e.label].context.kind in _CLOUDINARY]
    checkable = [e for e in cloud if columns[e.label].context.cloud_name]
    if checkable:
        wanted = {key for e in checkable for key in remote_keys(e.name, columns[e.label].context)}
        remote = _check_cloudinary(wanted, options, summary)
        summary.api_calls += remote.calls
        for entry in checkable:
            keys = remote_keys(entry.name, columns[entry.label].context)
            found = [key for key in keys if remote.known.get(key)]
            if found:
                resource_type, delivery_type, public_id = found[0]
                details = remote.details.get(found[0], {})
                entry.status, entry.public_id = PRESENT, public_id
                entry.resource_type, entry.type = resource_type, delivery_type
                entry.version = _int_or_none(details.get("version"))
                entry.bytes = _int_or_none(details.get("bytes"))
                entry.format = details.get("format")
            elif all(remote.known.get(key) is False for key in keys):
                entry.status = MISSING
    for entry in entries:
        column = columns[entry.label]
        if column.context.kind in _CLOUDINARY:
            continue
        try:
            if column.context.kind is StorageKind.FILESYSTEM:
                entry.bytes = Path(column.storage.path(entry.name)).stat().st_size
                entry.status = PRESENT
            elif column.storage.exists(entry.name):
                entry.status = PRESENT
                entry.bytes = int(column.storage.size(entry.name))
            else:
                entry.status = MISSING
        except FileNotFoundError:
            entry.status = MISSING
        except Exception:
            entry.status = UNCHECKED


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


# --- fetching files -------------------------------------------------------------------------------


class _NotFound(Exception):
    pass


def _download(url: str, timeout: float, spool: IO[bytes]) -> None:
    spool.seek(0)
    spool.truncate()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (the SDK's URL)
            expected = response.headers.get("Content-Length")
            size = 0
            while chunk := response.read(_CHUNK):
                spool.write(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise _NotFound from None
        raise
    if expected is not None and int(expected) != size:
        raise ConnectionError("download truncated")


def _retrying(what: Callable[[], Any], options: MediaOptions) -> Any:
    delays = options.retry.delays()
    while True:
        try:
            return what()
        except _NotFound:
            raise
        except Exception as error:
            delay = next(delays, None) if _is_transient(error) else None
            if delay is None:
                raise
            options.sleep(delay)


@contextlib.contextmanager
def _fetched(entry: MediaEntry, column: MediaColumn, options: MediaOptions) -> Iterator[IO[bytes]]:
    """The file's bytes: a local file opened, or a Cloudinary download spooled to a temporary file."""
    if column.context.kind not in _CLOUDINARY:
        with column.storage.open(entry.name, "rb") as handle:
            yield cast(IO[bytes], handle)
        return
    import cloudinary.utils

    if entry.public_id and entry.resource_type and entry.type:
        candidates: Sequence[RemoteKey] = [(entry.resource_type, entry.type, entry.public_id)]
    else:
        candidates = remote_keys(entry.name, column.context)
    with tempfile.TemporaryFile(prefix="ops-media-") as spool:
        for resource_type, delivery_type, public_id in candidates:

            def download(rt: str = resource_type, kind: str = delivery_type, pid: str = public_id) -> None:
                # The original bytes, whatever the delivery type: the signed download API.
                url = cloudinary.utils.private_download_url(
                    pid, "", resource_type=rt, type=kind, expires_at=int(time.time()) + 600
                )
                _download(url, 120.0, spool)

            try:
                _retrying(download, options)
            except _NotFound:
                continue
            spool.seek(0)
            yield spool
            return
        raise _NotFound


# --- the media stream -----------------------------------------------------------------------------


class _FrameWriter:
    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        sink.write(HEADER)

    def frame(self, kind: bytes, payload: bytes) -> None:
        self._sink.write(_FRAME.pack(kind, len(payload)))
        if payload:
            self._sink.write(payload)

    def json(self, kind: bytes, data: dict[str, Any]) -> None:
        self.frame(kind, json.dumps(data, sort_keys=True).encode())


def _copy_frames(handle: IO[bytes], frames: _FrameWriter, number: int) -> int | None:
    """D frames of the file's bytes and its E frame; None when reading it failed midway."""
    digest, size = hashlib.sha256(), 0
    while True:
        try:
            chunk = handle.read(_CHUNK)
        except OSError as error:
            frames.json(b"E", {"n": number, "error": type(error).__name__})
            return None
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
        frames.frame(b"D", chunk)
    frames.json(b"E", {"n": number, "bytes": size, "sha256": digest.hexdigest()})
    return size


def _write_stream(
    sink: IO[bytes],
    entries: Sequence[MediaEntry],
    columns: dict[str, MediaColumn],
    options: MediaOptions,
    summary: MediaBackupSummary,
) -> None:
    frames = _FrameWriter(sink)
    index = {
        "format": MEDIA_FORMAT,
        "version": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "with_files": options.with_files,
        "files": [entry.as_dict() for entry in entries],
    }
    frames.frame(b"I", zstandard.ZstdCompressor(level=10).compress(json.dumps(index).encode()))
    failed_in_a_row = 0
    if options.with_files:
        for number, entry in enumerate(entries):
            if entry.status == MISSING:
                continue
            if failed_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                summary.not_stored += 1
                continue
            # Failures to read a file cost that file; failures to write (the repository) propagate.
            with contextlib.ExitStack() as stack:
                try:
                    handle = stack.enter_context(_fetched(entry, columns[entry.label], options))
                except Exception:
                    summary.not_stored += 1
                    failed_in_a_row += 1
                    continue
                frames.json(b"F", {"n": number})
                size = _copy_frames(handle, frames, number)
                if size is None:
                    summary.not_stored += 1
                    failed_in_a_row += 1
                    continue
            failed_in_a_row = 0
            summary.stored_files += 1
            summary.stored_bytes += size
    if summary.not_stored:
        stopped = (
            f"; downloads stopped after {MAX_CONSECUTIVE_FAILURES} failures in a row"
            if failed_in_a_row >= MAX_CONSECUTIVE_FAILURES
            else ""
        )
        summary.warnings.append(
            f"{summary.not_stored} media files could not be read and are listed but not stored{stopped}."
        )
    frames.json(
        b"Z", {"stored": summary.stored_files, "bytes": summary.stored_bytes, "failed": summary.not_stored}
    )


def store_media(
    entries: list[MediaEntry],
    skipped: Counter[str],
    repository: BackupRepository,
    name: str,
    recipients: Sequence[Any] | None,
    options: MediaOptions,
) -> MediaBackupSummary:
    """Check ``entries`` against their storages and write the media stream of backup ``name``."""
    columns = {column.label: column for column in discover_columns()}
    summary = MediaBackupSummary(
        files=len(entries),
        external=skipped["external"],
        unknown=skipped["unknown"],
        with_files=options.with_files,
        encrypted=bool(recipients),
    )
    _enrich(entries, columns, options, summary)
    for entry in entries:
        setattr(summary, entry.status, getattr(summary, entry.status) + 1)
        summary.bytes += entry.bytes or 0
    if not entries:
        # Nothing referenced: no stream at all, so a database without media costs no upload.
        return summary
    writer = PartWriter(repository.store, f"{name}/{MEDIA_PART_PREFIX}", repository.part_size())
    if recipients:
        with encrypting(cast(IO[bytes], writer), recipients) as encrypted:
            _write_stream(encrypted, entries, columns, options, summary)
    else:
        _write_stream(cast(IO[bytes], writer), entries, columns, options, summary)
    writer.close()
    summary.parts = [part.as_dict() for part in writer.parts]
    summary.size = writer.size
    return summary


@contextlib.contextmanager
def recording_media(
    database: str,
    repository: BackupRepository,
    backup: BackupUnderConstruction,
    name: str,
    recipients: Sequence[Any] | None,
    options: MediaOptions | None,
) -> Iterator[None]:
    """Wrap the writing of backup ``name``'s archive to record its media (``options`` None: don't).

    Use inside ``repository.create(name)``, so the media parts are written before the manifest
    and removed with the rest if the backup fails.

    On PostgreSQL the block runs in a REPEATABLE READ snapshot that the archive then reads in
    (``write_archive`` uses the open transaction) and the references are read in the same one
    when the block succeeds; checking the storage and downloading happen after it is closed.
    ``backup.summary["media"]`` receives the counts.
    """
    if options is None:
        yield
        return
    connection = connections[database]
    with contextlib.ExitStack() as snapshot:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            snapshot.enter_context(transaction.atomic(using=database))
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield
        entries, skipped = collect_references(database)
    summary = store_media(entries, skipped, repository, name, recipients, options)
    backup.summary["media"] = summary.as_dict()


# --- reading the media stream ---------------------------------------------------------------------


class _FrameReader:
    def __init__(self, source: ByteReader, what: str) -> None:
        self._source = source
        self._what = what

    def _exact(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self._source.read(min(left, _CHUNK))
            if not chunk:
                raise CorruptBackup(f"{self._what} is truncated. Use another backup (`backup --list`).")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def header(self) -> None:
        head = self._exact(len(HEADER))
        if head[: len(MAGIC)] != MAGIC:
            raise CorruptBackup(f"{self._what} is not a media stream of this toolkit.")
        if head != HEADER:
            raise CorruptBackup(f"{self._what} uses another format version; use the code that took it.")

    def next(self) -> tuple[bytes, bytes]:
        kind, length = _FRAME.unpack(self._exact(_FRAME.size))
        if length > _MAX_FRAME:
            raise CorruptBackup(f"{self._what} is damaged (a frame of {length} bytes).")
        return kind, self._exact(length)

    def json(self, payload: bytes) -> dict[str, Any]:
        try:
            return dict(json.loads(payload))
        except ValueError:
            raise CorruptBackup(f"{self._what} is damaged (unreadable frame).") from None


@dataclass
class MediaManifest:
    backup: str
    created_at: str
    with_files: bool
    files: list[MediaEntry]


def _media_summary(backup: BackupInfo) -> dict[str, Any]:
    media = backup.summary.get("media")
    if not isinstance(media, dict) or not (media.get("parts") or media.get("files") == 0):
        raise OpsConfigurationError(
            f"Backup {backup.name} has no media manifest (taken by an older version, or written to a "
            "file). Take a new backup: every backup to the repository records one."
        )
    return media


@contextlib.contextmanager
def _opened_stream(
    repository: BackupRepository, backup: BackupInfo
) -> Iterator[tuple[_FrameReader, MediaManifest]]:
    media = _media_summary(backup)
    what = f"The media stream of backup {backup.name}"
    if not media.get("parts"):  # the database referenced no media file: no stream was written
        yield (
            _FrameReader(PartsReader(iter(())), what),
            MediaManifest(backup.name, str(backup.created_at.isoformat()), bool(media.get("with_files")), []),
        )
        return
    with contextlib.ExitStack() as stack:
        parts = [PartInfo.from_dict(part) for part in media["parts"]]
        where = f"the media stream of backup {backup.name}"
        source: ByteReader = PartsReader(fetch_part(repository.store, part, where) for part in parts)
        if media.get("encrypted"):
            identities = decryption_identities(repository.wrapped_identity(backup))
            source = stack.enter_context(decrypting(source, identities))
        frames = _FrameReader(source, what)
        frames.header()
        kind, payload = frames.next()
        if kind != b"I":
            raise CorruptBackup(f"{what} does not begin with its index.")
        try:
            index = json.loads(zstandard.ZstdDecompressor().decompress(payload))
        except (zstandard.ZstdError, ValueError):
            raise CorruptBackup(f"{what} has a damaged index.") from None
        manifest = MediaManifest(
            backup.name,
            str(index.get("created_at")),
            bool(index.get("with_files")),
            [MediaEntry.from_dict(item) for item in index.get("files", [])],
        )
        yield frames, manifest


def read_media_manifest(repository: BackupRepository, name: str) -> MediaManifest:
    """The media manifest of backup ``name`` (decrypted with the configured identity if need be)."""
    with _opened_stream(repository, repository.info(name)) as (_, manifest):
        return manifest


def _stored_files(
    frames: _FrameReader, wanted: set[int], what: str, *, spool_data: bool = True
) -> Iterator[tuple[int, IO[bytes], int]]:
    """Each wanted stored file (position, temporary file, size), verified against its SHA-256.

    ``spool_data`` False: only verified (the temporary file stays empty), for ``verify_media``.
    """
    while True:
        kind, payload = frames.next()
        if kind == b"Z":
            return
        if kind != b"F":
            raise CorruptBackup(f"{what} is damaged (unexpected frame {kind!r}).")
        number = int(frames.json(payload)["n"])
        keep = number in wanted
        with tempfile.TemporaryFile(prefix="ops-media-") as spool:
            digest, size = hashlib.sha256(), 0
            while True:
                kind, payload = frames.next()
                if kind != b"D":
                    break
                if keep:
                    if spool_data:
                        spool.write(payload)
                    digest.update(payload)
                    size += len(payload)
            if kind != b"E":
                raise CorruptBackup(f"{what} is damaged (a file without its end).")
            end = frames.json(payload)
            if not keep or "error" in end:
                continue
            if end.get("bytes") != size or end.get("sha256") != digest.hexdigest():
                raise CorruptBackup(f"A stored file of {what.lower()} does not match its checksum.")
            spool.seek(0)
            yield number, cast(IO[bytes], spool), size


@dataclass(frozen=True)
class MediaVerifyResult:
    files: int
    stored_files: int
    stored_bytes: int


def verify_media(repository: BackupRepository, backup: BackupInfo) -> MediaVerifyResult | None:
    """Read a backup's whole media stream and check every checksum (None: it records no media)."""
    described = backup.summary.get("media")
    if not isinstance(described, dict):
        return None
    if not described.get("parts") and described.get("files") == 0:
        return MediaVerifyResult(0, 0, 0)  # nothing referenced, no stream written
    what = f"The media stream of backup {backup.name}"
    stored = size = 0
    with _opened_stream(repository, backup) as (frames, manifest):
        everything = set(range(len(manifest.files)))
        for _, _, file_size in _stored_files(frames, everything, what, spool_data=False):
            stored += 1
            size += file_size
    if (described.get("files"), described.get("stored_files")) != (len(manifest.files), stored):
        raise CorruptBackup(
            f"Backup {backup.name}: its repository manifest does not describe its media stream. "
            "It is damaged; use another backup (`backup --list`)."
        )
    return MediaVerifyResult(len(manifest.files), stored, size)


# --- restoring ------------------------------------------------------------------------------------


@dataclass
class MediaRestoreResult:
    backup: str
    dry_run: bool = False
    files: int = 0
    restored: int = 0
    from_backup: int = 0
    from_media_root: int = 0
    already_present: int = 0
    # Missing now, and neither stored in the backup nor in MEDIA_ROOT.
    unavailable: int = 0
    # Of those, already missing from the storage when the backup was taken (broken references).
    missing_at_backup: int = 0
    # The model or field is no longer installed.
    not_installed: int = 0
    # Names a crafted or damaged manifest holds that would land outside the media storage
    # ("../settings.py", an absolute path): skipped and reported, the rest is restored.
    unsafe: int = 0
    failed: int = 0
    uploaded_bytes: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    # Names of files that could not be restored (shown to the operator, never stored).
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _upload_key(entry: MediaEntry, column: MediaColumn) -> RemoteKey:
    keys = remote_keys(entry.name, column.context)
    for key in keys:
        if key == (entry.resource_type, entry.type, entry.public_id):
            return key
    # django-cloudinary-storage names images and videos without their extension.
    return keys[-1]


_UPLOAD_CHUNK = 20 * 1024 * 1024


class _KeepOpen:
    """The file for the SDK, which closes what it reads (upload_large): a retry needs it open."""

    name = "stream"

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    def read(self, size: int = -1) -> bytes:
        return self._handle.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def __enter__(self) -> _KeepOpen:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _upload(entry: MediaEntry, column: MediaColumn, handle: IO[bytes], options: MediaOptions) -> int:
    """Put ``handle`` into the column's storage under the entry's very name; returns the bytes."""
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(0)
    if column.context.kind in _CLOUDINARY:
        import cloudinary.uploader

        resource_type, delivery_type, public_id = _upload_key(entry, column)
        tag = getattr(column.storage, "TAG", None)

        def upload() -> Any:
            handle.seek(0)
            # upload() reads the file into memory; above the chunk size, upload_large() streams it.
            function = (
                cloudinary.uploader.upload_large if size > _UPLOAD_CHUNK else cloudinary.uploader.upload
            )
            return function(
                _KeepOpen(handle),
                filename=entry.name.rsplit("/", 1)[-1],
                public_id=public_id,
                resource_type=resource_type,
                type=delivery_type,
                overwrite=False,
                use_filename=False,
                unique_filename=False,
                invalidate=True,
                tags=[tag] if tag else None,
                chunk_size=_UPLOAD_CHUNK,
                timeout=120,
            )

        _retrying(upload, options)
        return size
    saved = column.storage.save(entry.name, File(handle, name=entry.name))
    if saved != entry.name:
        raise OpsError(f"the storage saved it as {saved!r}")
    return size


def _local_file(entry: MediaEntry, column: MediaColumn) -> Path | None:
    """The file in MEDIA_ROOT the entry names (a FileSystemStorage-era copy), if there is one."""
    found = _local_original(entry.value or entry.name, column)
    if found is not None or column.context.kind is StorageKind.FILESYSTEM:
        return found
    # Cloudinary image names carry no extension; the file on disk does.
    root = Path(str(settings.MEDIA_ROOT)).resolve()
    for candidate in {entry.name, entry.name.removeprefix(column.context.name_prefix)}:
        folder, _, stem = candidate.rpartition("/")
        if not stem or "." in stem:
            continue
        matches = [
            p for p in (root / folder).glob(f"{stem}.*") if p.is_file() and p.resolve().is_relative_to(root)
        ]
        if len(matches) == 1:
            return matches[0]
    return None


def _unsafe_name(entry: MediaEntry, column: MediaColumn) -> str | None:
    """Why ``entry``'s name must not be written to ``column``'s storage, or None if it may be.

    A manifest is read back from the repository, which a stolen Cloudinary key can write to: a
    name is a path only inside the media storage, whatever it says.
    """
    name = entry.name
    if not isinstance(name, str) or not name.strip():
        return "it names no file"
    if "\x00" in name or "\\" in name or name.startswith("/") or ".." in name.split("/"):
        return "its path leads outside the media storage"
    if column.context.kind not in _CLOUDINARY:
        try:
            column.storage.path(name)
        except SuspiciousFileOperation:
            return "its path leads outside MEDIA_ROOT"
        except NotImplementedError:  # a storage without local paths judges its own names
            pass
    return None


def _shown(name: object) -> str:
    text = str(name)
    return repr(text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)")


def _present_now(
    entries: Sequence[MediaEntry],
    targets: dict[int, MediaColumn],
    result: MediaRestoreResult,
    options: MediaOptions,
) -> set[int]:
    """The positions of the entries their current storage already has (few Admin API calls)."""
    present: set[int] = set()
    cloud = {n: c for n, c in targets.items() if c.context.kind in _CLOUDINARY}
    if cloud:
        if any(not c.context.cloud_name for c in cloud.values()):
            raise OpsConfigurationError(
                "The media storage is Cloudinary but no cloud is configured. Set CLOUDINARY_URL."
            )
        wanted = {key for n, c in cloud.items() for key in remote_keys(entries[n].name, c.context)}
        remote = _check_cloudinary(wanted, options, None)
        result.api_calls += remote.calls
        for number, column in cloud.items():
            if any(remote.known.get(key) for key in remote_keys(entries[number].name, column.context)):
                present.add(number)
    for number, column in targets.items():
        if column.context.kind not in _CLOUDINARY and column.storage.exists(entries[number].name):
            present.add(number)
    return present


def restore_media(
    database: str = "default",
    name: str | None = None,
    *,
    latest: bool = False,
    include_empty: bool = False,
    repository: BackupRepository | None = None,
    dry_run: bool = False,
    options: MediaOptions | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> MediaRestoreResult:
    """Upload every file backup ``name`` references that the media storage lacks; idempotent."""
    started = time.monotonic()
    options = options or MediaOptions()
    repository = repository or configured_repository(database)
    backup = repository.pick(name, latest=latest, include_empty=include_empty)
    # The files it lists are uploaded into the site's media: only from a backup this deployment wrote.
    check_authentic(backup)
    result = MediaRestoreResult(backup.name, dry_run=dry_run)

    def problem(text: str) -> None:
        result.problems.append(text)
        if on_problem is not None:
            on_problem(text)

    columns = {column.label: column for column in discover_columns()}
    with _opened_stream(repository, backup) as (frames, manifest):
        entries = manifest.files
        result.files = len(entries)
        targets: dict[int, MediaColumn] = {}
        for number, entry in enumerate(entries):
            column = columns.get(entry.label)
            if column is None:
                result.not_installed += 1
            elif unsafe := _unsafe_name(entry, column):
                result.unsafe += 1
                problem(f"{entry.label} {_shown(entry.name)}: skipped, {unsafe}")
            else:
                targets[number] = column
        present = _present_now(entries, targets, result, options)
        result.already_present = len(present)
        missing = {n: c for n, c in targets.items() if n not in present}
        if manifest.with_files and missing:
            what = f"The media stream of backup {backup.name}"
            for number, handle, _ in _stored_files(frames, set(missing), what):
                column = missing.pop(number)
                if not dry_run:
                    try:
                        result.uploaded_bytes += _upload(entries[number], column, handle, options)
                    except Exception as error:
                        result.failed += 1
                        entry = entries[number]
                        problem(f"{entry.label} {entry.name}: upload failed ({redact(_short(error))})")
                        continue
                result.restored += 1
                result.from_backup += 1
                if not missing:
                    break  # the rest of the stream holds nothing this restore needs
    for number, column in missing.items():
        entry = entries[number]
        local = _local_file(entry, column)
        if local is None:
            result.unavailable += 1
            result.missing_at_backup += entry.status == MISSING
            problem(f"{entry.label} {entry.name}: missing, and not stored in the backup nor in MEDIA_ROOT")
            continue
        if not dry_run:
            try:
                with local.open("rb") as handle:
                    result.uploaded_bytes += _upload(entry, column, handle, options)
            except Exception as error:
                result.failed += 1
                problem(f"{entry.label} {entry.name}: upload failed ({redact(_short(error))})")
                continue
        result.restored += 1
        result.from_media_root += 1
    result.seconds = time.monotonic() - started
    return result


def recorded_media_text(media: dict[str, Any]) -> str:
    """What a backup's summary line says of its media manifest's counts: counts only."""
    problems = [f"{media[key]} {key}" for key in ("missing", "unchecked") if media.get(key)]
    state = f"; {', '.join(problems)}" if problems else ""
    stored = f", {media['stored_files']} stored" if media.get("with_files") else ""
    calls = f"; {media['api_calls']} Admin API calls" if media.get("api_calls") else ""
    return (
        f"media: {media['files']} files referenced ({human_size(int(media['bytes']))}{state}){stored}{calls}"
    )


def restored_media_text(media: MediaRestoreResult) -> str:
    """The summary line of a media restore (or of its dry run)."""
    action = "would restore" if media.dry_run else "restored"
    sources = f" ({media.from_backup} from the backup, {media.from_media_root} from MEDIA_ROOT)"
    extra = [f"{media.unavailable} unavailable"]
    if media.missing_at_backup:
        extra.append(f"{media.missing_at_backup} already missing when the backup was taken")
    if media.failed:
        extra.append(f"{media.failed} failed")
    if media.unsafe:
        extra.append(f"{media.unsafe} skipped as unsafe (names outside the media storage)")
    if media.not_installed:
        extra.append(f"{media.not_installed} of fields no longer installed")
    calls = f"; {media.api_calls} Admin API calls" if media.api_calls else ""
    return (
        f"Media of {media.backup}: {media.files} files referenced: {media.restored} {action}{sources}, "
        f"{media.already_present} already present, {', '.join(extra)}{calls}."
    )
