"""normalize_media_urls' undo logs, kept in the backup repository beside the backups.

During a run the undo log is a local file: the write-ahead log, fsynced before each batch commits.
At the end of the run it is stored in the configured repository (ops/repository/backups.py) as
``undo/<file name>.zst`` (zstd: JSON lines of media names shrink about tenfold), ``.zst.age`` when
backup encryption keys are configured, so that it outlives the instance's disk (a Render instance's
is gone at the next deploy) and is as private as the backups. A log larger than the store's object
limit is stored as ``<key>.part-00000`` ... plus ``<key>.parts`` (sizes and SHA-256), written last.
Every object is read back and compared before the local file is removed.

``undo/`` is reserved in the repository (``RESERVED_NAMES``): its objects never list, prune or
restore as backups.

An undo log is named by its local path or by its key; either may be plain JSON lines, zstd or age.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from ops.repository.encryption import (
    AGE_MAGIC,
    decrypt_bytes,
    encrypt_bytes,
    encryption_keys_from_environment,
)
from ops.errors import OpsConfigurationError, OpsError
from ops.repository.stores import ObjectNotFound, ObjectStore, check_key
from ops.repository.backups import UNDO_PREFIX, BackupRepository, PartInfo, configured_repository, fetch_part

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PARTS_SUFFIX = ".parts"
_CANNOT_UNDO = "It cannot be used to undo the repair."


class UndoLogNotFound(OpsConfigurationError):
    pass


@dataclass(frozen=True)
class StoredUndoLog:
    key: str
    # Where: the repository's description (never holds a secret).
    location: str
    encrypted: bool
    size: int
    parts: int


def undo_key(path: Path, *, encrypted: bool) -> str:
    return check_key(f"{UNDO_PREFIX}/{path.name}.zst" + (".age" if encrypted else ""))


def _put_verified(store: ObjectStore, key: str, data: bytes) -> None:
    store.put(key, data)
    # The local file goes once this returns: what the store hands back must be what was sent.
    if hashlib.sha256(store.get(key)).digest() != hashlib.sha256(data).digest():
        raise OpsError(f"{key} reads back different from what was stored in the {store.description}.")


def store_undo_log(path: Path, repository: BackupRepository) -> StoredUndoLog:
    """Compress (and encrypt, when keys are configured) the undo log at ``path`` into ``repository``."""
    compressed = io.BytesIO()
    with path.open("rb") as source:
        zstandard.ZstdCompressor(level=3).copy_stream(source, compressed)
    payload = compressed.getvalue()
    keys = encryption_keys_from_environment()
    if keys is not None:
        payload = encrypt_bytes(payload, keys)
    key = undo_key(path, encrypted=keys is not None)
    store = repository.store
    limit = repository.part_size()
    if len(payload) <= limit:
        _put_verified(store, key, payload)
        parts = 1
    else:
        listing = []
        for number, start in enumerate(range(0, len(payload), limit)):
            chunk = payload[start : start + limit]
            part = PartInfo.of(f"{key}.part-{number:05d}", chunk)
            _put_verified(store, part.key, chunk)
            listing.append(part.as_dict())
        _put_verified(store, key + PARTS_SUFFIX, json.dumps({"parts": listing}).encode())
        parts = len(listing)
    return StoredUndoLog(key, repository.description, keys is not None, len(payload), parts)


def _fetch(store: ObjectStore, key: str) -> bytes:
    try:
        return store.get(key)
    except ObjectNotFound:
        pass
    listing = json.loads(store.get(key + PARTS_SUFFIX))
    parts = [PartInfo.from_dict(part) for part in listing["parts"]]
    return b"".join(fetch_part(store, part, f"the undo log {key}", _CANNOT_UNDO) for part in parts)


def _candidate_keys(name: str) -> list[str]:
    key = name if name.startswith(f"{UNDO_PREFIX}/") else f"{UNDO_PREFIX}/{name}"
    # The local file's name (.jsonl) finds what it was stored as (.jsonl.zst, .jsonl.zst.age).
    keys = [key] if key.endswith((".zst", ".age")) else [key, f"{key}.zst", f"{key}.zst.age"]
    try:
        return [check_key(candidate) for candidate in keys]
    except OpsConfigurationError:
        return []


def _decode(payload: bytes, what: str) -> Iterator[str]:
    if payload.startswith(AGE_MAGIC):
        payload = decrypt_bytes(payload, what)
    if payload.startswith(ZSTD_MAGIC):
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload))
        yield from io.TextIOWrapper(reader, encoding="utf-8")
    else:
        yield from io.StringIO(payload.decode("utf-8"))


def undo_log_lines(
    name: str, database: str = "default", *, repository: BackupRepository | None = None
) -> Iterator[str]:
    """The lines of the undo log ``name``: a local file, else a key of ``repository`` (the configured one).

    Plain JSON lines stream from disk; a stored log (zstd, age) is decrypted in memory and
    decompressed as it is read, so memory holds the compressed log at most.
    """
    path = Path(name).expanduser()
    if path.is_file():
        with path.open("rb") as handle:
            head = handle.read(len(AGE_MAGIC))
        if head.startswith((AGE_MAGIC, ZSTD_MAGIC)):
            return _decode(path.read_bytes(), f"the undo log {path}")
        return _local_lines(path)
    candidates = _candidate_keys(name)
    if not candidates:
        raise UndoLogNotFound(f"Cannot open the undo log {name}: there is no such file. Check the path.")
    repository = repository or configured_repository(database)
    for key in candidates:
        try:
            payload = _fetch(repository.store, key)
        except ObjectNotFound:
            continue
        return _decode(payload, f"the undo log {key}")
    raise UndoLogNotFound(
        f"No undo log {name!r}: it is neither a file here nor a key in the {repository.description}. "
        "Use the path or key the repair printed (keys begin with undo/)."
    )


def _local_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        yield from handle
