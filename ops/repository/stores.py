"""Where the bytes of backups live: flat key -> object stores.

A backup repository (parts, manifest written last, listing) sits on one of these. Objects are
small (a backup is split into parts below the store's size limit), so each is read and written
whole. Three stores:

- ``LocalFolderStore``: a folder on this machine. Atomic writes (temporary file, fsync, rename),
  so a killed process never leaves a half-written object under its final name.
- ``DjangoStorageStore``: any storage alias from ``STORAGES`` (S3 through django-storages, ...).
- ``CloudinaryStore``: raw resources of delivery type ``private`` (never ``upload``, which anyone
  can download by URL), read back through signed, expiring download URLs. Every call is retried
  with exponential backoff and jitter on 5xx, 420/429, resets and timeouts.

Keys are relative paths of safe characters only (no ``..``, no absolute paths), checked here so
that no name can reach outside the store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import io
import os
import random
import re
import stat
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ops.errors import OpsConfigurationError, OpsError, redact
from ops.extras import require_extra

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*")
T = TypeVar("T")

# Cloudinary's free plan: 10 MB per raw file. Used when the account's own limit can't be read.
FREE_PLAN_RAW_MAX_BYTES = 10 * 1024 * 1024


class StoreError(OpsError):
    """A store could not complete an operation (after its retries)."""


class ObjectNotFound(StoreError):
    pass


@dataclass(frozen=True, order=True)
class StoredObject:
    key: str
    size: int


# Where a local write is assembled before its rename: a killed process leaves such a file behind.
TEMPORARY_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Leftover:
    """A temporary file a killed write left in a local store (never listed as an object)."""

    key: str
    size: int
    modified: dt.datetime


class ObjectStore(Protocol):
    """A flat namespace of whole objects."""

    @property
    def description(self) -> str:
        """Where this is, for messages (never holds a secret)."""
        ...

    def max_object_size(self) -> int | None:
        """The largest object this store takes, or None for no limit."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]: ...

    def delete(self, keys: Sequence[str]) -> None: ...


def check_key(key: str) -> str:
    """``key`` if it is a safe relative name; a clear error otherwise (no path traversal)."""
    if not _SAFE_KEY.fullmatch(key) or any(part in {".", ".."} for part in key.split("/")):
        raise OpsConfigurationError(
            f"{key!r} is not a valid backup object name: use letters, digits, '.', '-', '_' and '/' "
            "separators, with no '..' and no leading '/'."
        )
    return key


class LocalFolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def description(self) -> str:
        return f"local folder {self.root}"

    def max_object_size(self) -> int | None:
        return None

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Private by default: backups hold personal data.
            fd, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as error:
            raise StoreError(
                f"Cannot write {key} to the {self.description} ({error.strerror}). "
                "Check that the folder is writable and the disk is not full."
            ) from None

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{key} is not in the {self.description}.") from None
        except OSError as error:
            raise StoreError(f"Cannot read {key} from the {self.description} ({error.strerror}).") from None

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(TEMPORARY_PREFIX):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield StoredObject(key, path.stat().st_size)

    def leftovers(self) -> Sequence[Leftover]:
        """Temporary files of writes that never finished (a process killed mid-part)."""
        if not self.root.is_dir():
            return []
        found: list[Leftover] = []
        for path in sorted(self.root.rglob(f"{TEMPORARY_PREFIX}*")):
            with contextlib.suppress(OSError):
                status = path.lstat()
                if stat.S_ISREG(status.st_mode):
                    modified = dt.datetime.fromtimestamp(status.st_mtime, dt.UTC)
                    found.append(Leftover(path.relative_to(self.root).as_posix(), status.st_size, modified))
        return found

    def remove_leftover(self, leftover: Leftover) -> None:
        path = self.root / leftover.key
        if not path.name.startswith(TEMPORARY_PREFIX):
            raise OpsConfigurationError(f"{leftover.key} is not a temporary file of this store.")
        path.unlink(missing_ok=True)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            # Leave no empty backup folders behind.
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


