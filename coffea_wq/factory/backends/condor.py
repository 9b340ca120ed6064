"""Workers as HTCondor jobs: a submit description piped to ``condor_submit``, ``condor_q``, ``condor_rm``.

HTCondor cannot be installed on this project's test machine, so the submit description is a pure
function checked as text by the tests; the commands fail with a clear ``BatchError`` where HTCondor
is missing. The jobs start in the scratch directory (``initialdir``), which must therefore be on a
file system the execute nodes see, as must the worker program (``transfer_executable = false``).
"""

from __future__ import annotations

import logging
import re
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

# condor JobStatus: 1 idle, 2 running, 3 removed, 4 completed, 5 held, 6 transferring, 7 suspended
ALIVE_STATUSES = {"1", "2", "5", "6", "7"}
SUBMITTED_RE = re.compile(r"(\d+) job\(s\) submitted to cluster (\d+)")


def condor_quote_arguments(args: Sequence[str]) -> str:
    """HTCondor's "new" argument syntax: the whole list in double quotes, single quotes for spaces.

    Example:
        >>> condor_quote_arguments(["-M", "my ana", "it's"])
        '"-M \\'my ana\\' \\'it\\'\\'s\\'"'
    """
    quoted = []
    for arg in args:
        arg = arg.replace('"', '""')
        if not arg or any(c in arg for c in " \t'"):
            arg = "'" + arg.replace("'", "''") + "'"
        quoted.append(arg)
    return '"' + " ".join(quoted) + '"'


def condor_submit_description(count: int, worker_argv: Sequence[str], resources: Resources,
                              scratch_dir: Path, batch_options: str = "") -> str:
    """The submit description for ``count`` workers.

    ``request_memory`` is in MB and ``request_disk`` in KiB, HTCondor's default units.
    ``batch_options`` lines (separated by ``;`` or newlines) are added as they are.

    Example:
        >>> text = condor_submit_description(2, ["/usr/bin/python3", "-m", "coffea_wq", "worker",
        ...     "-M", "ana", "-t", "300"], Resources(cores=4, memory=8000, disk=10000), Path("/s"))
        >>> "request_cpus = 4" in text and "queue 2" in text
        True
    """
    logs = worker_log_dir(scratch_dir)
    lines = [
        "# Written by coffea-wq factory: Work Queue workers for " + shlex.join(worker_argv[-4:]),
        "universe = vanilla",
        f"executable = {worker_argv[0]}",
        f"arguments = {condor_quote_arguments(worker_argv[1:])}",
        "transfer_executable = false",
        "should_transfer_files = IF_NEEDED",
        "when_to_transfer_output = ON_EXIT",
        f"initialdir = {scratch_dir}",
        f"output = {logs}/condor-$(Cluster).$(Process).out",
        f"error = {logs}/condor-$(Cluster).$(Process).err",
        f"log = {logs}/condor.log",
        "getenv = false",
    ]
    lines += resource_requests(resources, cores="request_cpus = {}", memory="request_memory = {}",
                               disk="request_disk = {}", gpus="request_gpus = {}", disk_scale=1024)
    lines += [line.strip() for line in re.split(r"[;\n]", batch_options) if line.strip()]
    lines.append(f"queue {count}")
    return "\n".join(lines) + "\n"


class CondorBackend(CommandLineBackend):
    """Submit workers with ``condor_submit``; list with ``condor_q``; remove with ``condor_rm``."""

    name = "condor"
    system = "HTCondor"
    remove_command = "condor_rm"

    def submit(self, count: int, worker_argv: Sequence[str], resources: Resources) -> list[JobId]:
        if count <= 0:
            return []
        text = condor_submit_description(count, worker_argv, resources, self.scratch_dir, self.batch_options)
        submit_file = self.scratch_dir / "condor_submit_workers.submit"
        submit_file.write_text(text)
        out = run_batch_command(["condor_submit", str(submit_file)], "HTCondor")
        match = SUBMITTED_RE.search(out)
        if not match:
            raise BatchError(f"condor_submit answered {out.strip()!r}; expected 'N job(s) submitted to cluster C.'")
        cluster = match.group(2)
        ids = [f"{cluster}.{proc}" for proc in range(int(match.group(1)))]
        self._jobs.update(ids)
        log.info("submitted HTCondor worker jobs %s", ", ".join(ids))
        return ids

    def list(self) -> list[JobId]:
        if not self._jobs:
            return []
        clusters = sorted({job_id.split(".")[0] for job_id in self._jobs})
        out = run_batch_command(["condor_q", *clusters, "-af", "ClusterId", "ProcId", "JobStatus"], "HTCondor")
        alive = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and f"{parts[0]}.{parts[1]}" in self._jobs and parts[2] in ALIVE_STATUSES:
                alive.add(f"{parts[0]}.{parts[1]}")
        self._jobs = alive
        return sorted(alive)
