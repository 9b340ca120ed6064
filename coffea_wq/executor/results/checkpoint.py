"""``checkpoint_dir``: every chunk's result kept on the submit host, so a rerun submits only the rest.

Unlike coffea's ``SimpleCheckpointer``, which runs on the workers and so needs a filesystem shared
with them, the store lives in the user's process: each result that arrives is written there
atomically (the task's output file moved there by ``os.replace``, or copied under a temporary
name first when the staging folder is on another filesystem), owner-only (0600 files,
0700 folders). Layout (docs/executor.md, "Resume without a shared filesystem"):

    <checkpoint_dir>/<processor digest>/<source id>/source.json        dataset, file uuid, tree, file
    <checkpoint_dir>/<processor digest>/<source id>/<start>-<stop>.lz4  the task's result record

* The processor digest is a SHA-256 of the function the Runner hands the executor (the processor and
  the Runner settings that shape its output: schema, savemetrics, uproot options), pickled with the
  run-to-run noise removed (``function_digest``). A changed processor starts from scratch.
* A source is (dataset, file uuid, tree name); its id is a hash of those, so a file read from
  another path is still recognised and two datasets sharing a file are not confused.
* A result is stored under its entry range. On a rerun each work item keeps the stored ranges that
  lie inside the contiguous events the run asks for, and only the entries no stored range covers
  are submitted. That is what makes ``dynamic_chunksize`` resumable: stored ranges need not match
  the new chunks, and the uncovered rest is re-cut at the size learnt anew.

With reduction (docs/reduction.md) a partial merged from a worker holds several chunks; it is
stored once, as a *bundle*:

    <checkpoint_dir>/<processor digest>/bundles/<id>.lz4   the partial's record
    <checkpoint_dir>/<processor digest>/bundles/<id>.json  {"chunks": [source fields + filename, start, stop]}

(the manifest is written after the record, so a bundle without one is ignored). A rerun merges a
bundle when every chunk it names lies inside the events asked for and overlaps nothing already
taken; per-chunk results fill in around the bundles.

Result files are the task runner's own records, read back by ``read_outcome`` under the run's
``ResultPolicy``: the same restricted unpickler (``coffea_wq/safe_pickle/allow_list.py``) as results
from the network.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import lz4.frame

from coffea_wq.executor.results.outcome import OutcomeKind, read_outcome
from coffea_wq.safe_pickle.allow_list import ResultPolicy

log = logging.getLogger(__name__)

RESULT_SUFFIX = ".lz4"
SOURCE_FILE = "source.json"
BUNDLES = "bundles"
MANIFEST_SUFFIX = ".json"
_TRACKER_ID = re.compile(r"^[0-9a-f]{32}$")  # cloudpickle's random id of a class pickled by value
# Runner closure arguments that do not change a chunk's result
_IGNORED_KEYWORDS = ("checkpointer", "cache_function")


def function_digest(function: Callable) -> str:
    """A digest of ``function`` that is the same in every run of the same script and settings.

    Plain cloudpickle output differs from run to run: a class defined in the script gets a random
    tracker id, and the Runner compresses the processor's pickle into bytes before we see it. The
    digest unpacks the processor, drops arguments that do not shape results (a coffea checkpointer)
    and blanks the tracker ids. Sets of strings held by the processor still pickle in the order of
    Python's per-run string hashing: a processor holding them gets a fresh digest each run unless
    ``PYTHONHASHSEED`` is fixed (docs/executor.md).
    """
    payload = _DigestPickler.dumps(_comparable(function))
    return hashlib.sha256(payload).hexdigest()[:24]


def _comparable(function: Any) -> Any:
    if not isinstance(function, functools.partial):
        return function
    keywords = {}
    for name, value in function.keywords.items():
        if name in _IGNORED_KEYWORDS:
            continue
        if name == "processor_instance" and isinstance(value, bytes):
            value = _unpack_processor(value)
        keywords[name] = _comparable(value)
    return (_comparable(function.func), tuple(_comparable(a) for a in function.args), keywords)


def _unpack_processor(data: bytes) -> Any:
    try:
        return cloudpickle.loads(lz4.frame.decompress(data))
    except Exception:  # not the Runner's lz4(cloudpickle) form: hash the bytes as they are
        return data


class _DigestPickler(cloudpickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        reduced = super().reducer_override(obj)
        name = getattr(reduced[0], "__name__", "") if isinstance(reduced, tuple) and reduced else ""
        if name in ("_make_skeleton_class", "_make_skeleton_enum"):
            args = tuple("" if isinstance(a, str) and _TRACKER_ID.match(a) else a for a in reduced[1])
            reduced = (reduced[0], args, *reduced[2:])
        return reduced

    @classmethod
    def dumps(cls, obj: Any) -> bytes:
        import io

        buffer = io.BytesIO()
        cls(buffer, protocol=5).dump(obj)
        return buffer.getvalue()


@dataclasses.dataclass
class Restored:
    """What a store gave back for a call: stored results and the items still to process."""

    results: list[tuple[Any, Any]]  # (WorkItem of the stored range, its value)
    remaining: list[Any]
    bundles: list[tuple[list[Any], Any]] = dataclasses.field(default_factory=list)  # (WorkItems, value)

    @property
    def items(self) -> list[Any]:
        """Every work item restored (single results and the chunks of bundles)."""
        return [item for item, _ in self.results] + [item for items, _ in self.bundles for item in items]

    @property
    def count(self) -> int:
        return len(self.items)


class CheckpointStore:
    """The stored results of one processor under ``checkpoint_dir``.

    Example:
        >>> store = CheckpointStore(Path("ckpt"), "0123abcd")              # doctest: +SKIP
        >>> found = store.restore(work_items)                                # doctest: +SKIP
        >>> store.save(item, Path("staging/outputs/out-3.lz4"))              # doctest: +SKIP
    """

    def __init__(self, root: Path, digest: str, policy: ResultPolicy | None = None):
        self.root = Path(root)
        self.digest = digest
        self.policy = policy  # the allow-list results from workers are loaded under
        self.folder = self.root / digest
        _private_dir(self.root)
        _private_dir(self.folder)

    def restore(self, items: list[Any]) -> Restored:
        """The stored results lying inside ``items``' events, and the uncovered rest as work items."""
        if not items or not all(_is_chunk(i) for i in items):
            return Restored([], list(items))
        by_source: dict[str, list[Any]] = defaultdict(list)
        for item in items:
            by_source[source_id(item)].append(item)
        results: list[tuple[Any, Any]] = []
        remaining: list[Any] = []
        bundles, covered_by_bundles = self._usable_bundles(by_source)
        for sid, wanted in by_source.items():
            covered = list(covered_by_bundles.get(sid, []))
            for start, stop, path in self._usable_ranges(sid, wanted):
                if any(start < hi and lo < stop for lo, hi in covered_by_bundles.get(sid, [])):
                    continue
                outcome = read_outcome(path, self.policy, worker=f"checkpoint {path}")
                if outcome.kind is not OutcomeKind.OK:
                    log.warning("checkpoint %s cannot be used (%s); its events are processed again", path,
                                outcome.detail)
                    continue
                holder = _item_holding(wanted, start)
                results.append((dataclasses.replace(holder, entrystart=start, entrystop=stop), outcome.value))
                covered.append((start, stop))
            for item in wanted:
                remaining += _uncovered_pieces(item, covered)
        self._log_summary(len(items), results + bundles, remaining)
        return Restored(results, remaining, bundles)

    def save_bundle(self, items: list[Any], record: Path, keep: bool = False) -> None:
        """Move a partial's record at ``record`` into the store as one bundle of ``items``' chunks
        (``keep``: it stays where it is too, as ``save``'s)."""
        if not items or not all(_is_chunk(i) for i in items):
            return
        manifest = _bundle_manifest(items)
        folder = self.folder / BUNDLES
        _private_dir(folder)
        name = hashlib.sha256(manifest).hexdigest()[:24]
        os.chmod(record, 0o600)
        _move_into(Path(record), folder / f"{name}{RESULT_SUFFIX}", keep)
        _atomic_write(folder / f"{name}{MANIFEST_SUFFIX}", manifest)  # last: a bundle without it is ignored

    def discard_bundle(self, items: list[Any]) -> None:
        """Forget the bundle of ``items``' chunks (its record was refused where it was read)."""
        if not items or not all(_is_chunk(i) for i in items):
            return
        name = hashlib.sha256(_bundle_manifest(items)).hexdigest()[:24]
        for suffix in (MANIFEST_SUFFIX, RESULT_SUFFIX):  # the manifest first: a bundle without it is ignored
            (self.folder / BUNDLES / f"{name}{suffix}").unlink(missing_ok=True)

    def _usable_bundles(self, by_source: dict[str, list[Any]]) -> tuple[list, dict[str, list[tuple[int, int]]]]:
        """Bundles whose chunks all lie inside the wanted events, not overlapping each other."""
        folder = self.folder / BUNDLES
        taken: list[tuple[list[Any], Any]] = []
        covered: dict[str, list[tuple[int, int]]] = defaultdict(list)
        if not folder.is_dir():
            return taken, covered
        spans = {sid: _contiguous_spans(wanted) for sid, wanted in by_source.items()}
        for manifest in sorted(folder.glob(f"*{MANIFEST_SUFFIX}")):
            chunks = _read_manifest(manifest)
            record = manifest.with_suffix(RESULT_SUFFIX)
            if not chunks or not record.is_file():
                continue
            placed = [(_sid(c), c["entrystart"], c["entrystop"]) for c in chunks]
            if not all(any(lo <= start and stop <= hi for lo, hi in spans.get(sid, [])) and
                       not any(start < b and a < stop for a, b in covered[sid]) for sid, start, stop in placed):
                continue
            outcome = read_outcome(record, self.policy, worker=f"checkpoint {record}")
            partial = outcome.partial
            if outcome.kind not in (OutcomeKind.PARTIAL, OutcomeKind.REMOTE_ERROR) or partial is None:
                log.warning("checkpoint bundle %s cannot be used (%s); its events are processed again", record,
                            outcome.detail or outcome.kind.value)
                continue
            items = [dataclasses.replace(_item_holding(by_source[sid], start), entrystart=start, entrystop=stop)
                     for sid, start, stop in placed]
            taken.append((items, partial.value))
            for sid, start, stop in placed:
                covered[sid].append((start, stop))
        return taken, covered

    def save(self, item: Any, record: Path, keep: bool = False) -> None:
        """Move the result record at ``record`` (a task's output file) into the store as ``item``'s.

        ``keep``: the record stays where it is too (it waits for an accumulation task,
        docs/reduction.md section 3): stored as a hard link, or a copy on another filesystem.
        """
        if not _is_chunk(item):
            return
        folder = self.folder / source_id(item)
        if not folder.is_dir():
            _private_dir(folder)
            _atomic_write(folder / SOURCE_FILE, json.dumps(_source_fields(item) | {"filename": item.filename},
                                                           indent=1).encode())
        target = self._record_path(item)
        os.chmod(record, 0o600)
        _move_into(Path(record), target, keep)

    def discard(self, item: Any) -> None:
        """Forget ``item``'s stored result (it was refused where it was read: it must not be restored)."""
        if _is_chunk(item):
            self._record_path(item).unlink(missing_ok=True)

    def _record_path(self, item: Any) -> Path:
        return self.folder / source_id(item) / f"{item.entrystart}-{item.entrystop}{RESULT_SUFFIX}"

    def _usable_ranges(self, sid: str, wanted: list[Any]) -> list[tuple[int, int, Path]]:
        """Stored ranges inside the wanted events, non-overlapping, earliest first."""
        folder = self.folder / sid
        if not folder.is_dir():
            return []
        spans = _contiguous_spans(wanted)
        stored = sorted(_parse_range(p) for p in folder.glob(f"*{RESULT_SUFFIX}") if not p.name.startswith("."))
        taken: list[tuple[int, int, Path]] = []
        end = -1
        for start, stop, path in (s for s in stored if s is not None):
            if start >= end and any(lo <= start and stop <= hi for lo, hi in spans):
                taken.append((start, stop, path))
                end = stop
        return taken

    def _log_summary(self, count: int, results: list, remaining: list) -> None:
        if results:
            log.warning("checkpoint_dir %s: %d stored result(s) merged, %d work item(s) to process",
                        self.folder, len(results), len(remaining))
            return
        others = [p.name for p in self.root.iterdir() if p.is_dir() and p.name != self.digest]
        if others:
            log.warning("checkpoint_dir %s holds results of %d other processor(s) or settings (%s); none "
                        "match this one (%s), so all %d work items are processed", self.root, len(others),
                        ", ".join(sorted(others)[:3]), self.digest, count)


