"""The one way the emulator reports an API failure: Cloudinary's JSON error envelope."""

from __future__ import annotations

import json


class ApiError(Exception):
    """An error answered as ``{"error": {"message": ...}}`` with the given HTTP status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return json.dumps({"error": {"message": self.message}}).encode()


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)
