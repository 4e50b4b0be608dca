"""ops/engines/migration_state.py: the connection that builds a database stands in for its alias.

End to end (data migrations of a real project writing through the default connection, deferred
checks between migrations in one transaction): tests/realworld/test_wagtail.py.
"""

from __future__ import annotations

import copy
import threading

from django.db import connections
from django.db.utils import load_backend

from ops.engines.migration_state import standing_in


def _another_default():
    settings = copy.deepcopy(connections.settings["default"])
    return load_backend(settings["ENGINE"]).DatabaseWrapper(settings, "default")


def test_standing_in__the_alias_is_the_given_connection_inside_and_the_live_one_after() -> None:
    live = connections["default"]
    building = _another_default()

    with standing_in(building):
        inside = connections["default"]
        seen_by_another_thread = []
        thread = threading.Thread(target=lambda: seen_by_another_thread.append(connections["default"]))
        thread.start()
        thread.join()

    assert inside is building
    assert connections["default"] is live
    # Per thread: a request served meanwhile by another thread keeps the live database.
    assert seen_by_another_thread[0] is not building


def test_standing_in__the_live_connection_comes_back_after_a_failure() -> None:
    live = connections["default"]
    building = _another_default()

    try:
        with standing_in(building):
            raise RuntimeError("a migration failed")
    except RuntimeError:
        pass

    assert connections["default"] is live


def test_standing_in__nested_for_the_same_connection_is_a_no_op() -> None:
    live = connections["default"]
    with standing_in(live) as connection:
        assert connection is live
        assert connections["default"] is live