def _bundle_manifest(items: list[Any]) -> bytes:
    chunks = [_source_fields(i) | {"filename": str(i.filename), "entrystart": int(i.entrystart),
                                   "entrystop": int(i.entrystop)} for i in items]
    return json.dumps({"chunks": chunks}, sort_keys=True).encode()


def source_id(item: Any) -> str:
    """The folder name of a WorkItem's (dataset, file uuid, tree name)."""
    text = json.dumps(_source_fields(item), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _source_fields(item: Any) -> dict[str, str]:
    uuid = item.fileuuid.hex() if isinstance(item.fileuuid, bytes) else str(item.fileuuid)
    return {"dataset": str(item.dataset), "fileuuid": uuid or f"path:{item.filename}", "treename": str(item.treename)}


def _is_chunk(item: Any) -> bool:
    return all(hasattr(item, name) for name in ("dataset", "fileuuid", "treename", "entrystart", "entrystop"))


def _parse_range(path: Path) -> tuple[int, int, Path] | None:
    start, _, stop = path.name[: -len(RESULT_SUFFIX)].partition("-")
    if not (start.isdigit() and stop.isdigit()) or int(start) >= int(stop):
        return None
    return int(start), int(stop), path


def _contiguous_spans(items: list[Any]) -> list[tuple[int, int]]:
    spans: list[list[int]] = []
    for item in sorted(items, key=lambda i: i.entrystart):
        if spans and spans[-1][1] == item.entrystart:
            spans[-1][1] = item.entrystop
        else:
            spans.append([item.entrystart, item.entrystop])
    return [(lo, hi) for lo, hi in spans]


def _item_holding(items: list[Any], entry: int) -> Any:
    return next(i for i in items if i.entrystart <= entry < i.entrystop)


def _uncovered_pieces(item: Any, covered: list[tuple[int, int]]) -> list[Any]:
    """``item`` minus the covered ranges, as WorkItems (at most as long as ``item``)."""
    pieces, cursor = [], item.entrystart
    for start, stop in sorted(covered):
        if stop <= cursor or start >= item.entrystop:
            continue
        if start > cursor:
            pieces.append((cursor, start))
        cursor = max(cursor, stop)
    if cursor < item.entrystop:
        pieces.append((cursor, item.entrystop))
    if pieces == [(item.entrystart, item.entrystop)]:
        return [item]
    return [dataclasses.replace(item, entrystart=lo, entrystop=hi) for lo, hi in pieces]


def _move_into(record: Path, target: Path, keep: bool = False) -> None:
    """Move ``record`` to ``target`` atomically (a staging copy, discarded next); copy across filesystems.

    ``keep``: the record stays where it is too (a hard link, or a copy on another filesystem).
    """
    try:
        if keep:
            _atomic_link(record, target)
        else:
            os.replace(record, target)
    except OSError:  # another filesystem
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(record, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _sid(fields: dict[str, Any]) -> str:
    """``source_id`` of a manifest's chunk (its dataset, file uuid and tree name)."""
    text = json.dumps({k: str(fields[k]) for k in ("dataset", "fileuuid", "treename")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    try:
        chunks = json.loads(path.read_text())["chunks"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    good = isinstance(chunks, list) and all(
        isinstance(c, dict) and isinstance(c.get("entrystart"), int) and isinstance(c.get("entrystop"), int)
        and all(isinstance(c.get(k), str) for k in ("dataset", "fileuuid", "treename")) for c in chunks)
    return chunks if good else []


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.is_dir():
        raise NotADirectoryError(f"checkpoint_dir: {str(path)!r} is not a directory")


def _atomic_link(source: Path, target: Path) -> None:
    """``target`` becomes another name of ``source``, atomically (replacing what was there)."""
    temporary = target.with_name(f".tmp-link-{os.getpid()}-{target.name}")
    temporary.unlink(missing_ok=True)
    os.link(source, temporary)
    os.replace(temporary, target)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
