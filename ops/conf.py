"""The toolkit's settings: one ``OPS = {...}`` dict in the project settings, defaults here.

Read at call time (never cached at import) so ``override_settings(OPS=...)`` works in tests.
"""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Where backups live (ops/repository/backups.py): "local", "cloudinary" or "storage:<alias>".
    # None: Cloudinary when its credentials are set, else the local folder.
    "BACKUP_REPOSITORY": None,
    # The local folder, relative to BASE_DIR unless absolute.
    "BACKUP_DIR": "backups",
    # Keeps staging and production apart in one account; None: the database's name.
    "BACKUP_NAMESPACE": None,
    "BACKUP_CLOUDINARY_FOLDER": "ops-backups",
    # Retention (`backup --prune`, ops/repository/prune.py): the newest N backups holding data, plus
    # the newest of each of the last D days, W ISO weeks and M months (UTC). Sized for the free tier.
    "BACKUP_KEEP_LAST": 3,
    "BACKUP_KEEP_DAILY": 7,
    "BACKUP_KEEP_WEEKLY": 4,
    "BACKUP_KEEP_MONTHLY": 6,
    # Restores' safety backups are kept apart from that policy: the newest N of each database.
    "BACKUP_KEEP_SAFETY": 3,
    # backup/restore (ops/backup.py, ops/restore.py). zstd level of archives (3: fast and small).
    "BACKUP_COMPRESSION_LEVEL": 3,
    # Seconds a restore waits for another restore of the same database before giving up.
    "RESTORE_LOCK_TIMEOUT": 60,
    # PostgreSQL's maintenance_work_mem for the index builds of a restore (SET LOCAL, no superuser).
    "RESTORE_MAINTENANCE_WORK_MEM": "128MB",
    # Connections that load a PostgreSQL restore side by side (ops/engines/pg_parallel.py); 1: one
    # transaction on one connection. More than the database server's CPUs gains nothing.
    "RESTORE_JOBS": 2,
    # Restores across engines (SQLite <-> PostgreSQL) leave these models' tables out, and say how to
    # rebuild them afterwards (label -> command): rows derived from other tables in a form only
    # one engine has (search indexes: tsvector columns on PostgreSQL, FTS5 virtual tables on SQLite).
    # Same-engine restores keep them. A project adds its own.
    "CROSS_ENGINE_SKIP": {
        "wagtailsearch.IndexEntry": "python manage.py update_index",
        "wagtailsearch.SQLiteFTSIndexEntry": "python manage.py update_index",
        "modelsearch.IndexEntry": "python manage.py rebuild_modelsearch_index",
        "modelsearch.SQLiteFTSIndexEntry": "python manage.py rebuild_modelsearch_index",
    },
    # Models whose rows `migrate` creates by itself: a database holding only these is empty
    # (`restore --if-empty`, and backups that do not take a retention slot). "app_label.*" allowed.
    "NOT_USER_DATA_MODELS": ["contenttypes.ContentType", "auth.Permission", "sessions.Session", "ops.*"],
    # Encryption of backups (ops/repository/encryption.py): the names of the environment variables that hold
    # the keys, so no key ever sits in a settings file.
    "ENCRYPTION_RECIPIENTS_ENV": "BACKUP_AGE_RECIPIENTS",
    "ENCRYPTION_RECIPIENTS_FILE_ENV": "BACKUP_AGE_RECIPIENTS_FILE",
    "ENCRYPTION_PASSPHRASE_ENV": "BACKUP_AGE_PASSPHRASE",
    "ENCRYPTION_IDENTITY_ENV": "BACKUP_AGE_IDENTITY",
    "ENCRYPTION_IDENTITY_FILE_ENV": "BACKUP_AGE_IDENTITY_FILE",
    # Authenticity (ops/repository/signing.py): the variable holding the secret that signs every
    # backup's manifest (HMAC-SHA256) and without whose valid signature nothing is restored.
    "SIGNING_KEY_ENV": "BACKUP_SIGNING_KEY",
    # db_size and the db_size health check (ops/health/db_size.py). The plan's storage limit in bytes (or
    # "1GiB", "256MB"): 1 GiB is Render's free database. Percentages of it that warn / fail.
    "DB_SIZE_LIMIT": 1024**3,
    "DB_SIZE_WARN_AT": 80.0,
    "DB_SIZE_FAIL_AT": 95.0,
    # Growth per day is fitted over the samples (`db_size --record`) of this many days.
    "DB_SIZE_GROWTH_DAYS": 30,
    # healthcheck (ops/health/runner.py, ops/health/checks.py): dotted paths of the checks, or
    # (dotted path, {keyword arguments}) pairs; a project appends its own.
    "HEALTH_CHECKS": [
        "ops.health.checks.DatabaseCheck",
        "ops.health.checks.MigrationsCheck",
        "ops.health.checks.MediaStorageCheck",
        "ops.health.checks.DiskUsageCheck",
        "ops.health.checks.MemoryCheck",
        "ops.health.checks.DatabaseSizeCheck",
        "ops.health.checks.BackupAgeCheck",
        "ops.health.checks.BackupRepositoryCheck",
    ],
    # Seconds each check may take before it is reported as failed ("timed out after Ns").
    "HEALTH_CHECK_TIMEOUT": 10.0,
    # None: settings.HEALTH_CHECK["DISK_USAGE_MAX"] / ["MEMORY_MIN"] (django-health-check's names),
    # else 90 (percent) / 100 (MB).
    "HEALTH_DISK_USAGE_MAX": None,
    "HEALTH_MEMORY_MIN_MB": None,
    # The filesystem whose usage counts; None: MEDIA_ROOT's (or BASE_DIR's).
    "HEALTH_DISK_PATH": None,
    "HEALTH_BACKUP_MAX_AGE_HOURS": 26.0,
    # The environment variable holding the token of the detailed health view; unset: view disabled.
    "HEALTH_TOKEN_ENV": "HEALTHCHECK_TOKEN",
    # /healthz: the database probe's bound (seconds; Render gives up after 5) and how long one
    # probe's answer is reused by the process, so a load of probes costs one query per second.
    "HEALTHZ_DATABASE": "default",
    "HEALTHZ_DB_TIMEOUT": 2.0,
    "HEALTHZ_CACHE_SECONDS": 1.0,
    # normalize_media_urls (ops/media/repair.py). Undo logs (media names only); None: BACKUP_DIR/undo.
    "MEDIA_UNDO_DIR": None,
    # Rows read per query, and repairs written per transaction.
    "MEDIA_REPAIR_PAGE_SIZE": 5000,
    "MEDIA_REPAIR_BATCH_SIZE": 5000,
    # --check-remote stops while this many Admin API calls of the hour are left for the site itself.
    "MEDIA_REMOTE_RESERVE_CALLS": 10,
    # Alerts (ops/alerts.py). A ping URL (healthchecks.io, Cronitor): requested when an unattended
    # backup reached the repository, and with "/fail" appended when a backup, restore or prune
    # failed; the monitoring service alerts on a /fail or a missed daily ping. None: no pings (a
    # failure still mails ADMINS when they are set). It acts as a credential: keep it out of code.
    "ALERT_URL": None,
    # Seconds a ping or an alert mail may take: an unreachable monitor must not hold up a deploy.
    "ALERT_TIMEOUT": 5.0,
}


# Dotted paths that users write in settings, from before ops/ was grouped into wings. They are not
# importable any more; configuration naming them gets an error that says where each one went.
MOVED_MODULES: dict[str, str] = {
    "ops.health_checks": "ops.health.checks",
    "ops.middleware": "ops.health.middleware",
    "ops.urls": "ops.health.urls",
    "ops.views": "ops.health.views",
}


def moved_path(dotted_path: str) -> str | None:
    """The new dotted path of ``dotted_path`` if it names a module that moved, else None."""
    for old, new in MOVED_MODULES.items():
        if dotted_path == old or dotted_path.startswith(old + "."):
            return new + dotted_path[len(old) :]
    return None


def ops_setting(name: str) -> Any:
    """Return the project's value for ``OPS[name]``, or the toolkit's default."""
    user_settings: dict[str, Any] = getattr(settings, "OPS", {}) or {}
    if name in user_settings:
        return user_settings[name]
    try:
        return DEFAULTS[name]
    except KeyError:
        raise KeyError(f"Unknown OPS setting {name!r}") from None
