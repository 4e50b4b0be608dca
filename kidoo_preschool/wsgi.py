"""WSGI entry point (gunicorn kidoo_preschool.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kidoo_preschool.settings")

application = get_wsgi_application()
