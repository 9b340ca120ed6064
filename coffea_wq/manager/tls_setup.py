"""The ``ssl=`` argument of ``WorkQueue``: ``None``/``False``, ``True`` or ``(key_file, cert_file)``.

``True`` makes a self-signed certificate with the ``openssl`` command: it is on every Linux
distribution and macOS, is the reference TLS toolkit, and spares coffea-wq a compiled Python
dependency for one call per run. Key files are written with mode 0600 in a private directory.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any

from coffea_wq.tls import self_signed_certificate, server_context


def queue_ssl_context(option: Any) -> tuple[ssl.SSLContext | None, tempfile.TemporaryDirectory | None]:
    """The server context for ``option``, and the private directory of a certificate made for it
    (the caller removes it at shutdown).

    Example:
        >>> queue_ssl_context(None)
        (None, None)
    """
    if option is None or option is False:
        return None, None
    if option is True:
        directory = tempfile.TemporaryDirectory(prefix="coffea-wq-tls-")
        try:
            key, cert = self_signed_certificate(Path(directory.name))
            return server_context(key, cert), directory
        except BaseException:
            directory.cleanup()
            raise
    if isinstance(option, (tuple, list)) and len(option) == 2 and all(isinstance(p, (str, Path)) for p in option):
        return server_context(option[0], option[1]), None
    raise ValueError(f"ssl={option!r}: expected True (a self-signed certificate) or (key_file, cert_file)")
