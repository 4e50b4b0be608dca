"""ops/ imports run downward only: each wing imports the wings below it, never beside or above.

The rule is in each subpackage's ``__init__`` docstring; this test walks every module's imports
(lazy ones inside functions included) with ``ast`` so a break fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parent.parent / "ops"

# Modules every layer may use: settings, errors, optional imports, progress callbacks, the models.
BASE = {"ops.conf", "ops.errors", "ops.extras", "ops.progress", "ops.models"}
# What each wing may import besides itself and BASE. Anything not listed here (backup, restore,
# checks, apps, management commands) orchestrates and may import everything.
ALLOWED: dict[str, set[str]] = {
    "ops.archive": {"ops.conf", "ops.errors"},
    "ops.engines": {"ops.archive", *BASE},
    "ops.repository": {"ops.archive", *BASE},
    "ops.media": {"ops.repository", "ops.engines", "ops.archive", *BASE},
    "ops.health": {"ops.repository", "ops.engines", "ops.archive", *BASE},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(OPS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_ops_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from ops.engines import pg_load` imports the module ops.engines.pg_load.
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "ops" or name.startswith("ops.")}


def wing_of(module: str) -> str | None:
    return next((wing for wing in ALLOWED if module == wing or module.startswith(wing + ".")), None)


def allowed(importer_wing: str, imported: str) -> bool:
    if imported == "ops" or wing_of(imported) == importer_wing:
        return True
    return any(imported == target or imported.startswith(target + ".") for target in ALLOWED[importer_wing])


LIBRARY_MODULES = sorted(
    path for path in OPS.rglob("*.py") if "migrations" not in path.parts and wing_of(module_name(path))
)


@pytest.mark.parametrize("path", LIBRARY_MODULES, ids=lambda path: module_name(path))
def test_layout__imports_run_downward_only(path: Path) -> None:
    importer = module_name(path)
    wing = wing_of(importer)
    assert wing is not None
    offending = sorted(name for name in imported_ops_modules(path) if not allowed(wing, name))
    assert not offending, f"{importer} ({wing}) may not import {offending}: see {wing}/__init__.py"


def test_layout__every_wing_says_what_it_owns_and_may_import() -> None:
    for wing in ALLOWED:
        init = OPS.joinpath(*wing.split(".")[1:], "__init__.py")
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "Owns" in docstring, init
        assert "Imports from ops" in docstring, init


def test_layout__the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    # The checker itself: an archive module reaching up into the repository is refused.
    module = tmp_path / "bad.py"
    module.write_text("from ops.repository.backups import BackupRepository\nimport ops.backup\n")
    offending = sorted(name for name in imported_ops_modules(module) if not allowed("ops.archive", name))
    assert offending == ["ops.backup", "ops.repository.backups", "ops.repository.backups.BackupRepository"]
