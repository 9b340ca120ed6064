"""A user's analysis script for the lifecycle tests (Ctrl-C, SIGKILL, resume), run as its own process.

    python tests/executor/lifecycle_child.py SETTINGS_JSON

SETTINGS_JSON holds: ``workdir`` (the executor's filepath), ``progress`` (a file each processed chunk
appends a line to, so the test sees how far the run got), ``chunksize``, ``sleep`` (seconds per chunk),
``local_workers``, ``port``, ``checkpoint_dir``, ``use_result_type``, ``reduction`` and
``chunks_per_accum``. The script prints one line ``RESULT {json}`` with the events in the output,
the events of ``last_report().unprocessed``, the chunks submitted, the report's reduction counts and
whether any chunk was counted twice and, with ``output``, pickles the output there;
``KEYBOARDINTERRUPT`` when the run raised it.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoAODSchema  # noqa: E402

import coffea_wq  # noqa: E402
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg  # noqa: E402
from analysis_examples.topeft.processor import TopEFTLikeProcessor  # noqa: E402

SAMPLE_CFG = REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
warnings.filterwarnings("ignore", message="Missing cross-reference")


class ProgressingProcessor(TopEFTLikeProcessor):
    """The example processor, slowed down and announcing each chunk it finishes (on the worker)."""

    def __init__(self, progress: str, sleep: float):
        super().__init__()
        self.progress = progress
        self.sleep = sleep

    def process(self, events):
        out = super().process(events)
        time.sleep(self.sleep)
        with open(self.progress, "a") as f:
            f.write(f"{events.metadata['entrystart']}\n")
        return out


def fileset() -> dict:
    return fileset_from_samples(read_cfg(SAMPLE_CFG))


def events_of(items) -> int:
    return sum(i.entrystop - i.entrystart for i in items)


def main(settings: dict) -> None:
    extra = {"checkpoint_dir": settings["checkpoint_dir"]} if settings.get("checkpoint_dir") else {}
    extra.update({k: settings[k] for k in ("reduction", "chunks_per_accum") if k in settings})
    executor = coffea_wq.WorkQueueExecutor(
        status=False, filepath=settings["workdir"], local_workers=settings.get("local_workers", 2),
        port=settings.get("port"), retries=0, **extra)
    runner = processor.Runner(executor=executor, chunksize=settings["chunksize"], schema=NanoAODSchema,
                              metadata_cache={}, skipbadfiles=settings.get("use_result_type", False),
                              use_result_type=settings.get("use_result_type", False))
    proc = ProgressingProcessor(settings["progress"], settings.get("sleep", 0.0))
    print("STARTED", flush=True)
    try:
        out = runner(fileset(), proc, treename="Events")
    except KeyboardInterrupt:
        print("KEYBOARDINTERRUPT", flush=True)
        return
    kind = "plain"
    if isinstance(out, processor.Err):
        kind, exception, out = "err", out.exception, out.value
        print(f"ERR {type(exception).__name__}: {exception}", flush=True)
    report = coffea_wq.last_report("Processing")
    if settings.get("output"):
        Path(settings["output"]).write_bytes(pickle.dumps(out))
    print("RESULT " + json.dumps({
        "kind": kind, "events": sum(out["nevents"].values()), "unprocessed_events": events_of(report.unprocessed),
        "unprocessed": len(report.unprocessed), "submitted": report.tasks_submitted, "items": report.items,
        "restored": len(getattr(report, "restored", [])), "pid": os.getpid(),
        "accumulated": len(report.accumulated), "skipped": len(report.skipped),
        "counted_twice": len(report.accumulated) - len({(i.filename, i.entrystart) for i in report.accumulated}),
        "partials_returned": report.partials_returned, "merged_in_process": report.merged_in_process}),
        flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
