"""The real-world restore benchmark still runs (one run: its figures mean nothing here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.postgres_server import PostgresServer
from tests.realworld.harness import REPOSITORY

pytestmark = pytest.mark.slow


def test_bench_realworld__runs_once_on_the_suites_server(pg_server: PostgresServer) -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_realworld.py", "--runs", "1"],
        cwd=REPOSITORY,
        env={**os.environ, "TEST_DATABASE_URL": pg_server.url("postgres")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "restore / pg_restore -j 2 = " in result.stdout
    assert "start-up alone / pg_restore -j 2 = " in result.stdout
    assert "the restore's own work (restore - start-up): " in result.stdout
