"""The normalize_media_urls benchmark still runs (at a tiny scale: its figures mean nothing here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_normalize_media_urls__runs_at_a_tiny_scale() -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_normalize_media_urls.py", "--rows", "2000", "--naive-sample", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[1x] apply:   Repaired on default: 4,000 media values in 2 fields" in result.stdout
    # Verification is on: the emulator counts the Admin API calls; local disk looks every name up.
    assert "would fix (verified)" in result.stdout
    assert "Admin API calls]" in result.stdout
    assert "[local 1x] dry run: Dry run on default: 4,000 media values" in result.stdout
    assert "naive / apply time:" in result.stdout
    assert "extrapolated linearly" in result.stdout
    assert "peak RSS 2x / 1x:" in result.stdout
