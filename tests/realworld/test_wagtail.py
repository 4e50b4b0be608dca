"""A Wagtail site made by ``wagtail start``, backed up and restored by ``ops`` like a user would.

Built from the registry's packages (tests/realworld/requirements-wagtail.txt), in a virtualenv of
its own, with Wagtail's own APIs filling it (scripts/wagtail_populate.py): 195 migrations with
data migrations, a page tree, StreamField, modelcluster's ParentalKey, images and renditions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.realworld.conftest import (
    assert_same_site,
    backed_up_site,
    restore_archive,
    restore_json,
    restored_into_new,
)
from tests.realworld.harness import Project, driver, virtualenv
from tests.realworld.sites import wagtail_site

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return wagtail_site(tmp_path_factory.mktemp("wagtail") / "site", virtualenv("wagtail", driver()))


@pytest.fixture(scope="module")
def source(project: Project, new_database: Callable[..., str]) -> dict[str, Any]:
    return backed_up_site(project, new_database, "wagtail_populate")


@pytest.fixture(scope="module")
def restored(project: Project, source: dict[str, Any], new_database: Callable[..., str]) -> dict[str, Any]:
    return restored_into_new(project, source, new_database)


def test_wagtail__restore_into_empty_database(project, source, restored):
    assert restored["summary"]["restored"] is True
    # Built in the private schema on 2 connections: the data migrations ran there, not elsewhere.
    assert restored["summary"]["jobs"] == 2
    assert_same_site(project.script(restored["url"], "site_state", "sql", *source["urls"]), source["state"])


def test_wagtail__restore_over_changed_data(project, source, new_database):
    target = new_database(copy_of=source["url"])
    project.script(target, "wagtail_change")
    summary = restore_archive(project, target, source["archive"])
    assert summary["safety_backup"]
    assert_same_site(project.script(target, "site_state", "sql", *source["urls"]), source["state"])


def test_wagtail__one_transactionrestore_archive(project, source, new_database):
    """RESTORE_JOBS=1: the migrations replay inside the restore's one transaction."""
    target = new_database(copy_of=source["url"])
    project.script(target, "wagtail_change")
    result = project.manage(
        target, "restore", str(source["archive"]), "--no-input", "--format", "json", OPS_RESTORE_JOBS="1"
    )
    assert restore_json(result.stdout)["jobs"] == 1
    assert_same_site(project.script(target, "site_state", "sql", *source["urls"]), source["state"])


def test_wagtail__private_schema_build_leaves_live_database_alone(project, source, new_database):
    """The data migrations (home.0002 creates a page and a site through the default connection)
    run while the private schema is built: the live tables and sequences must not move."""
    target = new_database(copy_of=source["url"])
    project.script(target, "wagtail_change")
    before = project.script(target, "site_state", "sql")
    assert project.script(target, "build_only", str(source["archive"]))["rows"] > 0
    after = project.script(target, "site_state", "sql")
    assert after["tables"] == before["tables"]
    assert after["sequences"] == before["sequences"]


def test_wagtail__new_rows_get_fresh_keys(project, source, restored, new_database):
    target = new_database(copy_of=restored["url"])
    created = project.script(target, "wagtail_new_rows")
    for label, key in created.items():
        assert key > source["state"]["max_keys"][label], label


# --- the site on SQLite (Wagtail's default database): restored into SQLite, and into PostgreSQL ---

SEARCH_TABLES = {"wagtailsearch_indexentry", "wagtailsearch_indexentry_fts"}


@pytest.fixture(scope="module")
def sqlite_source(project: Project) -> dict[str, Any]:
    url = f"sqlite:///{project.root / 'source.sqlite3'}"
    project.manage(url, "migrate", "--no-input", "-v0")
    urls = project.script(url, "wagtail_populate")["urls"]
    state = project.script(url, "site_state", "sql", *urls)
    portable = project.script(url, "site_state", "orm", *urls)
    archive = project.root / "sqlite-site.ops"
    project.manage(url, "backup", "-o", str(archive))
    return {"url": url, "urls": urls, "state": state, "portable": portable, "archive": archive}


def test_wagtail__sqlite_to_sqlite(project, sqlite_source):
    target = f"sqlite:///{project.root / 'restored.sqlite3'}"
    restore_archive(project, target, sqlite_source["archive"])
    assert_same_site(
        project.script(target, "site_state", "sql", *sqlite_source["urls"]), sqlite_source["state"]
    )


def test_wagtail__sqlite_to_postgresql_leaves_out_only_the_search_index(project, sqlite_source, new_database):
    target = new_database()
    result = project.manage(target, "restore", str(sqlite_source["archive"]), "--no-input")
    assert "Restored sqlite-site.ops" in result.stdout
    # Named, with how to rebuild them; not an error.
    assert (
        "wagtailsearch_indexentry (wagtailsearch.IndexEntry: rebuild it with `python manage.py update_index`)"
        in (result.stderr)
    )
    restored = project.script(target, "site_state", "orm", *sqlite_source["urls"])
    source = sqlite_source["portable"]
    kept = {table: digest for table, digest in source["tables"].items() if table not in SEARCH_TABLES}
    assert {table: restored["tables"].get(table) for table in kept} == kept
    assert restored["tables"]["wagtailsearch_indexentry"][0] == 0
    # The search page needs the index rebuilt; every other page is the same.
    pages = {url: page for url, page in source["pages"].items() if not url.startswith("/search/")}
    assert {url: restored["pages"][url] for url in pages} == pages
    # Rebuilt as the warning says, the index covers what the source's did (ranking is each engine's).
    project.manage(target, "update_index", "-v0")
    rebuilt = project.script(target, "site_state", "orm")["tables"]["wagtailsearch_indexentry"]
    assert rebuilt[0] == source["tables"]["wagtailsearch_indexentry"][0] > 0


def test_wagtail__postgresql_to_sqlite_leaves_out_only_the_search_index(project, source):
    target = f"sqlite:///{project.root / 'from-postgresql.sqlite3'}"
    result = project.manage(target, "restore", str(source["archive"]), "--no-input")
    assert "wagtailsearch_indexentry (wagtailsearch.IndexEntry: rebuild it with" in result.stderr
    portable = project.script(source["url"], "site_state", "orm", *source["urls"])
    restored = project.script(target, "site_state", "orm", *source["urls"])
    # The migrate forward after the restore gives the model only SQLite has (the FTS table) its
    # content type and 4 permissions, as `migrate` does on any SQLite site: nothing else differs.
    assert set(restored["content_types"]) - set(portable["content_types"]) == {
        "wagtailsearch.sqliteftsindexentry"
    }
    assert restored["tables"]["auth_permission"][0] == portable["tables"]["auth_permission"][0] + 4
    created = SEARCH_TABLES | {"django_content_type", "auth_permission"}
    kept = {table: digest for table, digest in portable["tables"].items() if table not in created}
    assert {table: restored["tables"].get(table) for table in kept} == kept
    pages = {url: page for url, page in portable["pages"].items() if not url.startswith("/search/")}
    assert {url: restored["pages"][url] for url in pages} == pages
