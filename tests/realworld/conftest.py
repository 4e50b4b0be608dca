"""Fixtures of the real-world suite: a project's virtualenv, and databases on the suite's server."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.postgres_server import PostgresServer
from tests.realworld.harness import Project, driver

_numbers = itertools.count()


@pytest.fixture(scope="module")
def new_database(pg_server: PostgresServer) -> Iterator[Callable[..., str]]:
    """Creates databases (empty, or copies of another) on the suite's server; returns their URLs."""
    made: list[str] = []

    def create(*, copy_of: str | None = None) -> str:
        name = f"realworld_{driver()}_{next(_numbers)}"
        pg_server.drop_database(name)
        pg_server.create_database(name, template=copy_of.rsplit("/", 1)[1] if copy_of else "template0")
        made.append(name)
        return pg_server.url(name)

    yield create
    for name in made:
        pg_server.drop_database(name)


def restore_json(output: str) -> dict:
    """The summary ``restore --format json`` prints."""
    lines = output.splitlines()
    start = max(index for index, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


def restore_archive(project: Project, url: str, archive: Any, **extra: str) -> dict:
    """``manage.py restore ARCHIVE --no-input --format json`` in ``project``: its summary."""
    result = project.manage(url, "restore", str(archive), "--no-input", "--format", "json", **extra)
    return restore_json(result.stdout)


def backed_up_site(project: Project, new_database: Callable[..., str], populate: str) -> dict[str, Any]:
    """The site migrated on a new PostgreSQL database, filled by script ``populate``, its state
    (tables and pages) and a backup of it (``-o``): the source every real-world test compares with."""
    url = new_database()
    project.manage(url, "migrate", "--no-input", "-v0")
    urls = project.script(url, populate)["urls"]
    state = project.script(url, "site_state", "sql", *urls)
    archive = project.root / "site.ops"
    project.manage(url, "backup", "-o", str(archive))
    return {"url": url, "urls": urls, "state": state, "archive": archive}


def restored_into_new(
    project: Project, source: dict[str, Any], new_database: Callable[..., str]
) -> dict[str, Any]:
    """The source's backup restored into an empty database (no tables at all)."""
    target = new_database()
    return {"url": target, "summary": restore_archive(project, target, source["archive"])}


def assert_same_site(restored: dict, source: dict, *, pages: bool = True) -> None:
    """Every table digest-equal, the same migrations, and (``pages``) every page the same HTML."""
    differing = {
        table: (source["tables"].get(table), restored["tables"].get(table))
        for table in set(source["tables"]) | set(restored["tables"])
        if source["tables"].get(table) != restored["tables"].get(table)
    }
    assert differing == {}
    assert restored["migrations"] == source["migrations"]
    if pages:
        for url, (status, html) in source["pages"].items():
            assert status in (200, 301, 302), url
            assert restored["pages"][url] == [status, html], url
