"""Settings for bench/bench_normalize_media_urls.py: media on django-cloudinary-storage, as in production.

Cloudinary is the test suite's emulator, started by the benchmark (``BENCH_CLOUDINARY_CONFIG``: its
SDK configuration as JSON): verification, the default, looks repairs up through its Admin API. Without
it the credentials are placeholders and only ``--no-verify`` runs make no call. The undo log goes to
a local backup repository.
"""

import json
import os

import cloudinary
import dj_database_url

from tests import pg_driver

# A bench run by the test suite uses the suite's driver (OPS_TEST_DRIVER, see tests/pg_driver.py).
pg_driver.apply()

from kidoo_preschool.settings import *  # noqa: E402,F403
from kidoo_preschool.settings import INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [
    *INSTALLED_APPS[: INSTALLED_APPS.index("django.contrib.staticfiles") + 1],
    "cloudinary_storage",
    *INSTALLED_APPS[INSTALLED_APPS.index("django.contrib.staticfiles") + 1 :],
    "bench.mediabench",
]
DATABASES = {"default": dj_database_url.parse(os.environ["BENCH_DATABASE_URL"])}
CLOUDINARY_STORAGE = {"CLOUD_NAME": "bench", "API_KEY": "000", "API_SECRET": "placeholder", "SECURE": True}
if os.environ.get("BENCH_CLOUDINARY_CONFIG"):
    _emulator = json.loads(os.environ["BENCH_CLOUDINARY_CONFIG"])
    # upload_prefix (where the Admin API is) is not among the keys django-cloudinary-storage sets.
    cloudinary.config(**_emulator)
    CLOUDINARY_STORAGE = {
        "CLOUD_NAME": _emulator["cloud_name"],
        "API_KEY": _emulator["api_key"],
        "API_SECRET": _emulator["api_secret"],
        "SECURE": False,
    }
STORAGES = {
    "default": {"BACKEND": "cloudinary_storage.storage.MediaCloudinaryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
OPS = {
    "MEDIA_UNDO_DIR": os.environ.get("BENCH_UNDO_DIR", "/tmp/bench-media-undo"),
    # --apply stores its undo log in the backup repository: a local folder here. (With the
    # placeholder Cloudinary credentials above, the default repository would be Cloudinary, which
    # no benchmark may reach: the run would time the retries of an upload that cannot succeed.)
    "BACKUP_REPOSITORY": "local",
    "BACKUP_DIR": os.environ.get("BENCH_BACKUP_DIR", "/tmp/bench-media-backups"),
}
