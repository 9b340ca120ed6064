"""`coffea-wq factory -T slurm` on a real Slurm started by the test (tests/factory/slurm_cluster.py)."""

from __future__ import annotations

import subprocess

import pytest

from tests.factory.helpers import CCToolsManager
from tests.support import LineReader, coffea_wq_command, requires_cctools, requires_cctools_python

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@requires_cctools
@requires_cctools_python
def test_slurm_workers_run_shell_tasks_of_a_real_cctools_manager(processes, slurm_cluster, tmp_path):
    manager = CCToolsManager(processes, "fac-slurm")
    manager.submit(4, 1)
    scratch = tmp_path / "shared-scratch"
    argv = coffea_wq_command("factory", "-T", "slurm", "127.0.0.1", str(manager.port), "-S", str(scratch),
                             "--min-workers", "1", "--max-workers", "2", "--cores", "1", "--memory", "500",
                             "--disk", "1000", "--timeout", "60", "--cycle-interval", "1")
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


def _iterative_reference(cfg, chunksize: int) -> dict:
    """The example analysis run in this process by coffea's IterativeExecutor."""
    import warnings

    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
    from analysis_examples.topeft.processor import TopEFTLikeProcessor

    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=chunksize,
                              schema=NanoAODSchema)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        return runner(fileset_from_samples(read_cfg(cfg)), TopEFTLikeProcessor(), treename="Events")


def test_example_analysis_on_slurm_workers_equals_iterative(processes, slurm_cluster, tmp_path):
    """The acceptance test: work_queue_run.py served by `coffea-wq factory -T slurm`, histograms exact."""
    import sys

    from analysis_examples.topeft.compare import assert_outputs_equal
    from analysis_examples.topeft.work_queue_run import load_output
    from tests.support import REPO, free_port

    port = free_port()
    cfg = REPO / "analysis_examples" / "topeft" / "cfg" / "demo.cfg"
    log = tmp_path / "run.log"
    with open(log, "w") as stream:
        run = processes.start([sys.executable, str(REPO / "analysis_examples" / "topeft" / "work_queue_run.py"),
                               str(cfg), "--port", str(port), "--manager-name", "fac-slurm-topeft",
                               "--local-workers", "0", "-s", "2500", "-p", str(tmp_path), "-o", "slurm",
                               "--no-status"], cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT)
    # No PATH set up here: the factory puts the worker's Python first on the job's PATH, so the
    # tasks' `python3` has coffea.
    factory = processes.start(
        coffea_wq_command("factory", "-T", "slurm", "127.0.0.1", str(port), "-S", str(tmp_path / "scratch"),
                          "--min-workers", "1", "--max-workers", "2", "--cores", "1", "--memory", "1000",
                          "--disk", "2000", "--timeout", "60", "--cycle-interval", "1"),
        env=slurm_cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = LineReader(factory.stdout)
    try:
        rc = run.wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the analysis did not finish in 300 s:\n{log.read_text()[-3000:]}\n"
                    + "\n".join(output.snapshot()[-20:]))
    assert rc == 0, log.read_text()[-3000:]
    assert "Processed 15,000 events" in log.read_text()
    assert any("submitting" in line for line in output.snapshot())

    factory.send_signal(2)
    assert factory.wait(timeout=60) == 0
    assert "all workers removed." in output.snapshot()
    for _ in range(100):
        if not slurm_cluster.job_ids():
            break
        subprocess.run(["sleep", "0.3"])
    assert not slurm_cluster.job_ids(), "the factory left jobs in squeue"
    assert_outputs_equal(load_output(tmp_path / "slurm.pkl.gz"), _iterative_reference(cfg, 2500))


@requires_cctools_python
def test_submit_workers_to_slurm_run_tasks_then_leave_by_idle_timeout(processes, slurm_cluster, tmp_path):
    manager = CCToolsManager(processes, "fac-slurm-submit")
    manager.submit(3, 1)
    done = subprocess.run(
        coffea_wq_command("submit-workers", "-T", "slurm", "127.0.0.1", str(manager.port), "-S",
                          str(tmp_path / "scratch"), "--cores", "1", "--memory", "300", "-t", "4", "2"),
        env=slurm_cluster.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    job_ids = done.stdout.split()
    assert len(job_ids) == 2 and all(job.isdigit() for job in job_ids)
    assert set(job_ids) <= set(slurm_cluster.job_ids())
    wait_for = manager.output.wait_for
    wait_for(lambda s: manager.done_count() == 3, 120, "the tasks to run on the submitted workers")
    # Nobody removes them: idle for 4 s, the workers exit and their jobs leave the queue.
    wait_for(lambda s: not set(job_ids) & set(slurm_cluster.job_ids()), 60,
                    "the idle workers' jobs to end")
