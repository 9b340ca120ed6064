"""The workspace and the per-task sandboxes, laid out like CCTools' worker.

::

    <workdir>/worker-<uid>-<pid>/      the workspace ($WORK_QUEUE_SANDBOX for tasks)
        cache/<cachedname>             files the manager sent (see ``cache``)
        t.<taskid>/                    one sandbox per task: inputs linked from cache/
        t.<taskid>.output              the task's merged stdout and stderr
        coffea-wq-envs/                unpacked environments (written by envtools' runner)

Sandboxes sit directly in the workspace, so ``../coffea-wq-envs`` from a task is shared by all
tasks of this worker.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from coffea_wq.protocol.messages import TaskAssignment
from coffea_wq.worker.cache import CacheError, FileCache, is_inside, remove_path

log = logging.getLogger(__name__)


class MissingInput(Exception):
    """An input the task names is not in the cache."""


@dataclass
class Workspace:
    """The worker's directory. ``create`` makes it; ``wipe`` empties it; ``remove`` deletes it."""

    root: Path

    @classmethod
    def create(cls, workdir: Path | None = None) -> Workspace:
        """``<workdir or $TMPDIR or /tmp>/worker-<uid>-<pid>``, as work_queue_worker names it.

        Example::

            ws = Workspace.create(Path("/scratch"))   # /scratch/worker-1000-4242
        """
        base = Path(workdir) if workdir else Path(os.environ.get("TMPDIR") or "/tmp")
        root = (base / f"worker-{os.getuid()}-{os.getpid()}").resolve()
        root.mkdir(parents=True, exist_ok=True)
        workspace = cls(root)
        workspace.cache_dir.mkdir(exist_ok=True)
        return workspace

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def sandbox_dir(self, taskid: int) -> Path:
        return self.root / f"t.{taskid}"

    def output_file(self, taskid: int) -> Path:
        return self.root / f"t.{taskid}.output"

    def wipe(self) -> None:
        """Delete everything inside the workspace and recreate an empty ``cache/``."""
        if not self.root.exists():
            return
        for entry in os.listdir(self.root):
            remove_path(self.root / entry)
        self.cache_dir.mkdir(exist_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def prepare_sandbox(workspace: Workspace, cache: FileCache, task: TaskAssignment) -> Path:
    """Create ``t.<id>/`` with the task's inputs linked from the cache and its empty dirs.

    Raises MissingInput (naming the file) if the manager never sent an input.
    """
    sandbox = workspace.sandbox_dir(task.taskid)
    if sandbox.exists():
        remove_path(sandbox)
    sandbox.mkdir(parents=True)
    for name in task.empty_dirs:
        _inside_sandbox(sandbox, name).mkdir(parents=True, exist_ok=True)
    for spec in task.inputs:
        source = cache.path_of(spec.cached_name)
        if not os.path.lexists(source):
            raise MissingInput(f"input {spec.remote_name!r} (cached as {spec.cached_name!r}) was never sent")
        target = _inside_sandbox(sandbox, spec.remote_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(target):
            continue  # as in CCTools, an existing target is fine
        link_into_sandbox(source, target)
    return sandbox


def _inside_sandbox(sandbox: Path, name: str) -> Path:
    """``sandbox/name``, refused (CacheError: the task fails INPUT_MISSING) when a symlink an earlier
    input put in the sandbox would carry it outside (docs/worker.md, "Sandbox")."""
    path = sandbox / name
    parent = os.path.realpath(path.parent)
    if not is_inside(parent, os.path.realpath(sandbox)):
        raise CacheError(f"sandbox name {name!r} leads through a symlink out of the sandbox (to {parent!r})")
    return path


def make_task_tmpdir(sandbox: Path, taskid: int) -> Path:
    """``t.<id>/cctools-temp-t.<id>.XXXXXX`` for TMPDIR, as the real worker makes it."""
    return Path(tempfile.mkdtemp(prefix=f"cctools-temp-t.{taskid}.", dir=sandbox))


def link_into_sandbox(source: Path, target: Path) -> None:
    """Hard-link a cached file (or, for a directory, each file in it) into a sandbox.

    Falls back to an absolute symlink where hard links are impossible (another filesystem).
    """
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
        return
    if source.is_dir():
        target.mkdir(exist_ok=True)
        for child in os.listdir(source):
            if not os.path.lexists(target / child):
                link_into_sandbox(source / child, target / child)
        return
    try:
        os.link(source, target)
    except OSError:
        os.symlink(os.path.abspath(source), target)


def move_outputs_to_cache(sandbox: Path, cache: FileCache, task: TaskAssignment) -> None:
    """Move each output ``t.<id>/<remote>`` to ``cache/<cachedname>`` (missing ones stay missing)."""
    for spec in task.outputs:
        source = sandbox / spec.remote_name
        if not os.path.lexists(source):
            continue
        if not is_inside(os.path.realpath(source.parent), os.path.realpath(sandbox)):
            log.warning("task %d: output %r lies through a symlink out of its sandbox; not taken",
                        task.taskid, spec.remote_name)
            continue
        target = cache.path_of(spec.cached_name)
        if os.path.lexists(target):
            cache.remove(spec.cached_name)
        try:
            os.replace(source, target)
        except OSError as exc:
            log.warning("task %d: could not move output %s to the cache: %s", task.taskid, source, exc)


def directory_size_mb(path: Path) -> float:
    """MB written by a task under ``path``: regular files with a single link.

    Inputs hard-linked from the cache (two or more links) and symlinks take no new space, so
    they do not count against the task's disk request.
    """
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                total += info.st_size
    return total / (1024 * 1024)


def remove_sandbox(workspace: Workspace, taskid: int) -> None:
    remove_path(workspace.sandbox_dir(taskid))
    remove_path(workspace.output_file(taskid))

