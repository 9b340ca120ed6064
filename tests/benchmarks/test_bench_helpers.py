"""The benchmark scripts' own logic, on the bundled sample: chunk planning and the big-output check.

Only cheap, in-process pieces (a few seconds); the benchmarks themselves run in ``make bench``.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
import warnings

import numpy as np
import pytest
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from tests.support import REPO

SAMPLE = REPO / "analysis_examples" / "data" / "sample"


def _import_benchmark(name: str):
    """Import a script from benchmarks/ without keeping its process-wide warning settings."""
    saved_env = os.environ.get("PYTHONWARNINGS")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        with warnings.catch_warnings():
            return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
        if saved_env is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = saved_env


@pytest.fixture(scope="module")
def bench_e2e():
    return _import_benchmark("bench_e2e")


@pytest.fixture(scope="module")
def bench_big_outputs():
    return _import_benchmark("bench_big_outputs")


def _sample_fileset(module) -> dict:
    return module.fileset_from_samples(module.read_cfg(SAMPLE / "samples.cfg"))


def test_e2e_plan_caps_tiny_chunks_evenly_over_datasets(bench_e2e):
    fileset = _sample_fileset(bench_e2e)  # 3 datasets of 2 files x 2,500 events
    capped = bench_e2e.plan_for(fileset, chunksize=20, max_chunks=30)
    assert (capped.maxchunks, capped.chunks, capped.events) == (10, 30, 600)
    whole = bench_e2e.plan_for(fileset, chunksize=2500, max_chunks=30)
    assert (whole.maxchunks, whole.chunks, whole.events) == (None, 6, 15_000)


def test_big_hist_sizing_and_chunking(bench_big_outputs):
    bins = bench_big_outputs.bins_per_axis(64)
    assert 0.95 * 64 * 2**20 < bench_big_outputs.histogram_bytes(bins) < 1.05 * 64 * 2**20
    assert bench_big_outputs.count_chunks(bench_big_outputs.chunksize_for(48)) == 48


def test_big_hist_output_is_filled_from_the_jets_and_differences_are_found(bench_big_outputs):
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=2500,
                              schema=NanoAODSchema, metadata_cache={})
    out = runner(bench_big_outputs.fileset(), bench_big_outputs.BigHistProcessor(0.05), treename="Events")
    assert (out["chunks"], out["events"]) == (6, 15_000)
    njet = np.concatenate([uproot.open(path)["Events"]["nJet"].array(library="np")
                           for path in sorted(SAMPLE.glob("*.root"))])
    # every jet weighs its event's jet count; flow bins catch whatever falls outside the axes
    assert out["big"].values(flow=True).sum() == (njet**2).sum() > 0
    assert out["big"].variances(flow=True).sum() == (njet**3).sum()

    assert bench_big_outputs.output_difference(out, copy.deepcopy(out)) is None
    changed = copy.deepcopy(out)
    changed["big"].view(flow=True)["value"][3, 4, 5] += 1
    assert bench_big_outputs.output_difference(out, changed) == (
        f"1 bins' values differ, first at flow index (3, 4, 5): {out['big'].view(flow=True)['value'][3, 4, 5]} "
        f"!= {changed['big'].view(flow=True)['value'][3, 4, 5]}")
    changed = copy.deepcopy(out)
    changed["events"] -= 1
    assert bench_big_outputs.output_difference(out, changed) == "events: 15000 != 14999"


def test_profile_classes_processes_by_depth_and_measures_their_cpu():
    profile = _import_benchmark("profile_e2e")
    assert profile.descendants(1, {2: 1, 3: 2, 4: 3, 5: 4, 6: 99}) == {2: 1, 3: 2, 4: 3, 5: 4}
    assert [profile.kind_at_depth(d) for d in range(5)] == ["user", "worker", "zygote", "slot", "slot"]
    # a child that burns 0.5 s of CPU, and its own child as much: read while alive (every 0.05 s), they
    # count as worker and zygote
    burn = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"
    script = f"import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', {burn!r}])\n{burn}p.wait()\n"
    with profile.CpuByProcess(interval=0.05) as meter:
        import subprocess

        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    kinds = meter.per_kind()
    assert kinds["worker"][1] == 1 and kinds["zygote"][1] == 1
    assert 0.3 < kinds["worker"][0] and 0.3 < kinds["zygote"][0]


def test_e2e_executor_choice_keeps_the_reference_and_coffea_wq(bench_e2e):
    assert bench_e2e.chosen_executors("futures") == ("iterative", "futures", "coffea-wq")
    assert bench_e2e.chosen_executors("coffea-wq, iterative") == ("iterative", "coffea-wq")
    assert bench_e2e.chosen_executors("parsl,dask") == ("iterative", "dask", "parsl", "coffea-wq")
    with pytest.raises(SystemExit, match="unknown spark"):
        bench_e2e.chosen_executors("spark")


def test_e2e_ratios_print_a_dash_for_executors_not_run(bench_e2e, capsys):
    plan = bench_e2e.Plan(chunksize=20, maxchunks=None, chunks=10, events=200)
    bench_e2e.print_ratios([plan], {20: {"iterative": 100.0, "coffea-wq": 180.0}}, workers=2)
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[:4] == ["20", "10", "180", "0"] and row[4] == "-"  # no compute limit without a breakdown
    assert row[5:7] == ["0", "-"]  # nor with its reads
    assert row[7:10] == ["200", "0.90x", ">="] and "met" in row


def test_e2e_ratios_against_the_compute_limit_the_best_peer_and_the_phases_cost(bench_e2e, capsys):
    plan = bench_e2e.Plan(chunksize=100_000, maxchunks=None, chunks=10, events=1000)
    rates = {"iterative": 100.0, "futures": 150.0, "dask": 120.0, "parsl": 90.0, "coffea-wq": 180.0,
             "compute-limit": 190.0, "compute+read": 360.0, "wq-nophases": 181.0}
    bench_e2e.print_ratios([plan], {100_000: rates}, workers=2)
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[3:8] == ["190", "0.95x", ">=", "0.9", "met"]  # coffea-wq / compute limit
    assert row[8:10] == ["360", "0.50x"]  # and with process()'s reads counted in
    assert row[row.index("futures"):row.index("futures") + 6] == ["futures", "150", "1.20x", ">=", "1.5", "MISSED"]
    assert "0.6%" in row and row[row.index("0.6%") + 1:row.index("0.6%") + 4] == ["<=", "1%", "met"]
