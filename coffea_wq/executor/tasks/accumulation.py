"""Accumulation tasks, the I/O side: their payload, their template, building one, screening results.

What a tree of accumulation tasks does is decided by ``CallState`` (executor/call/, with the pure
planner in ``results/tree.py``; docs/reduction.md, section 3): which waiting results an
accumulation task adds, what a failed one means, when the user's process merges what is left.
This module only makes those tasks: the run's allow-list as a small plain pickle (the ``FN``
file, cached on workers), the template (category ``accumulating``, the allow-list module shipped
as ``coffea_wq_safe_results.py``), and one task with its inputs shipped as ``in-0.lz4``, ...
It also screens small results for globals the allow-list refuses, so a rogue worker is found
when its result arrives, not when an accumulation task reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pickle
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import lz4.frame

from coffea_wq.executor.tasks.staging import FunctionFile, TaskTemplate, build_task
from coffea_wq.executor.tasks.task_script import ACCUMULATE, SAFE_RESULTS
from coffea_wq.safe_pickle import allow_list
from coffea_wq.safe_pickle.allow_list import ResultPolicy, first_refused_global

log = logging.getLogger(__name__)

CATEGORY = "accumulating"
PAYLOAD_PREFIX = "accumulate-"  # the FN file of accumulation tasks (its name in their command)
INPUT_NAME = "in-{}.lz4"  # an input's name in the accumulation task's sandbox
# ahead of the chunk tasks queued: results are added while processing goes on, so staging holds
# few of them at a time, instead of all of them until the last chunk is dispatched
PRIORITY = 10
# a result this small (compressed) is screened at once for globals the allow-list refuses, so a
# rogue worker is found when its result arrives, not when an accumulation task reads it; reading
# past SCREEN_READ_BYTES (decompressed) gives up and leaves the judgement to the full read
SCREEN_BYTES = 256 * 1024
SCREEN_READ_BYTES = 32 * 2**20
# a result record at least this big (compressed) is "big": a returned partial waits for an
# accumulation task instead of being merged here, and at the end of a run results that weigh this
# much (all but the largest) are added by one last task, so that this process loads one result
# and never holds the output while it loads another (docs/reduction.md, section 3, for the figures)
BIG_RESULT_BYTES = 128 * 1024


def accumulation_payload(folder: Path, policy: ResultPolicy, compression: int | None) -> FunctionFile:
    """The ``FN`` file of accumulation tasks: the run's allow-list as data (plain pickle, cached on workers)."""
    data = {"packages": sorted(policy.packages), "modules": sorted(policy.modules), "globals": sorted(policy.globals)}
    payload = pickle.dumps({ACCUMULATE: data, "compression": compression or 1}, protocol=pickle.HIGHEST_PROTOCOL)
    remote = f"{PAYLOAD_PREFIX}{hashlib.sha256(payload).hexdigest()[:16]}.pkl"
    path = folder / remote
    if not path.exists():
        path.write_bytes(payload)
    return FunctionFile(path, remote)


def accumulation_template(template: TaskTemplate, staging_root: Path, policy: ResultPolicy,
                          compression: int | None) -> TaskTemplate:
    """The template of a call's accumulation tasks: the chunk template with the allow-list payload."""
    script = staging_root / SAFE_RESULTS
    if not script.exists():
        shutil.copyfile(allow_list.__file__, script)
    return dataclasses.replace(template, category=CATEGORY,
                               function=accumulation_payload(staging_root, policy, compression),
                               extra_inputs=[*template.extra_inputs, (script, SAFE_RESULTS)])


def build_accumulation_task(wq: ModuleType, template: TaskTemplate, staging_root: Path, name: str,
                            inputs: list[Path], output: Path) -> Any:
    """An accumulation task adding ``inputs`` (shipped as ``in-0.lz4``, ...) into ``output``."""
    item_path = staging_root / "items" / f"{name}.pkl"
    item_path.write_bytes(pickle.dumps({"inputs": [INPUT_NAME.format(n) for n in range(len(inputs))]}))
    output.unlink(missing_ok=True)
    output.write_bytes(b"")
    task = build_task(wq, template, 0, item_path, output)
    task.specify_tag(name)
    task.specify_priority(PRIORITY)
    prefer_oldest = getattr(task, "specify_prefer_oldest_worker", None)
    if callable(prefer_oldest):  # coffea-wq's manager: the worker likeliest to stay (docs/reduction.md, 6)
        prefer_oldest()
    for n, path in enumerate(inputs):
        task.specify_input_file(str(path), INPUT_NAME.format(n), cache=False)
    return task


def screened_refusal(path: Path, policy: ResultPolicy) -> str | None:
    """A global the allow-list refuses in a small result (``first_refused_global``), or None."""
    try:
        if path.stat().st_size > SCREEN_BYTES:
            return None
        with lz4.frame.open(path, mode="rb") as stream:
            return first_refused_global(_CappedReader(stream, SCREEN_READ_BYTES), policy)
    except Exception:  # unreadable: the full read says why
        return None


class _CappedReader:
    """``read``/``readline`` of a stream that fail once more than ``limit`` bytes were read."""

    def __init__(self, stream: Any, limit: int):
        self.stream, self.left = stream, limit

    def read(self, size: int = -1) -> bytes:
        return self._count(self.stream.read(size if size >= 0 else self.left + 1))

    def readline(self, size: int = -1) -> bytes:
        return self._count(self.stream.readline(size if size >= 0 else self.left + 1))

    def _count(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left < 0:
            raise OSError("screening limit reached")
        return data
