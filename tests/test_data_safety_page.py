"""The data-safety page in the admin (ops/dashboard/): who may see it, what it shows, its charts.

Against the real "default" PostgreSQL database (the page shows the site's own database), a local
backup folder or the Cloudinary emulator. The browser test is in tests/test_data_safety_browser.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from ops.backup import backup_to_repository
from ops.dashboard import charts
from ops.dashboard.data import backups_section, media_section
from ops.engines.tables import model_tables
from ops.health import db_size
from ops.health.runner import configured_checks
from ops.models import SizeSample
from ops.repository.backups import SAFETY, configured_repository
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.commands import run_command

PAGE = "/admin/data-safety/"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


@pytest.fixture
def local_backups(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "backups"
    settings.OPS = {**getattr(settings, "OPS", {}), "BACKUP_REPOSITORY": "local", "BACKUP_DIR": str(folder)}
    return folder


def superuser_client() -> Client:
    client = Client()
    boss = User.objects.filter(username="boss").first()
    client.force_login(boss or User.objects.create_superuser("boss", "boss@example.org", "pw"))
    return client


def two_backups() -> None:
    User.objects.create_user("ada", "ada@example.org", "pw")
    run_command("backup", reason="daily", verbosity=0)
    run_command("backup", reason="manual", verbosity=0)


def count(tag: str, html: str, css_class: str) -> int:
    return len(re.findall(rf'<{tag} class="{css_class}"', html))


# --- who may see it -------------------------------------------------------------------------------


@pytest.mark.usefixtures("local_backups")
def test_page__anonymous_and_non_staff_go_to_the_login_page() -> None:
    anonymous = Client().get(PAGE)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    client = Client()
    client.force_login(User.objects.create_user("parent", "p@example.org", "pw"))
    refused = client.get(PAGE)
    assert refused.status_code == 302
    assert refused["Location"].startswith("/admin/login/")


@pytest.mark.usefixtures("local_backups")
def test_page__staff_need_the_view_datasafety_permission() -> None:
    staff = User.objects.create_user("teacher", "t@example.org", "pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"action": "run-checks"}).status_code == 403
    staff.user_permissions.add(
        Permission.objects.get(codename="view_datasafety", content_type__app_label="ops")
    )
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(PAGE).status_code == 200


@pytest.mark.usefixtures("local_backups")
def test_page__linked_from_the_admin_index_for_those_who_may_see_it() -> None:
    client = superuser_client()
    index = client.get("/admin/").content.decode()
    assert 'href="/admin/ops/datasafety/"' in index
    assert "Data safety" in index
    entry = client.get("/admin/ops/datasafety/")
    assert (entry.status_code, entry["Location"]) == (302, PAGE)
    staff = Client()
    staff.force_login(User.objects.create_user("teacher", "t@example.org", "pw", is_staff=True))
    assert "/admin/ops/datasafety/" not in staff.get("/admin/").content.decode()


@pytest.mark.usefixtures("local_backups")
def test_page__posts_need_the_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("boss", "boss@example.org", "pw"))
    assert client.post(PAGE, {"action": "run-checks"}).status_code == 403


# --- what it shows --------------------------------------------------------------------------------


@pytest.mark.usefixtures("local_backups")
def test_page__backups_listed_newest_full_highlighted_no_download_link() -> None:
    two_backups()
    html = superuser_client().get(PAGE).content.decode()
    table = html.split('id="ops-backup-table"')[1].split("</table>")[0]
    rows = re.findall(r"<tr class=\"([^\"]*)\">\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>", table)
    assert len(rows) == 2
    (first_class, first_name, first_kind), (second_class, _, _) = rows
    assert first_class == "ops-newest-full"
    assert first_kind == "full"
    assert "manual" in first_name
    assert second_class == ""
    assert count("input", table, "ops-verify") == 0  # the buttons are type=submit with that class
    assert table.count('class="ops-verify"') == 2
    assert "download" not in table.lower()
    assert "2 backups in the local folder" in html


@pytest.mark.usefixtures("local_backups")
def test_page__shows_the_newest_50_and_counts_the_rest() -> None:
    User.objects.create_user("ada", "ada@example.org", "pw")
    for _ in range(52):
        run_command("backup", verbosity=0)
    section = backups_section("default")
    assert (len(section.rows), section.more, section.total) == (50, 2, 52)
    html = superuser_client().get(PAGE).content.decode()
    assert "the newest 50 are shown, 2 more are not" in html


def test_page__an_unreachable_repository_is_a_clear_message(
    settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    settings.OPS = {**getattr(settings, "OPS", {}), "BACKUP_REPOSITORY": "cloudinary"}
    cloudinary_emulator.inject_fault("http_503", endpoints=["admin"], times=100)
    before = cloudinary_emulator.calls["admin"]
    response = superuser_client().get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "The backup repository cannot be read:" in html
    # Two tries for each of the two sections that list the repository (backups, undo logs), not a
    # command's six with backoff: the page answers within a second.
    assert cloudinary_emulator.calls["admin"] - before == 4
    assert "emulator-api-secret" not in html
    assert "Database size" in html  # the other sections still render


def test_page__cloudinary_listing_is_one_admin_call_cached_for_a_minute(
    settings: Any, cloudinary_emulator: CloudinaryEmulator
) -> None:
    settings.OPS = {**getattr(settings, "OPS", {}), "BACKUP_REPOSITORY": "cloudinary"}
    two_backups()
    client = superuser_client()
    before = cloudinary_emulator.calls["admin"]
    first = client.get(PAGE).content.decode()
    after_first = cloudinary_emulator.calls["admin"]
    client.get(PAGE)
    # One listing serves the backups and the undo logs; the second view costs nothing.
    assert after_first - before == 1
    assert cloudinary_emulator.calls["admin"] == after_first
    assert first.count('class="ops-verify"') == 2


@pytest.mark.usefixtures("local_backups")
def test_page__run_checks_now_shows_each_check_without_details() -> None:
    client = superuser_client()
    assert "have not been run from this page yet" in client.get(PAGE).content.decode()
    html = client.post(PAGE, {"action": "run-checks"}).content.decode()
    health = html.split('id="ops-health"')[1].split("</section>")[0]
    names = [check.name for check in configured_checks()]
    assert {"database", "backup_age", "backup_repository"} <= set(names)
    for name in names:
        assert f"<td>{name}</td>" in health
    assert "last run" in health
    assert str(Path.cwd()) not in health
    assert "/tmp/" not in health
    # The last run is remembered for the next view.
    assert "last run" in client.get(PAGE).content.decode().split('id="ops-health"')[1]


@pytest.mark.usefixtures("local_backups")
def test_page__verify_shows_the_verdict(local_backups: Path) -> None:
    two_backups()
    client = superuser_client()
    newest = backups_section("default").rows[0].name
    html = client.post(PAGE, {"action": "verify", "backup": newest}).content.decode()
    assert re.search(rf"Backup {newest} is intact: 1 part\(s\), .* every checksum matches\.", html)
    # A damaged part: the verdict says so, the page still renders.
    part = next(local_backups.rglob(f"{newest}/part-00000"))
    data = bytearray(part.read_bytes())
    data[200] ^= 1
    part.write_bytes(bytes(data))
    damaged = client.post(PAGE, {"action": "verify", "backup": newest}).content.decode()
    assert 'class="ops-verdict bad"' in damaged
    assert newest in damaged.split('id="ops-verdict"')[1].split("</div>")[0]


@pytest.mark.usefixtures("local_backups")
def test_page__verify_takes_only_a_listed_backup() -> None:
    two_backups()
    html = superuser_client().post(PAGE, {"action": "verify", "backup": "../../etc/passwd"}).content.decode()
    assert "That backup is not listed here" in html


@pytest.mark.usefixtures("local_backups")
def test_page__size_gauge_top_tables_and_samples_with_projection(settings: Any) -> None:
    # 30 daily samples growing 1 MB a day up to today's real size, against a 200 MB plan.
    settings.OPS = {**settings.OPS, "DB_SIZE_LIMIT": 200 * 1024**2}
    now, size_now = timezone.now(), db_size.database_size("default")
    for day in range(30, 0, -1):
        taken_at = now - dt.timedelta(days=day)
        SizeSample.objects.create(taken_at=taken_at, size_bytes=size_now - day * 1024**2, tables={})
    html = superuser_client().get(PAGE).content.decode()
    size = html.split('id="ops-size"')[1].split("</section>")[0]
    assert count("svg", size, "ops-chart ops-gauge") == 1
    bars = count("rect", size, "bar")
    assert 1 <= bars <= 10
    assert bars == size.split('class="ops-tables-table"')[1].split("</table>")[0].count("<tr><td>")
    assert count("circle", size, "sample") == 30
    assert size.split('class="ops-samples-table"')[1].count("<tr><td>") == 30
    assert count("line", size, "projection") == 1
    assert "At this rate the limit is reached on" in size
    for title in ("Database size against the plan limit", "largest tables", "Recorded database size"):
        assert re.search(rf"<title id=\"[^\"]+\">[^<]*{title}", size)
    assert size.count("<desc ") == 3


@pytest.mark.usefixtures("local_backups")
def test_page__media_section_summarises_the_last_repair(settings: Any) -> None:
    from api.models import Program

    assert "No media repair has been applied" in superuser_client().get(PAGE).content.decode()
    program = Program.objects.create(
        name="Preschool", slug="preschool", age_min_years=3, age_max_years=5, monthly_fee=100
    )
    Program.objects.filter(pk=program.pk).update(image="media/media/programs/p.jpg")
    (Path(settings.MEDIA_ROOT) / "programs").mkdir(parents=True, exist_ok=True)
    (Path(settings.MEDIA_ROOT) / "programs" / "p.jpg").write_bytes(b"jpeg")
    run_command("normalize_media_urls", apply=True, interactive=False, verbosity=0)
    cache.clear()  # the page's listing of the repository is kept for a minute
    section = media_section("default")
    assert section.repairs >= 1
    assert section.undo_log is not None
    html = superuser_client().get(PAGE).content.decode()
    assert f"--undo {section.undo_log}" in html


# --- charts ---------------------------------------------------------------------------------------


def test_charts__escape_every_text() -> None:
    svg = charts.bar_chart([charts.Bar("<script>alert(1)</script>", 10.0, "10 B")], title="t & <b>", desc="d")
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "t &amp; &lt;b&gt;" in svg


def test_charts__gauge_marks_thresholds_and_state() -> None:
    svg = charts.gauge(96.0, 80.0, 95.0, title="g", desc="d")
    assert 'class="fill failure"' in svg
    assert svg.count('class="threshold') == 2
    assert 'class="fill ok"' in charts.gauge(10.0, 80.0, 95.0, title="g", desc="d")


@pytest.mark.usefixtures("local_backups")
def test_page__kinds_and_signatures_shown_and_a_safety_backup_never_highlighted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKUP_SIGNING_KEY", base64.b64encode(b"k" * 32).decode())
    User.objects.create_user("ada", "ada@example.org", "pw")
    run_command("backup", reason="daily", verbosity=0)
    # What a restore takes first (restoring "default" itself is beyond this test's connections).
    repository, tables = configured_repository("default"), model_tables("default")
    backup_to_repository("default", repository, tables, reason="pre-restore", kind=SAFETY)
    cache.clear()
    rows = backups_section("default").rows
    assert [(row.kind, row.signed, row.newest_full) for row in rows] == [
        ("safety", "yes", False),
        ("full", "yes", True),
    ]
    monkeypatch.setenv("BACKUP_SIGNING_KEY", base64.b64encode(b"x" * 32).decode())
    cache.clear()
    html = superuser_client().get(PAGE).content.decode()
    assert html.count('<span class="ops-bad">BAD</span>') == 2


def test_permission_model__has_no_table_so_dumpdata_and_backups_skip_it() -> None:
    # The page's permission holder is a proxy: a project's `dumpdata` (which lists unmanaged models'
    # tables too) still works, and the model adds no table to back up.
    from io import StringIO

    from django.core.management import call_command

    from ops.engines.tables import model_tables
    from ops.models import DataSafety

    assert DataSafety._meta.proxy
    assert [table.name for table in model_tables("default")].count(DataSafety._meta.db_table) == 1
    out = StringIO()
    call_command("dumpdata", "ops", stdout=out)
    assert out.getvalue().startswith("[")
    call_command("dumpdata", stdout=StringIO())
