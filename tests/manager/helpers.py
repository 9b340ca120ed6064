"""Shared helpers for the manager tests: real workers against a manager on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import worker_argv


def start_real_worker(processes, port: int, workdir: Path, *extra: str, cores: int = 2) -> subprocess.Popen:
    """A Debian ``work_queue_worker`` for 127.0.0.1:port that gives up after 30 s without a manager."""
    argv = worker_argv("cctools", port, workdir, *extra, cores=cores, memory=1000, disk=2000, idle_timeout=30)
    return processes.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_worker(kind: str, processes, port: int, workdir: Path, cores: int = 4, memory: int = 1000,
                 disk: int = 1000) -> subprocess.Popen:
    """A worker of ``kind`` ("coffea-wq" or "cctools") with the given size, for 127.0.0.1:port."""
    argv = worker_argv(kind, port, workdir, cores=cores, memory=memory, disk=disk)
    return processes.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


WORKER_KINDS = ("coffea-wq", "cctools")
