"""The dashboard's password: the manager's own, proven once by a login form, then by a cookie.

Without a password every page is open (bind to 127.0.0.1, the default, keeps it on this machine).
With one, the page itself loads but carries no data; ``/api/snapshot`` and ``/metrics`` answer
401 until the browser posts the password to ``/login``, which sets an HttpOnly, SameSite=Strict
cookie holding a random session token. Prometheus (and curl) may instead send the password as a
bearer token (``Authorization: Bearer PASSWORD``) or as HTTP basic auth with any user name.
The password is the manager's password file; as workers prove it byte for byte, a trailing
newline of the file is not required from a person typing it.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

COOKIE = "coffea_wq_dashboard"
SESSIONS_KEPT = 256  # tokens remembered; the oldest is forgotten first
SESSION_LIFETIME_S = 7 * 24 * 3600
FAILURE_DELAY_S = 0.5  # a wrong password costs this much, which slows guessing


class DashboardAuth:
    """Checks passwords and session tokens; ``password=None`` means everything is open.

    Example:
        >>> auth = DashboardAuth(b"secret\\n")
        >>> auth.password_matches("secret"), auth.password_matches("nope")
        (True, False)
    """

    def __init__(self, password: bytes | None) -> None:
        self.password = password
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path | None) -> DashboardAuth:
        return cls(Path(path).read_bytes() if path else None)

    @property
    def required(self) -> bool:
        return self.password is not None

    def password_matches(self, given: str | bytes) -> bool:
        if self.password is None:
            return True
        candidate = given.encode() if isinstance(given, str) else given
        accepted = (self.password, self.password.rstrip(b"\r\n"))
        # compare_digest against both forms, always, so the time taken says nothing
        results = [hmac.compare_digest(candidate, form) for form in accepted]
        return any(results) and bool(candidate)

    def new_session(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + SESSION_LIFETIME_S
            while len(self._tokens) > SESSIONS_KEPT:
                self._tokens.pop(next(iter(self._tokens)))
        return token

    def end_session(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._tokens.pop(token, None)

    def token_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._tokens.get(token)
            if expiry is None:
                return False
            if expiry < time.monotonic():
                del self._tokens[token]
                return False
            return True

    def allows(self, cookie_header: str | None, authorization: str | None) -> bool:
        """Whether a request with these headers may read data."""
        if not self.required:
            return True
        if self.token_valid(session_token(cookie_header)):
            return True
        return self.password_matches(credentials(authorization) or b"") if authorization else False


def session_token(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    cookie = SimpleCookie()
    try:
        cookie.load(cookie_header)
    except CookieError:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None else None


def credentials(authorization: str) -> bytes | None:
    """The password in ``Bearer PASSWORD`` or ``Basic base64(user:PASSWORD)``."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip().encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            return None
        return decoded.partition(b":")[2]
    return None


def session_cookie(token: str) -> str:
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_LIFETIME_S}"


def expired_cookie() -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
