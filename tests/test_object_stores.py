"""ops.repository.stores: a local folder, a Django storage alias, and Cloudinary (via the emulator)."""

from __future__ import annotations

import os
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cloudinary
import cloudinary.utils
import pytest

from ops.errors import OpsConfigurationError
from ops.repository.stores import (
    FREE_PLAN_RAW_MAX_BYTES,
    CloudinaryStore,
    DjangoStorageStore,
    LocalFolderStore,
    ObjectNotFound,
    ObjectStore,
    RetryPolicy,
    StoredObject,
    StoreError,
    check_key,
)
from tests.cloudinary_emulator import CloudinaryEmulator

NO_WAIT = RetryPolicy(attempts=6, first_delay=0.0, max_delay=0.0)


def exercise(store: ObjectStore) -> None:
    """The contract every store keeps."""
    store.put("b1/part-00000", b"first")
    store.put("b1/manifest.json", b"{}")
    store.put("b2/part-00000", b"x" * 1000)
    store.put("b1/part-00000", b"overwritten")
    assert store.get("b1/part-00000") == b"overwritten"
    assert sorted(store.list("b1/")) == [
        StoredObject("b1/manifest.json", 2),
        StoredObject("b1/part-00000", 11),
    ]
    assert {obj.key for obj in store.list()} == {"b1/part-00000", "b1/manifest.json", "b2/part-00000"}
    store.delete(["b1/part-00000", "b1/manifest.json"])
    assert [obj.key for obj in store.list()] == ["b2/part-00000"]
    with pytest.raises(ObjectNotFound):
        store.get("b1/part-00000")


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/abs", "a/../../b", "a//b", "", "a/./b", "name with space"]
)
def test_check_key__refuses_traversal_and_odd_names(key: str) -> None:
    with pytest.raises(OpsConfigurationError, match="not a valid backup object name"):
        check_key(key)


def test_local_folder__contract(tmp_path: Path) -> None:
    exercise(LocalFolderStore(tmp_path / "backups"))
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == ["b2"]


def test_local_folder__objects_are_private_and_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put("b/part", b"data")
    mode = stat.S_IMODE((tmp_path / "b" / "part").stat().st_mode)
    assert mode & 0o077 == 0
    assert os.listdir(tmp_path / "b") == ["part"]


def test_local_folder__unwritable_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match=r"Cannot write b/part .* Check that the folder is writable"):
        LocalFolderStore(tmp_path / "file").put("b/part", b"data")


def test_django_storage__contract(settings: Any, tmp_path: Path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "s3-lookalike")},
        },
    }
    exercise(DjangoStorageStore("backups", "kidoo/production"))
    assert (tmp_path / "s3-lookalike" / "kidoo" / "production" / "b2" / "part-00000").is_file()


def test_django_storage__unknown_alias_is_a_configuration_error() -> None:
    with pytest.raises(OpsConfigurationError, match="'nowhere', which is not in STORAGES"):
        DjangoStorageStore("nowhere", "")


def cloudinary_store(**kwargs: Any) -> CloudinaryStore:
    return CloudinaryStore("kidoo-backups/test", retry=NO_WAIT, timeout=5, **kwargs)


def test_cloudinary__contract(cloudinary_emulator: CloudinaryEmulator) -> None:
    exercise(cloudinary_store())