# Backup names start with their UTC time (ops/repository/backups.py new_backup_name): how a backup of
# the shared flat layout is told apart from a database's folder beside it.
FLAT_BACKUP_NAME = re.compile(r"\d{8}T\d{6}Z-[A-Za-z0-9._\-]+")


class NamespacedFolderStore(LocalFolderStore):
    """One database's folder ``FOLDER/<namespace>`` of the local repository.

    Each database writes, lists, prunes and deletes only in its own folder, as on Cloudinary. The
    flat layout of older versions (every database's backups directly in FOLDER) is still read:
    its backups list and restore from every namespace, and nothing here deletes them (a delete
    only ever reaches the database's own folder).
    """

    def __init__(self, folder: Path, namespace: str, *, shared_prefixes: Sequence[str] = ()) -> None:
        super().__init__(folder / check_key(namespace))
        self.folder = folder
        self.namespace = namespace
        # Other objects the flat layout held (undo logs): still read by key from there.
        self.shared_prefixes = frozenset(shared_prefixes)

    def _flat_path(self, key: str) -> Path | None:
        name, _, rest = check_key(key).partition("/")
        if rest and name in self.shared_prefixes:
            return self.folder / key
        if not rest or "/" in rest or not FLAT_BACKUP_NAME.fullmatch(name):
            return None
        return self.folder / key

    def in_flat_layout(self, name: str) -> bool:
        """Whether backup ``name`` is one of the shared flat layout (not of this database's folder)."""
        return not (self.root / name).exists() and (self.folder / name).is_dir()

    def get(self, key: str) -> bytes:
        try:
            return super().get(key)
        except ObjectNotFound:
            flat = self._flat_path(key)
            if flat is None or not flat.is_file():
                raise
            try:
                return flat.read_bytes()
            except OSError as error:
                raise StoreError(f"Cannot read {key} from {self.folder} ({error.strerror}).") from None

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        own = list(super().list(prefix))
        yield from own
        names = {obj.key.partition("/")[0] for obj in own}
        if not self.folder.is_dir():
            return
        for backup in sorted(self.folder.iterdir()):
            if backup.name in names or not FLAT_BACKUP_NAME.fullmatch(backup.name) or not backup.is_dir():
                continue
            for path in sorted(backup.iterdir()):
                key = f"{backup.name}/{path.name}"
                if path.is_file() and not path.name.startswith(TEMPORARY_PREFIX) and key.startswith(prefix):
                    yield StoredObject(key, path.stat().st_size)

    def leftovers(self) -> Sequence[Leftover]:
        found = [*super().leftovers()]
        if self.folder.is_dir():
            for backup in sorted(self.folder.iterdir()):
                if FLAT_BACKUP_NAME.fullmatch(backup.name) and backup.is_dir():
                    flat = LocalFolderStore(backup)
                    found += [replace(item, key=f"{backup.name}/{item.key}") for item in flat.leftovers()]
        return found

    def remove_leftover(self, leftover: Leftover) -> None:
        own = self.root / leftover.key
        path = own if own.exists() else self.folder / leftover.key
        if not path.name.startswith(TEMPORARY_PREFIX):
            raise OpsConfigurationError(f"{leftover.key} is not a temporary file of this store.")
        path.unlink(missing_ok=True)


