"""/healthz (the platform's probe) and the token-guarded detailed health view.

The outage tests run their own throwaway PostgreSQL cluster, so stopping it leaves the suite's
server alone.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from ops.health import liveness
from tests.postgres_server import ThrowawayPostgresServer, throwaway_cluster
from tests.scratch_databases import extra_database

TOKEN = "a-long-random-token-for-the-health-view-0123456789"


@pytest.fixture(autouse=True)
def _fresh_probes() -> Iterator[None]:
    # The probe keeps a connection per process: close it, or the test database cannot be dropped.
    for probe in liveness._probes.values():
        probe.reset()
    yield
    for probe in liveness._probes.values():
        probe.reset()


@pytest.fixture(scope="module")
def outage_server() -> Iterator[ThrowawayPostgresServer]:
    try:
        with throwaway_cluster() as server:
            assert isinstance(server, ThrowawayPostgresServer)
            server.create_database("kidoo_outage")
            yield server
    except RuntimeError as error:  # no server binaries on this machine
        pytest.skip(str(error))


@pytest.fixture
def outage_alias(outage_server: ThrowawayPostgresServer, django_db_blocker: Any) -> Iterator[str]:
    with (
        extra_database("outage", outage_server.database_settings("kidoo_outage")),
        django_db_blocker.unblock(),
    ):
        yield "outage"


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port whose listener completes TCP handshakes and then never says a word (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def _wait_for(client: Client, status: int, within: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        if client.get("/healthz").status_code == status:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise AssertionError(f"/healthz did not answer {status} within {within}s")


# /healthz


@pytest.mark.django_db
def test_healthz__ok_when_the_database_answers(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Content-Type"] == "text/plain"
    assert response["Cache-Control"] == "no-store"
    assert client.head("/healthz").status_code == 200


@pytest.mark.django_db
def test_healthz__post_is_not_allowed(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_healthz__answers_plain_http_with_ssl_redirect_on_and_an_ip_host(
    client: Client, settings: Any
) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["kidoo.example"]

    response = client.get("/healthz", HTTP_HOST="10.214.3.7:10000")

    assert response.status_code == 200
    # Everything else is still redirected and host-checked.
    assert client.get("/api/", HTTP_HOST="kidoo.example").status_code == 301
    assert client.get("/api/", HTTP_HOST="10.214.3.7:10000", secure=True).status_code == 400


@pytest.mark.django_db
def test_healthz__served_by_the_urlconf_without_the_middleware(client: Client, settings: Any) -> None:
    settings.MIDDLEWARE = [
        m for m in django_settings.MIDDLEWARE if m != "ops.health.middleware.HealthzMiddleware"
    ]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

    assert client.get("/healthz").status_code == 200


def test_healthz__503_within_the_timeout_when_the_database_hangs(
    client: Client, settings: Any, black_hole: int
) -> None:
    entry = {**django_settings.DATABASES["default"], "HOST": "127.0.0.1", "PORT": str(black_hole)}
    settings.OPS = {"HEALTHZ_DATABASE": "hung", "HEALTHZ_DB_TIMEOUT": 0.5}
    with extra_database("hung", entry):
        started = time.perf_counter()
        response = client.get("/healthz")
        elapsed = time.perf_counter() - started
        # Reused while fresh: the next probes do not wait again.
        started_again = time.perf_counter()
        assert client.get("/healthz").status_code == 503
        assert time.perf_counter() - started_again < 0.1
    assert response.status_code == 503
    assert response.content == b"unavailable\n"
    assert elapsed < 1.0


def test_healthz__503_when_postgresql_stops_then_recovers_by_itself(
    client: Client,
    settings: Any,
    outage_server: ThrowawayPostgresServer,
    outage_alias: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings.OPS = {
        "HEALTHZ_DATABASE": outage_alias,
        "HEALTHZ_DB_TIMEOUT": 2.0,
        "HEALTHZ_CACHE_SECONDS": 0.5,
        "HEALTH_CHECKS": [("ops.health.checks.DatabaseCheck", {"database": outage_alias})],
    }
    assert client.get("/healthz").status_code == 200

    outage_server.stop()
    try:
        down_after = _wait_for(client, 503, within=3.0)
        started = time.perf_counter()
        response = client.get("/healthz")
        answered_in = time.perf_counter() - started
        assert response.status_code == 503
        assert response.content == b"unavailable\n"
        assert answered_in < 2.5

        with pytest.raises(CommandError) as raised:
            call_command("healthcheck", stdout=StringIO())
        assert raised.value.returncode == 1
        assert str(raised.value) == "Unhealthy: database."
    finally:
        outage_server.start()
    back_after = _wait_for(client, 200, within=10.0)
    call_command("healthcheck", stdout=StringIO())
    with capsys.disabled():
        print(
            f"\n[healthz] outage seen after {down_after * 1000:.0f} ms, 503 answered in "
            f"{answered_in * 1000:.0f} ms, recovered {back_after * 1000:.0f} ms after restart"
        )


# The detailed view


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HEALTHCHECK_TOKEN", TOKEN)
    return TOKEN


def _quick_checks(settings: Any, *extra: object) -> None:
    settings.OPS = {
        "HEALTH_CHECKS": ["ops.health.checks.DiskUsageCheck", "ops.health.checks.MemoryCheck", *extra],
        "HEALTH_MEMORY_MIN_MB": 1,
        "HEALTH_DISK_USAGE_MAX": 100,
    }


def test_health_details__disabled_without_a_configured_token(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEALTHCHECK_TOKEN", raising=False)
    response = client.get("/healthz/details", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 404


def test_health_details__missing_token_is_refused(client: Client, token: str) -> None:
    response = client.get("/healthz/details")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="health"'
    assert b"checks" not in response.content


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN[:-1]}x", f"Bearer {TOKEN}{TOKEN}", "Bearer ", f"Basic {TOKEN}", TOKEN],
)
def test_health_details__wrong_token_is_refused(client: Client, token: str, authorization: str) -> None:
    response = client.get("/healthz/details", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert b"checks" not in response.content


def test_health_details__token_in_the_query_string_is_not_accepted(client: Client, token: str) -> None:
    assert client.get(f"/healthz/details?token={TOKEN}").status_code == 401


def test_health_details__right_token_shows_every_check(client: Client, settings: Any, token: str) -> None:
    _quick_checks(settings)
    response = client.get("/healthz/details", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ok"
    assert [check["name"] for check in data["checks"]] == ["disk", "memory"]
    assert set(data["checks"][0]) == {"name", "status", "message", "duration_ms"}


def test_health_details__unhealthy_is_503_without_hosts_versions_or_traces(
    client: Client,
    settings: Any,
    token: str,
    outage_server: ThrowawayPostgresServer,
    outage_alias: str,
) -> None:
    _quick_checks(settings, ("ops.health.checks.DatabaseCheck", {"database": outage_alias}))
    settings.OPS = {**settings.OPS, "HEALTH_DISK_PATH": "/var/lib/postgresql-secret-path"}
    outage_server.stop()
    try:
        response = client.get("/healthz/details", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    finally:
        outage_server.start()
    assert response.status_code == 503
    data = response.json()
    database = next(check for check in data["checks"] if check["name"] == "database")
    assert database == {
        **database,
        "status": "failure",
        "message": "cannot reach the database (OperationalError)",
    }
    body = response.content.decode()
    for leak in (
        "127.0.0.1",
        str(outage_server.port),
        "kidoo_outage",
        "postgresql-secret",
        "Traceback",
        "psycopg",
    ):
        assert leak not in body


def test_system_check__short_health_token_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core import checks

    monkeypatch.setenv("HEALTHCHECK_TOKEN", "short-token")
    ids = [message.id for message in checks.run_checks(include_deployment_checks=True)]
    assert "ops.W010" in ids
    monkeypatch.setenv("HEALTHCHECK_TOKEN", TOKEN)
    ids = [message.id for message in checks.run_checks(include_deployment_checks=True)]
    assert "ops.W010" not in ids
