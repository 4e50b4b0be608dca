"""normalize_media_urls end to end: PostgreSQL, FileSystemStorage and the Cloudinary emulator."""

from __future__ import annotations

import io
import json
import re
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import cloudinary
import cloudinary.api
import cloudinary.uploader
import pytest
import zstandard
from django.conf import settings as settings_module
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test import Client
from pyrage import x25519

from api.demo_data import demo_image
from api.models import Announcement, Program
from api.serializers import public_media_url
from api.storage import document_storage
from ops.engines import pg_copy
from ops.engines.locks import exclusive_writer, sqlite_restore_lock
from ops.engines.pg_load import RestoreLocked, restore_lock_key
from ops.errors import OpsConfigurationError, OpsError
from ops.media.repair import FolderListings, RepairOptions, ReportRow, UndoLog, repair_media
from ops.media.undo_logs import store_undo_log, undo_log_lines
from ops.repository.backups import BackupRepository, configured_repository, default_namespace
from ops.repository.encryption import AGE_MAGIC
from ops.repository.stores import LocalFolderStore
from tests.commands import fetch_status, requires_age_cli
from tests.mediaapp.models import Poster
from tests.ops_databases import ScratchDatabases

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


def touch(*names: str) -> None:
    """Files in MEDIA_ROOT (FileSystemStorage): repairs are written only to names that exist."""
    for name in names:
        path = Path(settings_module.MEDIA_ROOT) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


# --- FileSystemStorage -------------------------------------------------------------------------------


@pytest.fixture
def disk_rows() -> None:
    touch("programs/a.jpg", "programs/b.jpg", "media/programs/c.jpg", "posters/p.jpg")
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
        "Dry run on default: 6 media values in 10 fields: 1 canonical, 3 would fix (verified), 0 broken, "
        "1 external, 1 unknown (3 empty skipped)"
    )
    assert "  e.g. would fix (verified): api.Program.image pk=" in output
    assert (
        "'/media/programs/b.jpg' -> programs/b.jpg (MEDIA_URL (/media/) glued in front (verified))" in output
    )
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

    assert "1 fixed (verified), 1 broken" in output
    assert images() == {"here": "programs/here.jpg", "gone": "/media/programs/gone.jpg"}


def test_normalize__unknown_model_is_misuse() -> None:
    with pytest.raises(CommandError, match=r"No installed model 'api\.Nope'") as raised:
        run("--model", "api.Nope")
    assert raised.value.returncode == 2


def test_normalize__pages_and_batches_are_smaller_than_the_table() -> None:
    touch(*(f"programs/{number}.jpg" for number in range(25)))
    for number in range(25):
        program(f"p{number}", f"/media/programs/{number}.jpg" if number % 2 else f"programs/{number}.jpg")

    result = repair_media(RepairOptions(models=("api.Program",), apply=True, page_size=4, batch_size=3))

    assert (result.rows_scanned, result.fixed, result.counts["canonical"]) == (25, 12, 13)
    assert all(not name.startswith("/") for name in images().values())


@pytest.mark.django_db(transaction=True)
def test_normalize__concurrent_edit_during_apply_is_kept_and_reported() -> None:
    touch("programs/1.jpg", "programs/2.jpg")
    first = program("first", "/media/programs/1.jpg")
    program("second", "/media/programs/2.jpg")
    # Another session, on the driver Django uses.
    other = connection.Database.connect(**connection.get_connection_params())
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


@requires_age_cli
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

    assert "11 fixed (verified), 1 broken, 1 external, 0 unknown" in output.splitlines()[0]
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
    assert " 0 would fix (verified), 1 broken" in again

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

    assert "250 fixed (verified), 0 broken" in output
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


# --- issue 15: only verified repairs, table-driven ----------------------------------------------------

