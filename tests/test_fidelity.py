"""backup -> restore keeps every row of every table identical, for every field type, hostile values."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.backup import run_backup
from ops.restore import run_restore
from tests.fidelity.data import fingerprint, populate, sequences_next
from tests.ops_databases import ScratchDatabases

pytestmark = pytest.mark.usefixtures("backup_dir")


def test_fidelity__postgresql_round_trip_into_an_empty_database_is_identical(
    scratch: ScratchDatabases, tmp_path: Path
) -> None:
    source = scratch.postgres()
    populate(source)
    before = fingerprint(source)
    archive = tmp_path / "fidelity.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.postgres(migrated=False)

    result = run_restore(target, str(archive))

    assert result.restored
    assert fingerprint(target) == before
    assert before["fidelity_everything"][0] == 11
    assert before["fidelity_emptything"][0] == 0
    assert before["fidelity_pgonly"][0] == 2
    # Sequences continue after the restored ids.
    assert sequences_next(target) == sequences_next(source)


def test_fidelity__sqlite_round_trip_is_identical(scratch: ScratchDatabases, tmp_path: Path) -> None:
    source = scratch.sqlite()
    populate(source)
    before = fingerprint(source)
    archive = tmp_path / "fidelity.kidoo-backup"
    run_backup(source, output=str(archive))
    target = scratch.sqlite(migrated=False)

    result = run_restore(target, str(archive))

    assert result.restored
    assert fingerprint(target) == before
    assert "fidelity_pgonly" not in before
    assert sequences_next(target) == sequences_next(source)
