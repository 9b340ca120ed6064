"""The dashboard's HTTP server: the standard library's ``ThreadingHTTPServer`` in a daemon thread.

The page is read-only and polled by one browser or two, so a thread per request is plenty and
needs no dependency (docs/dashboard.md says why no ASGI framework). Routes:

    GET  /                 the page (HTML; no data in it)
    GET  /static/NAME      its script and style sheet (package data, fixed names only)
    GET  /api/snapshot     the run as JSON (snapshot.py)            \\ need the password
    GET  /metrics          Prometheus text (metrics.py)             / when there is one
    GET  /api/auth         {"required": bool, "ok": bool}
    POST /login            form field ``password``; sets the session cookie (auth.py)
    POST /logout
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from coffea_wq.dashboard import metrics
from coffea_wq.dashboard.auth import (
    FAILURE_DELAY_S,
    DashboardAuth,
    expired_cookie,
    session_cookie,
    session_token,
)
from coffea_wq.dashboard.build import RunView

log = logging.getLogger(__name__)

ASSETS = {"index.html": "text/html; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}
MAX_LOGIN_BODY = 4096
REQUEST_TIMEOUT_S = 10
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def asset(name: str) -> bytes:
    return resources.files("coffea_wq.dashboard").joinpath("assets", name).read_bytes()


class DashboardServer:
    """Serves ``view`` on ``host:port`` (port 0: any free port) until ``stop()``.

    Example:
        >>> server = DashboardServer(RunView(), DashboardAuth(None), "127.0.0.1", 0)
        >>> server.url.startswith("http://127.0.0.1:")
        True
        >>> server.stop()
    """

    def __init__(self, view: RunView, auth: DashboardAuth, host: str = "127.0.0.1", port: int = 0) -> None:
        self.view = view
        self.auth = auth
        self.registry = metrics.new_registry(view.snapshot)
        handler = type("BoundHandler", (DashboardHandler,), {"dashboard": self})
        server_class = _server_class(host)
        self.httpd = server_class((host, port), handler)
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.5},
                                        name=f"coffea-wq-dashboard-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        self.view.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def _server_class(host: str) -> type[ThreadingHTTPServer]:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return type("DashboardHTTPServer", (ThreadingHTTPServer,), {"daemon_threads": True, "address_family": family})


class DashboardHandler(BaseHTTPRequestHandler):
    dashboard: DashboardServer  # set on the subclass each server makes
    timeout = REQUEST_TIMEOUT_S
    server_version = "coffea-wq-dashboard"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("dashboard %s: " + format, self.client_address[0], *args)

    # ------------------------------------------------------------------ routing
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self._host_allowed():
            return
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(200, asset("index.html"), ASSETS["index.html"])
        elif path.startswith("/static/") and path[len("/static/"):] in ASSETS:
            name = path[len("/static/"):]
            self._send(200, asset(name), ASSETS[name])
        elif path == "/api/auth":
            ok = self.dashboard.auth.allows(self.headers.get("Cookie"), None)
            self._json(200, {"required": self.dashboard.auth.required, "ok": ok})
        elif path == "/api/snapshot":
            if self._authorized():
                self._send(200, self.dashboard.view.snapshot().as_json().encode(), "application/json")
        elif path == "/metrics":
            if self._authorized(challenge=True):
                self._send(200, metrics.render(self.dashboard.registry), metrics.CONTENT_TYPE)
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_allowed():
            return
        path = urlsplit(self.path).path
        if path == "/login":
            self._login()
        elif path == "/logout":
            self.dashboard.auth.end_session(session_token(self.headers.get("Cookie")))
            self._json(200, {"ok": False}, {"Set-Cookie": expired_cookie()})
        else:
            self._json(404, {"error": "not found"})

    # ------------------------------------------------------------------ pieces
    def _login(self) -> None:
        auth = self.dashboard.auth
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_LOGIN_BODY:
            self._json(413, {"error": f"login body must be at most {MAX_LOGIN_BODY} bytes"})
            return
        body = self.rfile.read(length).decode("utf-8", "replace")
        password = (parse_qs(body).get("password") or [""])[0]
        if not auth.required:
            self._json(200, {"ok": True})
        elif auth.password_matches(password):
            self._json(200, {"ok": True}, {"Set-Cookie": session_cookie(auth.new_session())})
        else:
            time.sleep(FAILURE_DELAY_S)
            self._json(403, {"ok": False, "error": "wrong password"})

    def _authorized(self, challenge: bool = False) -> bool:
        if self.dashboard.auth.allows(self.headers.get("Cookie"), self.headers.get("Authorization")):
            return True
        if self.headers.get("Authorization"):
            time.sleep(FAILURE_DELAY_S)
        extra = {"WWW-Authenticate": 'Basic realm="coffea-wq dashboard"'} if challenge else {}
        self._json(401, {"error": "the manager has a password: log in first"}, extra)
        return False

    def _host_allowed(self) -> bool:
        """On loopback, only loopback names: a web page elsewhere cannot rebind its name to us."""
        if self.dashboard.host not in ("127.0.0.1", "::1", "localhost"):
            return True
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name in LOOPBACK_NAMES:
            return True
        self._json(421, {"error": f"unexpected Host header {host!r}; use {self.dashboard.url}"})
        return False

    def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
