"""normalize_media_urls end to end: PostgreSQL, FileSystemStorage and the Cloudinary emulator."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import cloudinary
import cloudinary.api
import cloudinary.uploader
import psycopg2
import pytest
import zstandard
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from pyrage import x25519

from api.demo_data import demo_image
from api.models import Announcement, Program
from api.storage import document_storage
from ops.errors import OpsConfigurationError, OpsError
from ops.media.repair import RepairOptions, ReportRow, UndoLog, repair_media
from ops.media.undo_logs import store_undo_log, undo_log_lines
from ops.repository.backups import BackupRepository, configured_repository, default_namespace
from ops.repository.encryption import AGE_MAGIC
from ops.repository.stores import LocalFolderStore
from tests.commands import fetch_status
from tests.mediaapp.models import Poster

pytestmark = pytest.mark.django_db


ENCRYPTION_VARIABLES = (
    "BACKUP_AGE_RECIPIENTS",
    "BACKUP_AGE_RECIPIENTS_FILE",
    "BACKUP_AGE_PASSPHRASE",
    "BACKUP_AGE_IDENTITY",
    "BACKUP_AGE_IDENTITY_FILE",
)


@pytest.fixture(autouse=True)
def undo_dir(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local write-ahead logs' folder; the backup repository is a local folder beside it."""
    settings.OPS = {
        **settings.OPS,
        "MEDIA_UNDO_DIR": str(tmp_path / "undo"),
        "BACKUP_REPOSITORY": "local",
        "BACKUP_DIR": str(tmp_path / "backups"),
    }
    for variable in ENCRYPTION_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "undo"


def stored_undo_key(output: str) -> str:
    match = re.search(r"Undo log: (undo/\S+) in the ", output)
    assert match is not None, output
    return match.group(1)


def program(slug: str, image: str) -> Program:
    return Program.objects.create(
        name=slug, slug=slug, age_min_years=2, age_max_years=4, monthly_fee=Decimal("100"), image=image
    )


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("normalize_media_urls", *args, stdout=out)
    return out.getvalue()


def images() -> dict[str, str]:
    return dict(Program.objects.values_list("slug", "image"))


# --- FileSystemStorage -------------------------------------------------------------------------------


@pytest.fixture
def disk_rows() -> None:
    program("plain", "programs/a.jpg")
    program("glued", "/media/programs/b.jpg")
    program("doubled", "media/media/programs/c.jpg")
    program("external", "https://images.example.org/x.jpg")
    program("unknown", "data:image/png;base64,AAAA")
    program("empty", "")
    Poster.objects.create(picture="/media/posters/p.jpg", leaflet=None)


def test_normalize__dry_run_reports_each_category_and_writes_nothing(disk_rows: None) -> None:
    before = images()

    output = run("--app", "api", "--app", "mediaapp")

    assert output.splitlines()[0].startswith(
        "Dry run on default: 6 media values in 10 fields: 1 canonical, 3 would fix, 0 broken, "
        "1 external, 1 unknown (3 empty skipped)"
    )
    assert "  e.g. would fix: api.Program.image pk=" in output
    assert "'/media/programs/b.jpg' -> programs/b.jpg (MEDIA_URL (/media/) glued in front)" in output
    assert "Nothing was written. Run with --apply to repair." in output
    assert images() == before


