"""The HTTP side: a threading stdlib server, request dispatch, and the faults applied on the wire."""

from __future__ import annotations

import json
import secrets
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from . import admin_api, delivery, upload_api
from .account import Account, CallLog, CallRecord
from .errors import ApiError, unauthorized
from .faults import EndpointKind, FaultInjector, FaultKind, FaultRule
from .forms import parse_multipart, parse_query, parse_urlencoded
from .responses import HttpResponse, error_response, json_response
from .routing import UPLOAD_ACTIONS, Route, route

if TYPE_CHECKING:
    from .signatures import ParamValue


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], account: Account, faults: FaultInjector, calls: CallLog
    ) -> None:
        super().__init__(address, EmulatorRequestHandler)
        self.account = account
        self.faults = faults
        self.calls = calls
        # Bumped by every reset: a request that began before it (a client that gave up on a slow
        # answer, say) must not store anything into the next test's fresh state.
        self.generation = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up (and faults that hung up on them); report the rest."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | ValueError):
            return
        super().handle_error(request, client_address)


def dispatch(
    account: Account, target: Route, method: str, query: str, headers: dict[str, str], body: bytes
) -> HttpResponse:
    head_only = method == "HEAD"
    if target.endpoint is EndpointKind.DELIVERY:
        if method not in ("GET", "HEAD"):
            return HttpResponse(405, b"", {"Allow": "GET, HEAD"})
        if target.cloud_name != account.cloud_name:
            return delivery.cld_error(404, "Resource not found", head_only)
        return delivery.handle_delivery(account, target.segments, head_only)

    rate_headers: dict[str, str] = {}
    try:
        if target.cloud_name != account.cloud_name:
            raise unauthorized(f"Invalid cloud_name {target.cloud_name}")
        if target.endpoint is EndpointKind.ADMIN:
            account.check_basic_auth(headers.get("authorization"))
            decision = account.rate_limiter.take()
            rate_headers = decision.headers()
            if not decision.allowed:
                raise ApiError(420, decision.exceeded_message())
            payload = admin_api.handle_admin(account, method, target.segments, parse_query(query), body)
            return json_response(payload, headers=rate_headers)
        resource_type, action = target.segments
        if target.endpoint is EndpointKind.DOWNLOAD:
            if method not in ("GET", "HEAD"):
                raise ApiError(405, f"{method} is not supported by download")
            return delivery.handle_download(
                account, resource_type, parse_query(query), headers.get("authorization"), head_only
            )
        if action not in UPLOAD_ACTIONS:
            raise ApiError(
                501,
                f"The Upload API action {action!r} is not supported by the emulator (it implements "
                f"{', '.join(UPLOAD_ACTIONS)} and download); test it against the real Cloudinary "
                "(CLOUDINARY_LIVE_URL).",
            )
        if method != "POST":
            raise ApiError(405, f"{method} is not supported by {action}")
        params, uploaded = read_form(headers.get("content-type", ""), body)
        params.update({name: value for name, value in parse_query(query).items() if name not in params})
        if action == "upload":
            return json_response(upload_api.handle_upload(account, resource_type, params, uploaded, headers))
        return json_response(upload_api.handle_destroy(account, resource_type, params, headers))
    except ApiError as error:
        error.headers = {**rate_headers, **error.headers}
        return error_response(error)


def read_form(content_type: str, body: bytes) -> tuple[dict[str, ParamValue], Any]:
    if content_type.lower().startswith("multipart/form-data"):
        return parse_multipart(body, content_type)
    return parse_urlencoded(body)


def fault_response(rule: FaultRule, account: Account) -> HttpResponse:
    status = rule.kind.http_status or 500
    if rule.kind is FaultKind.HTTP_502:
        # A gateway in front of the API answers in HTML, which the SDK cannot parse as JSON.
        html = (
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
        )
        return HttpResponse(502, html, {"Content-Type": "text/html"})
    messages = {
        500: "General Error",
        503: "Service Unavailable",
        420: f"Rate Limit Exceeded. Limit of {account.rate_limiter.limit} api operations reached.",
        429: "Too Many Requests",
    }
    return HttpResponse(
        status,
        json.dumps({"error": {"message": messages[status]}}).encode(),
        {"Content-Type": "application/json; charset=utf-8"},
    )


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer
    server_version = "CloudinaryEmulator/1.0"

    def do_GET(self) -> None:
        self.serve()

    def do_HEAD(self) -> None:
        self.serve()

    def do_POST(self) -> None:
        self.serve()

    def do_DELETE(self) -> None:
        self.serve()

    def do_PUT(self) -> None:
        self.serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the call log is the record; stderr noise would drown test output."""

    def serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        raw_path, _, query = self.path.partition("?")
        target = route(raw_path)
        account = self.server.account
        if target is None:
            self.write(HttpResponse(404, b"", {"X-Cld-Error": "Resource not found"}))
            return
        generation = self.server.generation
        fault = self.server.faults.pick(target.endpoint)
        if fault is not None and fault.kind is FaultKind.CONNECTION_RESET:
            self.record(target, 0)
            self.reset_connection()
            return
        if fault is not None and fault.kind is FaultKind.SLOW:
            time.sleep(fault.delay_seconds)
            if generation != self.server.generation:
                self.reset_connection()
                return
        if fault is not None and fault.kind.http_status is not None:
            response = fault_response(fault, account)
            response.headers["Connection"] = "close"
        else:
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                response = dispatch(account, target, self.command, query, headers, body)
            except Exception as error:
                response = error_response(ApiError(500, f"Emulator error: {error!r}"))
            if target.endpoint is not EndpointKind.DELIVERY or self.command != "GET":
                account.count_request()
        self.record(target, response.status)
        self.write(response, truncate=fault is not None and fault.kind is FaultKind.TRUNCATED_BODY)

    def record(self, target: Route, status: int) -> None:
        self.server.calls.add(CallRecord(target.endpoint.value, self.command, self.path, status))

    def write(self, response: HttpResponse, truncate: bool = False) -> None:
        self.send_response(response.status)
        # Cloudinary tags every answer with a request id; the SDK reads it (``request_id``) for
        # results and error messages.
        response.headers.setdefault("X-Request-Id", secrets.token_hex(16))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if truncate or response.headers.get("Connection") == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD" or not response.send_body:
            return
        # A truncated answer promises the whole body, sends half, and hangs up.
        self.wfile.write(response.body[: len(response.body) // 2] if truncate else response.body)

    def reset_connection(self) -> None:
        """Close with SO_LINGER 0 so the peer gets a TCP RST, not an orderly FIN."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()
