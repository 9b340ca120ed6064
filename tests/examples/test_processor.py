"""The topEFT-like processor on the bundled sample: exact results whatever the executor or chunking."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
from analysis_examples.topeft.compare import assert_outputs_equal, canonical, first_difference
from analysis_examples.topeft.processor import (
    CATEGORIES,
    CUTFLOW_STEPS,
    HISTOGRAMS,
    TopEFTLikeProcessor,
    weight_factor,
)
from tests.support import REPO

DEMO_CFG = REPO / "analysis_examples" / "topeft" / "cfg" / "demo.cfg"


def run(executor, chunksize: int, fileset: dict | None = None) -> dict:
    fileset = fileset or fileset_from_samples(read_cfg(DEMO_CFG))
    runner = processor.Runner(executor=executor, chunksize=chunksize, schema=NanoAODSchema)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        return runner(fileset, TopEFTLikeProcessor(), treename="Events")


@pytest.fixture(scope="module")
def iterative_output() -> dict:
    return run(processor.IterativeExecutor(status=False), chunksize=1250)


def test_iterative_and_futures_are_exactly_equal(iterative_output):
    futures_output = run(processor.FuturesExecutor(workers=2, status=False), chunksize=1250)
    assert_outputs_equal(iterative_output, futures_output)


def test_results_do_not_depend_on_the_chunk_size(iterative_output):
    assert_outputs_equal(iterative_output, run(processor.IterativeExecutor(status=False), chunksize=5000))


def test_every_category_selects_events_in_every_dataset(iterative_output):
    for dataset in ("ttH_like", "ttZ_like", "data_like"):
        assert iterative_output["nevents"][dataset] == 5000
        yields = iterative_output["yields"][dataset]
        assert set(yields) == set(CATEGORIES)
        assert all(yields[c] > 0 for c in CATEGORIES), (dataset, yields)
        cutflow = [iterative_output["cutflow"][dataset][step] for step in CUTFLOW_STEPS]
        assert cutflow[0] == 5000 and cutflow == sorted(cutflow, reverse=True) and cutflow[-1] > 0
        # the categories partition the events with a leading lepton above 25 GeV
        assert sum(yields.values()) == iterative_output["cutflow"][dataset]["lead lepton pT > 25"]


def test_histograms_hold_integer_weights_matching_the_yields(iterative_output):
    h = iterative_output["njets_nbtag"]
    for name in HISTOGRAMS:
        values = iterative_output[name].values(flow=True)
        assert np.array_equal(values, np.round(values)), f"{name} has non-integer bin contents"
    for dataset in ("ttH_like", "ttZ_like", "data_like"):
        for category in CATEGORIES:
            sumw = h[{"dataset": dataset, "category": category}].sum(flow=True).value
            if dataset == "data_like":
                assert sumw == iterative_output["yields"][dataset][category]
            else:  # MC: sign(genWeight) * xsec in fb, a mix of signs
                assert sumw % weight_factor(0.5071 if dataset == "ttH_like" else 0.7826, False) == 0
                assert 0 < sumw < iterative_output["yields"][dataset][category] * 1000
    assert iterative_output["sumw"]["data_like"] == 5000.0


def test_weight_factor():
    assert weight_factor(0.5071, False) == 507
    assert weight_factor(1e-6, False) == 1
    assert weight_factor(3.0, True) == 1
    assert weight_factor(None, False) == 1


def test_without_metadata_events_weigh_the_sign_of_genweight():
    fileset = {"ttH_plain": [str(REPO / "analysis_examples" / "data" / "sample" / "ttH_like_0.root")]}
    out = run(processor.IterativeExecutor(status=False), chunksize=2500, fileset=fileset)
    assert out["nevents"] == {"ttH_plain": 2500}
    assert abs(out["sumw"]["ttH_plain"]) < 2500 and out["sumw"]["ttH_plain"] % 1 == 0


def test_comparison_names_the_first_differing_bin_and_cutflow_entry(iterative_output):
    changed = copy.deepcopy(iterative_output)
    h = changed["lep0pt"]
    index = (list(h.axes["dataset"]).index("ttZ_like"), list(h.axes["category"]).index("3l"), 5)
    h.view(flow=True)[index[0], index[1], index[2] + 1] = (1.0, 1.0)
    with pytest.raises(AssertionError, match=r"histogram 'lep0pt' \[dataset=ttZ_like, category=3l\] "
                                             r"bin pt=\[50.0, 60.0\): value"):
        assert_outputs_equal(iterative_output, changed)

    changed = copy.deepcopy(iterative_output)
    changed["cutflow"]["data_like"][">=1 b-tag"] += 1
    found = first_difference(canonical(iterative_output), canonical(changed))
    assert found.startswith("output/cutflow/data_like/>=1 b-tag: ")

    changed = copy.deepcopy(iterative_output)
    del changed["yields"]["ttH_like"]
    assert "only in first ['ttH_like']" in first_difference(canonical(iterative_output), canonical(changed))
    assert first_difference(canonical(iterative_output), canonical(copy.deepcopy(iterative_output))) is None
