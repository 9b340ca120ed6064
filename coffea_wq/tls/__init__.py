"""TLS files and contexts that both ends use: the manager's ``ssl=True`` certificate and a coffea-wq
worker's cache server (docs/worker.md, "Peer transfers") are self-signed certificates made with the
``openssl`` command; it is on every Linux distribution and macOS, is the reference TLS toolkit, and
spares coffea-wq a compiled Python dependency for one call per run. Key files are written with mode
0600.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path


def server_context(key: str | Path, cert: str | Path) -> ssl.SSLContext:
    """A TLS server context from PEM files; the error names the file that is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use TLS key {str(key)!r} with certificate {str(cert)!r}: {exc}") from exc
    return context


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
