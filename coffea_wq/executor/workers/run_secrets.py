"""The password made for one run's own workers (local workers, the ``factory`` option's).

It lives in the run's staging directory (``mkdtemp``: mode 0700, removed at the end) in a file of
mode 0600, so only the user can read it; workers get the file's *path* (``--password FILE``), never
the secret on their command line. See docs/executor.md, "Security".
"""

from __future__ import annotations

import secrets
from pathlib import Path

from coffea_wq.tls import write_private_file

__all__ = ["write_private_file", "write_run_password"]


def write_run_password(directory: Path) -> Path:
    """A fresh random password for the workers this run starts, in ``directory/run.password``.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> path = write_run_password(d); oct(path.stat().st_mode & 0o777), len(path.read_bytes())
        ('0o600', 44)
    """
    return write_private_file(directory / "run.password", secrets.token_urlsafe(32).encode() + b"\n")