class DjangoStorageStore:
    """Objects in a Django storage backend, under ``location`` inside it."""

    def __init__(self, alias: str, location: str) -> None:
        from django.core.files.storage import InvalidStorageError, storages

        try:
            self.storage = storages[alias]
        except InvalidStorageError:
            raise OpsConfigurationError(
                f"OPS['BACKUP_STORAGE'] names the storage {alias!r}, which is not in STORAGES. "
                "Add it to STORAGES or choose another."
            ) from None
        self.alias = alias
        self.location = location.strip("/")

    @property
    def description(self) -> str:
        return f"storage {self.alias!r}"

    def max_object_size(self) -> int | None:
        return None

    def _name(self, key: str) -> str:
        return f"{self.location}/{check_key(key)}" if self.location else check_key(key)

    def put(self, key: str, data: bytes) -> None:
        from django.core.files.base import ContentFile

        name = self._name(key)
        try:
            # Storages never overwrite: they would save under another name instead.
            if self.storage.exists(name):
                self.storage.delete(name)
            saved = self.storage.save(name, ContentFile(data))
        except Exception as error:
            raise StoreError(f"Cannot write {key} to the {self.description}: {redact(str(error))}") from None
        if saved != name:
            raise StoreError(f"The {self.description} saved {key} under another name ({saved}).")

    def get(self, key: str) -> bytes:
        name = self._name(key)
        try:
            with self.storage.open(name, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise ObjectNotFound(f"{key} is not in the {self.description}.") from None
        except Exception as error:
            raise StoreError(f"Cannot read {key} from the {self.description}: {redact(str(error))}") from None
        return bytes(data)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        def walk(directory: str) -> Iterator[str]:
            try:
                folders, files = self.storage.listdir(directory)
            except FileNotFoundError:
                return
            for file_name in sorted(files):
                yield f"{directory}/{file_name}" if directory else file_name
            for folder in sorted(folders):
                yield from walk(f"{directory}/{folder}" if directory else folder)

        for name in walk(self.location):
            key = name[len(self.location) + 1 :] if self.location else name
            if key.startswith(prefix) and not key.rsplit("/", 1)[-1].startswith(".tmp-"):
                yield StoredObject(key, self.storage.size(name))

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.storage.delete(self._name(key))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 0.5
    max_delay: float = 30.0

    def delays(self) -> Iterator[float]:
        """Full-jitter exponential backoff (AWS's advice): spreads retries of several clients."""
        for attempt in range(self.attempts - 1):
            yield random.uniform(0, min(self.max_delay, self.first_delay * 2**attempt))  # noqa: S311


def _is_transient(error: BaseException) -> bool:
    import cloudinary.exceptions
    import urllib3.exceptions

    if isinstance(error, cloudinary.exceptions.RateLimited | cloudinary.exceptions.GeneralError):
        return True
    if isinstance(
        error, urllib3.exceptions.HTTPError | http.client.HTTPException | ConnectionError | TimeoutError
    ):
        return True
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code in (420, 429)
    if isinstance(error, urllib.error.URLError):
        return True
    message = str(error)
    # The SDK reports gateway errors and dropped connections as plain errors with these texts.
    return bool(
        re.match(
            r"(Error parsing server response \(5\d\d\)|Error 5\d\d|Socket error|Unexpected error)", message
        )
    )


class CloudinaryStore:
    """Objects as Cloudinary raw resources of delivery type ``private`` under ``folder``."""

    RESOURCE_TYPE = "raw"
    DELIVERY_TYPE = "private"

    def __init__(
        self,
        folder: str,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 120.0,
    ) -> None:
        require_extra("cloudinary", "cloudinary", "A backup repository in Cloudinary")
        self.folder = check_key(folder.strip("/"))
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.timeout = timeout
        # Admin API calls spent (the free plan allows about 500 an hour): reported to the user.
        self.admin_calls = 0

    @property
    def description(self) -> str:
        import cloudinary

        return f"Cloudinary folder {self.folder!r} of cloud {cloudinary.config().cloud_name!r}"

    def _public_id(self, key: str) -> str:
        return f"{self.folder}/{check_key(key)}"

    def _call(self, what: str, function: Callable[[], T]) -> T:
        import cloudinary.exceptions

        delays = self.retry.delays()
        while True:
            try:
                return function()
            except OpsError:
                raise
            except Exception as error:
                if isinstance(error, cloudinary.exceptions.AuthorizationRequired):
                    raise OpsConfigurationError(
                        "Cloudinary refused the credentials. Check CLOUDINARY_URL (or "
                        "CLOUDINARY_CLOUD_NAME, CLOUDINARY_API_KEY and CLOUDINARY_API_SECRET)."
                    ) from None
                if isinstance(error, cloudinary.exceptions.NotFound):
                    raise ObjectNotFound(f"{what}: not found in the {self.description}.") from None
                delay = next(delays, None) if _is_transient(error) else None
                if delay is None:
                    raise StoreError(
                        f"{what} failed on Cloudinary: {redact(str(error))[:300]}. "
                        "Check the service status and the account's limits, then run it again."
                    ) from None
                self.sleep(delay)

    def max_object_size(self) -> int | None:
        import cloudinary.api

        def usage() -> Any:
            self.admin_calls += 1
            return cloudinary.api.usage()

        try:
            limits = self._call("Reading the account's limits", usage).get("media_limits", {})
        except StoreError:
            return FREE_PLAN_RAW_MAX_BYTES
        return int(limits.get("raw_max_size_bytes") or FREE_PLAN_RAW_MAX_BYTES)

    def put(self, key: str, data: bytes) -> None:
        import cloudinary.uploader

        public_id = self._public_id(key)

        def upload() -> Any:
            return cloudinary.uploader.upload(
                io.BytesIO(data),
                filename=key.rsplit("/", 1)[-1],
                public_id=public_id,
                resource_type=self.RESOURCE_TYPE,
                type=self.DELIVERY_TYPE,
                overwrite=True,
                invalidate=True,
                use_filename=False,
                unique_filename=False,
                timeout=self.timeout,
            )

        result = self._call(f"Uploading {key}", upload)
        if int(result.get("bytes", -1)) != len(data):
            raise StoreError(f"Cloudinary stored {result.get('bytes')} bytes of {key}, not {len(data)}.")

    def get(self, key: str) -> bytes:
        import cloudinary.utils

        public_id = self._public_id(key)

        def download() -> bytes:
            url = cloudinary.utils.private_download_url(
                public_id,
                "",
                resource_type=self.RESOURCE_TYPE,
                type=self.DELIVERY_TYPE,
                expires_at=int(time.time()) + 600,
            )
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310
                    expected = response.headers.get("Content-Length")
                    data = bytes(response.read())
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    raise ObjectNotFound(f"{key} is not in the {self.description}.") from None
                raise
            if expected is not None and int(expected) != len(data):
                raise ConnectionError("download truncated")
            return data

        return self._call(f"Downloading {key}", download)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        import cloudinary.api

        folder_prefix = f"{self.folder}/{prefix}"
        cursor: str | None = None
        while True:
            options: dict[str, Any] = {
                "resource_type": self.RESOURCE_TYPE,
                "type": self.DELIVERY_TYPE,
                "prefix": folder_prefix,
                "max_results": 500,
            }
            if cursor:
                options["next_cursor"] = cursor

            def page(options: dict[str, Any] = options) -> Any:
                self.admin_calls += 1
                return cloudinary.api.resources(**options)

            result = self._call("Listing backups", page)
            for resource in result.get("resources", []):
                yield StoredObject(resource["public_id"][len(self.folder) + 1 :], int(resource["bytes"]))
            cursor = result.get("next_cursor")
            if not cursor:
                return

    def delete(self, keys: Sequence[str]) -> None:
        import cloudinary.api

        public_ids = [self._public_id(key) for key in keys]
        # The Admin API takes at most 100 public ids a call.
        for start in range(0, len(public_ids), 100):
            batch = public_ids[start : start + 100]

            def delete_batch(batch: list[str] = batch) -> Any:
                self.admin_calls += 1
                return cloudinary.api.delete_resources(
                    batch, resource_type=self.RESOURCE_TYPE, type=self.DELIVERY_TYPE, invalidate=True
                )

            self._call("Deleting old backup objects", delete_batch)
