"""Settings for bench/bench_backup_restore.py: the project's, plus the bench app, on BENCH_DATABASE_URL."""

import os

import dj_database_url

from tests import pg_driver

# A bench run by the test suite uses the suite's driver (OPS_TEST_DRIVER, see tests/pg_driver.py).
pg_driver.apply()

from kidoo_preschool.settings import *  # noqa: E402,F403
from kidoo_preschool.settings import INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "bench.benchapp"]
DATABASES = {"default": dj_database_url.parse(os.environ["BENCH_DATABASE_URL"])}
OPS = {
    "BACKUP_DIR": os.environ.get("BENCH_BACKUP_DIR", "/tmp/bench-backups"),
    "BACKUP_REPOSITORY": "local",
    # The source and the restored database have different names: one namespace for both.
    "BACKUP_NAMESPACE": "bench",
    # The bench compares like with like: as many connections as `pg_restore -j` gets (--jobs).
    "RESTORE_JOBS": int(os.environ.get("BENCH_RESTORE_JOBS", "2")),
}
