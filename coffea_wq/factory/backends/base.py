"""The one small interface every batch system implements, and the helper that runs its commands.

A back-end knows only how to start N copies of a command with some resources, which of the jobs
it started are still alive, and how to stop jobs. It knows nothing of managers or policies.
"""

from __future__ import annotations

import logging
import math
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from coffea_wq.resources.types import Resources

log = logging.getLogger(__name__)

JobId = str
COMMAND_TIMEOUT = 60.0


class BatchError(RuntimeError):
    """A batch-system command failed or is missing; the message says which command and why."""


@runtime_checkable
class BatchBackend(Protocol):
    """Submit, list and remove worker jobs on one batch system.

    ``list()`` returns only jobs *this* back-end object submitted that are still queued or running.
    """

    name: str

    def submit(self, count: int, worker_argv: Sequence[str], resources: Resources) -> list[JobId]: ...

    def list(self) -> list[JobId]: ...

    def remove(self, job_ids: Iterable[JobId]) -> None: ...


class CommandLineBackend:
    """What the Slurm, HTCondor and SGE back-ends share: the jobs this object submitted, and
    removal with the batch system's remove command (``scancel``, ``condor_rm``, ``qdel``)."""

    name = ""
    system = ""  # the batch system's name, for error messages
    remove_command = ""

    def __init__(self, scratch_dir: Path, batch_options: str = "") -> None:
        self.scratch_dir = Path(scratch_dir)
        self.batch_options = batch_options
        self._jobs: set[JobId] = set()

    def remove(self, job_ids: Iterable[JobId]) -> None:
        ids = [job_id for job_id in job_ids if job_id in self._jobs]
        if ids:
            run_batch_command([self.remove_command, *ids], self.system)
        self._jobs.difference_update(ids)


def run_batch_command(argv: Sequence[str], system: str, input_text: str | None = None,
                      timeout: float = COMMAND_TIMEOUT) -> str:
    """Run one batch-system client command and return its standard output.

    Raises:
        BatchError: the program is not installed, timed out, or exited non-zero (with its stderr).

    Example:
        >>> run_batch_command(["echo", "42"], "test").strip()
        '42'
    """
    program = argv[0]
    if shutil.which(program) is None:
        raise BatchError(f"{program} not found: {system} does not seem to be installed on this machine "
                         f"(or its commands are not on PATH)")
    log.debug("running %s", shlex.join(argv))
    try:
        done = subprocess.run(list(argv), input=input_text, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BatchError(f"{shlex.join(argv)} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or "no message"
        raise BatchError(f"{shlex.join(argv)} failed with exit code {done.returncode}: {detail}")
    return done.stdout


def whole_cores(resources: Resources) -> int | None:
    """Batch systems count whole cores: a worker of 1.5 cores asks for 2."""
    return None if resources.cores is None else max(1, math.ceil(resources.cores))


def integer(value: float | None) -> int | None:
    return None if value is None else int(math.ceil(value))


def resource_requests(resources: Resources, cores: str, memory: str, disk: str, gpus: str,
                      disk_scale: float = 1) -> list[str]:
    """The batch system's request of each resource the worker declares, each a format with one ``{}``
    for the whole number (cores rounded up, memory and disk in MB, disk times ``disk_scale``).

    Example:
        >>> resource_requests(Resources(cores=1.5, memory=1000), "--cpus={}", "--mem={}M", "--tmp={}M", "--gpus={}")
        ['--cpus=2', '--mem=1000M']
    """
    requests = []
    if resources.cores is not None:
        requests.append(cores.format(whole_cores(resources)))
    if resources.memory is not None:
        requests.append(memory.format(integer(resources.memory)))
    if resources.disk is not None:
        requests.append(disk.format(integer(resources.disk * disk_scale)))
    if resources.gpus:
        requests.append(gpus.format(integer(resources.gpus)))
    return requests


def worker_log_dir(scratch_dir: Path) -> Path:
    """Where the jobs' own stdout/stderr go (inside the validated scratch directory)."""
    path = scratch_dir / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
