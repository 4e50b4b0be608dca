"""ops.health.runner (the check framework), ops.health.checks (built-in checks), the healthcheck command."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import cloudinary
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from ops.errors import OpsConfigurationError
from ops.health import checks as health_checks
from ops.health.runner import HealthCheck, HealthFailure, HealthWarning, Status, configured_checks, run_checks
from ops.repository.backups import BackupRepository, new_backup_name
from ops.repository.stores import LocalFolderStore
from tests.scratch_databases import extra_database, sqlite_entry

MIB = 1024 * 1024


@dataclass
class SleepyCheck(HealthCheck):
    name: str = "sleepy"
    seconds: float = 5.0

    def run(self) -> str:
        time.sleep(self.seconds)
        return "woke up"


@dataclass
class LeakyCheck(HealthCheck):
    name: str = "leaky"

    def run(self) -> str:
        raise RuntimeError("could not connect to postgres://admin:hunter2@db.internal:5432/kidoo")


@dataclass
class GrumpyCheck(HealthCheck):
    name: str = "grumpy"

    def run(self) -> str:
        raise HealthWarning("a little slow today")


def _only(settings: Any, *entries: object, **ops: object) -> None:
    settings.OPS = {"HEALTH_CHECKS": list(entries), **ops}


# The framework


def test_run_checks__hung_check_times_out_without_holding_the_others() -> None:
    started = time.perf_counter()
    report = run_checks([SleepyCheck(timeout=0.3), GrumpyCheck()])
    elapsed = time.perf_counter() - started

    sleepy, grumpy = report.results
    assert (sleepy.status, sleepy.message) == (Status.FAILURE, "timed out after 0.3s")
    assert grumpy.status == Status.WARNING
    assert elapsed < 1.5
    assert report.status == Status.FAILURE


def test_run_checks__unexpected_error_is_a_failure_with_redacted_detail() -> None:
    (result,) = run_checks([LeakyCheck()]).results

    assert result.status == Status.FAILURE
    assert result.message == "the check failed unexpectedly (RuntimeError)"
    assert result.detail is not None
    assert "hunter2" not in result.detail
    public = result.as_dict(public=True)
    assert "detail" not in public
    assert "hunter2" not in json.dumps(public)


def test_report__warnings_fail_only_when_asked() -> None:
    report = run_checks([GrumpyCheck()])
    assert report.healthy()
    assert not report.healthy(fail_on_warning=True)
    assert report.unhealthy_names(fail_on_warning=True) == ["grumpy"]


def test_configured_checks__dotted_paths_with_keyword_arguments(settings: Any) -> None:
    _only(
        settings,
        "tests.test_health.GrumpyCheck",
        ("tests.test_health.SleepyCheck", {"name": "nap", "seconds": 0}),
    )
    checks = configured_checks()
    assert [check.name for check in checks] == ["grumpy", "nap"]
    assert [check.name for check in configured_checks(["nap"])] == ["nap"]


def test_default_checks__cover_the_issue_list() -> None:
    names = [check.name for check in configured_checks()]
    assert names == [
        "database",
        "migrations",
        "media_storage",
        "disk",
        "memory",
        "db_size",
        "backup_age",
        "backup_repository",
    ]


# The built-in checks


@pytest.mark.django_db
def test_database_check__select_1_with_latency() -> None:
    assert health_checks.DatabaseCheck().run().startswith("SELECT 1 answered in ")


def test_database_check__sqlite(tmp_path: Path, django_db_blocker: Any) -> None:
    with extra_database("scratch_sqlite", sqlite_entry(tmp_path / "db.sqlite3")), django_db_blocker.unblock():
        assert health_checks.DatabaseCheck(database="scratch_sqlite").run().endswith(" ms")


@pytest.mark.django_db
def test_migrations_check__applied_then_one_missing() -> None:
    assert health_checks.MigrationsCheck().run() == "all migrations applied"
    with connections["default"].cursor() as cursor:
        # The newest of ops' migrations is forgotten: one is unapplied.
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'ops' "
            "AND name = (SELECT max(name) FROM django_migrations WHERE app = 'ops')"
        )

    with pytest.raises(HealthFailure) as failed:
        health_checks.MigrationsCheck().run()
    assert str(failed.value) == "1 unapplied migration(s) in ops: run `manage.py migrate`"


def test_media_storage_check__local_folder_writable(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media" / "nested")
    assert health_checks.MediaStorageCheck().run() == "media folder writable"


def test_media_storage_check__local_folder_not_writable(settings: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    settings.MEDIA_ROOT = str(tmp_path / "a-file" / "media")
    with pytest.raises(HealthFailure) as failed:
        health_checks.MediaStorageCheck().run()
    assert str(failed.value) == "the media folder is not writable (NotADirectoryError)"
    assert "a-file" not in str(failed.value)


def test_media_storage_check__cloudinary_credentials_accepted(cloudinary_settings: Any) -> None:
    assert health_checks.MediaStorageCheck().run() == "Cloudinary credentials accepted"


def test_media_storage_check__cloudinary_wrong_secret_fails(cloudinary_settings: Any) -> None:
    cloudinary.config(api_secret="wrong-secret")
    with pytest.raises(HealthFailure) as failed:
        health_checks.MediaStorageCheck().run()
    assert str(failed.value) == "Cloudinary rejected the credentials"
    assert failed.value.status == Status.FAILURE


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ("http_500", Status.FAILURE, "Cloudinary API failed (GeneralError)"),
        ("http_420", Status.WARNING, "Cloudinary's Admin API rate limit is exhausted"),
        ("connection_reset", Status.FAILURE, "Cloudinary could not be reached"),
    ],
)
def test_media_storage_check__cloudinary_faults(
    cloudinary_settings: Any, cloudinary_emulator: Any, fault: str, status: Status, message: str
) -> None:
    cloudinary_emulator.inject_fault(fault, endpoints=["admin"], times=5)
    (result,) = run_checks([health_checks.MediaStorageCheck()]).results
    assert result.status == status
    assert result.message.startswith(message)


def test_media_storage_check__hung_cloudinary_times_out(
    cloudinary_settings: Any, cloudinary_emulator: Any
) -> None:
    cloudinary_emulator.inject_fault("slow", endpoints=["admin"], delay_seconds=3)
    started = time.perf_counter()
    (result,) = run_checks([health_checks.MediaStorageCheck(timeout=0.5)]).results
    assert (result.status, result.message) == (Status.FAILURE, "timed out after 0.5s")
    assert time.perf_counter() - started < 2


def test_disk_usage_check__thresholds_from_settings(settings: Any, tmp_path: Path) -> None:
    settings.OPS = {"HEALTH_DISK_PATH": str(tmp_path)}
    assert "% of the disk used" in health_checks.DiskUsageCheck().run()

    settings.HEALTH_CHECK = {"DISK_USAGE_MAX": 0}
    with pytest.raises(HealthFailure, match=r"above the 0% limit"):
        health_checks.DiskUsageCheck().run()

    # OPS wins over django-health-check's name.
    settings.OPS = {"HEALTH_DISK_PATH": str(tmp_path), "HEALTH_DISK_USAGE_MAX": 100}
    health_checks.DiskUsageCheck().run()


def test_memory_check__thresholds_from_settings(settings: Any) -> None:
    settings.HEALTH_CHECK = {"MEMORY_MIN": 1}
    assert " MB available (" in health_checks.MemoryCheck().run()

    settings.HEALTH_CHECK = {"MEMORY_MIN": 10**9}
    with pytest.raises(HealthFailure, match=r"below the 1e\+09 MB minimum"):
        health_checks.MemoryCheck().run()

    settings.OPS = {"HEALTH_MEMORY_MIN_MB": 1}
    health_checks.MemoryCheck().run()


def _cgroup(root: Path, limit: str, current: int, inactive_file: int) -> Path:
    root.mkdir()
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.stat").write_text(f"anon 1\ninactive_file {inactive_file}\nactive_file 7\n")
    return root


def test_memory_check__container_limit_counts_not_the_hosts_memory(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 65000000 kB\nMemFree: 1000 kB\nMemAvailable: 30000000 kB\n")
    cgroup = _cgroup(tmp_path / "cg", str(512 * MIB), 480 * MIB, 8 * MIB)

    check = health_checks.MemoryCheck(min_mb=100, meminfo_path=str(meminfo), cgroup_root=str(cgroup))
    with pytest.raises(HealthFailure) as failed:
        check.run()
    assert str(failed.value) == "40 MB available (container), below the 100 MB minimum"


def test_memory_check__unlimited_cgroup_falls_back_to_the_host(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable: 204800 kB\n")
    cgroup = _cgroup(tmp_path / "cg", "max", 480 * MIB, 0)

    check = health_checks.MemoryCheck(min_mb=100, meminfo_path=str(meminfo), cgroup_root=str(cgroup))
    assert check.run() == "200 MB available (host)"


@pytest.mark.django_db
def test_database_size_check__against_the_plan_limit(settings: Any) -> None:
    assert re.fullmatch(r"[\d.]+ MiB of 1\.0 GiB \([\d.]+%\)", health_checks.DatabaseSizeCheck().run())

    settings.OPS = {"DB_SIZE_LIMIT": "1KiB"}
    with pytest.raises(HealthFailure, match=r"at or above 95% of the plan limit") as failed:
        health_checks.DatabaseSizeCheck().run()
    assert failed.value.status == Status.FAILURE

    settings.OPS = {"DB_SIZE_LIMIT": "1KiB", "DB_SIZE_WARN_AT": 1, "DB_SIZE_FAIL_AT": 10**9}
    with pytest.raises(HealthWarning, match=r"at or above 1% of the plan limit"):
        health_checks.DatabaseSizeCheck().run()


def _take_backup(directory: Path, reason: str = "daily") -> str:
    repository = BackupRepository(LocalFolderStore(directory))
    name = new_backup_name(reason)
    with repository.create(name) as sink:
        sink.write(b"archive bytes")
        sink.summary = {"holds_data": True}
    return name


@pytest.mark.django_db
def test_backup_age_check__no_backup_then_a_fresh_one_then_too_old(settings: Any, tmp_path: Path) -> None:
    settings.OPS = {"BACKUP_REPOSITORY": "local", "BACKUP_DIR": str(tmp_path / "backups")}
    repository_dir = tmp_path / "backups"
    with pytest.raises(HealthFailure, match=r"there is no complete backup"):
        health_checks.BackupAgeCheck().run()

    # Parts without a manifest (an interrupted backup) do not count.
    (repository_dir / "20990101T000000Z-interrupted-abcd").mkdir(parents=True)
    (repository_dir / "20990101T000000Z-interrupted-abcd" / "part-00000").write_bytes(b"half")
    with pytest.raises(HealthFailure, match=r"there is no complete backup"):
        health_checks.BackupAgeCheck().run()

    _take_backup(repository_dir)
    assert health_checks.BackupAgeCheck().run() == "newest complete backup is 0.0 hours old"

    settings.OPS = {**settings.OPS, "HEALTH_BACKUP_MAX_AGE_HOURS": 0}
    with pytest.raises(HealthFailure, match=r"older than 0 hours"):
        health_checks.BackupAgeCheck().run()


# The command


def test_healthcheck_command__healthy_exits_0(settings: Any) -> None:
    _only(settings, "ops.health.checks.DiskUsageCheck", "ops.health.checks.MemoryCheck")
    out = StringIO()
    call_command("healthcheck", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("disk    OK  ")
    assert lines[1].startswith("memory  OK  ")
    assert lines[-1] == "Healthy: 2 checks passed."


def test_healthcheck_command__failure_exits_1_naming_the_check(settings: Any) -> None:
    _only(
        settings, "ops.health.checks.DiskUsageCheck", "tests.test_health.LeakyCheck", HEALTH_DISK_USAGE_MAX=0
    )
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("healthcheck", "--format", "json", stdout=out)
    assert raised.value.returncode == 1
    assert str(raised.value) == "Unhealthy: disk, leaky."
    data = json.loads(out.getvalue())
    assert data["status"] == "failure"
    assert [check["status"] for check in data["checks"]] == ["failure", "failure"]
    assert "hunter2" not in out.getvalue()


def test_healthcheck_command__warning_fails_only_with_fail_on_warning(settings: Any) -> None:
    _only(settings, "tests.test_health.GrumpyCheck")
    call_command("healthcheck", stdout=StringIO())
    with pytest.raises(CommandError) as raised:
        call_command("healthcheck", "--fail-on-warning", stdout=StringIO())
    assert raised.value.returncode == 1


def test_healthcheck_command__check_selects_by_name(settings: Any) -> None:
    _only(settings, "tests.test_health.GrumpyCheck", "ops.health.checks.MemoryCheck", HEALTH_MEMORY_MIN_MB=1)
    out = StringIO()
    call_command("healthcheck", "--check", "memory", "--format", "json", stdout=out)
    assert [check["name"] for check in json.loads(out.getvalue())["checks"]] == ["memory"]


def test_healthcheck_command__unknown_check_cannot_run(settings: Any) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("healthcheck", "--check", "nope", stdout=StringIO())
    assert raised.value.returncode == 2
    assert str(raised.value).startswith(
        "No health check named nope. Configured: backup_age, backup_repository, database,"
    )


def test_healthcheck_command__unimportable_check_cannot_run(settings: Any) -> None:
    _only(settings, "tests.test_health.NoSuchCheck")
    with pytest.raises(CommandError) as raised:
        call_command("healthcheck", stdout=StringIO())
    assert raised.value.returncode == 2


def test_configured_checks__a_moved_dotted_path_names_its_new_one(settings: Any) -> None:
    settings.OPS = {"HEALTH_CHECKS": ["ops.health_checks.DatabaseCheck"]}
    with pytest.raises(
        OpsConfigurationError, match=r"has moved\. Write 'ops\.health\.checks\.DatabaseCheck'"
    ):
        configured_checks()
