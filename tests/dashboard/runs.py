"""Shared pieces of the dashboard's end-to-end tests: the bundled sample and processors for it."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import cloudpickle

import analysis_examples.topeft.processor as topeft
from tests import support

SAMPLE = support.REPO / "analysis_examples" / "data" / "sample"
DASHBOARD_LINE = re.compile(r"Dashboard: (http://127\.0\.0\.1:\d+/)")

cloudpickle.register_pickle_by_value(topeft)


def sample_fileset() -> dict[str, list[str]]:
    """The bundled NanoAOD sample: 3 datasets x 2 files, 2,500 events per file."""
    fileset: dict[str, list[str]] = {}
    for path in sorted(SAMPLE.glob("*.root")):
        fileset.setdefault(path.stem.rsplit("_", 1)[0], []).append(str(path))
    return fileset


class SlowProcessor(topeft.TopEFTLikeProcessor):
    """The example processor, ``delay`` seconds slower per chunk, so a run lasts long enough to watch."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def process(self, events):
        time.sleep(self.delay)
        return super().process(events)


class FailFirstTaskProcessor(topeft.TopEFTLikeProcessor):
    """Fails the first ``failures`` calls on a first chunk of ``dataset``'s files (``marker`` counts
    them), then works.

    coffea-wq takes coffea's own in-task retries out of the function (the executor retries, after
    sorting read errors: docs/executor.md), so each failure is one failed task that the executor
    retries.
    """

    def __init__(self, dataset: str, marker: Path, failures: int) -> None:
        super().__init__()
        self.dataset, self.marker, self.failures = dataset, str(marker), failures

    def process(self, events):
        meta = events.metadata
        if meta["dataset"] == self.dataset and meta["entrystart"] == 0:
            with open(self.marker, "a+") as counter:
                counter.seek(0)
                seen = len(counter.read())
                if seen < self.failures:
                    counter.write("x")
                    raise RuntimeError(f"deliberate failure {seen + 1} in {os.path.basename(meta['filename'])}")
        return super().process(events)


def dashboard_url(text: str) -> str | None:
    match = DASHBOARD_LINE.search(text)
    return match.group(1) if match else None
