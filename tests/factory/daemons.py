"""What the throw-away Slurm cluster and Grid Engine cell of the tests share: root privilege, bounded
waits that show the daemons' logs, signalling daemons that run as root, and the stopping of jobs and
daemons that reports what needed force (tests/factory/slurm_cluster.py, sge_cluster.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def process_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def privilege_prefix() -> list[str]:
    """How to run a command as root: directly when we are root, else with passwordless sudo.

    The daemons must be root to start jobs as the submitting user; ``make test`` installs the packages
    with sudo when it is not root, so CI has passwordless sudo there.
    """
    if os.getuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True,
                                               timeout=30).returncode == 0:
        return ["sudo", "-n"]
    return []


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             logs: Callable[[], str] | None = None) -> None:
    """Poll ``predicate``; RuntimeError after ``timeout`` s, with the daemons' ``logs()`` when given."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = f"\n{logs()}" if logs else ""
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(0.2)


def signal_process(privilege: list[str], pid: int, sig: signal.Signals) -> None:
    """Signal a process, through sudo when the daemons run as root and we are not."""
    if privilege:
        subprocess.run([*privilege, "kill", f"-{int(sig)}", str(pid)], capture_output=True, timeout=30)
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def remove_jobs(job_ids: Callable[[], list[str]], remove: Callable[[list[str]], object], queue: str,
                logs: Callable[[], str]) -> list[str]:
    """Remove every job still in the ``queue`` (squeue, qstat); the problems: jobs that were left."""
    try:
        left = job_ids()
        if not left:
            return []
        remove(left)
        wait_for(lambda: not job_ids(), 60, f"the removed jobs to leave {queue}", logs)
        return [f"jobs still in {queue} at teardown: {', '.join(left)}"]
    except (subprocess.SubprocessError, RuntimeError) as err:
        return [f"could not remove the jobs: {err}"]


def stop_daemon(privilege: list[str], pid: int, name: str, grace: float) -> list[str]:
    """SIGTERM, then SIGKILL after ``grace`` s; the problems: a daemon that needed SIGKILL."""
    if not process_alive(pid):
        return []
    signal_process(privilege, pid, signal.SIGTERM)
    try:
        wait_for(lambda: not process_alive(pid), grace, f"{name} to exit")
        return []
    except RuntimeError:
        signal_process(privilege, pid, signal.SIGKILL)
        wait_for(lambda: not process_alive(pid), 10, f"{name} to die")
        return [f"{name} (pid {pid}) needed SIGKILL"]


def remove_cluster_files(root: Path) -> None:
    """Delete the cluster's directory (the daemons wrote some of it as root)."""
    prefix = privilege_prefix()
    if prefix:
        subprocess.run([*prefix, "rm", "-rf", str(root)], capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)
