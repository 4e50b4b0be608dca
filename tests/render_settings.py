"""Production settings as Render runs them, for the end-to-end replay (tests/test_render_replay.py).

The replayed processes read the environment and ``kidoo_preschool.settings`` exactly as on Render;
this module adds only what a laptop needs on top and is selected with DJANGO_SETTINGS_MODULE in the
replay alone:

- The Cloudinary emulator speaks plain HTTP. Its address reaches the SDK through CLOUDINARY_URL's
  query string (``?upload_prefix=http://127.0.0.1:PORT&cname=127.0.0.1:PORT``, which the SDK itself
  reads), but django-cloudinary-storage forces ``secure=True`` at import unless
  ``CLOUDINARY_STORAGE["SECURE"]`` is False, and no environment variable reaches that.
- KIDOO_REPLAY_BROKEN_MIGRATION installs an app whose migration fails: a release that breaks at
  pre-deploy.
"""

import os

from kidoo_preschool.settings import *  # noqa: F403
from kidoo_preschool.settings import INSTALLED_APPS

CLOUDINARY_STORAGE = {**globals().get("CLOUDINARY_STORAGE", {}), "SECURE": False}

if os.environ.get("KIDOO_REPLAY_BROKEN_MIGRATION"):
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.render_broken_migration"]
