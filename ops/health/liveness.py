"""The /healthz probe: is this process up and its database reachable, answered cheaply and boundedly.

Render probes every few seconds and gives up after 5; a load balancer may probe far more often. So:

- one probe at a time per process, on its own thread: a caller waits at most
  ``OPS["HEALTHZ_DB_TIMEOUT"]`` seconds, however long the database takes to (not) answer;
- its answer is reused for ``OPS["HEALTHZ_CACHE_SECONDS"]``, so 100 concurrent clients cost the
  database about one ``SELECT 1`` per second per process;
- on PostgreSQL it keeps one connection of its own, opened with ``connect_timeout``, a
  ``statement_timeout`` and TCP keepalives, and drops it at the first error, so a database that went
  away holds nothing and one that came back is found again by the next probe.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from ops.conf import ops_setting


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    # Operator-facing reason (logged, never sent to the public).
    reason: str
    at: float


class _Probe:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.started = time.monotonic()
        self.result: ProbeResult | None = None


class DatabaseLiveness:
    def __init__(self, database: str = DEFAULT_DB_ALIAS) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._last: ProbeResult | None = None
        self._inflight: _Probe | None = None
        self._connection: Any = None
        self._pid = os.getpid()

    def check(self) -> ProbeResult:
        timeout = float(ops_setting("HEALTHZ_DB_TIMEOUT"))
        ttl = float(ops_setting("HEALTHZ_CACHE_SECONDS"))
        now = time.monotonic()
        with self._lock:
            if self._pid != os.getpid():
                # A forked worker must not share its parent's socket: forget it, do not close it.
                self._pid, self._connection, self._last, self._inflight = os.getpid(), None, None, None
            last = self._last
            if last is not None and now - last.at < ttl:
                return last
            probe = self._inflight
            # A probe stuck past twice the timeout is abandoned; its late answer is still recorded.
            if probe is None or now - probe.started > 2 * timeout:
                probe = self._inflight = _Probe()
                threading.Thread(target=self._run, args=(probe, timeout), daemon=True).start()
        if probe.done.wait(timeout) and probe.result is not None:
            return probe.result
        result = ProbeResult(False, f"the database did not answer within {timeout:g}s", time.monotonic())
        with self._lock:
            self._last = result
        return result

    def reset(self) -> None:
        """Forget the cached answer and close the probe's connection (tests; settings changes)."""
        with self._lock:
            self._last, self._inflight = None, None
            connection, self._connection = self._connection, None
        if connection is not None:
            _close_quietly(connection)

    def _run(self, probe: _Probe, timeout: float) -> None:
        try:
            self._select_one(timeout)
            result = ProbeResult(True, "ok", time.monotonic())
        except Exception as error:
            result = ProbeResult(False, f"{type(error).__name__}", time.monotonic())
        probe.result = result
        probe.done.set()
        with self._lock:
            self._last = result
            if self._inflight is probe:
                self._inflight = None

    def _select_one(self, timeout: float) -> None:
        wrapper = connections[self.database]
        if wrapper.vendor != "postgresql":
            _select_one_via_django(self.database)
            return
        connection = self._connection
        if connection is None:
            connection = self._connection = _connect_postgresql(wrapper, timeout)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception:
            with self._lock:
                if self._connection is connection:
                    self._connection = None
            _close_quietly(connection)
            raise


def _connect_postgresql(wrapper: Any, timeout: float) -> Any:
    params = dict(wrapper.get_connection_params())
    seconds = max(1, math.ceil(timeout))
    milliseconds = int(timeout * 1000)
    params["connect_timeout"] = seconds
    params["options"] = f"{params.get('options', '')} -c statement_timeout={milliseconds}".strip()
    # A server that vanished without a FIN (a host gone, a network cut) is noticed within the timeout.
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", seconds)
    params.setdefault("keepalives_interval", 1)
    params.setdefault("keepalives_count", 2)
    params.setdefault("tcp_user_timeout", milliseconds)
    params["application_name"] = "ops-healthz"
    connection = wrapper.Database.connect(**params)
    connection.autocommit = True
    return connection


def _select_one_via_django(database: str) -> None:
    # SQLite and others: a fresh, private connection (cheap for a local file) closed right after.
    wrapper = connections.create_connection(database)
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        wrapper.close()


def _close_quietly(connection: Any) -> None:
    # Closing a broken connection can fail too; there is nothing left to do then.
    with contextlib.suppress(Exception):
        connection.close()


_probes: dict[str, DatabaseLiveness] = {}
_probes_lock = threading.Lock()


def database_liveness(database: str = DEFAULT_DB_ALIAS) -> DatabaseLiveness:
    """The process's probe for ``database`` (one per process, shared by its threads)."""
    with _probes_lock:
        probe = _probes.get(database)
        if probe is None:
            probe = _probes[database] = DatabaseLiveness(database)
        return probe
