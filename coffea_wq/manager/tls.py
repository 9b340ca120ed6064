"""TLS for the manager's connections, done without blocking the I/O loop.

The manager wraps each accepted socket in server mode with ``do_handshake_on_connect=False`` and
advances the handshake whenever the socket is ready (``advance_handshake``), so a slow or silent
peer never stalls the others. A connection is wrapped only once its first bytes show a TLS
ClientHello, so a plaintext worker is told apart from a status query or a port scan; the password
exchange starts once the handshake is done. As with CCTools' ``--ssl``, TLS covers the whole
connection from its first byte, and workers do not check the manager's certificate by default (it
is usually self-signed for the run): TLS keeps the traffic private and the password exchange proves
both ends know the secret. A worker can pin the certificate with ``--ssl-ca FILE`` (the worker's
side: ``coffea_wq.worker.tls``). See docs/manager.md, "Listening address and TLS".
"""

from __future__ import annotations

import enum
import ssl


class HandshakeStep(enum.Enum):
    DONE = "done"
    WANT_READ = "want-read"
    WANT_WRITE = "want-write"


def advance_handshake(sock: ssl.SSLSocket) -> HandshakeStep:
    """One non-blocking step of the handshake; raises ``ssl.SSLError``/``OSError`` when it fails."""
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return HandshakeStep.WANT_READ
    except ssl.SSLWantWriteError:
        return HandshakeStep.WANT_WRITE
    return HandshakeStep.DONE


def explain_server_handshake_failure(error: BaseException) -> str:
    """Why a TLS client failed our handshake, in words a user acts on."""
    text = str(error)
    if isinstance(error, (ConnectionError, EOFError)) or "EOF" in text.upper():
        return "it closed the connection during the TLS handshake (does it trust this certificate?)"
    return f"TLS handshake failed: {text}"
