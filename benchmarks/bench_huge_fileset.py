"""A huge fileset: 100,000 files preprocessed in batches and processed, with the manager's memory watched.

The files are links to one small NanoAOD file (20 events), so the fileset costs no disk: what is
measured is the executor's own cost per file. Two runs on the same local workers' count, a tenth
of the files and then all of them:

* preprocessing tasks (target: <= files / batch size; coffea-wq's default batch is 50 files);
* wall time of preprocessing and of processing (one chunk per file);
* the manager's RSS: at the start, its peak (sampled every 0.2 s) and its growth per file. "Bounded"
  means the growth per file does not rise with the fileset: the ratio of the per-file growth of the
  full run to that of the tenth is printed (target <= 1.5; the Runner itself keeps every FileMeta
  and chunk, so some growth per file is expected);
* a rerun of the full preprocessing with ``checkpoint_dir``: it must submit no preprocessing task.

Run: ``python benchmarks/bench_huge_fileset.py [--files 100000] [--workers 2]``; ``--files 2000``
for a quick look. Figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
from coffea import processor  # noqa: E402
from coffea.nanoevents import BaseSchema  # noqa: E402

import coffea_wq  # noqa: E402
from coffea_wq.executor.tasks.preprocessing import batch_size  # noqa: E402
from tests.executor import nano  # noqa: E402

TARGET_GROWTH_RATIO = 1.5
EVENTS_PER_FILE = 20


class CountEvents(processor.ProcessorABC):
    def process(self, events):
        return {"events": len(events)}

    def postprocess(self, accumulator):
        return accumulator


class PeakRss:
    """The peak RSS of this process, sampled in a thread."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.process.memory_info().rss)


def make_fileset(directory: Path, count: int) -> dict[str, list[str]]:
    source = nano.write_nano_file(directory / "one.root", EVENTS_PER_FILE, seed=5)
    names = []
    for index in range(count):
        link = directory / f"f{index:06d}.root"
        if not link.exists():
            os.symlink(source, link)
        names.append(str(link))
    return {"many": names}


def run(fileset: dict, workers: int, checkpoint: Path | None = None, process: bool = True) -> dict:
    files = len(fileset["many"])
    executor = coffea_wq.WorkQueueExecutor(local_workers=workers, status=False,
                                           checkpoint_dir=str(checkpoint) if checkpoint else None)
    runner = processor.Runner(executor=executor, chunksize=1000, schema=BaseSchema, metadata_cache={})
    before = coffea_wq.last_report("Preprocessing")
    with PeakRss() as rss:
        started = time.monotonic()
        chunks = list(runner.preprocess(fileset, treename="Events"))
        preprocessed = time.monotonic()
        out = runner.run(chunks, CountEvents(), treename="Events")["out"] if process else {"events": None}
        finished = time.monotonic()
    report = coffea_wq.last_report("Preprocessing")
    tasks = report.tasks_submitted if report is not before else 0
    return {"files": files, "chunks": len(chunks), "pre_tasks": tasks, "pre_s": preprocessed - started,
            "proc_s": finished - preprocessed, "events": out["events"], "rss_start": rss.start,
            "rss_peak": rss.peak, "growth_per_file": (rss.peak - rss.start) / files}


def show(label: str, r: dict) -> None:
    mb = 1 << 20
    print(f"{label}: {r['files']} files -> {r['pre_tasks']} preprocessing tasks "
          f"(batch {batch_size(r['files'], None)}), {r['chunks']} chunks; preprocessing {r['pre_s']:.1f} s, "
          f"processing {r['proc_s']:.1f} s; manager RSS {r['rss_start'] / mb:.0f} MB -> peak "
          f"{r['rss_peak'] / mb:.0f} MB ({r['growth_per_file'] / 1024:.1f} KiB per file)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    ok = True
    with tempfile.TemporaryDirectory(prefix="coffea-wq-huge-") as tmp:
        fileset = make_fileset(Path(tmp), args.files)
        tenth = {"many": fileset["many"][: max(1, args.files // 10)]}
        small = run(tenth, args.workers)
        show("a tenth", small)
        full = run(fileset, args.workers, checkpoint=Path(tmp) / "ckpt")
        show("all", full)
        rerun = run(fileset, args.workers, checkpoint=Path(tmp) / "ckpt", process=False)
        print(f"rerun with checkpoint_dir: {rerun['pre_tasks']} preprocessing tasks, "
              f"{rerun['chunks']} chunks in {rerun['pre_s']:.1f} s", flush=True)
        limit = -(-args.files // batch_size(args.files, None))
        ratio = full["growth_per_file"] / small["growth_per_file"] if small["growth_per_file"] > 0 else 0.0
        print(f"preprocessing tasks {full['pre_tasks']} (limit {limit}); RSS growth per file, all / a tenth: "
              f"{ratio:.2f} (target <= {TARGET_GROWTH_RATIO})", flush=True)
        ok = (full["pre_tasks"] <= limit and rerun["pre_tasks"] == 0 and full["events"] == args.files * EVENTS_PER_FILE
              and rerun["chunks"] == args.files)
        if ratio > TARGET_GROWTH_RATIO:
            print("note: the manager's memory grew faster than the fileset", flush=True)
    coffea_wq.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
