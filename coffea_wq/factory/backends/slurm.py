"""Workers as Slurm jobs: ``sbatch`` to submit, ``squeue`` to list, ``scancel`` to remove.

Every client command inherits the environment, so ``SLURM_CONF`` selects the cluster. Each worker
is one job (``--ntasks=1``) that starts in the scratch directory and writes its output to
``<scratch>/logs/slurm-<jobid>.out``.
"""

from __future__ import annotations

import getpass
import logging
import shlex
from collections.abc import Sequence
from pathlib import Path

from coffea_wq.factory.backends.base import (
    BatchError,
    CommandLineBackend,
    JobId,
    resource_requests,
    run_batch_command,
    worker_log_dir,
)
from coffea_wq.resources.types import Resources

log = logging.getLogger(__name__)

JOB_NAME = "coffea-wq-worker"
# squeue's compact states that mean the job is over (or about to be).
FINISHED_STATES = {"CG", "CD", "F", "CA", "TO", "NF", "PR", "OOM", "BF", "DL", "RV", "SE"}


def sbatch_argv(worker_argv: Sequence[str], resources: Resources, scratch_dir: Path,
                batch_options: str = "") -> list[str]:
    """The ``sbatch`` command line for one worker.

    Example:
        >>> sbatch_argv(["w", "-M", "ana"], Resources(cores=2, memory=1000), Path("/s"))[-2:]
        ['--wrap', 'exec w -M ana']
    """
    argv = ["sbatch", "--parsable", f"--job-name={JOB_NAME}", f"--chdir={scratch_dir}",
            f"--output={worker_log_dir(scratch_dir)}/slurm-%j.out", "--ntasks=1"]
    argv += resource_requests(resources, cores="--cpus-per-task={}", memory="--mem={}M", disk="--tmp={}M",
                              gpus="--gres=gpu:{}")
    argv += shlex.split(batch_options)
    return argv + ["--wrap", "exec " + shlex.join(worker_argv)]


class SlurmBackend(CommandLineBackend):
    """Submit workers with ``sbatch``; list them with ``squeue``; remove them with ``scancel``."""

    name = "slurm"
    system = "Slurm"
    remove_command = "scancel"

    def submit(self, count: int, worker_argv: Sequence[str], resources: Resources) -> list[JobId]:
        submitted = []
        argv = sbatch_argv(worker_argv, resources, self.scratch_dir, self.batch_options)
        for _ in range(count):
            out = run_batch_command(argv, "Slurm").strip()
            job_id = out.split(";")[0].strip()
            if not job_id.isdigit():
                raise BatchError(f"sbatch answered {out!r}, not a job id")
            self._jobs.add(job_id)
            submitted.append(job_id)
            log.info("submitted Slurm worker job %s", job_id)
        return submitted

    def list(self) -> list[JobId]:
        if not self._jobs:
            return []
        out = run_batch_command(["squeue", "--noheader", "--array", "--format=%i %t",
                                 f"--user={getpass.getuser()}"], "Slurm")
        alive = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in self._jobs and parts[1] not in FINISHED_STATES:
                alive.add(parts[0])
        self._jobs &= alive | {j for j in self._jobs if _still_completing(out, j)}
        return sorted(alive, key=int)



def _still_completing(squeue_out: str, job_id: JobId) -> bool:
    """A job in CG still holds its node: keep it known (removable), but do not count it alive."""
    return any(line.split() == [job_id, "CG"] for line in squeue_out.splitlines())
