"""Workers as Grid Engine (SGE/UGE/SoGE) jobs: a job script given to ``qsub``, ``qstat``, ``qdel``.

Tested for real on a one-host cell of Debian's gridengine that the tests start
(tests/factory/test_sge.py); the client commands find the cell through the environment
(``SGE_ROOT``, ``SGE_CELL``, ports), as on any site. Resource names differ between sites: cores go
to the parallel environment ``smp``, memory to ``h_vmem`` and disk to ``h_fsize``; a site with
other names passes its own with ``--batch-options`` (``-B``), whose words are added as a ``#$``
line. A job that Grid Engine puts in an error state (``Eqw``: it can never start, e.g. its working
directory is missing on the node) is not a worker: it is deleted at once, with the reason Grid
Engine gives, so the factory submits another and the queue is not littered.
"""

from __future__ import annotations

import getpass
import logging
import re
import shlex
from collections.abc import Iterable, Sequence
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


def sge_job_script(worker_argv: Sequence[str], resources: Resources, scratch_dir: Path,
                   batch_options: str = "") -> str:
    """The job script of one worker, with its requests as ``#$`` directives.

    Example:
        >>> script = sge_job_script(["w", "-M", "ana", "-t", "60"], Resources(cores=2), Path("/s"))
        >>> "#$ -pe smp 2" in script
        True
    """
    logs = worker_log_dir(scratch_dir)
    lines = [
        "#!/bin/sh",
        "# Written by coffea-wq factory: one Work Queue worker.",
        f"#$ -N {JOB_NAME}",
        "#$ -S /bin/sh",
        f"#$ -wd {scratch_dir}",
        f"#$ -o {logs}/",
        "#$ -j y",
    ]
    lines += resource_requests(resources, cores="#$ -pe smp {}", memory="#$ -l h_vmem={}M",
                               disk="#$ -l h_fsize={}M", gpus="#$ -l gpu={}")
    if batch_options.strip():
        lines.append(f"#$ {batch_options.strip()}")
    lines.append("exec " + shlex.join(worker_argv))
    return "\n".join(lines) + "\n"


class SgeBackend(CommandLineBackend):
    """Submit workers with ``qsub``; list with ``qstat``; remove with ``qdel``."""

    name = "sge"
    system = "Grid Engine"
    remove_command = "qdel"

    def submit(self, count: int, worker_argv: Sequence[str], resources: Resources) -> list[JobId]:
        script = sge_job_script(worker_argv, resources, self.scratch_dir, self.batch_options)
        script_path = self.scratch_dir / "sge_submit_worker.sh"
        script_path.write_text(script)
        ids = []
        for _ in range(count):
            out = run_batch_command(["qsub", "-terse", str(script_path)], "Grid Engine").strip()
            match = re.match(r"(\d+)", out)
            if not match:
                raise BatchError(f"qsub -terse answered {out!r}, not a job id")
            ids.append(match.group(1))
        self._jobs.update(ids)
        log.info("submitted SGE worker jobs %s", ", ".join(ids))
        return ids

    def list(self) -> list[JobId]:
        if not self._jobs:
            return []
        states = {job: state for job, state in self._states().items() if job in self._jobs}
        failed = sorted((job for job, state in states.items() if "E" in state), key=int)
        if failed:
            self._delete_failed(failed)
        # A job being deleted (state d...) stays known, so shutdown deletes it again, but is no worker.
        self._jobs &= set(states) - set(failed)
        return sorted((job for job in self._jobs if "d" not in states[job]), key=int)

    def remove(self, job_ids: Iterable[JobId]) -> None:
        """``qdel`` the jobs; one that ended meanwhile is not an error (qdel says it does not exist)."""
        ids = [job_id for job_id in job_ids if job_id in self._jobs]
        if not ids:
            return
        try:
            run_batch_command(["qdel", *ids], self.system)
        except BatchError:
            states = self._states()
            if any(job in states and "d" not in states[job] for job in ids):
                raise
            log.info("qdel %s: the jobs that qdel did not find had already ended", " ".join(ids))
        self._jobs.difference_update(ids)

    def _states(self) -> dict[JobId, str]:
        """job id -> state (``qw``, ``r``, ``Eqw``, ``dr``...) of this user's jobs."""
        out = run_batch_command(["qstat", "-u", getpass.getuser()], self.system)
        states = {}
        for line in out.splitlines():
            parts = line.split()  # job-ID prior name user state submit/start-at ...
            if len(parts) >= 5 and parts[0].isdigit():
                states[parts[0]] = parts[4]
        return states

    def _delete_failed(self, job_ids: list[JobId]) -> None:
        for job_id in job_ids:
            log.warning("SGE worker job %s is in an error state and can never run: %s; deleting it",
                        job_id, _error_reason(job_id))
        self.remove(job_ids)


def _error_reason(job_id: JobId) -> str:
    """The ``error reason`` lines ``qstat -j`` gives for a job, or a pointer to them."""
    try:
        out = run_batch_command(["qstat", "-j", job_id], "Grid Engine")
    except BatchError as err:
        return f"(qstat -j {job_id} failed: {err})"
    reasons = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("error reason")]
    return "; ".join(reasons) or f"see qstat -j {job_id}"
