"""The monitor the manager ships with each task to a real ``work_queue_worker`` (``cctools-monitor``).

``wrapper_script_path()`` builds (once, cached) a single executable file: a Python zip application
holding ``coffea_wq/resources/rmon/`` (standard library only), with a ``#!/usr/bin/env python3`` line,
so the worker runs it with its plain ``python3``. ``wrap_command()`` builds the command line the C
manager would send::

    ./cctools-monitor --no-pprint --with-output-files=cctools-monitor -L 'cores: 1.000' -L 'memory: 100' \
        -V 'task_id: 7' -V 'category: default' --measure-only --sh 'python3 task.py'

The task then declares ``cctools-monitor`` as a cached input and ``cctools-monitor.summary`` as an
output; the monitor's exit code says 2 for a broken limit (resource exhaustion).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tempfile
import zipfile
from pathlib import Path

from coffea_wq.resources.types import RESOURCE_NAMES, Resources
from coffea_wq.resources.units import resource_to_str

MONITOR_REMOTE_NAME = "cctools-monitor"
MONITOR_SUMMARY_NAME = "cctools-monitor.summary"
RMON_DIR = Path(__file__).resolve().parent / "rmon"
_MAIN = "import sys\nfrom rmon.runner import main\nsys.exit(main())\n"


def _sources() -> list[Path]:
    return sorted(RMON_DIR.glob("*.py"))


def _digest() -> str:
    h = hashlib.sha256()
    for path in _sources():
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "coffea-wq"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return Path(tempfile.gettempdir())


def wrapper_script_path(directory: Path | None = None) -> Path:
    """The executable monitor to ship as ``cctools-monitor`` (built on first use, then reused).

    Args:
        directory: where to build it; default ``~/.cache/coffea-wq`` (or the temp dir).

    Example::

        >>> wrapper_script_path().name.startswith("cctools-monitor-")
        True
    """
    target = (directory or _cache_dir()) / f"{MONITOR_REMOTE_NAME}-{_digest()}.pyz"
    if target.exists():
        return target
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".cctools-monitor-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(b"#!/usr/bin/env python3\n")
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("__main__.py", _MAIN)
                for path in _sources():
                    zf.write(path, f"rmon/{path.name}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)  # atomic: concurrent builders all end with a complete file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def monitor_limit_arguments(limits: Resources, wall_time_s: float | None = None) -> list[str]:
    """``-L 'cores: 1.000'`` ... for every declared resource (values as CCTools prints them)."""
    args = []
    for name in RESOURCE_NAMES:
        value = getattr(limits, name)
        if value is not None and value > -1:
            args += ["-L", f"{name}: {resource_to_str(name, value)}"]
    if wall_time_s is not None and wall_time_s > 0:
        args += ["-L", f"wall_time: {resource_to_str('wall_time', wall_time_s)}"]
    return args


def wrap_command(
    command: str,
    limits: Resources,
    task_id: int,
    category: str = "default",
    watchdog: bool = False,
    wall_time_s: float | None = None,
    interval_s: float | None = None,
) -> str:
    """The task's command wrapped in the shipped monitor, as the CCTools manager wraps it.

    Args:
        command: the task's shell command.
        limits: the task's box (what it was allocated); every declared field becomes a ``-L``.
        task_id: written to the summary as ``task_id``.
        category: written to the summary as ``category``.
        watchdog: enforce the limits (kill on a broken one); otherwise ``--measure-only``.
        wall_time_s: a wall-time limit enforced by the monitor (instead of the worker).
        interval_s: sampling interval; default the monitor's (1 s).

    Example::

        >>> wrap_command("echo hi", Resources(cores=1, memory=100), 7)
        "./cctools-monitor --no-pprint --with-output-files=cctools-monitor -L 'cores: 1.000' -L 'memory: 100' -V 'task_id: 7' -V 'category: default' --measure-only --sh 'echo hi'"
    """
    args = [f"./{MONITOR_REMOTE_NAME}", "--no-pprint", f"--with-output-files={MONITOR_REMOTE_NAME}"]
    if interval_s is not None:
        args += ["-i", f"{interval_s:g}"]
    args += monitor_limit_arguments(limits, wall_time_s)
    args += ["-V", f"task_id: {task_id}", "-V", f"category: {category}"]
    if not watchdog:
        args.append("--measure-only")
    args += ["--sh", command]
    return " ".join(shlex.quote(a) for a in args)
