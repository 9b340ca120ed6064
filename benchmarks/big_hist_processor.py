"""A coffea processor whose every chunk returns one big histogram, for ``bench_big_outputs.py``.

Each chunk fills a ``hist.Hist`` with three regular axes (jet pt, eta, phi) and ``Weight`` storage,
sized to about ``megabytes`` MiB in memory (flow bins included), from the chunk's jets. That is the
shape of topEFT's outputs that made merging the bottleneck: the per-chunk result is large, and every
executor must move and add one per chunk. Weights are integers (the event's jet count), so every bin
is a sum of integers and the merged result does not depend on the order chunks are added in.

Workers import this module by name: it lives next to the benchmark script, whose folder is on the
user's ``sys.path`` and so on local workers' ``PYTHONPATH`` (docs/executor.md).

Example:
    >>> bins_per_axis(8)
    79
    >>> round(histogram_bytes(bins_per_axis(64)) / 2**20, 1)
    63.7
"""

from __future__ import annotations

import math

import awkward as ak
import hist
from coffea import processor

WEIGHT_STORAGE_BYTES_PER_BIN = 16  # a sum of weights and a sum of squared weights, two doubles


def bins_per_axis(megabytes: float) -> int:
    """Regular bins per axis (flow bins excluded) so that the histogram holds about ``megabytes`` MiB."""
    total_bins = megabytes * 2**20 / WEIGHT_STORAGE_BYTES_PER_BIN
    return max(1, round(total_bins ** (1 / 3)) - 2)


def histogram_bytes(bins: int) -> int:
    """In-memory size of the storage of a histogram with ``bins`` regular bins per axis plus flow."""
    return (bins + 2) ** 3 * WEIGHT_STORAGE_BYTES_PER_BIN


def empty_histogram(bins: int) -> hist.Hist:
    return hist.Hist(
        hist.axis.Regular(bins, 0.0, 300.0, name="pt", label="jet pT [GeV]"),
        hist.axis.Regular(bins, -3.0, 3.0, name="eta", label="jet eta"),
        hist.axis.Regular(bins, -math.pi, math.pi, name="phi", label="jet phi"),
        storage=hist.storage.Weight(),
    )


class BigHistProcessor(processor.ProcessorABC):
    """Per chunk: ``{"big": <one ~megabytes MiB Hist>, "chunks": 1, "events": <events in the chunk>}``."""

    def __init__(self, megabytes: float) -> None:
        self.bins = bins_per_axis(megabytes)

    def process(self, events) -> dict:
        jets = events.Jet
        weight, _ = ak.broadcast_arrays(ak.num(jets, axis=1), jets.pt)
        h = empty_histogram(self.bins)
        h.fill(pt=ak.to_numpy(ak.flatten(jets.pt)), eta=ak.to_numpy(ak.flatten(jets.eta)),
               phi=ak.to_numpy(ak.flatten(jets.phi)), weight=ak.to_numpy(ak.flatten(weight)))
        return {"big": h, "chunks": 1, "events": len(events)}

    def postprocess(self, accumulator: dict) -> dict:
        return accumulator
