"""The synthetic NanoAOD generator: determinism, the bundled sample, NanoAODSchema loadability."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from analysis_examples.data.generate import generate, split_events
from analysis_examples.data.physics import DATASETS, round_mantissa
from analysis_examples.topeft.cfg import read_cfg
from tests.support import REPO

SAMPLE_DIR = REPO / "analysis_examples" / "data" / "sample"
# the command the bundled sample was written with (see analysis_examples/topeft/cfg/demo.cfg)
SAMPLE_EVENTS, SAMPLE_FILES, SAMPLE_BASKET = 15000, 2, 1000


def tree_arrays(path) -> ak.Array:
    with uproot.open(path) as f:
        return f["Events"].arrays()


def assert_same_arrays(path_a, path_b) -> None:
    a, b = tree_arrays(path_a), tree_arrays(path_b)
    assert sorted(a.fields) == sorted(b.fields), f"{path_a} and {path_b} have different branches"
    for name in a.fields:
        assert ak.array_equal(a[name], b[name]), f"branch {name} differs between {path_a} and {path_b}"


def load_events(path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


def test_split_events_is_even_and_complete():
    assert split_events(10, 3) == [4, 3, 3]
    assert sum(split_events(1_000_001, 6)) == 1_000_001


def test_round_mantissa_keeps_the_requested_precision():
    values = np.array([1.2345678, 123.456, -0.333333], dtype=np.float32)
    rounded = round_mantissa(values, 10)
    assert np.all(np.abs(rounded - values) <= np.abs(values) * 2.0**-11)
    assert np.all(rounded.view(np.uint32) & np.uint32((1 << 13) - 1) == 0)


def test_same_seed_gives_identical_arrays_and_another_seed_does_not(tmp_path):
    generate(tmp_path / "a", 3000, files_per_dataset=1, seed=5, basket_events=700)
    generate(tmp_path / "b", 3000, files_per_dataset=1, seed=5, basket_events=700, compression="lz4")
    generate(tmp_path / "c", 3000, files_per_dataset=1, seed=6, basket_events=700)
    for model in DATASETS:
        assert_same_arrays(tmp_path / "a" / f"{model.name}_0.root", tmp_path / "b" / f"{model.name}_0.root")
        pt_a = tree_arrays(tmp_path / "a" / f"{model.name}_0.root")["Jet_pt"]
        pt_c = tree_arrays(tmp_path / "c" / f"{model.name}_0.root")["Jet_pt"]
        assert not ak.array_equal(pt_a, pt_c)


def test_bundled_sample_is_what_the_generator_writes(tmp_path):
    # the bundled files are LZMA-compressed; a ZLIB regeneration must hold the same arrays
    generate(tmp_path, SAMPLE_EVENTS, files_per_dataset=SAMPLE_FILES, basket_events=SAMPLE_BASKET)
    bundled = sorted(p.name for p in SAMPLE_DIR.glob("*.root"))
    assert bundled == sorted(p.name for p in tmp_path.glob("*.root"))
    for name in bundled:
        assert_same_arrays(SAMPLE_DIR / name, tmp_path / name)
    for model in DATASETS:
        assert json.loads((SAMPLE_DIR / f"{model.name}.json").read_text()) == \
            json.loads((tmp_path / f"{model.name}.json").read_text())


def test_bundled_sample_is_small_and_has_baskets_of_the_requested_size():
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) < 4_000_000
    with uproot.open(SAMPLE_DIR / "ttH_like_0.root") as f:
        branch = f["Events"]["Jet_pt"]
        assert branch.num_entries == SAMPLE_EVENTS // 3 // SAMPLE_FILES
        assert list(branch.entry_offsets) == [0, 1000, 2000, 2500]


@pytest.mark.parametrize("model", DATASETS, ids=lambda m: m.name)
def test_nanoaod_schema_builds_with_consistent_cross_references(model):
    events = load_events(SAMPLE_DIR / f"{model.name}_0.root")
    assert len(events) == 2500
    assert ("genWeight" in events.fields) == (not model.is_data)
    assert {"run", "luminosityBlock", "event"} <= set(events.fields)
    for name in ("Electron", "Muon"):
        leptons = events[name]
        assert ak.all(leptons.pt[:, :-1] >= leptons.pt[:, 1:]), f"{name} not pt-sorted"
        matched = leptons[leptons.jetIdx >= 0]
        jets = matched.matched_jet
        assert ak.all(matched.delta_r(jets) < 0.4), f"{name}_jetIdx points at a far jet"
        assert ak.all(jets.pt >= matched.pt)
    for name, index in (("Electron", "electronIdx1G"), ("Muon", "muonIdx1G")):
        # the lepton a jet points at points back at that jet
        global_index = ak.to_numpy(ak.flatten(events.Jet[index]))
        jet_local = ak.to_numpy(ak.flatten(ak.local_index(events.Jet.pt)))
        lepton_jet_idx = ak.to_numpy(ak.flatten(events[name].jetIdx))
        has_lepton = global_index >= 0
        assert has_lepton.any()
        assert np.array_equal(lepton_jet_idx[global_index[has_lepton]], jet_local[has_lepton])
    assert ak.all(events.Jet.pt[:, :-1] >= events.Jet.pt[:, 1:])
    assert ak.any(events.Jet.btagDeepFlavB > 0.2783)


def test_sample_json_matches_its_files():
    for model in DATASETS:
        spec = json.loads((SAMPLE_DIR / f"{model.name}.json").read_text())
        entries, sumw = 0, 0.0
        for name in spec["files"]:
            with uproot.open(SAMPLE_DIR / name) as f:
                tree = f["Events"]
                entries += tree.num_entries
                if not model.is_data:
                    sumw += float(np.sum(tree["genWeight"].array(library="np").astype(np.float64)))
        assert spec["nEvents"] == spec["nGenEvents"] == entries
        assert spec["isData"] == model.is_data and spec["treeName"] == "Events"
        assert spec["nSumOfWeights"] == pytest.approx(entries if model.is_data else sumw)


def test_command_line_writes_files_json_and_a_readable_cfg(tmp_path):
    out = tmp_path / "gen"
    proc = subprocess.run([sys.executable, "-m", "analysis_examples.data.generate", "--events", "900",
                           "--files", "3", "--seed", "3", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 900 events" in proc.stdout
    samples = read_cfg(out / "samples.cfg")
    assert list(samples) == [m.name for m in DATASETS]
    assert all(len(s.files) == 3 for s in samples.values())
    total = 0
    for spec in samples.values():
        for path in spec.files:
            with uproot.open(path) as f:
                total += f["Events"].num_entries
    assert total == 900


def test_command_line_rejects_bad_arguments(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "analysis_examples.data.generate", "--events", "10",
                           "--files", "0", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--files >= 1" in proc.stderr
