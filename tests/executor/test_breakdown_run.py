"""Where the time went, in a real run: a processor that sleeps a known time per chunk and measures its
own reads; the breakdown's process() and read shares match that truth; ``/metrics`` exposes the phase
counters and the transactions log has one PHASES line per returned chunk (docs/executor.md, section 10)."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor import last_report
from coffea_wq.manager.txlog import read_transactions_log
from tests.dashboard.runs import dashboard_url, sample_fileset

pytestmark = pytest.mark.slow

SLEEP_S = 0.25
CHUNKSIZE = 1250  # 12 chunks of the bundled 15,000 events
BRANCHES = [f"{c}_{v}" for c in ("Muon", "Electron", "Jet") for v in ("pt", "eta", "phi", "mass")]


class TimedProcessor(processor.ProcessorABC):
    """Reads the chunk's file with uproot, then sleeps; returns its own timings as the truth to compare with."""

    def process(self, events):
        began = time.perf_counter()
        meta = events.metadata
        with uproot.open(meta["filename"]) as file:
            tree = file["Events"]
            before = time.perf_counter()
            for _ in range(3):  # reading baskets, and only that, is timed here
                tree.arrays(BRANCHES, entry_start=meta["entrystart"], entry_stop=meta["entrystop"])
            read = time.perf_counter() - before
        time.sleep(SLEEP_S)
        return {"chunks": 1, "read_s": read, "inside_s": time.perf_counter() - began}

    def postprocess(self, accumulator):
        return accumulator


def test_breakdown_matches_the_truth_and_reaches_metrics_and_the_log(tmp_path, capsys):
    txlog = tmp_path / "tr.log"
    try:
        executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, dashboard=True, filepath=str(tmp_path),
                                               transactions_log=str(txlog))
        runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
        output = runner(sample_fileset(), TimedProcessor(), treename="Events")
        url = dashboard_url(capsys.readouterr().out)
        metrics = urllib.request.urlopen(url + "metrics", timeout=10).read().decode()
    finally:
        coffea_wq.executor.shutdown()
    report = last_report("Processing")
    breakdown = report.breakdown
    # every chunk task and every flush task that brought a worker's partial back
    assert output["chunks"] == 12 == report.tasks_returned and report.flush_tasks_returned >= 1
    assert breakdown.total.tasks == report.tasks_returned + report.flush_tasks_returned
    seconds, busy = breakdown.total.seconds, breakdown.total.busy()
    # the truth: what the processor measured inside process(), its reads apart
    process_truth = output["inside_s"] - output["read_s"]
    assert seconds["process"] == pytest.approx(process_truth, rel=0.10)
    assert abs(seconds["process"] / busy - process_truth / busy) <= 0.10
    assert abs(seconds["read"] / busy - output["read_s"] / busy) <= 0.10
    assert seconds["read"] == pytest.approx(output["read_s"], rel=0.10)
    assert seconds["open"] > 0 and seconds.get("start_warm", 0) + seconds.get("start_cold", 0) > 0
    assert seconds["write"] > 0 and seconds["decode"] > 0 and seconds["queue"] > 0
    assert set(breakdown.by_dataset) == set(sample_fileset())
    assert sum(t.tasks for t in breakdown.by_worker.values()) == breakdown.total.tasks
    assert len(breakdown.by_worker) == 2 and sum(t.tasks for t in breakdown.by_dataset.values()) == 12
    shares = breakdown.shares()
    reading = shares["open"] + shares["read"] + shares.get("inputs", 0.0)
    lead = f"{round(100 * reading)}% reading" if reading > shares["process"] else \
        f"{round(100 * shares['process'])}% of worker time in your processor"
    assert breakdown.advice().startswith(lead)
    # /metrics: the run's phases (processing and preprocessing) as counters
    exposed = dict(re.findall(r'^coffea_wq_phase_seconds_total\{phase="(\w+)"\} (\S+)$', metrics, re.MULTILINE))
    preprocessing = last_report("Preprocessing").breakdown.total.seconds
    assert float(exposed["process"]) == pytest.approx(seconds["process"] + preprocessing.get("process", 0.0))
    assert set(exposed) >= {"process", "read", "open", "write", "queue", "decode"}
    # the transactions log: one PHASES line per returned task, chunks and preprocessing alike
    phases = [e for e in read_transactions_log(txlog) if e.event == "PHASES"]
    assert len(phases) == breakdown.total.tasks + last_report("Preprocessing").tasks_returned
    assert sum(e.resources.get("process", 0.0) for e in phases) == pytest.approx(
        seconds["process"] + preprocessing.get("process", 0.0), rel=1e-3)
