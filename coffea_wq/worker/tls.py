"""The worker's side of TLS (``--ssl``): the context it connects to a manager with.

As with CCTools' ``--ssl``, the connection is encrypted from its first byte and the manager's
certificate, usually self-signed for the run, is not checked unless ``--ssl-ca FILE`` pins it: the
password exchange that follows proves both ends know the secret. The manager's side:
``coffea_wq.manager.tls``; docs/worker.md, "TLS".
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """The worker's context: encryption always; the manager's certificate checked only against ``ca_file``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # a run's certificate names no host; pinning is by the CA file
    if ca_file is None:
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cafile=str(ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
