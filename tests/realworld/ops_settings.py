"""Appended to a generated project's settings: its database from the environment, and ``ops``.

The harness (tests/realworld/harness.py) copies this file into the project's settings package and
imports it after the project's own settings, as a user following the README would edit theirs.
"""

import os

import dj_database_url

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
INSTALLED_APPS = [*INSTALLED_APPS, "ops"]  # type: ignore[name-defined]  # noqa: F821
OPS = {
    "BACKUP_REPOSITORY": "local",
    "BACKUP_DIR": os.environ["OPS_BACKUP_DIR"],
    "RESTORE_JOBS": int(os.environ.get("OPS_RESTORE_JOBS", "2")),
}
MEDIA_ROOT = os.environ["MEDIA_ROOT"]
SECRET_KEY = "realworld-suite-not-secret"
ALLOWED_HOSTS = ["*"]
DEBUG = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
