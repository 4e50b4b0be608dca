"""pytest fixtures: the emulator (or, with CLOUDINARY_LIVE_URL set, the real Cloudinary) behind the SDK.

Registered from tests/conftest.py with ``pytest_plugins = ["tests.cloudinary_emulator.fixtures"]``.

- ``cloudinary_emulator_server`` (session): the running emulator.
- ``cloudinary_target`` (function): the SDK's global ``cloudinary.config()`` pointed at the emulator
  (state and faults reset) or at the live account; the previous configuration is restored after.
- ``cloudinary_emulator`` (function): like ``cloudinary_target`` but hands out the emulator for fault
  injection and inspection; such tests are skipped against the live service.
- ``cloudinary_settings`` (function): Django settings for django-cloudinary-storage (CLOUDINARY_STORAGE,
  STORAGES["default"]) aimed at the same target.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import cloudinary
import pytest

from .emulator import CloudinaryEmulator

LIVE_URL_VARIABLE = "CLOUDINARY_LIVE_URL"
MEDIA_STORAGE_BACKEND = "cloudinary_storage.storage.MediaCloudinaryStorage"


@dataclass(frozen=True)
class CloudinaryTarget:
    """Whatever the SDK talks to in this test: the emulator, or the live account."""

    cloud_name: str
    api_key: str
    api_secret: str
    sdk_config: dict[str, Any] = field(repr=False)
    emulator: CloudinaryEmulator | None = None

    @property
    def live(self) -> bool:
        return self.emulator is None

    def storage_settings(self) -> dict[str, Any]:
        return {
            "CLOUD_NAME": self.cloud_name,
            "API_KEY": self.api_key,
            "API_SECRET": self.api_secret,
            # django-cloudinary-storage forces secure=True unless told otherwise; the emulator is plain HTTP.
            "SECURE": self.live,
        }


def live_target(url: str) -> CloudinaryTarget:
    parts = urlsplit(url)
    if parts.scheme != "cloudinary" or not (parts.hostname and parts.username and parts.password):
        raise pytest.UsageError(
            f"{LIVE_URL_VARIABLE} must look like cloudinary://<api_key>:<api_secret>@<cloud>"
        )
    cloud_name, api_key, api_secret = parts.hostname, unquote(parts.username), unquote(parts.password)
    config = {
        "cloud_name": cloud_name,
        "api_key": api_key,
        "api_secret": api_secret,
        "secure": True,
        "upload_prefix": None,
        "cname": None,
    }
    return CloudinaryTarget(cloud_name, api_key, api_secret, config)


def emulator_target(emulator: CloudinaryEmulator) -> CloudinaryTarget:
    return CloudinaryTarget(
        emulator.cloud_name, emulator.api_key, emulator.api_secret, emulator.sdk_config(), emulator
    )


@pytest.fixture(scope="session")
def cloudinary_emulator_server() -> Iterator[CloudinaryEmulator]:
    if os.environ.get(LIVE_URL_VARIABLE):
        pytest.skip(f"{LIVE_URL_VARIABLE} is set: tests run against the real Cloudinary")
    with CloudinaryEmulator(cloud_name="kidoo-test-cloud") as emulator:
        yield emulator


@pytest.fixture
def cloudinary_target(request: pytest.FixtureRequest) -> Iterator[CloudinaryTarget]:
    config = cloudinary.config()
    saved = dict(config.__dict__)
    live_url = os.environ.get(LIVE_URL_VARIABLE)
    if live_url:
        target = live_target(live_url)
    else:
        emulator: CloudinaryEmulator = request.getfixturevalue("cloudinary_emulator_server")
        emulator.reset()
        target = emulator_target(emulator)
    cloudinary.config(**target.sdk_config)
    try:
        yield target
    finally:
        if target.emulator is not None:
            target.emulator.reset()
        # reset_config() may have swapped the global object during the test: restore whichever is current.
        current = cloudinary.config()
        current.__dict__.clear()
        current.__dict__.update(saved)


@pytest.fixture
def cloudinary_emulator(cloudinary_target: CloudinaryTarget) -> CloudinaryEmulator:
    if cloudinary_target.emulator is None:
        pytest.skip("emulator-only test (fault injection or inspection) skipped against the real Cloudinary")
    return cloudinary_target.emulator


@pytest.fixture
def cloudinary_settings(cloudinary_target: CloudinaryTarget, settings: Any) -> Iterator[CloudinaryTarget]:
    """Media storage through django-cloudinary-storage, aimed at the emulator (or the live account).

    cloudinary_storage.app_settings applies CLOUDINARY_STORAGE to the SDK's global config when first
    imported and again, by reloading itself, on every setting_changed for CLOUDINARY_STORAGE. The
    reload raises ImproperlyConfigured when the restored settings carry no credentials (as in this
    suite), so the receiver is connected only while the test runs and the SDK config is put back by
    ``cloudinary_target``.
    """
    from django.test.signals import setting_changed

    settings.CLOUDINARY_STORAGE = cloudinary_target.storage_settings()
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": MEDIA_STORAGE_BACKEND}}
    app_settings = importlib.import_module("cloudinary_storage.app_settings")
    app_settings = importlib.reload(app_settings)
    # app_settings only sets credentials and `secure`; the address comes from the target's config.
    cloudinary.config(**cloudinary_target.sdk_config)
    try:
        yield cloudinary_target
    finally:
        setting_changed.disconnect(app_settings.reload_settings)
