"""The built-in health checks: the things that took the site down, each watched by one class.

Messages never carry host names, versions or secrets (the detailed HTTP view shows them); driver
texts go to ``detail``, which only the command shows.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from ops.conf import ops_setting
from ops.errors import OpsError
from ops.health.runner import HealthCheck, HealthFailure, HealthWarning

MIB = 1024 * 1024


@dataclass
class DatabaseCheck(HealthCheck):
    name: str = "database"
    database: str = DEFAULT_DB_ALIAS

    def run(self) -> str:
        started = time.perf_counter()
        try:
            with connections[self.database].cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as error:
            raise HealthFailure(
                f"cannot reach the database ({type(error).__name__})", detail=str(error)
            ) from None
        return f"SELECT 1 answered in {(time.perf_counter() - started) * 1000:.1f} ms"


@dataclass
class MigrationsCheck(HealthCheck):
    name: str = "migrations"
    database: str = DEFAULT_DB_ALIAS

    def run(self) -> str:
        try:
            executor = MigrationExecutor(connections[self.database])
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except DatabaseError as error:
            raise HealthFailure(
                f"cannot read the applied migrations ({type(error).__name__})", detail=str(error)
            ) from None
        if plan:
            apps = sorted({migration.app_label for migration, _backwards in plan})
            raise HealthFailure(
                f"{len(plan)} unapplied migration(s) in {', '.join(apps)}: run `manage.py migrate`"
            )
        return "all migrations applied"


@dataclass
class MediaStorageCheck(HealthCheck):
    """Cloudinary: the credentials work (``ping``). A local folder: it is writable."""

    name: str = "media_storage"
    alias: str = "default"

    def run(self) -> str:
        storage = storages[self.alias]
        module = type(storage).__module__
        if module.startswith("cloudinary_storage"):
            return _cloudinary_ping()
        if isinstance(storage, FileSystemStorage):
            return _writable(Path(storage.location))
        return f"{type(storage).__name__} is not probed"


def _cloudinary_ping() -> str:
    import cloudinary.api
    import cloudinary.exceptions

    try:
        cloudinary.api.ping()
    except cloudinary.exceptions.AuthorizationRequired as error:
        raise HealthFailure("Cloudinary rejected the credentials", detail=str(error)) from None
    except cloudinary.exceptions.RateLimited as error:
        # The account answers, it is only throttling the Admin API: media still serve.
        raise HealthWarning("Cloudinary's Admin API rate limit is exhausted", detail=str(error)) from None
    except cloudinary.exceptions.GeneralError as error:
        # The SDK wraps network failures (urllib3's, after its retries) in GeneralError too.
        unreachable = str(error).startswith(("Unexpected error", "Socket Error"))
        problem = "could not be reached" if unreachable else "API failed"
        raise HealthFailure(f"Cloudinary {problem} ({type(error).__name__})", detail=str(error)) from None
    except cloudinary.exceptions.Error as error:
        raise HealthFailure(f"Cloudinary API failed ({type(error).__name__})", detail=str(error)) from None
    except Exception as error:
        # urllib3's network errors and the SDK's JSON decoding of a cut response both land here.
        raise HealthFailure(
            f"Cloudinary could not be reached ({type(error).__name__})", detail=str(error)
        ) from None
    return "Cloudinary credentials accepted"


def _writable(location: Path) -> str:
    try:
        location.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=location, prefix=".ops-healthcheck-"):
            pass
    except OSError as error:
        raise HealthFailure(
            f"the media folder is not writable ({type(error).__name__})", detail=f"{location}: {error}"
        ) from None
    return "media folder writable"


def _health_check_setting(ops_name: str, legacy_name: str, default: float) -> float:
    """OPS[ops_name], else settings.HEALTH_CHECK[legacy_name] (django-health-check's), else default."""
    value = ops_setting(ops_name)
    if value is None:
        value = (getattr(settings, "HEALTH_CHECK", None) or {}).get(legacy_name)
    return float(default if value is None else value)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@dataclass
class DiskUsageCheck(HealthCheck):
    name: str = "disk"
    # Percent; None: OPS["HEALTH_DISK_USAGE_MAX"] / HEALTH_CHECK["DISK_USAGE_MAX"] / 90.
    max_percent: float | None = None
    path: str | None = None

    def run(self) -> str:
        limit = (
            self.max_percent
            if self.max_percent is not None
            else _health_check_setting("HEALTH_DISK_USAGE_MAX", "DISK_USAGE_MAX", 90)
        )
        configured = self.path or ops_setting("HEALTH_DISK_PATH") or settings.MEDIA_ROOT or settings.BASE_DIR
        where = _existing(Path(str(configured)).resolve())
        usage = shutil.disk_usage(where)
        # As df counts: the share of what is usable by non-root users that is taken.
        percent = 100.0 * usage.used / max(usage.used + usage.free, 1)
        message = f"{percent:.1f}% of the disk used ({usage.free / MIB:.0f} MB free)"
        if percent > limit:
            raise HealthFailure(f"{message}, above the {limit:g}% limit", detail=str(where))
        return message


@dataclass
class MemoryCheck(HealthCheck):
    """Available memory: the host's MemAvailable, or the container's cgroup headroom when smaller.

    A Render instance is a container: its cgroup limit (512 MB on the free plan) is what an
    out-of-memory kill acts on, not the host's free memory.
    """

    name: str = "memory"
    # MB; None: OPS["HEALTH_MEMORY_MIN_MB"] / HEALTH_CHECK["MEMORY_MIN"] / 100.
    min_mb: float | None = None
    meminfo_path: str = "/proc/meminfo"
    cgroup_root: str = "/sys/fs/cgroup"

    def run(self) -> str:
        minimum = (
            self.min_mb
            if self.min_mb is not None
            else _health_check_setting("HEALTH_MEMORY_MIN_MB", "MEMORY_MIN", 100)
        )
        available, source = available_memory(Path(self.meminfo_path), Path(self.cgroup_root))
        if available is None:
            raise HealthWarning("available memory cannot be read on this system")
        message = f"{available / MIB:.0f} MB available ({source})"
        if available < minimum * MIB:
            raise HealthFailure(f"{message}, below the {minimum:g} MB minimum")
        return message


def available_memory(meminfo: Path, cgroup_root: Path) -> tuple[int | None, str]:
    """Bytes available and where the figure comes from ("host" or "container")."""
    candidates: list[tuple[int, str]] = []
    host = _meminfo_available(meminfo)
    if host is not None:
        candidates.append((host, "host"))
    container = _cgroup_available(cgroup_root)
    if container is not None:
        candidates.append((container, "container"))
    if not candidates:
        return None, "unknown"
    return min(candidates)


def _meminfo_available(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_available(root: Path) -> int | None:
    # cgroup v2 ("max" when unlimited), then v1 (a huge number when unlimited). Reclaimable page
    # cache (inactive files) counts as available, as the kernel would drop it before an OOM kill.
    limit, current = _read_int(root / "memory.max"), _read_int(root / "memory.current")
    if limit is not None and current is not None:
        reclaimable = _stat_value(root / "memory.stat", "inactive_file")
        return max(limit - current + reclaimable, 0)
    v1 = root / "memory"
    limit, current = _read_int(v1 / "memory.limit_in_bytes"), _read_int(v1 / "memory.usage_in_bytes")
    if limit is not None and current is not None and limit < 2**60:
        reclaimable = _stat_value(v1 / "memory.stat", "total_inactive_file")
        return max(limit - current + reclaimable, 0)
    return None


@dataclass
class DatabaseSizeCheck(HealthCheck):
    """The database against the plan's limit (OPS["DB_SIZE_LIMIT"], warn/fail percentages)."""

    name: str = "db_size"
    database: str = DEFAULT_DB_ALIAS
    warn_at: float | None = None
    fail_at: float | None = None

    def run(self) -> str:
        from ops.health.db_size import database_size, format_bytes, plan_limit_bytes

        warn_at = float(ops_setting("DB_SIZE_WARN_AT") if self.warn_at is None else self.warn_at)
        fail_at = float(ops_setting("DB_SIZE_FAIL_AT") if self.fail_at is None else self.fail_at)
        try:
            size = database_size(self.database)
        except OpsError as error:
            raise HealthFailure("cannot measure the database", detail=str(error)) from None
        limit = plan_limit_bytes()
        percent = 100.0 * size / limit
        message = f"{format_bytes(size)} of {format_bytes(limit)} ({percent:.1f}%)"
        if percent >= fail_at:
            raise HealthFailure(f"{message}: at or above {fail_at:g}% of the plan limit")
        if percent >= warn_at:
            raise HealthWarning(f"{message}: at or above {warn_at:g}% of the plan limit")
        return message


@dataclass
class BackupAgeCheck(HealthCheck):
    """The newest intact backup in the configured repository is recent enough.

    Intact: its manifest and every part it lists are in the store (one listing). A damaged newer
    backup is a warning naming it: the start command would pass over it to the intact one.
    """

    name: str = "backup_age"
    database: str = DEFAULT_DB_ALIAS
    # Hours; None: OPS["HEALTH_BACKUP_MAX_AGE_HOURS"] (26: a daily backup, with slack).
    max_age_hours: float | None = None

    def run(self) -> str:
        from ops.repository.backups import configured_repository

        max_age = float(
            ops_setting("HEALTH_BACKUP_MAX_AGE_HOURS") if self.max_age_hours is None else self.max_age_hours
        )
        try:
            newest = newest_intact_backup(configured_repository(self.database))
        except OpsError as error:
            raise HealthFailure("the backup repository cannot be read", detail=str(error)) from None
        damaged = "; ".join(f"newer backup {b.name} is DAMAGED ({b.damage})" for b in newest.damaged)
        if newest.created_at is None:
            if damaged:
                raise HealthFailure(f"there is no intact backup: {damaged}")
            raise HealthFailure("there is no complete backup: run `manage.py backup`")
        age_hours = (dt.datetime.now(dt.UTC) - newest.created_at).total_seconds() / 3600
        message = f"newest complete backup is {_age(age_hours)} old"
        if age_hours > max_age:
            raise HealthFailure(
                f"{message}, older than {max_age:g} hours" + (f"; {damaged}" if damaged else "")
            )
        if damaged:
            raise HealthWarning(f"{message}; {damaged}")
        return message


@dataclass
class BackupRepositoryCheck(HealthCheck):
    """Backups are kept off this machine and encrypted: ops.W001-W003, where people look."""

    name: str = "backup_repository"

    def run(self) -> str:
        from ops.repository.posture import repository_concerns

        try:
            concerns = repository_concerns()
        except OpsError as error:
            raise HealthWarning(
                "the backup repository's settings cannot be read", detail=str(error)
            ) from None
        if concerns:
            raise HealthWarning(" ".join(concern.text() for concern in concerns))
        return "backups are configured to be kept off this machine and encrypted"


def _age(hours: float) -> str:
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


@dataclass(frozen=True)
class NewestIntact:
    created_at: dt.datetime | None
    # Complete backups newer than it whose parts are not all in the store.
    damaged: tuple[Any, ...] = ()


def newest_intact_backup(repository: Any) -> NewestIntact:
    """When the newest intact backup was taken: one listing and (usually) one manifest read.

    ``BackupRepository.backups()`` reads every manifest; on Cloudinary that is a download per backup
    on each health check. Backup names start with their UTC time (``new_backup_name``), so the
    manifests are read newest name first and the first intact one answers (damaged ones on the
    way are reported); names without that prefix (chosen by hand) are all read, since their age
    cannot be told from the name.
    """
    from ops.repository.backups import MANIFEST, CorruptBackup, missing_objects

    present = {obj.key: obj.size for obj in repository.store.list()}
    names = sorted(name for name, _, rest in (key.partition("/") for key in present) if rest == MANIFEST)
    stamped = sorted((name for name in names if _stamp(name) is not None), reverse=True)
    unstamped = [name for name in names if _stamp(name) is None]
    newest: dt.datetime | None = None
    # The second the newest intact name was stamped with: names of older seconds need no read, but
    # names of that same second may be newer (the stamp has no fraction; the suffix is random).
    newest_second: dt.datetime | None = None
    damaged = []
    for name in [*stamped, *unstamped]:
        stamp = _stamp(name)
        if newest_second is not None and stamp is not None and stamp < newest_second:
            continue
        try:
            backup = repository.info(name)
        except CorruptBackup:
            continue
        damage = missing_objects(backup, present)
        if damage is not None:
            damaged.append((backup, damage))
            continue
        newest = backup.created_at if newest is None else max(newest, backup.created_at)
        if stamp is not None and newest_second is None:
            newest_second = stamp
    newer = tuple(
        replace(backup, damage=damage)
        for backup, damage in sorted(damaged, key=lambda pair: pair[0].created_at, reverse=True)
        if newest is None or backup.created_at > newest
    )
    return NewestIntact(newest, newer)


def _stamp(name: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