def test_normalize__apply_fixes_second_run_finds_nothing_and_undo_restores(
    disk_rows: None, undo_dir: Path
) -> None:
    output = run("--apply", "--no-input", "--app", "api", "--app", "mediaapp")

    assert "Fixed 3. Undo log: undo/normalize_media_urls-default-" in output
    assert images()["glued"] == "programs/b.jpg"
    assert images()["doubled"] == "media/programs/c.jpg"
    assert images()["external"] == "https://images.example.org/x.jpg"
    assert Poster.objects.get().picture.name == "posters/p.jpg"
    assert "0 would fix" in run("--app", "api", "--app", "mediaapp")

    # Stored in the backup repository; the local write-ahead log is gone once it is.
    log = stored_undo_key(output)
    assert log.endswith(".jsonl.zst")
    assert f" in the local folder {undo_dir.parent / 'backups' / default_namespace()}." in output
    assert list(undo_dir.iterdir()) == []
    lines = [json.loads(line) for line in undo_log_lines(log)]
    assert lines[0]["kind"] == "normalize_media_urls undo log"
    assert {(e["model"], e["field"], e["old"], e["new"]) for e in lines[1:]} >= {
        ("api.Program", "image", "/media/programs/b.jpg", "programs/b.jpg")
    }
    # Someone edits one repaired row after the repair: the undo leaves that edit alone.
    Program.objects.filter(slug="doubled").update(image="programs/new.jpg")

    assert "Would restore 2 of 3 values" in run("--undo", log)
    assert "Restored 2 of 3 values in default; 1 changed since the repair" in run(
        "--undo", log, "--apply", "--no-input"
    )
    assert images()["glued"] == "/media/programs/b.jpg"
    assert images()["doubled"] == "programs/new.jpg"
    assert Poster.objects.get().picture.name == "/media/posters/p.jpg"


def test_normalize__json_format_and_report_file(disk_rows: None, tmp_path: Path) -> None:
    report = tmp_path / "rows.csv"

    data = json.loads(run("--format", "json", "--report", str(report), "--model", "api.Program"))

    assert data["counts"] == {
        "canonical": 1,
        "fixable": 2,
        "broken": 0,
        "external": 1,
        "unknown": 1,
        "empty": 1,
    }
    assert data["applied"] is False
    rows = report.read_text().splitlines()
    assert rows[0] == "model,pk,field,old,new,category,reason"
    assert len(rows) == 1 + 5
    assert any(",/media/programs/b.jpg,programs/b.jpg,fixable," in row for row in rows)


def test_normalize__check_remote_never_rewrites_into_a_missing_file(settings: Any) -> None:
    default_storage.save("programs/here.jpg", ContentFile(b"x"))
    program("here", "/media/programs/here.jpg")
    program("gone", "/media/programs/gone.jpg")

    output = run("--check-remote", "--apply", "--no-input", "--model", "api.Program")

    assert "1 fixed, 1 broken" in output
    assert images() == {"here": "programs/here.jpg", "gone": "/media/programs/gone.jpg"}


def test_normalize__unknown_model_is_misuse() -> None:
    with pytest.raises(CommandError, match=r"No installed model 'api\.Nope'") as raised:
        run("--model", "api.Nope")
    assert raised.value.returncode == 2


def test_normalize__pages_and_batches_are_smaller_than_the_table() -> None:
    for number in range(25):
        program(f"p{number}", f"/media/programs/{number}.jpg" if number % 2 else f"programs/{number}.jpg")

    result = repair_media(RepairOptions(models=("api.Program",), apply=True, page_size=4, batch_size=3))

    assert (result.rows_scanned, result.fixed, result.counts["canonical"]) == (25, 12, 13)
    assert all(not name.startswith("/") for name in images().values())


@pytest.mark.django_db(transaction=True)
def test_normalize__concurrent_edit_during_apply_is_kept_and_reported() -> None:
    first = program("first", "/media/programs/1.jpg")
    program("second", "/media/programs/2.jpg")
    params = connection.get_connection_params()
    other = psycopg2.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    other.autocommit = True

    def edit_elsewhere(row: ReportRow) -> None:
        # Another session saves the first program between the scan's read and the batch's write.
        if row.pk == first.pk:
            with other.cursor() as cursor:
                cursor.execute(
                    "UPDATE api_program SET image = %s WHERE id = %s", ["programs/edited.jpg", row.pk]
                )

    try:
        result = repair_media(RepairOptions(models=("api.Program",), apply=True), on_row=edit_elsewhere)
    finally:
        other.close()

    assert (result.fixed, result.changed_concurrently) == (1, 1)
    assert images() == {"first": "programs/edited.jpg", "second": "programs/2.jpg"}
    log = list(undo_log_lines(str(result.undo_log)))
    assert len(log) == 2  # the header and the one write that happened


