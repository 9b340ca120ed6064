"""PythonTask results are read through an allow-list: a worker's pickle never runs code here.

Rogue workers (raw sockets speaking protocol 9, ``tests/rogue_peers.py``) answer a PythonTask with
a result file of their own making; honest workers (coffea-wq's and CCTools') return data, user
classes and exceptions as before. dill's pickles are made by Debian's dill running the real wrapper.
"""

from __future__ import annotations

import collections
import copy
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

import coffea_wq.work_queue as wq
from coffea_wq.work_queue.futures import FutureTask, WorkQueueFutures
from tests.rogue_peers import ResultForger
from tests.support import LOOPBACK, REPO, skip_not_installed
from tests.work_queue.helpers import WORKER_KINDS, queue_with_worker, wait_for

DEBIAN_DILL = Path("/usr/lib/python3/dist-packages/dill")


@dataclass
class Point:
    """A user class of this module: its instances may come back (the function's module is allowed)."""

    x: float
    y: float


def arrays_and_a_point(n):
    return {"arrays": {"a": np.arange(n), "b": np.ones((2, n), dtype="f4")}, "point": Point(float(n), 2.0)}


def point_of(n):
    return Point(float(n), -float(n))


def fails(message):
    raise ValueError(message)


def returns_a_function():
    return arrays_and_a_point  # by reference: a global that is a function, not a class


class RunsAShellCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class StartsAProcess:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.fixture
def queue():
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    yield q
    q.shutdown()


