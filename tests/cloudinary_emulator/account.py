"""The emulated product environment: credentials, plan limits, and what every API module shares."""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from .errors import unauthorized
from .ratelimit import HourlyRateLimiter
from .store import ChunkAssembler, ResourceStore, StoredResource

MB = 1024 * 1024
RESOURCE_TYPES = ("image", "raw", "video")
DELIVERY_TYPES = ("upload", "private", "authenticated")


@dataclass
class MediaLimits:
    """Maximum file size per resource type; the defaults are Cloudinary's free plan."""

    image_max_size_bytes: int = 10 * MB
    raw_max_size_bytes: int = 10 * MB
    video_max_size_bytes: int = 100 * MB

    def for_type(self, resource_type: str) -> int:
        limit: int = getattr(self, f"{resource_type}_max_size_bytes")
        return limit


@dataclass
class Account:
    cloud_name: str
    api_key: str
    api_secret: str
    clock: Callable[[], float]
    limits: MediaLimits
    rate_limiter: HourlyRateLimiter
    allowed_signature_algorithms: tuple[str, ...]
    store: ResourceStore
    chunks: ChunkAssembler = field(default_factory=ChunkAssembler)
    base_url: str = ""
    delivered_bytes: int = 0
    request_count: int = 0
    _counter_lock: threading.Lock = field(default_factory=threading.Lock)

    def count_request(self, delivered_bytes: int = 0) -> None:
        with self._counter_lock:
            self.request_count += 1
            self.delivered_bytes += delivered_bytes

    def check_api_key(self, api_key: str | None) -> None:
        if not api_key:
            raise unauthorized("Must supply api_key")
        if not hmac.compare_digest(api_key, self.api_key):
            raise unauthorized(f"Unknown API key {api_key}")

    def check_basic_auth(self, authorization: str | None) -> None:
        """Admin API credentials (and the Upload API's documented Basic Authentication alternative)."""
        if not authorization or not authorization.lower().startswith("basic "):
            raise unauthorized("Must supply api_key")
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as error:
            raise unauthorized("Invalid authorization header") from error
        api_key, _, api_secret = decoded.partition(":")
        self.check_api_key(api_key)
        if not hmac.compare_digest(api_secret, self.api_secret):
            raise unauthorized("api_secret mismatch")

    def delivery_url(self, resource: StoredResource) -> str:
        """Where the emulator serves the asset: Cloudinary's path layout under the emulator's address."""
        filename = quote(resource.public_id, safe="/:_.-")
        if resource.format and resource.resource_type != "raw":
            filename += f".{resource.format}"
        return (
            f"{self.base_url}/{self.cloud_name}/{resource.resource_type}/"
            f"{resource.delivery_type}/v{resource.version}/{filename}"
        )


@dataclass
class CallRecord:
    endpoint: str
    method: str
    path: str
    status: int


@dataclass
class CallLog:
    counts: Counter[str] = field(default_factory=Counter)
    records: list[CallRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: CallRecord) -> None:
        with self.lock:
            self.counts[record.endpoint] += 1
            self.records.append(record)

    def clear(self) -> None:
        with self.lock:
            self.counts.clear()
            self.records.clear()
