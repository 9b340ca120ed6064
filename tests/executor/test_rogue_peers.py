"""Acceptance: rogue peers attack a real executor run (no password), and the run neither grows nor
writes outside its staging folder, and its histograms equal IterativeExecutor's (docs/manager.md, §12)."""

from __future__ import annotations

import logging
import subprocess
import threading
import time

import psutil
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from tests import support
from tests.executor import helpers, nano
from tests.rogue_peers import Flooder, HostileNamer

pytestmark = pytest.mark.slow

RSS_LIMIT = 600 << 20


class PeakRss:
    """The largest resident size of this process, sampled every 20 ms in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, me.memory_info().rss)
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def test_floods_and_hostile_names_during_a_run(fileset, processes, tmp_path, caplog):
    """Three peers each send a 1 GB result for a task they do not hold; three take a task each and
    answer its ``get`` with a name that climbs out, an absolute name, and a directory over the output.
    Honest workers start only once every attack is over, so the attacks happen during the run."""
    caplog.set_level(logging.WARNING, logger="coffea_wq.manager")
    port = support.free_port()
    stage = tmp_path / "stage"
    stage.mkdir()
    escape = tmp_path / "escape-absolute"
    flooders = [Flooder(port, task_id=task_id) for task_id in (1, 2, 3)]
    namers = [HostileNamer(port, "file {cached}/../../../../escape-relative 5\nowned"),
              HostileNamer(port, f"file {escape} 5\nowned"),
              HostileNamer(port, "dir {cached} 0\nend\n")]

    def attack_then_start_honest_workers() -> None:
        for rogue in flooders + namers:
            rogue.start()
        for rogue in flooders + namers:
            rogue.done.wait(300)
        for index in range(2):
            processes.start(helpers.worker_argv("coffea-wq", port, tmp_path / f"w{index}"),
                            env=helpers.worker_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    attacker = threading.Thread(target=attack_then_start_honest_workers, daemon=True)
    runner = processor.Runner(executor=coffea_wq.WorkQueueExecutor(port=port, local_workers=0, status=False,
                                                                   filepath=str(stage)),
                              chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    started = time.monotonic()
    with PeakRss() as rss:
        attacker.start()
        out = runner(fileset, nano.LeptonJetProcessor(), treename="Events")
    attacker.join(10)

    assert [f.sent for f in flooders] == [1 << 30] * 3, [f.error for f in flooders]
    assert rss.peak < RSS_LIMIT, f"peak RSS {rss.peak >> 20} MB during the run ({time.monotonic() - started:.0f} s)"
    assert all(n.asked_for and n.dropped for n in namers), [(n.asked_for, n.dropped, n.error) for n in namers]
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    assert not escape.exists() and not list(tmp_path.rglob("escape-relative"))
    assert list(stage.iterdir()) == []  # the staging folder is gone, nothing else was written there
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3 and all("namer" in message for message in refused), refused
