"""A topEFT-like coffea processor: leptons, cleaned jets, b-tags, lepton-multiplicity categories.

Selection (per event):

- tight electrons: pt > 15 GeV, |eta| < 2.5, ``cutBased`` >= 3 (medium), ``miniPFRelIso_all`` < 0.1,
  |dxy| < 0.05 cm, |dz| < 0.1 cm, ``sip3d`` < 8;
- tight muons: pt > 10 GeV, |eta| < 2.4, ``mediumId``, the same isolation and impact-parameter cuts;
- jets: pt > 30 GeV, |eta| < 2.4, tight jet ID (``jetId`` bit 2), dR > 0.4 from every tight lepton;
  b-tagged if ``btagDeepFlavB`` > 0.2783 (DeepJet medium working point);
- categories by tight-lepton multiplicity, all with a leading lepton above 25 GeV:
  ``1l``, ``2los`` / ``2lss`` (two leptons of opposite / same charge), ``3l``, ``4l`` (four or more).

Weights are exact: MC events weigh ``sign(genWeight) * weight_factor(xsec)`` (an integer), data
events 1, so every histogram bin is a sum of integers and does not depend on the order in which
chunks are merged (executors merge in different orders; results must agree bin by bin).
Normalise an MC dataset to a luminosity L (fb^-1) afterwards by ``L * xsec_fb / output["sumw"][dataset]``
(exact when |genWeight| is constant, as in the synthetic samples).
"""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np
from coffea import processor

BTAG_MEDIUM_WP = 0.2783
CATEGORIES = ("1l", "2los", "2lss", "3l", "4l")
CUTFLOW_STEPS = ("all events", ">=1 tight lepton", "lead lepton pT > 25", ">=2 clean jets", ">=1 b-tag")
HISTOGRAMS = ("njets_nbtag", "lep0pt", "lep0eta", "ht")


def weight_factor(xsec_pb: float | None, is_data: bool) -> int:
    """The integer per-event weight of a dataset: 1 for data, the cross-section in fb for MC.

    Example:
        >>> weight_factor(0.5071, False), weight_factor(None, True)
        (507, 1)
    """
    if is_data or xsec_pb is None:
        return 1
    return max(1, round(float(xsec_pb) * 1000.0))


def _delta_r(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi**2)


def _tight_leptons(events):
    """pt-sorted tight leptons of both flavours, as (pt, eta, phi, charge) jagged arrays."""
    ele = events.Electron
    ele = ele[(ele.pt > 15) & (abs(ele.eta) < 2.5) & (ele.cutBased >= 3) & (ele.miniPFRelIso_all < 0.1)
              & (abs(ele.dxy) < 0.05) & (abs(ele.dz) < 0.1) & (ele.sip3d < 8)]
    mu = events.Muon
    mu = mu[(mu.pt > 10) & (abs(mu.eta) < 2.4) & mu.mediumId & (mu.miniPFRelIso_all < 0.1)
            & (abs(mu.dxy) < 0.05) & (abs(mu.dz) < 0.1) & (mu.sip3d < 8)]
    columns = {name: ak.concatenate([ele[name], mu[name]], axis=1) for name in ("pt", "eta", "phi", "charge")}
    order = ak.argsort(columns["pt"], axis=1, ascending=False)
    return {name: values[order] for name, values in columns.items()}


def _clean_jets(events, leptons):
    jets = events.Jet
    jets = jets[(jets.pt > 30) & (abs(jets.eta) < 2.4) & ((jets.jetId & 2) != 0)]
    pairs_eta = ak.cartesian([jets.eta, leptons["eta"]], axis=1, nested=True)
    pairs_phi = ak.cartesian([jets.phi, leptons["phi"]], axis=1, nested=True)
    dr = _delta_r(pairs_eta["0"], pairs_phi["0"], pairs_eta["1"], pairs_phi["1"])
    return jets[ak.all(dr > 0.4, axis=2)]


def _category_masks(leptons) -> dict[str, np.ndarray]:
    nlep = ak.to_numpy(ak.num(leptons["pt"], axis=1))
    lead_ok = ak.to_numpy(ak.fill_none(ak.firsts(leptons["pt"]), 0.0)) > 25
    charge_sum_2 = ak.to_numpy(ak.sum(leptons["charge"][:, :2], axis=1))
    return {
        "1l": lead_ok & (nlep == 1),
        "2los": lead_ok & (nlep == 2) & (charge_sum_2 == 0),
        "2lss": lead_ok & (nlep == 2) & (charge_sum_2 != 0),
        "3l": lead_ok & (nlep == 3),
        "4l": lead_ok & (nlep >= 4),
    }


