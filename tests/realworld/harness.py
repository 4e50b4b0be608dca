"""Real projects, built from registry packages, each in a virtualenv of its own, with ``ops`` in it.

A project's virtualenv holds its pinned requirements (``requirements-<project>.txt``) plus the
database driver under test, and is cached by the hash of what went into it (under
``$OPS_REALWORLD_CACHE``, default ``~/.cache/ops-realworld``), so only the first run pays for the
install. ``ops`` goes in as a user installs it: ``pip install`` of the wheel built from this
checkout (tests/wheel.py), reinstalled in every test run so the venv always has today's code. The
wheel holds ``ops`` alone (not ``api/`` nor the project's settings): the project sees the toolkit
and nothing else of ours.

The driver: ``OPS_TEST_DRIVER`` (``psycopg2``, the default, or ``psycopg`` for psycopg 3). Django
uses psycopg 3 whenever it is installed, so the psycopg2 leg's virtualenv does not have it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.wheel import build_wheel

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent.parent
DRIVERS = {"psycopg2": [], "psycopg": ["psycopg[binary]==3.3.9"]}


def driver() -> str:
    name = os.environ.get("OPS_TEST_DRIVER", "psycopg2")
    if name not in DRIVERS:
        raise RuntimeError(f"OPS_TEST_DRIVER={name!r}: use one of {', '.join(DRIVERS)}")
    return name


def cache_dir() -> Path:
    # Outside the clone: CI starts from a fresh clone each time, on a machine that keeps ~/.cache.
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ops-realworld"
    path = Path(os.environ.get("OPS_REALWORLD_CACHE") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


_WHEEL: list[Path] = []


def ops_wheel() -> Path:
    """This checkout's wheel of ops, built once per test process."""
    if not _WHEEL:
        _WHEEL.append(build_wheel(Path(tempfile.mkdtemp(prefix="ops-realworld-wheel-"))))
    return _WHEEL[0]


def virtualenv(project: str, driver_name: str) -> Path:
    """The project's virtualenv for ``driver_name``, built once per requirements hash."""
    requirements = (HERE / f"requirements-{project}.txt").read_text()
    extra = DRIVERS[driver_name]
    key = hashlib.sha256("\n".join([requirements, *extra, sys.version, driver_name]).encode()).hexdigest()[
        :16
    ]
    venv = cache_dir() / f"venv-{project}-{driver_name}-{key}"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not (venv / "ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, "-r", str(HERE / f"requirements-{project}.txt"), *extra], check=True)
        (venv / "ready").write_text(key)
    # Today's ops, as a user installs it; its dependencies are already pinned in the venv.
    installed = venv / "ops-wheel"
    if not installed.exists() or installed.read_text() != str(ops_wheel()):
        subprocess.run([*pip, "--no-deps", "--force-reinstall", str(ops_wheel())], check=True)
        installed.write_text(str(ops_wheel()))
    return venv


@dataclass
class Project:
    """A generated project on disk, run with its own virtualenv against ``database_url``."""

    root: Path
    venv: Path
    settings: str
    backups: Path
    media: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, database_url: str, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DATABASE_", "PYTHON")) and key != "VIRTUAL_ENV"
        }
        env.update(
            DJANGO_SETTINGS_MODULE=self.settings,
            DATABASE_URL=database_url,
            OPS_BACKUP_DIR=str(self.backups),
            MEDIA_ROOT=str(self.media),
            PATH=f"{self.venv / 'bin'}:{env.get('PATH', '')}",
            **self.env,
            **extra,
        )
        return env

    def run(
        self, database_url: str, *argv: str, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        """``python argv...`` in the project folder with the project's virtualenv."""
        result = subprocess.run(
            [str(self.venv / "bin" / "python"), *argv],
            cwd=self.root,
            env=self.environment(database_url, **extra),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-8000:]}"
            )
        return result

    def manage(self, database_url: str, *argv: str, check: bool = True, **extra: str):
        return self.run(database_url, "manage.py", *argv, check=check, **extra)

    def script(self, database_url: str, name: str, *argv: str, **extra: str) -> dict:
        """Run tests/realworld/scripts/<name>.py in the project; returns the JSON it prints last."""
        result = self.run(database_url, str(HERE / "scripts" / f"{name}.py"), *argv, **extra)
        return json.loads(result.stdout.strip().splitlines()[-1])
