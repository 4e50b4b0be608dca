"""The data-safety page benchmark still runs (at a tiny scale: its figures mean nothing here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_data_safety_page__runs_at_a_tiny_scale() -> None:
    tiny = ["--backups", "3", "--samples", "20", "--repeat", "2"]
    result = subprocess.run(
        [sys.executable, "bench/bench_data_safety_page.py", *tiny],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 backups taken in" in result.stdout
    assert "page, warm (listing cached)" in result.stdout
    assert "x the anchor" in result.stdout
    assert "peak RSS of this process:" in result.stdout
