"""Build the ``ops`` wheel (django-data-safety) the way a user's ``pip install`` would.

From a copy holding only what the package needs (pyproject.toml, README.md, ops/), so the
checkout gets no build/ folder; used by the packaging test and the real-world suite.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(destination: Path) -> Path:
    """The wheel built from this checkout, in ``destination``."""
    with tempfile.TemporaryDirectory(prefix="ops-wheel-source-") as scratch:
        source = Path(scratch)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, source / name)
        shutil.copytree(ROOT / "ops", source / "ops", ignore=shutil.ignore_patterns("__pycache__"))
        destination.mkdir(parents=True, exist_ok=True)
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        subprocess.run([*pip_wheel, "--wheel-dir", str(destination), str(source)], check=True)
    (built,) = destination.glob("django_data_safety-*.whl")
    return built
