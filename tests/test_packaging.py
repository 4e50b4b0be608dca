"""`ops` as a package of its own: the wheel holds ops alone, installs beside Django and its extras,
and runs in a project that is not this site; the README's settings table matches ops/conf.py."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ops.conf import DEFAULTS
from tests.postgres_server import PostgresServer
from tests.wheel import build_wheel

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def render_default(value: Any) -> str:
    """A default as the README's table writes it: each list item or dict entry, or the value, as a
    Python literal."""
    if isinstance(value, list):
        return ", ".join(f"`{item!r}`" for item in value)
    if isinstance(value, dict):
        return "; ".join(f"`{key!r}`: `{item!r}`" for key, item in value.items())
    return f"`{value!r}`"


def readme_settings_rows() -> list[tuple[str, str]]:
    text = README.read_text()
    table = text.split("<!-- ops-settings:start -->")[1].split("<!-- ops-settings:end -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        key, default, meaning = (cell.strip() for cell in line.strip().strip("|").split(" | "))
        assert meaning, f"the README says nothing of {key}"
        rows.append((key.strip("`"), default))
    return rows


def test_readme__settings_table_matches_the_defaults() -> None:
    expected = [(key, render_default(value)) for key, value in DEFAULTS.items()]
    assert readme_settings_rows() == expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.mark.slow
def test_wheel__holds_ops_alone(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"ops", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert "ops/migrations/0001_size_sample.py" in names
    assert "ops/management/commands/restore.py" in names
    assert "ops/templates/ops/data_safety.html" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requirements = sorted(line for line in metadata.splitlines() if line.startswith("Requires-Dist:"))
    assert requirements == [
        "Requires-Dist: Django>=4.2",
        'Requires-Dist: cloudinary>=1.36; extra == "cloudinary"',
        'Requires-Dist: psycopg2-binary>=2.9.5; extra == "psycopg2"',
        'Requires-Dist: psycopg[binary]>=3.1.8; extra == "psycopg"',
        "Requires-Dist: pyrage>=1.1",
        "Requires-Dist: zstandard>=0.22",
    ]


MINIMAL_SETTINGS = """
import os
SECRET_KEY = "a-minimal-project-that-is-not-kidoo"
DEBUG = True
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "notes", "ops"]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": os.environ["PGDATABASE"],
    "HOST": os.environ["PGHOST"], "PORT": os.environ["PGPORT"], "USER": os.environ["PGUSER"],
    "PASSWORD": os.environ.get("PGPASSWORD", ""),
}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
OPS = {
    "BACKUP_REPOSITORY": os.environ.get("OPS_REPOSITORY") or None,
    "BACKUP_DIR": os.path.join(os.path.dirname(__file__), "backups"),
}
"""

NOTES_MODELS = """
from django.db import models

class Note(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField()
"""


def run(venv: Path, project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_wheel__installs_alone_and_backs_up_and_restores_a_minimal_project(
    wheel: Path, tmp_path: Path, pg_server: PostgresServer
) -> None:
    # A fresh venv holding only Django and the chosen extras: Django's oldest supported LTS,
    # the lower bound pyproject.toml claims, and no Cloudinary SDK.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "Django>=4.2,<5.0", f"{wheel}[psycopg2]"],
        check=True,
    )
    installed = run(venv, tmp_path, "-m", "pip", "list", "--format=freeze", env=dict(os.environ)).stdout
    assert "cloudinary" not in installed.lower()

    project = tmp_path / "project"
    (project / "notes" / "migrations").mkdir(parents=True)
    (project / "minimal_settings.py").write_text(MINIMAL_SETTINGS)
    (project / "notes" / "__init__.py").write_text("")
    (project / "notes" / "migrations" / "__init__.py").write_text("")
    (project / "notes" / "models.py").write_text(NOTES_MODELS)
    pg_server.create_database("packaged_ops")
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "minimal_settings",
        "PYTHONPATH": str(project),
        "PGDATABASE": "packaged_ops",
        "PGHOST": pg_server.host,
        "PGPORT": str(pg_server.port),
        "PGUSER": pg_server.user,
        "PGPASSWORD": pg_server.password,
    }
    try:
        django_admin = ["-m", "django"]
        for step in (["makemigrations", "notes"], ["migrate"], ["check"]):
            result = run(venv, project, *django_admin, *step, env=env)
            assert result.returncode == 0, result.stderr
        imported = run(venv, project, "-c", "import ops, sys; print(ops.__file__)", env=env).stdout
        assert str(venv) in imported  # the wheel's ops, not the checkout's
        create = (
            "from notes.models import Note; "
            "Note.objects.bulk_create(Note(title=f't{i}', body='b') for i in range(50))"
        )
        shell = run(venv, project, *django_admin, "shell", "-c", create, env=env)
        assert shell.returncode == 0, shell.stderr

        backup = run(venv, project, *django_admin, "backup", env=env)
        assert backup.returncode == 0, backup.stderr
        assert "rows" in backup.stdout
        wipe = run(
            venv,
            project,
            *django_admin,
            "shell",
            "-c",
            "from notes.models import Note; Note.objects.all().delete()",
            env=env,
        )
        assert wipe.returncode == 0, wipe.stderr
        restore = run(venv, project, *django_admin, "restore", "--latest", "--no-input", env=env)
        assert restore.returncode == 0, restore.stderr
        count = run(
            venv,
            project,
            *django_admin,
            "shell",
            "-c",
            "from notes.models import Note; print(Note.objects.count())",
            env=env,
        )
        assert count.stdout.strip() == "50"

        # Cloudinary is an extra: asking for it without the SDK names the extra, no traceback,
        # whether it is chosen by its credentials or by name.
        for chosen_by in (
            {"CLOUDINARY_URL": "cloudinary://key:secret@cloud"},
            {"OPS_REPOSITORY": "cloudinary"},
        ):
            listing = run(venv, project, *django_admin, "backup", "--list", env={**env, **chosen_by})
            assert listing.returncode == 2, listing.stderr
            assert 'pip install "django-data-safety[cloudinary]"' in listing.stderr
            assert "Traceback" not in listing.stderr
            assert "secret" not in listing.stderr
    finally:
        pg_server.drop_database("packaged_ops")
