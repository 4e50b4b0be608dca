"""Settings for the test suite: the project's settings, on a real PostgreSQL server.

The ``pg_server`` fixture (tests/conftest.py) fills in the server's address before any test
database is created, so nothing here needs to know whether a throwaway cluster or
TEST_DATABASE_URL is used.
"""

import atexit
import os
import shutil
import tempfile

from tests import pg_driver

# Before anything loads Django's postgresql backend: OPS_TEST_DRIVER picks psycopg 3 or psycopg2.
pg_driver.apply()

# The developer's shell must not leak into tests: no production mode, no real Cloudinary account.
for _name in (
    "RENDER",
    "PRODUCTION",
    "DATABASE_URL",
    "CLOUDINARY_URL",
    "CLOUDINARY_CLOUD_NAME",
    "CLOUDINARY_API_KEY",
    "CLOUDINARY_API_SECRET",
    "ADMINS",
    "EMAIL_HOST",
    "BACKUP_ALERT_URL",
):
    os.environ.pop(_name, None)

# Scratch folders for this test process, removed when it exits.
_SCRATCH = tempfile.mkdtemp(prefix="kidoo-tests-")
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)

from kidoo_preschool.settings import *  # noqa: E402,F403
from kidoo_preschool.settings import INSTALLED_APPS, STORAGES  # noqa: E402

DATABASES = {
    # Placeholder address: replaced in place by the pg_server fixture before first use.
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "kidoo",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "5432",
    },
    # For the tests whose subject is SQLite itself (the embedded default).
    "sqlite": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_SCRATCH, "kidoo.sqlite3"),
        "TEST": {"NAME": os.path.join(_SCRATCH, "test.sqlite3")},
    },
}

INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.postgres", "tests.fidelity", "tests.mediaapp"]
# The fidelity app's PostgreSQL-only models stay off SQLite databases.
DATABASE_ROUTERS = ["tests.fidelity.routers.PostgresOnlyModels"]

STORAGES = {
    **STORAGES,
    # The manifest storage needs collectstatic first; tests render admin pages without it.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = os.path.join(_SCRATCH, "media")
# WhiteNoise wants the folder collectstatic would fill to exist.
STATIC_ROOT = os.path.join(_SCRATCH, "static")
os.makedirs(STATIC_ROOT)
# The test client speaks plain HTTP; the redirect itself is tested with override_settings.
SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A subprocess (`manage.py restore` killed mid-load in tests/test_restore_atomicity.py) targets the
# database and backup folder its test chose.
if os.environ.get("KIDOO_TEST_DATABASE_URL"):
    import dj_database_url

    DATABASES["default"] = dj_database_url.parse(os.environ["KIDOO_TEST_DATABASE_URL"])
if os.environ.get("KIDOO_TEST_BACKUP_DIR"):
    OPS = {**OPS, "BACKUP_DIR": os.environ["KIDOO_TEST_BACKUP_DIR"]}  # noqa: F405

# The suite keeps backups on local disk and unencrypted on purpose. Silenced as a project would
# silence them, so `backup`'s output and the health checks stay about their own subject; the tests
# of ops.W001-W003 themselves un-silence them (tests/test_repository_posture.py).
SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "ops.W001", "ops.W002"]  # noqa: F405
