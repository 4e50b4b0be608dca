"""Media in backups (ops/media/backup.py): the manifest, --with-media, restore --media / --media-only.

Real PostgreSQL, FileSystemStorage in a MEDIA_ROOT of the test, and the Cloudinary emulator behind
the real SDK and django-cloudinary-storage.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import cloudinary
import cloudinary.api
import cloudinary.uploader
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import CommandError
from pyrage import x25519

from api.demo_data import demo_image
from api.models import Announcement, Program
from api.storage import document_storage
from ops.backup import run_backup
from ops.media import backup as media_backup
from ops.media.backup import read_media_manifest, restore_media
from ops.repository.backups import configured_repository, default_namespace
from tests.cloudinary_emulator.emulator import CloudinaryEmulator
from tests.commands import fetch_status, run_command
from tests.mediaapp.models import Poster
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")


def program(slug: str, image: str, alias: str = "default") -> Program:
    return Program.objects.using(alias).create(
        name=slug, slug=slug, age_min_years=2, age_max_years=4, monthly_fee=Decimal("100"), image=image
    )


def announcement(attachment: str) -> Announcement:
    return Announcement.objects.create(
        title="Menu", body="-", published_at="2024-01-01T00:00Z", attachment=attachment
    )


def backup(*args: str) -> tuple[str, dict[str, Any]]:
    out, _ = run_command("backup", "--format", "json", *args)
    result = json.loads(out)
    return result["name"], result


def stored_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


# --- FileSystemStorage -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_media_manifest__filesystem_names_sizes_and_counts_without_names(backup_dir: Path) -> None:
    photo = default_storage.save("programs/ada-lovelace.jpg", ContentFile(b"x" * 1234))
    program("plain", photo)
    program("glued", "/media/" + photo)  # the same file, in a legacy shape: listed once
    program("gone", "programs/gone.jpg")
    program("external", "https://images.example.org/x.jpg")
    document = document_storage.save("announcements/menu.pdf", ContentFile(b"%PDF-1.4 menu"))
    announcement(document)

    name, result = backup()

    manifest = read_media_manifest(configured_repository(), name)
    entries = {(e.model, e.field, e.name): e for e in manifest.files}
    assert set(entries) == {
        ("api.Program", "image", photo),
        ("api.Program", "image", "programs/gone.jpg"),
        ("api.Announcement", "attachment", document),
    }
    assert entries[("api.Program", "image", photo)].bytes == 1234
    assert entries[("api.Program", "image", photo)].status == "present"
    assert entries[("api.Program", "image", photo)].storage == "filesystem"
    assert entries[("api.Program", "image", "programs/gone.jpg")].status == "missing"
    assert entries[("api.Announcement", "attachment", document)].bytes == len(b"%PDF-1.4 menu")
    media = result["media"]
    assert (media["files"], media["present"], media["missing"], media["external"]) == (3, 2, 1, 1)
    assert media["bytes"] == 1234 + len(b"%PDF-1.4 menu")
    assert media["api_calls"] == 0
    assert media["with_files"] is False
    assert media["parts"]
    assert all(p["key"].startswith(f"{name}/media-part-") for p in media["parts"])
    # manifest.json carries counts only: no stored name.
    text = (backup_dir / default_namespace() / name / "manifest.json").read_text()
    assert "ada-lovelace" not in text
    assert "menu.pdf" not in text
    assert json.loads(text)["summary"]["media"]["files"] == 3


@pytest.mark.django_db
def test_restore_media__filesystem_files_come_back_from_the_backup_and_a_second_run_uploads_nothing(
    settings: Any,
) -> None:
    photo = default_storage.save("programs/a.jpg", ContentFile(b"picture bytes"))
    program("a", photo)
    program("gone", "programs/gone.jpg")
    name, result = backup("--with-media")
    assert (result["media"]["stored_files"], result["media"]["not_stored"]) == (1, 0)
    default_storage.delete(photo)

    out, err = run_command("restore", name, "--media-only")

    assert (
        f"Media of {name}: 2 files referenced: 1 restored (1 from the backup, 0 from MEDIA_ROOT), "
        "0 already present, 1 unavailable, 1 already missing when the backup was taken." in out
    )
    assert "Media: 1 files could not be restored (-v 2 names them)." in err
    assert default_storage.open(photo).read() == b"picture bytes"

    again = restore_media(name=name)
    assert (again.restored, again.already_present, again.unavailable) == (0, 1, 1)


@pytest.mark.django_db
def test_restore_media__without_stored_files_uses_media_root_copies(settings: Any, tmp_path: Path) -> None:
    photo = default_storage.save("programs/b.jpg", ContentFile(b"b"))
    program("b", photo)
    name, _ = backup()
    media_root = Path(settings.MEDIA_ROOT)
    # The media folder moved away (a new disk) and back: the restore finds it where MEDIA_ROOT says.
    settings.MEDIA_ROOT = str(tmp_path / "empty-media")

    missing = restore_media(name=name)
    assert (missing.restored, missing.unavailable) == (0, 1)

    settings.MEDIA_ROOT = str(media_root)
    present = restore_media(name=name)
    assert (present.restored, present.already_present) == (0, 1)


@pytest.mark.django_db
def test_media__encrypted_backup_keeps_names_and_bytes_unreadable_without_the_key(
    backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))
    secret = b"SECRET-PAYLOAD-" * 50
    document = document_storage.save("announcements/child-allergy-list.pdf", ContentFile(secret))
    announcement(document)

    name, result = backup("--with-media")

    assert result["encrypted"] is True
    assert result["media"]["encrypted"] is True
    assert result["media"]["stored_files"] == 1
    everything = stored_bytes(backup_dir)
    assert b"child-allergy-list" not in everything
    assert b"SECRET-PAYLOAD" not in everything
    assert b"announcements/" not in everything
    # Without the key: a clear refusal; with it, the file comes back.
    document_storage.delete(document)
    with pytest.raises(CommandError, match="no age identity is configured"):
        run_command("restore", name, "--media-only")
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    out, _ = run_command("restore", name, "--media-only")
    assert "1 restored (1 from the backup" in out
    assert document_storage.open(document).read() == secret


@pytest.mark.django_db
def test_restore_media__dry_run_uploads_nothing_and_json_for_scripts() -> None:
    photo = default_storage.save("programs/d.jpg", ContentFile(b"d"))
    program("d", photo)
    name, _ = backup("--with-media")
    default_storage.delete(photo)

    out, _ = run_command("restore", name, "--media-only", "--dry-run", "--format", "json")

    media = json.loads(out)["media"]
    assert (media["dry_run"], media["restored"], media["from_backup"]) == (True, 1, 1)
    assert not default_storage.exists(photo)
    with pytest.raises(CommandError, match="--dry-run goes with --media-only") as raised:
        run_command("restore", name, "--dry-run")
    assert raised.value.returncode == 2


@pytest.mark.django_db
def test_backup_verify__checks_the_media_stream_too(backup_dir: Path) -> None:
    photo = default_storage.save("programs/v.jpg", ContentFile(b"v" * 100))
    program("v", photo)
    name, _ = backup("--with-media")

    out, _ = run_command("backup", "--verify", name)
    assert "every checksum matches; media: 1 files listed, 1 stored." in out

    (part,) = sorted((backup_dir / default_namespace() / name).glob("media-part-*"))
    data = bytearray(part.read_bytes())
    data[-40] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(
        CommandError, match=r"Part .*media-part-00000 of the media stream of backup .* does not match"
    ) as raised:
        run_command("backup", "--verify", name)
    assert raised.value.returncode == 1


def test_media_manifest__sqlite_database(scratch: ScratchDatabases) -> None:
    alias = scratch.sqlite()
    photo = default_storage.save("programs/e.jpg", ContentFile(b"eee"))
    program("e", photo, alias=alias)

    result = run_backup(alias, with_media=True)

    assert result.media is not None
    assert (result.media["files"], result.media["stored_files"], result.media["bytes"]) == (1, 1, 3)
    (entry,) = read_media_manifest(configured_repository(alias), result.name).files
    assert (entry.model, entry.field, entry.name) == ("api.Program", "image", photo)


@pytest.mark.django_db
def test_media__passphrase_encrypted_backup_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "correct horse battery staple")
    photo = default_storage.save("programs/p.jpg", ContentFile(b"passphrase"))
    program("p", photo)
    name, result = backup("--with-media")
    assert result["media"]["encrypted"] is True
    default_storage.delete(photo)

    assert restore_media(name=name).restored == 1
    assert default_storage.open(photo).read() == b"passphrase"


def test_restore__database_and_media_together(scratch: ScratchDatabases, settings: Any) -> None:
    # Another database's backup: shared through one namespace (each database has its own by default).
    settings.OPS = {**settings.OPS, "BACKUP_NAMESPACE": "shared"}
    source, target = scratch.postgres(), scratch.postgres()
    photo = default_storage.save("programs/c.jpg", ContentFile(b"c"))
    program("c", photo, alias=source)
    result = run_backup(source, with_media=True)
    default_storage.delete(photo)

    out, _ = run_command("restore", result.name, "--database", target, "--no-input", "--media")

    assert f"Restored {result.name} into " in out
    assert "1 restored (1 from the backup" in out
    assert Program.objects.using(target).get().image.name == photo
    assert default_storage.exists(photo)


def test_restore__media_needs_a_repository_backup(tmp_path: Path) -> None:
    archive = tmp_path / "a.kidoo-backup"
    archive.write_bytes(b"x")
    with pytest.raises(CommandError, match="read a backup in the repository") as raised:
        run_command("restore", str(archive), "--media")
    assert raised.value.returncode == 2


def test_backup__with_media_to_a_file_is_misuse(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--with-media stores the files beside a backup") as raised:
        run_command("backup", "-o", str(tmp_path / "x"), "--with-media")
    assert raised.value.returncode == 2


# --- Cloudinary (emulator) ----------------------------------------------------------------------------


def cloud_rows() -> dict[str, str]:
    """An image, a raw document and the SDK's own field, uploaded the way the site uploads them."""
    image = default_storage.save("programs/cloud.jpg", ContentFile(demo_image("cloud"), name="cloud.jpg"))
    program("cloud", image)
    program("legacy-url", default_storage.url(image))  # the same file, stored as a full URL
    document = document_storage.save("announcements/menu.pdf", ContentFile(b"%PDF-1.4 menu"))
    announcement(document)
    sdk = cloudinary.uploader.upload(demo_image("sdk"), folder="posters")
    # What CloudinaryField stores: resource type, delivery type, version, public_id and format.
    value = f"image/upload/v{sdk['version']}/{sdk['public_id']}.{sdk['format']}"
    Poster.objects.create(picture="", leaflet=None, sdk_image=value)
    return {"image": image, "document": document, "sdk": sdk["public_id"], "sdk_value": value}


