"""The API answers in JSON whatever goes wrong, and reads chunked request bodies.

The views answer their own errors in JSON (400, 404, 405, 413). What reaches a client from
elsewhere in Django would otherwise be an HTML page the frontend cannot read: a 400 for a bad
Host header from CommonMiddleware, a 403 from the CSRF check, a 400 for a body Django refuses to
parse, a 500 from a bug. This middleware, outermost but for the health probe, turns those into
``{"error": ...}`` with the same status and headers.

Chunked bodies: a WSGI request sent with ``Transfer-Encoding: chunked`` has no Content-Length,
and Django reads such a body as empty. gunicorn de-chunks it and marks the stream as ending at the
body's end (``wsgi.input_terminated``, the WSGI extension for exactly this), so it can be read to
its end here, up to DATA_UPLOAD_MAX_MEMORY_SIZE, and handed on with its length known. Where a
server does not say so (runserver), reading would wait on the open connection: the body is left
as Django sees it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import BinaryIO, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError

logger = logging.getLogger(__name__)

# Django's own default, for a project that sets DATA_UPLOAD_MAX_MEMORY_SIZE = None (no limit):
# a chunked body still needs a bound, since it is held in memory.
_DEFAULT_CHUNKED_LIMIT = 2_621_440
_READ_SIZE = 64 * 1024

MESSAGES = {
    400: "Bad request.",
    403: "Forbidden.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "The request body is too large.",
    500: "Internal server error. It has been logged; please try again later.",
}
# Headers a JSON rewrite must not copy from the response it replaces.
_BODY_HEADERS = {"content-type", "content-length", "content-encoding", "content-disposition"}


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def json_error(status: int, message: str | None = None) -> JsonResponse:
    text = message or MESSAGES.get(status) or f"{HTTPStatus(status).phrase}."
    return JsonResponse({"error": text}, status=status)


def chunked_body_limit() -> int:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return _DEFAULT_CHUNKED_LIMIT if limit is None else int(limit)


def read_chunked_body(request: HttpRequest) -> bool:
    """Give a chunked request its body (see the module docstring); False if it is too large."""
    meta = request.META
    if "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower() or meta.get("CONTENT_LENGTH"):
        return True
    if not meta.get("wsgi.input_terminated"):
        return True
    limit = chunked_body_limit()
    stream = meta["wsgi.input"]
    data = bytearray()
    while chunk := stream.read(_READ_SIZE):
        data += chunk
        if len(data) > limit:
            return False
    meta["CONTENT_LENGTH"] = str(len(data))
    # What WSGIRequest.__init__ would have built had the length been declared.
    request._stream = cast(BinaryIO, LimitedStream(io.BytesIO(bytes(data)), len(data)))
    return True


def as_json(response: HttpResponseBase) -> HttpResponseBase:
    """``response`` if it is JSON, a redirect or a success; else a JSON error of the same status."""
    if response.status_code < 400 or response.get("Content-Type", "").startswith("application/json"):
        return response
    replacement = json_error(response.status_code)
    for header, value in response.items():
        if header.lower() not in _BODY_HEADERS:
            replacement[header] = value
    replacement.cookies = response.cookies
    return replacement


class ApiJsonMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        api = is_api_path(request.path_info)
        if not read_chunked_body(request):
            limit = chunked_body_limit()
            message = f"The request body is too large (at most {limit} bytes)."
            return json_error(413, message) if api else HttpResponse(message, status=413)
        response = self.get_response(request)
        return as_json(response) if api else response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        """A view's exception under /api/: the status it means, in JSON (never an HTML page)."""
        if not is_api_path(request.path_info):
            return None
        if isinstance(exception, SuspiciousOperation):
            # Logged where Django logs them itself, for whoever watches django.security.
            logging.getLogger(f"django.security.{type(exception).__name__}").error(str(exception))
        if isinstance(exception, RequestDataTooBig):
            return json_error(413)
        if isinstance(exception, (SuspiciousOperation, MultiPartParserError, UnreadablePostError)):
            return json_error(400, "The request body could not be read.")
        if settings.DEBUG:
            return None  # the debug page says more to the developer
        logger.error("Unhandled exception on %s", request.path, exc_info=exception)
        return json_error(500)
