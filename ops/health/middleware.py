"""Answers /healthz before any other middleware can refuse or redirect the platform's probe.

Placed first in MIDDLEWARE: SecurityMiddleware would redirect the probe's plain HTTP to HTTPS when
``SECURE_SSL_REDIRECT`` is on (SECURE_REDIRECT_EXEMPT covers that too, but only while the pattern
matches), and CommonMiddleware rejects a Host header missing from ALLOWED_HOSTS with a 400. Render
sends the service's own host name (a custom domain or the onrender.com one), but load balancers and
container probes elsewhere use an IP address. The answer is "ok" or "unavailable" and nothing else,
so skipping the Host check reveals nothing. Without this middleware, ``ops.health.urls`` still serves
/healthz through the URLconf.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ops.health.views import healthz_response

HEALTHZ_PATHS = frozenset({"/healthz", "/healthz/"})


class HealthzMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in HEALTHZ_PATHS:
            return healthz_response(request)
        return self.get_response(request)
