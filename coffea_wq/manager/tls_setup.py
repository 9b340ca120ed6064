"""The ``ssl=`` argument of ``WorkQueue``: ``None``/``False``, ``True`` or ``(key_file, cert_file)``.

``True`` makes a self-signed certificate with the ``openssl`` command: it is on every Linux
distribution and macOS, is the reference TLS toolkit, and spares coffea-wq a compiled Python
dependency for one call per run. Key files are written with mode 0600 in a private directory.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from coffea_wq.manager.tls import server_context


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


OPENSSL_TIMEOUT_S = 60
CERT_DAYS = 30  # a run's certificate only needs to outlive the run


def write_private_file(path: Path, data: bytes) -> Path:
    """Create ``path`` readable by the user only (fails if it exists, so nothing else's file is reused)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


class CertificateError(RuntimeError):
    """The self-signed certificate for ``ssl=True`` could not be made; the message says why."""


def self_signed_certificate(directory: Path, common_name: str = "coffea-wq manager") -> tuple[Path, Path]:
    """``(key, cert)`` PEM files of a new self-signed certificate in ``directory`` (key mode 0600)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError("ssl=True needs the openssl command to make a certificate for the run; install "
                               "openssl, or pass ssl=(KEY_FILE, CERT_FILE)")
    key, cert = directory / "tls.key", directory / "tls.crt"
    write_private_file(key, b"")
    argv = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", str(CERT_DAYS), "-subj", f"/CN={common_name}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CertificateError(f"could not run {openssl} to make the run's TLS certificate: {exc}") from exc
    if done.returncode != 0 or not cert.is_file() or key.stat().st_size == 0:
        raise CertificateError(f"openssl could not make the run's TLS certificate (exit {done.returncode}): "
                               f"{done.stderr.strip()[-500:]}")
    os.chmod(key, 0o600)
    return key, cert