def public_ids(names: dict[str, str]) -> set[str]:
    return {names["image"], names["document"], names["sdk"]}


@pytest.mark.django_db
def test_media_manifest__cloudinary_public_ids_versions_bytes_at_one_admin_call_per_type(
    cloudinary_settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    names = cloud_rows()
    admin_before = cloudinary_emulator.calls["admin"]

    name, result = backup()

    spent = cloudinary_emulator.calls["admin"] - admin_before
    media = result["media"]
    assert media["api_calls"] == spent
    # One resources_by_ids call per (resource type, delivery type): image/upload and raw/upload.
    assert spent == 2
    entries = {e.name: e for e in read_media_manifest(configured_repository(), name).files}
    image = entries[names["image"]]
    resource = cloudinary_emulator.resource(names["image"])
    assert resource is not None
    assert (image.public_id, image.resource_type, image.type) == (names["image"], "image", "upload")
    assert (image.version, image.bytes, image.format) == (resource.version, resource.size, "jpg")
    assert image.storage == "cloudinary_storage"
    document = entries[names["document"]]
    assert (document.resource_type, document.bytes) == ("raw", len(b"%PDF-1.4 menu"))
    sdk = entries[names["sdk_value"]]
    assert (sdk.storage, sdk.public_id, sdk.status) == ("cloudinary_field", names["sdk"], "present")
    assert (media["files"], media["present"]) == (3, 3)


@pytest.mark.django_db
def test_media_manifest__hundreds_of_files_cost_one_listing(
    cloudinary_settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    for number in range(250):
        cloudinary_emulator.seed_resource(
            f"media/programs/p{number}", demo_image("tiny", (8, 8)), resource_type="image", format="jpg"
        )
        program(f"p{number}", f"media/programs/p{number}")
    program("gone", "media/programs/gone")

    _, result = backup()

    assert cloudinary_emulator.calls["admin"] == result["media"]["api_calls"] == 1
    assert (result["media"]["present"], result["media"]["missing"]) == (250, 1)


@pytest.mark.django_db
def test_restore_media__deleted_cloudinary_folder_comes_back_and_urls_answer(
    cloudinary_settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    names = cloud_rows()
    name, result = backup("--with-media")
    assert result["media"]["stored_files"] == 3
    assert result["media"]["stored_bytes"] == result["media"]["bytes"]
    # Someone deletes the media folder (and the SDK's uploads) in the Cloudinary console.
    cloudinary_emulator.account.store.delete_many(cloudinary_emulator.resources())
    assert fetch_status(default_storage.url(names["image"])) == 404
    uploads_before = cloudinary_emulator.calls["upload"]

    out, _ = run_command("restore", name, "--media-only")

    assert "3 restored (3 from the backup, 0 from MEDIA_ROOT), 0 already present, 0 unavailable" in out
    assert cloudinary_emulator.calls["upload"] - uploads_before == 3
    assert fetch_status(default_storage.url(names["image"])) == 200
    assert fetch_status(document_storage.url(names["document"])) == 200
    assert fetch_status(Poster.objects.get().sdk_image.url) == 200
    assert cloudinary_emulator.resource_bytes(names["image"]) == demo_image("cloud")

    # Idempotent: nothing is missing, nothing is uploaded.
    again = restore_media(name=name)
    assert (again.restored, again.already_present) == (0, 3)
    assert cloudinary_emulator.calls["upload"] - uploads_before == 3
    assert again.api_calls == 2


@pytest.mark.django_db
def test_restore_media__move_to_a_new_cloudinary_account(
    cloudinary_settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    names = cloud_rows()
    name, _ = backup("--with-media")

    with CloudinaryEmulator(
        cloud_name="kidoo-new-account", api_key="999988887777666", api_secret="another-secret"
    ) as new_account:
        cloudinary.config(**new_account.sdk_config())

        result = restore_media(name=name)

        assert (result.restored, result.from_backup, result.unavailable) == (3, 3, 0)
        assert {r.public_id for r in new_account.resources()} == public_ids(names)
        url = default_storage.url(names["image"])
        assert url.startswith(f"{new_account.base_url}/kidoo-new-account/")
        assert fetch_status(url) == 200
        assert fetch_status(document_storage.url(names["document"])) == 200
        assert fetch_status(Poster.objects.get().sdk_image.url) == 200
        assert restore_media(name=name).restored == 0


@pytest.mark.django_db
def test_backup__cloudinary_unreachable_still_backs_up_the_database_and_says_media_is_unchecked(
    cloudinary_settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    names = cloud_rows()
    cloudinary_emulator.inject_fault("http_503", endpoints=["admin", "download"], times=1000)

    out, err = run_command("backup", "--with-media")

    assert out.startswith("Backup ")
    # Three attempts (retried with backoff), each counted: failed calls are spent all the same.
    assert "; media: 3 files referenced (0 B; 3 unchecked), 0 stored; 3 Admin API calls." in out
    assert cloudinary_emulator.calls["admin"] == 3
    assert "Media: Cloudinary's Admin API could not be reached" in err
    assert "3 media files could not be read and are listed but not stored; downloads stopped" in err
    (backup_info,) = configured_repository().backups()
    assert backup_info.holds_data
    entries = read_media_manifest(configured_repository(), backup_info.name).files
    assert {e.name for e in entries} == {names["image"], names["document"], names["sdk_value"]}
    assert {e.status for e in entries} == {"unchecked"}


@pytest.mark.django_db
def test_backup__admin_api_allowance_spent_records_media_unchecked(
    cloudinary_settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    cloud_rows()
    cloudinary_emulator.admin_rate_limit = 1
    cloudinary.api.resources()  # the site spent the hour's allowance

    out, err = run_command("backup")

    assert "; media: 3 files referenced (0 B; 3 unchecked)." in out
    assert "Media: Cloudinary's Admin API allowance ran out after 0 calls" in err
    assert cloudinary_emulator.calls["admin"] == 2  # the site's call and the one refused with 420


def test_restore__database_restored_even_when_the_media_step_cannot_reach_cloudinary(
    scratch: ScratchDatabases,
    cloudinary_settings: Any,
    cloudinary_emulator: CloudinaryEmulator,
    settings: Any,
) -> None:
    # Another database's backup: shared through one namespace (each database has its own by default).
    settings.OPS = {**settings.OPS, "BACKUP_NAMESPACE": "shared"}
    source, target = scratch.postgres(), scratch.postgres()
    image = default_storage.save("programs/f.jpg", ContentFile(demo_image("f"), name="f.jpg"))
    program("f", image, alias=source)
    result = run_backup(source, with_media=True)
    cloudinary_emulator.inject_fault("http_503", endpoints=["admin"], times=1000)

    out, err = run_command("restore", result.name, "--database", target, "--no-input", "--media")

    assert f"Restored {result.name} into " in out
    assert "The database was restored, but the media step failed" in err
    assert f"Run `restore {result.name} --media-only` to retry it." in err
    assert Program.objects.using(target).get().image.name == image


@pytest.mark.django_db
def test_media__a_database_without_media_writes_no_media_stream(backup_dir: Path) -> None:
    program("no-picture", "")

    name, result = backup()

    assert (result["media"]["files"], result["media"]["parts"]) == (0, [])
    assert not list((backup_dir / default_namespace() / name).glob("media-part-*"))
    assert read_media_manifest(configured_repository(), name).files == []
    assert restore_media(name=name).files == 0
    out, _ = run_command("backup", "--verify", name)
    assert "; media: 0 files listed, 0 stored." in out


@pytest.mark.django_db
def test_restore_media__unsafe_manifest_entries_are_skipped_and_reported_the_rest_restored(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = default_storage.save("programs/safe.jpg", ContentFile(b"safe bytes"))
    program("safe", photo)
    real_write_stream = media_backup._write_stream

    def crafted_manifest(sink: Any, entries: Any, *args: Any) -> None:
        # What someone with write access to the repository could put in a manifest.
        crafted = [
            dataclasses.replace(entries[0], name=name, value=None)
            for name in ("../outside.txt", "/etc/kidoo-owned", "programs/../../up.txt")
        ]
        real_write_stream(sink, [*entries, *crafted], *args)

    monkeypatch.setattr(media_backup, "_write_stream", crafted_manifest)
    name, _ = backup("--with-media")
    monkeypatch.undo()
    default_storage.delete(photo)

    out, err = run_command("restore", name, "--media-only", "-v", "2")

    assert "1 restored (1 from the backup, 0 from MEDIA_ROOT)" in out
    assert "3 skipped as unsafe (names outside the media storage)" in out
    assert "api.Program.image '../outside.txt': skipped, its path leads outside the media storage" in err
    assert "Media: 3 files could not be restored." in err
    assert default_storage.open(photo).read() == b"safe bytes"
    assert not (Path(settings.MEDIA_ROOT).parent / "outside.txt").exists()
    result = restore_media(name=name)
    assert (result.unsafe, result.already_present, result.restored) == (3, 1, 0)
