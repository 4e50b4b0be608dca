"""/healthz for the platform's probe, and a detailed health view for whoever holds the token.

/healthz says only "ok" or "unavailable": the public learns nothing of the stack. The detailed view
runs every configured check; it exists only while a token is configured (``OPS["HEALTH_TOKEN_ENV"]``
names the environment variable, HEALTHCHECK_TOKEN by default), answers 404 otherwise, and wants
``Authorization: Bearer <token>``, compared in constant time.
"""

from __future__ import annotations

import hmac
import logging

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ops.conf import ops_setting
from ops.health.liveness import database_liveness
from ops.health.runner import configured_checks, health_token, run_checks

logger = logging.getLogger("ops.health.runner")


def healthz_response(request: HttpRequest) -> HttpResponse:
    """200 "ok" when this process can reach its database, else 503; never any detail."""
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse("method not allowed\n", status=405, content_type="text/plain")
        response["Allow"] = "GET, HEAD"
        return response
    result = database_liveness(str(ops_setting("HEALTHZ_DATABASE"))).check()
    if result.ok:
        response = HttpResponse("ok\n", content_type="text/plain")
    else:
        logger.warning("healthz: database unreachable (%s)", result.reason)
        response = HttpResponse("unavailable\n", status=503, content_type="text/plain")
    response["Cache-Control"] = "no-store"
    # CommonMiddleware, which would set it, comes later: without a length gunicorn frames the answer
    # chunked, and an HTTP/1.0 prober could not keep its connection alive.
    response["Content-Length"] = str(len(response.content))
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    return healthz_response(request)


def _presented_token(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


@never_cache
@require_safe
def health_details(request: HttpRequest) -> HttpResponse:
    token = health_token()
    if token is None:
        raise Http404
    # Constant time: how much of a guess matched must not show in how long the answer takes.
    if not hmac.compare_digest(_presented_token(request).encode(), token.encode()):
        response = JsonResponse({"error": "A valid bearer token is required."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="health"'
        return response
    report = run_checks(configured_checks())
    fail_on_warning = False
    status = 200 if report.healthy(fail_on_warning=fail_on_warning) else 503
    return JsonResponse(report.as_dict(public=True), status=status)
