"""work_queue_run.py and make demo's script, run as real processes from the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
from analysis_examples.topeft.compare import assert_outputs_equal
from analysis_examples.topeft.processor import TopEFTLikeProcessor
from analysis_examples.topeft.work_queue_run import (
    build_parser,
    load_output,
    parse_port,
    work_queue_executor_args,
)
from coffea_wq.executor.compat import split_executor_args
from tests.examples.test_plots import assert_plots, printed_plots
from tests.support import REAL_WORKER, REPO, free_port, requires_cctools

SCRIPT = REPO / "analysis_examples" / "topeft" / "work_queue_run.py"
DEMO = REPO / "analysis_examples" / "demo.py"
DEMO_CFG = REPO / "analysis_examples" / "topeft" / "cfg" / "demo.cfg"


def run_script(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run work_queue_run.py in ``cwd`` (a tmp dir: its default output directory is ./histos)."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def iterative_reference(chunksize: int, maxchunks: int | None = None) -> dict:
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=chunksize,
                              maxchunks=maxchunks, schema=NanoAODSchema)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        return runner(fileset_from_samples(read_cfg(DEMO_CFG)), TopEFTLikeProcessor(), treename="Events")


def test_parse_port():
    assert parse_port("9123") == 9123
    assert parse_port("9123-9130") == [9123, 9130]
    assert parse_port("0") == 0
    for bad in ("91x3", "9130-9123", "1-2-3", "70000"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            parse_port(bad)


def test_executor_args_are_topcoffea_style():
    args = build_parser().parse_args(["x.cfg", "--port", "9200-9210", "--cores", "1", "--logdir", "/tmp/l"])
    exe = work_queue_executor_args(args, NanoAODSchema)
    assert exe["schema"] is NanoAODSchema and exe["port"] == [9200, 9210] and exe["cores"] == 1
    assert exe["master-name"].endswith("-workqueue-coffea")  # workers started by hand find it by name
    assert exe["transactions-log"] == "/tmp/l/tr.log" and "memory" not in exe
    local = work_queue_executor_args(build_parser().parse_args(["x.cfg", "--local-workers", "2"]), NanoAODSchema)
    assert local["local-workers"] == 2 and "master-name" not in local
    # only local workers: no port, so the executor listens on 127.0.0.1 behind the run's own password
    assert "port" not in local
    assert work_queue_executor_args(build_parser().parse_args(["x.cfg"]), NanoAODSchema)["port"] == [9123, 9130]
    # every key is one coffea_wq.run_uproot_job knows
    executor_options, runner_options = split_executor_args(exe)
    assert executor_options["master_name"] == exe["master-name"]
    assert set(runner_options) == {"schema", "skipbadfiles"}


def test_dashboard_option_becomes_the_executors_dashboard_key():
    def executor_args(*argv: str) -> dict:
        return work_queue_executor_args(build_parser().parse_args(["x.cfg", *argv]), NanoAODSchema)

    assert "dashboard" not in executor_args()
    assert executor_args("--dashboard")["dashboard"] is True
    wide = executor_args("--dashboard", "8787", "--dashboard-host", "0.0.0.0")
    assert (wide["dashboard"], wide["dashboard-host"]) == (8787, "0.0.0.0")
    executor_options, _ = split_executor_args(wide)
    assert (executor_options["dashboard"], executor_options["dashboard_host"]) == (8787, "0.0.0.0")


def test_pretend_prints_samples_and_chunk_plan_and_writes_nothing(tmp_path):
    proc = run_script(str(DEMO_CFG), "--pretend", "-s", "1000", "-c", "2", "-p", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ttH_like" in proc.stdout and "demo.cfg:8" in proc.stdout
    assert "Chunk plan" in proc.stdout
    assert "6 chunks, 7,500 events, chunksize 1,000, at most 2 chunks per dataset" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_iterative_run_writes_the_output_file_and_summary(tmp_path):
    proc = run_script(str(DEMO_CFG), "--executor", "iterative", "-s", "2500", "-c", "1",
                      "-o", "itest", "-p", str(tmp_path / "out"), "--no-status", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Processed 7,500 events in" in proc.stdout and "events/s" in proc.stdout
    assert "Events per category" in proc.stdout and "Cutflow" in proc.stdout
    outfile = tmp_path / "out" / "itest.pkl.gz"
    assert outfile.is_file()
    assert_outputs_equal(load_output(outfile), iterative_reference(2500, maxchunks=1))


def test_a_bad_cfg_line_is_named(tmp_path):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(f"# fine so far\n{REPO}/analysis_examples/data/sample/ttH_like.json\nttZ_missing.json\n")
    proc = run_script(str(cfg), "--pretend", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{cfg}:3: sample file 'ttZ_missing.json' not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_failed_run_is_one_clear_line_not_a_traceback(tmp_path):
    (tmp_path / "broken.root").write_bytes(b"this is not a ROOT file")
    proc = run_script(str(tmp_path / "broken.root"), "--executor", "iterative", "-p", str(tmp_path), "--no-status",
                      cwd=tmp_path)
    assert proc.returncode == 1
    assert "work_queue_run.py: error: the analysis failed" in proc.stderr and "broken.root" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.pkl.gz"))


def test_a_bad_option_is_refused(tmp_path):
    proc = run_script(str(DEMO_CFG), "--port", "nine", cwd=tmp_path)
    assert proc.returncode == 2 and "port 'nine' is not a number" in proc.stderr


@pytest.mark.slow
def test_demo_runs_on_two_local_workers_and_equals_iterative(tmp_path, processes):
    log = tmp_path / "demo.log"
    with open(log, "w") as stream:
        proc = processes.start([sys.executable, str(DEMO), "--outpath", str(tmp_path / "out"), "--no-status"],
                               cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT)
        rc = wait_for(proc, log, 240)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "demo: work_queue executor" in text  # coffea-wq is installed: the demo runs on it, not on futures
    assert "Processed 15,000 events" in text and "Events per category" in text
    # local workers only: the manager is on loopback behind the run's password, so no open-port warning
    assert "without a password" not in text
    assert_outputs_equal(load_output(tmp_path / "out" / "topeft_demo.pkl.gz"), iterative_reference(1250))
    assert_plots(printed_plots(text), tmp_path / "out")  # make demo's PNGs, one per histogram


def wait_for(proc: subprocess.Popen, log, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{proc.args} did not finish in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@requires_cctools
def test_runs_on_a_real_cctools_worker_and_equals_iterative(tmp_path, processes):
    port = free_port()
    log = tmp_path / "run.log"
    with open(log, "w") as stream:
        run = processes.start([sys.executable, str(SCRIPT), str(DEMO_CFG), "--port", str(port), "--manager-name", "",
                               "-s", "2500", "-p", str(tmp_path), "-o", "cctools", "--no-status"],
                              cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT)
        # the tasks run `python3` from the worker's PATH: this interpreter's, which has coffea
        env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}")
        processes.start([REAL_WORKER, "--cores", "1", "--single-shot", "-t", "60", "127.0.0.1", str(port)],
                        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rc = wait_for(run, log, 240)
    assert rc == 0, log.read_text()[-3000:]
    assert "Processed 15,000 events" in log.read_text()
    assert_outputs_equal(load_output(tmp_path / "cctools.pkl.gz"), iterative_reference(2500))
