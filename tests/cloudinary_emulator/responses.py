"""What every handler returns: status, headers and body, written out by the server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # HEAD answers carry the Content-Length of the body they do not send.
    send_body: bool = True


def json_response(
    payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    return HttpResponse(
        status,
        json.dumps(payload).encode(),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def error_response(error: ApiError) -> HttpResponse:
    return HttpResponse(
        error.status, error.body(), {"Content-Type": "application/json; charset=utf-8", **error.headers}
    )
