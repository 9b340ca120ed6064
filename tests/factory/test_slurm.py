"""`coffea-wq factory -T slurm` on a real Slurm started by the test (tests/factory/slurm_cluster.py)."""

from __future__ import annotations

import subprocess

import pytest

from tests.factory.helpers import CCToolsManager, LineReader, worker_options
from tests.support import coffea_wq_command, requires_cctools, requires_cctools_python

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@requires_cctools
@requires_cctools_python
def test_slurm_workers_run_shell_tasks_of_a_real_cctools_manager(processes, slurm_cluster, tmp_path):
    manager = CCToolsManager(processes, "fac-slurm")
    manager.submit(4, 1)
    scratch = tmp_path / "shared-scratch"
    argv = coffea_wq_command("factory", "-T", "slurm", "127.0.0.1", str(manager.port), "-S", str(scratch),
                             "--min-workers", "1", "--max-workers", "2", "--cores", "1", "--memory", "500",
                             "--disk", "1000", "--timeout", "60", "--cycle-interval", "1", *worker_options())
    factory = processes.start(argv, env=slurm_cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    output = LineReader(factory.stdout)
    output.wait_for(lambda s: "submitting" in s, 60, "the factory to submit Slurm jobs")

    def our_jobs_running() -> bool:
        out = slurm_cluster.run("squeue", "--noheader", "--format=%j %t").stdout
        return "coffea-wq-worker R" in out

    output.wait_for(lambda s: our_jobs_running(), 60, "a coffea-wq-worker job to run in Slurm")
    output.wait_for(lambda s: manager.done_count() == 4, 120, "the four tasks to finish on Slurm workers")
    assert slurm_cluster.job_ids(), "the factory's workers should still be queued (min-workers=1)"

    factory.send_signal(2)
    assert factory.wait(timeout=60) == 0
    assert "all workers removed." in output.snapshot()
    # scancel'ed jobs leave squeue within seconds; the fixture then checks daemons are gone.
    deadline_lines = output.snapshot()
    for _ in range(100):
        if not slurm_cluster.job_ids():
            break
        subprocess.run(["sleep", "0.3"])
    assert not slurm_cluster.job_ids(), f"jobs left after the factory exited: {deadline_lines[-5:]}"
    assert list((scratch / "logs").glob("slurm-*.out")), "Slurm job output should be in the scratch dir"
