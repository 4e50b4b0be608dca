"""ops.repository.backups: named backups as checksummed parts with a manifest written last."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519

from ops.errors import OpsConfigurationError
from ops.repository.backups import (
    BackupNotFound,
    BackupRepository,
    CorruptBackup,
    configured_repository,
    default_namespace,
    new_backup_name,
)
from ops.repository.encryption import (
    EncryptionKeys,
    decrypting,
    decryption_identities,
    encrypting,
    prepare_encryption,
)
from ops.repository.stores import CloudinaryStore, LocalFolderStore, RetryPolicy
from tests.cloudinary_emulator import CloudinaryEmulator


def write_backup(repository: BackupRepository, data: bytes, *, reason: str = "test", **summary: Any) -> str:
    name = new_backup_name(reason)
    with repository.create(name) as backup:
        for start in range(0, len(data), 7000):
            backup.write(data[start : start + 7000])
        backup.summary.update(summary)
    return name


def read_back(repository: BackupRepository, name: str) -> bytes:
    return b"".join(repository.read_parts(repository.info(name)))


def test_new_backup_name__sortable_unique_and_safe() -> None:
    moment = dt.datetime(2026, 11, 28, 3, 15, tzinfo=dt.UTC)
    name = new_backup_name("Pre-deploy!", moment)
    assert name.startswith("20261128T031500Z-pre-deploy-")
    assert new_backup_name("x", moment) != new_backup_name("x", moment)
    assert new_backup_name("../../etc", moment).startswith("20261128T031500Z-etc-")


def test_create__parts_below_the_limit_and_manifest_last(tmp_path: Path) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path), part_size=10_000)
    data = os.urandom(45_500)
    name = write_backup(repository, data, tables=3, rows=10, holds_data=True)
    info = repository.info(name)
    assert [part.size for part in info.parts] == [10_000] * 4 + [5_500]
    assert info.size == len(data)
    assert info.summary == {"tables": 3, "rows": 10, "holds_data": True}
    assert read_back(repository, name) == data
    assert sorted(p.name for p in (tmp_path / name).iterdir())[-1] == "part-00004"


def test_create__a_failure_midway_leaves_nothing_listed(tmp_path: Path) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path), part_size=1000)
    name = new_backup_name("doomed")

    def interrupted_backup() -> None:
        with repository.create(name) as backup:
            backup.write(os.urandom(5000))
            raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        interrupted_backup()
    assert repository.backups(include_incomplete=True) == []
    assert list(tmp_path.iterdir()) == []


def test_backups__parts_without_a_manifest_are_incomplete_not_backups(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    repository = BackupRepository(store, part_size=1000)
    good = write_backup(repository, b"good", holds_data=True)
    # What a process killed while writing leaves behind.
    killed = new_backup_name("killed")
    store.put(f"{killed}/part-00000", b"partial")
    assert [b.name for b in repository.backups()] == [good]
    listed = {b.name: b for b in repository.backups(include_incomplete=True)}
    assert listed[killed].complete is False
    assert listed[good].complete is True


def test_latest__skips_backups_of_an_empty_database(tmp_path: Path) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path))
    with_data = write_backup(repository, b"data", holds_data=True)
    empty = write_backup(repository, b"empty", holds_data=False)
    assert repository.latest().name == with_data
    assert repository.latest(with_data=False).name == empty


def test_latest__none_is_a_clear_error(tmp_path: Path) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path))
    with pytest.raises(BackupNotFound, match=r"no complete backup in the local folder .*manage.py backup"):
        repository.latest()
    write_backup(repository, b"empty", holds_data=False)
    with pytest.raises(BackupNotFound, match=r"holds data .* all of an empty database.*--include-empty"):
        repository.latest()


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove"])
def test_read_parts__damaged_part_is_refused(tmp_path: Path, damage: str) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path), part_size=1000)
    name = write_backup(repository, os.urandom(3000))
    part = tmp_path / name / "part-00001"
    if damage == "flip":
        data = bytearray(part.read_bytes())
        data[10] ^= 0x40
        part.write_bytes(bytes(data))
    elif damage == "truncate":
        part.write_bytes(part.read_bytes()[:-1])
    else:
        part.unlink()
    with pytest.raises(CorruptBackup, match="part-00001"):
        read_back(repository, name)


def test_info__damaged_or_foreign_manifest_is_refused(tmp_path: Path) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path))
    name = write_backup(repository, b"x")
    (tmp_path / name / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(CorruptBackup, match=r"manifest of backup .* is damaged"):
        repository.info(name)
    (tmp_path / name / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptBackup):
        repository.info(name)
    with pytest.raises(BackupNotFound, match="backup --list"):
        repository.info("20200101T000000Z-nothing-0000")


def test_spooled__whole_stream_verified_in_a_temporary_file(tmp_path: Path) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path), part_size=4096)
    data = os.urandom(20_000)
    name = write_backup(repository, data)
    with repository.spooled(repository.info(name)) as spool:
        assert spool.read() == data


def test_encrypted_backup_through_cloudinary__private_parts_under_the_limit(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary_emulator.limits.raw_max_size_bytes = 100_000
    store = CloudinaryStore("ops-backups/kidoo", retry=RetryPolicy(first_delay=0, max_delay=0))
    repository = BackupRepository(store)
    identity = x25519.Identity.generate()
    prepared = prepare_encryption(EncryptionKeys(recipients=(identity.to_public(),)))
    data = os.urandom(350_000)
    name = new_backup_name("daily")
    with (
        repository.create(name, encryption="age-x25519") as backup,
        encrypting(backup, prepared.recipients) as plain,
    ):
        plain.write(data)

    resources = cloudinary_emulator.resources()
    assert {(r.resource_type, r.delivery_type) for r in resources} == {("raw", "private")}
    assert all(
        len(cloudinary_emulator.resource_bytes(r.public_id, "raw", "private")) < 100_000 for r in resources
    )
    info = repository.info(name)
    assert info.encrypted
    assert len(info.parts) == 4
    with repository.spooled(info) as spool, decrypting(spool, [identity]) as plaintext:
        assert hashlib.sha256(plaintext.read()).digest() == hashlib.sha256(data).digest()


def test_passphrase_backup__identity_stored_beside_the_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path))
    prepared = prepare_encryption(EncryptionKeys(passphrase="kidoo passphrase"))
    name = new_backup_name("manual")
    with (
        repository.create(
            name, encryption="age-passphrase", wrapped_identity=prepared.wrapped_identity
        ) as backup,
        encrypting(backup, prepared.recipients) as plain,
    ):
        plain.write(b"rows")
    info = repository.info(name)
    assert (tmp_path / name / "identity.age").read_bytes() == prepared.wrapped_identity
    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "kidoo passphrase")
    identities = decryption_identities(repository.wrapped_identity(info))
    with repository.spooled(info) as spool, decrypting(spool, identities) as plaintext:
        assert plaintext.read() == b"rows"


def test_configured_repository__local_by_default_cloudinary_when_configured(
    settings: Any, tmp_path: Path, cloudinary_emulator: CloudinaryEmulator
) -> None:
    settings.OPS = {"BACKUP_REPOSITORY": "local", "BACKUP_DIR": str(tmp_path / "b")}
    repository = configured_repository()
    assert isinstance(repository.store, LocalFolderStore)
    # One folder per database, as on Cloudinary (issue 14, finding 8).
    assert repository.store.root == tmp_path / "b" / default_namespace()

    settings.OPS = {}  # credentials are configured (the emulator): Cloudinary is the default
    repository = configured_repository()
    assert isinstance(repository.store, CloudinaryStore)
    assert repository.store.folder == f"ops-backups/{default_namespace()}"

    settings.OPS = {"BACKUP_REPOSITORY": "ftp"}
    with pytest.raises(OpsConfigurationError, match="use 'local', 'cloudinary' or 'storage:<alias>'"):
        configured_repository()


def test_default_namespace__database_name_or_setting(settings: Any) -> None:
    settings.OPS = {"BACKUP_NAMESPACE": "staging"}
    assert default_namespace() == "staging"
    settings.OPS = {}
    assert default_namespace("sqlite") == "kidoo"
    assert default_namespace() == default_namespace("default") != ""


def test_read_parts__streams_part_by_part(tmp_path: Path) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path), part_size=1000)
    name = write_backup(repository, os.urandom(10_000))
    parts = repository.read_parts(repository.info(name))
    assert len(next(parts)) == 1000
    assert isinstance(io.BytesIO(next(parts)).read(), bytes)
