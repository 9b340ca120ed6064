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


def start_worker(kind: str, processes, port: int, workdir: Path, cores: int = 4, memory: int = 1000,
                 disk: int = 1000) -> subprocess.Popen:
    """A worker of ``kind`` ("coffea-wq" or "cctools") with the given size, for 127.0.0.1:port."""
    from tests.support import coffea_wq_command

    workdir.mkdir(parents=True, exist_ok=True)
    options = ["--cores", str(cores), "--memory", str(memory), "--disk", str(disk), "-s", str(workdir), "-t", "60"]
    if kind == "coffea-wq":
        argv = coffea_wq_command("worker", *options, LOOPBACK, str(port))
    else:
        argv = [REAL_WORKER, *options, LOOPBACK, str(port)]
    return processes.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


WORKER_KINDS = ("coffea-wq", "cctools")
