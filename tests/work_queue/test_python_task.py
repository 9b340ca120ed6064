"""PythonTask: a function and its arguments pickled, run by the worker's python3, the value back."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import coffea_wq.work_queue as wq
from coffea_wq.work_queue import python_task
from tests.support import REPO, skip_not_installed
from tests.work_queue.helpers import WORKER_KINDS, queue_with_worker, wait_for

DEBIAN_DILL = Path("/usr/lib/python3/dist-packages/dill")


def power_sum(x, y, power=1):
    return x**power + y**power


@pytest.fixture(params=WORKER_KINDS)
def queue(request, processes, tmp_path, monkeypatch):
    # CCTools' worker gives tasks its own PATH: put this interpreter first, as the worker's python3
    # must have the pickler (coffea-wq's worker does this by itself)
    monkeypatch.setenv("PATH", f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin")
    q = queue_with_worker(request.param, processes, tmp_path / "worker", cores=2)
    yield q
    q.shutdown()


@pytest.mark.slow
def test_values_exceptions_and_missing_results(queue, tmp_path):
    # functions of an importable module are pickled by reference (the worker would need this test
    # module), so the ones sent are defined here, as in a script's __main__
    def local_power_sum(x, y, power=1):
        return x**power + y**power

    def fails_with(message):
        raise ValueError(message)

    offset = 10  # a closure: only dill/cloudpickle can ship it
    tasks = {
        "sum": wq.PythonTask(local_power_sum, 3, 4),
        "kwargs": wq.PythonTask(local_power_sum, 3, 4, power=2),
        "closure": wq.PythonTask(lambda v: [math.floor(v) + offset], 2.5),
        "raises": wq.PythonTask(fails_with, "bad input 42"),
        "no_result": wq.PythonTask(local_power_sum, 1, 2),
    }
    # an input that does not exist: the task never runs, so there is no result to read
    tasks["no_result"].specify_input_file(str(tmp_path / "absent.txt"), "absent.txt")
    for tag, task in tasks.items():
        task.specify_tag(tag)
        task.specify_cores(1)
        queue.submit(task)
    done = {tag: wait_for(queue, 90, tag=tag) for tag in tasks}
    assert done["sum"].output == 7
    assert done["kwargs"].output == 25
    assert done["closure"].output == [12]
    with pytest.raises(ValueError, match="bad input 42") as raised:
        _ = done["raises"].output
    assert "fails_with" in done["raises"].remote_traceback
    assert any("raised by PythonTask" in note for note in getattr(raised.value, "__notes__", []))
    with pytest.raises(wq.PythonTaskNoResult, match="INPUT_MISS"):
        _ = done["no_result"].output
    assert done["sum"].result == wq.WORK_QUEUE_RESULT_SUCCESS and done["sum"].return_status == 0


def test_serializer_is_dill_when_importable_else_cloudpickle(monkeypatch, tmp_path):
    # dill importable: Debian's python3-dill (pure Python), alone on a child interpreter's path
    if not DEBIAN_DILL.is_dir():
        skip_not_installed("dill for the system python3", "python3-dill")
    only_dill = tmp_path / "only-dill"
    only_dill.mkdir()
    (only_dill / "dill").symlink_to(DEBIAN_DILL)
    child = subprocess.run([sys.executable, "-c", "from coffea_wq.work_queue import python_task\n"
                            "print(python_task.choose_serializer())"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join([str(only_dill), str(REPO)])})
    assert child.stdout.strip() == "dill", child.stderr
    monkeypatch.setitem(sys.modules, "dill", None)  # import dill now raises ImportError
    assert python_task.choose_serializer() == "cloudpickle"
    task = wq.PythonTask(power_sum, 1, 2)
    assert " cloudpickle " in task.command


def test_pickles_are_removed_with_the_task():
    task = wq.PythonTask(power_sum, 1, 2)
    directory = task._directory
    assert (directory / python_task.CALL_NAME).is_file()
    del task
    import gc

    gc.collect()
    assert not directory.exists()


@pytest.mark.slow
def test_function_runs_inside_a_packed_environment(queue, tmp_path):
    import io
    import tarfile

    # an "environment" whose bin/python3 hands over to this interpreter (no 300 MB venv to pack)
    script = f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'.encode()
    tarball = tmp_path / "env_pytask.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("bin/python", "bin/python3"):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(script), 0o755
            tar.addfile(info, io.BytesIO(script))

    def environment_name():
        import os

        return os.path.basename(os.environ.get("VIRTUAL_ENV", ""))

    task = wq.PythonTask(environment_name)
    task.specify_environment(str(tarball))
    task.specify_cores(1)
    queue.submit(task)
    done = wait_for(queue, 90)
    assert done.output.startswith("env_pytask"), done.std_output
