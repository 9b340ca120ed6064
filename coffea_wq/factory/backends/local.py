"""Workers as local processes: each in its own process group, stopped with its children on remove."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from coffea_wq.factory.backends.base import JobId, worker_log_dir
from coffea_wq.resources.types import Resources

log = logging.getLogger(__name__)

STOP_GRACE = 5.0


class LocalBackend:
    """Start workers as processes of this machine.

    Resources are not enforced here: the worker's own ``--cores/--memory/--disk`` options size it.

    Example:
        >>> backend = LocalBackend(Path("/tmp/scratch"))  # doctest: +SKIP
        >>> ids = backend.submit(2, ["coffea-wq", "worker", "-M", "ana"], Resources(cores=1))  # doctest: +SKIP
        >>> backend.remove(ids)  # doctest: +SKIP
    """

    name = "local"

    def __init__(self, scratch_dir: Path, batch_options: str = "") -> None:
        self.scratch_dir = Path(scratch_dir)
        self._jobs: dict[JobId, subprocess.Popen] = {}
        self._sequence = itertools.count(1)

    def submit(self, count: int, worker_argv: Sequence[str], resources: Resources) -> list[JobId]:
        logs = worker_log_dir(self.scratch_dir)
        started = []
        for _ in range(count):
            log_path = logs / f"local-{os.getpid()}-{next(self._sequence)}.log"
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(
                    list(worker_argv), cwd=self.scratch_dir, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
            job_id = str(proc.pid)
            self._jobs[job_id] = proc
            started.append(job_id)
            log.info("started local worker %s (log %s)", job_id, log_path)
        return started

    def list(self) -> list[JobId]:
        for job_id, proc in list(self._jobs.items()):
            if proc.poll() is not None:
                log.info("local worker %s exited with status %s", job_id, proc.returncode)
                del self._jobs[job_id]
        return list(self._jobs)

    def remove(self, job_ids: Iterable[JobId]) -> None:
        procs = [self._jobs.pop(job_id) for job_id in list(job_ids) if job_id in self._jobs]
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("local worker %s ignored SIGTERM; killing it", proc.pid)
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            # The worker's children may outlive it in its group: make sure none is left.
            _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal the worker's process group (it leads one), so its tasks stop with it."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
