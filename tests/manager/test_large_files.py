"""Files far larger than one chunk go out and come back intact, while other tasks keep flowing."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

import coffea_wq.work_queue as wq
from tests.manager.helpers import start_real_worker
from tests.support import LOOPBACK, requires_cctools


@pytest.mark.slow
@requires_cctools
def test_large_input_and_output_round_trip(processes, tmp_path):
    data = os.urandom(12 * 1024 * 1024 + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        start_real_worker(processes, q.port, tmp_path / "w")
        big = wq.Task("cp big.bin copy.bin && mkdir -p d && cp big.bin d/again.bin && md5sum big.bin")
        big.specify_input_file(str(source), "big.bin", cache=False)
        big.specify_output_file(str(tmp_path / "copy.bin"), "copy.bin")
        big.specify_directory(str(tmp_path / "d"), "d", wq.WORK_QUEUE_OUTPUT, recursive=True)
        big.specify_cores(1)
        big.specify_memory(100)
        big.specify_disk(200)
        big_id = q.submit(big)
        small_ids = []
        for i in range(5):
            t = wq.Task(f"echo {i}")
            t.specify_cores(1)
            t.specify_memory(10)
            t.specify_disk(10)
            small_ids.append(q.submit(t))
        done = {}
        deadline = time.monotonic() + 90
        while not q.empty() and time.monotonic() < deadline:
            t = q.wait(1)
            if t:
                done[t.id] = t
    assert set(done) == {big_id, *small_ids}
    digest = hashlib.md5(data).hexdigest()
    assert done[big_id].output.split()[0] == digest
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert (tmp_path / "d" / "again.bin").read_bytes() == data
    assert done[big_id].total_bytes_received >= 2 * len(data)
