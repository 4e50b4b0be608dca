"""The backup repository: named backups as checksummed parts plus a manifest, on an object store.

Layout of backup ``NAME`` in the store::

    NAME/part-00000 ...   the archive stream (age-encrypted when configured), cut into parts below
                          the store's object size limit (Cloudinary: the account's raw file limit)
    NAME/identity.age     passphrase mode only: the backup's key, encrypted with the passphrase
    NAME/manifest.json    written last: parts with their sizes and SHA-256, the archive's
                          summary, the backup's kind and source, and (with a signing key) an
                          HMAC over all of it (ops/repository/signing.py). A backup exists, lists
                          and restores only once this exists.

Kinds: ``full`` (every table), ``partial`` (--include/--exclude: some tables), ``safety`` (what a
restore replaced). ``--latest`` only ever means the newest full one.

Parts stream: memory holds one part at most. An interrupted backup leaves parts without a
manifest; they never list as a backup and ``prune`` removes them once abandoned. The manifest
carries table names, counts, sizes and checksums, never row data: names and manifests hold no
personal data. Concatenating the parts gives the (encrypted) archive, which ``age -d`` opens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from ops.conf import ops_setting
from ops.errors import OpsConfigurationError, OpsError
from ops.extras import is_installed, require_extra
from ops.repository import signing
from ops.repository.stores import (
    CloudinaryStore,
    DjangoStorageStore,
    Leftover,
    LocalFolderStore,
    NamespacedFolderStore,
    ObjectNotFound,
    ObjectStore,
    RetryPolicy,
    StoredObject,
    check_key,
)

REPOSITORY_FORMAT = "kidoo-ops-backup"
REPOSITORY_VERSION = 1
MANIFEST = "manifest.json"
WRAPPED_IDENTITY = "identity.age"
# Without a store limit, parts of this size keep memory flat and files easy to copy. A part is held
# twice while it is stored (the buffer and its bytes), and once more when read back: 32 MB parts
# took a repository backup's peak RSS to 132 MB (bench/bench_backup_restore.py at 2x); 8 MB parts
# keep it within Render's budget.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
# Key prefixes that hold no backup: normalize_media_urls keeps its undo logs under undo/ beside the
# backups (ops/media/undo_logs.py). They never list, prune or restore as backups; no backup takes the name.
UNDO_PREFIX = "undo"
RESERVED_NAMES = frozenset({UNDO_PREFIX})
FULL = "full"
PARTIAL = "partial"
SAFETY = "safety"
KINDS = (FULL, PARTIAL, SAFETY)
# The reason a restore gives its safety backup: manifests older than ``kind`` are told by it.
SAFETY_REASON = "pre-restore"


class BackupNotFound(OpsError):
    pass


class CorruptBackup(OpsError):
    """A backup's parts or manifest do not match what was written."""


@dataclass(frozen=True)
class PartInfo:
    """One stored object of a stream cut into parts, as the manifest that lists it records it."""

    key: str
    size: int
    sha256: str

    @classmethod
    def of(cls, key: str, data: bytes) -> PartInfo:
        return cls(key, len(data), hashlib.sha256(data).hexdigest())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartInfo:
        return cls(str(data["key"]), int(data["size"]), str(data["sha256"]))

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "sha256": self.sha256}

    def matches(self, data: bytes) -> bool:
        return len(data) == self.size and hashlib.sha256(data).hexdigest() == self.sha256


_RESTORE_ANOTHER = "Restore another backup (`backup --list`)."


def fetch_part(store: ObjectStore, part: PartInfo, what: str, advice: str = _RESTORE_ANOTHER) -> bytes:
    """Part ``part`` of ``what`` ("backup NAME", ...), checked against its size and SHA-256."""
    try:
        data = store.get(part.key)
    except ObjectNotFound:
        subject = what[:1].upper() + what[1:]
        raise CorruptBackup(f"{subject} is missing its part {part.key}. {advice}") from None
    if not part.matches(data):
        raise CorruptBackup(f"Part {part.key} of {what} does not match its checksum: it is damaged. {advice}")
    return data


