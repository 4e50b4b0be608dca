"""`backup --list` and `backup --verify` (ops/repository/listing.py, verify.py), locally and on Cloudinary."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from pyrage import x25519

from ops.repository.backups import configured_repository, default_namespace
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.commands import failing_command, run_command
from tests.fidelity import models as fm
from tests.fidelity.data import fingerprint
from tests.ops_databases import ScratchDatabases


def with_data(alias: str, tags: int = 3) -> str:
    User.objects.db_manager(alias).create_user("ada", "ada@example.org", "pw")
    fm.Tag.objects.using(alias).bulk_create(fm.Tag(name=f"tag-{n}") for n in range(tags))
    return alias


@pytest.fixture
def age_keys(monkeypatch: pytest.MonkeyPatch) -> x25519.Identity:
    """Backups encrypted to a recipient; the identity is in the environment, as for a restore."""
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    return identity


@pytest.fixture
def cloudinary_backups(settings: Any, cloudinary_emulator: CloudinaryEmulator) -> CloudinaryEmulator:
    settings.OPS = {**getattr(settings, "OPS", {}), "BACKUP_REPOSITORY": "cloudinary"}
    return cloudinary_emulator


def flip_a_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.usefixtures("backup_dir")
def test_list__text_table_of_the_backups(scratch: ScratchDatabases) -> None:
    alias = with_data(scratch.postgres())
    run_command("backup", database=alias, reason="daily", verbosity=0)
    User.objects.db_manager(alias).all().delete()
    fm.Tag.objects.using(alias).all().delete()
    run_command("backup", database=alias, reason="pre-deploy", force=True, verbosity=0)
    empty, daily = configured_repository(alias).backups()

    out, _ = run_command("backup", database=alias, list=True)

    header, first, second, summary = out.splitlines()
    assert header.split() == [
        *["NAME", "CREATED", "(UTC)", "SIZE", "TABLES", "ROWS"],
        *["KIND", "SIGNED", "ENCRYPTED", "DATA"],
    ]
    assert first.startswith(empty.name)
    assert first.split()[-2:] == ["NO", "EMPTY"]
    assert second.startswith(daily.name)
    assert second.split()[-2:] == ["NO", "yes"]
    assert f" {daily.summary['rows']:,} " in second
    assert summary.startswith("2 backup(s) (1 of an empty database) in the local folder")


@pytest.mark.usefixtures("backup_dir")
def test_list__json_for_scripts_and_an_empty_repository(scratch: ScratchDatabases, age_keys: Any) -> None:
    alias = with_data(scratch.postgres())
    assert run_command("backup", database=alias, list=True)[0].startswith("No backups in the local folder")
    assert json.loads(run_command("backup", database=alias, list=True, format="json")[0]) == []
    backup = json.loads(run_command("backup", database=alias, format="json")[0])

    [listed] = json.loads(run_command("backup", database=alias, list=True, format="json")[0])

    assert listed["name"] == backup["name"]
    assert listed["encrypted"] is True
    assert listed["encryption"] == "age-x25519"
    assert listed["holds_data"] is True
    assert (listed["tables"], listed["rows"], listed["size"]) == (
        backup["tables"],
        backup["rows"],
        backup["size"],
    )
    assert listed["reason"] == "manual"


@pytest.mark.usefixtures("backup_dir")
def test_verify__intact_encrypted_backup(scratch: ScratchDatabases, age_keys: Any) -> None:
    alias = with_data(scratch.postgres())
    name = json.loads(run_command("backup", database=alias, format="json")[0])["name"]

    out, _ = run_command("backup", database=alias, verify=name)
    latest = json.loads(run_command("backup", "--verify", "--latest", database=alias, format="json")[0])

    assert out.startswith(f"Backup {name} is intact: 1 part(s)")
    assert "encrypted, " in out
    assert "every checksum matches" in out
    assert latest["name"] == name
    assert latest["ok"] is True
    assert latest["encrypted"] is True


@pytest.mark.usefixtures("backup_dir")
def test_verify__damaged_part_exits_1_and_leaves_the_database_alone(
    scratch: ScratchDatabases, backup_dir: Path
) -> None:
    alias = with_data(scratch.postgres())
    run_command("backup", database=alias, verbosity=0)
    [backup] = configured_repository(alias).backups()
    flip_a_byte(backup_dir / default_namespace(alias) / backup.name / "part-00000")
    before = fingerprint(alias)

    error = failing_command("backup", database=alias, verify=backup.name)

    assert error.returncode == 1
    assert f"Part {backup.name}/part-00000 of backup {backup.name} does not match its checksum" in str(error)
    assert fingerprint(alias) == before


@pytest.mark.usefixtures("backup_dir")
def test_verify__damage_inside_the_archive_is_caught_by_its_own_checksums(
    scratch: ScratchDatabases, backup_dir: Path
) -> None:
    alias = with_data(scratch.postgres())
    run_command("backup", database=alias, verbosity=0)
    [backup] = configured_repository(alias).backups()
    # Damage the archive and make the repository's part checksum agree: only the archive's own
    # checksums can tell now (a copy damaged before it was uploaded, say).
    part = backup_dir / default_namespace(alias) / backup.name / "part-00000"
    flip_a_byte(part, at=len(part.read_bytes()) // 2)
    manifest_path = backup_dir / default_namespace(alias) / backup.name / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["parts"][0]["sha256"] = hashlib.sha256(part.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))

    error = failing_command("backup", database=alias, verify=backup.name)

    assert error.returncode == 1
    assert f"Backup {backup.name}" in str(error)
    assert "damaged" in str(error) or "checksum" in str(error)


@pytest.mark.usefixtures("backup_dir")
def test_verify__wrong_or_missing_identity_is_a_clear_error(
    scratch: ScratchDatabases, age_keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = with_data(scratch.postgres())
    name = json.loads(run_command("backup", database=alias, format="json")[0])["name"]

    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(x25519.Identity.generate()))
    wrong = failing_command("backup", database=alias, verify=name)
    monkeypatch.delenv("BACKUP_AGE_IDENTITY")
    missing = failing_command("backup", database=alias, verify=name)

    assert wrong.returncode == 1
    assert "could not be decrypted: the age identity does not match" in str(wrong)
    assert missing.returncode == 2
    assert "no age identity is configured" in str(missing)
    assert "AGE-SECRET-KEY" not in str(wrong) + str(missing)


@pytest.mark.usefixtures("backup_dir")
def test_verify__unknown_name_and_misuse(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()
    unknown = failing_command("backup", database=alias, verify="20200101T000000Z-nothing-0000")
    assert unknown.returncode == 1
    assert "No complete backup named 20200101T000000Z-nothing-0000" in str(unknown)
    for args in (
        ["--verify"],
        ["--verify", "x", "--latest"],
        ["--latest"],
        ["--verify", "x", "--list"],
        ["--include-empty"],
        ["--verify", "x", "--include-empty"],
    ):
        assert failing_command("backup", *args, database=alias).returncode == 2


def test_verify__on_cloudinary_a_replaced_part_is_caught(
    scratch: ScratchDatabases, cloudinary_backups: CloudinaryEmulator, age_keys: Any
) -> None:
    emulator = cloudinary_backups
    emulator.limits.raw_max_size_bytes = 20_000
    alias = with_data(scratch.postgres(), tags=4000)
    name = json.loads(run_command("backup", database=alias, format="json")[0])["name"]
    assert run_command("backup", database=alias, verify=name)[0].startswith(f"Backup {name} is intact: ")
    info = configured_repository(alias).info(name)
    assert len(info.parts) > 1
    public_id = f"ops-backups/{default_namespace(alias)}/{name}/part-00001"
    original = emulator.resource_bytes(public_id, "raw", "private")
    emulator.seed_resource(public_id, original[:-1] + bytes([original[-1] ^ 1]), delivery_type="private")
    before = fingerprint(alias)

    error = failing_command("backup", database=alias, verify=name)

    assert error.returncode == 1
    assert f"Part {name}/part-00001 of backup {name} does not match its checksum" in str(error)
    assert fingerprint(alias) == before
