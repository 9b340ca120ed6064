"""coffea-wq workers serving REAL CCTools managers: python3-workqueue, makeflow -T wq, passwords."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import (
    REAL_MAKEFLOW,
    SAMPLES,
    SYSTEM_PYTHON,
    LineReader,
    coffea_wq_command,
    needs_system,
    requires_cctools,
    requires_cctools_python,
    wait_until,
)

MANAGER_SCRIPT = Path(__file__).with_name("cctools_manager.py")
MAKEFLOW_SAMPLES = SAMPLES / "makeflow"

pytestmark = [pytest.mark.cctools, pytest.mark.slow]


class CCToolsManager:
    """A python3-workqueue manager process; its stdout lines are collected by a reader thread."""

    def __init__(self, processes, workdir: Path, mode: str, *args: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = processes.start(
            [SYSTEM_PYTHON, MANAGER_SCRIPT, mode, workdir, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.output = LineReader(self.proc.stdout)
        _, port_line = self.output.wait_for(lambda line: line.startswith("PORT "), 20, "the manager's port")
        self.port = int(port_line.split()[1])

    def results(self, timeout: float = 60) -> dict[str, dict]:
        self.output.wait_for(lambda line: line == "DONE", timeout, "the manager to finish")
        records = [json.loads(x) for x in self.output.snapshot() if x.startswith("{")]
        return {r["label"]: r for r in records}


def start_worker(processes, tmp_path: Path, port: int, *args: str, name: str = "w"):
    log = tmp_path / f"{name}.log"
    argv = coffea_wq_command("worker", "--cores", "2", "--memory", "1000", "--disk", "1000", "--workdir",
                             str(tmp_path / name), *args, "127.0.0.1", str(port))
    with open(log, "wb") as out:
        proc = processes.start(argv, stdout=out, stderr=out)
    proc.log = log  # type: ignore[attr-defined]
    return proc


@requires_cctools_python
def test_two_workers_serve_a_python_workqueue_manager(processes, tmp_path):
    manager = CCToolsManager(processes, tmp_path / "mgr", "probe")
    workers = [start_worker(processes, tmp_path, manager.port, "-t", "30", name=f"w{i}") for i in (1, 2)]
    results = manager.results()
    assert results["files"]["result"] == 0 and results["files"]["return_status"] == 0
    assert results["files"]["output"] == "line one\nbuffer-contents\nE=hello world\n"
    assert (tmp_path / "mgr/out1.txt").read_text() == "made\n"
    assert results["dirs"]["result"] == 0 and "a.txt" in results["dirs"]["output"]
    assert (tmp_path / "mgr/odir_out/s/a.txt").read_text() == "AAA\n"
    assert results["missing"]["result"] == 2  # OUTPUT_MISSING, found by the manager's get
    assert (results["signal"]["result"], results["signal"]["return_status"]) == (0, 9)
    assert (results["exit7"]["result"], results["exit7"]["return_status"], results["exit7"]["output"]) == (
        0, 7, "to-stderr\n")
    assert (results["walltime"]["result"], results["walltime"]["return_status"]) == (56, 9)
    for worker in workers:  # shutdown_workers(0) sends exit
        assert worker.wait(timeout=20) == 0
        assert "Traceback" not in worker.log.read_text()
    assert not list((tmp_path / "w1").iterdir()) and not list((tmp_path / "w2").iterdir())


@requires_cctools_python
def test_tasks_spread_over_both_workers(processes, tmp_path):
    manager = CCToolsManager(processes, tmp_path / "mgr", "spread")
    for i in (1, 2):
        start_worker(processes, tmp_path, manager.port, "-t", "30", "--cores", "1", name=f"w{i}")
    results = manager.results()
    assert len(results) == 8 and all(r["result"] == 0 and r["return_status"] == 0 for r in results.values())
    workspaces = {r["output"].split()[0] for r in results.values()}
    assert len(workspaces) == 2, f"expected both workers to run tasks, got {workspaces}"


@requires_cctools_python
@pytest.mark.parametrize("worker_pw, manager_pw, accepted", [
    ("secret\n", "secret\n", True),
    ("secret\n", "secret", False),  # the trailing newline is part of the password
    (None, "secret\n", False),
    ("secret\n", None, False),
])  # fmt: skip
def test_passwords_with_a_real_manager(processes, tmp_path, worker_pw, manager_pw, accepted):
    args = []
    if manager_pw is not None:
        (tmp_path / "manager.pw").write_text(manager_pw)
        args += ["--password", str(tmp_path / "manager.pw")]
    manager = CCToolsManager(processes, tmp_path / "mgr", "single", *args, "--seconds", "60" if accepted else "6")
    worker_args = ["-t", "30", "-i", "0.5", "-b", "1"]
    if worker_pw is not None:
        (tmp_path / "worker.pw").write_text(worker_pw)
        worker_args += ["-P", str(tmp_path / "worker.pw")]
    worker = start_worker(processes, tmp_path, manager.port, *worker_args)
    results = manager.results(timeout=70)
    if accepted:
        assert results["single"]["output"] == "single-task\n"
        assert worker.wait(timeout=20) == 0
        return
    assert results == {}
    expected = {None: "requires a password"}.get(worker_pw, "no password" if manager_pw is None else "wrong password")
    wait_until(lambda: expected in worker.log.read_text(), 10, f"the worker to say {expected!r}")


@requires_cctools
@needs_system(REAL_MAKEFLOW is None, "makeflow", "coop-computing-tools")
def test_makeflow_with_a_failing_rule(processes, tmp_path):
    (tmp_path / "input.txt").write_text("hello work queue\nsecond line\n")
    (tmp_path / "test.mf").write_text(
        "upper.txt: input.txt\n\ttr a-z A-Z < input.txt > upper.txt\n\n"
        "count.txt: upper.txt\n\twc -c upper.txt > count.txt\n\n"
        "fail.txt: input.txt\n\tcat input.txt > fail.txt; echo about to fail >&2; exit 3\n"
    )
    from tests.support import free_port

    port = free_port()
    env = dict(os.environ, OMPI_MCA_ess_singleton_isolated="1")
    makeflow = processes.start(
        [shutil.which("makeflow"), "-T", "wq", "-p", str(port), "-u", "5", "-t", "30", "--max-remote", "4",
         "test.mf"], cwd=tmp_path, env=env, stdout=open(tmp_path / "makeflow.out", "wb"), stderr=subprocess.STDOUT,
    )
    workers = [start_worker(processes, tmp_path, port, "-t", "20", "-i", "0.3", "-b", "1", name=f"w{i}")
               for i in (1, 2)]
    try:
        makeflow.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("makeflow did not finish: " + (tmp_path / "makeflow.out").read_text()[-2000:])
    out = (tmp_path / "makeflow.out").read_text()
    assert (tmp_path / "upper.txt").read_text() == "HELLO WORK QUEUE\nSECOND LINE\n"
    assert (tmp_path / "count.txt").read_text().split()[0] == "29"
    assert "failed with exit code 3" in out
    assert not (tmp_path / "fail.txt").exists()
    for worker in workers:
        assert "Traceback" not in worker.log.read_text()
        assert "released by the manager" in worker.log.read_text() or worker.poll() is None
