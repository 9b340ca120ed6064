"""Workers as Grid Engine (SGE/UGE/SoGE) jobs: a job script piped to ``qsub``, ``qstat``, ``qdel``.

Grid Engine cannot be installed on this project's test machine, so the job script is a pure
function checked as text by the tests; the commands fail with a clear ``BatchError`` where it is
missing. Resource names differ between sites: cores go to the parallel environment ``smp``,
memory to ``h_vmem`` and disk to ``h_fsize``; a site with other names passes its own with
``--batch-options`` (``-B``), whose words are added as ``#$`` lines.
"""

from __future__ import annotations

import getpass
import logging
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from coffea_wq.factory.backends.base import (
    BatchError,
    CommandLineBackend,
    JobId,
    integer,
    run_batch_command,
    whole_cores,
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
    cores = whole_cores(resources)
    if cores is not None:
        lines.append(f"#$ -pe smp {cores}")
    if resources.memory is not None:
        lines.append(f"#$ -l h_vmem={integer(resources.memory)}M")
    if resources.disk is not None:
        lines.append(f"#$ -l h_fsize={integer(resources.disk)}M")
    if resources.gpus:
        lines.append(f"#$ -l gpu={integer(resources.gpus)}")
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
        out = run_batch_command(["qstat", "-u", getpass.getuser()], "Grid Engine")
        listed = {line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].isdigit()}
        self._jobs &= listed
        return sorted(self._jobs, key=int)