class PartWriter:
    """A writable stream cut into objects ``<prefix>-00000``, ``-00001``..., each stored as it fills.

    Memory holds one part. ``close`` stores the last (possibly empty) one; ``parts`` lists them all
    for the manifest that is written after them.
    """

    def __init__(self, store: ObjectStore, prefix: str, part_size: int) -> None:
        self._store = store
        self._prefix = prefix
        self._part_size = part_size
        self._buffer = bytearray()
        self.parts: list[PartInfo] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        written = len(view)
        while view:
            room = self._part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self._part_size:
                self._store_part()
        return written

    def flush(self) -> None:
        """Nothing to do: parts are stored when full, and the last one by ``close``."""

    def _store_part(self) -> None:
        data = bytes(self._buffer)
        self._buffer.clear()
        key = f"{self._prefix}-{len(self.parts):05d}"
        self._store.put(key, data)
        self.parts.append(PartInfo.of(key, data))

    def close(self) -> None:
        if self._buffer or not self.parts:
            self._store_part()

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)


class PartsReader:
    """Parts read back as one stream (``read``), one part in memory at a time."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts = parts
        self._buffer = memoryview(b"")

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            rest = bytes(self._buffer) + b"".join(self._parts)
            self._buffer = memoryview(b"")
            return rest
        while not self._buffer:
            part = next(self._parts, None)
            if part is None:
                return b""
            self._buffer = memoryview(part)
        data = bytes(self._buffer[:size])
        self._buffer = self._buffer[size:]
        return data


@dataclass(frozen=True)
class BackupInfo:
    """One complete backup, as its manifest describes it (or an incomplete one, from its parts)."""

    name: str
    created_at: dt.datetime
    complete: bool
    size: int
    parts: tuple[PartInfo, ...] = ()
    encryption: str | None = None
    # What the archive says of itself: vendor, tables, rows, holds_data, ... (no personal data).
    summary: dict[str, Any] = field(default_factory=dict)
    # Set when a manifest exists but cannot be read (damaged, or written by another format version):
    # such a backup is not "never completed", and no prune may take it for abandoned parts.
    unreadable: str | None = None
    # Set by ``backups()`` when the manifest lists an object the store does not hold (whole):
    # such a backup lists, marked, but is never trusted as the latest (``newest_intact``).
    damage: str | None = None
    # full, partial or safety (``kind_of``); where it was taken: engine, database, host fingerprint.
    kind: str = FULL
    source: dict[str, Any] = field(default_factory=dict)
    # The manifest as stored: its signature is checked over exactly these members.
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def signed(self) -> bool:
        return signing.is_signed(self.manifest)

    @property
    def fingerprint(self) -> str | None:
        value = self.source.get("fingerprint")
        return str(value) if value else None

    @property
    def holds_data(self) -> bool:
        return bool(self.summary.get("holds_data", True))

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "complete": self.complete,
            "size": self.size,
            "parts": len(self.parts),
            "encryption": self.encryption,
            "holds_data": self.holds_data,
            "tables": self.summary.get("tables"),
            "rows": self.summary.get("rows"),
            "reason": self.summary.get("reason"),
            "kind": self.kind,
            "source": self.source or None,
            "signed": self.signed,
            "damage": self.damage,
        }


def kind_of(name: str, manifest: Mapping[str, Any]) -> str:
    """The kind a manifest records; older manifests: safety if a restore wrote it, else full."""
    kind = manifest.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    summary = manifest.get("summary") or {}
    if (isinstance(summary, Mapping) and summary.get("reason") == SAFETY_REASON) or (
        f"-{SAFETY_REASON}-" in name
    ):
        return SAFETY
    return FULL


def new_backup_name(reason: str, now: dt.datetime | None = None) -> str:
    """Sortable by time, unique, and free of personal data: ``20261128T031500Z-daily-3f9a``."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    label = "".join(c if c.isalnum() or c == "-" else "-" for c in reason.lower()).strip("-")[:32] or "manual"
    return check_key(f"{moment:%Y%m%dT%H%M%SZ}-{label}-{secrets.token_hex(2)}")