# (slug, stored value, the file that exists (None: none), the value after --apply, dry-run category).
# "{root}" is this test's MEDIA_ROOT.
LOCAL_SHAPES: list[tuple[str, str, str | None, str, str]] = [
    ("glued", "/media/programs/glued.jpg", "programs/glued.jpg", "programs/glued.jpg", "fixable"),
    ("glued-gone", "/media/programs/glued-gone.jpg", None, "/media/programs/glued-gone.jpg", "broken"),
    # A doubled prefix has two readings on local disk: one layer collapsed, or MEDIA_URL's folder gone.
    ("doubled", "media/media/programs/d.jpg", "media/programs/d.jpg", "media/programs/d.jpg", "fixable"),
    # The case: the file is at programs/preschool.jpg, not media/programs/preschool.jpg.
    (
        "preschool",
        "media/media/programs/preschool.jpg",
        "programs/preschool.jpg",
        "programs/preschool.jpg",
        "fixable",
    ),
    ("doubled-gone", "media/media/programs/dg.jpg", None, "media/media/programs/dg.jpg", "broken"),
    # What the shape-only repair wrote before: canonical in shape, its file one folder up.
    ("old-repair", "media/programs/old.jpg", "programs/old.jpg", "programs/old.jpg", "fixable"),
    ("absolute", "{root}/programs/abs.jpg", "programs/abs.jpg", "programs/abs.jpg", "fixable"),
    ("backslashes", "programs\\bs.jpg", "programs/bs.jpg", "programs/bs.jpg", "fixable"),
    ("blanks", " programs/blank.jpg ", "programs/blank.jpg", "programs/blank.jpg", "fixable"),
    ("canonical", "programs/ok.jpg", "programs/ok.jpg", "programs/ok.jpg", "canonical"),
    ("canonical-gone", "programs/nothing.jpg", None, "programs/nothing.jpg", "broken"),
    # What a browser submits for a file input: no storage shape; unknown unless its guess exists.
    ("client-path", "C:\\fakepath\\photo.jpg", None, "C:\\fakepath\\photo.jpg", "unknown"),
    ("client-path-found", "C:\\fakepath\\found.jpg", "found.jpg", "found.jpg", "fixable"),
    ("ftp", "ftp://files.example.org/x.jpg", None, "ftp://files.example.org/x.jpg", "unknown"),
    ("external", "https://images.example.org/x.jpg", None, "https://images.example.org/x.jpg", "external"),
]


def report_categories(path: Path) -> dict[str, tuple[str, str, str]]:
    """slug -> (category, new, reason) of each Program row in a JSON-lines report."""
    slugs = {str(pk): slug for pk, slug in Program.objects.values_list("pk", "slug")}
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {slugs[str(r["pk"])]: (r["category"], r["new"], r["reason"]) for r in rows}


def test_normalize_verified__local_storage_every_shape(tmp_path: Path, undo_dir: Path) -> None:
    root = settings_module.MEDIA_ROOT
    shapes = [(slug, stored.replace("{root}", root), *rest) for slug, stored, *rest in LOCAL_SHAPES]
    for slug, stored, existing, _, _ in shapes:
        if existing:
            touch(existing)
        program(slug, stored)
    before = images()

    dry = run("--model", "api.Program", "--report", str(tmp_path / "dry.jsonl"))

    assert images() == before
    verdicts = report_categories(tmp_path / "dry.jsonl")
    for slug, _, _, after, category in shapes:
        assert verdicts[slug][0] == category, (slug, verdicts[slug])
        if category == "fixable":
            assert verdicts[slug][1] == after, slug
    # Broken values say what was looked for, and are never written.
    assert verdicts["preschool"][2].endswith("(verified)")
    assert verdicts["doubled-gone"][2] == "no file at media/programs/dg.jpg, programs/dg.jpg"
    assert (
        verdicts["client-path"][2]
        == "a path on the uploader's computer, not a storage name; no file at photo.jpg"
    )
    fixable = sum(1 for *_, c in shapes if c == "fixable")
    assert f"{fixable} would fix (verified), 3 broken" in dry.splitlines()[0]
    assert "  e.g. would fix (verified): api.Program.image" in dry
    assert "  e.g. broken: api.Program.image" in dry
    assert "3 broken values were left as they are" in dry

    # The site's URL helper reads values with the same parser, without lookups: where its reading
    # (the first) has the file, the command writes exactly what the helper serves.
    for slug in ("glued", "doubled", "absolute", "backslashes", "blanks"):
        _, stored, existing, after, _ = next(shape for shape in shapes if shape[0] == slug)
        assert public_media_url(stored) == default_storage.url(after) == default_storage.url(existing)
    assert public_media_url("C:\\fakepath\\photo.jpg") is None

    applied = run("--apply", "--no-input", "--model", "api.Program")

    assert f"Fixed {fixable}." in applied
    assert images() == {slug: after for slug, _, _, after, _ in shapes}
    # After the repair the helper serves every repaired value at its file.
    for _, _, existing, after, category in shapes:
        if category in ("fixable", "canonical"):
            assert existing is not None
            assert public_media_url(after) == default_storage.url(existing)
    # A second run finds nothing to do, and still reports what is broken.
    again = json.loads(run("--model", "api.Program", "--format", "json"))
    assert (again["counts"]["fixable"], again["counts"]["broken"]) == (0, 3)
    # --undo restores the exact values, blanks and backslashes included.
    assert f"Restored {fixable} of {fixable} values" in run(
        "--undo", stored_undo_key(applied), "--apply", "--no-input"
    )
    assert images() == before


