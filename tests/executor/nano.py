"""NanoAOD-shaped test inputs and a small processor, for the executor tests.

``write_nano_file`` writes a TTree ``Events`` with the branches NanoAODSchema needs for
electrons, muons and jets (``nElectron`` + ``Electron_pt``...), from a seeded generator, so two
runs over the same file must give bit-identical histograms whatever the executor.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import awkward as ak
import hist
import numpy as np
import uproot
from coffea import processor

warnings.filterwarnings("ignore", message="Missing cross-reference")


def write_nano_file(path: Path, events: int, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)

    def collection(mean: float, fields: dict) -> ak.Array:
        counts = rng.poisson(mean, events)
        total = int(counts.sum())
        return ak.zip({name: ak.unflatten(make(total), counts) for name, make in fields.items()})

    def kinematics(scale: float) -> dict:
        return {
            "pt": lambda n: rng.exponential(scale, n).astype(np.float32) + 5,
            "eta": lambda n: rng.uniform(-3, 3, n).astype(np.float32),
            "phi": lambda n: rng.uniform(-np.pi, np.pi, n).astype(np.float32),
            "mass": lambda n: np.zeros(n, np.float32),
        }

    jets = kinematics(40) | {"btagDeepFlavB": lambda n: rng.uniform(0, 1, n).astype(np.float32)}
    data = {
        "run": np.ones(events, np.uint32),
        "luminosityBlock": np.ones(events, np.uint32),
        "event": np.arange(events, dtype=np.uint64),
        "genWeight": rng.choice(np.array([-1.0, 1.0], np.float32), events, p=[0.2, 0.8]),
        "Electron": collection(1.0, kinematics(25) | {"charge": lambda n: rng.choice([-1, 1], n).astype(np.int32)}),
        "Muon": collection(1.0, kinematics(25) | {"charge": lambda n: rng.choice([-1, 1], n).astype(np.int32)}),
        "Jet": collection(4.0, jets),
    }
    with uproot.recreate(path) as out:
        # explicit mktree: assigning a dict writes an RNTuple in uproot 5.7
        tree = out.mktree("Events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
        tree.extend(data)
    return path


class LeptonJetProcessor(processor.ProcessorABC):
    """Histograms of jet and lepton multiplicity and leading-lepton pT per dataset, and a cutflow.

    ``fail_on``: (file basename, entrystart) of a chunk on which ``process`` raises ValueError.
    ``hog``: (file basename, start, stop, bytes per event, "memory" or "disk"): a chunk inside that
    entry range holds that much memory, or writes that much into its working directory.
    ``sleep``: seconds each chunk takes at least; ``sleep_per_event``: and this much more per event.
    """

    def __init__(self, fail_on: tuple[str, int] | None = None, hog: tuple | None = None, sleep: float = 0.0,
                 sleep_per_event: float = 0.0):
        self.fail_on = fail_on
        self.hog = hog
        self.sleep = sleep
        self.sleep_per_event = sleep_per_event

    def process(self, events):
        dataset = events.metadata["dataset"]
        where = (os.path.basename(events.metadata["filename"]), events.metadata["entrystart"])
        if self.fail_on == where:
            raise ValueError(f"deliberate failure in {where[0]} at entry {where[1]}")
        ballast = self._hog(where, events.metadata["entrystop"], len(events))
        if self.sleep or self.sleep_per_event:
            time.sleep(self.sleep + self.sleep_per_event * len(events))
        electrons = events.Electron[(events.Electron.pt > 20) & (abs(events.Electron.eta) < 2.5)]
        muons = events.Muon[(events.Muon.pt > 20) & (abs(events.Muon.eta) < 2.5)]
        jets = events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4)]
        nlep = ak.num(electrons) + ak.num(muons)
        lead = ak.fill_none(ak.max(ak.concatenate([electrons.pt, muons.pt], axis=1), axis=1), -1.0)
        weight = np.sign(ak.to_numpy(events.genWeight)).astype(np.float64)
        h_mult = hist.Hist(hist.axis.StrCategory([], growth=True, name="dataset"),
                           hist.axis.Integer(0, 10, name="njets"), hist.axis.Integer(0, 5, name="nlep"),
                           storage=hist.storage.Weight())
        h_mult.fill(dataset=dataset, njets=ak.to_numpy(ak.num(jets)), nlep=ak.to_numpy(nlep), weight=weight)
        h_pt = hist.Hist(hist.axis.StrCategory([], growth=True, name="dataset"),
                         hist.axis.Regular(30, 0, 300, name="pt"), storage=hist.storage.Weight())
        h_pt.fill(dataset=dataset, pt=ak.to_numpy(lead), weight=weight)
        del ballast
        return {
            "mult": h_mult,
            "lead_pt": h_pt,
            "cutflow": {dataset: {"all": len(events), "1lep": int(ak.sum(nlep == 1)), "2lep": int(ak.sum(nlep >= 2))}},
            "pid": {os.getpid()},
        }

    def _hog(self, where: tuple[str, int], stop: int, n: int):
        if not self.hog or where[0] != self.hog[0] or not (self.hog[1] <= where[1] and stop <= self.hog[2]):
            return None
        size = n * self.hog[3]
        if self.hog[4] == "disk":
            with open(f"ballast-{where[1]}.bin", "wb") as f:  # in the task's sandbox
                f.write(b"\1" * size)
            return None
        ballast = np.ones(size // 8)  # written, so really resident
        time.sleep(4.0)  # long enough for a monitor to measure it
        return ballast

    def postprocess(self, accumulator):
        return accumulator


def assert_same_histograms(a: dict, b: dict) -> None:
    """Bin-by-bin (values and variances) and cutflow equality of two outputs."""
    assert a["cutflow"] == b["cutflow"]
    for name in ("mult", "lead_pt"):
        ha, hb = a[name], b[name]
        assert sorted(ha.axes[0]) == sorted(hb.axes[0])
        for ds in ha.axes[0]:
            sa, sb = ha[{"dataset": ds}], hb[{"dataset": ds}]
            np.testing.assert_array_equal(sa.values(flow=True), sb.values(flow=True))
            np.testing.assert_array_equal(sa.variances(flow=True), sb.variances(flow=True))
