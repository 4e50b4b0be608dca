"""Settings for bench/bench_normalize_media_urls.py --storage local: media on FileSystemStorage.

MEDIA_ROOT holds a file for every reference the benchmark means to exist: verification (the
default) looks each name up there. The Picture model's raw document field keeps its Cloudinary
storage but stays empty in this run (no Cloudinary call is made).
"""

import os

from bench.settings_media import *  # noqa: F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = os.environ.get("BENCH_MEDIA_ROOT", "/tmp/bench-media-root")
MEDIA_URL = "/media/"
