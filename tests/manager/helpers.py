"""Shared helpers for the manager tests: real workers against a manager on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import LOOPBACK, REAL_WORKER


def start_real_worker(processes, port: int, workdir: Path, *extra: str, cores: int = 2) -> subprocess.Popen:
    """A Debian ``work_queue_worker`` for 127.0.0.1:port that gives up after 30 s without a manager."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        REAL_WORKER, "-t", "30", "--cores", str(cores), "--memory", "1000", "--disk", "2000",
        "-s", str(workdir), *extra, LOOPBACK, str(port),
    ]
    return processes.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
