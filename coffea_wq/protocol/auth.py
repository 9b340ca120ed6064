"""Sans-IO password challenge-response, as CCTools' ``link_auth_password`` (docs/protocol.md, "Password").

Both ends run the same exchange, so one class serves the manager and the worker:

1. send ``auth password sha1``; the peer's first line must be exactly that;
2. send our 63-character challenge; read the peer's challenge;
3. send ``hex(sha1(PASSWORD + b" " + peer_challenge))``; read the peer's response and compare it
   with the digest of our own challenge;
4. send ``ok`` or ``failure``; read the peer's verdict. Success needs both verdicts ``ok``.

PASSWORD is the password file's raw bytes, trailing newline included. We send steps 1 and 2
together up front (the C side reads them in order, so the early challenge is harmless).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass, field

AUTH_LINE = "auth password sha1"
CHALLENGE_LENGTH = 63
# string_cookie() produces characters in H..z; any printable ASCII without space works for us.
_CHALLENGE_ALPHABET = "".join(chr(c) for c in range(ord("H"), ord("z") + 1))


class AuthState(enum.Enum):
    WAIT_AUTH_LINE = "wait-auth-line"
    WAIT_CHALLENGE = "wait-challenge"
    WAIT_RESPONSE = "wait-response"
    WAIT_VERDICT = "wait-verdict"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def password_digest(password: bytes, challenge: str) -> str:
    return hashlib.sha1(password + b" " + challenge.encode("latin-1")).hexdigest()


def make_challenge() -> str:
    return "".join(secrets.choice(_CHALLENGE_ALPHABET) for _ in range(CHALLENGE_LENGTH))


@dataclass
class PasswordAuth:
    """One side of the exchange. Feed it the peer's lines; send what it returns."""

    password: bytes
    challenge: str = field(default_factory=make_challenge)
    state: AuthState = AuthState.WAIT_AUTH_LINE
    failure_reason: str = ""
    _we_accepted: bool = False

    def start(self) -> bytes:
        """What to send first: the auth line and our challenge."""
        return f"{AUTH_LINE}\n{self.challenge}\n".encode("latin-1")

    @property
    def done(self) -> bool:
        return self.state in (AuthState.SUCCEEDED, AuthState.FAILED)

    def receive_line(self, line: str) -> bytes:
        """Advance on one line from the peer; returns the bytes to send (possibly empty)."""
        if self.state is AuthState.WAIT_AUTH_LINE:
            if line != AUTH_LINE:
                return self._fail(f"peer is not using password authentication (it sent {line[:60]!r})")
            self.state = AuthState.WAIT_CHALLENGE
            return b""
        if self.state is AuthState.WAIT_CHALLENGE:
            self.state = AuthState.WAIT_RESPONSE
            return (password_digest(self.password, line) + "\n").encode("latin-1")
        if self.state is AuthState.WAIT_RESPONSE:
            self._we_accepted = secrets.compare_digest(line, password_digest(self.password, self.challenge))
            self.state = AuthState.WAIT_VERDICT
            if not self._we_accepted:
                self.failure_reason = "peer's password does not match ours"
            return b"ok\n" if self._we_accepted else b"failure\n"
        if self.state is AuthState.WAIT_VERDICT:
            if line == "ok" and self._we_accepted:
                self.state = AuthState.SUCCEEDED
            else:
                self.state = AuthState.FAILED
                if not self.failure_reason:
                    self.failure_reason = "peer rejected our password"
            return b""
        raise RuntimeError(f"authentication already finished ({self.state.value})")

    def _fail(self, reason: str) -> bytes:
        self.state = AuthState.FAILED
        self.failure_reason = reason
        return b""
