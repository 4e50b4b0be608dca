"""Which PostgreSQL driver a test run uses: ``OPS_TEST_DRIVER=psycopg`` (3) or ``psycopg2``.

Django's postgresql backend takes psycopg 3 whenever it is importable, else psycopg2. To test on
psycopg2 with both installed, ``import psycopg`` must fail before Django first loads the backend:
``apply()`` does that, from the settings modules the suite and its subprocesses load (tests/settings.py,
bench/settings*.py), so a ``manage.py`` a test spawns inherits the choice with the environment.
Unset: Django's own choice (psycopg 3 when installed, as in production).
"""

from __future__ import annotations

import importlib
import os
import sys

ENV = "OPS_TEST_DRIVER"
DRIVERS = ("psycopg", "psycopg2")


def wanted() -> str | None:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    if value not in DRIVERS:
        raise RuntimeError(f"{ENV}={value!r}: use one of {', '.join(DRIVERS)}.")
    return value


def apply() -> str | None:
    """Make Django's backend load the wanted driver; the driver's name, or None (Django's choice)."""
    driver = wanted()
    if driver is None:
        return None
    backend = sys.modules.get("django.db.backends.postgresql.psycopg_any")
    if backend is not None and bool(backend.is_psycopg3) != (driver == "psycopg"):
        raise RuntimeError(f"{ENV}={driver}, but Django's postgresql backend was loaded before: too late.")
    if driver == "psycopg2":
        # ``import psycopg`` now raises ImportError, so Django falls back to psycopg2.
        sys.modules["psycopg"] = None  # type: ignore[assignment]
    else:
        try:
            importlib.import_module("psycopg")
        except ImportError as error:
            raise RuntimeError(f"{ENV}=psycopg, but psycopg 3 is not installed ({error}).") from None
    return driver
