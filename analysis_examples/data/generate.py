"""Write synthetic NanoAOD-structured ROOT files, their JSON sample files and a cfg.

Usage (from the repository root)::

    python -m analysis_examples.data.generate --events 1000000 --out analysis_examples/data/generated
    python -m analysis_examples.data.generate --events 30000 --files 2 --seed 7 --out /tmp/nano

``--events`` is the total over all datasets (split evenly between the datasets, then between the
``--files`` files of each dataset). Output in ``--out``:

- ``<dataset>_<k>.root``: a TTree ``Events`` with NanoAOD branches (``nElectron``,
  ``Electron_pt`` ..., ``Electron_jetIdx``, ``Jet_electronIdx1`` ..., ``genWeight`` for MC,
  ``run``/``luminosityBlock``/``event``), one basket per ``--basket-events`` events;
- ``<dataset>.json``: a topcoffea-style sample file (``xsec``, ``year``, ``treeName``, ``files`` ...),
  whose ``files`` are relative to the JSON file's directory;
- ``samples.cfg``: a cfg listing the JSON files, for ``work_queue_run.py``.

The output is a pure function of (``--events``, ``--files``, ``--seed``, ``--basket-events``):
each block of events is drawn from a generator seeded by (seed, dataset, file, block).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from analysis_examples.data.physics import DATASETS, Block, Collection, DatasetModel, generate_block

log = logging.getLogger("analysis_examples.data.generate")

DEFAULT_BASKET_EVENTS = 10_000
DEFAULT_SEED = 20240601
TREE_NAME = "Events"
# name -> uproot compression. CMS writes NanoAOD with LZMA; ZLIB(1) writes ~25x faster for 1.6x the size.
COMPRESSIONS = {"zlib": uproot.ZLIB(1), "lzma": uproot.LZMA(9), "lz4": uproot.LZ4(1)}
DEFAULT_COMPRESSION = "zlib"


@dataclass
class FileSummary:
    """What was written to one ROOT file."""

    path: Path
    n_events: int
    sum_gen_weight: float


def _jagged(collection: Collection) -> ak.Array:
    """A record of jagged columns that uproot writes as ``nX`` + ``X_field`` branches."""
    offsets = np.zeros(len(collection.counts) + 1, dtype=np.int64)
    np.cumsum(collection.counts, out=offsets[1:])
    fields = list(collection.columns)
    contents = [ak.contents.NumpyArray(collection.columns[name]) for name in fields]
    record = ak.contents.RecordArray(contents, fields, length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def block_branches(block: Block) -> dict[str, object]:
    """The dict ``uproot``'s ``tree.extend`` takes for one block of events."""
    branches: dict[str, object] = dict(block.event_columns)
    branches["Electron"] = _jagged(block.electrons)
    branches["Muon"] = _jagged(block.muons)
    branches["Jet"] = _jagged(block.jets)
    return branches


def block_rng(seed: int, dataset_index: int, file_index: int, block_index: int) -> np.random.Generator:
    """The generator for one block: independent of every other block and of the run's size."""
    return np.random.default_rng(np.random.SeedSequence([seed, dataset_index, file_index, block_index]))


def write_file(path: Path, model: DatasetModel, dataset_index: int, file_index: int, n_events: int,
               first_event: int, seed: int, basket_events: int = DEFAULT_BASKET_EVENTS,
               compression: str = DEFAULT_COMPRESSION) -> FileSummary:
    """Write one NanoAOD-structured ROOT file of ``n_events`` events of ``model``.

    Args:
        path: the ROOT file to (re)create.
        model: the dataset to imitate.
        dataset_index, file_index: identify the file in the seed (and so in the random stream).
        n_events: number of events (0 writes an empty tree).
        first_event: event number of the first event.
        seed: the run's seed.
        basket_events: events per basket (one ``extend`` per block, so one basket per branch).
        compression: a key of ``COMPRESSIONS``.

    Example:
        >>> write_file(Path("/tmp/x.root"), DATASETS[0], 0, 0, 1000, 1, seed=1).n_events
        1000
    """
    sum_weights = 0.0
    tree = None
    with uproot.recreate(path, compression=COMPRESSIONS[compression]) as out:
        block_index = 0
        done = 0
        while done < n_events or tree is None:
            size = min(basket_events, n_events - done)
            block = generate_block(block_rng(seed, dataset_index, file_index, block_index), model, size,
                                   first_event + done)
            branches = block_branches(block)
            if tree is None:
                tree = out.mktree(TREE_NAME, {name: _branch_type(value) for name, value in branches.items()},
                                  title="Events")
            if size > 0:
                tree.extend(branches)
            if "genWeight" in block.event_columns:
                sum_weights += float(block.event_columns["genWeight"].astype(np.float64).sum())
            done += size
            block_index += 1
    return FileSummary(path, n_events, sum_weights if not model.is_data else float(n_events))


