"""Toy physics for the synthetic NanoAOD samples: numpy arrays of leptons, jets and event quantities.

Everything here is vectorised numpy on flat arrays (one entry per object, with the index of the
event it belongs to) so that a million events take seconds. The model is "realistic-ish", enough
that a topEFT-like selection finds events in every lepton-multiplicity category:

- each event has a number of *prompt* leptons (drawn from a per-dataset multiplicity table), hard
  and isolated, plus a few soft, non-isolated *non-prompt* leptons;
- each lepton is an electron or a muon with equal probability;
- most leptons are also clustered into a jet (as in real NanoAOD, where a lepton usually has a
  ``jetIdx``), which the analysis must remove by a dR > 0.4 cleaning;
- independent jets follow a Poisson multiplicity; a fraction are b jets with a high
  ``btagDeepFlavB`` score;
- collections are sorted by decreasing pt within each event, like NanoAOD.

No code here writes files: :mod:`analysis_examples.data.generate` turns a :class:`Block` into
NanoAOD branches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ELECTRON_MASS = 0.000511
MUON_MASS = 0.10566
ELECTRON_ETA_MAX = 2.5
MUON_ETA_MAX = 2.4
JET_ETA_MAX = 4.7


@dataclass(frozen=True)
class DatasetModel:
    """How one synthetic dataset looks.

    Args:
        name: dataset name (also the JSON sample file's name).
        xsec: cross-section in pb written to the sample JSON.
        is_data: data-like: no ``genWeight`` nor generator branches, a collision ``run`` number.
        prompt_lepton_probs: probabilities of 0, 1, 2, 3, 4 prompt leptons per event.
        nonprompt_mean: mean number of soft non-prompt leptons per event.
        jet_mean: mean number of jets not coming from leptons.
        bjet_fraction: probability that such a jet is a b jet.
        negative_weight_fraction: fraction of events with a negative ``genWeight`` (NLO-like).
        gen_weight: magnitude of ``genWeight``.
        year: data-taking year written to the sample JSON.
    """

    name: str
    xsec: float
    is_data: bool
    prompt_lepton_probs: tuple[float, ...]
    nonprompt_mean: float
    jet_mean: float
    bjet_fraction: float
    negative_weight_fraction: float = 0.0
    gen_weight: float = 1.0
    year: str = "2018"
    options: str = ""


# The datasets `make data` and the bundled sample contain, in this order.
DATASETS: tuple[DatasetModel, ...] = (
    DatasetModel("ttH_like", xsec=0.5071, is_data=False,
                 prompt_lepton_probs=(0.20, 0.34, 0.30, 0.12, 0.04), nonprompt_mean=0.6,
                 jet_mean=5.5, bjet_fraction=0.35, negative_weight_fraction=0.25, gen_weight=0.2119),
    DatasetModel("ttZ_like", xsec=0.7826, is_data=False,
                 prompt_lepton_probs=(0.12, 0.24, 0.30, 0.24, 0.10), nonprompt_mean=0.5,
                 jet_mean=4.5, bjet_fraction=0.30, negative_weight_fraction=0.20, gen_weight=0.5287),
    DatasetModel("data_like", xsec=1.0, is_data=True,
                 prompt_lepton_probs=(0.25, 0.40, 0.25, 0.07, 0.03), nonprompt_mean=0.8,
                 jet_mean=2.5, bjet_fraction=0.12),
)


def dataset_model(name: str) -> DatasetModel:
    """The model called ``name`` (``KeyError`` naming the known ones otherwise)."""
    for model in DATASETS:
        if model.name == name:
            return model
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(m.name for m in DATASETS)}")


@dataclass
class Collection:
    """One object collection as flat, per-event sorted columns plus per-event counts."""

    counts: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Block:
    """A block of consecutive events: flat per-event columns and three collections."""

    n_events: int
    event_columns: dict[str, np.ndarray]
    electrons: Collection
    muons: Collection
    jets: Collection


def _offsets(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _event_index(counts: np.ndarray) -> np.ndarray:
    """For each object, the index of its event (objects stored event after event)."""
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def _truncated_eta(rng: np.random.Generator, n: int, width: float, eta_max: float) -> np.ndarray:
    """Central-peaked pseudorapidity within the acceptance: out-of-range draws are redrawn flat."""
    eta = rng.normal(0.0, width, n)
    outside = np.abs(eta) > eta_max
    eta[outside] = rng.uniform(-eta_max, eta_max, int(outside.sum()))
    return eta


def _wrap_phi(phi: np.ndarray) -> np.ndarray:
    return (phi + np.pi) % (2 * np.pi) - np.pi


# Mantissa bits kept per float column, as NanoAOD does to make its floats compress (full float32: 23).
KINEMATIC_MANTISSA_BITS = 12
OTHER_MANTISSA_BITS = 10
_KINEMATIC = frozenset({"pt", "eta", "phi", "mass", "MET_pt", "MET_phi"})


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded to ``bits`` mantissa bits (round half up on the bit pattern).

    Example:
        >>> float(round_mantissa(np.array([1.2345678], dtype=np.float32), 10)[0])
        1.234375
    """
    drop = 23 - bits
    pattern = values.astype(np.float32).view(np.uint32)
    mask = np.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    return ((pattern + np.uint32(1 << (drop - 1))) & mask).view(np.float32)


def _nano_precision(columns: dict[str, np.ndarray], keep_full: frozenset[str] = frozenset()) -> None:
    """Round every float32 column in place to NanoAOD-like precision (except ``keep_full``)."""
    for name, values in columns.items():
        if values.dtype == np.float32 and name not in keep_full:
            bits = KINEMATIC_MANTISSA_BITS if name in _KINEMATIC else OTHER_MANTISSA_BITS
            columns[name] = round_mantissa(values, bits)


def _any_per_event(event_index: np.ndarray, condition: np.ndarray, n_events: int) -> np.ndarray:
    return np.bincount(event_index[condition], minlength=n_events) > 0


@dataclass
class _Leptons:
    """All leptons of a block before they are split into electrons and muons (flat arrays)."""

    event: np.ndarray
    is_prompt: np.ndarray
    is_electron: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray


def _draw_leptons(rng: np.random.Generator, model: DatasetModel, n_events: int) -> _Leptons:
    probs = np.asarray(model.prompt_lepton_probs, dtype=np.float64)
    n_prompt = rng.choice(len(probs), size=n_events, p=probs / probs.sum())
    n_nonprompt = rng.poisson(model.nonprompt_mean, n_events)
    counts = n_prompt + n_nonprompt
    event = _event_index(counts)
    n = len(event)
    local = np.arange(n, dtype=np.int64) - _offsets(counts)[event]
    is_prompt = local < n_prompt[event]
    is_electron = rng.random(n) < 0.5
    # prompt leptons from W/Z decays are hard; non-prompt ones (b decays, fakes) are soft
    pt = np.where(is_prompt, 10.0 + rng.gamma(2.0, 22.0, n), 3.0 + rng.exponential(9.0, n))
    eta_max = np.where(is_electron, ELECTRON_ETA_MAX, MUON_ETA_MAX)
    eta = _truncated_eta(rng, n, 1.2, MUON_ETA_MAX)
    # electrons reach a little further forward than muons
    eta = np.where(is_electron, eta * (ELECTRON_ETA_MAX / MUON_ETA_MAX), eta).clip(-eta_max, eta_max)
    phi = rng.uniform(-np.pi, np.pi, n)
    charge = np.where(rng.random(n) < 0.5, -1, 1).astype(np.int32)
    return _Leptons(event, is_prompt, is_electron, pt, eta, phi, charge)


def _sort_subset(subset: np.ndarray, event: np.ndarray, pt: np.ndarray, n_events: int):
    """Sort a subset of objects by (event, decreasing pt).

    Returns the subset's indices in sorted order, the per-event counts, and for each sorted object
    its index within its event.
    """
    order = subset[np.lexsort((-pt[subset], event[subset]))]
    counts = np.bincount(event[order], minlength=n_events)
    local = np.arange(len(order), dtype=np.int64) - _offsets(counts)[event[order]]
    return order, counts, local


def generate_block(rng: np.random.Generator, model: DatasetModel, n_events: int,
                   first_event: int) -> Block:
    """Draw ``n_events`` events of ``model``.

    Args:
        rng: the random generator (the caller seeds it, so blocks are reproducible).
        model: which dataset to imitate.
        n_events: number of events.
        first_event: event number of the first event (numbers are consecutive).

    Example:
        >>> block = generate_block(np.random.default_rng(1), DATASETS[0], 100, first_event=1)
        >>> block.n_events, len(block.jets.counts)
        (100, 100)
    """
    leptons = _draw_leptons(rng, model, n_events)
    n_leptons = len(leptons.event)

    # Which leptons also appear as a jet (non-isolated ones almost always do).
    clustered = rng.random(n_leptons) < np.where(leptons.is_prompt, 0.55, 0.9)
    lep_ids = np.flatnonzero(clustered)
    n_matched = len(lep_ids)

    n_free = rng.poisson(model.jet_mean, n_events)
    free_event = _event_index(n_free)
    n_free_total = len(free_event)
    is_b = rng.random(n_free_total) < model.bjet_fraction

    jet_event = np.concatenate([leptons.event[lep_ids], free_event])
    jet_pt = np.concatenate([
        leptons.pt[lep_ids] * rng.uniform(1.0, 1.6, n_matched) + rng.exponential(6.0, n_matched) + 12.0,
        15.0 + rng.gamma(1.5, 30.0, n_free_total),
    ])
    jet_eta = np.concatenate([
        leptons.eta[lep_ids] + rng.normal(0.0, 0.05, n_matched),
        _truncated_eta(rng, n_free_total, 1.8, JET_ETA_MAX),
    ])
    jet_phi = _wrap_phi(np.concatenate([
        leptons.phi[lep_ids] + rng.normal(0.0, 0.05, n_matched),
        rng.uniform(-np.pi, np.pi, n_free_total),
    ]))
    jet_is_b = np.concatenate([np.zeros(n_matched, dtype=bool), is_b])
    n_jets = len(jet_event)
    btag = np.where(jet_is_b, rng.beta(5.0, 1.2, n_jets), rng.beta(0.6, 9.0, n_jets))

    all_jets = np.arange(n_jets, dtype=np.int64)
    jet_order, jet_counts, jet_local = _sort_subset(all_jets, jet_event, jet_pt, n_events)
    jet_local_of = np.empty(n_jets, dtype=np.int64)
    jet_local_of[jet_order] = jet_local

    lepton_jet_idx = np.full(n_leptons, -1, dtype=np.int64)
    lepton_jet_idx[lep_ids] = jet_local_of[:n_matched]

    electrons, ele_order, ele_local = _lepton_collection(
        rng, leptons, np.flatnonzero(leptons.is_electron), lepton_jet_idx, n_events, is_electron=True)
    muons, mu_order, mu_local = _lepton_collection(
        rng, leptons, np.flatnonzero(~leptons.is_electron), lepton_jet_idx, n_events, is_electron=False)

    # Jet -> lepton cross references (each lepton-jet holds exactly one lepton here).
    lepton_local = np.full(n_leptons, -1, dtype=np.int64)
    lepton_local[ele_order] = ele_local
    lepton_local[mu_order] = mu_local
    jet_electron = np.full(n_jets, -1, dtype=np.int64)
    jet_muon = np.full(n_jets, -1, dtype=np.int64)
    matched_is_e = leptons.is_electron[lep_ids]
    jet_electron[:n_matched][matched_is_e] = lepton_local[lep_ids][matched_is_e]
    jet_muon[:n_matched][~matched_is_e] = lepton_local[lep_ids][~matched_is_e]

    jets = _jet_collection(rng, model, jet_order, jet_counts, jet_pt, jet_eta, jet_phi, btag,
                           jet_is_b, jet_electron, jet_muon)
    event_columns = _event_columns(rng, model, n_events, first_event, electrons, muons)
    for collection in (electrons, muons, jets):
        _nano_precision(collection.columns)
    _nano_precision(event_columns, keep_full=frozenset({"genWeight"}))
    return Block(n_events, event_columns, electrons, muons, jets)


def _lepton_collection(rng, leptons: _Leptons, subset: np.ndarray, lepton_jet_idx: np.ndarray,
                       n_events: int, is_electron: bool):
    order, counts, local = _sort_subset(subset, leptons.event, leptons.pt, n_events)
    n = len(order)
    prompt = leptons.is_prompt[order]
    charge = leptons.charge[order]
    iso = np.where(prompt, rng.exponential(0.03, n), rng.exponential(0.35, n)).astype(np.float32)
    columns: dict[str, np.ndarray] = {
        "pt": leptons.pt[order].astype(np.float32),
        "eta": leptons.eta[order].astype(np.float32),
        "phi": leptons.phi[order].astype(np.float32),
        "charge": charge,
        "dxy": (rng.normal(0.0, 0.004, n) * np.where(prompt, 1.0, 8.0)).astype(np.float32),
        "dz": (rng.normal(0.0, 0.01, n) * np.where(prompt, 1.0, 5.0)).astype(np.float32),
        "sip3d": np.where(prompt, rng.gamma(1.5, 1.0, n), rng.gamma(2.0, 4.0, n)).astype(np.float32),
        "miniPFRelIso_all": (iso * rng.uniform(0.7, 1.0, n)).astype(np.float32),
        "jetIdx": lepton_jet_idx[order].astype(np.int16),
    }
    good = prompt & (rng.random(n) < 0.92)
    if is_electron:
        columns["mass"] = np.full(n, ELECTRON_MASS, dtype=np.float32)
        columns["pdgId"] = (-11 * charge).astype(np.int32)
        # cutBased: 0 fail, 1 veto, 2 loose, 3 medium, 4 tight
        columns["cutBased"] = np.where(good, rng.choice([3, 4], n, p=[0.3, 0.7]),
                                       rng.choice([0, 1, 2], n)).astype(np.uint8)
        columns["pfRelIso03_all"] = iso
        columns["mvaFall17V2Iso_WP90"] = good | (rng.random(n) < 0.1)
        columns["tightCharge"] = np.where(good, 2, rng.choice([0, 1, 2], n)).astype(np.int32)
    else:
        columns["mass"] = np.full(n, MUON_MASS, dtype=np.float32)
        columns["pdgId"] = (-13 * charge).astype(np.int32)
        columns["looseId"] = good | (rng.random(n) < 0.6)
        columns["mediumId"] = good | (rng.random(n) < 0.2)
        columns["tightId"] = good | (rng.random(n) < 0.05)
        columns["pfRelIso04_all"] = iso
        columns["tightCharge"] = np.full(n, 2, dtype=np.int32)
    return Collection(counts, columns), order, local


def _jet_collection(rng, model: DatasetModel, order, counts, pt, eta, phi, btag, is_b,
                    jet_electron, jet_muon) -> Collection:
    n = len(order)
    columns: dict[str, np.ndarray] = {
        "pt": pt[order].astype(np.float32),
        "eta": eta[order].astype(np.float32),
        "phi": phi[order].astype(np.float32),
        "mass": (pt[order] * rng.uniform(0.08, 0.2, n)).astype(np.float32),
        "btagDeepFlavB": btag[order].astype(np.float32),
        "btagDeepB": np.clip(btag[order] + rng.normal(0.0, 0.05, n), 0.0, 1.0).astype(np.float32),
        "jetId": np.where(rng.random(n) < 0.97, 6, 2).astype(np.uint8),
        "puId": np.where(rng.random(n) < 0.9, 7, 0).astype(np.uint8),
        "area": rng.normal(0.5, 0.03, n).astype(np.float32),
        "electronIdx1": jet_electron[order].astype(np.int16),
        "electronIdx2": np.full(n, -1, dtype=np.int16),
        "muonIdx1": jet_muon[order].astype(np.int16),
        "muonIdx2": np.full(n, -1, dtype=np.int16),
        "nElectrons": (jet_electron[order] >= 0).astype(np.uint8),
        "nMuons": (jet_muon[order] >= 0).astype(np.uint8),
    }
    if not model.is_data:
        columns["hadronFlavour"] = np.where(is_b[order], 5, 0).astype(np.uint8)
    return Collection(counts, columns)


def _event_columns(rng, model: DatasetModel, n_events: int, first_event: int,
                   electrons: Collection, muons: Collection) -> dict[str, np.ndarray]:
    event = np.arange(first_event, first_event + n_events, dtype=np.uint64)
    columns: dict[str, np.ndarray] = {}
    if model.is_data:
        columns["run"] = (316000 + (event // 500_000)).astype(np.uint32)
    else:
        columns["run"] = np.ones(n_events, dtype=np.uint32)
    columns["luminosityBlock"] = (1 + (event // 1000) % 100_000).astype(np.uint32)
    columns["event"] = event
    ele_event = _event_index(electrons.counts)
    mu_event = _event_index(muons.counts)
    columns["HLT_IsoMu24"] = _any_per_event(
        mu_event, (muons.columns["pt"] > 26) & muons.columns["tightId"], n_events)
    columns["HLT_Ele32_WPTight_Gsf"] = _any_per_event(
        ele_event, (electrons.columns["pt"] > 34) & (electrons.columns["cutBased"] >= 4), n_events)
    columns["MET_pt"] = rng.gamma(2.0, 25.0, n_events).astype(np.float32)
    columns["MET_phi"] = rng.uniform(-np.pi, np.pi, n_events).astype(np.float32)
    columns["PV_npvs"] = rng.poisson(30, n_events).astype(np.int32)
    if not model.is_data:
        sign = np.where(rng.random(n_events) < model.negative_weight_fraction, -1.0, 1.0)
        columns["genWeight"] = (sign * model.gen_weight).astype(np.float32)
        columns["Pileup_nTrueInt"] = rng.normal(32.0, 8.0, n_events).clip(0).astype(np.float32)
    return columns