def test_normalize_verified__no_verify_keeps_the_shape_only_repair_and_says_so() -> None:
    program("preschool", "media/media/programs/preschool.jpg")
    program("client-path", "C:\\fakepath\\photo.jpg")

    output = run("--no-verify", "--model", "api.Program")

    assert "1 would fix (not verified), 0 broken, 0 external, 1 unknown" in output.splitlines()[0]
    assert "Repairs were not verified (--no-verify): a repaired name may point at no file." in output
    assert "'media/media/programs/preschool.jpg' -> media/programs/preschool.jpg" in output
    # Guesses are never written unverified.
    run("--no-verify", "--apply", "--no-input", "--model", "api.Program")
    assert images()["client-path"] == "C:\\fakepath\\photo.jpg"


def test_normalize_verified__no_verify_with_check_remote_is_misuse() -> None:
    with pytest.raises(CommandError, match="--no-verify cannot go with --check-remote") as raised:
        run("--no-verify", "--check-remote")
    assert raised.value.returncode == 2
    with pytest.raises(CommandError, match="--undo takes only --apply, --database, --no-input and --no-wait"):
        run("--undo", "undo/x.jsonl.zst", "--no-verify")


def test_folder_listings__one_listing_per_folder_not_a_stat_per_name(tmp_path: Path) -> None:
    for number in range(20):
        (tmp_path / "gallery").mkdir(exist_ok=True)
        (tmp_path / "gallery" / f"{number}.jpg").write_bytes(b"x")
    (tmp_path / "one.jpg").write_bytes(b"x")
    listings = FolderListings(str(tmp_path))

    wanted = [f"gallery/{number}.jpg" for number in range(15, 25)] + ["one.jpg", "nowhere/x.jpg"]
    answers = listings.exists(wanted)
    again = listings.exists(["gallery/0.jpg", "gallery/99.jpg"])

    assert answers == {
        **{f"gallery/{n}.jpg": n < 20 for n in range(15, 25)},
        "one.jpg": True,
        "nowhere/x.jpg": False,
    }
    assert again == {"gallery/0.jpg": True, "gallery/99.jpg": False}
    # gallery/ listed once (its listing kept for the second batch); the two lone names stat'ed.
    assert (listings.listed, listings.stats) == (1, 2)


def test_folder_listings__a_folder_larger_than_the_cap_is_asked_name_by_name(tmp_path: Path) -> None:
    (tmp_path / "big").mkdir()
    for number in range(30):
        (tmp_path / "big" / f"{number}.jpg").write_bytes(b"x")
    listings = FolderListings(str(tmp_path), cap=20)

    first = listings.exists([f"big/{number}.jpg" for number in range(25, 35)])
    listings.exists([f"big/{number}.jpg" for number in range(10)])

    assert first == {f"big/{n}.jpg": n < 30 for n in range(25, 35)}
    assert (listings.listed, listings.stats) == (0, 20)