def _created_at_from_name(name: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


class BackupRepository:
    def __init__(self, store: ObjectStore, *, part_size: int | None = None) -> None:
        self.store = store
        self._part_size = part_size

    @property
    def description(self) -> str:
        return self.store.description

    def part_size(self) -> int:
        if self._part_size is None:
            limit = self.store.max_object_size()
            # Stay clearly below the limit: it is checked on the file as the service counts it.
            self._part_size = (
                DEFAULT_PART_SIZE if limit is None else min(DEFAULT_PART_SIZE, limit * 95 // 100)
            )
        return self._part_size

    @contextlib.contextmanager
    def create(
        self,
        name: str,
        *,
        encryption: str | None = None,
        wrapped_identity: bytes | None = None,
        kind: str = FULL,
        source: Mapping[str, Any] | None = None,
        signing_key: bytes | None = None,
    ) -> Iterator[BackupUnderConstruction]:
        """Write a backup: yields its sink; the manifest is written when the block succeeds.

        ``signing_key``: the manifest is signed with it (ops/repository/signing.py).

        If the block fails, the parts written so far are deleted (a killed process leaves them to
        ``prune``); either way nothing lists as a backup unless it completed.
        """
        check_key(name)
        if name.partition("/")[0] in RESERVED_NAMES:
            raise OpsConfigurationError(
                f"{name!r} is reserved for other objects of the repository: name the backup otherwise."
            )
        writer = PartWriter(self.store, f"{name}/part", self.part_size())
        backup = BackupUnderConstruction(writer)
        try:
            if wrapped_identity is not None:
                self.store.put(f"{name}/{WRAPPED_IDENTITY}", wrapped_identity)
            yield backup
            writer.close()
            manifest = {
                "format": REPOSITORY_FORMAT,
                "version": REPOSITORY_VERSION,
                "name": name,
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
                "encryption": encryption,
                "size": writer.size,
                "parts": [part.as_dict() for part in writer.parts],
                "summary": backup.summary,
                "kind": kind,
                "source": dict(source or {}),
            }
            if signing_key is not None:
                manifest = signing.sign(manifest, signing_key)
            self.store.put(f"{name}/{MANIFEST}", json.dumps(manifest, indent=1, sort_keys=True).encode())
        except BaseException:
            with contextlib.suppress(Exception):
                self.store.delete([obj.key for obj in self.store.list(f"{name}/")])
            raise

    def _group(self, listing: Iterable[StoredObject] | None = None) -> dict[str, list[StoredObject]]:
        groups: dict[str, list[StoredObject]] = {}
        for obj in self.store.list() if listing is None else listing:
            name, _, rest = obj.key.partition("/")
            if rest and name not in RESERVED_NAMES:
                groups.setdefault(name, []).append(obj)
        return groups

    def backups(
        self, *, include_incomplete: bool = False, listing: Iterable[StoredObject] | None = None
    ) -> list[BackupInfo]:
        """Every backup, newest first. One store listing (or ``listing``, one the caller already
        made), plus one read per complete backup.

        Each complete backup's ``damage`` says what of it the listing lacks (None: all there).
        """
        backups = []
        for name, objects in self._group(listing).items():
            keys = {obj.key for obj in objects}
            if f"{name}/{MANIFEST}" in keys:
                try:
                    info = self.info(name)
                    present = {obj.key: obj.size for obj in objects}
                    backups.append(replace(info, damage=missing_objects(info, present)))
                except CorruptBackup as error:
                    if include_incomplete:
                        backups.append(replace(self._incomplete(name, objects), unreadable=str(error)))
            elif include_incomplete:
                backups.append(self._incomplete(name, objects))
        return sorted(backups, key=lambda backup: backup.created_at, reverse=True)

    def _incomplete(self, name: str, objects: list[StoredObject]) -> BackupInfo:
        created_at = _created_at_from_name(name) or dt.datetime.fromtimestamp(0, dt.UTC)
        return BackupInfo(name, created_at, complete=False, size=sum(obj.size for obj in objects))

    def info(self, name: str) -> BackupInfo:
        check_key(name)
        try:
            raw = self.store.get(f"{name}/{MANIFEST}")
        except ObjectNotFound:
            raise BackupNotFound(
                f"No complete backup named {name} in the {self.description}. "
                "`python manage.py backup --list` shows the backups there."
            ) from None
        try:
            manifest = json.loads(raw)
            if manifest.get("format") != REPOSITORY_FORMAT:
                raise ValueError("not a backup manifest")
            if manifest.get("version") != REPOSITORY_VERSION:
                raise CorruptBackup(
                    f"Backup {name} uses repository format version {manifest.get('version')}; "
                    f"this code reads version {REPOSITORY_VERSION}. Use the code that took it."
                )
            return BackupInfo(
                name=name,
                created_at=dt.datetime.fromisoformat(manifest["created_at"]),
                complete=True,
                size=int(manifest["size"]),
                parts=tuple(PartInfo.from_dict(part) for part in manifest["parts"]),
                encryption=manifest.get("encryption"),
                summary=dict(manifest.get("summary") or {}),
                kind=kind_of(name, manifest),
                source=dict(manifest.get("source") or {}),
                manifest=manifest,
            )
        except (ValueError, KeyError, TypeError) as error:
            raise CorruptBackup(f"The manifest of backup {name} is damaged ({error}).") from None

    def latest(self, *, with_data: bool = True) -> BackupInfo:
        """The newest full backup (that holds data): never a restore's safety backup nor a partial one."""
        everything = self.backups()
        # The kind filter: --latest is what the start command restores into an empty database.
        backups = [backup for backup in everything if backup.kind == FULL]
        for backup in backups:
            if backup.holds_data or not with_data:
                return backup
        if backups:
            raise BackupNotFound(
                f"There is no complete backup that holds data in the {self.description}: its "
                f"{len(backups)} full backup(s) are all of an empty database. Name one (`backup --list`) "
                "or pass --include-empty to take the newest anyway."
            )
        if everything:
            kinds = ", ".join(sorted({backup.kind for backup in everything}))
            raise BackupNotFound(
                f"There is no full backup in the {self.description}, only {len(everything)} of other "
                f"kinds ({kinds}), which --latest never picks. Name one (`backup --list`) to restore "
                "it, or take a full backup with `python manage.py backup`."
            )
        raise BackupNotFound(
            f"There is no complete backup in the {self.description}. Take one with "
            "`python manage.py backup`; if backups exist elsewhere, check OPS['BACKUP_REPOSITORY'] "
            "and OPS['BACKUP_NAMESPACE']."
        )

    # --- intact before trusted (issue 14, finding 9): a listing, no download ---------------------

    def newest_intact(self, *, with_data: bool = True) -> IntactChoice:
        """The newest intact backup ``latest`` would consider, and the newer damaged ones it passed.

        Intact: the manifest and every object it lists are in the store, at their recorded sizes
        (one listing; checksums are checked as the parts are read). Raises BackupNotFound, naming
        the damaged ones, when none is intact.
        """
        # The same kind filter as ``latest``: never a safety or partial backup.
        candidates = [b for b in self.backups() if b.kind == FULL and (b.holds_data or not with_data)]
        if not candidates:
            self.latest(with_data=with_data)  # raises BackupNotFound, saying why
        damaged: list[BackupInfo] = []
        for backup in candidates:
            if backup.damage is None:
                return IntactChoice(backup, tuple(damaged))
            damaged.append(backup)
        raise BackupNotFound(
            f"Every backup in the {self.description} that could be restored is damaged "
            f"({'; '.join(f'{b.name}: {b.damage}' for b in damaged)}). "
            "`python manage.py backup --list` marks them; take a new backup."
        )

    def in_shared_layout(self, name: str) -> bool:
        """Whether ``name`` is in the flat layout every database shared (local folders of old)."""
        return isinstance(self.store, NamespacedFolderStore) and self.store.in_flat_layout(name)

    def leftovers(self) -> Sequence[Leftover]:
        """Temporary files killed writes left (local folders only: other stores have none)."""
        return self.store.leftovers() if isinstance(self.store, LocalFolderStore) else ()

    def remove_leftover(self, leftover: Leftover) -> None:
        if isinstance(self.store, LocalFolderStore):
            self.store.remove_leftover(leftover)

    def pick(self, name: str | None, *, latest: bool = False, include_empty: bool = False) -> BackupInfo:
        """Backup ``name``, or with ``latest`` the newest that holds data (``include_empty``: the newest)."""
        if latest:
            return self.latest(with_data=not include_empty)
        if name:
            return self.info(name)
        raise OpsConfigurationError("Name a backup in the repository or use --latest.")

    def last_safety_backup(self, fingerprint: str) -> BackupInfo:
        """The newest safety backup taken of the database whose source fingerprint is ``fingerprint``."""
        for backup in self.backups():
            if backup.kind == SAFETY and backup.fingerprint == fingerprint:
                return backup
        raise BackupNotFound(
            f"There is no safety backup of this database in the {self.description}: a restore "
            "takes one only when the database held data (older ones, which do not record their "
            "database, are restored by name: `backup --list`)."
        )

    def encrypted_backup(self) -> str | None:
        """The name of a backup held encrypted here, or None: the repository's encryption policy.

        Read newest name first and stops at the first encrypted one (a store listing plus
        usually one manifest read); only a repository without any reads every manifest.
        """
        for name in sorted(self._group(), reverse=True):
            try:
                if self.info(name).encrypted:
                    return name
            except (BackupNotFound, CorruptBackup):
                continue
        return None

    def wrapped_identity(self, backup: BackupInfo) -> bytes | None:
        if backup.encryption != "age-passphrase":
            return None
        return self.store.get(f"{backup.name}/{WRAPPED_IDENTITY}")

    def read_parts(self, backup: BackupInfo) -> Iterator[bytes]:
        """The backup's parts in order, each checked against its SHA-256 before it is handed out."""
        for part in backup.parts:
            yield fetch_part(self.store, part, f"backup {backup.name}")

    @contextlib.contextmanager
    def spooled(self, backup: BackupInfo) -> Iterator[IO[bytes]]:
        """The whole verified archive stream in a private temporary file (read it as often as needed).

        Restores read an archive twice (verify everything, then load): spooling downloads it once.
        """
        with tempfile.TemporaryFile(prefix="ops-restore-") as spool:
            for data in self.read_parts(backup):
                spool.write(data)
            spool.flush()
            spool.seek(0)
            yield spool

    def delete(self, name: str) -> None:
        check_key(name)
        keys = [obj.key for obj in self.store.list(f"{name}/")]
        manifest = f"{name}/{MANIFEST}"
        # The manifest first: a delete that fails halfway leaves parts that no longer list as a
        # backup (the next prune removes them), never a backup that lists but cannot be restored.
        if manifest in keys:
            self.store.delete([manifest])
        self.store.delete([key for key in keys if key != manifest])


def missing_objects(backup: BackupInfo, present: Mapping[str, int]) -> str | None:
    """What of ``backup`` the store's listing ``present`` (key -> size) lacks, or None."""
    for part in backup.parts:
        size = present.get(part.key)
        if size is None:
            return f"its part {part.key} is missing"
        if size != part.size:
            return f"its part {part.key} holds {size} bytes, its manifest says {part.size}"
    if backup.encryption == "age-passphrase" and f"{backup.name}/{WRAPPED_IDENTITY}" not in present:
        return f"its key {backup.name}/{WRAPPED_IDENTITY} is missing"
    return None


@dataclass(frozen=True)
class IntactChoice:
    """The newest intact backup, and the newer ones passed over because they are damaged."""

    backup: BackupInfo
    damaged: tuple[BackupInfo, ...] = ()

    def warnings(self) -> list[str]:
        return [
            f"The newer backup {b.name} is damaged ({b.damage}); using {self.backup.name}, the newest "
            "intact one. Take a new backup, and delete the damaged one once checked."
            for b in self.damaged
        ]


class BackupUnderConstruction:
    """The sink a backup's archive stream is written to, and the summary its manifest will carry."""

    def __init__(self, writer: PartWriter) -> None:
        self._writer = writer
        self.summary: dict[str, Any] = {}

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._writer.write(data)

    def flush(self) -> None:
        self._writer.flush()

    @property
    def parts_written(self) -> int:
        return len(self._writer.parts)


def default_namespace(database: str = "default") -> str:
    """Keeps staging and production apart in one account: OPS['BACKUP_NAMESPACE'], else the DB name.

    The database name, not RENDER_SERVICE_NAME: the web service and the cron job are two services
    that must share one set of backups, and a recreated Render database keeps its name.
    """
    from django.db import connections

    configured = ops_setting("BACKUP_NAMESPACE")
    name = str(configured or connections[database].settings_dict.get("NAME") or "default")
    if not configured and ("/" in name or name.endswith((".sqlite3", ".db"))):
        name = Path(name).stem
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "default"


def cloudinary_is_configured() -> bool:
    if not is_installed("cloudinary"):
        if os.environ.get("CLOUDINARY_URL"):
            # Credentials without the SDK: falling back to the local folder would hide it.
            require_extra("cloudinary", "cloudinary", "CLOUDINARY_URL is set: backups in Cloudinary")
        return False
    import cloudinary

    config = cloudinary.config()
    return bool(config.cloud_name and config.api_key and config.api_secret)


def local_backup_folder() -> Path:
    """OPS['BACKUP_DIR'] as an absolute path (relative to BASE_DIR): the local repository's folder."""
    from django.conf import settings

    directory = Path(str(ops_setting("BACKUP_DIR")))
    if not directory.is_absolute():
        directory = Path(getattr(settings, "BASE_DIR", Path.cwd())) / directory
    return directory


def configured_repository(database: str = "default", *, retry: RetryPolicy | None = None) -> BackupRepository:
    """The repository OPS['BACKUP_REPOSITORY'] names: "local", "cloudinary" or "storage:<alias>".

    Unset: Cloudinary when its credentials are configured (an instance's disk does not survive a
    deploy), else the local folder OPS['BACKUP_DIR']. ``retry``: Cloudinary's calls' retries, if
    not a command's (a web page answers sooner).
    """
    choice = ops_setting("BACKUP_REPOSITORY") or ("cloudinary" if cloudinary_is_configured() else "local")
    namespace = default_namespace(database)
    if choice == "local":
        # A folder per database, as on Cloudinary: one database's prune never reaches another's.
        store = NamespacedFolderStore(local_backup_folder(), namespace, shared_prefixes=[UNDO_PREFIX])
        return BackupRepository(store)
    if choice == "cloudinary":
        require_extra("cloudinary", "cloudinary", "OPS['BACKUP_REPOSITORY'] = 'cloudinary'")
        if not cloudinary_is_configured():
            raise OpsConfigurationError(
                "OPS['BACKUP_REPOSITORY'] is 'cloudinary' but no Cloudinary credentials are set. "
                "Set CLOUDINARY_URL (or CLOUDINARY_CLOUD_NAME, _API_KEY and _API_SECRET)."
            )
        folder = f"{str(ops_setting('BACKUP_CLOUDINARY_FOLDER')).strip('/')}/{namespace}"
        return BackupRepository(CloudinaryStore(folder, retry=retry))
    if isinstance(choice, str) and choice.startswith("storage:"):
        return BackupRepository(DjangoStorageStore(choice.removeprefix("storage:"), f"backups/{namespace}"))
    raise OpsConfigurationError(
        f"OPS['BACKUP_REPOSITORY'] is {choice!r}: use 'local', 'cloudinary' or 'storage:<alias>'."
    )