def test_cloudinary__objects_are_private_raw_resources(cloudinary_emulator: CloudinaryEmulator) -> None:
    cloudinary_store().put("b1/part-00000", b"personal data")
    (resource,) = cloudinary_emulator.resources()
    assert (resource.resource_type, resource.delivery_type) == ("raw", "private")
    assert resource.public_id == "kidoo-backups/test/b1/part-00000"
    plain_url = cloudinary.utils.cloudinary_url(resource.public_id, resource_type="raw", type="private")[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(plain_url, timeout=5)  # noqa: S310
    assert refused.value.code in (401, 404)
    plain_upload_url = cloudinary.utils.cloudinary_url(resource.public_id, resource_type="raw")[0]
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(plain_upload_url, timeout=5)  # noqa: S310


@pytest.mark.parametrize(
    "fault",
    ["http_500", "http_502", "http_503", "http_420", "http_429", "connection_reset", "truncated_body"],
)
@pytest.mark.parametrize("endpoint", ["upload", "download", "admin"])
def test_cloudinary__retries_every_fault_kind(
    cloudinary_emulator: CloudinaryEmulator, fault: str, endpoint: str
) -> None:
    store = cloudinary_store()
    store.put("b/part", b"payload")
    cloudinary_emulator.inject_fault(fault, endpoints=[endpoint], times=2)
    if endpoint == "upload":
        store.put("b/part2", b"payload2")
        assert store.get("b/part2") == b"payload2"
    elif endpoint == "download":
        assert store.get("b/part") == b"payload"
    else:
        assert [obj.key for obj in store.list("b/")] == ["b/part"]
    assert cloudinary_emulator.calls[endpoint] >= 3


def test_cloudinary__slow_responses_time_out_and_are_retried(cloudinary_emulator: CloudinaryEmulator) -> None:
    store = CloudinaryStore("kidoo-backups/test", retry=NO_WAIT, timeout=0.5)
    store.put("b/part", b"payload")
    cloudinary_emulator.inject_fault("slow", endpoints=["download"], times=1, delay_seconds=2.0)
    assert store.get("b/part") == b"payload"


def test_cloudinary__gives_up_after_its_attempts_with_a_clear_error(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary_emulator.inject_fault("http_503", endpoints=["upload"], times=100)
    with pytest.raises(StoreError, match="Uploading b/part failed on Cloudinary") as failed:
        cloudinary_store().put("b/part", b"payload")
    assert cloudinary.config().api_secret not in str(failed.value)
    assert cloudinary_emulator.calls["upload"] == NO_WAIT.attempts


def test_cloudinary__thirty_percent_faults_still_complete(cloudinary_emulator: CloudinaryEmulator) -> None:
    store = CloudinaryStore("kidoo-backups/test", retry=RetryPolicy(attempts=10, first_delay=0, max_delay=0))
    for kind, seed in (("http_503", 1), ("connection_reset", 2), ("http_420", 3)):
        cloudinary_emulator.inject_fault(kind, rate=0.1, seed=seed)
    for number in range(20):
        store.put(f"b/part-{number:05d}", bytes([number]) * 1000)
    assert len(list(store.list("b/"))) == 20
    for number in range(20):
        assert store.get(f"b/part-{number:05d}") == bytes([number]) * 1000


def test_cloudinary__listing_follows_next_cursor(cloudinary_emulator: CloudinaryEmulator) -> None:
    for number in range(1200):
        cloudinary_emulator.seed_resource(
            f"kidoo-backups/test/b/part-{number:05d}", b"x", resource_type="raw", delivery_type="private"
        )
    store = cloudinary_store()
    keys = [obj.key for obj in store.list("b/")]
    assert len(keys) == 1200
    assert len(set(keys)) == 1200
    assert store.admin_calls == 3


def test_cloudinary__object_size_limit_comes_from_the_account(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary_emulator.limits.raw_max_size_bytes = 2_000_000
    assert cloudinary_store().max_object_size() == 2_000_000
    cloudinary_emulator.inject_fault("http_500", endpoints=["admin"], times=100)
    assert cloudinary_store().max_object_size() == FREE_PLAN_RAW_MAX_BYTES


def test_cloudinary__wrong_credentials_are_a_configuration_error(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary.config(api_secret="not-the-secret")
    with pytest.raises(OpsConfigurationError, match="Cloudinary refused the credentials"):
        cloudinary_store().put("b/part", b"x")
    with pytest.raises(OpsConfigurationError, match="Cloudinary refused the credentials"):
        list(cloudinary_store().list())


def test_cloudinary__missing_object_is_not_found(cloudinary_emulator: CloudinaryEmulator) -> None:
    with pytest.raises(ObjectNotFound):
        cloudinary_store().get("b/none")