# --- --apply and restore exclude each other ------------------------------------------------------------


def hold_restore_lock() -> Any:
    """Another session holding the lock a restore of the test database holds."""
    other = pg_copy.connect(connection)
    other.autocommit = True
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [restore_lock_key(connection)])
    return other


def waiting_for_advisory_lock(other: Any) -> bool:
    with other.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_normalize_apply__during_a_restore_waits_for_it_then_repairs_what_the_restore_left() -> None:
    touch("programs/before.jpg", "programs/restored.jpg")
    first = program("first", "/media/programs/before.jpg")
    restore = hold_restore_lock()
    events: list[str] = []

    def finish_the_restore() -> None:
        try:
            deadline = time.monotonic() + 60
            while not waiting_for_advisory_lock(restore) and time.monotonic() < deadline:
                time.sleep(0.05)
            events.append("apply is waiting")
            # What the restore brings back replaces the row; then it releases the lock.
            with restore.cursor() as cursor:
                cursor.execute(
                    "UPDATE api_program SET image = %s WHERE id = %s",
                    ["/media/programs/restored.jpg", first.pk],
                )
            events.append("restore done")
        finally:
            restore.close()

    worker = threading.Thread(target=finish_the_restore)
    worker.start()
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(
            "normalize_media_urls", "--apply", "--no-input", "--model", "api.Program", stdout=out, stderr=err
        )
    finally:
        worker.join(timeout=90)

    assert events == ["apply is waiting", "restore done"]
    assert "A restore of database" in err.getvalue()
    assert "waiting for it to finish before writing" in err.getvalue()
    # The repair read the rows after the restore: it repaired the restored value, lost nothing.
    assert "Fixed 1." in out.getvalue()
    assert images() == {"first": "programs/restored.jpg"}


@pytest.mark.django_db(transaction=True)
def test_normalize_apply__no_wait_refuses_while_a_restore_runs() -> None:
    touch("programs/x.jpg")
    program("x", "/media/programs/x.jpg")
    restore = hold_restore_lock()
    try:
        with pytest.raises(
            CommandError, match=r"A restore of database .* is running .*Nothing was written"
        ) as raised:
            run("--apply", "--no-input", "--no-wait", "--model", "api.Program")
        # A dry run writes nothing: it needs no lock.
        assert "1 would fix (verified)" in run("--model", "api.Program")
    finally:
        restore.close()

    assert raised.value.returncode == 1
    assert images() == {"x": "/media/programs/x.jpg"}


@pytest.mark.django_db(transaction=True)
def test_normalize_apply__holds_the_restore_lock_while_it_writes(settings: Any) -> None:
    settings.OPS = {**settings.OPS, "RESTORE_LOCK_TIMEOUT": 0.5}
    touch("programs/x.jpg")
    program("x", "/media/programs/x.jpg")
    holder = connections["default"]

    def restore_meanwhile(row: ReportRow) -> None:
        # A restore started now would find the lock taken (and wait RESTORE_LOCK_TIMEOUT for it).
        other = pg_copy.connect(holder)
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [restore_lock_key(holder)])
                assert cursor.fetchone()[0] is False
        finally:
            other.close()

    result = repair_media(RepairOptions(models=("api.Program",), apply=True), on_row=restore_meanwhile)

    assert result.fixed == 1


