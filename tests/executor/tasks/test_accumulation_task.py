"""The worker's side of an accumulation task: the real task script, run as a worker runs it, in a sandbox.

``python3 coffea_wq_task.py FN ITEM OUT`` with the accumulation payload, the allow-list shipped as
``coffea_wq_safe_results.py`` and earlier task outputs as inputs (docs/reduction.md, section 3).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import types
from pathlib import Path

import cloudpickle
import hist
import lz4.frame
import numpy as np
from coffea import processor

from coffea_wq.executor.results.outcome import OutcomeKind, read_outcome
from coffea_wq.executor.tasks import task_script
from coffea_wq.executor.tasks.accumulation import INPUT_NAME, accumulation_payload
from coffea_wq.safe_pickle import allow_list
from coffea_wq.safe_pickle.allow_list import ResultPolicy
from coffea_wq.worker.warm_contract import TASK_SCRIPT


def _value(n: int) -> dict:
    h = hist.Hist.new.Reg(20, 0, 20, name="x").Weight()
    h.fill(x=np.arange(n), weight=np.full(n, float(n)))
    return {"h": h, "n": processor.value_accumulator(int, n), "names": {f"c{n}"}}


def _sandbox(tmp_path: Path, records: list[dict | bytes]) -> Path:
    """A task sandbox as a worker makes it: the script, the allow-list, the payload, the item, the inputs."""
    box = tmp_path / "sandbox"
    box.mkdir()
    shutil.copyfile(task_script.__file__, box / TASK_SCRIPT)
    shutil.copyfile(allow_list.__file__, box / task_script.SAFE_RESULTS)
    payload = accumulation_payload(tmp_path, ResultPolicy(), compression=1)
    shutil.copyfile(payload.path, box / "fn.pkl")
    names = [INPUT_NAME.format(n) for n in range(len(records))]
    (box / "item.pkl").write_bytes(pickle.dumps({"inputs": names}))
    for name, record in zip(names, records, strict=True):
        if isinstance(record, bytes):
            (box / name).write_bytes(record)
        else:
            task_script._write_record(str(box / name), record, 1)
    return box


def _run(box: Path) -> subprocess.CompletedProcess:
    # a cold worker: the sandbox is the cwd and python3 is the task's interpreter; coffea_wq is not importable
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-I", TASK_SCRIPT, "fn.pkl", "item.pkl", "out.lz4"], cwd=box, env=env,
                          capture_output=True, text=True, timeout=120)


def _ok(value) -> dict:
    return {"version": task_script.RECORD_VERSION, "status": "ok", "value": value, "wall_time": 0.1}


def test_an_accumulation_task_returns_the_sum_of_its_inputs(tmp_path):
    box = _sandbox(tmp_path, [_ok(_value(n)) for n in (3, 5, 8)])
    done = _run(box)
    assert done.returncode == 0, done.stderr
    outcome = read_outcome(box / "out.lz4")
    assert outcome.kind is OutcomeKind.OK
    expected = processor.accumulate([_value(3), _value(5), _value(8)])
    assert np.array_equal(outcome.value["h"].view()["value"], expected["h"].view()["value"])
    assert np.array_equal(outcome.value["h"].view()["variance"], expected["h"].view()["variance"])
    assert outcome.value["n"].value == 16 and outcome.value["names"] == {"c3", "c5", "c8"}


def test_partial_records_are_inputs_too_and_their_values_are_added(tmp_path):
    # what a warm slot hands back: the record, then its value as a second pickle (docs/reduction.md, 2)
    partial = {"version": task_script.RECORD_VERSION, "status": "partial", "partial": "tok/1/0", "keys": [0, 1],
               "value": _value(5), "wall_time": 0.1}
    carried = task_script._error_record(RuntimeError("chunk 9 broke"), 0.0)
    carried["partial"] = {"id": "tok/2/0", "keys": [2], "value": _value(8)}
    box = _sandbox(tmp_path, [_ok(_value(3)), partial, carried])
    done = _run(box)
    assert done.returncode == 0, done.stderr
    outcome = read_outcome(box / "out.lz4")
    expected = processor.accumulate([_value(3), _value(5), _value(8)])
    assert outcome.kind is OutcomeKind.OK and outcome.value["names"] == {"c3", "c5", "c8"}
    assert np.array_equal(outcome.value["h"].view()["value"], expected["h"].view()["value"])


def test_a_partial_input_whose_value_is_refused_is_named(tmp_path):
    marker = tmp_path / "pwned"
    partial = {"status": "partial", "partial": "tok/1/0", "keys": [0], "value": _RunsAShellCommand(marker)}
    box = _sandbox(tmp_path, [_ok(_value(2)), partial])
    assert _run(box).returncode == 1
    assert not marker.exists()
    with lz4.frame.open(box / "out.lz4") as f:
        record = pickle.load(f)
    assert record["exception_chain"][0]["attrs"] == {"input": "in-1.lz4", "refused": "posix.system"}


class _RunsAShellCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_rogue_input_is_refused_on_the_worker_and_the_error_names_it(tmp_path):
    marker = tmp_path / "pwned"
    rogue = lz4.frame.compress(pickle.dumps({"status": "ok", "value": _RunsAShellCommand(marker)}))
    box = _sandbox(tmp_path, [_ok(_value(2)), rogue, _ok(_value(4))])
    done = _run(box)
    assert done.returncode == 1
    assert not marker.exists(), "the rogue input ran code on the worker"
    with lz4.frame.open(box / "out.lz4") as f:
        record = pickle.load(f)  # our own record, written by the test's sandbox
    assert record["status"] == "error" and "AccumulationInputError" in record["type"]
    assert record["exception_chain"][0]["attrs"] == {"input": "in-1.lz4", "refused": "posix.system"}
    assert "in-1.lz4" in record["message"]


def test_an_input_that_is_not_an_ok_record_is_named(tmp_path):
    error = task_script._error_record(RuntimeError("chunk failed"), 0.0)
    box = _sandbox(tmp_path, [_ok(_value(2)), error])
    assert _run(box).returncode == 1
    with lz4.frame.open(box / "out.lz4") as f:
        record = pickle.load(f)
    assert record["exception_chain"][0]["attrs"] == {"input": "in-1.lz4", "refused": ""}


def test_in_a_warm_slot_an_accumulation_task_leaves_the_processor_cached(tmp_path, monkeypatch):
    slot = types.ModuleType(task_script.WARM_SLOT_MODULE)
    slot.function_cache = {}
    monkeypatch.setitem(sys.modules, task_script.WARM_SLOT_MODULE, slot)
    function = tmp_path / "fn.pkl"
    function.write_bytes(cloudpickle.dumps({"function": len, "compression": 1}))
    processor_payload = task_script._load_function(str(function))
    accumulate_payload = task_script._load_function(str(accumulation_payload(tmp_path, ResultPolicy(), 1).path))
    assert task_script.ACCUMULATE in accumulate_payload
    assert list(slot.function_cache.values()) == [processor_payload]  # the next chunk does not unpickle it again
