"""A django CMS site (django CMS 5, its text plugin, versioning and aliases) backed up and restored.

django CMS's history: 50-odd migrations of its own, with data migrations (the move of page content
to ``PageContent`` in 4.0), plus djangocms-versioning's and djangocms-alias's; generic relations
(versions point at their content by content type), treebeard trees, plugins by inheritance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.realworld.conftest import assert_same_site, backed_up_site, restore_archive, restored_into_new
from tests.realworld.harness import Project, driver, virtualenv
from tests.realworld.sites import djangocms_site

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return djangocms_site(tmp_path_factory.mktemp("djangocms") / "site", virtualenv("djangocms", driver()))


@pytest.fixture(scope="module")
def source(project: Project, new_database: Callable[..., str]) -> dict[str, Any]:
    return backed_up_site(project, new_database, "djangocms_populate")


@pytest.fixture(scope="module")
def restored(project: Project, source: dict[str, Any], new_database: Callable[..., str]) -> dict[str, Any]:
    return restored_into_new(project, source, new_database)


def test_djangocms__restore_into_empty_database(project, source, restored):
    assert restored["summary"]["restored"] is True
    assert restored["summary"]["jobs"] == 2
    assert_same_site(project.script(restored["url"], "site_state", "sql", *source["urls"]), source["state"])


def test_djangocms__restore_over_changed_data(project, source, new_database):
    target = new_database(copy_of=source["url"])
    project.script(target, "djangocms_change")
    summary = restore_archive(project, target, source["archive"], OPS_RESTORE_JOBS="1")
    assert summary["safety_backup"]
    assert_same_site(project.script(target, "site_state", "sql", *source["urls"]), source["state"])


def test_djangocms__new_rows_get_fresh_keys(project, source, restored, new_database):
    target = new_database(copy_of=restored["url"])
    created = project.script(target, "djangocms_new_rows")
    for label, key in created.items():
        assert key > source["state"]["max_keys"][label], label
