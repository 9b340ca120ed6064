"""Preprocessing many files: batches of files per task, and their metadata kept in ``checkpoint_dir``.

coffea's Runner hands the executor one ``FileMeta`` per file and a fetcher that opens the file and
reads its entry count, uuid (and cluster boundaries). One task per file makes a 100,000-file
fileset 100,000 tasks, each a few milliseconds of work behind a process start and a round trip.
``batch_files`` groups the files into tuples of ``preprocessing_batch`` files (by default up to
DEFAULT_BATCH, fewer for small filesets so that at least ``MIN_TASKS`` tasks spread over the workers), fetched one after another by one
task (batch_fetch.py). A batch that fails is run again as single files (failing.py), so a bad
file is named, retried, failed or skipped alone exactly as without batches.

``PreprocessingStore`` keeps what preprocessing learnt under ``<checkpoint_dir>/preprocessing/``,
one JSON line per file (dataset, file, tree, entries, uuid, clusters), in a file named by the
fetcher's digest (a change of ``align_clusters`` or the uproot options starts afresh). A rerun
with the same ``checkpoint_dir`` takes the files it knows from there and submits only the others;
with every file known it submits nothing. docs/executor.md, "Huge filesets".
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cloudpickle

from coffea_wq.executor.tasks import batch_fetch
from coffea_wq.executor.tasks.batch_fetch import BatchedFetch

log = logging.getLogger(__name__)

DEFAULT_BATCH = 50  # files per preprocessing task, at most
MIN_TASKS = 200  # batches shrink so that a smaller fileset still makes this many tasks
STORED_KEYS = ("numentries", "uuid", "clusters")  # what the fetcher adds to a file's metadata

cloudpickle.register_pickle_by_value(batch_fetch)  # workers need coffea, not coffea-wq


def batch_size(files: int, batch: int | None) -> int:
    """Files per task: ``batch`` as given, or by default DEFAULT_BATCH, less where that would leave
    under MIN_TASKS tasks.

    Example:
        >>> batch_size(3, None), batch_size(2_000, None), batch_size(100_000, None), batch_size(7, 4)
        (1, 10, 50, 4)
    """
    if batch is not None:
        return max(1, int(batch))
    return max(1, min(DEFAULT_BATCH, files // MIN_TASKS))


def batch_files(items: list[Any], function: Callable, batch: int | None) -> tuple[list[Any], Callable]:
    """``(work items, function)`` for a preprocessing call: tuples of files and a fetcher that takes them."""
    size = batch_size(len(items), batch)
    if size <= 1:
        return items, function
    batches = [tuple(items[i:i + size]) for i in range(0, len(items), size)]
    log.info("preprocessing %d files in %d tasks of up to %d files", len(items), len(batches), size)
    return batches, BatchedFetch(function)


def is_file_batch(item: Any) -> bool:
    """A batch of several files (batch_files), which a failure splits into single files."""
    return isinstance(item, tuple) and len(item) > 1


def expected_tasks(files: int, batch: int | None) -> int:
    return math.ceil(files / batch_size(files, batch)) if files else 0


class PreprocessingStore:
    """The metadata of preprocessed files, kept in ``<checkpoint_dir>/preprocessing/<digest>.jsonl``."""

    def __init__(self, checkpoint_dir: Path, digest: str) -> None:
        self.path = Path(checkpoint_dir) / "preprocessing" / f"{digest}.jsonl"

    def restore(self, items: list[Any]) -> tuple[list[Any], list[Any]]:
        """``(known, remaining)``: FileMetas with their stored metadata, and the files still to fetch."""
        stored = self._load()
        if not stored:
            return [], items
        known, remaining = [], []
        for item in items:
            metadata = stored.get((item.dataset, item.filename, item.treename))
            if metadata is None:
                remaining.append(item)
                continue
            merged = dict(item.metadata or {})
            merged.update(metadata)
            known.append(type(item)(item.dataset, item.filename, item.treename, merged, getattr(item, "preload", None)))
        if known:
            log.info("checkpoint_dir: metadata of %d file(s) restored, %d to preprocess", len(known), len(remaining))
        return known, remaining

    def save(self, metas: Iterable[Any]) -> None:
        """Append the fetched metadata of ``metas`` (FileMetas whose metadata is filled)."""
        lines = []
        for meta in metas:
            data = meta.metadata or {}
            if "numentries" not in data or "uuid" not in data:
                continue
            record = {"dataset": meta.dataset, "filename": meta.filename, "treename": meta.treename,
                      "numentries": int(data["numentries"]), "uuid": bytes(data["uuid"]).hex()}
            if "clusters" in data:
                record["clusters"] = [int(c) for c in data["clusters"]]
            lines.append(json.dumps(record, separators=(",", ":")))
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _load(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        stored: dict[tuple[str, str, str], dict[str, Any]] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return stored
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                metadata = {"numentries": int(record["numentries"]), "uuid": bytes.fromhex(record["uuid"])}
                if "clusters" in record:
                    metadata["clusters"] = [int(c) for c in record["clusters"]]
                stored[(record["dataset"], record["filename"], record["treename"])] = metadata
            except (ValueError, KeyError, TypeError) as exc:  # a line cut by a killed run: fetched again
                log.warning("checkpoint_dir: %s line %d is unreadable (%s); ignored", self.path, number, exc)
        return stored


class PreprocessingCheckpoint:
    """A preprocessing call's use of the store: restore before it, save what it fetched after."""

    def __init__(self, store: PreprocessingStore) -> None:
        self.store = store
        self.known: set[tuple[str, str, str]] = set()

    @classmethod
    def open(cls, checkpoint_dir: str | os.PathLike | None, function: Callable) -> PreprocessingCheckpoint | None:
        if checkpoint_dir is None:
            return None
        from coffea_wq.executor.results.checkpoint import function_digest
        from coffea_wq.executor.tasks.read_errors import unwrap_coffea_retries

        return cls(PreprocessingStore(Path(checkpoint_dir), function_digest(unwrap_coffea_retries(function)[0])))

    def restore_into(self, accumulator: Any, items: list[Any]) -> tuple[Any, list[Any]]:
        """The accumulator with the stored files added, and the files still to preprocess."""
        known, remaining = self.store.restore(items)
        if not known:
            return accumulator, remaining
        from coffea.processor import accumulate, set_accumulator

        self.known = {(m.dataset, m.filename, m.treename) for m in known}
        return accumulate([set_accumulator(known)], accumulator), remaining

    def save_new(self, accumulated: Any) -> None:
        try:
            self.store.save(m for m in accumulated or () if (m.dataset, m.filename, m.treename) not in self.known)
        except OSError as exc:  # the run goes on; only a rerun would preprocess them again
            log.warning("checkpoint_dir: cannot store preprocessing results in %s: %s", self.store.path, exc)
