"""Failures a retry cannot fix, and the culprit they name (docs/executor.md, "When things go wrong").

* An environment tarball that is corrupt on the submit host fails every task that unpacks it:
  ``coffea_wq_env_run`` (and the coffea-wq worker's warm start, which falls back to it) exits 65
  with the reason on stdout. The executor then checks the user's own tarball once: corrupt here,
  the run fails at once naming it; sound here, the copy on that worker was damaged in transit,
  which a retry elsewhere can fix.
* Read errors (a missing file or tree, a reset, a timeout, a full disk) are read_errors.py's, and what
  a retry does about them retry_policy.py's.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

log = logging.getLogger(__name__)

ENV_CORRUPT_EXIT = 65  # coffea_wq_env_run's status for a corrupt or truncated tarball
GZIP_MAGIC = b"\x1f\x8b"
_VERDICTS: dict[tuple[str, int, int], str | None] = {}


def check_gzip_header(path: Path) -> str | None:
    """Why ``path`` cannot be a gzip tarball at a glance (its first bytes), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if head != GZIP_MAGIC:
        return "is not a gzip file (a .tar.gz made by envtools, conda-pack or venv-pack is expected)"
    return None


def tarball_problem(path: Path) -> str | None:
    """Why the tarball at ``path`` cannot be unpacked (read through to its end once), or None."""
    try:
        stat = path.stat()
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERDICTS:
        _VERDICTS[key] = _read_through(path)
    return _VERDICTS[key]


def _read_through(path: Path) -> str | None:
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            names = [member.name for member in archive]
    except (OSError, EOFError, tarfile.TarError) as exc:
        return f"is corrupt or truncated ({type(exc).__name__}: {exc})"
    if not any(name.lstrip("./") in ("bin/python", "bin/python3") for name in names):
        return "holds no bin/python (not a packed Python environment)"
    return None


def environment_failure_reason(tarball: Path, remote_name: str, worker: str, output: str) -> tuple[str, bool]:
    """The reason of a task that ``coffea_wq_env_run`` failed, and whether a retry can help."""
    said = _last_line(output)
    problem = tarball_problem(tarball)
    if problem is not None:
        return (f"environment_file {str(tarball)!r} {problem}; fix or rebuild it (the worker {worker} said: "
                f"{said or 'nothing'})"), False
    return (f"the environment tarball {str(tarball)!r} (sent as {remote_name}) arrived damaged on worker "
            f"{worker}: {said or 'no output'}; the tarball here is sound"), True


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    # the runner's advice to retry is the executor's to give (it just did, or it cannot help)
    return lines[-1].split("; the task fails so it", 1)[0] if lines else ""