class TopEFTLikeProcessor(processor.ProcessorABC):
    """Histograms and a cutflow of a topEFT-like multilepton selection (see the module docstring).

    The dataset's cross-section and data/MC flag come from the fileset's metadata (``xsec``,
    ``isData``, as :func:`analysis_examples.topeft.cfg.fileset_from_samples` writes them); without
    them an event weighs ``sign(genWeight)``, or 1 when there is no ``genWeight``.

    Output (a dict that ``coffea.processor.accumulate`` merges):

    - ``njets_nbtag``, ``lep0pt``, ``lep0eta``, ``ht``: ``hist.Hist`` with ``dataset`` and
      ``category`` axes and Weight storage;
    - ``cutflow``: ``{dataset: {step: events}}`` for the steps in ``CUTFLOW_STEPS``;
    - ``yields``: ``{dataset: {category: events}}`` (unweighted);
    - ``sumw``: ``{dataset: sum of event weights}``; ``nevents``: ``{dataset: events read}``.

    Example:
        >>> from coffea import processor
        >>> runner = processor.Runner(processor.IterativeExecutor(), chunksize=5000)
        >>> out = runner({"ttH": ["ttH_like_0.root"]}, TopEFTLikeProcessor(), treename="Events")  # doctest: +SKIP
    """

    def __init__(self, btag_wp: float = BTAG_MEDIUM_WP) -> None:
        self.btag_wp = btag_wp

    @staticmethod
    def _histograms() -> dict[str, hist.Hist]:
        def book(*axes) -> hist.Hist:
            return hist.Hist(hist.axis.StrCategory([], growth=True, name="dataset", label="dataset"),
                             hist.axis.StrCategory([], growth=True, name="category", label="category"),
                             *axes, storage=hist.storage.Weight())

        return {
            "njets_nbtag": book(hist.axis.Integer(0, 10, name="njets", label="N clean jets"),
                                hist.axis.Integer(0, 5, name="nbtag", label="N b-tagged jets")),
            "lep0pt": book(hist.axis.Regular(40, 0, 400, name="pt", label="leading lepton pT [GeV]")),
            "lep0eta": book(hist.axis.Regular(25, -2.5, 2.5, name="eta", label="leading lepton eta")),
            "ht": book(hist.axis.Regular(30, 0, 1500, name="ht", label="HT of clean jets [GeV]")),
        }

    def _event_weights(self, events) -> np.ndarray:
        meta = events.metadata
        factor = weight_factor(meta.get("xsec"), bool(meta.get("isData", False)))
        if "genWeight" in events.fields and not meta.get("isData", False):
            return np.sign(ak.to_numpy(events.genWeight)).astype(np.float64) * factor
        return np.full(len(events), float(factor))

    def process(self, events) -> dict:
        dataset = events.metadata["dataset"]
        leptons = _tight_leptons(events)
        jets = _clean_jets(events, leptons)
        njets = ak.to_numpy(ak.num(jets, axis=1))
        nbtag = ak.to_numpy(ak.sum(jets.btagDeepFlavB > self.btag_wp, axis=1))
        ht = ak.to_numpy(ak.sum(jets.pt, axis=1)).astype(np.float64)
        lead_pt = ak.to_numpy(ak.fill_none(ak.firsts(leptons["pt"]), 0.0)).astype(np.float64)
        lead_eta = ak.to_numpy(ak.fill_none(ak.firsts(leptons["eta"]), 0.0)).astype(np.float64)
        weights = self._event_weights(events)

        nlep = ak.to_numpy(ak.num(leptons["pt"], axis=1))
        steps = [np.ones(len(events), dtype=bool), nlep >= 1]
        steps.append(steps[-1] & (lead_pt > 25))
        steps.append(steps[-1] & (njets >= 2))
        steps.append(steps[-1] & (nbtag >= 1))
        cutflow = {name: int(mask.sum()) for name, mask in zip(CUTFLOW_STEPS, steps, strict=True)}

        hists = self._histograms()
        yields = {}
        for category, mask in _category_masks(leptons).items():
            yields[category] = int(mask.sum())
            w = weights[mask]
            hists["njets_nbtag"].fill(dataset=dataset, category=category, njets=njets[mask], nbtag=nbtag[mask],
                                      weight=w)
            hists["lep0pt"].fill(dataset=dataset, category=category, pt=lead_pt[mask], weight=w)
            hists["lep0eta"].fill(dataset=dataset, category=category, eta=lead_eta[mask], weight=w)
            hists["ht"].fill(dataset=dataset, category=category, ht=ht[mask], weight=w)
        return {
            **hists,
            "cutflow": {dataset: cutflow},
            "yields": {dataset: yields},
            "sumw": {dataset: float(weights.sum())},
            "nevents": {dataset: len(events)},
        }

    def postprocess(self, accumulator):
        return accumulator
