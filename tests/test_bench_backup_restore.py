"""The backup/restore benchmark still runs (at a tiny scale: its figures mean nothing here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_backup_restore__runs_at_a_tiny_scale() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "bench/bench_backup_restore.py",
            "--scale",
            "0.001",
            "--no-double",
            "--fraction",
            "0.5",
            "--repeat",
            "2",  # a second backup to the same -o path: --force
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backup / pg_dump time:" in result.stdout
    assert "restore / pg_restore time:" in result.stdout
    assert "extrapolated" in result.stdout
    assert "fastest of 2 interleaved runs each" in result.stdout
    assert "encrypted / plain backup time:" in result.stdout
    assert "encrypted / plain restore time:" in result.stdout