def _branch_type(value: object):
    return value.type if isinstance(value, ak.Array) else value.dtype


def split_events(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal non-negative integers, larger ones first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def sample_json(model: DatasetModel, files: list[FileSummary], out_dir: Path) -> dict:
    """The topcoffea-style sample description of a dataset's files."""
    n_events = sum(f.n_events for f in files)
    return {
        "xsec": model.xsec,
        "year": model.year,
        "treeName": TREE_NAME,
        "histAxisName": model.name,
        "options": model.options,
        "WCnames": [],
        "files": [str(f.path.relative_to(out_dir)) for f in files],
        "nEvents": n_events,
        "nGenEvents": n_events,
        "nSumOfWeights": sum(f.sum_gen_weight for f in files),
        "isData": model.is_data,
    }


def generate(out_dir: Path, total_events: int, files_per_dataset: int = 2, seed: int = DEFAULT_SEED,
             basket_events: int = DEFAULT_BASKET_EVENTS, compression: str = DEFAULT_COMPRESSION,
             datasets: Sequence[DatasetModel] = DATASETS) -> dict[str, Path]:
    """Write every dataset's files, JSON sample files and ``samples.cfg`` into ``out_dir``.

    Returns the JSON sample file of each dataset.

    Example:
        >>> generate(Path("/tmp/nano"), 3000, files_per_dataset=1)["ttH_like"].name
        'ttH_like.json'
    """
    if total_events < 0 or files_per_dataset < 1 or basket_events < 1:
        raise ValueError("need --events >= 0, --files >= 1 and --basket-events >= 1")
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    json_paths: dict[str, Path] = {}
    per_dataset = split_events(total_events, len(datasets))
    for dataset_index, (model, n_dataset) in enumerate(zip(datasets, per_dataset, strict=True)):
        summaries = []
        first_event = 1
        for file_index, n_file in enumerate(split_events(n_dataset, files_per_dataset)):
            path = out_dir / f"{model.name}_{file_index}.root"
            tic = time.perf_counter()
            summaries.append(write_file(path, model, dataset_index, file_index, n_file, first_event, seed,
                                        basket_events, compression))
            log.info("wrote %s: %d events in %.1f s", path, n_file, time.perf_counter() - tic)
            first_event += n_file
        json_path = out_dir / f"{model.name}.json"
        json_path.write_text(json.dumps(sample_json(model, summaries, out_dir), indent=2) + "\n")
        json_paths[model.name] = json_path
    cfg_lines = [f"# generated by python -m analysis_examples.data.generate --events {total_events} "
                 f"--files {files_per_dataset} --seed {seed} --basket-events {basket_events} "
                 f"--compression {compression}",
                 *[p.name for p in json_paths.values()]]
    (out_dir / "samples.cfg").write_text("\n".join(cfg_lines) + "\n")
    return json_paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis_examples.data.generate",
        description="Write synthetic NanoAOD-structured ROOT files (+ JSON sample files and a cfg).")
    parser.add_argument("--events", type=int, required=True, help="total number of events, all datasets")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created)")
    parser.add_argument("--files", type=int, default=2, help="files per dataset (default 2)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--basket-events", type=int, default=DEFAULT_BASKET_EVENTS,
                        help=f"events per basket (default {DEFAULT_BASKET_EVENTS})")
    parser.add_argument("--compression", choices=sorted(COMPRESSIONS), default=DEFAULT_COMPRESSION,
                        help=f"ROOT compression (default {DEFAULT_COMPRESSION}; lzma is smaller and slower)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tic = time.perf_counter()
    try:
        json_paths = generate(args.out, args.events, args.files, args.seed, args.basket_events,
                              args.compression)
    except (ValueError, OSError) as err:
        print(f"generate: {err}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - tic
    print(f"wrote {args.events} events in {elapsed:.1f} s ({args.events / max(elapsed, 1e-9):,.0f} events/s) "
          f"to {args.out}: {', '.join(p.name for p in json_paths.values())}, samples.cfg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
