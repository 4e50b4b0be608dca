"""A stand-in for healthchecks.io / Cronitor on loopback: an HTTP server in a thread of the test
process that records every ping (tests/test_alerts.py, tests/test_render_replay.py)."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# The path of a check, as healthchecks.io's ping URLs have one (https://hc-ping.com/<uuid>).
CHECK_PATH = "/ping/0b7c3f1e-5d2a-4a58-9c7e-1f2d3c4b5a69"


@dataclass
class Ping:
    method: str
    path: str
    body: str


@dataclass
class AlertReceiver:
    """A healthchecks.io stand-in: records every request, answers ``status``."""

    status: int = 200
    # Seconds to wait before answering: a monitor that hangs.
    delay: float = 0.0
    pings: list[Ping] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{CHECK_PATH}"

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                receiver.pings.append(Ping("POST", self.path, body))
                time.sleep(receiver.delay)
                # A client that gave up (the alert timeout) has closed the connection by now.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