# --- the undo log in the backup repository ---------------------------------------------------------


def test_undo_log__in_the_repository_never_lists_or_prunes_as_a_backup(disk_rows: None) -> None:
    run("--apply", "--no-input", "--model", "api.Program")
    repository = configured_repository()

    assert [obj.key.split("/")[0] for obj in repository.store.list()] == ["undo"]
    # Prune works from this listing: what it does not show, it never deletes.
    assert repository.backups(include_incomplete=True) == []
    with pytest.raises(OpsConfigurationError, match="'undo' is reserved"), repository.create("undo"):
        pass


def test_undo_log__encrypted_to_the_backup_recipients_and_opened_with_the_identity(
    disk_rows: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))

    log = stored_undo_key(run("--apply", "--no-input", "--model", "api.Program"))

    assert log.endswith(".jsonl.zst.age")
    stored = configured_repository().store.get(log)
    assert stored.startswith(AGE_MAGIC)
    assert b"programs/b.jpg" not in stored
    # The server holds only the public key: an undo there is told where to put the identity.
    with pytest.raises(
        CommandError, match=r"no age identity is configured\. Set the secret key in BACKUP_AGE_IDENTITY"
    ):
        run("--undo", log)
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    assert "Would restore 2 of 2 values" in run("--undo", log)
    # A copy downloaded by hand is a local file like any other.
    downloaded = tmp_path / "downloaded.jsonl.zst.age"
    downloaded.write_bytes(stored)
    assert "Restored 2 of 2 values" in run("--undo", str(downloaded), "--apply", "--no-input")
    assert images()["glued"] == "/media/programs/b.jpg"


@pytest.mark.skipif(shutil.which("age") is None, reason="the age CLI is not installed")
def test_undo_log__the_age_cli_and_zstd_open_a_stored_log(
    disk_rows: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = x25519.Identity.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"{identity}\n")
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))
    log = stored_undo_key(run("--apply", "--no-input", "--model", "api.Program"))

    decrypted = subprocess.run(
        ["age", "-d", "-i", str(key_file)],
        input=configured_repository().store.get(log),
        capture_output=True,
        check=True,
    ).stdout

    text = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(decrypted)).read().decode()
    assert json.loads(text.splitlines()[0])["kind"] == "normalize_media_urls undo log"


def test_undo_log__passphrase_mode(disk_rows: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "correct horse battery staple")
    log = stored_undo_key(run("--apply", "--no-input", "--model", "api.Program"))
    assert log.endswith(".age")

    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "wrong")
    with pytest.raises(CommandError, match="The passphrase does not open the undo log"):
        run("--undo", log)
    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "correct horse battery staple")
    assert "Restored 2 of 2 values" in run("--undo", log, "--apply", "--no-input")


def test_undo_log__store_failure_keeps_the_local_file_and_warns(
    disk_rows: None, undo_dir: Path, settings: Any, tmp_path: Path
) -> None:
    # The repository's folder cannot be created: a file stands where its parent should be.
    (tmp_path / "not-a-folder").write_text("")
    settings.OPS = {**settings.OPS, "BACKUP_DIR": str(tmp_path / "not-a-folder" / "backups")}
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "normalize_media_urls", "--apply", "--no-input", "--model", "api.Program", stdout=out, stderr=err
    )

    (local,) = undo_dir.iterdir()
    assert f"Fixed 2. Undo log: {local}." in out.getvalue()
    assert "The undo log could not be stored in the local folder" in err.getvalue()
    assert f"It is kept at {local}: copy it somewhere safe" in err.getvalue()
    assert "Restored 2 of 2 values" in run("--undo", str(local), "--apply", "--no-input")