def stored_sdk_image(pk: Any) -> str:
    """The column as stored (the field's from_db_value would build a CloudinaryResource)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sdk_image FROM mediaapp_poster WHERE id = %s", [pk])
        return str(cursor.fetchone()[0])


def seed_image(emulator: Any, public_id: str) -> None:
    emulator.seed_resource(public_id, demo_image(public_id), resource_type="image", format="jpg")


@pytest.mark.slow
def test_normalize_verified__cloudinary_every_shape(
    cloudinary_settings: Any, cloudinary_emulator: Any
) -> None:
    for public_id in (
        "media/programs/u",
        "media/programs/gu",
        "media/programs/dd",
        "media/programs/sl",
        "media/guess",
        "media/photo",
        "media/programs/ok",
    ):
        seed_image(cloudinary_emulator, public_id)
    url = default_storage.url
    shapes: list[tuple[str, str, str, str]] = [
        ("url", url("media/programs/u"), "media/programs/u", "fixable"),
        ("url-gone", url("media/programs/ugone"), url("media/programs/ugone"), "broken"),
        ("glued-url", "/media/" + url("media/programs/gu"), "media/programs/gu", "fixable"),
        ("doubled", "media/media/programs/dd", "media/programs/dd", "fixable"),
        ("doubled-gone", "media/media/programs/dgone", "media/media/programs/dgone", "broken"),
        ("slash", "/media/programs/sl", "media/programs/sl", "fixable"),
        ("client-path", "C:\\fakepath\\nope.jpg", "C:\\fakepath\\nope.jpg", "unknown"),
        ("client-path-found", "C:\\fakepath\\guess.jpg", "media/guess.jpg", "fixable"),
        # What the shape-only repair made of C:\fakepath\photo.jpg before.
        ("old-repair", "media/C:/fakepath/photo.jpg", "media/photo.jpg", "fixable"),
        ("canonical", "media/programs/ok", "media/programs/ok", "canonical"),
        ("other-account", "https://res.cloudinary.com/else/image/upload/v1/x.jpg", "", "external"),
    ]
    shapes = [(s, v, a or v, c) for s, v, a, c in shapes]
    for slug, stored, _, _ in shapes:
        program(slug, stored)
    sdk = cloudinary.uploader.upload(demo_image("sdk"), folder="posters")
    missing_sdk = sdk["secure_url"].replace(sdk["public_id"], "posters/gone")
    found = Poster.objects.create(sdk_image=sdk["secure_url"])
    gone = Poster.objects.create(sdk_image=missing_sdk)
    before = images()
    calls_before = cloudinary_emulator.calls["admin"]

    dry = run("--model", "api.Program", "--model", "mediaapp.Poster", "--report", "/dev/null")
    data = json.loads(run("--model", "api.Program", "--format", "json"))

    assert images() == before
    fixable = sum(1 for *_, c in shapes if c == "fixable")
    assert data["counts"] == {
        "canonical": 1,
        "fixable": fixable,
        "broken": 2,
        "external": 1,
        "unknown": 1,
        "empty": 0,
    }
    assert f"{fixable + 1} would fix (verified), 3 broken" in dry.splitlines()[0]
    # Canonical names are not looked up by default (each 100 cost an Admin API call): only targets.
    assert data["api_calls"] == 1
    assert cloudinary_emulator.calls["admin"] - calls_before <= 4

    applied = run("--apply", "--no-input", "--model", "api.Program", "--model", "mediaapp.Poster")

    assert f"Fixed {fixable + 1}." in applied
    assert images() == {slug: after for slug, _, after, _ in shapes}
    assert str(Poster.objects.get(pk=found.pk).sdk_image.public_id) == sdk["public_id"]
    assert stored_sdk_image(gone.pk) == missing_sdk
    # A second run has nothing to do; --check-remote also finds the canonical names all there.
    again = json.loads(run("--model", "api.Program", "--model", "mediaapp.Poster", "--format", "json"))
    assert (again["counts"]["fixable"], again["counts"]["broken"]) == (0, 3)
    checked = json.loads(run("--check-remote", "--model", "api.Program", "--format", "json"))
    assert (checked["counts"]["fixable"], checked["counts"]["broken"]) == (0, 2)
    # --undo restores the exact values.
    log = stored_undo_key(applied)
    assert f"Restored {fixable + 1} of {fixable + 1} values" in run("--undo", log, "--apply", "--no-input")
    assert images() == before
    assert stored_sdk_image(found.pk) == sdk["secure_url"]


@pytest.mark.slow
def test_normalize_verified__cloudinary_upload_missing_covers_cloudinary_fields(
    cloudinary_settings: Any, cloudinary_emulator: Any
) -> None:
    # A CloudinaryField that was an ImageField on local disk: its value is still the disk name.
    touch("posters/old.jpg")
    (Path(settings_module.MEDIA_ROOT) / "posters" / "old.jpg").write_bytes(demo_image("old"))
    migrated = Poster.objects.create()
    gone = Poster.objects.create()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE mediaapp_poster SET sdk_image = %s WHERE id = %s", ["posters/old.jpg", migrated.pk]
        )
        cursor.execute(
            "UPDATE mediaapp_poster SET sdk_image = %s WHERE id = %s", ["posters/gone.jpg", gone.pk]
        )

    dry = run("--upload-missing", "--model", "mediaapp.Poster")
    assert "1 would fix (verified), 1 broken" in dry.splitlines()[0]
    assert "'posters/old.jpg' -> upload:posters/old.jpg" in dry
    assert cloudinary_emulator.resource("posters/old", resource_type="image") is None

    applied = run("--upload-missing", "--apply", "--no-input", "--model", "mediaapp.Poster")

    assert "1 uploaded from MEDIA_ROOT" in applied
    value = stored_sdk_image(migrated.pk)
    assert re.fullmatch(r"image/upload/v\d+/posters/old\.jpg", value), value
    assert str(Poster.objects.get(pk=migrated.pk).sdk_image.public_id) == "posters/old"
    assert cloudinary_emulator.resource("posters/old", resource_type="image") is not None
    assert stored_sdk_image(gone.pk) == "posters/gone.jpg"
    again = json.loads(run("--check-remote", "--model", "mediaapp.Poster", "--format", "json"))
    assert (again["counts"]["canonical"], again["counts"]["broken"]) == (1, 1)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_normalize_verified__cloudinary_concurrent_edit_during_apply_is_kept(
    cloudinary_settings: Any, cloudinary_emulator: Any
) -> None:
    seed_image(cloudinary_emulator, "media/programs/one")
    seed_image(cloudinary_emulator, "media/programs/two")
    first = program("first", default_storage.url("media/programs/one"))
    program("second", "/media/programs/two")
    other = pg_copy.connect(connection)
    other.autocommit = True

    def edit_elsewhere(row: ReportRow) -> None:
        # Someone saves the first program after it was read and verified, before the batch writes.
        if row.pk == first.pk:
            with other.cursor() as cursor:
                cursor.execute(
                    "UPDATE api_program SET image = %s WHERE id = %s", ["media/programs/new", row.pk]
                )

    try:
        result = repair_media(RepairOptions(models=("api.Program",), apply=True), on_row=edit_elsewhere)
    finally:
        other.close()

    assert (result.fixed, result.changed_concurrently, result.api_calls) == (1, 1, 1)
    assert images() == {"first": "media/programs/new", "second": "media/programs/two"}


def test_normalize_apply__sqlite_shares_the_restore_lock_file(scratch: ScratchDatabases) -> None:
    alias = scratch.sqlite()
    touch("programs/x.jpg")
    Program.objects.using(alias).create(
        name="x",
        slug="x",
        age_min_years=2,
        age_max_years=4,
        monthly_fee=Decimal("1"),
        image="/media/programs/x.jpg",
    )

    with (
        sqlite_restore_lock(connections[alias], timeout=1),
        pytest.raises(CommandError, match=r"A restore of database .* is running") as raised,
    ):
        run("--apply", "--no-input", "--no-wait", "--database", alias, "--model", "api.Program")
    assert raised.value.returncode == 1
    assert "Fixed 1." in run("--apply", "--no-input", "--database", alias, "--model", "api.Program")
    # And a restore started while a repair holds the lock waits for it, then gives up.
    with (
        exclusive_writer(connections[alias], wait=False),
        pytest.raises(RestoreLocked, match="normalize_media_urls --apply is writing to it"),
        sqlite_restore_lock(connections[alias], timeout=0.3),
    ):
        pass
    assert Program.objects.using(alias).get().image.name == "programs/x.jpg"
