"""A real run with ``executor_args={"dashboard": True}``: /metrics counts what the run's report says."""

from __future__ import annotations

import re
import urllib.request

import pytest
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor import last_report
from tests.dashboard.runs import FailFirstTaskProcessor, dashboard_url, sample_fileset

pytestmark = pytest.mark.slow


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_metrics_match_the_report_at_the_end(tmp_path, capsys):
    fileset = sample_fileset()
    try:
        output = coffea_wq.run_uproot_job(
            fileset, "Events", FailFirstTaskProcessor("ttZ_like", tmp_path / "failures", failures=1),
            executor=coffea_wq.work_queue_executor, chunksize=1250,
            executor_args={"schema": NanoAODSchema, "local-workers": 2, "status": False, "retries": 1, "dashboard": True,
                           "resource-monitor": "measure", "filepath": str(tmp_path),
                           "metadata-cache": {}})  # preprocess here, not from an earlier test's cache
        printed = capsys.readouterr().out
        url = dashboard_url(printed)
        assert url, f"no dashboard address printed: {printed!r}"
        text = urllib.request.urlopen(url + "metrics", timeout=10).read().decode()
        snapshot = urllib.request.urlopen(url + "api/snapshot", timeout=10).read().decode()
    finally:
        coffea_wq.executor.shutdown()
    processing, preprocessing = last_report("Processing"), last_report("Preprocessing")
    events = sum(item.entrystop - item.entrystart for item in processing.accumulated)
    assert events == sum(output["nevents"].values()) == 15000
    assert metric(text, "coffea_wq_events_processed_total") == events
    # the run's items: 6 files preprocessed, 12 chunks processed
    assert metric(text, "coffea_wq_chunks_processed_total") == len(preprocessing.accumulated) + len(processing.accumulated)
    assert metric(text, "coffea_wq_task_retries_total") == processing.retried + preprocessing.retried == 1
    # the manager counts every task: chunks, and the flush tasks that brought the workers' partials back
    assert processing.accumulation_tasks == 0
    assert metric(text, "coffea_wq_tasks_done_total") == \
        processing.tasks_returned + processing.flush_tasks_returned + preprocessing.tasks_returned
    assert metric(text, "coffea_wq_tasks_submitted_total") == \
        processing.tasks_submitted + processing.flush_tasks_submitted + preprocessing.tasks_submitted
    assert metric(text, "coffea_wq_task_exhaustions_total") == 0
    assert metric(text, 'coffea_wq_workers{state="connected"}') == 2
    assert metric(text, "coffea_wq_bytes_received_total") > 0
    # every returned processing attempt was measured: the histograms count them all
    count = metric(text, 'coffea_wq_task_wall_time_seconds_count{category="processing"}')
    assert count == processing.tasks_returned == 13
    assert metric(text, 'coffea_wq_task_memory_megabytes_count{category="processing"}') == 13
    assert metric(text, 'coffea_wq_task_memory_megabytes_bucket{category="processing",le="+Inf"}') == 13
    # the failed attempt is on the page with its dataset, file, range and error
    assert '"dataset":"ttZ_like"' in snapshot and "deliberate failure 1 in ttZ_like_" in snapshot
    assert '"entry_start":0,"entry_stop":1250' in snapshot