def within(seconds: float, function, *args):
    """``function(*args)`` (``map`` waits as long as it takes), failing the test after ``seconds``."""
    outcome: dict = {}

    def call():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # raised in the test's thread below
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{function.__name__} did not return within {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def forged(queue, task: wq.PythonTask, payload: bytes) -> wq.PythonTask:
    """``task`` run by a rogue worker that answers with ``payload`` as the result file."""
    rogue = ResultForger(queue.port, payload).start()
    try:
        queue.submit(task)
        done = wait_for(queue, 60)
        assert rogue.answered, rogue.error
    finally:
        rogue.release.set()
        rogue.done.wait(30)
    return done


# ------------------------------------------------------------------------------ rogue workers
@pytest.mark.parametrize("hostile, where, refused", [
    (RunsAShellCommand, "value", "posix.system"),
    (StartsAProcess, "error", "subprocess.Popen"),
])
def test_a_rogue_workers_pickle_is_refused_naming_the_class_and_the_worker(queue, tmp_path, hostile, where,
                                                                           refused):
    marker = tmp_path / "pwned"
    record = ({"status": "value", "value": hostile(marker)} if where == "value" else
              {"status": "error", "exception_chain": [], "traceback": "", "exception_pickle": None,
               "extra": hostile(marker)})
    payload = pickle.dumps(record)
    done = forged(queue, wq.PythonTask(arrays_and_a_point, 3), payload)
    with pytest.raises(wq.PythonTaskRefusedResult) as raised:
        _ = done.output
    error = raised.value
    assert isinstance(error, wq.PythonTaskNoResult)
    assert error.refused == refused and error.task_id == done.id
    assert error.worker.startswith("rogue (127.0.0.1:")
    assert refused in str(error) and f"PythonTask {done.id}" in str(error) and error.worker in str(error)
    assert not marker.exists(), "the rogue worker's pickle ran code in the user's process"
    # the control: what the allow-list refused does bite when it is loaded as CCTools would load it
    loaded = pickle.loads(payload)
    if where == "error":
        loaded["extra"].wait(30)
    assert marker.exists()


def test_allowed_modules_and_trusted_results_are_the_switches(queue):
    payload = pickle.dumps({"status": "value", "value": PurePosixPath("/data/file.root")})

    def output_of(task, q=queue):
        return forged(q, task, payload).output

    with pytest.raises(wq.PythonTaskRefusedResult, match="pathlib.PurePosixPath"):
        output_of(wq.PythonTask(point_of, 1))
    task = wq.PythonTask(point_of, 1)
    task.specify_allowed_result_modules(["pathlib"])
    assert output_of(task) == PurePosixPath("/data/file.root")

    queue.specify_allowed_result_modules("pathlib:PurePosixPath")  # one global, for every task of the queue
    assert output_of(wq.PythonTask(point_of, 1)) == PurePosixPath("/data/file.root")

    other = wq.WorkQueue(port=0, host=LOOPBACK)
    try:
        other.specify_trusted_results()  # read as CCTools does
        assert output_of(wq.PythonTask(point_of, 1), other) == PurePosixPath("/data/file.root")
        task = wq.PythonTask(point_of, 1)
        task.specify_trusted_results(False)  # a task can keep the allow-list in a trusted queue
        with pytest.raises(wq.PythonTaskRefusedResult):
            output_of(task, other)
    finally:
        other.shutdown()
    with pytest.raises(TypeError, match="mypkg.mod:Name"):
        task.specify_allowed_result_modules([3])


def test_classes_of_the_user_modules_the_arguments_name_come_back(queue):
    # copy.deepcopy is no module of the user's: Point's module is allowed only because the call's
    # pickle names it (an argument is a Point)
    payload = pickle.dumps({"status": "value", "value": [Point(1.0, 2.0)]})
    assert forged(queue, wq.PythonTask(copy.deepcopy, [Point(0.0, 0.0)]), payload).output == [Point(1.0, 2.0)]
    with pytest.raises(wq.PythonTaskRefusedResult, match=f"{__name__}.Point"):
        _ = forged(queue, wq.PythonTask(copy.deepcopy, [0.0]), payload).output


def test_futures_queue_map_refuses_a_rogue_result(tmp_path):
    marker = tmp_path / "pwned"
    q = WorkQueueFutures(port=0, host=LOOPBACK)
    rogue = ResultForger(q.port, pickle.dumps({"status": "value", "value": [RunsAShellCommand(marker)]})).start()
    try:
        with pytest.raises(wq.PythonTaskRefusedResult, match="posix.system") as raised:
            within(60, q.map, point_of, [1])
        assert raised.value.worker.startswith("rogue (")
    finally:
        rogue.release.set()
        q.shutdown()
    assert not marker.exists()


# ------------------------------------------------------------------------------ dill
DILL_WRAPPER_RUN = '''
import collections, sys
import dill
import numpy as np
from coffea_wq.work_queue.python_results import WRAPPER_SOURCE

wrapper = {"__name__": "coffea_wq_pytask"}
exec(compile(WRAPPER_SOURCE, "coffea_wq_pytask.py", "exec"), wrapper)

def plain_values():
    return {"list": [1, 2.5, "x"], "arrays": {"a": np.arange(4.0), "b": np.ones((2, 3), dtype="i4")},
            "error": ValueError("as a value"), "counts": collections.defaultdict(list, {"k": [1]}),
            "range": range(1, 9, 2), "none": type(None)}

def raises():
    raise ValueError("bad input 42")

def returns_code():
    return lambda x: x + 1

for name, function in (("plain", plain_values), ("raises", raises), ("code", returns_code)):
    with open(f"{sys.argv[1]}/{name}.call", "wb") as f:
        dill.dump((function, (), {}), f)
    wrapper["main"]("dill", f"{sys.argv[1]}/{name}.call", f"{sys.argv[1]}/{name}.result")
'''


@pytest.fixture
def dill_results(tmp_path):
    """Result files written by the real wrapper with Debian's dill (alone on the child's path)."""
    if not DEBIAN_DILL.is_dir():
        skip_not_installed("dill for the system python3", "python3-dill")
    only_dill = tmp_path / "only-dill"
    only_dill.mkdir()
    (only_dill / "dill").symlink_to(DEBIAN_DILL)
    child = subprocess.run([sys.executable, "-c", DILL_WRAPPER_RUN, str(tmp_path)], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(only_dill), str(REPO)])})
    assert child.returncode == 0, child.stderr
    return {name: (tmp_path / f"{name}.result").read_bytes() for name in ("plain", "raises", "code")}


