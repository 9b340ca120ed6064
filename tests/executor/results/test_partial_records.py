"""Records that carry a partial's value (docs/reduction.md, section 2): the record first, the value after it.

The executor reads the record alone (``read_outcome(value=False)``) to learn the partial's id and
keys, and so can leave a big value unread in its file for an accumulation task.
"""

from __future__ import annotations

import os
import pickle

import hist
import lz4.frame
import numpy as np

from coffea_wq.executor.results.outcome import OutcomeKind, carried_value, read_outcome
from coffea_wq.executor.tasks import task_script
from coffea_wq.safe_pickle.allow_list import ResultPolicy

UNPICKLED: list[str] = []  # what ``Witness.__setstate__`` saw: proof that a value was loaded


class Witness:
    """An allowed result type that says when it is unpickled."""

    def __init__(self, name: str):
        self.name = name

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        UNPICKLED.append(self.name)


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _policy() -> ResultPolicy:
    return ResultPolicy.build([f"{__name__}:Witness"])


def _partial_record(value) -> dict:
    return {"version": task_script.RECORD_VERSION, "status": "partial", "partial": "tok/7/0", "keys": [3, 4, 9],
            "value": value, "wall_time": 0.2}


def _write(path, record: dict):
    task_script._write_record(str(path), record, 1)
    return path


def test_a_partials_record_is_read_without_its_value_and_the_value_only_when_asked(tmp_path):
    UNPICKLED.clear()
    path = _write(tmp_path / "out.lz4", _partial_record({"w": Witness("partial value")}))
    head = read_outcome(path, _policy(), value=False)
    assert head.kind is OutcomeKind.PARTIAL and head.partial is not None
    assert (head.partial.partial_id, head.partial.keys, head.partial.value_unread) == ("tok/7/0", [3, 4, 9], True)
    assert head.partial.value is None and carried_value(head) == (False, None)
    assert UNPICKLED == []  # the value's pickle was not run
    full = read_outcome(path, _policy())
    assert full.kind is OutcomeKind.PARTIAL and not full.partial.value_unread
    assert UNPICKLED == ["partial value"] and full.partial.value["w"].name == "partial value"
    assert carried_value(full)[0] is True


def test_a_value_the_allow_list_refuses_is_not_touched_by_the_record_read(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "out.lz4", _partial_record(_RunsAShellCommand(marker)))
    head = read_outcome(path, ResultPolicy(), worker="w1", value=False)
    assert head.kind is OutcomeKind.PARTIAL and head.partial.keys == [3, 4, 9]
    full = read_outcome(path, ResultPolicy(), worker="w1")
    assert full.kind is OutcomeKind.REFUSED and full.refused == "posix.system" and "w1" in full.detail
    assert not marker.exists()


def test_an_error_record_carries_its_slots_partial_after_it(tmp_path):
    UNPICKLED.clear()
    record = task_script._error_record(RuntimeError("chunk 5 broke"), 0.0)
    record["partial"] = {"id": "tok/7/1", "keys": [1, 2], "value": Witness("carried")}
    path = _write(tmp_path / "err.lz4", record)
    head = read_outcome(path, _policy(), value=False)
    assert head.kind is OutcomeKind.REMOTE_ERROR and "chunk 5 broke" in head.remote.message
    assert (head.partial.partial_id, head.partial.keys, head.partial.value_unread) == ("tok/7/1", [1, 2], True)
    assert UNPICKLED == []
    full = read_outcome(path, _policy())
    assert carried_value(full) == (True, full.partial.value) and full.partial.value.name == "carried"


def test_the_file_holds_the_record_then_the_value_as_two_pickles(tmp_path):
    h = hist.Hist.new.Reg(50, 0, 1).Weight()
    h.fill(np.linspace(0, 1, 200))
    path = _write(tmp_path / "out.lz4", _partial_record({"h": h}))
    with lz4.frame.open(path) as stream:
        head = pickle.load(stream)  # the test's own record
        value = pickle.load(stream)
        trailer = pickle.load(stream)  # the time the writing took (docs/executor.md, section 10)
        assert stream.read() == b""
    assert set(trailer) == {"write"} and trailer["write"] >= 0
    assert head["value_follows"] is True and "value" not in head and head["keys"] == [3, 4, 9]
    assert np.array_equal(value["h"].values(), h.values())


def test_records_without_a_partial_value_stay_one_pickle_and_old_partial_records_still_read(tmp_path):
    ok = {"version": task_script.RECORD_VERSION, "status": "ok", "value": {"n": 1}}
    with lz4.frame.open(_write(tmp_path / "ok.lz4", ok)) as stream:
        assert pickle.load(stream) == ok and set(pickle.load(stream)) == {"write"} and stream.read() == b""
    # a version-2 bundle kept in checkpoint_dir: the value inside the record
    old = tmp_path / "old.lz4"
    with lz4.frame.open(old, mode="wb") as out:
        pickle.dump(dict(_partial_record({"n": 5}), version=2), out)
    for value in (True, False):
        outcome = read_outcome(old, value=value)
        assert outcome.kind is OutcomeKind.PARTIAL and outcome.partial.value == {"n": 5}
        assert not outcome.partial.value_unread