def test_undo_log__larger_than_the_store_limit_goes_in_verified_parts(tmp_path: Path) -> None:
    log = UndoLog(tmp_path / "normalize_media_urls-default-big.jsonl", "default")
    for number in range(300):
        log.record(
            "api.Program", "image", number, f"/media/p/{number * 7919 % 1000003}.jpg", f"p/{number}.jpg"
        )
    log.close()
    repository = BackupRepository(LocalFolderStore(tmp_path / "repo"), part_size=512)

    stored = store_undo_log(log.path, repository)

    assert stored.parts > 1
    keys = sorted(obj.key for obj in repository.store.list())
    assert keys[-1] == f"{stored.key}.parts"
    assert list(undo_log_lines(stored.key, repository=repository)) == log.path.read_text().splitlines(True)
    # A damaged part is refused, not half-applied.
    repository.store.put(f"{stored.key}.part-00001", b"x" * 512)
    with pytest.raises(OpsError, match="is damaged"):
        list(undo_log_lines(stored.key, repository=repository))


def test_undo_log__unknown_name_is_a_clear_error() -> None:
    with pytest.raises(
        CommandError, match=r"No undo log 'normalize_media_urls-x\.jsonl': it is neither a file"
    ):
        run("--undo", "normalize_media_urls-x.jsonl")
    with pytest.raises(
        CommandError, match=r"Cannot open the undo log /nowhere/x\.jsonl: there is no such file"
    ):
        run("--undo", "/nowhere/x.jsonl")


# --- Cloudinary (emulator) ----------------------------------------------------------------------------


@pytest.mark.slow
def test_normalize_on_cloudinary__repairs_every_shape_and_the_api_serves_working_urls(
    cloudinary_settings: Any, cloudinary_emulator: Any, settings: Any
) -> None:
    name = default_storage.save("programs/cloud.jpg", ContentFile(demo_image("cloud"), name="cloud.jpg"))
    url = default_storage.url(name)
    shapes = {
        "canonical": name,
        "url": url,
        "glued-url": "/media/" + url,
        "collapsed": "media/" + url.replace("://", ":/", 1),
        "encoded": "/media/" + url.replace("://", "%3A//", 1),
        "doubled": "media/" + name,
        "slash": "/" + name,
        "fs-era": "programs/old.jpg",
        "gone": "programs/gone.jpg",
        "other-account": "https://res.cloudinary.com/someone-else/image/upload/v1/x.jpg",
    }
    for slug, value in shapes.items():
        program(slug, value)
    # A file of the FileSystemStorage era, still on this disk but never uploaded.
    old = Path(settings.MEDIA_ROOT) / "programs" / "old.jpg"
    old.parent.mkdir(parents=True)
    old.write_bytes(demo_image("old"))
    document = document_storage.save("announcements/menu.pdf", ContentFile(b"%PDF-1.4 menu"))
    Announcement.objects.create(
        title="Menu", body="-", published_at="2024-01-01T00:00Z", attachment=document_storage.url(document)
    )
    sdk = cloudinary.uploader.upload(demo_image("sdk"), folder="posters")
    nested = default_storage.url(default_storage.url(url))
    Poster.objects.create(picture=nested, leaflet="media/media/" + document, sdk_image=sdk["secure_url"])
    admin_calls_before = cloudinary_emulator.calls["admin"]

    output = run(
        "--apply", "--check-remote", "--upload-missing", "--no-input", "--app", "api", "--app", "mediaapp"
    )

    assert "11 fixed, 1 broken, 1 external, 0 unknown" in output.splitlines()[0]
    assert "1 canonical" in output.splitlines()[0]
    calls = cloudinary_emulator.calls["admin"] - admin_calls_before
    assert f"; {calls} Admin API calls)" in output
    assert calls <= 4
    assert "1 uploaded from MEDIA_ROOT" in output
    repaired = images()
    for slug in ("url", "glued-url", "collapsed", "encoded", "doubled", "slash"):
        assert repaired[slug] == name, slug
    assert repaired["fs-era"].startswith("media/programs/old")
    assert repaired["gone"] == "programs/gone.jpg"
    assert repaired["other-account"] == shapes["other-account"]
    assert Announcement.objects.get().attachment.name == document
    poster = Poster.objects.get()
    assert (poster.picture.name, poster.leaflet.name) == (name, document)
    assert str(poster.sdk_image.public_id) == sdk["public_id"]

    # The second run finds nothing to fix.
    again = run("--check-remote", "--app", "api", "--app", "mediaapp")
    assert " 0 would fix, 1 broken" in again

    # The API answers with working URLs for every repaired row.
    client = Client()
    settings.ALLOWED_HOSTS = ["testserver"]
    programs = client.get("/api/programs/?page_size=100").json()["results"]
    served = {p["slug"]: p["image"] for p in programs}
    for slug in shapes:
        if slug not in ("gone", "other-account"):
            assert fetch_status(served[slug]) == 200, (slug, served[slug])
    (announcement,) = client.get("/api/announcements/").json()["results"]
    assert fetch_status(announcement["attachment"]) == 200
    assert fetch_status(poster.sdk_image.url) == 200