def test_dill_pickles_of_plain_values_load_and_dills_code_is_refused(queue, dill_results):
    assert b"dill._dill" in dill_results["plain"]  # dill's own helpers are really in there
    value = forged(queue, wq.PythonTask(point_of, 1), dill_results["plain"]).output
    assert value["list"] == [1, 2.5, "x"] and value["range"] == range(1, 9, 2) and value["none"] is type(None)
    np.testing.assert_array_equal(value["arrays"]["a"], np.arange(4.0))
    assert value["arrays"]["b"].dtype == np.dtype("i4") and value["arrays"]["b"].shape == (2, 3)
    assert type(value["error"]) is ValueError and value["error"].args == ("as a value",)
    assert value["counts"] == collections.defaultdict(list, {"k": [1]})

    with pytest.raises(ValueError, match="bad input 42"):
        _ = forged(queue, wq.PythonTask(point_of, 1), dill_results["raises"]).output

    with pytest.raises(wq.PythonTaskRefusedResult) as raised:
        _ = forged(queue, wq.PythonTask(point_of, 1), dill_results["code"]).output
    assert raised.value.refused.startswith("dill._dill._create_"), raised.value.refused
    assert "specify_trusted_results" in str(raised.value)


# ------------------------------------------------------------------------------ honest workers
@pytest.fixture(params=WORKER_KINDS)
def honest_queue(request, processes, tmp_path, monkeypatch):
    # the worker's python3 must have the pickler and import this module (its functions and Point
    # travel by reference): this interpreter first on PATH, the checkout on PYTHONPATH
    monkeypatch.setenv("PATH", f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    q = queue_with_worker(request.param, processes, tmp_path / "worker", cores=2)
    yield q
    q.shutdown()


@pytest.mark.slow
def test_honest_results_data_user_classes_and_exceptions_still_come_back(honest_queue):
    tasks = {"data": wq.PythonTask(arrays_and_a_point, 3), "raises": wq.PythonTask(fails, "bad input 7"),
             "function": wq.PythonTask(returns_a_function)}
    for tag, task in tasks.items():
        task.specify_tag(tag)
        task.specify_cores(1)
        honest_queue.submit(task)
    done = {tag: wait_for(honest_queue, 90, tag=tag) for tag in tasks}
    value = done["data"].output
    assert value["point"] == Point(3.0, 2.0)
    np.testing.assert_array_equal(value["arrays"]["a"], np.arange(3))
    assert value["arrays"]["b"].dtype == np.dtype("f4")
    with pytest.raises(ValueError, match="bad input 7") as raised:
        _ = done["raises"].output
    assert "fails" in done["raises"].remote_traceback
    assert any("raised by PythonTask" in note for note in getattr(raised.value, "__notes__", []))
    # a function is not data: refused, as a class from elsewhere would be
    with pytest.raises(wq.PythonTaskRefusedResult, match="arrays_and_a_point"):
        _ = done["function"].output
    assert within(90, honest_queue.map, point_of, [1, 2, 3]) == [Point(1.0, -1.0), Point(2.0, -2.0), Point(3.0, -3.0)]


@pytest.mark.slow
def test_a_futures_queue_maps_and_runs_future_tasks(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    q = WorkQueueFutures(port=0, host=LOOPBACK,
                         local_worker={"cores": 1, "memory": 500, "disk": 1000, "executable": "coffea-wq"})
    try:
        assert within(90, q.map, point_of, [4, 5], 2) == [Point(4.0, -4.0), Point(5.0, -5.0)]
        echo = FutureTask("echo still here")
        q.submit(echo)
        assert echo.result(timeout=60) is True and echo.output == "still here\n"
    finally:
        q.shutdown()
