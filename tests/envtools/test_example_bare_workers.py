"""Acceptance: the example analysis runs with ``environment_file`` on two workers whose own
Python lacks coffea, and gives IterativeExecutor's histograms.

* a REAL ``work_queue_worker`` with ``PATH=/usr/bin:/bin``: its tasks' ``python3`` is Debian's,
  without coffea; they run cold, through the shipped ``coffea_wq_env_run``;
* a coffea-wq worker run from a MINIMAL venv (coffea-wq installed with ``--no-deps``, no coffea):
  its tasks run in warm slots forked from a zygote started with the environment's ``bin/python``.

Neither has a ``PYTHONPATH``; everything a task imports comes from the packed project venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
import envtools
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
from analysis_examples.topeft.compare import assert_outputs_equal
from analysis_examples.topeft.processor import TopEFTLikeProcessor
from analysis_examples.topeft.work_queue_run import make_processor, quiet_crossref_warnings
from coffea_wq.executor import last_report
from tests.support import LOOPBACK, REAL_WORKER, REPO, free_port, requires_cctools, wait_until

SAMPLE_CFG = REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
CHUNKSIZE = 1250  # 12 chunks over the 6 sample files
BARE_PATH = "/usr/bin:/bin"


def bare_environ(home: Path) -> dict[str, str]:
    """What the workers run with: the system's PATH, no PYTHONPATH, nothing from this session."""
    return {"PATH": BARE_PATH, "HOME": str(home), "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def minimal_venv(tmp_path_factory) -> Path:
    """A venv holding coffea-wq alone (``pip install --no-deps -e``): its worker, no coffea."""
    venv = tmp_path_factory.mktemp("minimal") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "--no-deps", "-e", str(REPO)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, f"pip install --no-deps -e {REPO} failed:\n{install.stderr[-2000:]}"
    return venv


def python_probe(python: str, env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def manager_address_of(pid: int, port: int) -> str | None:
    """``127.0.0.1:<local port>`` of process ``pid``'s connection to the manager, as the manager logs it."""
    try:
        for conn in psutil.Process(pid).net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED:
                return f"{conn.laddr.ip}:{conn.laddr.port}"
    except psutil.NoSuchProcess:
        return None
    return None


def tasks_done_by(transactions_log: Path) -> dict[tuple[str, str], int]:
    """How many tasks of each category each worker address completed, from the transactions log."""
    category: dict[str, str] = {}
    where: dict[str, str] = {}
    counts: dict[tuple[str, str], int] = {}
    for line in transactions_log.read_text().splitlines():
        words = line.split()
        if len(words) < 5 or words[2] != "TASK":
            continue
        task, event = words[3], words[4]
        if event == "WAITING":
            category[task] = words[5]
        elif event == "RUNNING":
            where[task] = words[5]
        elif event == "DONE" and words[5] == "SUCCESS":
            key = (where[task], category[task])
            counts[key] = counts.get(key, 0) + 1
    return counts


@requires_cctools
@pytest.mark.slow
@pytest.mark.cctools
@pytest.mark.timeout(600)
def test_example_with_environment_file_on_workers_without_coffea(tmp_path, processes, project_environment,
                                                                  minimal_venv):
    home = tmp_path / "home"
    home.mkdir()
    env = bare_environ(home)
    # (a) the real worker's python3 is Debian's, which cannot import coffea
    system = python_probe("python3", env, "import sys; print(sys.executable, sys.version.split()[0]); import coffea")
    assert system.returncode != 0 and "No module named 'coffea'" in system.stderr, system
    executable, version = system.stdout.split()
    assert os.path.realpath(executable).startswith("/usr/bin/python3") and version.startswith("3.11"), system.stdout
    # (b) the minimal venv has coffea-wq's worker but no coffea
    minimal_python = str(minimal_venv / "bin" / "python")
    bare = python_probe(minimal_python, env, "import coffea_wq.worker, envtools; import coffea")
    assert bare.returncode != 0 and "No module named 'coffea'" in bare.stderr, bare

    quiet_crossref_warnings()
    fileset = fileset_from_samples(read_cfg(SAMPLE_CFG))
    reference = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=CHUNKSIZE,
                                 schema=NanoAODSchema)(fileset, TopEFTLikeProcessor(), treename="Events")

    port = free_port()
    options = ["--cores", "1", "-t", "300"]
    (tmp_path / "real").mkdir()
    real = processes.start([REAL_WORKER, *options, "-s", tmp_path / "real", LOOPBACK, port], env=env,
                           stdout=subprocess.DEVNULL, stderr=(tmp_path / "real.log").open("w"))
    ours = processes.start([minimal_python, "-m", "coffea_wq", "worker", *options, "--workdir", tmp_path / "ours",
                            LOOPBACK, port], env=env, stdout=subprocess.DEVNULL,
                           stderr=(tmp_path / "ours.log").open("w"))
    addresses: dict[str, str] = {}

    def both_connected(queue) -> None:
        # each phase starts submitting once both workers are there, so both get tasks
        for name, proc in (("cctools", real), ("coffea-wq", ours)):
            addresses[name] = wait_until(lambda p=proc: manager_address_of(p.pid, port), 90,
                                         f"the {name} worker to connect")

    transactions = tmp_path / "tx.log"
    executor = coffea_wq.WorkQueueExecutor(port=port, local_workers=0, status=False, retries=1,
                                           environment_file=str(project_environment), custom_init=both_connected,
                                           transactions_log=str(transactions), filepath=str(tmp_path))
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    out = runner(fileset, make_processor(), treename="Events")

    assert_outputs_equal(reference, out)
    report = last_report("Processing")
    assert len(report.accumulated) == 12 and report.failed == []
    done = tasks_done_by(transactions)
    for name, address in addresses.items():
        assert done.get((address, "processing"), 0) >= 1, f"the {name} worker ran no processing task: {done}"
    assert sum(n for (_, category), n in done.items() if category == "processing") == 12, done


def test_tarball_name_on_workers_is_its_content_key(tmp_path):
    """A tarball rebuilt under the same name (``_HEAD``) gets a new name on workers, so a long-lived
    worker never runs tasks in the older environment it cached under that name."""
    from coffea_wq.executor.options import resolve_environment
    from coffea_wq.executor.tasks.staging import FunctionFile, TaskTemplate

    tarball = tmp_path / "env_0123456789_HEAD.tar.gz"
    tarball.write_bytes(b"\x1f\x8b first build, trailer A1B2C3D4")
    _, runner, first = resolve_environment(str(tarball))
    tarball.write_bytes(b"\x1f\x8b second build, trailer E5F6G7H8")
    _, _, second = resolve_environment(str(tarball))
    assert runner == envtools.runner_script_path()
    assert first != second
    assert first.startswith("env_0123456789_HEAD-") and first.endswith(".tar.gz")
    assert second == f"{envtools.unpack_key(tarball)}.tar.gz"
    # the task command and the cached input both use that name
    function = FunctionFile(tmp_path / "fn.pkl", "fn-f-0.pkl")
    template = TaskTemplate(function=function, script=tmp_path / "s.py", category="processing",
                            environment=tarball, env_runner=runner, environment_name=second)
    assert template.command().split()[:2] == ["./coffea_wq_env_run", second]