@pytest.mark.slow
def test_normalize_on_cloudinary__rate_limit_stops_with_a_resume_hint_then_resumes(
    cloudinary_settings: Any, cloudinary_emulator: Any, settings: Any
) -> None:
    settings.OPS = {**settings.OPS, "MEDIA_REMOTE_RESERVE_CALLS": 0}
    # 250 references spread over folders too sparse to list: 3 resources_by_ids calls.
    for number in range(250):
        cloudinary_emulator.seed_resource(
            f"media/f{number}/x", demo_image("tiny"), resource_type="image", format="jpg"
        )
        program(f"p{number}", f"/media/f{number}/x")
    cloudinary_emulator.admin_rate_limit = 2

    with pytest.raises(CommandError) as raised:
        run("--check-remote", "--apply", "--no-input", "--model", "api.Program")

    message = str(raised.value)
    assert raised.value.returncode == 1
    assert "Stopped the remote check after 2 Admin API calls: only 0 Admin API calls are left" in message
    assert "Nothing was written" in message
    assert all(value.startswith("/media/") for value in images().values())
    state = message.split("--resume-from ", 1)[1].split(" ", 1)[0]

    cloudinary_emulator.admin_rate_limit = 500
    output = run("--check-remote", "--apply", "--no-input", "--model", "api.Program", "--resume-from", state)

    assert "250 fixed, 0 broken" in output
    assert "; 1 Admin API calls)" in output


@pytest.mark.slow
def test_normalize_on_cloudinary__http_420_stops_before_anything_is_written(
    cloudinary_settings: Any, cloudinary_emulator: Any
) -> None:
    program("glued", "/media/programs/x")
    cloudinary_emulator.admin_rate_limit = 1
    cloudinary.api.resources()  # someone else spent the hour's allowance

    with pytest.raises(
        CommandError, match=r"after 0 Admin API calls: Error 420 - Rate Limit Exceeded\. Limit of 1"
    ) as raised:
        run("--check-remote", "--apply", "--no-input")

    assert "re-run with --resume-from " in str(raised.value)
    assert images() == {"glued": "/media/programs/x"}


@pytest.mark.slow
def test_undo_log_on_cloudinary__stored_private_and_encrypted_then_undone(
    disk_rows: None, cloudinary_emulator: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.OPS = {**settings.OPS, "BACKUP_REPOSITORY": "cloudinary", "BACKUP_NAMESPACE": "kidoo"}
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))

    output = run("--apply", "--no-input", "--model", "api.Program")

    log = stored_undo_key(output)
    assert "in the Cloudinary folder 'ops-backups/kidoo'" in output
    (resource,) = cloudinary_emulator.resources(prefix="ops-backups/")
    assert (resource.resource_type, resource.delivery_type) == ("raw", "private")
    assert resource.public_id == f"ops-backups/kidoo/{log}"
    assert configured_repository().backups(include_incomplete=True) == []

    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    assert "Restored 2 of 2 values" in run("--undo", log, "--apply", "--no-input")
    assert images()["glued"] == "/media/programs/b.jpg"
