"""``open_record``: a task's lz4 record decompressed straight into the unpickler's buffers.

Loading a big result must hold it about once, not twice more (docs/reduction.md, section 3): the
peaks are measured with ``tracemalloc``, which counts every bytes, bytearray and numpy buffer the
load allocates, so the figures are exact, not a sample of the process's RSS.
"""

from __future__ import annotations

import pickle
import tracemalloc

import lz4.frame
import numpy as np
import pytest

from coffea_wq.executor.results.outcome import OutcomeKind, open_record, read_outcome
from coffea_wq.executor.tasks import task_script
from coffea_wq.safe_pickle.allow_list import ResultPolicy, load_result

MIB = 2**20
SIZE = 16 * MIB


def _record(tmp_path, value):
    path = tmp_path / "out.lz4"
    task_script._write_record(str(path), {"version": task_script.RECORD_VERSION, "status": "ok", "value": value}, 1)
    return path


def _peak_of_loading(opener, path) -> int:
    tracemalloc.start()
    try:
        with opener(path) as stream:
            value = load_result(stream, ResultPolicy())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert value["value"].nbytes == SIZE
    return peak


def test_a_big_array_is_loaded_holding_it_once_not_three_times(tmp_path):
    path = _record(tmp_path, np.arange(SIZE // 8, dtype=np.float64))
    ours = _peak_of_loading(open_record, path)
    theirs = _peak_of_loading(lambda p: lz4.frame.open(p, mode="rb"), path)
    assert ours < 1.2 * SIZE, ours / MIB  # the array, and at most a megabyte of decompressed data
    assert theirs > 1.9 * SIZE, theirs / MIB  # what lz4.frame.open costs: a whole copy more


def test_records_read_the_same_through_it(tmp_path):
    value = {"a": np.arange(1000), "s": {"x"}, "n": 3}
    path = _record(tmp_path, value)
    with open_record(path) as stream:
        assert stream.read() == lz4.frame.decompress(path.read_bytes())
    outcome = read_outcome(path)
    assert outcome.kind is OutcomeKind.OK and outcome.value["s"] == {"x"} and outcome.value["a"].sum() == 499500


@pytest.mark.parametrize("damage", ["truncated", "not lz4", "empty"])
def test_a_damaged_record_is_unreadable_not_a_crash(tmp_path, damage):
    path = _record(tmp_path, {"a": np.arange(100_000)})
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "not lz4": pickle.dumps({"status": "ok"}),
                      "empty": b""}[damage])
    outcome = read_outcome(path)
    assert outcome.kind is OutcomeKind.UNREADABLE and str(path) in outcome.detail
