"""The public face: start/stop an emulated Cloudinary product environment and look inside it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

from .account import Account, CallLog, CallRecord, MediaLimits
from .faults import EndpointKind, FaultInjector, FaultKind, FaultRule
from .media import extension_of, sniff_image
from .ratelimit import HourlyRateLimiter
from .server import EmulatorHTTPServer
from .signatures import SUPPORTED_ALGORITHMS
from .store import ResourceStore, StoredResource

DEFAULT_ADMIN_RATE_LIMIT = 500


class CloudinaryEmulator:
    """An in-memory Cloudinary (Upload, Admin and delivery APIs) on 127.0.0.1, for the real SDK to talk to.

    >>> with CloudinaryEmulator() as emulator:
    ...     cloudinary.config(**emulator.sdk_config())
    """

    def __init__(
        self,
        cloud_name: str = "emulated-cloud",
        api_key: str = "111122223333444",
        api_secret: str = "emulator-api-secret",  # noqa: S107 - a throwaway test credential
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: MediaLimits | None = None,
        admin_rate_limit: int = DEFAULT_ADMIN_RATE_LIMIT,
        allowed_signature_algorithms: Sequence[str] = SUPPORTED_ALGORITHMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._initial_limits = limits or MediaLimits()
        self._default_rate_limit = admin_rate_limit
        self.account = Account(
            cloud_name=cloud_name,
            api_key=api_key,
            api_secret=api_secret,
            clock=clock,
            limits=MediaLimits(**vars(self._initial_limits)),
            rate_limiter=HourlyRateLimiter(admin_rate_limit, clock),
            allowed_signature_algorithms=tuple(allowed_signature_algorithms),
            store=ResourceStore(clock),
        )
        self.faults = FaultInjector()
        self._calls = CallLog()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = EmulatorHTTPServer(
            (self._host, self._requested_port), self.account, self.faults, self._calls
        )
        self._server = server
        self.account.base_url = f"http://{self._host}:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="cloudinary-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Addresses and client configuration

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def host_and_port(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host_and_port}"

    @property
    def cloud_name(self) -> str:
        return self.account.cloud_name

    @property
    def api_key(self) -> str:
        return self.account.api_key

    @property
    def api_secret(self) -> str:
        return self.account.api_secret

    def sdk_config(self) -> dict[str, Any]:
        """Keyword arguments for ``cloudinary.config(...)`` that point the SDK here.

        ``upload_prefix`` routes both the Upload and the Admin API (pycloudinary builds both URLs from
        it); ``cname`` with ``secure=False`` makes delivery URLs ``http://<host:port>/<cloud>/...``.
        """
        return {
            "cloud_name": self.cloud_name,
            "api_key": self.api_key,
            "api_secret": self.api_secret,
            "upload_prefix": self.base_url,
            "cname": self.host_and_port,
            "secure": False,
            "private_cdn": False,
            "secure_distribution": None,
            "cdn_subdomain": False,
        }

    def django_storage_settings(self) -> dict[str, Any]:
        """``CLOUDINARY_STORAGE`` for django-cloudinary-storage (SECURE False: it forces https otherwise)."""
        return {
            "CLOUD_NAME": self.cloud_name,
            "API_KEY": self.api_key,
            "API_SECRET": self.api_secret,
            "SECURE": False,
        }

    # Limits

    @property
    def limits(self) -> MediaLimits:
        return self.account.limits

    @property
    def admin_rate_limit(self) -> int:
        return self.account.rate_limiter.limit

    @admin_rate_limit.setter
    def admin_rate_limit(self, limit: int) -> None:
        self.account.rate_limiter.limit = limit

    # Faults

    def inject_fault(
        self,
        kind: FaultKind | str,
        *,
        endpoints: Iterable[EndpointKind | str] | None = None,
        rate: float | None = None,
        every: int | None = None,
        times: int | None = None,
        delay_seconds: float = 1.0,
        seed: int = 0,
    ) -> FaultRule:
        """Make matching calls fail. With no trigger given, the next matching call fails once.

        ``rate``: each matching call fails with this probability (``seed`` makes it repeatable);
        ``every``: every N-th matching call fails; ``times``: at most N failures (alone: the next N
        calls). ``endpoints`` limits the rule to upload/admin/delivery/download calls.
        """
        return self.faults.add(
            kind,
            endpoints=endpoints,
            rate=rate,
            every=every,
            times=times,
            delay_seconds=delay_seconds,
            seed=seed,
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    # Inspection

    @property
    def calls(self) -> Counter[str]:
        """Requests received so far, per endpoint kind ("upload", "admin", "delivery", "download")."""
        with self._calls.lock:
            return Counter(self._calls.counts)

    @property
    def call_log(self) -> list[CallRecord]:
        with self._calls.lock:
            return list(self._calls.records)

    def resources(
        self, resource_type: str | None = None, delivery_type: str | None = None, prefix: str = ""
    ) -> list[StoredResource]:
        return self.account.store.select(resource_type, delivery_type, prefix)

    def resource(
        self, public_id: str, resource_type: str = "image", delivery_type: str = "upload"
    ) -> StoredResource | None:
        return self.account.store.get(resource_type, delivery_type, public_id)

    def resource_bytes(
        self, public_id: str, resource_type: str = "image", delivery_type: str = "upload"
    ) -> bytes:
        resource = self.resource(public_id, resource_type, delivery_type)
        if resource is None:
            raise KeyError((resource_type, delivery_type, public_id))
        return resource.data

    def seed_resource(
        self,
        public_id: str,
        data: bytes,
        *,
        resource_type: str = "raw",
        delivery_type: str = "upload",
        format: str | None = None,
        tags: Iterable[str] = (),
    ) -> StoredResource:
        """Store an asset directly, without HTTP: fast set-up for listing and pagination tests."""
        image = sniff_image(data) if resource_type == "image" else None
        if resource_type == "image" and image is None:
            raise ValueError("image resources need PNG/JPEG/GIF/WebP/BMP bytes")
        chosen_format = format or (image.format if image else None)
        if chosen_format is None and resource_type != "raw":
            chosen_format = extension_of(public_id)
        return self.account.store.put(
            StoredResource(
                public_id=public_id,
                resource_type=resource_type,
                delivery_type=delivery_type,
                data=data,
                format=chosen_format,
                tags=tuple(tags),
                width=image.width if image else None,
                height=image.height if image else None,
            )
        )

    def reset(self) -> None:
        """Forget assets, partial chunked uploads, faults, call counts and rate-limit use; restore limits."""
        if self._server is not None:
            self._server.generation += 1
        self.account.store.clear()
        self.account.chunks.clear()
        self.faults.clear()
        self._calls.clear()
        self.account.rate_limiter.reset()
        self.account.rate_limiter.limit = self._default_rate_limit
        self.account.limits = MediaLimits(**vars(self._initial_limits))
        with self.account._counter_lock:
            self.account.delivered_bytes = 0
            self.account.request_count = 0
