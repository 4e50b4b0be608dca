"""The settings module: production safety and the embedded default, in fresh processes."""

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "RENDER": "true",
    "SECRET_KEY": "a-production-secret-that-is-long-and-random-enough-0123456789-abcdefghij",
    "RENDER_EXTERNAL_HOSTNAME": "kidoo-backend.onrender.com",
    "DATABASE_URL": "postgres://kidoo:pw@db.internal:5432/kidoo",
    "FRONTEND_ORIGINS": "https://kidoo.example.org",
    # What render.yaml asks for: backups off the instance, encrypted to a public key.
    "CLOUDINARY_URL": "cloudinary://123456789012345:not-a-real-secret@kidoo-cloud",
    "BACKUP_AGE_RECIPIENTS": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("CLOUDINARY", "RENDER", "DATABASE_URL", "SECRET_KEY", "DEBUG", "PRODUCTION", "BACKUP_")
        )
    }
    env["DJANGO_SETTINGS_MODULE"] = "kidoo_preschool.settings"
    env.update(extra)
    return env


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy__clean_under_production_variables() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_clean_env(**PRODUCTION_ENV))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy__warns_when_production_backups_stay_on_the_instance() -> None:
    env = _clean_env(**{k: v for k, v in PRODUCTION_ENV.items() if k != "CLOUDINARY_URL"})
    result = _manage("check", "--deploy", env=env)
    assert "ops.W001" in result.stderr + result.stdout


def test_check_deploy__accepts_the_256_bit_key_render_generates() -> None:
    # render.yaml's `generateValue: true`: base64 of 256 random bits, 44 characters.
    render_key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = _clean_env(**{**PRODUCTION_ENV, "SECRET_KEY": render_key})
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy__still_flags_a_weak_key() -> None:
    for weak in ("ab" * 22, "short-key", "django-insecure-" + secrets.token_urlsafe(32)):
        env = _clean_env(**{**PRODUCTION_ENV, "SECRET_KEY": weak})
        result = _manage("check", "--deploy", env=env)
        assert "security.W009" in result.stdout + result.stderr, weak[:4]


def test_production__missing_secret_key_is_a_clear_startup_error() -> None:
    env = _clean_env(**{k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"})
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "pw@" not in result.stderr


def test_embedded_default__sqlite_and_local_media() -> None:
    code = (
        "import json; from django.conf import settings; import django; django.setup();"
        "print(json.dumps([settings.DATABASES['default']['ENGINE'],"
        " settings.STORAGES['default']['BACKEND'], settings.DEBUG]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_clean_env(), capture_output=True, text=True, check=True
    )
    engine, media_backend, debug = json.loads(result.stdout)
    assert engine == "django.db.backends.sqlite3"
    assert media_backend == "django.core.files.storage.FileSystemStorage"
    assert debug is False


def test_cloudinary_credentials__media_go_to_cloudinary_through_storages() -> None:
    code = (
        "import json; from django.conf import settings; import django; django.setup();"
        "apps = settings.INSTALLED_APPS;"
        "print(json.dumps([settings.STORAGES['default']['BACKEND'],"
        " apps.index('cloudinary_storage') > apps.index('django.contrib.staticfiles')]))"
    )
    env = _clean_env(CLOUDINARY_URL="cloudinary://key:secret@democloud")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    backend, after_staticfiles = json.loads(result.stdout)
    assert backend == "cloudinary_storage.storage.MediaCloudinaryStorage"
    assert after_staticfiles is True


def test_production__debug_is_refused_in_one_line() -> None:
    result = _manage("check", env=_clean_env(**PRODUCTION_ENV, DEBUG="1"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: DEBUG is on in production (RENDER or PRODUCTION is set): debug pages would show "
        "settings and tracebacks to anyone. Remove DEBUG from the service's environment."
    ]


def test_development__debug_serves_http_and_media() -> None:
    code = (
        "import json; from django.conf import settings; import django; django.setup();"
        "from django.urls import resolve;"
        "print(json.dumps([settings.DEBUG, getattr(settings, 'SECURE_SSL_REDIRECT', False),"
        " resolve('/media/programs/a.jpg').func.__name__]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_clean_env(DEBUG="1"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == [True, False, "serve"]
