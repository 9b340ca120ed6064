"""Resource options of the executor on coffea-wq's manager: monitoring, verbose measurements, auto sizing,
per-category limits."""

from __future__ import annotations

import re

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor.errors import ExecutorConfigError
from coffea_wq.executor.options import category_limits
from coffea_wq.manager.txlog import read_transactions_log
from tests import support
from tests.executor import helpers, nano


def _run(fileset, **options):
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, **options)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema,
                              metadata_cache={})  # every run preprocesses, so every category is seen
    return runner(fileset, nano.LeptonJetProcessor(), treename="Events")


def _task_events(path) -> dict[int, list]:
    """The events of each chunk and file task (not the flush tasks that bring partials back,
    category accumulating, docs/reduction.md), by task id."""
    by_task: dict[int, list] = {}
    for event in read_transactions_log(path):
        if event.kind == "TASK":
            by_task.setdefault(int(event.subject), []).append(event)
    return {task: events for task, events in by_task.items()
            if not any(e.category == "accumulating" for e in events)}


@pytest.mark.slow
def test_measure_mode_reports_measured_resources_in_verbose_lines_and_the_log(fileset, tmp_path, capsys):
    txlog = tmp_path / "tx.log"
    out = _run(fileset, resource_monitor="measure", verbose=True, cores=1, memory=4000, disk=2000,
               category_resources={"preprocessing": {"memory": 3000}}, transactions_log=str(txlog))
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    printed = capsys.readouterr().out
    allocated = re.findall(r"Allocated cores: 1, memory: (\d+) MB, disk: 2000 MB", printed)
    assert sorted(set(allocated)) == ["3000", "4000"]  # preprocessing's override, processing's default
    measured = [int(m) for m in re.findall(r"Measured cores: [\d.]+, memory: (\d+) MB, disk \d+ MB", printed)]
    assert len(measured) == 10 and all(50 < m < 3000 for m in measured)  # 3 files + 7 chunks
    done = [e for events in _task_events(txlog).values() for e in events if e.event == "DONE"]
    assert len(done) == 10 and all(e.resources["memory"] > 50 for e in done)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["coffea-wq", pytest.param("cctools", marks=support.requires_cctools)])
def test_auto_mode_learns_a_first_allocation_after_three_tasks(fileset, tmp_path, kind):
    txlog = tmp_path / "tx.log"
    out = _run(fileset, resources_mode="auto", memory=3000, transactions_log=str(txlog), local_worker_kind=kind)
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    text = txlog.read_text()
    assert re.search(r"CATEGORY processing FIRST MAX_THROUGHPUT", text)
    assert re.search(r"CATEGORY preprocessing FIRST MAX\b", text)
    assert re.search(r'CATEGORY processing MAX \{"memory":\[3000,"MB"\]', text)
    running = [e for events in _task_events(txlog).values() for e in events if e.event == "RUNNING"]
    first_memory = [e.resources["memory"] for e in running if e.label == "FIRST_RESOURCES"]
    assert 3000 in first_memory  # before the category has measured 3 tasks: the maximum
    assert any(m < 3000 for m in first_memory)  # then the learned allocation, in 250 MB buckets
    assert all(m % 250 == 0 for m in first_memory)


def test_category_resources_override_the_executor_wide_values():
    ex = coffea_wq.WorkQueueExecutor(cores=1, memory=2000, local_workers=0,
                                     category_resources={"processing": {"memory": 8000, "cores": None}})
    assert category_limits(ex, "processing") == {"memory": 8000}
    assert category_limits(ex, "preprocessing") == {"cores": 1, "memory": 2000}


@pytest.mark.parametrize("option, culprit", [
    ({"procesing": {"memory": 1}}, "unknown category 'procesing'"),
    ({"processing": {"ram": 1}}, "unknown resource 'ram'"),
    ({"processing": {"memory": -5}}, r"\['memory'\]=-5"),
    ({"processing": 5}, r"category_resources\['processing'\]=5"),
])
def test_bad_category_resources_name_the_culprit(option, culprit):
    with pytest.raises(ExecutorConfigError, match=culprit):
        coffea_wq.WorkQueueExecutor(category_resources=option)


def test_bad_resource_values_and_modes_are_config_errors():
    with pytest.raises(ExecutorConfigError, match=r"memory='lots'"):
        coffea_wq.WorkQueueExecutor(memory="lots")
    with pytest.raises(ExecutorConfigError, match=r"resource_monitor='always'"):
        coffea_wq.WorkQueueExecutor(resource_monitor="always")
