"""Generating the real projects the suite restores: with each package's own project template."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.realworld.harness import HERE, Project

# Wagtail's contrib apps with models (forms and redirects are in the template already).
WAGTAIL_CONTRIB = [
    "wagtail.contrib.settings",
    "wagtail.contrib.search_promotions",
    "wagtail.contrib.table_block",
    "wagtail.contrib.typed_table_block",
]


def _settings_module(base: str, apps_first: list[str], apps_last: list[str]) -> str:
    overlay = (HERE / "ops_settings.py").read_text()
    return (
        f"from {base} import *  # noqa: F403\n\n{overlay}\n"
        f"INSTALLED_APPS = [*{apps_first!r}, *INSTALLED_APPS, *{apps_last!r}]\n"
    )


def wagtail_site(root: Path, venv: Path) -> Project:
    """``wagtail start mysite``, plus the blog of Wagtail's tutorial and the contrib apps."""
    root.mkdir(parents=True)
    subprocess.run(
        [str(venv / "bin" / "wagtail"), "start", "mysite", str(root)], check=True, capture_output=True
    )
    blog = root / "blog"
    (blog / "migrations").mkdir(parents=True)
    (blog / "__init__.py").write_text("")
    (blog / "migrations" / "__init__.py").write_text("")
    shutil.copy(HERE / "wagtail_site" / "blog_models.py", blog / "models.py")
    shutil.copytree(HERE / "wagtail_site" / "blog_templates", blog / "templates" / "blog")
    (root / "mysite" / "settings" / "ops_realworld.py").write_text(
        _settings_module(".dev", ["blog"], WAGTAIL_CONTRIB)
    )
    project = Project(root, venv, "mysite.settings.ops_realworld", root / "backups", root / "media")
    project.backups.mkdir()
    project.media.mkdir()
    project.manage(f"sqlite:///{root / 'scratch.sqlite3'}", "makemigrations", "blog")
    return project


def djangocms_site(root: Path, venv: Path) -> Project:
    """``django-admin startproject cmssite`` with django CMS, its text plugin, versioning and aliases."""
    root.mkdir(parents=True)
    subprocess.run(
        [str(venv / "bin" / "django-admin"), "startproject", "cmssite", str(root)],
        check=True,
        capture_output=True,
    )
    here = HERE / "djangocms_site"
    (root / "templates").mkdir()
    shutil.copy(here / "page.html", root / "templates" / "page.html")
    shutil.copy(here / "urls.py", root / "cmssite" / "urls.py")
    overlay = (HERE / "ops_settings.py").read_text()
    (root / "cmssite" / "settings_ops.py").write_text(
        f"from .settings import *  # noqa: F403\n\n{(here / 'settings_cms.py').read_text()}\n{overlay}"
    )
    project = Project(root, venv, "cmssite.settings_ops", root / "backups", root / "media")
    project.backups.mkdir()
    project.media.mkdir()
    return project
