"""The in-memory asset store: one lock, versions that only go up, cursors that survive deletions."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

ResourceKey = tuple[str, str, str]  # (resource_type, delivery type, public_id)


@dataclass(frozen=True)
class StoredResource:
    public_id: str
    resource_type: str
    delivery_type: str
    data: bytes
    format: str | None
    tags: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    original_filename: str | None = None
    # Assigned by the store:
    version: int = 0
    sequence: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    asset_id: str = ""
    version_id: str = ""

    @property
    def key(self) -> ResourceKey:
        return (self.resource_type, self.delivery_type, self.public_id)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def etag(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()

    @property
    def folder(self) -> str:
        return self.public_id.rsplit("/", 1)[0] if "/" in self.public_id else ""


@dataclass(frozen=True)
class Page:
    resources: list[StoredResource]
    next_cursor: str | None


def encode_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{sequence}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not text.startswith("seq:") or not text[4:].isdigit():
        return None
    return int(text[4:])


class ResourceStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._resources: dict[ResourceKey, StoredResource] = {}
        self._last_version = 0
        self._last_sequence = 0

    def put(self, resource: StoredResource) -> StoredResource:
        """Store (or replace) an asset; it gets a fresh version, greater than any handed out before."""
        with self._lock:
            now = self._clock()
            # Cloudinary versions are upload timestamps; two uploads in one second still differ.
            self._last_version = max(int(now), self._last_version + 1)
            self._last_sequence += 1
            previous = self._resources.get(resource.key)
            stored = replace(
                resource,
                version=self._last_version,
                sequence=self._last_sequence,
                created_at=datetime.fromtimestamp(now, UTC).replace(microsecond=0),
                asset_id=previous.asset_id if previous else secrets.token_hex(16),
                version_id=secrets.token_hex(16),
            )
            self._resources[stored.key] = stored
            return stored

    def get(self, resource_type: str, delivery_type: str, public_id: str) -> StoredResource | None:
        with self._lock:
            return self._resources.get((resource_type, delivery_type, public_id))

    def delete(self, resource_type: str, delivery_type: str, public_id: str) -> bool:
        with self._lock:
            return self._resources.pop((resource_type, delivery_type, public_id), None) is not None

    def delete_many(self, resources: Iterable[StoredResource]) -> None:
        with self._lock:
            for resource in resources:
                self._resources.pop(resource.key, None)

    def all(self) -> list[StoredResource]:
        with self._lock:
            return sorted(self._resources.values(), key=lambda resource: resource.sequence)

    def select(
        self,
        resource_type: str | None = None,
        delivery_type: str | None = None,
        prefix: str = "",
        tag: str | None = None,
    ) -> list[StoredResource]:
        return [
            resource
            for resource in self.all()
            if (resource_type is None or resource.resource_type == resource_type)
            and (delivery_type is None or resource.delivery_type == delivery_type)
            and resource.public_id.startswith(prefix)
            and (tag is None or tag in resource.tags)
        ]

    def page(
        self, matching: list[StoredResource], max_results: int, cursor: str | None, newest_first: bool
    ) -> Page:
        """One page of ``matching``, ordered by creation; the cursor names the last asset served."""
        ordered = sorted(matching, key=lambda resource: resource.sequence, reverse=newest_first)
        if cursor is not None:
            after = decode_cursor(cursor)
            if after is None:
                raise ValueError(cursor)
            ordered = [
                resource
                for resource in ordered
                if (resource.sequence < after if newest_first else resource.sequence > after)
            ]
        served = ordered[:max_results]
        more = len(ordered) > max_results
        return Page(served, encode_cursor(served[-1].sequence) if more and served else None)

    def clear(self) -> None:
        with self._lock:
            self._resources.clear()


@dataclass
class PartialUpload:
    total_size: int
    # Fixed by the first chunk: later chunks resend the public_id the first answer carried (plus the
    # folder again), so recomputing it per chunk would nest the folder.
    public_id: str
    parts: dict[int, bytes] = field(default_factory=dict)

    def received(self) -> int:
        return sum(len(part) for part in self.parts.values())


@dataclass(frozen=True)
class ChunkProgress:
    public_id: str
    received: int
    assembled: bytes | None


class ChunkAssembler:
    """Collects ``upload_large`` chunks by X-Unique-Upload-Id until the byte ranges cover the file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uploads: dict[str, PartialUpload] = {}

    def add(self, upload_id: str, start: int, total_size: int, chunk: bytes, public_id: str) -> ChunkProgress:
        with self._lock:
            upload = self._uploads.setdefault(upload_id, PartialUpload(total_size, public_id))
            upload.parts[start] = chunk
            received = upload.received()
            if received < upload.total_size:
                return ChunkProgress(upload.public_id, received, None)
            del self._uploads[upload_id]
        assembled = b"".join(upload.parts[offset] for offset in sorted(upload.parts))
        return ChunkProgress(upload.public_id, received, assembled[: upload.total_size])

    def clear(self) -> None:
        with self._lock:
            self._uploads.clear()
