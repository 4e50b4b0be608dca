"""What the data-safety page shows, gathered section by section.

Each section is a small dataclass built from the same library calls the commands make (so the
page and `db_size --format json`, `backup --list` and `healthcheck` never disagree). A section
that cannot be had (the repository is unreachable, the database does not say its size) carries an
``error`` sentence instead of failing the page. Nothing here holds personal data: names, counts,
sizes and statuses only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from ops.conf import ops_setting
from ops.errors import OpsError, redact
from ops.health import db_size
from ops.health.runner import configured_checks, run_checks
from ops.media.undo_logs import undo_log_lines
from ops.repository.backups import FULL, UNDO_PREFIX, BackupInfo, BackupRepository, configured_repository
from ops.repository.listing import human_size
from ops.repository.signing import signature_state, signing_key_from_environment
from ops.repository.stores import RetryPolicy, StoredObject
from ops.repository.verify import verify_backup

SHOWN_BACKUPS = 50
TOP_TABLES = 10
SAMPLE_DAYS = 365
# One Admin API listing per minute at most, whatever the number of views (Cloudinary's free plan
# allows about 500 calls an hour, shared with the site).
BACKUPS_CACHE_SECONDS = 60
# The page's listing of the repository tries twice, a quarter second apart: with a command's six
# tries and backoff, an unreachable Cloudinary held the page 8-15 s before it said so.
PAGE_RETRY = RetryPolicy(attempts=2, first_delay=0.25, max_delay=0.25)
# An undo log never changes once stored; a new run adds a new one.
MEDIA_CACHE_SECONDS = 600
VERIFY_TIME_LIMIT = 60.0
_HEALTH_KEY = "ops:data-safety:health:{}"


# --- health ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRow:
    name: str
    status: str
    message: str
    duration_ms: float


@dataclass(frozen=True)
class HealthSection:
    checks: list[CheckRow]
    status: str | None
    ran_at: dt.datetime | None
    error: str | None = None


def last_health(database: str) -> HealthSection:
    """The last run of the checks from this page (kept in Django's cache), or none yet."""
    stored = cache.get(_HEALTH_KEY.format(database))
    if not stored:
        return HealthSection(checks=[], status=None, ran_at=None)
    return HealthSection(
        checks=[CheckRow(**row) for row in stored["checks"]],
        status=stored["status"],
        ran_at=dt.datetime.fromisoformat(stored["ran_at"]),
    )


def run_health(database: str) -> HealthSection:
    """Run every configured check now; only the public parts (no detail, no paths) are kept."""
    try:
        report = run_checks(configured_checks())
    except OpsError as error:
        return HealthSection(checks=[], status=None, ran_at=timezone.now(), error=redact(str(error)))
    public = report.as_dict(public=True)
    stored = {
        "status": public["status"],
        "ran_at": timezone.now().isoformat(),
        "checks": [
            {key: check[key] for key in ("name", "status", "message", "duration_ms")}
            for check in public["checks"]
        ],
    }
    cache.set(_HEALTH_KEY.format(database), stored, None)
    return last_health(database)


# --- backups --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupRow:
    name: str
    kind: str
    created_at: dt.datetime
    age: str
    size: str
    tables: int | None
    rows: int | None
    encrypted: bool
    signed: str
    holds_data: bool
    complete: bool
    newest_full: bool = False


@dataclass(frozen=True)
class BackupsSection:
    location: str
    rows: list[BackupRow]
    more: int
    error: str | None = None
    total: int = 0


# How each signature state reads on the page (ops.repository.signing.signature_state).
SIGNATURE_TEXT = {
    "valid": "yes",
    "present": "yes (unchecked: no key here)",
    "unsigned": "no",
    "invalid": "BAD",
}


def _age(created_at: dt.datetime, now: dt.datetime) -> str:
    seconds = max((now - created_at).total_seconds(), 0.0)
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


@dataclass(frozen=True)
class _Listing:
    objects: list[StoredObject]
    backups: list[BackupInfo]


def _listing(database: str) -> tuple[BackupRepository, _Listing]:
    """The repository's objects and backups: one store listing (one Admin API call on Cloudinary)
    for the backups and the undo logs alike, kept for a minute whatever the number of views."""
    repository = configured_repository(database, retry=PAGE_RETRY)
    location = hashlib.sha256(repository.description.encode()).hexdigest()[:16]
    key = f"ops:data-safety:listing:{database}:{location}"
    listing: _Listing | None = cache.get(key)
    if listing is None:
        objects = list(repository.store.list())
        listing = _Listing(objects, repository.backups(listing=objects))
        cache.set(key, listing, BACKUPS_CACHE_SECONDS)
    return repository, listing


def backups_section(database: str) -> BackupsSection:
    try:
        repository, listing = _listing(database)
        key = signing_key_from_environment()
    except OpsError as error:
        return BackupsSection(location="", rows=[], more=0, error=redact(str(error)))
    backups = listing.backups
    now = timezone.now()
    newest_full = next(
        (backup.name for backup in backups if backup.complete and backup.holds_data and backup.kind == FULL),
        None,
    )
    rows = []
    for backup in backups[:SHOWN_BACKUPS]:
        tables, count = backup.summary.get("tables"), backup.summary.get("rows")
        rows.append(
            BackupRow(
                name=backup.name,
                kind=backup.kind,
                created_at=backup.created_at,
                age=_age(backup.created_at, now),
                size=human_size(backup.size),
                tables=tables if isinstance(tables, int) else None,
                rows=count if isinstance(count, int) else None,
                encrypted=backup.encrypted,
                signed=SIGNATURE_TEXT[signature_state(backup.manifest, key)],
                holds_data=backup.holds_data,
                complete=backup.complete,
                newest_full=backup.name == newest_full,
            )
        )
    return BackupsSection(
        location=repository.description,
        rows=rows,
        more=max(len(backups) - SHOWN_BACKUPS, 0),
        total=len(backups),
    )


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    message: str


def verify(database: str, name: str, *, time_limit: float = VERIFY_TIME_LIMIT) -> Verdict:
    """``backup --verify NAME``, bounded in time so a page never hangs on a large download."""
    outcome: dict[str, Verdict] = {}

    def work() -> None:
        try:
            result = verify_backup(configured_repository(database), name)
        except OpsError as error:
            outcome["verdict"] = Verdict(name, False, redact(str(error)))
        except Exception as error:  # shown on the page, redacted: a page never fails on a verdict
            outcome["verdict"] = Verdict(name, False, f"Verification failed: {redact(str(error))}")
        else:
            encrypted = "encrypted, " if result.encrypted else ""
            outcome["verdict"] = Verdict(
                name,
                True,
                f"Backup {name} is intact: {result.parts} part(s), {human_size(result.size)}, {encrypted}"
                f"{result.tables} tables, {result.rows:,} rows, every checksum matches.",
            )

    worker = threading.Thread(target=work, name=f"verify {name}", daemon=True)
    worker.start()
    worker.join(time_limit)
    if "verdict" not in outcome:
        return Verdict(
            name,
            False,
            f"Verification did not finish within {time_limit:.0f} s. Run `python manage.py backup "
            f"--verify {name}` from a shell; it has no time limit.",
        )
    return outcome["verdict"]


# --- database size --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeSection:
    report: db_size.SizeReport | None
    warn_at: float
    fail_at: float
    samples: list[db_size.Sample] = field(default_factory=list)
    error: str | None = None


def size_section(database: str) -> SizeSection:
    warn_at, fail_at = float(ops_setting("DB_SIZE_WARN_AT")), float(ops_setting("DB_SIZE_FAIL_AT"))
    try:
        report = db_size.report(database, top=TOP_TABLES, warn_at=warn_at, fail_at=fail_at)
    except OpsError as error:
        return SizeSection(report=None, warn_at=warn_at, fail_at=fail_at, error=redact(str(error)))
    since = report.measured_at - dt.timedelta(days=SAMPLE_DAYS)
    return SizeSection(report, warn_at, fail_at, db_size.recorded_samples(database, since))


# --- media ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaSection:
    undo_log: str | None
    size: str | None = None
    repairs: int = 0
    by_field: list[tuple[str, int]] = field(default_factory=list)
    created: str | None = None
    error: str | None = None


def media_section(database: str) -> MediaSection:
    """The newest normalize_media_urls run that changed anything, from its stored undo log."""
    try:
        repository, listing = _listing(database)
    except OpsError as error:
        return MediaSection(undo_log=None, error=redact(str(error)))
    prefix = f"{UNDO_PREFIX}/normalize_media_urls-{database}-"
    objects = [obj for obj in listing.objects if obj.key.startswith(prefix)]
    # A large log is stored as KEY.part-NNNNN plus KEY.parts; a small one as KEY. Names sort by time.
    sizes: Counter[str] = Counter()
    for obj in objects:
        sizes[obj.key.removesuffix(".parts").split(".part-")[0]] += obj.size
    if not sizes:
        return MediaSection(undo_log=None)
    key = max(sizes)
    cache_key = f"ops:data-safety:media:{database}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    cached: MediaSection | None = cache.get(cache_key)
    if cached is not None:
        return cached
    try:
        lines = undo_log_lines(key, database, repository=repository)
        header: dict[str, Any] = json.loads(next(lines, "") or "{}")
        counts: Counter[str] = Counter()
        for line in lines:
            if line.strip():
                entry = json.loads(line)
                counts[f"{entry['model']}.{entry['field']}"] += 1
    except (OpsError, ValueError, KeyError) as error:
        return MediaSection(undo_log=key, error=f"The undo log {key} could not be read: {redact(str(error))}")
    section = MediaSection(
        undo_log=key,
        size=human_size(sizes[key]),
        repairs=sum(counts.values()),
        by_field=counts.most_common(),
        created=str(header.get("created") or "") or None,
    )
    cache.set(cache_key, section, MEDIA_CACHE_SECONDS)
    return section
