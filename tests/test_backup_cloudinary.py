"""Backups on Cloudinary (the emulator): faults on 30% of calls, and what each command costs.

The Admin API allows about 500 calls an hour on the free plan, and the site itself needs some:
the counts asserted here are the ones the README promises.
"""

from __future__ import annotations

import io
import secrets
from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command
from pyrage import x25519

from ops.backup import backup_to_repository
from ops.engines.tables import model_tables
from ops.errors import OpsError
from ops.repository.backups import BackupRepository, configured_repository
from ops.repository.stores import CloudinaryStore, RetryPolicy
from ops.repository.verify import verify_backup
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.fidelity import models as fm
from tests.ops_databases import ScratchDatabases

FAULT_KINDS = ("http_500", "http_503", "http_420", "connection_reset", "truncated_body")
# Each kind fires on its own; together they fail 30% of calls: 1 - (1 - p) ** 5 = 0.3.
RATE_PER_KIND = 1 - 0.7 ** (1 / len(FAULT_KINDS))


@pytest.fixture
def age_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    identity = x25519.Identity.generate()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(identity.to_public()))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))


def with_rows(alias: str, tags: int = 4000) -> str:
    # Random names: the archive does not compress away, so it spans several 20 KB parts.
    fm.Tag.objects.using(alias).bulk_create(fm.Tag(name=secrets.token_hex(16)) for _ in range(tags))
    return alias


def no_wait(attempts: int) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, first_delay=0, max_delay=0)


@pytest.mark.usefixtures("age_keys")
def test_backup__thirty_percent_faults_complete_through_retries_or_leave_nothing_listed(
    scratch: ScratchDatabases, cloudinary_emulator: CloudinaryEmulator
) -> None:
    cloudinary_emulator.limits.raw_max_size_bytes = 20_000
    alias = with_rows(scratch.postgres())
    tables = model_tables(alias)
    calm = BackupRepository(CloudinaryStore("ops-backups/faults", retry=no_wait(6)))
    backup_to_repository(alias, calm, tables, reason="before")
    outcomes = Counter[str]()
    # Six attempts a call ride out 30% faults; a single attempt does not: both endings are seen.
    for seed, attempts in enumerate([6, 1, 6, 1, 6, 1, 6, 1]):
        before = [backup.name for backup in calm.backups()]
        for number, kind in enumerate(FAULT_KINDS):
            cloudinary_emulator.inject_fault(kind, rate=RATE_PER_KIND, seed=seed * 10 + number)
        flaky = BackupRepository(CloudinaryStore("ops-backups/faults", retry=no_wait(attempts)))
        try:
            name, _, _ = backup_to_repository(alias, flaky, tables, reason="daily")
        except OpsError as error:
            failure = str(error)
        else:
            failure = ""
        if failure:
            cloudinary_emulator.clear_faults()
            assert "failed on Cloudinary" in failure
            assert [backup.name for backup in calm.backups()] == before
            outcomes["failed cleanly"] += 1
            continue
        # Verified through the same faults: downloads retry too.
        patient = BackupRepository(CloudinaryStore("ops-backups/faults", retry=no_wait(8)))
        result = verify_backup(patient, name)
        cloudinary_emulator.clear_faults()
        assert result.parts > 1
        assert [backup.name for backup in calm.backups()] == [name, *before]
        outcomes["completed"] += 1
    assert set(outcomes) == {"completed", "failed cleanly"}
    assert sum(rule.fired for rule in cloudinary_emulator.faults.rules()) == 0  # cleared


@pytest.mark.usefixtures("age_keys")
def test_backup__an_upload_that_keeps_failing_stops_the_encrypted_backup_with_its_reason(
    scratch: ScratchDatabases, cloudinary_emulator: CloudinaryEmulator
) -> None:
    cloudinary_emulator.limits.raw_max_size_bytes = 20_000
    # Far more archive than a pipe holds after the first failed part: the backup must stop, not
    # wait forever for the encryption thread that died.
    alias = with_rows(scratch.postgres(), tags=20_000)
    repository = BackupRepository(CloudinaryStore("ops-backups/failing", retry=no_wait(2)))
    cloudinary_emulator.inject_fault("http_503", endpoints=["upload"], times=1000)

    with pytest.raises(OpsError, match=r"Uploading .*/part-00000 failed on Cloudinary"):
        backup_to_repository(alias, repository, model_tables(alias), reason="daily")

    cloudinary_emulator.clear_faults()
    assert repository.backups(include_incomplete=True) == []


def test_admin_api_cost_of_backup_list_verify_restore_and_prune(
    scratch: ScratchDatabases, cloudinary_emulator: CloudinaryEmulator, settings: Any, age_keys: None
) -> None:
    settings.OPS = {
        **settings.OPS,
        "BACKUP_REPOSITORY": "cloudinary",
        # One namespace for the source and the target database of the restore.
        "BACKUP_NAMESPACE": "kidoo",
        "BACKUP_KEEP_LAST": 1,
        "BACKUP_KEEP_DAILY": 0,
        "BACKUP_KEEP_WEEKLY": 0,
        "BACKUP_KEEP_MONTHLY": 0,
    }
    cloudinary_emulator.limits.raw_max_size_bytes = 20_000
    alias = with_rows(scratch.postgres())
    target = scratch.postgres()

    def spent(*args: str, **options: Any) -> Counter[str]:
        before = cloudinary_emulator.calls
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO(), **options)
        return cloudinary_emulator.calls - before

    backup = spent("backup", database=alias)
    spent("backup", database=alias)
    spent("backup", database=alias)
    backups = configured_repository(alias).backups()
    newest = backups[0]
    parts = len(newest.parts)
    assert parts > 1
    # The account's size limit (1 Admin call), the parts and the manifest (uploads), the manifest
    # read back for the summary line.
    assert backup == Counter(admin=1, upload=parts + 1, download=1)
    # One listing page per 500 stored objects, one manifest download per backup.
    assert spent("backup", database=alias, list=True) == Counter(admin=1, download=3)
    # verify: the manifest and the parts (a backup of a database without media has no media
    # stream to download); --latest lists and reads every manifest first.
    assert spent("backup", database=alias, verify=newest.name) == Counter(download=1 + parts)
    assert spent("backup", "--verify", "--latest", database=alias) == Counter(admin=1, download=3 + parts)
    # Into an empty database (no safety backup to take): by name, then --latest.
    restore = spent("restore", newest.name, database=target, interactive=False)
    assert restore == Counter(download=1 + parts)
    call_command("flush", database=target, interactive=False, verbosity=0)
    latest = spent("restore", database=target, latest=True, if_empty=True, interactive=False)
    assert latest == Counter(admin=1, download=3 + 1 + parts)
    assert spent("restore", database=target, latest=True, if_empty=True, interactive=False) == Counter()
    # Deleting a backup: list its objects, delete the manifest, delete the parts.
    assert spent("backup", database=alias, prune_only=True) == Counter(admin=1 + 3 * 2, download=3)
